// Op: w8a8_static_input_scale_reciprocal (vllm-ascend W8A8 static: aclnn_input_scale_reciprocal).
//
// The fp32 checkpoint input_scale is loaded into a params_dtype parameter, then 1/x is computed
// in params_dtype. Variant axis `reciprocal`: params_dtype (vllm-ascend, default),
// fp32_then_params_dtype (1/x of the fp32 value, rounded to pdt afterwards), fp32 (upstream
// vLLM CPU keeps an fp32 reciprocal). Param params_dtype: bfloat16 | float16.
// Math: reference/ops/scales.cpp (ref::w8a8_static_input_scale_reciprocal),
// optimized/ops/scales.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_w8a8_static_input_scale_reciprocal {

using namespace scales;

constexpr const char* kOp = "w8a8_static_input_scale_reciprocal";

std::map<std::string, Note> notes() {
  return {
      {"RoundedBeforeReciprocal",
       {"DIVERGENCE",
        "input_scale values for which rounding the scale to params_dtype BEFORE taking 1/x "
        "(vllm-ascend) and rounding 1/x of the fp32 scale afterwards give different params_dtype "
        "values: bf16 0x3d3f6a6a (0.04673..): 1/bf16(s) = 21.5 vs bf16(1/s) = 21.375; fp16 "
        "0x3e3764e9: 5.5859375 vs 5.58203125.",
        "A port that computes the reciprocal from the fp32 checkpoint value quantizes every "
        "activation of the layer with a multiplier one params-dtype ulp off."}},
      {"ExactReciprocals",
       {"BASIC",
        "Powers of two (0.5, 2^-7, 4): the reciprocal is exact, every reading agrees (fp32 "
        "reading: same value, other dtype).",
        "A port that perturbs exact reciprocals."}},
      {"TypicalScales",
       {"BASIC", "Typical static activation scales (0.1, 0.0123, 1/127, ...).",
        "General behaviour of the default reading."}},
      {"Fp16Overflow",
       {"EDGE_CASE",
        "Tiny scales whose reciprocal exceeds 65504: Inf in fp16 (1e-5 -> fp16 param 1.001e-5, "
        "1/x ~ 99900 -> Inf), finite in bf16 and fp32.",
        "A port that saturates, or computes in fp32 and keeps it."}},
      {"Specials",
       {"EDGE_CASE",
        "+0 -> +Inf, -0 -> -Inf, +Inf -> +0, NaN -> NaN (SPECIAL mode: any NaN matches).",
        "A port that guards division by zero with another value."}},
      {"Random",
       {"BASIC",
        "Seeded fp32 scales with uniformly random bit patterns in [2^-10, 1) (every mantissa bit "
        "random; about one in eight separates params_dtype from fp32_then_params_dtype).",
        "General coverage; the seed is derived from the case id."}},
  };
}

const std::vector<std::string> kReadings = {"params_dtype", "fp32_then_params_dtype", "fp32"};

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  for (const std::string pdt : {"bfloat16", "float16"}) {
    auto each = [&](const std::string& name, const std::string& comment,
                    std::vector<std::string> flags, const Tensor& scale) {
      for (const std::string& r : kReadings) {
        CaseSpec c = make_case(name + "_" + pdt + "_" + r,
                               comment + " [params_dtype " + pdt + ", reciprocal " + r + "]", flags,
                               Params{{"params_dtype", pdt}, {"reciprocal", r}});
        c.inputs["input_scale"] = scale;
        v.push_back(std::move(c));
      }
    };
    if (pdt == "bfloat16")
      each("separating", "0x3d3f6a6a, 0x3b30973b, 0x3c83a0e3: 1/bf16(s) != bf16(1/s)",
           {"RoundedBeforeReciprocal"}, f32_bits({3}, {0x3D3F6A6Au, 0x3B30973Bu, 0x3C83A0E3u}));
    else
      each("separating", "0x3e3764e9, 0x3d59110d, 0x3983ea5f: 1/fp16(s) != fp16(1/s)",
           {"RoundedBeforeReciprocal"}, f32_bits({3}, {0x3E3764E9u, 0x3D59110Du, 0x3983EA5Fu}));
    each("typical", "0.1, 0.05, 0.0123, 1/127, 0.02, 0.3", {"TypicalScales"},
         f32_vals({6}, {0.1f, 0.05f, 0.0123f, 1.0f / 127.0f, 0.02f, 0.3f}));
    each("exact_powers_of_two", "0.5, 2^-7, 4, 2^-12", {"ExactReciprocals"},
         f32_vals({4}, {0.5f, 0.0078125f, 4.0f, 0.000244140625f}));
    each("specials", "+0, -0, +Inf, -Inf, NaN", {"Specials"},
         f32_bits({5}, {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u}));
    if (pdt == "float16")
      each("fp16_overflow", "1e-5, 1.5e-5 -> fp16 reciprocal Inf; 2e-5 -> 49920 (finite)",
           {"Fp16Overflow"}, f32_vals({3}, {1e-5f, 1.5e-5f, 2e-5f}));
    for (const auto& [name, shape] :
         std::vector<std::pair<std::string, Shape>>{{"random_n23", {23}}, {"random_n96", {96}}}) {
      // Same inputs for every reading: the seed comes from the vector's name.
      const Tensor scale =
          random_bits_tensor(DType::kF32, shape, 0x3A800000u, 0x3F7FFFFFu, case_seed(kOp, name));
      each(name, "random fp32 bit patterns " + shape_str(shape), {"Random"}, scale);
    }
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W8A8 static aclnn_input_scale_reciprocal: the fp32 input_scale is loaded into "
      "a params_dtype parameter and 1/x is computed in params_dtype (the exact quotient rounded "
      "once). Readings: params_dtype (default), fp32_then_params_dtype, fp32 (upstream vLLM CPU).";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8 (static) [code: w8a8_static.py]",
               "notes/torch_npu_semantics.md §6 (VA register_custom_ops.py L146) [code]",
               "notes/vllm_ascend_quant.md §F CPU static quant: reciprocal in double [code]"};
  d.inputs = {"input_scale"};
  d.stages = {{"input_scale_param", false, "the loaded params_dtype parameter (params_dtype)"},
              {"reciprocal", true, "1/input_scale: params_dtype, or float32 for reading fp32"}};
  d.variants = {{"reciprocal",
                 {"params_dtype", "fp32_then_params_dtype", "fp32"},
                 "params_dtype: vllm-ascend rounds the scale to pdt at load, then 1/x in pdt; "
                 "fp32_then_params_dtype: 1/x of the fp32 scale rounded to pdt; fp32: the fp32 "
                 "reciprocal of the fp32 scale (vLLM CPU)"}};
  d.notes = notes();
  auto pdt_of = [](const Params& p) {
    return parse_params_dtype(kOp, param_str(p, "params_dtype", "bfloat16"));
  };
  auto reading_of = [](const Params& p) {
    return parse_reciprocal_reading(param_str(p, "reciprocal", "params_dtype"));
  };
  d.reference = [=](const Params& p, const TensorMap& in, TensorMap& out) {
    ReciprocalResult r =
        ref::w8a8_static_input_scale_reciprocal(in.at("input_scale"), pdt_of(p), reading_of(p));
    if (r.input_scale_param) out["input_scale_param"] = std::move(*r.input_scale_param);
    out["reciprocal"] = std::move(r.reciprocal);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [=](const Params& p, const TensorMap& in, TensorMap& out) {
    out["reciprocal"] =
        opt::w8a8_static_input_scale_reciprocal(in.at("input_scale"), pdt_of(p), reading_of(p));
  };
#endif
  d.oracle = [](const Params&, const TensorMap&, const TensorMap& ref_out) {
    std::map<std::string, Check> m;
    for (const auto& [name, t] : ref_out)
      if (has_nan(t)) m[name].mode = CheckMode::kSpecial;
    return m;
  };
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w8a8_static_input_scale_reciprocal
}  // namespace qconf::conf
