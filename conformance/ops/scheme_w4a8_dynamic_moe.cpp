// scheme_w4a8_dynamic_moe: one W4A8_DYNAMIC MoE layer's expert MLP on dispatched tokens, from its
// checkpoint tensors, in either checkpoint format (param `format`: modelslim | llmcompressor).
// Load (EXACT, the scale_bias sums BOUNDED where not provably exact) -> npu_dynamic_quant (EXACT)
// -> gmm1 + SwiGLU + requant by MSD (the w4a8_msd_grouped_matmul stages and checks) -> gmm2 by
// MSD (ranges over gmm1's reachable codes / scales and the bounded down scale_bias: integers
// REACHABLE, floats BOUNDED by the range's midpoint and half-width).
// Source: notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE, §C Quantized MLP (W4A8);
// reference/ops/moe_w4.cpp (step by step); docs/bounds.md "scheme_w4a8_dynamic_moe".
#include <algorithm>
#include <cmath>

#include "moe_w4_ckpt.h"
#include "qconf/numeric/bounds.h"
#include "qconf/ops/moe_w4.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "scheme_pipeline_util.h"
#include "swiglu_quant_checks.h"
#include "w4a8_msd_params.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a8_dynamic_moe {

constexpr const char* kOp = "scheme_w4a8_dynamic_moe";
using namespace scheme_pipeline;
using num::Exact;
using num::stored_bound;
using num::to_double_nearest;

W4a8MoeLoadConfig load_config(const Params& p) {
  W4a8MoeLoadConfig c;
  c.format = parse_w4a8_moe_format(param_str(p, "format", "modelslim"));
  c.tp = param_int(p, "tp", 1);
  c.tp_rank = param_int(p, "tp_rank", 0);
  return c;
}

W4a8MsdConfig msd_config(const Params& p) { return w4a8_msd_params::parse(p, kOp); }

W4a8MoeCheckpoint ckpt_of(const TensorMap& in) {
  auto get = [&](const char* n) -> const Tensor* {
    auto it = in.find(n);
    return it == in.end() ? nullptr : &it->second;
  };
  W4a8MoeCheckpoint c;
  c.w13_weight = get("w13_weight");
  c.w13_weight_scale = get("w13_weight_scale");
  c.w13_scale_bias = get("w13_scale_bias");
  c.w2_weight = get("w2_weight");
  c.w2_weight_scale = get("w2_weight_scale");
  c.w2_scale_bias = get("w2_scale_bias");
  return c;
}

void check_x(const Params& p, const TensorMap& in) {
  const DType pdt = pdt_of(p);
  if (in.at("x").dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                in.at("x").describe());
}

void put(TensorMap& out, W4a8MoeLoaded w, W4a8MoeMlpStages s) {
  out["w13_weight_packed"] = std::move(w.w13_weight);
  out["w13_scale_int64"] = std::move(w.w13_scale);
  out["w13_scale_bias"] = std::move(w.w13_scale_bias);
  out["w2_weight_packed"] = std::move(w.w2_weight);
  out["w2_scale_int64"] = std::move(w.w2_scale);
  if (w.w2_scale_bias_cols.numel()) out["w2_scale_bias_cols"] = std::move(w.w2_scale_bias_cols);
  out["w2_scale_bias"] = std::move(w.w2_scale_bias);
  out["x_q"] = std::move(s.x_q);
  out["x_scale"] = std::move(s.x_scale);
  out["w13_values"] = std::move(s.w13_values);
  out["w13_scale_fp19"] = std::move(s.w13_scale_fp19);
  out["gmm1_x_hi"] = std::move(s.gmm1.x_hi);
  out["gmm1_x_lo"] = std::move(s.gmm1.x_lo);
  out["gmm1_acc_hi"] = std::move(s.gmm1.acc_hi);
  out["gmm1_acc_lo"] = std::move(s.gmm1.acc_lo);
  out["gmm1_a_hi"] = std::move(s.gmm1.a_hi);
  out["gmm1_a_lo"] = std::move(s.gmm1.a_lo);
  out["gmm1_msd_sum"] = std::move(s.gmm1.msd_sum);
  out["gmm1_dequant"] = std::move(s.gmm1.q.dequant);
  out["swiglu"] = std::move(s.gmm1.q.swiglu);
  out["h_q"] = std::move(s.gmm1.q.y);
  out["h_scale"] = std::move(s.gmm1.q.scale);
  out["w2_values"] = std::move(s.w2_values);
  out["w2_scale_fp19"] = std::move(s.w2_scale_fp19);
  out["gmm2_acc_hi"] = std::move(s.gmm2_acc_hi);
  out["gmm2_acc_lo"] = std::move(s.gmm2_acc_lo);
  out["gmm2_a_hi"] = std::move(s.gmm2_a_hi);
  out["gmm2_a_lo"] = std::move(s.gmm2_a_lo);
  out["gmm2_msd_sum"] = std::move(s.gmm2_msd_sum);
  out["y"] = std::move(s.y);
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  check_x(p, in);
  const W4a8MoeCheckpoint c = ckpt_of(in);
  const W4a8MoeLoadConfig lc = load_config(p);
  const W4a8MsdConfig mc = msd_config(p);
  if constexpr (kOpt) {
    W4a8MoeLoaded w = opt::w4a8_moe_load(c, lc);
    W4a8MoeMlpStages s = opt::w4a8_moe_expert_mlp(in.at("x"), in.at("group_list"), w, mc);
    put(out, std::move(w), std::move(s));
  } else {
    W4a8MoeLoaded w = ref::w4a8_moe_load(c, lc);
    W4a8MoeMlpStages s = ref::w4a8_moe_expert_mlp(in.at("x"), in.at("group_list"), w, mc);
    put(out, std::move(w), std::move(s));
  }
}

// ---- oracle -----------------------------------------------------------------------------------

// A sum stage: EXACT when every order gives the exact value (signed zeros not distinguished),
// else BOUNDED. Also returns the fp32 interval [lo, hi] of every reachable value.
Check sum_check(const SumBound& b, Tensor* lo, Tensor* hi) {
  Check c;
  *lo = Tensor(DType::kF32, b.exact.shape());
  *hi = Tensor(DType::kF32, b.exact.shape());
  for (int64_t i = 0; i < b.exact.numel(); ++i) {
    const Exact ex(b.exact.data<double>()[i]);
    const Exact bd(b.bound.data<double>()[i]);
    if (!std::isfinite(b.exact.data<double>()[i]) || !std::isfinite(b.bound.data<double>()[i]))
      throw std::domain_error(std::string(kOp) +
                              ": a scale_bias sum can overflow: no finite range downstream");
    lo->data<uint32_t>()[i] =
        static_cast<uint32_t>(num::encode(num::kF32, ex - bd, num::Round::kFloor));
    hi->data<uint32_t>()[i] =
        static_cast<uint32_t>(num::encode(num::kF32, ex + bd, num::Round::kCeil));
  }
  if (b.all_exact()) {
    c.signed_zero = false;
  } else {
    c.mode = CheckMode::kBounded;
    c.exact = b.exact;
    c.bound = b.bound;
  }
  return c;
}

// An integer stage with ranges [lo, hi] per element: REACHABLE listing every integer between.
Check int_range_check(const Tensor& lo, const Tensor& hi) {
  Check c;
  std::vector<int32_t> vals;
  c.accept.offsets.push_back(0);
  for (int64_t i = 0; i < lo.numel(); ++i) {
    const int64_t a = lo.data<int64_t>()[i], b = hi.data<int64_t>()[i];
    if (a == b) continue;
    if (b - a > 4096) throw std::domain_error(std::string(kOp) + ": an accumulator range > 4096");
    c.accept.index.push_back(i);
    for (int64_t v = a; v <= b; ++v) vals.push_back(static_cast<int32_t>(v));
    c.accept.offsets.push_back(static_cast<int64_t>(vals.size()));
  }
  if (!c.accept.index.empty()) {
    c.mode = CheckMode::kReachable;
    c.accept.values = Tensor::from<int32_t>({static_cast<int64_t>(vals.size())}, vals);
  } else {
    c.accept.offsets.clear();
  }
  return c;
}

// A float stage with ranges [lo, hi] (values of the stage's dtype, as float64): BOUNDED by the
// midpoint and half-width (both exact in float64 for these formats' values at these magnitudes;
// the half-width rounded up), EXACT where lo == hi everywhere.
Check float_range_check(const Tensor& lo, const Tensor& hi) {
  Check c;
  bool any = false;
  Tensor mid(DType::kF64, lo.shape()), half(DType::kF64, lo.shape());
  for (int64_t i = 0; i < lo.numel(); ++i) {
    const double a = lo.data<double>()[i], b = hi.data<double>()[i];
    any = any || a != b;
    const Exact ea(a), eb(b);
    mid.data<double>()[i] = to_double_nearest((ea + eb) / 2);
    half.data<double>()[i] = stored_bound((eb - ea) / 2, (ea + eb) / 2);
  }
  if (any) {
    c.mode = CheckMode::kBounded;
    c.exact = std::move(mid);
    c.bound = std::move(half);
  }
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  const W4a8MoeCheckpoint c = ckpt_of(in);
  const W4a8MoeLoadConfig lc = load_config(p);
  const W4a8MsdConfig mc = msd_config(p);
  const W4a8MoeLoaded w = ref::w4a8_moe_load(c, lc);
  // Load-time sums.
  SumBound b13, b2;
  if (lc.format == W4a8MoeFormat::kModelSlim) {
    b13 = ref::w4a8_scale_bias_rank_sum_bound(*c.w13_scale_bias, lc.tp, W4a8BiasProj::kGateUp);
    b2 = ref::w4a8_scale_bias_rank_sum_bound(w.w2_scale_bias_cols, lc.tp, W4a8BiasProj::kDown);
  } else {
    b13 = ref::w4a8_scale_bias_bound(ref::transpose_last_two(*c.w13_weight),
                                     ref::transpose_last_two(*c.w13_weight_scale), nullptr);
    b2 = ref::w4a8_scale_bias_bound(ref::transpose_last_two(*c.w2_weight),
                                    ref::transpose_last_two(*c.w2_weight_scale), nullptr);
  }
  if (!b13.all_exact())
    throw std::domain_error(std::string(kOp) +
                            ": w13_scale_bias is not provably exact (e.g. fp32 LLM-Compressor "
                            "scales): the MSD gmm1 stages have no derived range for it");
  Tensor lo13, hi13, lo2, hi2;
  m["w13_scale_bias"] = sum_check(b13, &lo13, &hi13);
  m["w2_scale_bias"] = sum_check(b2, &lo2, &hi2);
  // gmm1 (the MSD op's checks).
  SwigluQuantBounds b;
  const W4a8MoeMlpStages st = ref::w4a8_moe_expert_mlp(in.at("x"), in.at("group_list"), w, mc, &b);
  // Every row is valid here (the pipeline's rows are the dispatched ones).
  const int64_t rows = b.swiglu_exact.dim(0);
  conformance_ops_swiglu_quant_checks::add_swiglu_quant_checks(
      m, b, rows, b.swiglu_exact.dim(1), rows, kOp, {"swiglu", "h_q", "h_scale"});
  // gmm2 ranges.
  const W4a8MoeGmm2Range r = ref::w4a8_moe_gmm2_range(st, b, in.at("group_list"), lo2, hi2, mc);
  m["gmm2_acc_hi"] = int_range_check(r.acc_hi_lo, r.acc_hi_hi);
  m["gmm2_acc_lo"] = int_range_check(r.acc_lo_lo, r.acc_lo_hi);
  m["gmm2_a_hi"] = float_range_check(r.a_hi_lo, r.a_hi_hi);
  m["gmm2_a_lo"] = float_range_check(r.a_lo_lo, r.a_lo_hi);
  m["gmm2_msd_sum"] = float_range_check(r.msd_lo, r.msd_hi);
  m["y"] = float_range_check(r.lo, r.hi);
  return m;
}

// ---- cases ------------------------------------------------------------------------------------

struct Layer {
  Tensor v13, v2;  // int4 values: [E, 2I, H] (gate rows then up), [E, H, I_full]
  Tensor s13, s2;  // float32 [E, 2I, 1], [E, H, 1]
};

// Seeded int4 weights with planted extremes: expert 0's output column 0 all -8, column 1 all 7
// (gate), and the same for down_proj's rows 0 and 1.
Layer layer(uint64_t seed, int64_t e, int64_t h, int64_t i, int64_t i_full) {
  Layer l;
  l.v13 = gen::int_tensor(DType::kI8, {e, 2 * i, h}, -8, 7, seed, 10);
  l.v2 = gen::int_tensor(DType::kI8, {e, h, i_full}, -8, 7, seed, 11);
  for (int64_t k = 0; k < h; ++k) {
    l.v13.data<int8_t>()[k] = -8;
    l.v13.data<int8_t>()[h + k] = 7;
  }
  for (int64_t k = 0; k < i_full; ++k) {
    l.v2.data<int8_t>()[k] = -8;
    l.v2.data<int8_t>()[i_full + k] = 7;
  }
  l.s13 = ckpt_scale({e, 2 * i, 1}, seed, 12);
  l.s2 = ckpt_scale({e, h, 1}, seed, 13);
  return l;
}

TensorMap modelslim_inputs(const Layer& l, int64_t tp, int64_t rank) {
  namespace ck = moe_w4_ckpt;
  const int64_t i_full = l.v2.dim(2), ir = i_full / tp;
  TensorMap in;
  in["w13_weight"] = ck::modelslim_bytes(l.v13);
  in["w13_weight_scale"] = l.s13;
  in["w13_scale_bias"] = ck::modelslim_scale_bias(l.v13, l.s13, 1);
  in["w2_weight"] = ck::modelslim_bytes(ck::k_slice(l.v2, rank * ir, (rank + 1) * ir));
  in["w2_weight_scale"] = l.s2;
  in["w2_scale_bias"] = ck::modelslim_scale_bias(l.v2, l.s2, 16);  // the file's 16 columns
  return in;
}

TensorMap llmc_inputs(const Layer& l) {
  namespace ck = moe_w4_ckpt;
  TensorMap in;
  in["w13_weight"] = l.v13;
  in["w13_weight_scale"] = ck::to_bf16(l.s13);
  in["w2_weight"] = l.v2;
  in["w2_weight_scale"] = ck::to_bf16(l.s2);
  return in;
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  constexpr int64_t kE = 3, kH = 32, kI = 16, kM = 6;
  const std::vector<int64_t> counts = {2, 0, 4};  // expert 1 has no tokens
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, Params p,
                 TensorMap in, DType pdt) {
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
    in["x"] = gen::float_tensor(pdt, {kM, kH}, gen::FloatDist::normal(0), s, 0);
    // Row 0: an outlier column (the row's amax) and exact zeros.
    auto set = [&](int64_t j, float f) {
      in["x"].data<uint16_t>()[j] = pdt == DType::kBF16 ? num::f32_to_bf16(f) : num::f32_to_f16(f);
    };
    set(0, 6.0f);
    set(1, 0.0f);
    set(2, -6.0f);
    in["group_list"] = Tensor::from<int64_t>({kE}, counts);
    p["params_dtype"] = pdt == DType::kBF16 ? "bfloat16" : "float16";
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  {
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/layer_tp1");
    const Layer l = layer(s, kE, kH, kI, kI);
    Params p = Params::object();
    p["format"] = "modelslim";
    add("modelslim_tp1",
        "ModelSlim packed, fp32 scales (FP19 truncation visible), scale_bias "
        "in the file (down: 16 partial columns summed); int4 -8/7 columns; expert 1 empty",
        {"Pipeline", "ModelSlim", "Int4Extremes", "EmptyExpert", "Fp19"}, p,
        modelslim_inputs(l, 1, 0), DType::kBF16);
    // The same int4 weights as LLM-Compressor (bf16 scales, scale_bias computed at load).
    Params q = Params::object();
    q["format"] = "llmcompressor";
    add("llmcompressor_same_weights",
        "LLM-Compressor: the modelslim_tp1 int4 weights, one per "
        "int8, bf16 scales; scale_bias = 8 * sum W * s at load (provably exact here)",
        {"Pipeline", "LlmCompressor", "Int4Extremes", "EmptyExpert"}, q, llmc_inputs(l),
        DType::kBF16);
    add("llmcompressor_fp16_x", "LLM-Compressor with float16 activations (params dtype)",
        {"Pipeline", "LlmCompressor"}, q, llmc_inputs(l), DType::kF16);
  }
  for (int64_t tp : {2, 4}) {
    const int64_t rank = tp - 1;
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/layer_tp" + std::to_string(tp));
    const Layer l = layer(s, kE, kH, kI, kI * tp);
    Params p = Params::object();
    p["format"] = "modelslim";
    p["tp"] = tp;
    p["tp_rank"] = rank;
    add("modelslim_tp" + std::to_string(tp) + "_rank" + std::to_string(rank),
        "ModelSlim at tp = " + std::to_string(tp) + ", rank " + std::to_string(rank) +
            ": the rank loads down scale_bias columns [" + std::to_string(rank * 16 / tp) + ", " +
            std::to_string((rank + 1) * 16 / tp) + ") of 16 and its I/tp slice of down_proj",
        {"Pipeline", "ModelSlim", "RankColumns"}, p, modelslim_inputs(l, tp, rank), DType::kBF16);
  }
  return v;
}

std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W4A8_DYNAMIC MoE expert MLP from checkpoint tensors (format modelslim | llmcompressor): "
      "load (pack to the NPU int4 layout, fp32 scale bits -> int64, scale_bias), "
      "npu_dynamic_quant, MSD gmm1 + SwiGLU + int8 requant, MSD gmm2 with bias = w2_scale_bias "
      "(output bf16), on dispatched rows grouped by expert (group_list counts).";
  d.sources = {
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE (formats A, B, after loading, "
      "why the correction is 8 * sum), §C Quantized MLP (W4A8)",
      "seed W4A8_DYNAMIC (w4a8.py)", "reference/schemes/w4a8_dynamic.cpp",
      "docs/bounds.md scheme_w4a8_dynamic_moe"};
  d.inputs = {"x",         "group_list",      "w13_weight",   "w13_weight_scale", "w13_scale_bias",
              "w2_weight", "w2_weight_scale", "w2_scale_bias"};
  d.stages = {
      {"w13_weight_packed", false, "int32 [E, H, 2I/8]: NPU int4 layout"},
      {"w13_scale_int64", false, "int64 [E, 2I]: fp32 bits zero-extended"},
      {"w13_scale_bias", false, "float32 [E, 2I]"},
      {"w2_weight_packed", false, "int32 [E, I, H/8]"},
      {"w2_scale_int64", false, "int64 [E, 1, H]"},
      {"w2_scale_bias_cols", false, "float32 [E, H, 16/tp]: this rank's columns (ModelSlim)"},
      {"w2_scale_bias", false, "float32 [E, H]: the columns summed (bounded)"},
      {"x_q", false, "int8 [M, H]: npu_dynamic_quant"},
      {"x_scale", false, "float32 [M]"},
      {"w13_values", false, "int8 [E, H, 2I]: the int4 codes the kernel reads"},
      {"w13_scale_fp19", false, "float32 [E, 2I]: low 32 bits & 0xFFFFE000"},
      {"gmm1_x_hi", false, "int8 [M, H]: x >> 4"},
      {"gmm1_x_lo", false, "int8 [M, H]: (x & 0xF) - 8"},
      {"gmm1_acc_hi", false, "int32 [M, 2I]"},
      {"gmm1_acc_lo", false, "int32 [M, 2I]"},
      {"gmm1_a_hi", false, "float16 [M, 2I]: fixpipe"},
      {"gmm1_a_lo", false, "float16 [M, 2I]"},
      {"gmm1_msd_sum", false, "float32 [M, 2I]: 16 a_hi + a_lo + w13_scale_bias"},
      {"gmm1_dequant", false, "float32 [M, 2I]: * x_scale"},
      {"swiglu", false, "float32 [M, I] (bounded)"},
      {"h_q", false, "int8 [M, I]: requantized (reachable)"},
      {"h_scale", false, "float32 [M] (reachable)"},
      {"w2_values", false, "int8 [E, I, H]"},
      {"w2_scale_fp19", false, "float32 [E, H]"},
      {"gmm2_acc_hi", false, "int32 [M, H]: (h_q >> 4) @ w2 (reachable range)"},
      {"gmm2_acc_lo", false, "int32 [M, H]: ((h_q & 0xF) - 8) @ w2 (reachable range)"},
      {"gmm2_a_hi", false, "float16 [M, H]: fixpipe (range)"},
      {"gmm2_a_lo", false, "float16 [M, H] (range)"},
      {"gmm2_msd_sum", false, "float32 [M, H]: 16 a_hi + a_lo + w2_scale_bias (range)"},
      {"y", true, "bfloat16 [M, H]: msd_sum * h_scale (range)"}};
  d.variants = {
      {"msd_sum_order",
       {"hi_lo_first", "bias_first"},
       "(16 a_hi + a_lo) + scale_bias or 16 a_hi + (a_lo + scale_bias), both gmms [inf]; "
       "separated by w4a8_msd_grouped_matmul/sum_order_*"},
      {"requant_rounding",
       {"double_fp16", "single_int16"},
       "the row requant after SwiGLU [inf]; separated by w4a8_msd_grouped_matmul/requant_*"},
      {"fixpipe_precision",
       {"fp32", "exact"},
       "fixpipe fp32 product then fp16, or one rounding [inf]; equal while |A| < 2^13"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole expert MLP from checkpoint tensors, load-time steps included",
        "a port skipping a load step (pack order, scale bits, scale_bias) differs"}},
      {"ModelSlim",
       {"FUNCTIONALITY",
        "format A: two int4 per byte along the output dim (even output in the low nibble), fp32 "
        "scales, scale_bias stored (down: 16 partial columns)",
        "a port unpacking the high nibble first or along K fails w13_values"}},
      {"LlmCompressor",
       {"FUNCTIONALITY",
        "format B: one int4 per int8, bf16 scales, scale_bias = 8 * sum_k W * s at load, pairs "
        "packed along N",
        "a port forgetting the factor 8 or summing over N fails w13_scale_bias"}},
      {"Int4Extremes",
       {"EDGE_CASE", "expert 0: a gate column all -8 and one all 7; down rows all -8 / all 7",
        "a nibble sign-extension bug shows on -8 and 7"}},
      {"EmptyExpert",
       {"EDGE_CASE", "group_list counts (2, 0, 4): expert 1 has no rows",
        "a port advancing rows for an empty expert uses the wrong weights for expert 2"}},
      {"Fp19",
       {"DIVERGENCE",
        "fp32 checkpoint scales with nonzero low mantissa bits: the int64 holds all 32 bits, "
        "the quant vector reads FP19 (w13_scale_fp19)",
        "a port using the full fp32 scale differs from gmm1_a_hi on"}},
      {"RankColumns",
       {"EDGE_CASE",
        "tp = 2 / 4 at the last rank: the rank's 16/tp partial columns of the down scale_bias",
        "a port taking the first columns, or all 16, fails w2_scale_bias_cols"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w4a8_dynamic_moe
}  // namespace qconf::conf
