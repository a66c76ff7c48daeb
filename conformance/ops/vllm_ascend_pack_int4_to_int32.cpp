// Op: vllm_ascend_pack_int4_to_int32, vllm-ascend's device-agnostic fallback int4 packer
// (seed 002, w4a4_flatquant.py pack_int4_to_int32), used by pack_int4_weights() when
// torch_npu.npu_convert_weight_to_int4pack is unavailable. The math lives in
// reference/ops/packing.cpp and optimized/ops/packing.cpp.
#include <cstdio>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_vllm_ascend_pack_int4_to_int32 {

constexpr const char* kOp = "vllm_ascend_pack_int4_to_int32";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"OffsetBinary",
       {"FUNCTIONALITY",
        "Nibbles are offset binary: u = clamp(v) + 8 (-8 -> 0x0, -1 -> 0x7, 0 -> 0x8, 7 -> 0xF), "
        "from `.to(torch.uint8) + 8`, not two's complement as the NPU packs.",
        "A port that stores two's-complement nibbles is off by 8 in every weight."}},
      {"NibbleOrder",
       {"FUNCTIONALITY",
        "Element 8j+i is shifted by 4i into word j (LSB first), the same order as the NPU op: "
        "distinct values per position make a reversed order visible.",
        "A port that shifts by 4*(7-i) or packs big-endian bytes reverses the nibbles."}},
      {"ClampNotWrap",
       {"EDGE_CASE",
        "Values outside [-8, 7] are clamped by torch.clamp (9 -> 7, -10 -> -8, 127 -> 7), not "
        "wrapped to their low nibble as npu_convert_weight_to_int4pack does.",
        "A port that masks with 0xF gives other words for out-of-range checkpoints."}},
      {"DiffersFromNpuInt4pack",
       {"DIVERGENCE",
        "This packer is the fallback of pack_int4_weights() for npu_convert_weight_to_int4pack, "
        "but its words differ for EVERY input: in range, its word is the NPU word XOR 0x88888888 "
        "(offset binary vs two's complement); out of range, clamp vs wrap differs further. Each "
        "vector's comment gives the NPU word for the same input (docs/divergences.md).",
        "Weights packed by the fallback and consumed by npu_quant_matmul (which reads two's "
        "complement) are all off by 8: v -> v + 8 for v < 0 and v - 8 for v >= 0."}},
      {"SignBitWord",
       {"EDGE_CASE",
        "The top nibble is >= 8 (any v >= 0 in element 7), so the int32 word is negative: the "
        "i = 7 term 15 << 28 overflows int32 in torch and must wrap, not saturate.",
        "A saturating or sign-extending word assembly corrupts the top nibble."}},
      {"ZeroIsNotZero",
       {"EDGE_CASE",
        "v = 0 packs to nibble 8: an all-zero weight packs to 0x88888888, not 0 (so the case is "
        "not degenerate).",
        "A port that special-cases zeros, or zero-fills, gives 0 words."}},
      {"Int32Input",
       {"FUNCTIONALITY",
        "int32 input (the dtype the NPU path converts to); clamping happens before the uint8 "
        "cast, so INT32_MIN/MAX clamp to -8/7.",
        "A port that casts to uint8 before clamping keeps only the low byte."}},
      {"Int8Extremes",
       {"EDGE_CASE", "int8 -128 and 127 (the checkpoint dtype's extremes) clamp to -8 and 7.",
        "An int8 overflow in the +8 before clamping turns 127 into -121."}},
      {"HigherRank",
       {"FUNCTIONALITY", "1-D and 3-D inputs: the last dim packs, leading dims are batch.",
        "Packing across the wrong dim mixes rows."}},
      {"SimdTail",
       {"EDGE_CASE",
        "Row lengths that are not a multiple of common vector widths, so a vectorized port runs "
        "its tail path.",
        "Tail loops that skip or over-read the last words."}},
      {"Random",
       {"BASIC",
        "Seeded uniform values over assorted shapes (in range, or the full int8/int32 "
        "range).",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
std::string npu_words(const Tensor& w) {
  // The NPU op's words for the same input (wrapping), for the comments.
  Tensor as32(DType::kI32, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i)
    as32.data<int32_t>()[i] = static_cast<int32_t>(w.int_at(i));
  if (as32.rank() > 3 || as32.rank() < 2)
    as32 = Tensor::from<int32_t>({1, w.numel()}, as32.to_vector<int32_t>());
  const Tensor p = ref::npu_convert_weight_to_int4pack(as32);
  std::string s;
  for (int64_t j = 0; j < std::min<int64_t>(p.numel(), 4); ++j) {
    char b[16];
    std::snprintf(b, sizeof b, "%s0x%08x", j ? ", " : "",
                  static_cast<uint32_t>(p.data<int32_t>()[j]));
    s += b;
  }
  return "; npu_convert_weight_to_int4pack gives " + s + (p.numel() > 4 ? ", ..." : "");
}

template <typename T>
CaseSpec literal(std::string name, std::string comment, std::vector<std::string> flags, Shape shape,
                 std::vector<T> values) {
  CaseSpec c;
  c.name = std::move(name);
  c.flags = std::move(flags);
  c.inputs["weight"] = Tensor::from<T>(std::move(shape), values);
  c.comment = std::move(comment) + npu_words(c.inputs["weight"]);
  return c;
}

CaseSpec random_case(const std::string& name, DType dt, Shape shape, int64_t lo, int64_t hi,
                     std::vector<std::string> flags) {
  CaseSpec c;
  c.name = name;
  c.comment = "uniform " + std::string(dtype_name(dt)) + " in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "], shape " + shape_str(shape);
  flags.insert(flags.begin(), "Random");
  c.flags = std::move(flags);
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  c.inputs["weight"] = gen::int_tensor(dt, std::move(shape), lo, hi, seed, 0);
  return c;
}

std::vector<CaseSpec> cases() {
  using V8 = std::vector<int8_t>;
  std::vector<CaseSpec> v;
  v.push_back(literal("ascending_m8_to_7",
                      "-8..7 packs to 0x76543210, 0xfedcba98 (u = 0..15); the NPU packs the "
                      "same values the other way round",
                      {"OffsetBinary", "NibbleOrder", "SignBitWord", "DiffersFromNpuInt4pack"},
                      {1, 16}, V8{-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7}));
  v.push_back(literal("zeros_pack_to_0x88888888", "all zero: every word is 0x88888888",
                      {"ZeroIsNotZero", "OffsetBinary", "SignBitWord", "DiffersFromNpuInt4pack"},
                      {2, 8}, V8(16, 0)));
  v.push_back(literal("single_low_nibble", "only element 0 = 1: 0x88888889", {"NibbleOrder"},
                      {1, 8}, V8{1, 0, 0, 0, 0, 0, 0, 0}));
  v.push_back(literal("single_top_nibble", "only element 7 = -8: 0x08888888 (top nibble 0)",
                      {"NibbleOrder", "DiffersFromNpuInt4pack"}, {1, 8},
                      V8{0, 0, 0, 0, 0, 0, 0, -8}));
  v.push_back(literal("offset_binary_separator",
                      "values whose two's-complement and offset-binary nibbles differ in every "
                      "position",
                      {"OffsetBinary", "DiffersFromNpuInt4pack"}, {1, 8},
                      V8{0, -8, 7, -1, 3, -4, 1, -2}));
  v.push_back(literal("clamp_out_of_range_int8",
                      "8 -> 7, -9 -> -8, 15 -> 7, -16 -> -8, 127 -> 7, -128 -> -8, 100 -> 7, "
                      "-100 -> -8: 0x0f0f0f0f",
                      {"ClampNotWrap", "Int8Extremes", "DiffersFromNpuInt4pack"}, {1, 8},
                      V8{8, -9, 15, -16, 127, -128, 100, -100}));
  v.push_back(literal(
      "clamp_vs_wrap_int32",
      "int32 9, -10, 23, -24, 1000, -1000, INT32_MAX, INT32_MIN clamp to "
      "7/-8 (the NPU op wraps them to -7, 6, 7, -8, 8->-8, ...)",
      {"ClampNotWrap", "Int32Input", "DiffersFromNpuInt4pack"}, {1, 8},
      std::vector<int32_t>{9, -10, 23, -24, 1000, -1000, std::numeric_limits<int32_t>::max(),
                           std::numeric_limits<int32_t>::min()}));
  v.push_back(
      literal("int32_in_range", "int32 input in range: same words as int8 input",
              {"Int32Input", "OffsetBinary"}, {2, 8},
              std::vector<int32_t>{-8, -7, -6, -5, -4, -3, -2, -1, 7, 6, 5, 4, 3, 2, 1, 0}));
  v.push_back(literal("rank1", "1-D [16]: two words", {"HigherRank"}, {16},
                      V8{7, 7, 7, 7, 7, 7, 7, 7, -8, -8, -8, -8, -8, -8, -8, -8}));
  {
    V8 vals;
    for (int e = 0; e < 2; ++e)
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 16; ++c)
          vals.push_back(static_cast<int8_t>((e * 5 + r * 3 + c) % 16 - 8));
    v.push_back(literal("rank3_experts", "3-D [2, 3, 16]: each row packs along its last dim",
                        {"HigherRank"}, {2, 3, 16}, vals));
  }
  v.push_back(random_case("random_int4_1x8", DType::kI8, {1, 8}, -8, 7, {}));
  v.push_back(random_case("random_int4_3x24", DType::kI8, {3, 24}, -8, 7, {"SimdTail"}));
  v.push_back(random_case("random_int4_7x72", DType::kI8, {7, 72}, -8, 7, {"SimdTail"}));
  v.push_back(random_case("random_int4_9x264", DType::kI8, {9, 264}, -8, 7, {"SimdTail"}));
  v.push_back(random_case("random_int8_full_5x40", DType::kI8, {5, 40}, -128, 127,
                          {"ClampNotWrap", "Int8Extremes", "SimdTail"}));
  v.push_back(random_case("random_int8_full_3x4x136", DType::kI8, {3, 4, 136}, -128, 127,
                          {"ClampNotWrap", "HigherRank", "SimdTail"}));
  v.push_back(random_case("random_int32_full_3x40", DType::kI32, {3, 40},
                          std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(),
                          {"Int32Input", "ClampNotWrap", "SimdTail"}));
  v.push_back(random_case("random_int32_int4_4x64", DType::kI32, {4, 64}, -8, 7, {"Int32Input"}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend pack_int4_to_int32 (fallback of pack_int4_weights): int8/int32 [.., n] -> "
      "int32 [.., n/8]; torch.clamp to [-8, 7], then offset binary u = v + 8, element 8j+i at "
      "bits [4i, 4i+3] of word j. Differs from npu_convert_weight_to_int4pack on every input.";
  d.sources = {"seed 002: vllm-ascend w4a4_flatquant.py pack_int4_to_int32, pack_int4_weights",
               "notes/vllm_ascend_quant.md §A W4A4_FLATQUANT_DYNAMIC, §D Packing conventions",
               "notes/torch_npu_semantics.md §0, §5 (the NPU layout it differs from)"};
  d.inputs = {"weight"};
  d.stages = {{"clamped", false, "torch.clamp(weight, -8, 7), int8"},
              {"offset_binary", false, "clamped.to(uint8) + 8: u in [0, 15], uint8"},
              {"packed", true, "int32 words, sum of u[8j+i] << 4i"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    out["clamped"] = ref::vllm_ascend_clamp_int4(w);
    out["offset_binary"] = ref::vllm_ascend_offset_binary(out["clamped"]);
    out["packed"] = ref::vllm_ascend_pack_int4_to_int32(w);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = opt::vllm_ascend_pack_int4_to_int32(in.at("weight"));
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_vllm_ascend_pack_int4_to_int32
}  // namespace qconf::conf
