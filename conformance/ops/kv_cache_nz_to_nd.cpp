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

std::vector<CaseSpec> kv_cases() {
  std::vector<CaseSpec> v;
  for (const KvCacheShape& k : kv_cache_shapes()) {
    Tensor nz = ref::kv_cache_nd_to_nz(kv_cache_nd_input(k, kOp));
    CaseSpec c;
    c.name = k.name;
    c.comment =
        std::string(k.comment) + "; NZ " + shape_str(nz.shape()) + " -> ND " + shape_str(k.nd());
    c.flags = k.flags;
    c.inputs["cache_nz"] = std::move(nz);
    v.push_back(std::move(c));
  }
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
