// Op: ct_unpack_from_int32, compressed-tensors unpack_from_int32 (pack_quantized.py; copied
// into vllm-ascend quantization/methods/w4a16.py): int32 words -> int8 values, field i of a
// word at bits [b*i, b*i + b - 1], minus 2^(b-1), cropped to weight_shape along packed_dim.
// The math lives in reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_ct_unpack_from_int32 {

constexpr const char* kOp = "ct_unpack_from_int32";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"VllmAscendTest",
       {"BASIC",
        "The literal vectors of vllm-ascend tests/ut/quantization/methods/a2/test_w4a16.py: "
        "[[0x76543210]] with shape [1, 6] (packed_dim 1) and [6, 1] (packed_dim 0) unpack to "
        "-8..-3; [[305419896, -1420531520]] with shape [1, 8] and its transpose with [8, 1] "
        "(the test checks only dtype and shape; the values here are the reference's).",
        "A port that fails these fails vllm-ascend's own unit tests."}},
      {"OffsetBinary",
       {"FUNCTIONALITY",
        "Fields are offset binary: value = u - 2^(b-1) (0x0 -> -8, 0x8 -> 0, 0xF -> 7), not "
        "sign-extended nibbles.",
        "Reading the fields as two's complement turns every weight w into w +- 8."}},
      {"LsbFirst",
       {"FUNCTIONALITY",
        "Element pf*j + i comes from bits [b*i, b*i + b - 1] of word j (unpacked[:, i::pf] = "
        "(w >> b*i) & mask).",
        "A port that reads from the top reverses every word."}},
      {"CropPadding",
       {"EDGE_CASE",
        "weight_shape shorter than the unpacked length along packed_dim: the trailing fields "
        "(padding) are dropped; the other dim of weight_shape is not used.",
        "A port that keeps the padding returns extra -8 columns (or rows)."}},
      {"CropWholeWords",
       {"EDGE_CASE",
        "weight_shape drops whole words (vllm-ascend's shape test: 2 words cropped to 8 "
        "columns), which torch slicing allows.",
        "A port that insists on ceil(cols / pf) == words rejects what upstream accepts."}},
      {"PackedDim0",
       {"FUNCTIONALITY",
        "packed_dim 0: row pf*j + i of column c is field i of word (j, c) "
        "(unpacked[i::pf, :]).",
        "Unpacking zero points along the wrong dim."}},
      {"NegativeWords",
       {"EDGE_CASE",
        "Words with the sign bit set: upstream shifts int32 arithmetically and relies on the "
        "mask to drop the sign copies.",
        "A missing mask on the top field keeps sign bits."}},
      {"EightBit",
       {"FUNCTIONALITY", "num_bits 8: four fields per word, value = u - 128.",
        "A 4-bit layout used for 8-bit weights."}},
      {"OtherWidths",
       {"FUNCTIONALITY", "num_bits 2 (16 fields per word).",
        "A port hard-wired to 8 fields per word."}},
      {"SimdTail",
       {"EDGE_CASE", "Sizes that leave vector tails and partial last words.",
        "Tail loops that skip or over-read."}},
      {"Random",
       {"BASIC", "Seeded full-range int32 words over assorted shapes, with and without a crop.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec literal(std::string name, std::string comment, std::vector<std::string> flags, int bits,
                 int dim, Shape packed_shape, std::vector<uint32_t> words, CtShape shape) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.params["num_bits"] = bits;
  c.params["packed_dim"] = dim;
  std::vector<int32_t> w(words.begin(), words.end());
  c.inputs["packed"] = Tensor::from<int32_t>(std::move(packed_shape), w);
  c.inputs["weight_shape"] =
      Tensor::from<int64_t>({2}, std::vector<int64_t>{shape.rows, shape.cols});
  return c;
}

CaseSpec random_case(const std::string& name, int bits, int dim, Shape packed_shape, CtShape shape,
                     std::vector<std::string> flags) {
  CaseSpec c;
  c.name = name;
  c.comment = "uniform int32 words " + shape_str(packed_shape) + ", " + std::to_string(bits) +
              " bits, packed_dim " + std::to_string(dim) + ", weight_shape [" +
              std::to_string(shape.rows) + ", " + std::to_string(shape.cols) + "]";
  flags.insert(flags.begin(), "Random");
  c.flags = std::move(flags);
  c.params["num_bits"] = bits;
  c.params["packed_dim"] = dim;
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  c.inputs["packed"] =
      gen::int_tensor(DType::kI32, std::move(packed_shape), INT32_MIN, INT32_MAX, seed, 0);
  c.inputs["weight_shape"] =
      Tensor::from<int64_t>({2}, std::vector<int64_t>{shape.rows, shape.cols});
  return c;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(literal("vllm_ascend_test_packed_dim_1",
                      "test_unpack_from_int32_restores_values_and_crops_padding: [[0x76543210]], "
                      "shape [1, 6] -> [[-8, -7, -6, -5, -4, -3]]",
                      {"VllmAscendTest", "OffsetBinary", "LsbFirst", "CropPadding"}, 4, 1, {1, 1},
                      {0x76543210u}, {1, 6}));
  v.push_back(literal("vllm_ascend_test_packed_dim_0",
                      "test_unpack_from_int32_packed_dim_0_restores_values: [[0x76543210]], "
                      "shape [6, 1] -> [[-8], [-7], [-6], [-5], [-4], [-3]]",
                      {"VllmAscendTest", "OffsetBinary", "PackedDim0", "CropPadding"}, 4, 0, {1, 1},
                      {0x76543210u}, {6, 1}));
  v.push_back(
      literal("vllm_ascend_test_shape_dim_1",
              "test_unpack_from_int32_packed_dim_1: [[0x12345678, 0xab5468c0]], shape "
              "[1, 8]: the second word is cropped away -> [[0, -1, -2, -3, -4, -5, -6, -7]]",
              {"VllmAscendTest", "CropWholeWords", "NegativeWords"}, 4, 1, {1, 2},
              {0x12345678u, 0xab5468c0u}, {1, 8}));
  v.push_back(literal("vllm_ascend_test_shape_dim_0",
                      "test_unpack_from_int32_packed_dim_0: [[0x12345678], [0xab5468c0]], shape "
                      "[8, 1]: the second row of words is cropped away",
                      {"VllmAscendTest", "CropWholeWords", "PackedDim0"}, 4, 0, {2, 1},
                      {0x12345678u, 0xab5468c0u}, {8, 1}));
  v.push_back(literal("negative_word_fedcba98", "0xfedcba98 -> 0..7 (fields 8..15)",
                      {"NegativeWords", "OffsetBinary"}, 4, 1, {1, 1}, {0xfedcba98u}, {1, 8}));
  v.push_back(literal("all_fields_zero_and_ones",
                      "0x00000000 -> all -8; 0xffffffff -> all 7; 0x88888888 -> all 0",
                      {"OffsetBinary", "NegativeWords"}, 4, 1, {3, 1},
                      {0x00000000u, 0xffffffffu, 0x88888888u}, {3, 8}));
  v.push_back(literal("crop_dim1_two_rows", "[2, 2] words cropped to 13 columns",
                      {"CropPadding", "NegativeWords"}, 4, 1, {2, 2},
                      {0x01234567u, 0x89abcdefu, 0xf0e1d2c3u, 0x00000a5bu}, {2, 13}));
  v.push_back(literal("crop_dim0", "[1, 3] words down 5 rows: 3 fields of each word dropped",
                      {"CropPadding", "PackedDim0"}, 4, 0, {1, 3},
                      {0x00543210u, 0x000fedcbu, 0x00888888u}, {5, 3}));
  v.push_back(literal("eight_bit",
                      "0xff807f00, 0x00000085 with shape [1, 5] -> -128, -1, 0, 127, 5",
                      {"EightBit", "CropPadding", "NegativeWords"}, 8, 1, {1, 2},
                      {0xff807f00u, 0x00000085u}, {1, 5}));
  v.push_back(literal("eight_bit_dim0", "8 bits down 6 rows of 2 columns",
                      {"EightBit", "PackedDim0", "CropPadding"}, 8, 0, {2, 2},
                      {0x7f80ff01u, 0x00010203u, 0x0000c864u, 0x00009c00u}, {6, 2}));
  v.push_back(literal(
      "two_bit",
      "num_bits 2: 0xe4e4e4e4 -> (-2, -1, 0, 1) x 4; 0x0000001b -> 1, 0, -1, -2 (cropped to 20)",
      {"OtherWidths", "CropPadding"}, 2, 1, {1, 2}, {0xe4e4e4e4u, 0x0000001bu}, {1, 20}));
  v.push_back(random_case("random_4bit_dim1_1x1", 4, 1, {1, 1}, {1, 8}, {}));
  v.push_back(random_case("random_4bit_dim1_3x5_crop37", 4, 1, {3, 5}, {3, 37},
                          {"CropPadding", "SimdTail"}));
  v.push_back(random_case("random_4bit_dim1_7x8", 4, 1, {7, 8}, {7, 64}, {}));
  v.push_back(random_case("random_4bit_dim1_8x66", 4, 1, {8, 66}, {8, 528}, {"SimdTail"}));
  v.push_back(random_case("random_4bit_dim1_5x26_crop203", 4, 1, {5, 26}, {5, 203},
                          {"CropPadding", "SimdTail"}));
  v.push_back(random_case("random_4bit_dim0_5x33_crop37", 4, 0, {5, 33}, {37, 33},
                          {"CropPadding", "PackedDim0", "SimdTail"}));
  v.push_back(
      random_case("random_4bit_dim0_2x70", 4, 0, {2, 70}, {16, 70}, {"PackedDim0", "SimdTail"}));
  v.push_back(random_case("random_8bit_dim1_4x13_crop50", 8, 1, {4, 13}, {4, 50},
                          {"EightBit", "CropPadding", "SimdTail"}));
  v.push_back(random_case("random_8bit_dim1_4x64", 8, 1, {4, 64}, {4, 256}, {"EightBit"}));
  v.push_back(random_case("random_8bit_dim0_9x6_crop33", 8, 0, {9, 6}, {33, 6},
                          {"EightBit", "PackedDim0", "CropPadding"}));
  return v;
}

int bits_of(const Params& p) { return static_cast<int>(param_int(p, "num_bits", 4)); }
int dim_of(const Params& p) { return static_cast<int>(param_int(p, "packed_dim", 1)); }

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "compressed-tensors unpack_from_int32(packed int32 2-D, num_bits, weight_shape, "
      "packed_dim): field i = (w >> b*i) & mask (LSB first), cropped to weight_shape along "
      "packed_dim, minus 2^(b-1), as int8.";
  d.sources = {
      "compressed-tensors src/compressed_tensors/compressors/quantized_compressors/"
      "pack_quantized.py unpack_from_int32 (vllm-project/compressed-tensors @179cba93)",
      "vllm-ascend quantization/methods/w4a16.py unpack_from_int32 (@01697b3e)",
      "vllm-ascend tests/ut/quantization/methods/a2/test_w4a16.py (@548081bc)",
      "notes/vllm_ascend_quant.md §D, §E"};
  d.inputs = {"packed", "weight_shape"};
  d.stages = {{"fields", false, "(w >> b*i) & mask, uncropped, uint8"},
              {"unpacked", true, "fields cropped to weight_shape, minus 2^(b-1), int8"}};
  d.variants = {{"num_bits", {"4", "8", "2", "1"}, "an argument: bits per field (32 % b == 0)"},
                {"packed_dim", {"1", "0"}, "an argument: the dim packed"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    const CtShape s = ct_shape_from_tensor(in.at("weight_shape"), kOp);
    out["unpacked"] = ref::ct_unpack_from_int32(in.at("packed"), bits_of(p), s, dim_of(p));
    out["fields"] = ref::ct_unpack_fields(in.at("packed"), bits_of(p), dim_of(p));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    const CtShape s = ct_shape_from_tensor(in.at("weight_shape"), kOp);
    out["unpacked"] = opt::ct_unpack_from_int32(in.at("packed"), bits_of(p), s, dim_of(p));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_ct_unpack_from_int32
}  // namespace qconf::conf
