// Op: npu_trans_quant_param_decode: how the hardware golden reads an int64 quant param.
//
// deq_scale = (uint32(word) & 0xffffe000) as fp32 (19 bits), offset = bits 37..45 as a signed
// int9 (hicann/ops-nn matmul_quant_util.py u64_to_deq_scale / u64_to_offset). Every port of a
// kernel that consumes npu_trans_quant_param output (quant matmul dequant/requant) must read the
// words this way.
// Math: reference/ops/scales.cpp (ref::npu_trans_quant_param_decode), optimized/ops/scales.cpp.
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_npu_trans_quant_param_decode {

using namespace scales;

constexpr const char* kOp = "npu_trans_quant_param_decode";

std::map<std::string, Note> notes() {
  return {
      {"RoundTrip",
       {"BASIC",
        "Words made by npu_trans_quant_param (fp19_trunc) from typical scales and offsets: "
        "decoding gives the truncated scale and the int9 offset back.",
        "A port that reads the scale from the wrong bits or the offset from the wrong shift."}},
      {"HardwareReads19Bits",
       {"FUNCTIONALITY",
        "Words that carry all 32 scale bits (host API full_fp32, pack_u64_scale in the test "
        "utilities, scale_from_float_to_int64): the golden decoder masks them to 19 bits, so "
        "full_fp32 and fp19_trunc words decode to the same scale.",
        "A port that dequantizes with the full fp32 value differs by up to 2^-10 relative from "
        "the hardware."}},
      {"OffsetSignExtension",
       {"FUNCTIONALITY",
        "Offsets -256, -255, -1, 0, 1, 255 in bits 37..45: bit 45 is the int9 sign.",
        "A port that reads the offset as unsigned 9 bits turns -1 into 511."}},
      {"IgnoresOtherBits",
       {"EDGE_CASE",
        "Bits 32..36 and 46..63 (flag, garbage, or the all-ones upper word of a sign-extended "
        "negative scale from scale_from_float_to_int64) do not affect the result; such an upper "
        "word reads as offset -1.",
        "A port that reads the offset through bit 46 or uses an arithmetic shift of the whole "
        "word."}},
      {"SpecialScales",
       {"EDGE_CASE",
        "Inf/NaN/zero/subnormal patterns in the low word: the decode is a bit mask, so 0x7f800001 "
        "reads as +Inf and 0x80001fff as -0.",
        "A port that converts through a float type (quieting NaNs, flushing subnormals)."}},
      {"Uint64Input",
       {"FUNCTIONALITY", "The same words as uint64 (graph mode returns uint64): same result.",
        "A port that rejects uint64 or sign-handles it differently."}},
      {"Random",
       {"BASIC", "Seeded uniformly random 64-bit words.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Tensor words(Shape shape, const std::vector<uint64_t>& w) {
  return Tensor::from<uint64_t>(DType::kI64, std::move(shape), w);
}

uint64_t word(uint32_t scale_bits, int32_t off9, bool flag = true) {
  return static_cast<uint64_t>(scale_bits) | (flag ? kQuantParamFlag : 0) |
         ((static_cast<uint64_t>(static_cast<uint32_t>(off9)) & kQuantParamOffsetMask)
          << kQuantParamOffsetShift);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  {
    const Tensor scale =
        f32_vals({8}, {0.0123f, 0.5f, 0.00391f, 1.0f, 0.05f, 0.0007f, 0.25f, 0.01f});
    const Tensor offset =
        f32_vals({8}, {0.0f, 1.0f, -1.0f, 100.0f, -100.0f, 255.0f, -256.0f, 7.0f});
    CaseSpec c = make_case("roundtrip_fp19_trunc",
                           "npu_trans_quant_param(fp19_trunc) words of 8 scales and offsets",
                           {"RoundTrip", "OffsetSignExtension"});
    c.inputs["quant_param"] =
        ref::npu_trans_quant_param(scale, &offset, TransQuantEncoding::kFp19Trunc).quant_param;
    v.push_back(std::move(c));
    CaseSpec f = make_case("full_fp32_words_read_as_19_bits",
                           "the same scales encoded by the host API (all 32 bits): the decoded "
                           "scales equal the fp19_trunc ones",
                           {"HardwareReads19Bits", "RoundTrip"});
    f.inputs["quant_param"] =
        ref::npu_trans_quant_param(scale, &offset, TransQuantEncoding::kFullFp32).quant_param;
    v.push_back(std::move(f));
  }
  {
    CaseSpec c = make_case("offset_sign_extension",
                           "offsets -256, -255, -1, 0, 1, 255, 128, -128 with scale 1.0",
                           {"OffsetSignExtension"});
    std::vector<uint64_t> w;
    for (int32_t o : {-256, -255, -1, 0, 1, 255, 128, -128}) w.push_back(word(0x3F800000u, o));
    c.inputs["quant_param"] = words({8}, w);
    v.push_back(std::move(c));
  }
  {
    CaseSpec c =
        make_case("ignores_other_bits",
                  "flag cleared; bits 32..36 set; bits 47..63 set; the sign-extended word of -1.0 "
                  "(0xffffffffbf800000: scale -1.0, offset -1); the zero-extended one (offset 0)",
                  {"IgnoresOtherBits", "HardwareReads19Bits"});
    c.inputs["quant_param"] =
        words({6}, {word(0x3F801FFFu, 5, false), word(0x3C4CCCCDu, -7) | 0x0000001F00000000ull,
                    word(0x3E000000u, 100) | 0xFFFF800000000000ull, 0xFFFFFFFFBF800000ull,
                    0x00000000BF800000ull, 0xFFFFFFFFFFFFFFFFull});
    v.push_back(std::move(c));
  }
  {
    CaseSpec c = make_case("special_scales",
                           "low words +Inf, -Inf, 0x7fc00000, 0x7f800001 (-> +Inf), 0x80001fff "
                           "(-> -0), 0x00002000 (subnormal), 0, 0x7f7fffff",
                           {"SpecialScales"});
    std::vector<uint64_t> w;
    for (uint32_t b : {0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u, 0x80001FFFu, 0x00002000u,
                       0x00000000u, 0x7F7FFFFFu})
      w.push_back(word(b, 0));
    c.inputs["quant_param"] = words({8}, w);
    v.push_back(std::move(c));
  }
  {
    CaseSpec c = make_case("uint64_words", "the offset_sign_extension words as uint64",
                           {"Uint64Input", "OffsetSignExtension"});
    std::vector<uint64_t> w;
    for (int32_t o : {-256, -255, -1, 0, 1, 255, 128, -128}) w.push_back(word(0x3C4CCCCDu, o));
    c.inputs["quant_param"] = Tensor::from<uint64_t>(DType::kU64, {8}, w);
    v.push_back(std::move(c));
  }
  for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
           {"random_n13", {13}}, {"random_1x64", {1, 64}}, {"random_n300", {300}}}) {
    CaseSpec c = make_case(name, "uniform random 64-bit words " + shape_str(shape), {"Random"});
    c.inputs["quant_param"] =
        gen::int_tensor(DType::kI64, shape, std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max(), case_seed(kOp, name), 0);
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "Decode of an npu_trans_quant_param int64 word as the hardware golden does it: dequant "
      "scale = (low 32 bits & 0xffffe000) as fp32, offset = bits 37..45 as a signed int9.";
  d.sources = {
      "hicann/ops-nn matmul/common/tests/st/arch35/matmul_quant_util.py "
      "u64_to_deq_scale, u64_to_offset [test]",
      "notes/torch_npu_semantics.md §2"};
  d.inputs = {"quant_param"};
  d.stages = {{"dequant_scale", true, "float32: the FP19 scale the hardware multiplies by"},
              {"offset", true, "int32: the signed int9 requant offset"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    QuantParamDecoded r = ref::npu_trans_quant_param_decode(in.at("quant_param"));
    out["dequant_scale"] = std::move(r.dequant_scale);
    out["offset"] = std::move(r.offset);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    QuantParamDecoded r = opt::npu_trans_quant_param_decode(in.at("quant_param"));
    out["dequant_scale"] = std::move(r.dequant_scale);
    out["offset"] = std::move(r.offset);
  };
#endif
  // Offsets of scale-only words (special_scales) are all zero on purpose.
  d.oracle = [](const Params&, const TensorMap&, const TensorMap& ref_out) {
    std::map<std::string, Check> m;
    const Tensor& off = ref_out.at("offset");
    bool all_zero = true;
    for (int64_t i = 0; i < off.numel(); ++i) all_zero = all_zero && off.data<int32_t>()[i] == 0;
    if (all_zero) m["offset"].degenerate_ok = true;
    return m;
  };
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_trans_quant_param_decode
}  // namespace qconf::conf
