// Op: npu_dynamic_quant (torch_npu), per-token dynamic quantization to int8 / int4.
//
// Variant axes (params): formula = mul_reciprocal | db_scale | div_scale,
// rounding = rint | round | trunc, dst_type = int8 | int4.
// Every step is one fp32 instruction, so each variant is deterministic and checked EXACT
// (float stages in SPECIAL mode: NaN payloads are not portable). The vectors below put values on
// rounding ties on purpose, and searched vectors separate the formulas, so that every pair of
// variants disagrees on some case (tests/ops/dynamic_quant_test.cpp proves it).
#include <functional>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_dynamic_quant {

constexpr const char* kOp = "npu_dynamic_quant";

std::map<std::string, Note> notes() {
  return {
      {"DocExample",
       {"BASIC",
        "The torch_npu doc's example: fp16 row [0.7261, 0.3726, 0.9126] -> [101, 52, 127].",
        "Any port must reproduce the documented numbers."}},
      {"RoundingTie",
       {"FUNCTIONALITY",
        "amax = 127 (7 for int4) makes the multiplier exactly 1, so x*m = x sits exactly on "
        "k + 0.5: half-to-even (the kernel's CAST_RINT), half-away (ROUND) and truncation give "
        "different codes.",
        "A port that rounds half away from zero, or truncates (older NEON CPU code), is off by one "
        "code on every tie."}},
      {"FormulaSeparator",
       {"DIVERGENCE",
        "Searched input where y = round(x * fp32(127/amax)) (A2/A3 kernel) and "
        "y = round(x / fp32(amax/127)) (the doc and the Ascend 950 Div kernel) differ by a code.",
        "Divide-by-scale and multiply-by-reciprocal are different functions; see "
        "docs/divergences.md."}},
      {"ScaleSeparator",
       {"DIVERGENCE",
        "Searched input where scale = 1/fp32(127/amax) (dynamic_quant.h) and "
        "scale = amax * fp32(1/127) (dynamic_quant_db.h) differ in the last bit.",
        "The scale output of the two A2/A3 kernels differs by an ulp on such rows."}},
      {"ZeroRow",
       {"EDGE_CASE",
        "amax = 0: m = 127/0 = +Inf, 0 * Inf = NaN, and the saturating cast maps NaN to 0; "
        "scale = 1/Inf = 0. [inf: the docs are silent; this follows the kernel's arithmetic and "
        "the AscendC cast rule NaN -> 0]",
        "A port that divides by zero differently, or special-cases amax = 0 to scale 1, differs."}},
      {"InfRow",
       {"EDGE_CASE",
        "A row holding +-Inf: amax = Inf, m = 0, finite x -> 0, Inf * 0 = NaN -> 0, scale = Inf. "
        "[inf]",
        "Documents what the kernel's arithmetic does with overflowing activations."}},
      {"NanRow",
       {"EDGE_CASE",
        "A row holding NaN: amax is NaN (qconf pins NaN-propagating max), every code 0, scale NaN. "
        "[inf: ReduceMax's NaN behaviour is undocumented]",
        "A NaN-skipping max would give finite codes; the fixture marks this reading as inferred."}},
      {"SmoothScales",
       {"FUNCTIONALITY", "smooth_scales [H] multiply x in fp32 before amax.",
        "Applying the smooth scale after amax, or in fp16, changes codes and scale."}},
      {"GroupedSmooth",
       {"FUNCTIONALITY",
        "smooth_scales [G, H] with group_index (cumulative row ends): rows [gi[g-1], gi[g]) use "
        "row g, including an empty group.",
        "An off-by-one group boundary applies the wrong scale row."}},
      {"Int4Output",
       {"FUNCTIONALITY",
        "dst_type quint4x2: multiplier 7/amax, 8 codes per int32 (notes §0 layout).",
        "Packing order and the 7 constant."}},
      {"Bf16Input", {"FUNCTIONALITY", "bfloat16 input.", "Upcast of bf16."}},
      {"AmaxInSimdTail",
       {"EDGE_CASE",
        "H = 200 (200 = 3 * 64 + 8): the largest |x| of a row sits in the last 8 elements, past "
        "every 16/32/64-lane block, positive or negative; one control row has it at the head.",
        "A vectorized amax whose tail loop is missing or off by one misses the row maximum: "
        "codes beyond 127 saturate and the scale is too small (found by the mutation catalogue, "
        "tests/mutants/)."}},
      {"Random",
       {"BASIC", "Seeded normal-like activations over assorted shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

uint16_t half(float v) { return num::f32_to_f16(v); }

Tensor f16_row(const std::vector<float>& v, Shape shape) {
  std::vector<uint16_t> b;
  for (float f : v) b.push_back(half(f));
  return Tensor::from(DType::kF16, std::move(shape), b);
}

Params params(const std::string& formula, const std::string& rounding, const std::string& dst) {
  return Params{{"formula", formula}, {"rounding", rounding}, {"dst_type", dst}};
}

DynQuantConfig config_of(const Params& p) {
  DynQuantConfig c;
  c.formula = parse_dyn_quant_formula(param_str(p, "formula", "mul_reciprocal"));
  c.rounding = num::parse_round(param_str(p, "rounding", "rint"));
  const std::string dst = param_str(p, "dst_type", "int8");
  if (dst != "int8" && dst != "int4")
    throw std::invalid_argument("dst_type must be int8 or int4, got " + dst);
  c.int4 = dst == "int4";
  return c;
}

const char* kFormulas[] = {"mul_reciprocal", "db_scale", "div_scale"};
const char* kRoundings[] = {"rint", "round", "trunc"};

// First candidate row (seeded, deterministic) on which `differs` holds.
Tensor search_row(const std::string& name, int64_t h,
                  const std::function<bool(const Tensor&)>& differs) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  for (uint64_t stream = 0; stream < 100000; ++stream) {
    Tensor x = gen::float_tensor(DType::kF16, {1, h}, gen::FloatDist::normal(0), seed, stream);
    if (differs(x)) return x;
  }
  throw std::logic_error(name + ": no separating vector found");
}

std::vector<CaseSpec> cases() {
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
  add("doc_example", "torch_npu doc: [0.7261, 0.3726, 0.9126] -> [101, 52, 127], scale ~0.0072",
      {"DocExample"}, params("mul_reciprocal", "rint", "int8"),
      {{"x", f16_row({0.7261f, 0.3726f, 0.9126f}, {1, 3})}});
  // Ties: every (formula, rounding) pair, int8 and int4.
  const std::vector<float> ties8 = {127, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, -126.5f};
  const std::vector<float> ties4 = {7, 2.5f, -3.5f, 0.5f, -0.5f, 1.5f, -6.5f, 6.5f};
  for (const char* f : kFormulas)
    for (const char* r : kRoundings) {
      add(std::string("ties_int8_") + f + "_" + r, "multiplier exactly 1: x*m on k+0.5",
          {"RoundingTie"}, params(f, r, "int8"), {{"x", f16_row(ties8, {1, 8})}});
      add(std::string("ties_int4_") + f + "_" + r, "multiplier exactly 1 (7/7): ties in int4",
          {"RoundingTie", "Int4Output"}, params(f, r, "int4"), {{"x", f16_row(ties4, {1, 8})}});
    }
  // Formula separators, found by search against the reference itself, for int8 and int4, and
  // emitted for every (formula, rounding) pair so that each variant's own cases separate it from
  // every other (what `qconf identify` relies on).
  for (const bool int4 : {false, true}) {
    auto codes_differ = [int4](const Tensor& x) {
      DynQuantConfig a, b;
      a.int4 = b.int4 = int4;
      b.formula = DynQuantFormula::kDivScale;
      return !ref::npu_dynamic_quant(x, nullptr, nullptr, a)
                  .y.bit_equal(ref::npu_dynamic_quant(x, nullptr, nullptr, b).y);
    };
    auto scales_differ = [int4](const Tensor& x) {
      DynQuantConfig a, b;
      a.int4 = b.int4 = int4;
      b.formula = DynQuantFormula::kDbScale;
      return !ref::npu_dynamic_quant(x, nullptr, nullptr, a)
                  .scale.bit_equal(ref::npu_dynamic_quant(x, nullptr, nullptr, b).scale);
    };
    const std::string dst = int4 ? "int4" : "int8";
    Tensor sep_codes = search_row("formula_separator_" + dst, 16, codes_differ);
    Tensor sep_scale = search_row("scale_separator_" + dst, 16, scales_differ);
    std::vector<std::string> fl = {"FormulaSeparator"}, sl = {"ScaleSeparator"};
    if (int4) {
      fl.push_back("Int4Output");
      sl.push_back("Int4Output");
    }
    for (const char* f : kFormulas)
      for (const char* r : kRoundings) {
        const std::string suffix = dst + "_" + f + "_" + r;
        add("formula_separator_" + suffix, "codes differ between multiply and divide", fl,
            params(f, r, dst), {{"x", sep_codes}});
        add("scale_separator_" + suffix, "scale differs between 1/m and amax*(1/127)", sl,
            params(f, r, dst), {{"x", sep_scale}});
      }
  }
  // Special rows, per formula: zero, Inf, NaN (each next to a normal row).
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const char* f : kFormulas) {
    add(std::string("zero_row_") + f, "row 0 all zero (+0 and -0), row 1 normal", {"ZeroRow"},
        params(f, "rint", "int8"), {{"x", f16_row({0, -0.0f, 0, 0, 1, -2, 3, 0.25f}, {2, 4})}});
    add(std::string("inf_row_") + f, "row 0 holds +Inf and -Inf, row 1 normal", {"InfRow"},
        params(f, "rint", "int8"), {{"x", f16_row({1, inf, -2, -inf, 1, -2, 3, 0.25f}, {2, 4})}});
    add(std::string("nan_row_") + f, "row 0 holds a NaN, row 1 normal", {"NanRow"},
        params(f, "rint", "int8"), {{"x", f16_row({1, nan, -2, 4, 1, -2, 3, 0.25f}, {2, 4})}});
  }
  // Smooth scales.
  const uint64_t seed = rng::seed_from_string(kOp);
  {
    Tensor x = gen::float_tensor(DType::kF16, {3, 16}, gen::FloatDist::normal(0), seed, 1);
    Tensor s = gen::float_tensor(DType::kF16, {16}, gen::FloatDist::grid(1, 64, -4), seed, 2);
    add("smooth_per_h", "smooth_scales [H]", {"SmoothScales"},
        params("mul_reciprocal", "rint", "int8"), {{"x", x}, {"smooth_scales", s}});
  }
  {
    Tensor x = gen::float_tensor(DType::kF16, {2, 3, 16}, gen::FloatDist::normal(1), seed, 3);
    Tensor s = gen::float_tensor(DType::kF16, {4, 16}, gen::FloatDist::grid(1, 64, -4), seed, 4);
    // Groups: rows [0,2), [2,2) (empty), [2,5), [5,6).
    Tensor gi = Tensor::from<int32_t>({4}, {2, 2, 5, 6});
    add("smooth_grouped", "smooth_scales [G, H] with group_index [2, 2, 5, 6]: an empty group",
        {"GroupedSmooth"}, params("mul_reciprocal", "rint", "int8"),
        {{"x", x}, {"smooth_scales", s}, {"group_index", gi}});
    add("smooth_grouped_int4", "grouped smooth scales, int4 output",
        {"GroupedSmooth", "Int4Output"}, params("mul_reciprocal", "rint", "int4"),
        {{"x", x}, {"smooth_scales", s}, {"group_index", gi}});
  }
  {
    // Rows of H = 200 small values (|x| <= 0.5) and one large |x| at index 199, 192, 199
    // (negative) and 0.
    std::vector<float> vals;
    const int64_t h = 200;
    const int64_t at[4] = {199, 192, 199, 0};
    const float big[4] = {3.0f, 2.75f, -3.5f, 3.25f};
    for (int r = 0; r < 4; ++r)
      for (int64_t i = 0; i < h; ++i)
        vals.push_back(i == at[r] ? big[r]
                                  : static_cast<float>((i * 37 + r * 11) % 17 - 8) / 16.0f);
    add("amax_in_simd_tail_4x200", "the row maximum |x| in the h % 64 tail (and one at the head)",
        {"AmaxInSimdTail"}, params("mul_reciprocal", "rint", "int8"),
        {{"x", f16_row(vals, {4, h})}});
  }
  // bf16 and random sets.
  add("bf16_random_4x40", "bfloat16 input", {"Bf16Input", "Random"},
      params("mul_reciprocal", "rint", "int8"),
      {{"x", gen::float_tensor(DType::kBF16, {4, 40}, gen::FloatDist::normal(2), seed, 5)}});
  struct R {
    const char* name;
    DType dt;
    Shape shape;
    const char* dst;
  };
  for (const R& r : {R{"random_f16_3x136", DType::kF16, {3, 136}, "int8"},
                     R{"random_f16_3x4x72_int4", DType::kF16, {3, 4, 72}, "int4"},
                     R{"random_bf16_2x264", DType::kBF16, {2, 264}, "int8"},
                     R{"random_bf16_2x2x56_int4", DType::kBF16, {2, 2, 56}, "int4"}}) {
    for (const char* f : kFormulas)
      add(std::string(r.name) + "_" + f, "normal-like activations", {"Random"},
          params(f, "rint", r.dst),
          {{"x", gen::float_tensor(r.dt, r.shape, gen::FloatDist::normal(1),
                                   rng::seed_from_string(r.name), 0)}});
  }
  return v;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

template <typename Fn>
Kernel kernel(Fn fn, bool with_intermediates) {
  return [fn, with_intermediates](const Params& p, const TensorMap& in, TensorMap& out) {
    const DynQuantConfig cfg = config_of(p);
    DynQuantStages s =
        fn(in.at("x"), opt_input(in, "smooth_scales"), opt_input(in, "group_index"), cfg);
    if (with_intermediates) {
      out["x_smoothed"] = std::move(s.x_smoothed);
      out["amax"] = std::move(s.amax);
      if (s.multiplier.numel()) out["multiplier"] = std::move(s.multiplier);
      out["codes"] = std::move(s.codes);
    }
    out["y"] = std::move(s.y);
    out["scale"] = std::move(s.scale);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  for (const auto& [name, t] : out)
    if (dtype_is_float(t.dtype())) m[name].mode = CheckMode::kSpecial;
  // Rows of zeros (ZeroRow cases) are degenerate on purpose.
  bool degenerate = is_degenerate(out.at("codes"));
  if (degenerate)
    for (const auto& [name, t] : out) m[name].degenerate_ok = true;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_dynamic_quant: per-row amax, m = 127/amax (7 for int4), y = RINT(x*m) "
      "saturating, scale = 1/m; int4 packs 8 codes per int32. Variants: formula "
      "(mul_reciprocal | db_scale | div_scale) and rounding (rint | round | trunc).";
  d.sources = {"notes/torch_npu_semantics.md §1",
               "hicann/ops-nn quant/dynamic_quant/op_kernel/dynamic_quant.h Compute [code]",
               "hicann/ops-nn dynamic_quant_db.h (scale = amax*(1/127)) [code]",
               "op-plugin docs torch_npu-npu_dynamic_quant.md (formula, example) [doc]",
               "notes/vllm_ascend_quant.md §F (CPU variants: NEON vcvtq_s32_f32 truncates)"};
  d.inputs = {"x", "smooth_scales", "group_index"};
  d.stages = {{"x_smoothed", false, "fp32(x) * fp32(smooth_scales)"},
              {"amax", false, "max |x_smoothed| per row"},
              {"multiplier", false, "127/amax (7/amax for int4); absent for div_scale"},
              {"codes", false, "int8 codes before packing"},
              {"y", true, "int8 codes, or int32 words of 8 int4 codes"},
              {"scale", true, "float32 per row"}};
  d.variants = {{"formula",
                 {"mul_reciprocal", "db_scale", "div_scale"},
                 "how scale and codes are computed (A2/A3 kernel, its _db variant, doc/950 Div)"},
                {"rounding",
                 {"rint", "round", "trunc"},
                 "rounding of x*m: half-even (kernel), half-away, truncation (NEON CPU)"},
                {"dst_type", {"int8", "int4"}, "output type (int4 = quint4x2 packed in int32)"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_dynamic_quant, true);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::npu_dynamic_quant, true);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_dynamic_quant
}  // namespace qconf::conf
