// Op: npu_convert_weight_to_int4pack (torch_npu), the NPU int4 packing.
//
// This file is the template for adding an op. It holds, in order:
//   1. the flags its vectors carry, each explained (Wycheproof-style notes);
//   2. the case builder: hand-picked named vectors first, then seeded random sets;
//   3. the OpDef: stages in pipeline order, kernels, and registration.
// The op's math lives in reference/ops/int4pack.cpp and optimized/ops/int4pack.cpp.
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/ops/int4pack.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_convert_weight_to_int4pack {

constexpr const char* kOp = "npu_convert_weight_to_int4pack";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> int4pack_notes() {
  return {
      {"NibbleOrder",
       {"FUNCTIONALITY",
        "Element 2i must sit in the LOW nibble of byte i. The vector has distinct values in "
        "even and odd positions, so a swapped nibble order changes every byte.",
        "A port with the nibble order swapped feeds transposed pairs into every int4 matmul."}},
      {"ByteOrder",
       {"FUNCTIONALITY",
        "Bytes are little-endian in the int32 word: element 8j+t occupies bits [4t, 4t+3]. The "
        "vector puts different values in the first and last nibbles of a word.",
        "A big-endian word assembly reverses the order of byte pairs."}},
      {"TwosComplement",
       {"FUNCTIONALITY",
        "Nibbles are two's complement (-1 -> 0xF, -8 -> 0x8), not offset binary (value+8) as "
        "compressed-tensors and vllm-ascend's fallback packer store them.",
        "Offset binary flips the top bit of every nibble: every weight is off by 8."}},
      {"OutOfRangeWraps",
       {"EDGE_CASE",
        "Inputs outside [-8, 7]: the torch_npu doc requires the range, but the kernel "
        "(PackToINT8) keeps the low nibble without clamping, so values wrap (8 -> -8, 16 -> 0).",
        "A port that clamps to [-8, 7] gives different words for checkpoints with out-of-range "
        "values; see docs/divergences.md."}},
      {"SignBitWord",
       {"EDGE_CASE",
        "The top nibble of a word is negative, so the int32 word is negative: sign handling "
        "of the output type matters (e.g. arithmetic shifts while assembling).",
        "An arithmetic right shift or a sign-extending assembly smears the sign bit."}},
      {"Rank3",
       {"FUNCTIONALITY", "3-D weights (grouped matmul experts) pack along the last dim only.",
        "Packing across the wrong dim mixes experts."}},
      {"SimdTail",
       {"EDGE_CASE",
        "Row lengths that are not a multiple of common vector widths (16, 32, 64 int32), so a "
        "vectorized port runs its tail path.",
        "Tail loops that skip or over-read the last words."}},
      {"Zeros", {"EDGE_CASE", "All-zero input packs to all-zero words.", "Degenerate on purpose."}},
      {"Random",
       {"BASIC", "Seeded uniform values in [-8, 7] over assorted shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec literal(std::string name, std::string comment, std::vector<std::string> flags, Shape shape,
                 std::vector<int32_t> values) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.inputs["weight"] = Tensor::from<int32_t>(std::move(shape), values);
  return c;
}

CaseSpec random_case(const std::string& name, Shape shape, std::vector<std::string> flags) {
  CaseSpec c;
  c.name = name;
  c.comment = "uniform int4 values, shape " + shape_str(shape);
  flags.insert(flags.begin(), "Random");
  c.flags = std::move(flags);
  uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  c.inputs["weight"] = gen::int_tensor(DType::kI32, std::move(shape), -8, 7, seed, 0);
  return c;
}

std::vector<CaseSpec> int4pack_cases() {
  std::vector<CaseSpec> v;
  v.push_back(literal("ascending_0_to_7", "0..7 packs to 0x76543210: element t in bits [4t, 4t+3]",
                      {"NibbleOrder", "ByteOrder"}, {1, 8}, {0, 1, 2, 3, 4, 5, 6, 7}));
  v.push_back(literal("negatives_m8_to_m1",
                      "-8..-1 packs to 0xfedcba98: two's-complement nibbles, negative word",
                      {"TwosComplement", "SignBitWord"}, {1, 8}, {-8, -7, -6, -5, -4, -3, -2, -1}));
  v.push_back(literal("single_low_nibble", "only element 0 set: word 0x00000001", {"NibbleOrder"},
                      {1, 8}, {1, 0, 0, 0, 0, 0, 0, 0}));
  v.push_back(literal("single_top_nibble", "only element 7 set to 1: word 0x10000000",
                      {"ByteOrder"}, {1, 8}, {0, 0, 0, 0, 0, 0, 0, 1}));
  v.push_back(literal("pairs_distinct", "pairs (1,2),(3,4),(5,6),(7,-1): 0xf7654321",
                      {"NibbleOrder", "ByteOrder", "SignBitWord"}, {1, 8},
                      {1, 2, 3, 4, 5, 6, 7, -1}));
  v.push_back(literal("minus_one_everywhere", "all -1: every word is 0xffffffff (-1)",
                      {"TwosComplement", "SignBitWord"}, {2, 8}, std::vector<int32_t>(16, -1)));
  v.push_back(literal("offset_binary_separator",
                      "values whose offset-binary (v+8) encoding differs in every nibble",
                      {"TwosComplement"}, {1, 8}, {0, -8, 7, -1, 3, -4, 1, -2}));
  v.push_back(literal(
      "wraps_out_of_range",
      "8 -> -8, -9 -> 7, 15 -> -1, -16 -> 0, 16 -> 0, 255 -> -1, INT32_MIN -> 0, INT32_MAX -> -1",
      {"OutOfRangeWraps", "SignBitWord"}, {1, 8},
      {8, -9, 15, -16, 16, 255, std::numeric_limits<int32_t>::min(),
       std::numeric_limits<int32_t>::max()}));
  v.push_back(literal("wraps_vs_clamp_separator",
                      "values a clamping port maps to 7/-8 but the kernel wraps: 9 -> -7, -10 -> 6",
                      {"OutOfRangeWraps"}, {2, 8},
                      {9, -10, 23, -24, 100, -100, 1000, -1000, 7, -8, 8, -9, 12, -12, 0, 1}));
  {
    CaseSpec z = literal("zeros", "all zero", {"Zeros"}, {4, 16}, std::vector<int32_t>(64, 0));
    v.push_back(std::move(z));
  }
  // Hand-picked 3-D: expert e, row r, column c holds (e*7 + r*3 + c) mod 16 - 8.
  {
    std::vector<int32_t> vals;
    for (int e = 0; e < 2; ++e)
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 16; ++c) vals.push_back((e * 7 + r * 3 + c) % 16 - 8);
    v.push_back(literal("rank3_experts", "3-D [2, 3, 16]: each expert packs along its last dim",
                        {"Rank3"}, {2, 3, 16}, vals));
  }
  // Seeded random sets: tails for every SIMD width, odd row counts, 3-D.
  v.push_back(random_case("random_1x8", {1, 8}, {}));
  v.push_back(random_case("random_3x24", {3, 24}, {"SimdTail"}));
  v.push_back(random_case("random_7x40", {7, 40}, {"SimdTail"}));
  v.push_back(random_case("random_5x200", {5, 200}, {"SimdTail"}));
  v.push_back(random_case("random_5x264", {5, 264}, {"SimdTail"}));
  v.push_back(random_case("random_64x64", {64, 64}, {}));
  v.push_back(random_case("random_3x7x24", {3, 7, 24}, {"Rank3", "SimdTail"}));
  v.push_back(random_case("random_2x5x136", {2, 5, 136}, {"Rank3", "SimdTail"}));
  return v;
}

// The oracle: packing is exact, so every stage is EXACT; the all-zero vector is degenerate
// on purpose and says so.
std::map<std::string, Check> int4pack_oracle(const Params&, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  bool all_zero = true;
  const Tensor& w = in.at("weight");
  for (int64_t i = 0; i < w.numel(); ++i) all_zero = all_zero && w.data<int32_t>()[i] == 0;
  if (all_zero) {
    m["int4_values"].degenerate_ok = true;
    m["packed"].degenerate_ok = true;
  }
  return m;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_int4pack() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_convert_weight_to_int4pack: int32 [.., n] with int4 values -> int32 "
      "[.., n/8]; two's-complement nibbles, element 2i in the low nibble, little-endian words, "
      "no clamping (out-of-range values wrap).";
  d.sources = {
      "notes/torch_npu_semantics.md §0, §5",
      "hicann/ops-nn aclnn_convert_weight_to_int4_pack.cpp PackToINT8 [code]",
      "Ascend/op-plugin test/test_custom_ops/test_npu_convert_weight_to_int4pack.py [test]"};
  d.inputs = {"weight"};
  d.stages = {{"int4_values", false, "each input wrapped to a two's-complement int4 (int8)"},
              {"packed", true, "int32 words, 8 nibbles each"}};
  d.notes = int4pack_notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["int4_values"] = ref::int4_wrap(in.at("weight"));
    out["packed"] = ref::npu_convert_weight_to_int4pack(in.at("weight"));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::npu_convert_weight_to_int4pack(in.at("weight"));
  };
#endif
  d.oracle = int4pack_oracle;
  d.cases = int4pack_cases;
  return d;
}

QCONF_REGISTER_OP(make_int4pack);

}  // namespace conformance_ops_npu_convert_weight_to_int4pack
}  // namespace qconf::conf
