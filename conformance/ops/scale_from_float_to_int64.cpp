// Op: scale_from_float_to_int64 (vllm-ascend W8A8_DYNAMIC MoE, fused MC2 scales).
//
// fp32 bits reinterpreted as int32, then sign-extended to int64. Flags, named vectors (negative
// scales separate sign- from zero-extension), seeded random sets, registration.
// Math: reference/ops/scales.cpp (ref::scale_from_float_to_int64), optimized/ops/scales.cpp.
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_scale_from_float_to_int64 {

using namespace scales;

constexpr const char* kOp = "scale_from_float_to_int64";

std::map<std::string, Note> notes() {
  return {
      {"SignExtension",
       {"DIVERGENCE",
        "Negative scales (sign bit set): np.frombuffer(.., np.int32).astype(np.int64) "
        "sign-extends, so the upper 32 bits are all ones (-1.0 -> 0xffffffffbf800000). The W4A8 "
        "path (w4a8_process_scale) reads uint32 and zero-extends the same bits.",
        "A port that zero-extends (or reuses the W4A8 conversion) differs in the upper word of "
        "every negative scale; read as a quant param, those upper bits are the flag bit 46 and "
        "an int9 offset of -1 (npu_trans_quant_param_decode)."}},
      {"PositiveScales",
       {"BASIC", "Ordinary positive per-channel scales: the upper 32 bits are zero.",
        "A port that shifts the bits into the upper word or converts the value to an integer."}},
      {"ParamsDtypeInput",
       {"FUNCTIONALITY",
        "The W8A8_DYNAMIC scale parameters are bf16/fp16 (params_dtype): scale.to(float32) "
        "widens them exactly before the bits are read.",
        "A port that reinterprets the 16-bit pattern, or widens by a shift for fp16, gets "
        "unrelated words."}},
      {"AllBitsKept",
       {"DIVERGENCE",
        "Scales whose low 13 mantissa bits are non-zero: all 32 bits are kept (no FP19 "
        "truncation, unlike npu_trans_quant_param; notes/vllm_ascend_quant.md §A suggests the "
        "hardware may still read only 19 bits [inf]).",
        "A port that applies the 0xFFFFE000 mask here changes the stored word."}},
      {"Specials",
       {"EDGE_CASE",
        "+-0, +-Inf, NaN (fp32 input: bits pass through unchanged), fp32 and fp16 subnormals, "
        "the largest finite value. -0 becomes 0xffffffff80000000.",
        "A port that canonicalises NaN, flushes subnormals or drops the sign of -0."}},
      {"SimdTail",
       {"EDGE_CASE", "Lengths that are not a multiple of common vector widths.",
        "Tail loops that skip or over-read elements."}},
      {"Random",
       {"BASIC",
        "Seeded scales of both signs (normal distribution, or fp32 uniform bit patterns in "
        "[0x38000000, 0xbe800000] with every mantissa bit random, NaN patterns included).",
        "General coverage; the seed is derived from the case id."}},
  };
}

CaseSpec with_scale(CaseSpec c, Tensor scale) {
  c.inputs["scale"] = std::move(scale);
  return c;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(with_scale(
      make_case("positive_scales", "typical per-channel scales: upper word 0", {"PositiveScales"}),
      f32_vals({8}, {0.0123f, 1.0f, 0.5f, 0.0009765625f, 3.0f, 0.001f, 100.0f, 1e-5f})));
  v.push_back(with_scale(
      make_case("negative_scales_sign_extended",
                "-1.0 -> 0xffffffffbf800000, -0.0123 -> 0xffffffffbc4985f0: upper word all ones; "
                "the positive 1.0 -> 0x000000003f800000 in the same tensor",
                {"SignExtension"}),
      f32_vals({8}, {-1.0f, -0.0123f, -0.0009765625f, 1.0f, -3.5f, 0.25f, -1e-5f, -65504.0f})));
  v.push_back(with_scale(
      make_case("specials_fp32",
                "+0, -0, +Inf, -Inf, qNaN 0x7fc00000, NaN 0xffc00001, subnormals 0x00000001 and "
                "0x807fffff, max finite 0x7f7fffff: bits unchanged, sign-extended",
                {"Specials", "SignExtension"}),
      f32_bits({9}, {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00001u,
                     0x00000001u, 0x807FFFFFu, 0x7F7FFFFFu})));
  v.push_back(with_scale(
      make_case("low_mantissa_bits_kept",
                "low 13 bits non-zero (0x3f801fff, 0x3c4ccccd, 0xbdcccccd, ...): all 32 bits kept",
                {"AllBitsKept", "SignExtension"}),
      f32_bits({2, 4}, {0x3F801FFFu, 0x3C4CCCCDu, 0xBDCCCCCDu, 0x3F800001u, 0x3AFFFFFFu,
                        0xBAFFF000u, 0x3B801000u, 0x3B803000u})));
  v.push_back(with_scale(
      make_case("bf16_params",
                "bf16 [2, 4] (W8A8_DYNAMIC params_dtype): widened exactly, then sign-extended: "
                "0x3c48 -> 0x000000003c480000, 0xbc48 -> 0xffffffffbc480000",
                {"ParamsDtypeInput", "SignExtension", "Specials"}),
      half_bits(DType::kBF16, {2, 4},
                {0x3C48, 0xBC48, 0x3F80, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x3A83})));
  v.push_back(with_scale(
      make_case("fp16_params",
                "fp16 [8]: widened exactly (0x0001 = 2^-24 -> 0x33800000, 0x7bff = 65504 -> "
                "0x477fe000), then sign-extended",
                {"ParamsDtypeInput", "SignExtension", "Specials"}),
      half_bits(DType::kF16, {8},
                {0x2A4C, 0xAA4C, 0x3C00, 0x0001, 0x8001, 0x7C00, 0xFC00, 0x7BFF})));
  // Seeded random sets: both signs; full-mantissa bit patterns; narrow dtypes.
  auto rnd = [&](const std::string& name, DType t, Shape shape, bool bits,
                 std::vector<std::string> flags) {
    flags.insert(flags.begin(), "Random");
    CaseSpec c = make_case(
        name,
        std::string(bits ? "uniform bit patterns (both signs)" : "normal scales, sigma 2^-7") +
            ", " + std::string(dtype_name(t)) + " " + shape_str(shape),
        flags);
    const uint64_t seed = case_seed(kOp, name);
    if (bits)  // fp32 only: NaN patterns in the range pass through unchanged
      c.inputs["scale"] = random_bits_tensor(t, shape, 0x38000000u, 0xBE800000u, seed);
    else
      c.inputs["scale"] = gen::float_tensor(t, shape, gen::FloatDist::normal(-7), seed, 0);
    v.push_back(std::move(c));
  };
  rnd("random_normal_7", DType::kF32, {7}, false, {"SimdTail", "SignExtension"});
  rnd("random_bits_3x33", DType::kF32, {3, 33}, true, {"SimdTail", "SignExtension"});
  rnd("random_bits_2x16x9", DType::kF32, {2, 16, 9}, true, {"SignExtension"});
  rnd("random_bf16_4x40", DType::kBF16, {4, 40}, false, {"ParamsDtypeInput", "SignExtension"});
  rnd("random_fp16_5x17", DType::kF16, {5, 17}, false, {"ParamsDtypeInput", "SimdTail"});
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W8A8_DYNAMIC scale_from_float_to_int64: scale.to(float32) bits read as int32 "
      "and sign-extended to int64 (fused MC2 w1/w2 scales). No FP19 truncation.";
  d.sources = {
      "/work/shared/seeds/000 vllm_ascend/quantization/methods/w8a8_dynamic.py "
      "scale_from_float_to_int64 [code]",
      "notes/vllm_ascend_quant.md §A W8A8_DYNAMIC MoE"};
  d.inputs = {"scale"};
  d.stages = {{"scale_fp32", false, "scale.to(torch.float32): exact widening"},
              {"scale_int64", true, "fp32 bits as int32, sign-extended to int64"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["scale_fp32"] = ref::widen_scale_to_fp32(in.at("scale"));
    out["scale_int64"] = ref::scale_from_float_to_int64(in.at("scale"));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["scale_int64"] = opt::scale_from_float_to_int64(in.at("scale"));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scale_from_float_to_int64
}  // namespace qconf::conf
