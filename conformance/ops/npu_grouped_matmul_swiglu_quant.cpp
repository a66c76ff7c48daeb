// Op: npu_grouped_matmul_swiglu_quant (vllm-ascend custom op, A2/A3 fused W8A8 gmm1 + SwiGLU +
// per-token int8 requant): acc = x @ w[e] (int32, exact) -> fp32 -> * x_scale[m] -> *
// w_scale[e, j] (exact stage `dequant`) -> S = swish(C[:, :H]) * C[:, H:] (BOUNDED: exp) ->
// q = max|S| / 127 (REACHABLE) -> y = S * (1 / q) -> fp16 RINT -> int8 RINT (double rounding,
// REACHABLE). Rows past group_list[-1] are not written: UNSPECIFIED (compared ranges).
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"
#include "swiglu_quant_checks.h"

namespace qconf::conf {
namespace conformance_ops_npu_grouped_matmul_swiglu_quant {

constexpr const char* kOp = "npu_grouped_matmul_swiglu_quant";

std::map<std::string, Note> notes() {
  return {
      {"ScaleOrder",
       {"FUNCTIONALITY",
        "Full-mantissa x_scale and w_scale: fl(fl(acc * x_scale) * w_scale) differs from "
        "fl(fl(acc * w_scale) * x_scale) in some elements; checked exactly at the `dequant` "
        "stage (the difference, 1 ulp, is within the SwiGLU bound downstream).",
        "A port multiplying by w_scale first fails the dequant stage when it exposes it."}},
      {"DoubleRounding",
       {"FUNCTIONALITY",
        "Searched: some element's y = S * (1/q) rounds to an fp16 value exactly halfway between "
        "two integers while y itself is not (e.g. 2.5 + 2^-12 -> 2.5 -> 2), and no legitimate "
        "SwiGLU result moves it: the kernel's fp32 -> fp16 RINT -> int8 RINT (double rounding) "
        "and a single fp32 -> int8 RINT give different codes.",
        "A port rounding once fails; its code is outside the reachable set."}},
      {"AmaxZero",
       {"EDGE_CASE",
        "A row of zero activations: S = 0 exactly (no exp uncertainty), amax = 0, scale 0; y = 0 "
        "* (1/0) = NaN -> int8 0 (NaN -> 0, notes §0) [inf: the kernel's handling of a zero row "
        "is not documented].",
        "A port guarding amax = 0 with another scale (1, eps) differs on the scale."}},
      {"EmptyGroup",
       {"EDGE_CASE", "Experts with no rows (equal consecutive cumsum entries).",
        "Advancing rows for an empty expert shifts every later group."}},
      {"TailRows",
       {"EDGE_CASE",
        "group_list[-1] < M: rows past it are not written (garbage on the NPU): UNSPECIFIED, "
        "excluded by the compared ranges of every stage.",
        "Comparing them would fail a correct port; the valid rows are still checked."}},
      {"Reachable",
       {"FUNCTIONALITY",
        "Searched: some element's SwiGLU interval (exact value +- the derived bound) straddles a "
        "rounding boundary of the requant, or the row's amax interval spans several fp32 scales: "
        "the reachable codes / scales are listed.",
        "Every legitimate exp is accepted; codes outside the set fail."}},
      {"Random",
       {"BASIC", "Seeded int8 x and weights, full-mantissa scales, random group sizes.",
        "General coverage; the seed is derived from the case id."}},
      {"W8A8Moe",
       {"BASIC",
        "8 experts, vllm-ascend W8A8_DYNAMIC MoE shapes in miniature (fused path (a) of "
        "quant_apply_mlp, notes/vllm_ascend_quant.md §C).",
        "The real call."}},
  };
}

struct Spec {
  int64_t m, k, n2;
  std::vector<int64_t> cumsum;
};

TensorMap inputs(const std::string& name, const Spec& s, uint64_t attempt = 0) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const int64_t e = static_cast<int64_t>(s.cumsum.size());
  TensorMap in;
  in["x"] = gen::int_tensor(DType::kI8, {s.m, s.k}, -128, 127, seed, 8 * attempt);
  in["weight"] = gen::int_tensor(DType::kI8, {e, s.k, s.n2}, -128, 127, seed, 8 * attempt + 1);
  in["group_list"] = Tensor::from<int64_t>({e}, s.cumsum);
  // Full-mantissa scales: w ~ 2^-8, x ~ 2^-6 (SwiGLU inputs of a few units).
  in["weight_scale"] =
      gen::float_tensor(DType::kF32, {e, s.n2}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -31),
                        seed, 8 * attempt + 2);
  in["x_scale"] = gen::float_tensor(
      DType::kF32, {s.m}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -29), seed, 8 * attempt + 3);
  return in;
}

SwigluQuantBounds bounds_of(const TensorMap& in) {
  return ref::npu_grouped_matmul_swiglu_quant_bounds(
      in.at("x"), in.at("weight"), in.at("group_list"), in.at("weight_scale"), in.at("x_scale"));
}

// True when some element is exact (not in the reachable list) and the single-rounding code
// differs from the double-rounding one.
bool separates_rounding(const TensorMap& in) {
  const SwigluQuantStages st = ref::npu_grouped_matmul_swiglu_quant(
      in.at("x"), in.at("weight"), in.at("group_list"), in.at("weight_scale"), in.at("x_scale"));
  const SwigluQuantBounds b = bounds_of(in);
  const int64_t h = st.swiglu.dim(1);
  for (int64_t i = 0; i < st.valid_rows * h; ++i) {
    if (std::binary_search(b.y_index.begin(), b.y_index.end(), i)) continue;
    const float s = st.swiglu.data<float>()[i], q = st.scale.data<float>()[i / h];
    const float y = num::f32_mul(s, num::f32_div(1.0f, q));
    const int64_t single = num::float_to_int(num::kF32, num::f32_bits(y), num::Round::kRint, 8);
    if (single != st.y.data<int8_t>()[i]) return true;
  }
  return false;
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  {
    TensorMap in = inputs("groups_tail_amax_zero", {10, 32, 16, {3, 3, 7, 8}});
    // Row 4 (expert 2) all zero: S = 0, amax = 0.
    std::memset(in["x"].data<int8_t>() + 4 * 32, 0, 32);
    add("groups_tail_amax_zero",
        "cumsum (3, 3, 7, 8): expert 1 empty, rows 8 and 9 unspecified; row 4 is zero "
        "(amax = 0); full-mantissa scales",
        {"EmptyGroup", "TailRows", "AmaxZero", "ScaleOrder"}, std::move(in));
  }
  for (const char* what : {"double_rounding", "reachable"}) {
    const std::string name = std::string(what) + "_search";
    for (uint64_t attempt = 0;; ++attempt) {
      TensorMap in = inputs(name, {12, 48, 64, {5, 12}}, attempt);
      const bool ok = std::string(what) == "double_rounding" ? separates_rounding(in)
                                                             : !bounds_of(in).y_index.empty();
      if (!ok) {
        if (attempt > 2000) throw std::logic_error(name + ": no separating vector found");
        continue;
      }
      add(name,
          std::string(what) == "double_rounding"
              ? "searched: an exact element where fp32 -> fp16 -> int8 and fp32 -> int8 differ"
              : "searched: some element's code is reachable two ways",
          {std::string(what) == "double_rounding" ? "DoubleRounding" : "Reachable", "ScaleOrder"},
          std::move(in));
      break;
    }
  }
  add("w8a8_moe_8_experts", "8 experts (one empty), 40 tokens, K = 64, 2H = 96",
      {"W8A8Moe", "EmptyGroup"},
      inputs("w8a8_moe_8_experts", {40, 64, 96, {4, 9, 9, 15, 22, 30, 37, 40}}));
  add("random_3exp_17x40x34_tail", "seeded, odd shapes, a tail", {"Random", "TailRows"},
      inputs("random_3exp_17x40x34_tail", {17, 40, 34, {6, 9, 15}}));
  return v;
}

// The cases are built once per process (some are searched, and the reference and tests ask for
// them many times); every call returns a copy.
std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params&, const TensorMap& in, TensorMap& out) {
    SwigluQuantStages s = fn(in.at("x"), in.at("weight"), in.at("group_list"),
                             in.at("weight_scale"), in.at("x_scale"));
    out["dequant"] = std::move(s.dequant);
    out["swiglu"] = std::move(s.swiglu);
    out["y"] = std::move(s.y);
    out["scale"] = std::move(s.scale);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m;
  const SwigluQuantBounds b = bounds_of(in);
  const int64_t rows = in.at("x").dim(0), n2 = in.at("weight").dim(2), h = n2 / 2;
  const Tensor& gl = in.at("group_list");
  const int64_t valid = gl.numel() ? gl.int_at(gl.numel() - 1) : 0;
  conformance_ops_swiglu_quant_checks::add_swiglu_quant_checks(m, b, rows, h, valid, kOp);
  if (valid < rows) m["dequant"].compared = {0, valid * n2};
  (void)out;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend grouped_matmul_swiglu_quant (W8A8 gmm1 + SwiGLU + per-token int8): int32 "
      "acc -> fp32 * x_scale * w_scale (exact) -> swish(first half) * second half (bounded: "
      "exp) -> scale = amax/127, y = S * (1/scale) -> fp16 RINT -> int8 RINT (reachable); rows "
      "past group_list[-1] unspecified.";
  d.sources = {
      "notes/torch_npu_semantics.md §10 (grouped_matmul_swiglu_quant kernel order, "
      "double rounding, tail rows)",
      "notes/vllm_ascend_quant.md §C Quantized MLP path (a)",
      "docs/bounds.md (expert MLP: the SwiGLU bound and the reachable codes)"};
  d.inputs = {"x", "weight", "group_list", "weight_scale", "x_scale"};
  d.stages = {{"dequant", false, "float32 [M, 2H]: (fp32(acc) * x_scale) * w_scale"},
              {"swiglu", false, "float32 [M, H]: swish(C[:, :H]) * C[:, H:] (bounded)"},
              {"y", true, "int8 [M, H] (reachable)"},
              {"scale", true, "float32 [M]: amax / 127 (reachable)"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_grouped_matmul_swiglu_quant);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(
      [](const Tensor& x, const Tensor& w, const Tensor& gl, const Tensor& ws, const Tensor& xs) {
        return opt::npu_grouped_matmul_swiglu_quant(x, w, gl, ws, xs);
      });
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_grouped_matmul_swiglu_quant
}  // namespace qconf::conf
