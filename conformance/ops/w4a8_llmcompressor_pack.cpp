// Op: w4a8_llmcompressor_pack, what vllm-ascend's W4A8_DYNAMIC MoE method does to
// LLM-Compressor expert weights (one int4 per int8 byte): transpose(1, 2), pack pairs along N
// into bytes (_pack_int4_to_int8), view as int32 (w4a8.py). The math lives in
// reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_llmcompressor_pack {

constexpr const char* kOp = "w4a8_llmcompressor_pack";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"NibbleOrder",
       {"FUNCTIONALITY",
        "byte j = (w[2j+1] << 4) | (w[2j] & 0xF): the even output in the LOW nibble, so word m "
        "holds outputs 8m..8m+7 at bits [4t, 4t+3], the NPU int4 layout.",
        "A swapped nibble order exchanges every pair of output channels."}},
      {"TransposeBeforePairing",
       {"FUNCTIONALITY",
        "Pairs are formed along N AFTER the transpose [E, N, K] -> [E, K, N] (reshape(-1, 2) of "
        "the transposed tensor), not along K of the checkpoint layout.",
        "A port that pairs before transposing packs input channels together."}},
      {"TwosComplement",
       {"FUNCTIONALITY", "Nibbles are two's complement (-1 -> 0xF, -8 -> 0x8).",
        "Offset binary (compressed-tensors' own convention) is off by 8."}},
      {"OutOfRangeWraps",
       {"EDGE_CASE",
        "Values outside [-8, 7] keep their low nibble: the int8 shift w1 << 4 drops the high "
        "bits (8 << 4 = -128) and w0 & 0xF masks; nothing clamps, nothing carries. The result "
        "equals npu_convert_weight_to_int4pack of the transposed weight for every input.",
        "A clamping port (vllm-ascend's fallback packer) or a carrying one "
        "(compressed-tensors' sum) gives other words."}},
      {"SignBitWord",
       {"EDGE_CASE", "Output 8m+7 negative: the int32 word is negative.",
        "Sign extension while assembling words."}},
      {"Experts",
       {"FUNCTIONALITY", "E > 1: each expert is transposed and packed on its own.",
        "Mixing experts."}},
      {"SimdTail",
       {"EDGE_CASE", "K and N not multiples of common tile sizes.",
        "Edge tiles skipped or mis-addressed."}},
      {"Random",
       {"BASIC", "Seeded int4 (or full int8) values over assorted shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags,
                   Tensor weight) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.inputs["weight"] = std::move(weight);
  return c;
}

CaseSpec random_case(const std::string& name, Shape shape, int64_t lo, int64_t hi,
                     std::vector<std::string> flags) {
  flags.insert(flags.begin(), "Random");
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  return make_case(name,
                   "uniform int8 in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], shape [E, N, K] = " + shape_str(shape),
                   flags, gen::int_tensor(DType::kI8, shape, lo, hi, seed, 0));
}

std::vector<CaseSpec> cases() {
  using V8 = std::vector<int8_t>;
  std::vector<CaseSpec> v;
  {  // w[0, n, k] = n - 4 + 2k: column k of the transposed weight is n - 4 + 2k.
    V8 w;
    for (int n = 0; n < 8; ++n)
      for (int k = 0; k < 2; ++k) w.push_back(static_cast<int8_t>(n - 4 + 2 * k));
    v.push_back(make_case("ascending_columns",
                          "[1, 8, 2], w[n, k] = n - 4 + 2k: word k = outputs n = 0..7 of input "
                          "k: 0x3210fedc, 0x543210fe",
                          {"NibbleOrder", "TransposeBeforePairing", "TwosComplement"},
                          Tensor::from<int8_t>({1, 8, 2}, w)));
  }
  v.push_back(make_case("negatives_sign_bit", "[1, 8, 1] = -8..-1: 0xfedcba98",
                        {"TwosComplement", "SignBitWord"},
                        Tensor::from<int8_t>({1, 8, 1}, V8{-8, -7, -6, -5, -4, -3, -2, -1})));
  v.push_back(make_case("out_of_range_wraps",
                        "[1, 8, 2]: 8, -9, 127, -128, 15, -16, 100, -100 wrap to their low "
                        "nibble (-8, 7, -1, 0, -1, 0, 4, -4); column 1 holds 16+n",
                        {"OutOfRangeWraps", "SignBitWord"},
                        Tensor::from<int8_t>({1, 8, 2}, V8{8, 16, -9, 17, 127, 18, -128, 19, 15, 20,
                                                           -16, 21, 100, 22, -100, 23})));
  {  // E = 3, N = 16, K = 3, w = (n + 3k + 5e) mod 16 - 8
    V8 w;
    for (int e = 0; e < 3; ++e)
      for (int n = 0; n < 16; ++n)
        for (int k = 0; k < 3; ++k) w.push_back(static_cast<int8_t>((n + 3 * k + 5 * e) % 16 - 8));
    v.push_back(make_case("experts_pattern", "[3, 16, 3], w = (n + 3k + 5e) mod 16 - 8",
                          {"Experts", "NibbleOrder"}, Tensor::from<int8_t>({3, 16, 3}, w)));
  }
  v.push_back(random_case("random_1x8x3", {1, 8, 3}, -8, 7, {}));
  v.push_back(random_case("random_2x16x13", {2, 16, 13}, -8, 7, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_3x24x40", {3, 24, 40}, -8, 7, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_1x128x40", {1, 128, 40}, -8, 7, {"SimdTail"}));
  v.push_back(random_case("random_2x72x37", {2, 72, 37}, -8, 7, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_full_int8_2x16x9", {2, 16, 9}, -128, 127,
                          {"OutOfRangeWraps", "Experts", "SimdTail"}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8_DYNAMIC MoE, LLM-Compressor weights: int8 [E, N, K] (one int4 per "
      "byte) -> transpose(1, 2) -> pairs along N: byte = (w[2j+1] << 4) | (w[2j] & 0xF) -> "
      "view(int32) -> int32 [E, K, N/8]. Equals npu_convert_weight_to_int4pack(w^T).";
  d.sources = {
      "vllm-ascend quantization/methods/w4a8.py (@01697b3e) "
      "process_weights_after_loading_compressed_tensors, _pack_int4_to_int8, _pack_to_int32",
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE (format B), §D"};
  d.inputs = {"weight"};
  d.stages = {{"transposed", false, "weight.transpose(1, 2).contiguous(), int8 [E, K, N]"},
              {"paired", false, "_pack_int4_to_int8: int8 [E, K, N/2]"},
              {"packed", true, "paired.view(int32), int32 [E, K, N/8]"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = ref::w4a8_llmcompressor_pack(in.at("weight"));  // checks the input
    out["transposed"] = ref::transpose_last_two(in.at("weight"));
    out["paired"] = ref::w4a8_pack_int4_pairs(out["transposed"]);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::w4a8_llmcompressor_pack(in.at("weight"));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_llmcompressor_pack
}  // namespace qconf::conf
