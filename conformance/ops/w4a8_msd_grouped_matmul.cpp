// Op: w4a8_msd_grouped_matmul (vllm-ascend W4A8 MoE gmm1 + SwiGLU + int8 requant by the MSD
// decomposition, grouped_matmul_swiglu_quant_v2 with weight_assist_matrix = w13_scale_bias;
// notes/vllm_ascend_quant.md §A "Why the correction is 8·Σ"): x_hi = x >> 4, x_lo' = (x & 0xF)
// - 8 (EXACT) -> A_hi, A_lo = nibble @ w[e] (int32, EXACT) -> fixpipe fp16(A * s[e, n]) (EXACT
// per variant) -> msd_sum = 16 a_hi + a_lo + scale_bias (fp32, EXACT per variant) -> dequant =
// msd_sum * s_tok (EXACT) -> optional clamp -> SwiGLU (BOUNDED: exp) -> row requant (REACHABLE).
// Rows past group_list[-1] are not written: UNSPECIFIED (compared ranges).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"
#include "swiglu_quant_checks.h"
#include "w4a8_msd_params.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_msd_grouped_matmul {

constexpr const char* kOp = "w4a8_msd_grouped_matmul";

std::map<std::string, Note> notes() {
  return {
      {"NibbleEdges",
       {"EDGE_CASE",
        "x = -128 (hi = -8, lo' = -8), 127 (hi = 7, lo' = 7), and negatives that are not "
        "multiples of 16 (-1, -17, -9, -113), where floor(x / 16) (arithmetic shift) differs from "
        "truncation toward zero, and the low nibble read as signed differs from (x & 0xF) - 8.",
        "A truncating high nibble or a signed low nibble fails x_hi / x_lo and the accumulators."}},
      {"TailRows",
       {"EDGE_CASE",
        "group_list[-1] < M: rows past it are not written: UNSPECIFIED, excluded by the compared "
        "ranges of every stage.",
        "Comparing them would fail a correct port."}},
      {"EmptyGroup",
       {"EDGE_CASE", "An expert with no rows (equal consecutive cumsum entries).",
        "Advancing rows for an empty expert shifts every later group."}},
      {"OddK",
       {"EDGE_CASE", "K odd (19): an int4 GEMM packing two values a byte has a half-byte tail.",
        "A port dropping the last K column fails the accumulators."}},
      {"Clamp",
       {"FUNCTIONALITY",
        "clamp_limit set and exceeded: gate clamped above, up clamped to [-limit, limit] before "
        "SwiGLU (the notes' optional clamp).",
        "A port without the clamp fails the SwiGLU bound and the codes."}},
      {"SumOrder",
       {"FUNCTIONALITY",
        "Searched (x in [112, 127], w in [0, 7], K = 512, so that 16 a_hi and a_lo span more than "
        "24 bits): (16 a_hi + a_lo) + scale_bias and 16 a_hi + (a_lo + scale_bias) differ in "
        "fp32 in some element (variant msd_sum_order; docs/divergences.md).",
        "A port in the other order fails msd_sum under this variant."}},
      {"RequantRounding",
       {"FUNCTIONALITY",
        "Searched: some element outside the reachable sets where fp32 -> fp16 -> int8 and "
        "fp32 -> int16 -> int8 give different codes (variant requant_rounding).",
        "A port with the other rounding fails y."}},
      {"Random",
       {"BASIC", "Seeded int8 x, int4 weights, FP19 scales, random groups and a tail.",
        "General coverage; the seed is derived from the case id."}},
  };
}

struct Spec {
  int64_t m, k, n2;
  std::vector<int64_t> cumsum;
};

// scale_bias = 8 * sum_k w[e, k, n] * s[e, n], exact in fp32 (|8 colsum| < 2^13, s has 11
// significant bits): the w4a8_scale_bias op's value.
Tensor scale_bias_of(const Tensor& w, const Tensor& s) {
  const int64_t e = w.dim(0), k = w.dim(1), n = w.dim(2);
  Tensor sb(DType::kF32, {e, n});
  for (int64_t g = 0; g < e; ++g)
    for (int64_t j = 0; j < n; ++j) {
      int64_t cs = 0;
      for (int64_t q = 0; q < k; ++q) cs += w.data<int8_t>()[(g * k + q) * n + j];
      sb.data<float>()[g * n + j] = static_cast<float>(
          static_cast<double>(8 * cs) * static_cast<double>(s.data<float>()[g * n + j]));
    }
  return sb;
}

TensorMap inputs(const std::string& name, const Spec& s, uint64_t attempt = 0) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const int64_t e = static_cast<int64_t>(s.cumsum.size());
  TensorMap in;
  in["x"] = gen::int_tensor(DType::kI8, {s.m, s.k}, -128, 127, seed, 8 * attempt);
  in["weight"] = gen::int_tensor(DType::kI8, {e, s.k, s.n2}, -8, 7, seed, 8 * attempt + 1);
  // FP19 scales in [2^-10, 2^-9): 11 significant bits.
  in["scale"] =
      gen::float_tensor(DType::kF32, {e, s.n2}, gen::FloatDist::grid(1 << 10, (1 << 11) - 1, -20),
                        seed, 8 * attempt + 2);
  in["scale_bias"] = scale_bias_of(in["weight"], in["scale"]);
  in["x_scale"] = gen::float_tensor(
      DType::kF32, {s.m}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -24), seed, 8 * attempt + 3);
  in["group_list"] = Tensor::from<int64_t>({e}, s.cumsum);
  return in;
}

W4a8MsdConfig config_of(const Params& p) {
  W4a8MsdConfig c = w4a8_msd_params::parse(p, kOp);
  if (p.contains("clamp_limit")) {
    if (!p.at("clamp_limit").is_number())
      throw std::invalid_argument(std::string(kOp) + ": param clamp_limit must be a number");
    c.clamp_limit = p.at("clamp_limit").get<float>();
  }
  return c;
}

W4a8MsdStages run_ref(const Params& p, const TensorMap& in, SwigluQuantBounds* b = nullptr) {
  return ref::w4a8_msd_grouped_matmul(in.at("x"), in.at("weight"), in.at("scale"),
                                      in.at("scale_bias"), in.at("x_scale"), in.at("group_list"),
                                      config_of(p), b);
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, Params p,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  {
    TensorMap in = inputs("nibble_edges_groups_tail", {10, 19, 16, {3, 3, 8}});
    int8_t* x = in["x"].data<int8_t>();
    const int8_t edge[19] = {-128, 127, -1, -16, -17, 15,  16,   -9, -113, -127,
                             -8,   7,   0,  -15, -33, 112, -112, 31, -32};
    std::memcpy(x, edge, 19);
    std::memset(x + 19, -128, 19);     // row 1: all -128 (hi = lo' = -8)
    std::memset(x + 2 * 19, 127, 19);  // row 2: all 127 (hi = lo' = 7)
    add("nibble_edges_groups_tail",
        "row 0: -128, 127 and negatives where floor(x/16) != trunc(x/16); rows 1-2 all -128 / "
        "127; K = 19 odd; cumsum (3, 3, 8): expert 1 empty, rows 8-9 unspecified",
        {"NibbleEdges", "OddK", "EmptyGroup", "TailRows"}, Params::object(), std::move(in));
  }
  add("random_3exp_17x40x34_tail", "seeded, odd shapes, a tail", {"Random", "TailRows"},
      Params::object(), inputs("random_3exp_17x40x34_tail", {17, 40, 34, {6, 9, 15}}));
  {
    Params p = Params::object();
    p["clamp_limit"] = 1.5;
    TensorMap in = inputs("clamp_limit_1_5", {8, 32, 24, {5, 8}});
    const auto a = run_ref(p, in), b = run_ref(Params::object(), in);
    if (a.q.y.bit_equal(b.q.y)) throw std::logic_error(std::string(kOp) + ": clamp not exercised");
    add("clamp_limit_1_5", "clamp_limit 1.5 exceeded by gate and up values", {"Clamp"}, p,
        std::move(in));
  }
  // msd_sum_order: the same inputs under both readings; msd_sum differs.
  for (uint64_t attempt = 0;; ++attempt) {
    // The orders differ only when a rounding happens: every fp32 sum of these fp16 terms is exact
    // unless the terms span more than 24 bits, i.e. |16 A_hi| >= 2^13 |A_lo|-ish. So x in
    // [112, 127] (x_hi = 7) and w in [0, 7] over K = 512: A_hi ~ 12500, and some |A_lo| is small.
    TensorMap in = inputs("sum_order", {8, 512, 32, {3, 8}}, attempt);
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/sum_order_biased");
    in["x"] = gen::int_tensor(DType::kI8, {8, 512}, 112, 127, seed, 2 * attempt);
    in["weight"] = gen::int_tensor(DType::kI8, {2, 512, 32}, 0, 7, seed, 2 * attempt + 1);
    in["scale_bias"] = scale_bias_of(in["weight"], in["scale"]);
    Params pb = Params::object();
    pb["msd_sum_order"] = "bias_first";
    if (run_ref(pb, in).msd_sum.bit_equal(run_ref(Params::object(), in).msd_sum)) {
      if (attempt > 200) throw std::logic_error(std::string(kOp) + ": no sum-order separator");
      continue;
    }
    add("sum_order_hi_lo_first",
        "searched: msd_sum differs between the two orders (this: "
        "(16 a_hi + a_lo) + scale_bias)",
        {"SumOrder"}, Params::object(), in);
    add("sum_order_bias_first", "the same inputs under msd_sum_order = bias_first", {"SumOrder"},
        pb, std::move(in));
    break;
  }
  // requant_rounding: an element outside the reachable sets with different codes.
  for (uint64_t attempt = 0;; ++attempt) {
    TensorMap in = inputs("requant_rounding", {12, 48, 64, {5, 12}}, attempt);
    Params ps = Params::object();
    ps["requant_rounding"] = "single_int16";
    SwigluQuantBounds bd, bs;
    const auto d = run_ref(Params::object(), in, &bd), s = run_ref(ps, in, &bs);
    bool sep = false;
    for (int64_t i = 0; i < d.q.valid_rows * d.q.y.dim(1) && !sep; ++i) {
      if (std::binary_search(bd.y_index.begin(), bd.y_index.end(), i) ||
          std::binary_search(bs.y_index.begin(), bs.y_index.end(), i))
        continue;
      sep = d.q.y.data<int8_t>()[i] != s.q.y.data<int8_t>()[i];
    }
    if (!sep) {
      if (attempt > 400) throw std::logic_error(std::string(kOp) + ": no rounding separator");
      continue;
    }
    add("requant_double_fp16",
        "searched: an exact element where the two requant roundings give "
        "different codes (this: fp32 -> fp16 -> int8)",
        {"RequantRounding"}, Params::object(), in);
    add("requant_single_int16", "the same inputs under requant_rounding = single_int16",
        {"RequantRounding"}, ps, std::move(in));
    break;
  }
  return v;
}

// The cases are built once per process (some are searched); every call returns a copy.
std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

void put(TensorMap& out, W4a8MsdStages s) {
  out["x_hi"] = std::move(s.x_hi);
  out["x_lo"] = std::move(s.x_lo);
  out["acc_hi"] = std::move(s.acc_hi);
  out["acc_lo"] = std::move(s.acc_lo);
  out["a_hi"] = std::move(s.a_hi);
  out["a_lo"] = std::move(s.a_lo);
  out["msd_sum"] = std::move(s.msd_sum);
  out["dequant"] = std::move(s.q.dequant);
  out["swiglu"] = std::move(s.q.swiglu);
  out["y"] = std::move(s.q.y);
  out["scale"] = std::move(s.q.scale);
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  SwigluQuantBounds b;
  const W4a8MsdStages st = run_ref(p, in, &b);
  const int64_t rows = in.at("x").dim(0), k = in.at("x").dim(1), n2 = in.at("weight").dim(2);
  const int64_t h = n2 / 2, valid = st.q.valid_rows;
  conformance_ops_swiglu_quant_checks::add_swiglu_quant_checks(m, b, rows, h, valid, kOp);
  if (valid < rows) {
    for (const char* s : {"x_hi", "x_lo"}) m[s].compared = {0, valid * k};
    for (const char* s : {"acc_hi", "acc_lo", "a_hi", "a_lo", "msd_sum", "dequant"})
      m[s].compared = {0, valid * n2};
  }
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8 MoE gmm1 by MSD: x = 16 x_hi + x_lo' + 8; two int4 grouped matmuls "
      "(exact) -> fixpipe fp16(A * s) -> 16 a_hi + a_lo + scale_bias (fp32) -> * s_tok -> "
      "optional clamp -> swish(first half) * second half (bounded: exp) -> per-row int8 (amax / "
      "127, reachable); rows past group_list[-1] unspecified.";
  d.sources = {"notes/vllm_ascend_quant.md §A \"Why the correction is 8·Σ\" (the MSD kernel)",
               "notes/vllm_ascend_quant.md §C W4A8 (grouped_matmul_swiglu_quant_v2)",
               "docs/bounds.md (expert MLP: the SwiGLU bound and the reachable codes)"};
  d.inputs = {"x", "weight", "scale", "scale_bias", "x_scale", "group_list"};
  d.stages = {{"x_hi", false, "int8 [M, K]: x >> 4 (floor(x / 16)), [-8, 7]"},
              {"x_lo", false, "int8 [M, K]: (x & 0xF) - 8, [-8, 7]"},
              {"acc_hi", false, "int32 [M, 2H]: x_hi @ w[e]"},
              {"acc_lo", false, "int32 [M, 2H]: x_lo @ w[e]"},
              {"a_hi", false, "float16 [M, 2H]: fixpipe fp16(acc_hi * s[e, n])"},
              {"a_lo", false, "float16 [M, 2H]: fixpipe fp16(acc_lo * s[e, n])"},
              {"msd_sum", false, "float32 [M, 2H]: 16 a_hi + a_lo + scale_bias[e, n]"},
              {"dequant", false, "float32 [M, 2H]: msd_sum * x_scale[m] (before the clamp)"},
              {"swiglu", false, "float32 [M, H]: swish(gate) * up (bounded)"},
              {"y", true, "int8 [M, H] (reachable)"},
              {"scale", true, "float32 [M]: amax / 127 (reachable)"}};
  d.variants = {
      {"msd_sum_order",
       {"hi_lo_first", "bias_first"},
       "(16 a_hi + a_lo) + scale_bias or 16 a_hi + (a_lo + scale_bias) in fp32 [inf: the notes "
       "give the formula, not the order]"},
      {"requant_rounding",
       {"double_fp16", "single_int16"},
       "the row requant's rounding: S * (1/q) -> fp16 -> int8 (as grouped_matmul_swiglu_quant) "
       "or S / q -> int16 -> int8 (as dequant_swiglu_quant) [inf]"},
      {"fixpipe_precision",
       {"fp32", "exact"},
       "fixpipe: fp32(A) * s in fp32 then fp16, or the exact product rounded once [inf]; equal "
       "whenever |A| < 2^13 (the fp32 product is exact), so no golden separates them"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    put(out, run_ref(p, in));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    put(out, opt::w4a8_msd_grouped_matmul(in.at("x"), in.at("weight"), in.at("scale"),
                                          in.at("scale_bias"), in.at("x_scale"),
                                          in.at("group_list"), config_of(p)));
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_msd_grouped_matmul
}  // namespace qconf::conf
