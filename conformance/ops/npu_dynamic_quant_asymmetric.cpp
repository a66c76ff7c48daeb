// Op: npu_dynamic_quant_asymmetric (torch_npu): per-row asymmetric dynamic quantization.
//   scale = max((max - min) / 255, 1e-12), offset = 127 - max / scale,
//   y = RINT(x * (1/scale) + offset) saturating (int4: 15 and 7).
// One fp32 instruction per step: deterministic, EXACT (floats SPECIAL).
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_dynamic_quant_asymmetric {

constexpr const char* kOp = "npu_dynamic_quant_asymmetric";

std::map<std::string, Note> notes() {
  return {
      {"EqualRow",
       {"EDGE_CASE",
        "All elements of a row equal: max - min = 0 and the 1e-12 floor keeps the scale finite. "
        "Then offset = 127 - max/1e-12 is ~-max*1e12, whose fp32 ulp (2^15 for 0.5e12) absorbs "
        "the 127, and x*(1/scale) + offset rounds to 0: the codes are 0, not 127.",
        "A port without the floor divides by zero."}},
      {"MinMaxEnds",
       {"FUNCTIONALITY",
        "The row's min maps to -128 and its max to 127 (int4: -8 and 7) up to rounding.",
        "Swapped min/max or a wrong span (256 instead of 255) moves every code."}},
      {"SignedZeroExtremes",
       {"EDGE_CASE", "Rows whose max or min is -0 or +0.", "max(+0, -0) must be +0."}},
      {"NanRow",
       {"EDGE_CASE",
        "A row holding NaN: max, min, scale and offset are NaN, every code 0. [inf: undocumented]",
        "Documents the kernel arithmetic's NaN propagation as qconf pins it."}},
      {"SmoothScales",
       {"FUNCTIONALITY", "smooth_scales [H] or [G, H] with group_index.",
        "Smoothing must happen before min/max."}},
      {"Int4Output",
       {"FUNCTIONALITY", "int4: span 15, offset 7 - max/scale.", "The int4 constants."}},
      {"Random", {"BASIC", "Seeded activations.", "General coverage."}},
  };
}

Tensor f16(const std::vector<float>& v, Shape shape) {
  std::vector<uint16_t> b;
  for (float f : v) b.push_back(num::f32_to_f16(f));
  return Tensor::from(DType::kF16, std::move(shape), b);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags,
                 std::string dst, TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = Params{{"dst_type", dst}};
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  add("equal_row", "row 0 constant 0.5, row 1 constant -3", {"EqualRow"}, "int8",
      {{"x", f16({0.5f, 0.5f, 0.5f, 0.5f, -3, -3, -3, -3}, {2, 4})}});
  add("min_max_ends", "[-1, 0, 0.5, 1]: ends map to -128 and 127", {"MinMaxEnds"}, "int8",
      {{"x", f16({-1, 0, 0.5f, 1, 2, 4, 8, 16}, {2, 4})}});
  add("min_max_ends_int4", "int4 ends: -8 and 7", {"MinMaxEnds", "Int4Output"}, "int4",
      {{"x", f16({-1, 0, 0.5f, 1, 2, 4, 8, 16, 3, 3.5f, -2, 1, 0, 0, 0, 1}, {2, 8})}});
  add("signed_zero_extremes", "max -0 / min +0 rows", {"SignedZeroExtremes"}, "int8",
      {{"x", f16({-0.0f, -1, -2, -0.0f, 0, 1, 2, 0.0f}, {2, 4})}});
  add("nan_row", "row 0 holds NaN", {"NanRow"}, "int8",
      {{"x", f16({1, std::numeric_limits<float>::quiet_NaN(), 2, 3, 1, 2, 3, 4}, {2, 4})}});
  const uint64_t seed = rng::seed_from_string(kOp);
  add("smooth_per_h", "smooth_scales [H]", {"SmoothScales"}, "int8",
      {{"x", gen::float_tensor(DType::kF16, {3, 16}, gen::FloatDist::normal(0), seed, 1)},
       {"smooth_scales",
        gen::float_tensor(DType::kF16, {16}, gen::FloatDist::grid(1, 64, -4), seed, 2)}});
  add("smooth_grouped", "smooth_scales [G, H], group_index [1, 3]", {"SmoothScales"}, "int8",
      {{"x", gen::float_tensor(DType::kF16, {3, 16}, gen::FloatDist::normal(0), seed, 3)},
       {"smooth_scales",
        gen::float_tensor(DType::kF16, {2, 16}, gen::FloatDist::grid(1, 64, -4), seed, 4)},
       {"group_index", Tensor::from<int32_t>({2}, {1, 3})}});
  add("random_f16_4x72", "normal-like", {"Random"}, "int8",
      {{"x", gen::float_tensor(DType::kF16, {4, 72}, gen::FloatDist::normal(1), seed, 5)}});
  add("random_bf16_3x40_int4", "normal-like, int4", {"Random", "Int4Output"}, "int4",
      {{"x", gen::float_tensor(DType::kBF16, {3, 40}, gen::FloatDist::normal(1), seed, 6)}});
  return v;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    const std::string dst = param_str(p, "dst_type", "int8");
    if (dst != "int8" && dst != "int4")
      throw std::invalid_argument("dst_type must be int8 or int4, got " + dst);
    DynQuantAsymStages s =
        fn(in.at("x"), opt_input(in, "smooth_scales"), opt_input(in, "group_index"), dst == "int4");
    out["x_smoothed"] = std::move(s.x_smoothed);
    out["row_max"] = std::move(s.row_max);
    out["row_min"] = std::move(s.row_min);
    out["y"] = std::move(s.y);
    out["scale"] = std::move(s.scale);
    out["offset"] = std::move(s.offset);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  for (const auto& [name, t] : out)
    if (dtype_is_float(t.dtype())) m[name].mode = CheckMode::kSpecial;
  if (is_degenerate(out.at("y")))  // EqualRow: zero codes are the point of the vector
    for (const auto& [name, t] : out) m[name].degenerate_ok = true;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_dynamic_quant_asymmetric: scale = max((max-min)/255, 1e-12), offset = "
      "127 - max/scale, y = RINT(x*(1/scale) + offset) saturating; int4 uses 15 and 7.";
  d.sources = {"notes/torch_npu_semantics.md §1 (asymmetric)",
               "hicann/ops-nn quant/dynamic_quant/op_kernel/dynamic_quant.h [code]"};
  d.inputs = {"x", "smooth_scales", "group_index"};
  d.stages = {{"x_smoothed", false, "fp32(x) * fp32(smooth_scales)"},
              {"row_max", false, "max per row"},
              {"row_min", false, "min per row"},
              {"y", true, "codes (int8, or int32 words of 8 int4)"},
              {"scale", true, "float32 per row"},
              {"offset", true, "float32 per row"}};
  d.variants = {{"dst_type", {"int8", "int4"}, "output type"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_dynamic_quant_asymmetric);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::npu_dynamic_quant_asymmetric);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_dynamic_quant_asymmetric
}  // namespace qconf::conf
