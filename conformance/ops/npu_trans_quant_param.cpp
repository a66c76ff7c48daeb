// Op: npu_trans_quant_param (torch_npu / aclnnTransQuantParamV2 kernel; older host API
// aclnnTransQuantParam as variant full_fp32).
//
// fp32 scale (+ optional fp32 offset) -> int64 words: FP19 scale in bits 0..31, flag bit 46, int9
// offset in bits 37..45. Variant axis `encoding`: fp19_trunc (round_mode=0, default), fp19_rne
// (round_mode=1), full_fp32 (host TransQuantScaleToM1 + TransQuantOffsetToToM1). Every pair of
// encodings is separated by some named vector (see the DIVERGENCE flags).
// Math: reference/ops/scales.cpp (ref::npu_trans_quant_param), optimized/ops/scales.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_npu_trans_quant_param {

using namespace scales;

constexpr const char* kOp = "npu_trans_quant_param";

std::map<std::string, Note> notes() {
  return {
      {"TypicalScales",
       {"BASIC",
        "Ordinary per-channel dequant scales (fp32, all mantissa bits used): the word is "
        "(bits & 0xffffe000) | 1 << 46 for fp19_trunc.",
        "A port that stores the fp32 value, or forgets the flag bit 46."}},
      {"Fp19Truncation",
       {"DIVERGENCE",
        "Low 13 mantissa bits non-zero, below half an FP19 ulp: fp19_trunc and fp19_rne give "
        "the same field, full_fp32 keeps the low bits.",
        "A port that keeps all 32 bits (the older host API) differs in the low word; the "
        "hardware golden decodes only 19 bits, so the dequantized value is the same [inf]."}},
      {"RneAboveHalf",
       {"DIVERGENCE",
        "Low 13 bits above half an FP19 ulp (0x1800, 0x1fff): round_mode=1 rounds up, "
        "round_mode=0 truncates.",
        "A port that truncates when asked to round (or rounds by default) is off by one FP19 "
        "ulp: a relative error of up to 2^-10 in every dequantized output of the channel."}},
      {"RneTies",
       {"DIVERGENCE",
        "Low 13 bits exactly 0x1000 (a tie): round_mode=1 goes to the even FP19 mantissa: down "
        "when bit 13 is 0, up when it is 1; truncation always goes down.",
        "A port whose RNE rounds ties up (round-half-up: + 0x1000 then mask) differs on the "
        "even-lsb ties."}},
      {"CarryIntoExponent",
       {"DIVERGENCE",
        "Mantissa all ones (or a tie with an all-ones kept mantissa): rounding up carries into "
        "the exponent (0x3fffffff -> 2.0 = 0x40000000), and from the largest binade to Inf "
        "(0x7f7fffff -> 0x7f800000).",
        "A port that rounds the mantissa field alone (wrapping it to 0 without incrementing the "
        "exponent) halves the scale; one that saturates instead of reaching Inf differs at the "
        "top."}},
      {"KernelFlushesSubnormals",
       {"EDGE_CASE",
        "fp32 subnormal scales. round_mode=1: the kernel maps an exponent field of 0 to a signed "
        "zero (an IEEE round-to-nearest, e.g. qconf::num::fp32_bits_rne_to_fp19, would give "
        "0x00800000 for 0x007fffff); round_mode=0 just masks; full_fp32 keeps them.",
        "A port that uses an IEEE conversion for round_mode=1 differs on subnormal scales."}},
      {"NaNLowPayload",
       {"EDGE_CASE",
        "NaN and Inf scales (the aclnn doc forbids them; the kernel code defines the result): a "
        "NaN whose payload lies only in the low 13 bits (0x7f800001) becomes Inf under both FP19 "
        "encodings (the kernel truncates Inf/NaN without setting a quiet bit); full_fp32 keeps "
        "the NaN.",
        "A port that quiets NaNs or canonicalises them gives other words."}},
      {"SignedScale",
       {"EDGE_CASE", "Negative scales and -0: the sign bit is kept in bit 31.",
        "A port that takes |scale| or sign-extends into the upper word."}},
      {"OffsetRintTies",
       {"DIVERGENCE",
        "Offsets on .5 ties: the kernel casts with CAST_RINT (half to even: 0.5 -> 0, 2.5 -> 2, "
        "254.5 -> 254); the host API full_fp32 uses C round() (half away from zero: 0.5 -> 1, "
        "2.5 -> 3). Ties are deterministic, so the check is EXACT.",
        "A port that rounds half away (std::round, Python's round() is half-even) shifts the "
        "int8 requant output by one for these offsets."}},
      {"OffsetSaturation",
       {"EDGE_CASE",
        "Offsets outside [-256, 255] clamp after rounding: 255.5 -> 256 -> 255, -256.5 -> -256, "
        "300 -> 255, -300 -> -256; values beyond int32 and +-Inf saturate first (kernel "
        "encodings only: the host API's cast is undefined there).",
        "A port that wraps to 9 bits instead of clamping turns 300 into 44."}},
      {"OffsetTwosComplement",
       {"FUNCTIONALITY",
        "Negative offsets are stored as 9-bit two's complement in bits 37..45 (-1 -> 0x1ff, "
        "-256 -> 0x100), without touching bit 46 or the scale.",
        "A port that sign-extends the int9 into bits 46..63 corrupts the flag."}},
      {"InferredNaNOffset",
       {"EDGE_CASE",
        "NaN offset -> 0: the notes §0 float->int rule (NaN -> 0), INFERRED [inf] for the vector "
        "Cast of the kernel (the aclnn doc forbids NaN/Inf offsets). Kernel encodings only.",
        "A port that turns NaN into INT_MIN (x86 cvttss2si) stores -256."}},
      {"Broadcast",
       {"DIVERGENCE",
        "A length-1 scale or offset with a longer partner. The kernel broadcasts it "
        "(CalScaleValueShapeOne, CalOffsetValueShapeOne); the host API full_fp32 writes it to "
        "element 0 only (its loops stop at scaleSize / offsetSize), leaving the other words "
        "without scale, flag or offset.",
        "A port following the host API gives zero scales (or zero offsets) to every channel "
        "but the first."}},
      {"Shape1xN",
       {"FUNCTIONALITY", "2-D scale and offset [1, n]: the output keeps the [1, n] shape.",
        "A port that flattens the output or rejects the 2-D form."}},
      {"NoOffset",
       {"BASIC", "No offset: bits 37..45 are zero.", "A port that writes garbage offset bits."}},
      {"SimdTail",
       {"EDGE_CASE", "Lengths that are not a multiple of common vector widths.",
        "Tail loops that skip or over-read elements."}},
      {"Random",
       {"BASIC",
        "Seeded scales with uniformly random fp32 bit patterns in [2^-13, 0.25) (every "
        "mantissa bit random, so truncation and rounding differ often) and, where present, "
        "offsets on the half-integer grid in [-300, 300] (ties included).",
        "General coverage; the seed is derived from the case id."}},
  };
}

const std::vector<std::string> kEncodings = {"fp19_trunc", "fp19_rne", "full_fp32"};

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  // One named vector per encoding (or per kernel encoding).
  auto each = [&](const std::string& name, const std::string& comment,
                  std::vector<std::string> flags, const Tensor& scale,
                  const std::optional<Tensor>& offset, bool kernel_only = false) {
    for (const std::string& enc : kEncodings) {
      if (kernel_only && enc == "full_fp32") continue;
      CaseSpec c = make_case(name + "_" + enc, comment + " [encoding " + enc + "]", flags,
                             Params{{"encoding", enc}});
      c.inputs["scale"] = scale;
      if (offset) c.inputs["offset"] = *offset;
      v.push_back(std::move(c));
    }
  };
  each("typical_scales", "per-channel scales 0.0123.., 0.00391.., ...; no offset",
       {"TypicalScales", "NoOffset"},
       f32_vals({8}, {0.0123f, 0.00391f, 0.0007f, 0.05f, 1.0f, 0.3333333f, 0.0001234f, 2.5e-5f}),
       std::nullopt);
  each("low_bits_below_half",
       "low 13 bits 0x0001, 0x0ccd, 0x0fff, 0x0800: trunc == rne, full_fp32 keeps them",
       {"Fp19Truncation"}, f32_bits({4}, {0x3F800001u, 0x3C4CCCCDu, 0x3F800FFFu, 0x3B000800u}),
       std::nullopt);
  each("low_bits_above_half",
       "low 13 bits 0x1800, 0x1fff, 0x1001, 0x1ccd: rne rounds up, trunc down",
       {"RneAboveHalf", "Fp19Truncation"},
       f32_bits({4}, {0x3F801800u, 0x3C001FFFu, 0x3F801001u, 0x3DCDDCCDu}), std::nullopt);
  each("ties_even_and_odd",
       "low 13 bits exactly 0x1000: 0x3f801000 (even lsb: rne down), 0x3f803000 (odd lsb: rne "
       "up to 0x3f804000), and their negatives",
       {"RneTies", "SignedScale"},
       f32_bits({4}, {0x3F801000u, 0x3F803000u, 0xBF801000u, 0xBF803000u}), std::nullopt);
  each(
      "carry_into_exponent",
      "0x3fffffff and the tie 0x3ffff000 -> 2.0 (0x40000000) under rne; 0x7f7fffff and the tie "
      "0xff7ff000 -> +Inf / -Inf; the subnormal tie 0x007ff000 is flushed to 0 by the kernel "
      "(an IEEE RNE would carry it to 0x00800000)",
      {"CarryIntoExponent", "SignedScale", "KernelFlushesSubnormals"},
      f32_bits({6}, {0x3FFFFFFFu, 0x3FFFF000u, 0xBC7FFFFFu, 0x7F7FFFFFu, 0xFF7FF000u, 0x007FF000u}),
      std::nullopt);
  each("subnormal_scales",
       "fp32 subnormals 0x00001fff, 0x007fffff, 0x80400000, 0x00003000: rne flushes to +-0",
       {"KernelFlushesSubnormals", "SignedScale"},
       f32_bits({4}, {0x00001FFFu, 0x007FFFFFu, 0x80400000u, 0x00003000u}), std::nullopt);
  each(
      "specials",
      "+0, -0, +Inf, -Inf, qNaN 0x7fc00000, NaN 0x7f800001 (payload only in the low 13 bits)",
      {"NaNLowPayload", "SignedScale"},
      f32_bits({6}, {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u}),
      std::nullopt);
  // FP19-exact scales (low 13 bits zero): the offset vectors separate only by their offsets.
  const Tensor eight_scales =
      f32_vals({8}, {0.5f, 0.25f, 1.0f, 0.125f, 0.0078125f, 0.375f, 0.75f, 3.0f});
  each("offset_rint_ties",
       "offsets 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 254.5, -255.5: RINT gives 0, 0, 2, -2, 2, -2, "
       "254, -256; C round() gives 1, -1, 2, -2, 3, -3, 255, -256",
       {"OffsetRintTies", "OffsetTwosComplement"}, eight_scales,
       f32_vals({8}, {0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 254.5f, -255.5f}));
  each("offset_saturation",
       "offsets 255.5, -256.5, 300, -300, 255.49, -256.49, 255, -256 -> 255, -256, 255, -256, "
       "255, -256, 255, -256",
       {"OffsetSaturation", "OffsetTwosComplement"}, eight_scales,
       f32_vals({8}, {255.5f, -256.5f, 300.0f, -300.0f, 255.49f, -256.49f, 255.0f, -256.0f}));
  each("offset_huge_and_inf",
       "offsets 1e10, -1e10, +Inf, -Inf: saturate to 255 / -256 (kernel encodings only)",
       {"OffsetSaturation"}, f32_vals({4}, {0.5f, 0.25f, 0.125f, 1.0f}),
       f32_bits({4}, {bits_of(1e10f), bits_of(-1e10f), 0x7F800000u, 0xFF800000u}), true);
  each("offset_nan_inferred", "offsets +NaN, -NaN, 3, -1 -> 0, 0, 3, -1 (NaN -> 0 inferred)",
       {"InferredNaNOffset", "OffsetTwosComplement"}, f32_vals({4}, {0.5f, 0.25f, 0.125f, 1.0f}),
       f32_bits({4}, {0x7FC00000u, 0xFFC00000u, bits_of(3.0f), bits_of(-1.0f)}), true);
  each("offset_length1_broadcast",
       "scale [8], offset [1] = -3: the kernel gives every word offset -3; full_fp32 only word 0",
       {"Broadcast", "OffsetTwosComplement"}, eight_scales, f32_vals({1}, {-3.0f}));
  each("scale_length1_broadcast",
       "scale [1] = 0.0123 (low bits set), offset [8]: the kernel broadcasts the scale; "
       "full_fp32 writes scale and flag to word 0 only",
       {"Broadcast", "Fp19Truncation"}, f32_vals({1}, {0.0123f}),
       f32_vals({8}, {-4.0f, -3.0f, -2.0f, -1.0f, 0.0f, 1.0f, 2.0f, 3.0f}));
  each("shape_1xn", "scale and offset [1, 8]: output [1, 8]", {"Shape1xN", "Fp19Truncation"},
       f32_bits({1, 8}, {0x3C4CCCCDu, 0x3F801800u, 0x3F803000u, 0x3B000001u, 0x3E000000u,
                         0x3C001FFFu, 0x3D000FFFu, 0x3A800800u}),
       f32_vals({1, 8}, {0.0f, 1.0f, -1.0f, 127.0f, -128.0f, 255.0f, -256.0f, 7.5f}));
  // Seeded random sets, every encoding.
  struct R {
    std::string name;
    Shape shape;
    bool offset;
  };
  for (const R& r : std::vector<R>{{"random_n17", {17}, false},
                                   {"random_n64_offset", {64}, true},
                                   {"random_1x40_offset", {1, 40}, true},
                                   {"random_n203_offset", {203}, true}}) {
    for (const std::string& enc : kEncodings) {
      const std::string name = r.name + "_" + enc;
      std::vector<std::string> flags = {"Random"};
      if (r.shape.back() % 16 != 0) flags.push_back("SimdTail");
      if (r.shape.size() == 2) flags.push_back("Shape1xN");
      CaseSpec c = make_case(name,
                             "random scales" + std::string(r.offset ? " and offsets " : " ") +
                                 shape_str(r.shape) + " [encoding " + enc + "]",
                             flags, Params{{"encoding", enc}});
      // Same inputs for every encoding: the seed comes from the vector's name, not the case's.
      const uint64_t seed = case_seed(kOp, r.name);
      c.inputs["scale"] = random_bits_tensor(DType::kF32, r.shape, 0x39000000u, 0x3E7FFFFFu, seed);
      if (r.offset)
        c.inputs["offset"] =
            gen::float_tensor(DType::kF32, r.shape, gen::FloatDist::grid(-600, 600, -1), seed, 1);
      v.push_back(std::move(c));
    }
  }
  return v;
}

TransQuantEncoding encoding_of(const Params& p) {
  return parse_trans_quant_encoding(param_str(p, "encoding", "fp19_trunc"));
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_trans_quant_param(scale, offset=None, round_mode=0): fp32 [t] or [1, n] -> "
      "int64 words (bits & 0xffffe000 | 1 << 46, RNE to FP19 for round_mode=1, int9 offset "
      "clamp(RINT(offset), -256, 255) in bits 37..45). Variant full_fp32: the older host API "
      "aclnnTransQuantParam (all 32 scale bits, C round() offsets, no broadcasting).";
  d.sources = {
      "notes/torch_npu_semantics.md §0, §2",
      "hicann/ops-nn quant/trans_quant_param_v2/op_kernel/trans_quant_param_v2.h "
      "CalQuantPreScaleValue, CalOffsetValueShapeOne, SetOffsetValue [code]",
      "hicann/ops-nn quant/trans_quant_param/op_host/op_api/quant_util.cpp TransQuantScaleToM1, "
      "TransQuantOffsetToToM1; aclnn_trans_quant_param.cpp [code]",
      "hicann/ops-nn quant/trans_quant_param/docs/aclnnTransQuantParam.md, "
      "trans_quant_param_v2/docs/aclnnTransQuantParamV2.md [doc]",
      "Ascend/op-plugin TransQuantParamKernelNpuOpApi.cpp (output shape) [code]"};
  d.inputs = {"scale", "offset"};
  d.stages = {{"scale_field", false, "uint32: the encoded scale (the word's low 32 bits)"},
              {"offset_int9", false, "int32: the clamped, rounded offset (when given)"},
              {"quant_param", true, "int64 words"}};
  d.variants = {{"encoding",
                 {"fp19_trunc", "fp19_rne", "full_fp32"},
                 "fp19_trunc: kernel round_mode=0 (mask 0xffffe000); fp19_rne: kernel round_mode=1 "
                 "(RNE to 10 mantissa bits, subnormals flushed, Inf/NaN truncated); full_fp32: "
                 "host API aclnnTransQuantParam (TransQuantScaleToM1 keeps all 32 bits, offsets "
                 "by C round(), length-1 inputs not broadcast)"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    auto it = in.find("offset");
    TransQuantParamResult r = ref::npu_trans_quant_param(
        in.at("scale"), it == in.end() ? nullptr : &it->second, encoding_of(p));
    out["scale_field"] = std::move(r.scale_field);
    if (r.offset_int9) out["offset_int9"] = std::move(*r.offset_int9);
    out["quant_param"] = std::move(r.quant_param);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    auto it = in.find("offset");
    out["quant_param"] = opt::npu_trans_quant_param(
        in.at("scale"), it == in.end() ? nullptr : &it->second, encoding_of(p));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_trans_quant_param
}  // namespace qconf::conf
