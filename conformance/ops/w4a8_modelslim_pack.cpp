// Op: w4a8_modelslim_pack, what vllm-ascend's W4A8_DYNAMIC MoE method does to msModelSlim
// "version 1.0.0" expert weights (two int4 per int8 along the output dim) in
// process_weights_after_loading: transpose(1, 2), then view the bytes as int32 (seed 001,
// w4a8.py). The math lives in reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_modelslim_pack {

constexpr const char* kOp = "w4a8_modelslim_pack";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"TransposeBeforeView",
       {"FUNCTIONALITY",
        "The checkpoint bytes [E, N/2, K] are transposed to [E, K, N/2] BEFORE the int32 view, "
        "so a word holds 4 consecutive bytes along the packed output dim (8 outputs of one "
        "input channel k). Byte values encode their (row, column) so any other grouping shows.",
        "A port that views first (packing along K) or transposes int32 words feeds the grouped "
        "matmul a scrambled weight."}},
      {"LittleEndianView",
       {"FUNCTIONALITY",
        "np.frombuffer(..., int32) / .view(int32): byte 0 of a word is bits 0..7 (little "
        "endian).",
        "A big-endian view reverses the 4 bytes of every word."}},
      {"BytesVerbatim",
       {"FUNCTIONALITY",
        "vllm-ascend does not touch the nibbles: both nibbles of every byte (0x7f, 0x80, 0xf8, "
        "...) reach the word unchanged. Which output ModelSlim stores in the low nibble is "
        "decided offline by msModelSlim and not in any source read (see MirrorsLlmCompressor).",
        "A port that re-packs, sign-extends, masks or swaps nibbles changes the weights."}},
      {"MirrorsLlmCompressor",
       {"LEGACY",
        "The checkpoint bytes are built from int4 values w [E, N, K] with output 2j in the low "
        "nibble: byte (j, k) = (w[2j+1, k] << 4) | (w[2j, k] & 0xF). vllm-ascend's "
        "LLM-Compressor path says it 'Packs 2 int4 into 1 int8 on-the-fly to mirror the "
        "modelslim new_quant_version path', and this order is the only one under which the NPU "
        "(element 8j+t in bits [4t, 4t+3]) reads w back; then the words equal "
        "w4a8_llmcompressor_pack(w). [inf: msModelSlim's own packer was not read]",
        "If msModelSlim used the high nibble for output 2j, every pair of outputs would be "
        "swapped on the NPU; this op would still pass (it does not touch nibbles)."}},
      {"SignBitWord",
       {"EDGE_CASE", "Bytes >= 0x80 in the top byte make the int32 word negative.",
        "Sign extension while assembling words."}},
      {"Experts",
       {"FUNCTIONALITY", "E > 1: each expert is transposed on its own.",
        "Transposing across experts."}},
      {"SimdTail",
       {"EDGE_CASE",
        "K and N/2 not multiples of 8 or 64, so a blocked transpose runs its edge paths.",
        "Edge tiles skipped or mis-addressed."}},
      {"Random",
       {"BASIC", "Seeded full-range int8 bytes over assorted shapes.",
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

CaseSpec random_case(const std::string& name, Shape shape, std::vector<std::string> flags) {
  flags.insert(flags.begin(), "Random");
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  return make_case(name, "uniform int8 bytes, shape [E, N/2, K] = " + shape_str(shape), flags,
                   gen::int_tensor(DType::kI8, shape, -128, 127, seed, 0));
}

// ModelSlim checkpoint bytes from int4 values w [E, N, K], output 2j in the low nibble.
Tensor modelslim_bytes(const std::vector<int8_t>& w, int64_t e, int64_t n, int64_t k) {
  Tensor b(DType::kI8, {e, n / 2, k});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t j = 0; j < n / 2; ++j)
      for (int64_t c = 0; c < k; ++c) {
        const auto lo = static_cast<uint8_t>(w[(x * n + 2 * j) * k + c]) & 0x0F;
        const auto hi = static_cast<uint8_t>(w[(x * n + 2 * j + 1) * k + c]) & 0x0F;
        b.data<int8_t>()[(x * (n / 2) + j) * k + c] = static_cast<int8_t>((hi << 4) | lo);
      }
  return b;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  {  // byte (j, k) = k << 4 | j: word k = bytes j = 0..3 -> 0x?3?2?1?0
    std::vector<int8_t> b;
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) b.push_back(static_cast<int8_t>((k << 4) | j));
    v.push_back(make_case("byte_index_pattern",
                          "[1, 4, 3], byte (j, k) = k << 4 | j: word k holds bytes j = 0..3 "
                          "of column k: 0x03020100, 0x13121110, 0x23222120",
                          {"TransposeBeforeView", "LittleEndianView"},
                          Tensor::from<int8_t>({1, 4, 3}, b)));
  }
  v.push_back(make_case("nibbles_verbatim",
                        "[1, 8, 1]: bytes 0x7f, 0x80, 0xf8, 0x01, 0x10, 0xff, 0x00, 0x5a pass "
                        "unchanged: words 0x01f8807f, 0x5a00ff10",
                        {"BytesVerbatim", "SignBitWord", "LittleEndianView"},
                        Tensor::from<int8_t>({1, 8, 1}, std::vector<int8_t>{0x7f, -128, -8, 0x01,
                                                                            0x10, -1, 0, 0x5a})));
  {  // int4 values w[e, n, k] = ((n + 3k + 5e) mod 16) - 8, E = 2, N = 16, K = 3
    const int64_t e = 2, n = 16, k = 3;
    std::vector<int8_t> w;
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c)
          w.push_back(static_cast<int8_t>((r + 3 * c + 5 * x) % 16 - 8));
    v.push_back(make_case("mirrors_llmcompressor",
                          "bytes from int4 w[e, n, k] = (n + 3k + 5e) mod 16 - 8 with output 2j "
                          "low: the words equal w4a8_llmcompressor_pack(w) and "
                          "npu_convert_weight_to_int4pack(w^T)",
                          {"MirrorsLlmCompressor", "Experts", "SignBitWord"},
                          modelslim_bytes(w, e, n, k)));
  }
  v.push_back(random_case("random_1x4x8", {1, 4, 8}, {}));
  v.push_back(random_case("random_2x8x13", {2, 8, 13}, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_3x12x37", {3, 12, 37}, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_1x64x64", {1, 64, 64}, {}));
  v.push_back(random_case("random_2x68x70", {2, 68, 70}, {"Experts", "SimdTail"}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8_DYNAMIC MoE, msModelSlim v1.0.0 weights: int8 [E, N/2, K] (two int4 "
      "per byte along the output dim N) -> transpose(1, 2) -> [E, K, N/2] -> view(int32) "
      "little-endian -> int32 [E, K, N/8]. Nibbles pass through untouched.";
  d.sources = {
      "seed 001: vllm-ascend PR #2392 w4a8_dynamic.py (new_quant_version pack_to_int32, "
      "process_weights_after_loading)",
      "vllm-ascend quantization/methods/w4a8.py (@01697b3e) _pack_to_int32, "
      "process_weights_after_loading_modelslim",
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE"};
  d.inputs = {"weight"};
  d.stages = {{"transposed", false, "weight.transpose(1, 2).contiguous(), int8 [E, K, N/2]"},
              {"packed", true, "transposed.view(int32), int32 [E, K, N/8]"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = ref::w4a8_modelslim_pack(in.at("weight"));
    out["transposed"] = ref::transpose_last_two(in.at("weight"));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::w4a8_modelslim_pack(in.at("weight"));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_modelslim_pack
}  // namespace qconf::conf
