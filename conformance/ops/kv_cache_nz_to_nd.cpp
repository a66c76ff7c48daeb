// Op: kv_cache_nz_to_nd, vllm-ascend's int8 KV-cache NZ layout read back as ND:
//   cache_nz int8 (num_blocks, num_kv_heads, head_size/32, block_size, 32)
//   -> cache_nd = cache_nz.permute(0, 3, 1, 2, 4) contiguous, int8 (num_blocks, block_size,
//      num_kv_heads, head_size)   (vllm-ascend views it as (num_blocks * block_size, heads,
//      head_size): the same bytes).
//
// 1. flags; 2. cases; 3. the OpDef. Math: reference/ops/nz.cpp, optimized/ops/nz.cpp.
#include "nz_vectors.h"

namespace qconf::conf {
namespace conformance_ops_kv_cache_nz_to_nd {

using namespace nz_vectors;  // NOLINT

constexpr const char* kOp = "kv_cache_nz_to_nd";

std::map<std::string, Note> kv_notes() {
  return {
      {"PermuteOrder",
       {"FUNCTIONALITY",
        "nd[b, t, h, d] = nz[b, h, d/32, t, d%32] (permute(0, 3, 1, 2, 4)). Here num_kv_heads "
        "== head_size/32 == block_size, so every other order of those three axes keeps the "
        "shape; the values encode their ND position (nz_vectors.h).",
        "A port with another permutation (e.g. heads and head chunks swapped, or BNSD instead "
        "of BSND) reads keys of the wrong head, token or channel."}},
      {"VaUnitTestShape",
       {"BASIC",
        "The shape of vllm-ascend's test_dequant_paged_kv_to_dense_round_trip: 2 blocks, 2 kv "
        "heads, head_size 32, block_size 32.",
        "The layout the upstream unit test pins."}},
      {"HeadChunks",
       {"FUNCTIONALITY",
        "head_size/32 > 1: the 32-channel chunks of a head are an axis of their own, between "
        "heads and tokens.",
        "A port that treats head_size as one run (head_size/32 = 1) mixes channels across "
        "tokens."}},
      {"BlockSizeNotPadded",
       {"EDGE_CASE",
        "block_size is not a multiple of 16 (8, 1): unlike FRACTAL_NZ the token axis is not cut "
        "into 16-row fractals and nothing is padded.",
        "A port that pads tokens to 16 expects another NZ shape."}},
      {"Random",
       {"BASIC", "Seeded uniform int8 over assorted cache shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

CaseSpec kv_case(const std::string& name, const std::string& comment,
                 std::vector<std::string> flags, int64_t blocks, int64_t heads, int64_t head_size,
                 int64_t block_size, bool random) {
  const Shape nd_shape{blocks, block_size, heads, head_size};
  const Tensor nd = random ? random_bits(DType::kI8, nd_shape, std::string(kOp) + "/" + name)
                           : coord_tensor(DType::kI8, nd_shape);
  CaseSpec c;
  c.name = name;
  Tensor nz = ref::kv_cache_nd_to_nz(nd);
  c.comment = comment + "; NZ " + shape_str(nz.shape()) + " -> ND " + shape_str(nd_shape);
  if (random) flags.insert(flags.begin(), "Random");
  c.flags = std::move(flags);
  c.inputs["cache_nz"] = std::move(nz);
  return c;
}

std::vector<CaseSpec> kv_cases() {
  std::vector<CaseSpec> v;
  v.push_back(kv_case("va_unit_test_shape_2x2x32x32", "blocks 2, heads 2, head_size 32, bs 32",
                      {"VaUnitTestShape"}, 2, 2, 32, 32, false));
  v.push_back(kv_case("square_axes_2x4x128x4", "heads 4 == head_size/32 4 == block_size 4",
                      {"PermuteOrder", "HeadChunks"}, 2, 4, 128, 4, false));
  v.push_back(kv_case("head_chunks_2x3x64x8", "heads 3, head_size 64 (2 chunks), bs 8",
                      {"HeadChunks"}, 2, 3, 64, 8, false));
  v.push_back(
      kv_case("block_size_8_3x2x32x8", "block_size 8", {"BlockSizeNotPadded"}, 3, 2, 32, 8, false));
  v.push_back(kv_case("block_size_1_4x1x96x1", "block_size 1, one head of 3 chunks",
                      {"BlockSizeNotPadded"}, 4, 1, 96, 1, false));
  v.push_back(kv_case("random_2x2x96x4", "random int8", {"HeadChunks", "BlockSizeNotPadded"}, 2, 2,
                      96, 4, true));
  v.push_back(kv_case("random_1x3x64x16", "random int8", {"HeadChunks"}, 1, 3, 64, 16, true));
  return v;
}

OpDef make_kv_cache_nz_to_nd() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend int8 KV cache NZ (num_blocks, num_kv_heads, head_size/32, block_size, 32) "
      "-> ND (num_blocks, block_size, num_kv_heads, head_size) = permute(0, 3, 1, 2, 4); "
      "nd[b, t, h, d] = nz[b, h, d/32, t, d%32]. Bits copied unchanged.";
  d.sources = {"notes/torch_npu_semantics.md §11",
               "vllm-ascend tests/ut/quantization/methods/test_kv_c8.py "
               "test_dequant_paged_kv_to_dense_round_trip (NZ_FMT_LAST_DIM = 32) [test]"};
  d.inputs = {"cache_nz"};
  d.stages = {{"cache_nd", true, "int8 (num_blocks, block_size, num_kv_heads, head_size)"}};
  d.notes = kv_notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["cache_nd"] = ref::kv_cache_nz_to_nd(in.at("cache_nz"));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["cache_nd"] = opt::kv_cache_nz_to_nd(in.at("cache_nz"));
  };
#endif
  d.cases = kv_cases;
  return d;
}

QCONF_REGISTER_OP(make_kv_cache_nz_to_nd);

}  // namespace conformance_ops_kv_cache_nz_to_nd
}  // namespace qconf::conf
