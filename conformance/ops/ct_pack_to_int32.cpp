// Op: ct_pack_to_int32, compressed-tensors pack_to_int32 (pack_quantized.py): int8 quantized
// values -> int32 words, offset binary, LSB first, 4 or 8 bits, along dim 1 (weights) or dim 0
// (zero points), partial last word padded with u = 0. The math lives in
// reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_ct_pack_to_int32 {

constexpr const char* kOp = "ct_pack_to_int32";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"OffsetBinary",
       {"FUNCTIONALITY",
        "Fields hold u = v + 2^(b-1) (4 bits: -8 -> 0x0, 0 -> 0x8; 8 bits: -128 -> 0x00, "
        "0 -> 0x80), not two's complement.",
        "A two's-complement port makes every weight of a compressed-tensors checkpoint off by "
        "2^(b-1)."}},
      {"LsbFirst",
       {"FUNCTIONALITY",
        "Element pf*j + i of the packed dim goes to bits [b*i, b*i + b - 1] of word j "
        "(pf = 32 / b), the first element in the least significant bits.",
        "A port that fills from the top reverses every word."}},
      {"PackedDim0",
       {"FUNCTIONALITY",
        "packed_dim 0 (how weight_zero_point is packed): word (j, c) holds rows pf*j .. "
        "pf*j + pf - 1 of column c; upstream transposes, packs the rows and transposes back.",
        "A port that packs along dim 1 regardless, or forgets the transpose back, scrambles "
        "zero points."}},
      {"PaddingIsZeroField",
       {"EDGE_CASE",
        "A partial last word is padded with the raw field u = 0 (torch.nn.functional.pad after "
        "the offset), which unpacks to -2^(b-1), not with v = 0 (u = 2^(b-1)).",
        "A port that pads before adding the offset writes 0x8 nibbles into the padding."}},
      {"OutOfRangeCarries",
       {"EDGE_CASE",
        "4-bit values outside [-8, 7] are neither clamped nor masked: u = (v + 8) mod 256 is "
        "shifted and SUMMED (dim=2 sum in int32), so its high bits carry into the next field "
        "(v = 8 at field 0 adds 1 to field 1), and a carry out of the top field is lost.",
        "A port that masks (or clamps) gives different words for out-of-range int8 input; "
        "unpacking them does not return the input either way."}},
      {"EightBit",
       {"FUNCTIONALITY", "num_bits 8: u = v + 128 (= v ^ 0x80), four fields per word.",
        "Offset 8 or a 4-bit layout used for 8-bit weights."}},
      {"OtherWidths",
       {"FUNCTIONALITY",
        "num_bits 2 and 1 (16 and 32 fields per word): the same rule with offset 2^(b-1).",
        "A port hard-wired to 8 fields per word."}},
      {"UpstreamDocstring",
       {"BASIC",
        "The example in pack_to_int32's docstring: num_bits 8, [1, 2] -> [129, 130, 0, 0] -> "
        "33409.",
        "The upstream author's own literal."}},
      {"SignBitWord",
       {"EDGE_CASE", "The top field has its high bit set, so the int32 word is negative.",
        "Sign handling while assembling the word."}},
      {"SimdTail",
       {"EDGE_CASE", "Sizes that leave tails for vectorized ports (and partial last words).",
        "Tail loops that skip or over-read."}},
      {"Random",
       {"BASIC",
        "Seeded uniform values (in range unless the name says full) over assorted "
        "shapes, both packed dims.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec literal(std::string name, std::string comment, std::vector<std::string> flags, int bits,
                 int dim, Shape shape, std::vector<int8_t> values) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.params["num_bits"] = bits;
  c.params["packed_dim"] = dim;
  c.inputs["value"] = Tensor::from<int8_t>(std::move(shape), values);
  return c;
}

CaseSpec random_case(const std::string& name, int bits, int dim, Shape shape, bool full,
                     std::vector<std::string> flags) {
  CaseSpec c;
  c.name = name;
  const int64_t lo = full ? -128 : -(int64_t{1} << (bits - 1));
  const int64_t hi = full ? 127 : (int64_t{1} << (bits - 1)) - 1;
  c.comment = "uniform int8 in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], " +
              std::to_string(bits) + " bits, packed_dim " + std::to_string(dim) + ", shape " +
              shape_str(shape);
  flags.insert(flags.begin(), "Random");
  c.flags = std::move(flags);
  c.params["num_bits"] = bits;
  c.params["packed_dim"] = dim;
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  c.inputs["value"] = gen::int_tensor(DType::kI8, std::move(shape), lo, hi, seed, 0);
  return c;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(literal("docstring_8bit_1_2", "pack_to_int32 docstring: [1, 2] -> 33409 (0x8281)",
                      {"UpstreamDocstring", "EightBit", "PaddingIsZeroField"}, 8, 1, {1, 2},
                      {1, 2}));
  v.push_back(literal("ascending_4bit_m8_to_m1", "-8..-1 -> u 0..7 -> 0x76543210",
                      {"OffsetBinary", "LsbFirst"}, 4, 1, {1, 8},
                      {-8, -7, -6, -5, -4, -3, -2, -1}));
  v.push_back(literal("vllm_ascend_literal_inverse_dim1",
                      "-8..-3 (6 values) -> 0x00543210: the padding fields are u = 0, not the 6, 7 "
                      "of the 0x76543210 word that vllm-ascend's unpack test crops",
                      {"PaddingIsZeroField", "OffsetBinary"}, 4, 1, {1, 6},
                      {-8, -7, -6, -5, -4, -3}));
  v.push_back(literal("vllm_ascend_literal_inverse_dim0",
                      "[6, 1] = -8..-3 down the column -> [[0x00543210]] (packed_dim 0)",
                      {"PackedDim0", "PaddingIsZeroField"}, 4, 0, {6, 1},
                      {-8, -7, -6, -5, -4, -3}));
  v.push_back(literal("zeros_4bit", "all zero: every field 8, word 0x88888888",
                      {"OffsetBinary", "SignBitWord"}, 4, 1, {2, 8}, std::vector<int8_t>(16, 0)));
  v.push_back(literal("padding_4bit_dim1", "[2, 5]: one word per row, fields 5..7 are u = 0",
                      {"PaddingIsZeroField"}, 4, 1, {2, 5}, {0, 1, 2, 3, 4, -1, -2, -3, -4, -5}));
  v.push_back(literal("padding_4bit_dim0", "[5, 3] packed down columns: [1, 3], fields 5..7 = 0",
                      {"PackedDim0", "PaddingIsZeroField"}, 4, 0, {5, 3},
                      {7, -8, 0, 6, -7, 1, 5, -6, 2, 4, -5, 3, 3, -4, 4}));
  v.push_back(literal("out_of_range_carries",
                      "row 0: 8 at field 0 (u = 16) -> 0x88888890 (field 1 becomes 9); row 1: -9 "
                      "(u = 255) -> 0x8888897f; row 2: 8 in field 7 -> the carry leaves the "
                      "word: 0x08888888",
                      {"OutOfRangeCarries"}, 4, 1, {3, 8},
                      {8, 0, 0, 0, 0, 0, 0, 0, -9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8}));
  v.push_back(literal(
      "out_of_range_int8_extremes",
      "127 (u = 135) and -128 (u = 136) in every position: fields overlap",
      {"OutOfRangeCarries", "SignBitWord"}, 4, 1, {2, 8},
      {127, 127, 127, 127, 127, 127, 127, 127, -128, -128, -128, -128, -128, -128, -128, -128}));
  v.push_back(literal("out_of_range_dim0", "out-of-range values carry down the packed column",
                      {"OutOfRangeCarries", "PackedDim0"}, 4, 0, {8, 2},
                      {8, -9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, -100}));
  v.push_back(literal(
      "eight_bit_extremes", "-128, -1, 0, 127 -> 0xff807f00; 5 + 3 padding bytes -> 0x00000085",
      {"EightBit", "PaddingIsZeroField", "SignBitWord"}, 8, 1, {1, 5}, {-128, -1, 0, 127, 5}));
  v.push_back(literal("eight_bit_dim0", "8 bits down the columns of a [5, 2] tensor",
                      {"EightBit", "PackedDim0", "PaddingIsZeroField"}, 8, 0, {5, 2},
                      {-128, 127, -1, 0, 1, 2, 3, 4, 100, -100}));
  v.push_back(literal("two_bit", "num_bits 2: 16 fields per word, [-2, 1], 20 values -> 2 words",
                      {"OtherWidths", "PaddingIsZeroField"}, 2, 1, {1, 20},
                      {-2, -1, 0, 1, 1, 0, -1, -2, -2, -2, 1, 1, 0, 0, -1, -1, 1, -2, 0, -1}));
  v.push_back(literal("one_bit_dim0", "num_bits 1 down 33 rows: two words per column",
                      {"OtherWidths", "PackedDim0", "PaddingIsZeroField"}, 1, 0, {33, 1},
                      {-1, 0, 0,  -1, 0,  -1, -1, 0, 0, 0, 0, -1, -1, -1, -1, 0, 0,
                       -1, 0, -1, 0,  -1, 0,  -1, 0, 0, 0, 0, 0,  0,  0,  -1, 0}));
  v.push_back(random_case("random_4bit_dim1_1x8", 4, 1, {1, 8}, false, {}));
  v.push_back(random_case("random_4bit_dim1_3x37", 4, 1, {3, 37}, false, {"SimdTail"}));
  v.push_back(random_case("random_4bit_dim1_7x64", 4, 1, {7, 64}, false, {}));
  v.push_back(random_case("random_4bit_dim1_5x203", 4, 1, {5, 203}, false, {"SimdTail"}));
  v.push_back(random_case("random_4bit_dim1_4x1032", 4, 1, {4, 1032}, false, {"SimdTail"}));
  v.push_back(random_case("random_4bit_dim0_33x9", 4, 0, {33, 9}, false, {"SimdTail"}));
  v.push_back(random_case("random_4bit_dim0_16x70", 4, 0, {16, 70}, false, {"SimdTail"}));
  v.push_back(random_case("random_8bit_dim1_3x37", 8, 1, {3, 37}, true, {"EightBit", "SimdTail"}));
  v.push_back(random_case("random_8bit_dim1_4x256", 8, 1, {4, 256}, true, {"EightBit"}));
  v.push_back(
      random_case("random_8bit_dim0_11x21", 8, 0, {11, 21}, true, {"EightBit", "SimdTail"}));
  v.push_back(
      random_case("random_4bit_full_dim1_4x40", 4, 1, {4, 40}, true, {"OutOfRangeCarries"}));
  v.push_back(random_case("random_4bit_full_dim0_12x33", 4, 0, {12, 33}, true,
                          {"OutOfRangeCarries", "SimdTail"}));
  return v;
}

int bits_of(const Params& p) { return static_cast<int>(param_int(p, "num_bits", 4)); }
int dim_of(const Params& p) { return static_cast<int>(param_int(p, "packed_dim", 1)); }

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "compressed-tensors pack_to_int32(value int8 [rows, cols], num_bits, packed_dim): "
      "u = (v + 2^(b-1)) mod 256, padded with u = 0 to a multiple of 32/b along packed_dim, "
      "word = sum u_i << (b*i) mod 2^32 (LSB first; out-of-range u carry).";
  d.sources = {
      "compressed-tensors src/compressed_tensors/compressors/quantized_compressors/"
      "pack_quantized.py pack_to_int32 (vllm-project/compressed-tensors @179cba93)",
      "notes/vllm_ascend_quant.md §D Packing conventions"};
  d.inputs = {"value"};
  d.stages = {{"unsigned", false, "(value + 2^(b-1)).to(uint8)"},
              {"padded", false, "unsigned, padded with 0 along packed_dim to a multiple of 32/b"},
              {"packed", true, "int32 words"}};
  d.variants = {{"num_bits", {"4", "8", "2", "1"}, "an argument: bits per field (32 % b == 0)"},
                {"packed_dim",
                 {"1", "0"},
                 "an argument: the dim packed (1: weights, 0: zero "
                 "points)"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& v = in.at("value");
    out["packed"] = ref::ct_pack_to_int32(v, bits_of(p), dim_of(p));  // checks the arguments
    out["unsigned"] = ref::ct_to_unsigned(v, bits_of(p));
    out["padded"] = ref::ct_pad(out["unsigned"], bits_of(p), dim_of(p));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::ct_pack_to_int32(in.at("value"), bits_of(p), dim_of(p));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_ct_pack_to_int32
}  // namespace qconf::conf
