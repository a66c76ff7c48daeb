// identify_format: words produced by each documented encoding (through the reference op) are
// identified as exactly that encoding on inputs built to separate every pair; tampered words
// are "none"; inputs or words that cannot separate some encodings are "ambiguous".
#include "qconf/conformance/identify_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "qconf/ops/int4pack.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using namespace qconf;
using namespace qconf::conf;

uint64_t seed(const char* s) { return rng::seed_from_string(s); }

// int8 [8, 24] in [-20, 20]: values outside [-8, 7] separate wrap / saturate / clamp / carry;
// 8 != 24 separates packed_dim 0 and 1.
Tensor weight_2d() { return gen::int_tensor(DType::kI8, {8, 24}, -20, 20, seed("idf_w2d"), 0); }
Tensor as_i32(const Tensor& t) {
  Tensor o(DType::kI32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) o.data<int32_t>()[i] = static_cast<int32_t>(t.int_at(i));
  return o;
}
Tensor clamp4(const Tensor& t) { return as_i32(ref::vllm_ascend_clamp_int4(t)); }

// fp32 scales, bits chosen so that every pair of scale encodings differs on some element:
//   0xBF2AAAAB  negative (sign- vs zero-extension), not an fp16 value
//   0x3F801800  low 13 bits 0x1800 above the half-way point (trunc vs RNE)
//   0x3C23D70A  0.01f, low bits nonzero (FP19 vs full fp32)
Tensor scales_separating() {
  return Tensor::from<uint32_t>(DType::kF32, {3}, {0xBF2AAAABu, 0x3F801800u, 0x3C23D70Au});
}

FormatIdentification run(const Tensor& produced, const Tensor* input,
                         const Tensor* offset = nullptr) {
  return identify_format(produced, input, offset);
}

void expect_identified(const Tensor& produced, const Tensor& input, const std::string& name,
                       const Tensor* offset = nullptr) {
  const FormatIdentification id = run(produced, &input, offset);
  EXPECT_EQ(id.outcome, FormatOutcome::kIdentified) << format_identification_report(id);
  EXPECT_THAT(id.remaining, ElementsAre(name)) << format_identification_report(id);
}

TEST(IdentifyFormat, EveryWeightPackingIsIdentifiedAsItselfOnASeparatingWeight) {
  const Tensor w = weight_2d();
  expect_identified(ref::npu_convert_weight_to_int4pack(as_i32(w)), w,
                    "npu_convert_weight_to_int4pack");
  expect_identified(ref::npu_convert_weight_to_int4pack(clamp4(w)), w,
                    "npu_quantize_quint4x2_layout");
  expect_identified(ref::vllm_ascend_pack_int4_to_int32(w), w, "vllm_ascend_pack_int4_to_int32");
  for (int bits : {4, 8})
    for (int dim : {0, 1})
      expect_identified(ref::ct_pack_to_int32(w, bits, dim), w,
                        "ct_pack_to_int32(num_bits=" + std::to_string(bits) +
                            ", packed_dim=" + std::to_string(dim) + ")");
}

TEST(IdentifyFormat, W4a8PackingsAreIdentifiedOn3dWeights) {
  const Tensor w = gen::int_tensor(DType::kI8, {2, 16, 8}, -8, 7, seed("idf_w3d"), 0);
  expect_identified(ref::w4a8_modelslim_pack(w), w, "w4a8_modelslim_pack");
  expect_identified(ref::w4a8_llmcompressor_pack(w), w, "w4a8_llmcompressor_pack");
}

TEST(IdentifyFormat, W4a16ChainIsIdentifiedFromTheCompressedTensorsWords) {
  const Tensor p =
      gen::int_tensor(DType::kI32, {2, 16, 3}, INT32_MIN, INT32_MAX, seed("idf_w4a16"), 0);
  expect_identified(ref::w4a16_ct_repack_chain(p), p, "w4a16_ct_repack_chain");
}

TEST(IdentifyFormat, EveryScaleEncodingIsIdentifiedAsItselfOnSeparatingScales) {
  const Tensor s = scales_separating();
  expect_identified(ref::scale_from_float_to_int64(s), s, "scale_from_float_to_int64");
  for (auto enc : {TransQuantEncoding::kFp19Trunc, TransQuantEncoding::kFp19Rne,
                   TransQuantEncoding::kFullFp32})
    expect_identified(
        ref::npu_trans_quant_param(s, nullptr, enc).quant_param, s,
        "npu_trans_quant_param(encoding=" + std::string(trans_quant_encoding_name(enc)) + ")");
  for (auto r : {W4a8ScaleRounding::kFp16, W4a8ScaleRounding::kNone})
    expect_identified(
        ref::w4a8_process_scale(
            Tensor::from<uint32_t>(DType::kF32, {1, 1, 3}, s.to_vector<uint32_t>()), nullptr, r)
            .scale_int64,
        s, "w4a8_process_scale(scale_rounding=" + std::string(w4a8_scale_rounding_name(r)) + ")");
}

TEST(IdentifyFormat, TransQuantParamWithOffsetsIsIdentifiedOnlyWhenTheOffsetsAreGiven) {
  const Tensor s = scales_separating();
  const Tensor off = Tensor::from<float>({3}, {-3.0f, 17.0f, 300.0f});
  const Tensor words =
      ref::npu_trans_quant_param(s, &off, TransQuantEncoding::kFp19Rne).quant_param;
  expect_identified(words, s, "npu_trans_quant_param(encoding=fp19_rne)", &off);
  const FormatIdentification without = run(words, &s);
  EXPECT_EQ(without.outcome, FormatOutcome::kNone);
  EXPECT_THAT(format_identification_report(without), HasSubstr("--offset"));
}

TEST(IdentifyFormat, ARoundingTieSeparatesTruncationFromRneOnlyWhenBit13IsSet) {
  // 0x3F803000: low 13 bits are the tie 0x1000, bit 13 set: RNE rounds up to 0x3F804000.
  const Tensor odd = Tensor::from<uint32_t>(DType::kF32, {1}, {0x3F803000u});
  expect_identified(
      ref::npu_trans_quant_param(odd, nullptr, TransQuantEncoding::kFp19Rne).quant_param, odd,
      "npu_trans_quant_param(encoding=fp19_rne)");
  expect_identified(
      ref::npu_trans_quant_param(odd, nullptr, TransQuantEncoding::kFp19Trunc).quant_param, odd,
      "npu_trans_quant_param(encoding=fp19_trunc)");
  // 0x3F801000: the tie with bit 13 clear rounds down, as truncation does: not separable.
  const Tensor even = Tensor::from<uint32_t>(DType::kF32, {1}, {0x3F801000u});
  const FormatIdentification id = run(
      ref::npu_trans_quant_param(even, nullptr, TransQuantEncoding::kFp19Trunc).quant_param, &even);
  EXPECT_EQ(id.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(id.remaining, UnorderedElementsAre("npu_trans_quant_param(encoding=fp19_trunc)",
                                                 "npu_trans_quant_param(encoding=fp19_rne)"));
  EXPECT_THAT(format_identification_report(id), HasSubstr("0x1000"));
}

TEST(IdentifyFormat, EverySingleBitFlipInPackedWordsIsNoneWithTheClosestNamed) {
  const Tensor w = weight_2d();
  const Tensor good = ref::vllm_ascend_pack_int4_to_int32(w);
  for (int64_t i = 0; i < good.numel(); i += 5)
    for (int bit : {0, 13, 31}) {
      Tensor bad = good;
      bad.data<uint32_t>()[i] ^= 1u << bit;
      const FormatIdentification id = run(bad, &w);
      ASSERT_EQ(id.outcome, FormatOutcome::kNone) << "element " << i << " bit " << bit;
      EXPECT_EQ(id.closest, "vllm_ascend_pack_int4_to_int32");
      EXPECT_THAT(format_identification_report(id), HasSubstr("1/24 elements differ"));
    }
}

TEST(IdentifyFormat, TamperedScaleWordsAreNone) {
  const Tensor s = scales_separating();
  Tensor words = ref::npu_trans_quant_param(s, nullptr, TransQuantEncoding::kFp19Trunc).quant_param;
  words.data<int64_t>()[1] ^= int64_t{1} << 13;  // the lowest bit FP19 keeps
  const FormatIdentification id = run(words, &s);
  EXPECT_EQ(id.outcome, FormatOutcome::kNone) << format_identification_report(id);
  EXPECT_EQ(id.closest, "npu_trans_quant_param(encoding=fp19_trunc)");
  EXPECT_THAT(format_identification_report(id), HasSubstr("first at [1]"));
}

TEST(IdentifyFormat, InRangeWeightsCannotSeparateWrapFromSaturateAndSaySo) {
  const Tensor w = gen::int_tensor(DType::kI8, {4, 16}, -8, 7, seed("idf_inrange"), 0);
  const FormatIdentification a = run(ref::npu_convert_weight_to_int4pack(as_i32(w)), &w);
  EXPECT_EQ(a.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(a.remaining, UnorderedElementsAre("npu_convert_weight_to_int4pack",
                                                "npu_quantize_quint4x2_layout"));
  EXPECT_THAT(format_identification_report(a), HasSubstr("outside [-8, 7]"));
  const FormatIdentification b = run(ref::vllm_ascend_pack_int4_to_int32(w), &w);
  EXPECT_EQ(b.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(b.remaining, UnorderedElementsAre("vllm_ascend_pack_int4_to_int32",
                                                "ct_pack_to_int32(num_bits=4, packed_dim=1)"));
}

TEST(IdentifyFormat, PositiveScalesCannotSeparateSignFromZeroExtension) {
  const Tensor s = Tensor::from<uint32_t>(DType::kF32, {2}, {0x3C23D70Au, 0x3F2AAAABu});
  const FormatIdentification id = run(ref::scale_from_float_to_int64(s), &s);
  EXPECT_EQ(id.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(id.remaining, UnorderedElementsAre("scale_from_float_to_int64",
                                                 "w4a8_process_scale(scale_rounding=none)"));
  EXPECT_THAT(format_identification_report(id), HasSubstr("negative scale"));
}

// ---- words only -------------------------------------------------------------------------------

TEST(IdentifyFormat, PackedWordsAloneAreAmbiguousWithANibbleHint) {
  const Tensor w = weight_2d();
  const FormatIdentification id = run(ref::npu_convert_weight_to_int4pack(as_i32(w)), nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kAmbiguous);
  EXPECT_EQ(id.remaining.size(), 10u);
  EXPECT_THAT(format_identification_report(id), HasSubstr("nibble histogram"));
}

TEST(IdentifyFormat, Fp19WordsAloneAreAmbiguousBetweenTruncRneAndFullFp32) {
  const Tensor s = scales_separating();
  const FormatIdentification id = run(
      ref::npu_trans_quant_param(s, nullptr, TransQuantEncoding::kFp19Trunc).quant_param, nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(id.remaining, UnorderedElementsAre("npu_trans_quant_param(encoding=fp19_trunc)",
                                                 "npu_trans_quant_param(encoding=fp19_rne)",
                                                 "npu_trans_quant_param(encoding=full_fp32)"));
}

TEST(IdentifyFormat, WordsAloneIdentifyTheOnlyConsistentScaleEncoding) {
  const Tensor s = scales_separating();
  // A negative scale sign-extended: only scale_from_float_to_int64 sets the upper half.
  FormatIdentification id = run(ref::scale_from_float_to_int64(s), nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kIdentified) << format_identification_report(id);
  EXPECT_THAT(id.remaining, ElementsAre("scale_from_float_to_int64"));
  // Nonzero low 13 bits with bit 46: only the full-fp32 host helper.
  id = run(ref::npu_trans_quant_param(s, nullptr, TransQuantEncoding::kFullFp32).quant_param,
           nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kIdentified) << format_identification_report(id);
  EXPECT_THAT(id.remaining, ElementsAre("npu_trans_quant_param(encoding=full_fp32)"));
  // A non-fp16 value zero-extended: only w4a8_process_scale(none).
  const Tensor s3 = Tensor::from<uint32_t>(DType::kF32, {1, 1, 3}, s.to_vector<uint32_t>());
  id = run(ref::w4a8_process_scale(s3, nullptr, W4a8ScaleRounding::kNone).scale_int64, nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kIdentified) << format_identification_report(id);
  EXPECT_THAT(id.remaining, ElementsAre("w4a8_process_scale(scale_rounding=none)"));
}

TEST(IdentifyFormat, ScaleWordsNoEncodingCanProduceAreNone) {
  // Bit 40 set without the flag, upper half neither 0 nor 0xFFFFFFFF.
  const Tensor words = Tensor::from<int64_t>({1}, {int64_t{0x0000010000000001}});
  const FormatIdentification id = run(words, nullptr);
  EXPECT_EQ(id.outcome, FormatOutcome::kNone) << format_identification_report(id);
  for (const auto& r : id.results) EXPECT_EQ(r.verdict, CandidateVerdict::kInconsistent);
}

TEST(IdentifyFormat, Fp16RoundedPositiveScalesAloneLeaveThreeEncodingsConsistent) {
  const Tensor s = Tensor::from<uint32_t>(DType::kF32, {1, 1, 3},
                                          {0x3C23D70Au, 0x33800000u /* 2^-24 */, 0x477FE000u});
  const FormatIdentification id =
      run(ref::w4a8_process_scale(s, nullptr, W4a8ScaleRounding::kFp16).scale_int64, nullptr);
  // Rounded to fp16, every value is an fp16 value: fp16 and none are both consistent.
  EXPECT_EQ(id.outcome, FormatOutcome::kAmbiguous);
  EXPECT_THAT(id.remaining, UnorderedElementsAre("scale_from_float_to_int64",
                                                 "w4a8_process_scale(scale_rounding=fp16)",
                                                 "w4a8_process_scale(scale_rounding=none)"));
}

// ---- bad input --------------------------------------------------------------------------------

TEST(IdentifyFormat, BadInputsAreRejectedNamingTheField) {
  const Tensor w = weight_2d();
  const Tensor words = ref::vllm_ascend_pack_int4_to_int32(w);
  EXPECT_THROW(run(Tensor::from<float>({1}, {1.0f}), nullptr), std::invalid_argument);
  EXPECT_THROW(run(Tensor(DType::kI32, {0}), nullptr), std::invalid_argument);
  const Tensor f = Tensor::from<float>({1}, {1.0f});
  try {
    run(words, &f);
    FAIL() << "float input for packed words accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("input"));
  }
  EXPECT_THROW(run(words, &w, &f), std::invalid_argument);  // an offset for packed words
}

// ---- files ------------------------------------------------------------------------------------

class TensorFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qconf_idf_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::filesystem::path dir_;
};

std::string npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(h.size() & 0xFF);
  out += static_cast<char>(h.size() >> 8);
  return out + h + data;
}

TEST_F(TensorFiles, RawNpyAndJsonLoadTheSameTensor) {
  const std::string data("\x01\x00\x00\x00\xff\xff\xff\xff\x10\x32\x54\x76", 12);
  const Tensor raw = load_tensor_file(write("w.bin", data), "int32", "3");
  const Tensor n = load_tensor_file(write("w.npy", npy("<i4", "(3,)", data)), {}, {});
  const Tensor j = load_tensor_file(
      write("w.json", R"({"dtype": "int32", "shape": [3], "hex": "01000000ffffffff10325476"})"), {},
      {});
  EXPECT_TRUE(raw.bit_equal(n));
  EXPECT_TRUE(raw.bit_equal(j));
  EXPECT_EQ(raw.int_at(1), -1);
  const Tensor two = load_tensor_file(write("m.npy", npy("|i1", "(2, 3)", "abcdef")), {}, {});
  EXPECT_EQ(two.shape(), (Shape{2, 3}));
}

TEST_F(TensorFiles, BadFilesAreRejectedNamingTheFileAndField) {
  auto msg = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string bin = write("x.bin", std::string(12, '\0'));
  EXPECT_THAT(msg([&] { load_tensor_file(bin, {}, {}); }), HasSubstr("needs its dtype"));
  EXPECT_THAT(msg([&] { load_tensor_file(bin, "int32", "2,2"); }),
              HasSubstr("needs 16 bytes of data, the file has 12"));
  EXPECT_THAT(msg([&] { load_tensor_file(bin, "int33", {}); }), HasSubstr("x.bin: dtype"));
  EXPECT_THAT(msg([&] { load_tensor_file(bin, "int8", "3,x"); }), HasSubstr("--shape"));
  const std::string js = write("t.json", R"({"dtype": "int32", "shape": [2], "hex": "00"})");
  EXPECT_THAT(msg([&] { load_tensor_file(js, {}, {}); }), HasSubstr("hex"));
  EXPECT_THAT(msg([&] { load_tensor_file(js, "int32", {}); }), HasSubstr("raw files only"));
  const std::string be = write("b.npy", npy(">i4", "(1,)", "abcd"));
  EXPECT_THAT(msg([&] { load_tensor_file(be, {}, {}); }), HasSubstr("'>i4' is not supported"));
  EXPECT_THAT(msg([&] { load_tensor_file(write("n.npy", "garbage"), {}, {}); }),
              HasSubstr("not a .npy file"));
  EXPECT_THAT(msg([&] { load_tensor_file((dir_ / "missing.bin").string(), "int8", {}); }),
              HasSubstr("missing.bin: cannot open"));
}

}  // namespace
