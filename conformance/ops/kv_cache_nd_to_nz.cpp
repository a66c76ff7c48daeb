// Op: kv_cache_nd_to_nz, the inverse of kv_cache_nz_to_nd: an int8 KV cache in ND
//   cache_nd int8 (num_blocks, block_size, num_kv_heads, head_size), head_size % 32 == 0
//   -> cache_nz int8 (num_blocks, num_kv_heads, head_size/32, block_size, 32),
//      nz[b, h, d/32, t, d%32] = nd[b, t, h, d]   (the inverse of permute(0, 3, 1, 2, 4)).
//
// 1. flags; 2. cases; 3. the OpDef. Math: reference/ops/nz.cpp, optimized/ops/nz.cpp.
#include "nz_vectors.h"

namespace qconf::conf {
namespace conformance_ops_kv_cache_nd_to_nz {

using namespace nz_vectors;  // NOLINT

constexpr const char* kOp = "kv_cache_nd_to_nz";

std::map<std::string, Note> kv_notes() {
  return {
      {"PermuteOrder",
       {"FUNCTIONALITY",
        "nz[b, h, d/32, t, d%32] = nd[b, t, h, d]. Here num_kv_heads == head_size/32 == "
        "block_size, so every other order of those axes keeps the shape; the values encode "
        "their ND position (nz_vectors.h).",
        "A port with another axis order writes keys where the attention kernel reads another "
        "head, token or channel."}},
      {"VaUnitTestShape",
       {"BASIC",
        "The shape of vllm-ascend's test_dequant_paged_kv_to_dense_round_trip: 2 blocks, 2 kv "
        "heads, head_size 32, block_size 32.",
        "The layout the upstream unit test pins."}},
      {"HeadChunks",
       {"FUNCTIONALITY",
        "head_size/32 > 1: each head is cut into 32-channel chunks, an axis between heads and "
        "tokens.",
        "A port that writes a whole head as one run interleaves channels of different "
        "tokens."}},
      {"BlockSizeNotPadded",
       {"EDGE_CASE",
        "block_size is not a multiple of 16 (8, 1): tokens are not padded to 16-row fractals.",
        "A port that pads tokens to 16 writes another shape."}},
      {"Random",
       {"BASIC", "Seeded uniform int8 over assorted cache shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

std::vector<CaseSpec> kv_cases() {
  std::vector<CaseSpec> v;
  for (const KvCacheShape& k : kv_cache_shapes()) {
    CaseSpec c;
    c.name = k.name;
    c.comment = std::string(k.comment) + "; ND " + shape_str(k.nd()) + " -> NZ " +
                shape_str(kv_cache_nz_shape(k.nd()));
    c.flags = k.flags;
    c.inputs["cache_nd"] = kv_cache_nd_input(k, kOp);
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make_kv_cache_nd_to_nz() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "int8 KV cache ND (num_blocks, block_size, num_kv_heads, head_size) -> vllm-ascend NZ "
      "(num_blocks, num_kv_heads, head_size/32, block_size, 32); nz[b, h, d/32, t, d%32] = "
      "nd[b, t, h, d] (inverse of permute(0, 3, 1, 2, 4)). Bits copied unchanged.";
  d.sources = {"notes/torch_npu_semantics.md §11",
               "vllm-ascend tests/ut/quantization/methods/test_kv_c8.py "
               "test_dequant_paged_kv_to_dense_round_trip (NZ_FMT_LAST_DIM = 32) [test]"};
  d.inputs = {"cache_nd"};
  d.stages = {{"cache_nz", true, "int8 (num_blocks, num_kv_heads, head_size/32, block_size, 32)"}};
  d.notes = kv_notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["cache_nz"] = ref::kv_cache_nd_to_nz(in.at("cache_nd"));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    out["cache_nz"] = opt::kv_cache_nd_to_nz(in.at("cache_nd"));
  };
#endif
  d.cases = kv_cases;
  return d;
}

QCONF_REGISTER_OP(make_kv_cache_nd_to_nz);

}  // namespace conformance_ops_kv_cache_nd_to_nz
}  // namespace qconf::conf
