// Op: load_scale_to_params_dtype (vllm-ascend weight loading of fp32 checkpoint scales into
// bf16/fp16 parameters).
//
// W8A8/W8A8_DYNAMIC/W8A16 create weight_scale (and the W8A8 static input_scale) with dtype
// params_dtype; copying the fp32 checkpoint value into it rounds to nearest even. Param
// params_dtype: bfloat16 | float16.
// Math: reference/ops/scales.cpp (ref::load_scale_to_params_dtype), optimized/ops/scales.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_load_scale_to_params_dtype {

using namespace scales;

constexpr const char* kOp = "load_scale_to_params_dtype";

std::map<std::string, Note> notes() {
  return {
      {"TypicalScales",
       {"BASIC", "Ordinary per-channel weight scales rounded to the params dtype.",
        "A port that keeps fp32 scales where the model runs bf16/fp16 parameters computes with "
        "other scales than vllm-ascend (notes §A pitfall 2)."}},
      {"RneTies",
       {"EDGE_CASE",
        "fp32 values exactly halfway between two bf16/fp16 numbers, with even and odd lower "
        "neighbours: round half to even (deterministic, EXACT).",
        "A port that converts by truncation or by adding 0x8000 (half up) differs on these."}},
      {"Overflow",
       {"EDGE_CASE",
        "fp16: 65504 stays, 65519 -> 65504, 65520 (the tie) -> Inf, 1e5 -> Inf; bf16: the "
        "largest fp32 (0x7f7fffff) rounds up to Inf, 0x7f7f7fff down to 0x7f7f.",
        "A port that saturates to the largest finite value."}},
      {"Subnormals",
       {"EDGE_CASE",
        "Results in the fp16 subnormal range (multiples of 2^-24; 2^-25 is a tie to 0) and fp32 "
        "subnormals into bf16. IEEE gradual underflow is modelled; whether the NPU cast flushes "
        "is not documented [inf].",
        "A port that flushes subnormals to zero."}},
      {"Specials",
       {"EDGE_CASE", "+-0, +-Inf and NaN: checked in SPECIAL mode (any NaN matches any NaN).",
        "A port that turns NaN into Inf (truncating the payload without a quiet bit)."}},
      {"Random",
       {"BASIC",
        "Seeded fp32 scales with uniformly random bit patterns in [2^-14, 2^-2) (every mantissa "
        "bit random), and fp32 values exactly on bf16/fp16 ties.",
        "General coverage; the seed is derived from the case id."}},
  };
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  for (const std::string pdt : {"bfloat16", "float16"}) {
    const DType t = pdt == "bfloat16" ? DType::kBF16 : DType::kF16;
    auto add = [&](const std::string& name, const std::string& comment,
                   std::vector<std::string> flags, Tensor scale) {
      CaseSpec c = make_case(name + "_" + pdt, comment + " [params_dtype " + pdt + "]",
                             std::move(flags), Params{{"params_dtype", pdt}});
      c.inputs["scale"] = std::move(scale);
      v.push_back(std::move(c));
    };
    add("typical_scales", "0.0123, 0.00391, ...", {"TypicalScales"},
        f32_vals({8}, {0.0123f, 0.00391f, 0.0007f, 0.05f, 1.0f, 0.3333333f, 0.0001234f, 2.5e-5f}));
    if (t == DType::kBF16)
      add("ties",
          "0x3f808000 (even: down), 0x3f818000 (odd: up), negatives, 0x3c4c8000, 0x3c4d8000",
          {"RneTies"},
          f32_bits({6},
                   {0x3F808000u, 0x3F818000u, 0xBF808000u, 0xBF818000u, 0x3C4C8000u, 0x3C4D8000u}));
    else
      add("ties", "0x3f801000 (even: down), 0x3f803000 (odd: up), negatives, 0x3c4c9000 ...",
          {"RneTies"},
          f32_bits({6},
                   {0x3F801000u, 0x3F803000u, 0xBF801000u, 0xBF803000u, 0x3C4C9000u, 0x3C4CB000u}));
    add("overflow", "65504, 65519, 65520, 1e5, 0x7f7fffff, 0x7f7f7fff, -65520, -3e38", {"Overflow"},
        f32_bits({8}, {bits_of(65504.0f), bits_of(65519.0f), bits_of(65520.0f), bits_of(1e5f),
                       0x7F7FFFFFu, 0x7F7F7FFFu, bits_of(-65520.0f), bits_of(-3e38f)}));
    add("subnormals",
        "1e-6, 2^-25, 1.5 * 2^-24, 6e-8, 1e-40 (fp32 subnormal), 0x00018000, 0x80008000, 6.1e-5",
        {"Subnormals"},
        f32_bits({8}, {bits_of(1e-6f), 0x33000000u, 0x33C00000u, bits_of(6e-8f), bits_of(1e-40f),
                       0x00018000u, 0x80008000u, bits_of(6.1e-5f)}));
    add("specials", "+0, -0, +Inf, -Inf, qNaN, NaN 0x7f800001, -qNaN", {"Specials"},
        f32_bits({7}, {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u,
                       0xFFC00000u}));
    for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
             {"random_n37", {37}}, {"random_4x64", {4, 64}}}) {
      CaseSpec c =
          make_case(name + "_" + pdt,
                    "random fp32 bit patterns " + shape_str(shape) + " [params_dtype " + pdt + "]",
                    {"Random"}, Params{{"params_dtype", pdt}});
      c.inputs["scale"] =
          random_bits_tensor(DType::kF32, shape, 0x38800000u, 0x3E7FFFFFu, case_seed(kOp, name));
      v.push_back(std::move(c));
    }
    CaseSpec c = make_case("random_ties_" + pdt,
                           "fp32 values exactly halfway between " + pdt + " neighbours",
                           {"Random", "RneTies"}, Params{{"params_dtype", pdt}});
    c.inputs["scale"] = gen::float_ties_tensor(DType::kF32, t, {48}, -14, 4,
                                               case_seed(kOp, "random_ties_" + pdt), 0);
    v.push_back(std::move(c));
  }
  return v;
}

DType pdt_of(const Params& p) {
  return parse_params_dtype("load_scale_to_params_dtype", param_str(p, "params_dtype", "bfloat16"));
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend weight loading of an fp32 checkpoint scale into a params_dtype (bf16/fp16) "
      "parameter: round to nearest even, overflow to Inf, subnormals kept.";
  d.sources = {
      "notes/vllm_ascend_quant.md §A W8A8_DYNAMIC (params created with params_dtype), "
      "pitfall 2",
      "/work/shared/seeds/000 w8a8_dynamic.py get_perchannel_param [code]"};
  d.inputs = {"scale"};
  d.stages = {{"scale", true, "params_dtype"}};
  d.variants = {};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["scale"] = ref::load_scale_to_params_dtype(in.at("scale"), pdt_of(p));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["scale"] = opt::load_scale_to_params_dtype(in.at("scale"), pdt_of(p));
  };
#endif
  d.oracle = [](const Params&, const TensorMap&, const TensorMap& ref_out) {
    std::map<std::string, Check> m;
    if (has_nan(ref_out.at("scale"))) m["scale"].mode = CheckMode::kSpecial;
    return m;
  };
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_load_scale_to_params_dtype
}  // namespace qconf::conf
