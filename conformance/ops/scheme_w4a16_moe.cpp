// scheme_w4a16_moe: one W4A16 MoE layer's expert MLP on dispatched tokens, from its
// compressed-tensors pack-quantized checkpoint tensors (group g = 32): load (unpack_from_int32 - 8,
// transpose, npu_convert_weight_to_int4pack; scales rounded to params dtype and transposed to
// [E, K/g, N]; zero offsets: EXACT) -> gmm1 antiquant x @ ((w + off) * s_group) (BOUNDED: fp32
// accumulation order) -> npu_swiglu and gmm2 (BOUNDED by the midpoint and half-width of the range
// every legitimate implementation reaches from its inputs' reachable values).
// Source: notes/vllm_ascend_quant.md §A W4A16 MoE, §D; seed compressed-tensors W4A16 (w4a16.py);
// reference/ops/moe_w4.cpp; docs/bounds.md "scheme_w4a16_moe".
#include "moe_w4_ckpt.h"
#include "qconf/numeric/bounds.h"
#include "qconf/ops/moe_w4.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a16_moe {

constexpr const char* kOp = "scheme_w4a16_moe";
using namespace scheme_pipeline;
using num::Exact;

W4a16MoeCheckpoint ckpt_of(const TensorMap& in) {
  auto get = [&](const char* n) -> const Tensor* {
    auto it = in.find(n);
    return it == in.end() ? nullptr : &it->second;
  };
  W4a16MoeCheckpoint c;
  c.w13_weight_packed = get("w13_weight_packed");
  c.w13_weight_scale = get("w13_weight_scale");
  c.w13_weight_shape = get("w13_weight_shape");
  c.w2_weight_packed = get("w2_weight_packed");
  c.w2_weight_scale = get("w2_weight_scale");
  c.w2_weight_shape = get("w2_weight_shape");
  return c;
}

// group_size: the description's value, default 32 (vllm-ascend: quant_description.get(
// "group_size", 32); the compressed-tensors path never sets it).
int64_t group_of(const Params& p) { return param_int(p, "group_size", 32); }

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  const int64_t g = group_of(p);
  W4a16MoeLoaded w;
  W4a16MoeMlpStages s;
  if constexpr (kOpt) {
    w = opt::w4a16_moe_load(ckpt_of(in), pdt, g);
    s = opt::w4a16_moe_expert_mlp(in.at("x"), in.at("group_list"), w, g);
  } else {
    w = ref::w4a16_moe_load(ckpt_of(in), pdt, g);
    s = ref::w4a16_moe_expert_mlp(in.at("x"), in.at("group_list"), w, g);
  }
  out["w13_unpacked"] = std::move(w.w13_unpacked);
  out["w13_weight"] = std::move(w.w13_weight);
  out["w13_scale"] = std::move(w.w13_scale);
  out["w13_offset"] = std::move(w.w13_offset);
  out["w2_unpacked"] = std::move(w.w2_unpacked);
  out["w2_weight"] = std::move(w.w2_weight);
  out["w2_scale"] = std::move(w.w2_scale);
  out["w2_offset"] = std::move(w.w2_offset);
  out["gmm1"] = std::move(s.gmm1);
  out["swiglu"] = std::move(s.swiglu);
  out["y"] = std::move(s.y);
}

// [lo, hi] ranges of pdt values -> BOUNDED by midpoint and half-width (EXACT if all equal).
Check range_check(const Tensor& lo, const Tensor& hi) {
  Check c;
  bool any = false;
  Tensor mid(DType::kF64, lo.shape()), half(DType::kF64, lo.shape());
  for (int64_t i = 0; i < lo.numel(); ++i) {
    const double a = lo.data<double>()[i], b = hi.data<double>()[i];
    any = any || a != b;
    const Exact ea(a), eb(b);
    mid.data<double>()[i] = num::to_double_nearest((ea + eb) / 2);
    half.data<double>()[i] = num::stored_bound((eb - ea) / 2, (ea + eb) / 2);
  }
  if (any) {
    c.mode = CheckMode::kBounded;
    c.exact = std::move(mid);
    c.bound = std::move(half);
  }
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  const DType pdt = pdt_of(p);
  const int64_t g = group_of(p);
  const W4a16MoeLoaded w = ref::w4a16_moe_load(ckpt_of(in), pdt, g);
  W4a16MoeRanges r;
  ref::w4a16_moe_expert_mlp(in.at("x"), in.at("group_list"), w, g, &r);
  std::map<std::string, Check> m;
  Check g1;
  g1.mode = CheckMode::kBounded;
  g1.exact = r.gmm1_exact;
  g1.bound = r.gmm1_bound;
  m["gmm1"] = std::move(g1);
  m["swiglu"] = range_check(r.swiglu_lo, r.swiglu_hi);
  m["y"] = range_check(r.y_lo, r.y_hi);
  return m;
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  constexpr int64_t kE = 2, kH = 64, kI = 64, kM = 4, kG = 32;
  for (DType pdt : {DType::kBF16, DType::kF16}) {
    // One expert with rows per case (the reference antiquant of a whole expert is the cost).
    const std::vector<int64_t> counts =
        pdt == DType::kBF16 ? std::vector<int64_t>{0, kM} : std::vector<int64_t>{kM, 0};
    const std::string name = pdt == DType::kBF16 ? "bf16_g32" : "fp16_g32";
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
    Tensor v13 = gen::int_tensor(DType::kI8, {kE, 2 * kI, kH}, -8, 7, s, 1);
    Tensor v2 = gen::int_tensor(DType::kI8, {kE, kH, kI}, -8, 7, s, 2);
    // Int4 extremes: in every expert, output 0 all -8 (offset-binary 0), output 1 all 7 (15).
    for (int64_t x = 0; x < kE; ++x) {
      for (int64_t k = 0; k < kH; ++k) {
        v13.data<int8_t>()[x * 2 * kI * kH + k] = -8;
        v13.data<int8_t>()[x * 2 * kI * kH + kH + k] = 7;
      }
      for (int64_t k = 0; k < kI; ++k) {
        v2.data<int8_t>()[x * kH * kI + k] = -8;
        v2.data<int8_t>()[x * kH * kI + kI + k] = 7;
      }
    }
    // Group scales: fp32 (rounded at load); group 1 = 16 x a group-0-sized value, so a port
    // using the wrong group at the boundary k = 32 (or one scale per channel) is far off.
    Tensor s13 = ckpt_scale({kE, 2 * kI, kH / kG}, s, 3);
    Tensor s2 = ckpt_scale({kE, kH, kI / kG}, s, 4);
    for (Tensor* t : {&s13, &s2})
      for (int64_t j = 1; j < t->numel(); j += 2) t->data<float>()[j] *= 16.0f;
    namespace ck = moe_w4_ckpt;
    CaseSpec c;
    c.name = name;
    c.comment =
        "compressed-tensors pack-quantized, g = 32 (two groups per row: the boundary at k = 32, "
        "group 1 scales 16x), fp32 scales rounded at load, int4 -8/7 rows, one expert empty";
    c.flags = {"Pipeline", "GroupBoundary", "Int4Extremes", "EmptyExpert", "LoadRounding"};
    c.params = {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    c.inputs["x"] = gen::float_tensor(pdt, {kM, kH}, gen::FloatDist::normal(0), s, 0);
    c.inputs["group_list"] = Tensor::from<int64_t>({kE}, counts);
    c.inputs["w13_weight_packed"] = ck::ct_packed(v13);
    c.inputs["w13_weight_scale"] = s13;
    c.inputs["w13_weight_shape"] = ck::weight_shape(kE, 2 * kI, kH);
    c.inputs["w2_weight_packed"] = ck::ct_packed(v2);
    c.inputs["w2_weight_scale"] = s2;
    c.inputs["w2_weight_shape"] = ck::weight_shape(kE, kH, kI);
    v.push_back(std::move(c));
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
      "W4A16 MoE expert MLP from compressed-tensors checkpoint tensors (g = 32): unpack - 8, "
      "transpose, NPU int4 pack; scales to params dtype, [E, K/g, N]; zero offsets; grouped "
      "antiquant matmul, npu_swiglu, grouped antiquant matmul; rows grouped by expert.";
  d.sources = {"notes/vllm_ascend_quant.md §A W4A16 MoE, §D packing",
               "seed compressed-tensors W4A16 (w4a16.py)", "reference/schemes/w4a16.cpp",
               "docs/bounds.md scheme_w4a16_moe"};
  d.inputs = {"x",
              "group_list",
              "w13_weight_packed",
              "w13_weight_scale",
              "w13_weight_shape",
              "w2_weight_packed",
              "w2_weight_scale",
              "w2_weight_shape"};
  d.stages = {{"w13_unpacked", false, "int8 [E, 2I, H]: unpack_from_int32 (v - 8)"},
              {"w13_weight", false, "int32 [E, H, 2I/8]: NPU int4 pack of the transpose"},
              {"w13_scale", false, "params dtype [E, H/g, 2I]"},
              {"w13_offset", false, "params dtype [E, H/g, 2I]: zeros"},
              {"w2_unpacked", false, "int8 [E, H, I]"},
              {"w2_weight", false, "int32 [E, I, H/8]"},
              {"w2_scale", false, "params dtype [E, I/g, H]"},
              {"w2_offset", false, "params dtype [E, I/g, H]: zeros"},
              {"gmm1", false, "params dtype [M, 2I]: x @ ((w13 + off) * s) (bounded)"},
              {"swiglu", false, "params dtype [M, I]: npu_swiglu (range)"},
              {"y", true, "params dtype [M, H]: swiglu @ ((w2 + off) * s) (range)"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole expert MLP from checkpoint tensors, load steps included",
        "a port skipping the -8 or the transpose differs"}},
      {"GroupBoundary",
       {"EDGE_CASE", "K = 64 = two groups of 32; group 1's scales are 16x group 0's",
        "a port with the wrong group index or per-channel scales fails gmm1"}},
      {"Int4Extremes",
       {"EDGE_CASE", "rows of -8 (offset binary 0) and 7 (15)",
        "a port treating the nibble as two's complement fails w13_unpacked"}},
      {"EmptyExpert",
       {"EDGE_CASE", "group_list counts (0, 4) (bf16) and (4, 0) (fp16): one expert has no rows",
        "a port advancing rows for an empty expert uses the wrong weights"}},
      {"LoadRounding",
       {"DIVERGENCE", "fp32 checkpoint scales rounded once to the params dtype at load",
        "a port using the fp32 scale differs in gmm1"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w4a16_moe
}  // namespace qconf::conf
