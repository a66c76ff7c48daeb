// Op: w4a16_ct_repack_chain, what vllm-ascend's W4A16 MoE method (LLM-Compressor /
// compressed-tensors checkpoints) does to the expert weights in process_weights_after_loading:
// unpack_from_int32 (offset binary, along K) -> transpose [E, N, K] -> [E, K, N] ->
// npu_convert_weight_to_int4pack (two's complement, along N). Seed 004 introduced it. The math
// lives in reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_w4a16_ct_repack_chain {

constexpr const char* kOp = "w4a16_ct_repack_chain";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"OffsetBinaryIn",
       {"FUNCTIONALITY",
        "The checkpoint words are compressed-tensors offset binary (field u -> u - 8); the NPU "
        "words are two's complement: every output nibble is the input nibble XOR 8.",
        "Copying nibbles without the conversion makes every weight off by 8."}},
      {"TransposeBeforeRepack",
       {"FUNCTIONALITY",
        "The unpacked [E, N, K] is transposed to [E, K, N] before the NPU repack, so the output "
        "packs along N (the grouped matmul's int4 weight is [K, N/8] per expert). A review "
        "comment on vllm-ascend PR #6644 (seed 004) asked to drop the transpose; the merged "
        "code keeps it. Vectors with distinct (n, k) values make either mistake visible.",
        "A port without the transpose produces [E, N, K/8] words packed along K."}},
      {"NoCropByWeightShape",
       {"EDGE_CASE",
        "unpack_from_int32 is given the shape [E*N, (K/8)*8] computed from the PACKED width, "
        "not the checkpoint's weight_shape tensor (loaded, never used): nothing is cropped. "
        "get_weight asserts K % 8 == 0, so there is no padding to crop either.",
        "A port that crops to a weight_shape with K % 8 != 0 changes the output shape."}},
      {"LiteralWord",
       {"BASIC", "Rows of the word 0x76543210 (u = 0..7, values -8..-1 along K).",
        "Hand-checkable: output row k is all (k - 8), i.e. words 0x88888888 .. 0xffffffff."}},
      {"NegativeWords",
       {"EDGE_CASE", "Input words with the sign bit set (field 7 >= 8).",
        "Arithmetic shifts without a mask."}},
      {"Experts",
       {"FUNCTIONALITY", "E > 1: each expert is transposed on its own.", "Mixing experts."}},
      {"SimdTail",
       {"EDGE_CASE", "K/8 odd (a single word column left after pairs) and N not a multiple of 64.",
        "Blocked transposes that skip edge blocks."}},
      {"Random",
       {"BASIC", "Seeded full-range int32 words over assorted shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags,
                   Tensor w) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.inputs["weight_packed"] = std::move(w);
  return c;
}

CaseSpec random_case(const std::string& name, Shape shape, std::vector<std::string> flags) {
  flags.insert(flags.begin(), "Random");
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  return make_case(name, "uniform int32 words, weight_packed [E, N, K/8] = " + shape_str(shape),
                   flags, gen::int_tensor(DType::kI32, shape, INT32_MIN, INT32_MAX, seed, 0));
}

// Words of the 4-bit matrix u[e][n][k] (offset binary fields), packed along k.
Tensor words_from_fields(int64_t e, int64_t n, int64_t k, int (*u)(int64_t, int64_t, int64_t)) {
  Tensor t(DType::kI32, {e, n, k / 8});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k / 8; ++j) {
        uint32_t w = 0;
        for (int i = 0; i < 8; ++i) w |= static_cast<uint32_t>(u(x, r, 8 * j + i) & 0xF) << (4 * i);
        t.data<int32_t>()[(x * n + r) * (k / 8) + j] = static_cast<int32_t>(w);
      }
  return t;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(make_case("literal_0x76543210_rows",
                        "[1, 8, 1]: every row is 0x76543210 (values -8..-1 along K); output row "
                        "k is all k - 8: 0x88888888, 0x99999999, ..., 0xffffffff",
                        {"LiteralWord", "OffsetBinaryIn", "TransposeBeforeRepack"},
                        Tensor::from<int32_t>({1, 8, 1}, std::vector<int32_t>(8, 0x76543210))));
  v.push_back(
      make_case("index_pattern",
                "[2, 16, 2]: field u(e, n, k) = (n + 3k + 5e) mod 16; out nibble (k, n) = u ^ 8",
                {"OffsetBinaryIn", "TransposeBeforeRepack", "Experts", "NegativeWords"},
                words_from_fields(2, 16, 16, [](int64_t e, int64_t n, int64_t k) {
                  return static_cast<int>((n + 3 * k + 5 * e) % 16);
                })));
  v.push_back(make_case("single_field",
                        "[1, 8, 2]: only u(n = 3, k = 10) = 0xF (value 7), every other field 9 "
                        "(value 1): all words 0x11111111 except output row 10: 0x11117111",
                        {"TransposeBeforeRepack", "OffsetBinaryIn"},
                        words_from_fields(1, 8, 16, [](int64_t, int64_t n, int64_t k) {
                          return (n == 3 && k == 10) ? 0xF : 0x9;
                        })));
  v.push_back(random_case("random_1x8x1", {1, 8, 1}, {}));
  v.push_back(random_case("random_2x16x3", {2, 16, 3}, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_3x24x5", {3, 24, 5}, {"Experts", "SimdTail"}));
  v.push_back(random_case("random_1x72x2", {1, 72, 2}, {"SimdTail"}));
  v.push_back(random_case("random_2x16x8", {2, 16, 8}, {"Experts"}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A16 MoE (compressed-tensors): weight_packed int32 [E, N, K/8] -> "
      "unpack_from_int32 (u - 8, along K) -> int8 [E, N, K] -> transpose(1, 2).int() -> "
      "int32 [E, K, N] -> npu_convert_weight_to_int4pack -> int32 [E, K, N/8].";
  d.sources = {
      "vllm-ascend quantization/methods/w4a16.py (@01697b3e) AscendW4A16FusedMoEMethod."
      "process_weights_after_loading, unpack_from_int32, pack_to_int32",
      "seed 004: vllm-ascend PR #6644 (W4A16 via compressed-tensors)",
      "notes/vllm_ascend_quant.md §A W4A16 MoE, §D; notes/torch_npu_semantics.md §5"};
  d.inputs = {"weight_packed"};
  d.stages = {{"unpacked", false, "unpack_from_int32, int8 [E, N, K]"},
              {"transposed", false, "transpose(1, 2).contiguous().int(), int32 [E, K, N]"},
              {"packed", true, "npu_convert_weight_to_int4pack, int32 [E, K, N/8]"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight_packed");
    out["unpacked"] = ref::w4a16_unpack(w);
    out["transposed"] = ref::w4a16_transpose(out["unpacked"]);
    out["packed"] = ref::w4a16_ct_repack_chain(w);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::w4a16_ct_repack_chain(in.at("weight_packed"));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a16_ct_repack_chain
}  // namespace qconf::conf
