// Op: w4a8_process_scale (vllm-ascend W4A8_DYNAMIC MoE weight scales -> int64).
//
// Variant axis `scale_rounding`: fp16 (PR #2392, seed 001: (scale * per_group_scale) rounded to
// fp16 and back) and none (HEAD w4a8.py _process_scale: the fp32 bits as they are). Either way
// the fp32 bits are read as uint32 and zero-extended into int64 (the interleaved uint32 layout).
// Math: reference/ops/scales.cpp (ref::w4a8_process_scale), optimized/ops/scales.cpp.
#include <cmath>

#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_process_scale {

using namespace scales;

constexpr const char* kOp = "w4a8_process_scale";

std::map<std::string, Note> notes() {
  return {
      {"Fp16Rounding",
       {"DIVERGENCE",
        "Scales that are not fp16 numbers (0.0123, 0.00391, ...): PR #2392 rounds them to fp16 "
        "(RNE) before taking the bits; HEAD keeps the fp32 bits.",
        "A port of one generation run against the other's checkpoints/kernels differs in the "
        "low 13 bits of every such scale (relative error up to 2^-11)."}},
      {"Fp16ExactScales",
       {"BASIC", "Scales that are fp16 numbers: both generations give the same words.",
        "A port that changes exactly representable scales."}},
      {"ZeroExtension",
       {"DIVERGENCE",
        "The bits are viewed as uint32 (numpy dtype=np.uint32) and widened to int64 (or placed "
        "at even positions of a zeroed uint32 array): the upper word is always 0, also for "
        "negative scales and -0 (0xbf000000 -> 0x00000000bf000000).",
        "A port that reuses scale_from_float_to_int64 (int32 view, sign extension) sets the "
        "upper word of negative scales to all ones."}},
      {"InterleavedLayout",
       {"FUNCTIONALITY",
        "PR #2392 builds a uint32 [E, G, 2N] array with the scale bits at even positions and "
        "zeros at odd ones, then views it as int64 [E, G, N] (little-endian): element n of the "
        "output is uint32 element 2n, zero-extended. Checked through the interleaved_u32 stage.",
        "A port that puts the bits at odd positions (upper word) or views [E, G, N] as "
        "[E, G, 2N] the other way."}},
      {"PerGroupProduct",
       {"FUNCTIONALITY",
        "scale [E, 1, N] times per_group_scale [E, G, N], broadcast over G, in torch's promoted "
        "dtype: bf16 * bf16 is computed in fp32 and rounded to bf16, fp32 * bf16 is an fp32 "
        "product; then rounded to fp16.",
        "A port that multiplies in fp32 and rounds once to fp16 (skipping the bf16 rounding) "
        "differs where the bf16 product rounding matters."}},
      {"Fp16Ties",
       {"EDGE_CASE",
        "fp32 values exactly halfway between two fp16 numbers (1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> "
        "1 + 2^-9): .to(torch.float16) rounds to even; ties are deterministic, so EXACT.",
        "A port that rounds half up or truncates."}},
      {"Fp16Range",
       {"EDGE_CASE",
        "Scales outside fp16's normal range: 70000 and 65520 (the tie above 65504) overflow to "
        "Inf, 65519 rounds to 65504, 1e-6 becomes an fp16 subnormal (multiple of 2^-24), 2^-25 "
        "(a tie) rounds to 0, 1.5 * 2^-24 to 2^-23. Whether the NPU cast keeps fp16 subnormals "
        "is not documented [inf]: IEEE is modelled.",
        "A port that saturates to 65504 or flushes subnormals."}},
      {"ParamsDtypeScale",
       {"FUNCTIONALITY",
        "bf16 scales (LLM-Compressor checkpoints and the PR #2392 params): widened exactly to "
        "fp32 (HEAD) or converted to fp16 (PR #2392).",
        "A port that reads the bf16 bits directly."}},
      {"Random",
       {"BASIC",
        "Seeded positive scales: full-mantissa fp32 bit patterns in [2^-14, 2^-2), or bf16/fp16 "
        "grids of multiples of 2^-12 / 2^-14.",
        "General coverage; the seed is derived from the case id."}},
      {"SimdTail",
       {"EDGE_CASE", "N not a multiple of common vector widths.",
        "Tail loops that skip or over-read elements."}},
  };
}

CaseSpec per_channel(const std::string& name, const std::string& comment,
                     std::vector<std::string> flags, const std::string& rounding, Tensor scale) {
  CaseSpec c = make_case(name + "_" + rounding, comment + " [scale_rounding " + rounding + "]",
                         std::move(flags), Params{{"scale_rounding", rounding}});
  c.inputs["scale"] = std::move(scale);
  return c;
}

CaseSpec per_group(const std::string& name, const std::string& comment,
                   std::vector<std::string> flags, Tensor scale, Tensor pgs) {
  CaseSpec c = make_case(name, comment, std::move(flags), Params{{"scale_rounding", "fp16"}});
  c.inputs["scale"] = std::move(scale);
  c.inputs["per_group_scale"] = std::move(pgs);
  return c;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const Tensor not_fp16 = f32_vals(
      {2, 1, 8}, {0.0123f, 0.00391f, 0.0007f, 0.05f, 0.3333333f, 0.0001234f, 0.0191f, 0.00873f,
                  0.0456f, 0.0029f, 0.1f, 0.00123f, 0.0678f, 0.0155f, 0.0044f, 0.03f});
  const Tensor fp16_exact = f32_vals(
      {1, 1, 8}, {0.0078125f, 0.375f, 0.001953125f, 3.0f, 0.0625f, 1.5f, 0.75f, 0.0009765625f});
  const Tensor negative = f32_vals({1, 1, 4}, {-0.5f, -0.0123f, -0.0f, 0.25f});
  const Tensor bf16_scale =
      half_vals(DType::kBF16, {2, 1, 8},
                {0.0123f, 0.00391f, 0.0007f, 0.05f, 0.3333333f, 0.0001234f, 0.0191f, 0.00873f,
                 0.0456f, 0.0029f, 0.1f, 0.00123f, 0.0678f, 0.0155f, 0.0044f, 0.03f});
  for (const std::string r : {"fp16", "none"}) {
    v.push_back(per_channel("per_channel_not_fp16_exact",
                            "fp32 scales [2, 1, 8] that are not fp16 numbers",
                            {"Fp16Rounding", "ZeroExtension", "InterleavedLayout"}, r, not_fp16));
    v.push_back(per_channel("per_channel_fp16_exact", "fp32 scales that are fp16 numbers",
                            {"Fp16ExactScales", "InterleavedLayout"}, r, fp16_exact));
    v.push_back(per_channel("negative_scales_zero_extended",
                            "-0.5 -> 0x00000000bf000000, -0 -> 0x0000000080000000",
                            {"ZeroExtension"}, r, negative));
    v.push_back(per_channel("bf16_scales", "bf16 [2, 1, 8] scales (LLM-Compressor format)",
                            {"ParamsDtypeScale", "ZeroExtension"}, r, bf16_scale));
  }
  v.push_back(per_channel(
      "fp16_ties",
      "0x3f801000 (1 + 2^-11) -> fp16 1.0; 0x3f803000 -> 1 + 2^-9; negatives; 0x3b801000 -> "
      "2^-8 (even)",
      {"Fp16Ties", "Fp16Rounding", "ZeroExtension"}, "fp16",
      f32_bits({1, 1, 6},
               {0x3F801000u, 0x3F803000u, 0xBF801000u, 0xBF803000u, 0x3B801000u, 0x3B803000u})));
  v.push_back(per_channel(
      "fp16_range", "70000, 65520, 65519, 1e-6, 1e-8, 2^-25, 1.5 * 2^-24, 6.1e-5",
      {"Fp16Range", "Fp16Rounding"}, "fp16",
      f32_vals({1, 1, 8}, {70000.0f, 65520.0f, 65519.0f, 1e-6f, 1e-8f, 2.98023223876953125e-8f,
                           8.94069671630859375e-8f, 6.1e-5f})));
  v.push_back(per_group(
      "per_group_bf16",
      "PR #2392 params: bf16 scale [2, 1, 8] * bf16 per_group_scale [2, 2, 8] (bf16 product), "
      "then fp16",
      {"PerGroupProduct", "ParamsDtypeScale", "InterleavedLayout"}, bf16_scale,
      half_vals(DType::kBF16, {2, 2, 8},
                {1.0f,  1.37f, 0.71f, 2.3f,  0.93f, 1.11f, 0.5f,  1.9f,  1.21f, 0.83f, 1.6f,
                 0.77f, 1.05f, 2.9f,  0.61f, 1.33f, 0.97f, 1.45f, 0.88f, 1.72f, 0.66f, 1.01f,
                 1.29f, 0.55f, 2.2f,  1.14f, 0.79f, 1.88f, 0.91f, 1.57f, 0.69f, 1.03f})));
  v.push_back(per_group(
      "per_group_fp32", "fp32 scale [1, 1, 8] * fp32 per_group_scale [1, 3, 8], then fp16",
      {"PerGroupProduct", "Fp16Rounding"},
      f32_vals({1, 1, 8},
               {0.0123f, 0.00391f, 0.0007f, 0.05f, 0.3333333f, 0.0001234f, 0.0191f, 0.00873f}),
      f32_vals({1, 3, 8}, {1.0f,  1.37f, 0.71f, 2.3f,  0.93f, 1.11f, 0.5f,  1.9f,
                           1.21f, 0.83f, 1.6f,  0.77f, 1.05f, 2.9f,  0.61f, 1.33f,
                           0.97f, 1.45f, 0.88f, 1.72f, 0.66f, 1.01f, 1.29f, 0.55f})));
  v.push_back(per_group(
      "per_group_mixed_dtypes",
      "fp32 scale * bf16 per_group_scale: torch promotes to an fp32 product", {"PerGroupProduct"},
      f32_vals({1, 1, 4}, {0.0123f, 0.00391f, 0.0007f, 0.05f}),
      half_vals(DType::kBF16, {1, 2, 4}, {1.37f, 0.71f, 2.3f, 0.93f, 1.11f, 0.5f, 1.9f, 1.21f})));
  // Seeded random sets.
  auto add_random = [&](const std::string& name, const std::string& rounding, DType t,
                        Shape scale_shape, std::optional<Shape> pgs_shape,
                        std::vector<std::string> flags) {
    flags.insert(flags.begin(), "Random");
    CaseSpec c = make_case(
        name,
        "random " + std::string(dtype_name(t)) + " scales " + shape_str(scale_shape) +
            (pgs_shape ? " and per-group scales " + shape_str(*pgs_shape) : std::string()) +
            " [scale_rounding " + rounding + "]",
        flags, Params{{"scale_rounding", rounding}});
    const uint64_t seed = case_seed(kOp, name);
    auto gen_scale = [&](const Shape& s, uint64_t stream, bool group) {
      if (t == DType::kF32)
        return group ? random_bits_tensor(t, s, 0x3F000000u, 0x3FFFFFFFu, seed, stream)
                     : random_bits_tensor(t, s, 0x38800000u, 0x3E7FFFFFu, seed, stream);
      return group ? gen::float_tensor(t, s, gen::FloatDist::grid(64, 255, -7), seed, stream)
                   : gen::float_tensor(t, s,
                                       gen::FloatDist::grid(1, 255, t == DType::kBF16 ? -12 : -14),
                                       seed, stream);
    };
    c.inputs["scale"] = gen_scale(scale_shape, 0, false);
    if (pgs_shape) c.inputs["per_group_scale"] = gen_scale(*pgs_shape, 1, true);
    v.push_back(std::move(c));
  };
  add_random("random_fp32_per_channel_fp16", "fp16", DType::kF32, {3, 1, 40}, std::nullopt,
             {"Fp16Rounding"});
  add_random("random_fp32_per_channel_none", "none", DType::kF32, {3, 1, 40}, std::nullopt,
             {"Fp16Rounding"});
  add_random("random_bf16_per_group", "fp16", DType::kBF16, {2, 1, 24}, Shape{2, 3, 24},
             {"PerGroupProduct", "ParamsDtypeScale"});
  add_random("random_fp16_per_group", "fp16", DType::kF16, {1, 1, 17}, Shape{1, 4, 17},
             {"PerGroupProduct", "SimdTail"});
  add_random("random_fp32_per_group", "fp16", DType::kF32, {2, 1, 33}, Shape{2, 2, 33},
             {"PerGroupProduct", "Fp16Rounding", "SimdTail"});
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8_DYNAMIC MoE weight scale -> int64: (scale [E,1,N] * per_group_scale "
      "[E,G,N]) rounded to fp16 and back (PR #2392) or the fp32 scale as is (HEAD); the fp32 "
      "bits as uint32, zero-extended to int64 [E,G,N].";
  d.sources = {
      "/work/shared/seeds/001 vllm-ascend PR #2392 quantization/w4a8_dynamic.py "
      "process_scale [code]",
      "vllm-project/vllm-ascend quantization/methods/w4a8.py @01697b3e _process_scale "
      "[code]",
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE"};
  d.inputs = {"scale", "per_group_scale"};
  d.stages = {
      {"product", false, "scale * per_group_scale in the promoted dtype (with per_group_scale)"},
      {"scale_fp16", false, ".to(torch.float16) (scale_rounding fp16)"},
      {"scale_fp32", false, "the float32 scale whose bits are stored"},
      {"interleaved_u32", false, "uint32 [E, G, 2N]: bits at even positions, 0 at odd"},
      {"scale_int64", true, "int64 [E, G, N]: the uint32 bits zero-extended"}};
  d.variants = {{"scale_rounding",
                 {"fp16", "none"},
                 "fp16: vllm-ascend PR #2392 (Aug 2025) rounds scale * per_group_scale to fp16; "
                 "none: vllm-ascend HEAD (per-channel only) keeps the fp32 bits"}};
  d.notes = notes();
  auto rounding_of = [](const Params& p) {
    return parse_w4a8_scale_rounding(param_str(p, "scale_rounding", "fp16"));
  };
  d.reference = [rounding_of](const Params& p, const TensorMap& in, TensorMap& out) {
    auto it = in.find("per_group_scale");
    W4a8ProcessScaleResult r = ref::w4a8_process_scale(
        in.at("scale"), it == in.end() ? nullptr : &it->second, rounding_of(p));
    if (r.product) out["product"] = std::move(*r.product);
    if (r.scale_fp16) out["scale_fp16"] = std::move(*r.scale_fp16);
    out["scale_fp32"] = std::move(r.scale_fp32);
    out["interleaved_u32"] = std::move(r.interleaved_u32);
    out["scale_int64"] = std::move(r.scale_int64);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [rounding_of](const Params& p, const TensorMap& in, TensorMap& out) {
    auto it = in.find("per_group_scale");
    out["scale_int64"] = opt::w4a8_process_scale(
        in.at("scale"), it == in.end() ? nullptr : &it->second, rounding_of(p));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_process_scale
}  // namespace qconf::conf
