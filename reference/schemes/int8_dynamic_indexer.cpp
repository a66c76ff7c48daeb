// INT8_DYNAMIC attention (DSA indexer): vllm-ascend quantization/methods/kv_c8.py.
// Source: notes/vllm_ascend_quant.md §A "Attention and KV cache", §B (indexer_quant_type and
// "{prefix}.indexer.quant_type" keys).
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_int8_dynamic_indexer {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "INT8_DYNAMIC";
  d.layer_type = "attention";
  d.summary = "DSA indexer: q and k rotated by fp32 [D, D] matrices, then dynamic int8";
  d.upstream = "quantization/methods/kv_c8.py (INT8_DYNAMIC)";
  d.sources = {"notes/vllm_ascend_quant.md §A Attention and KV cache"};
  d.tensors = {
      decl("indexer.q_rot", {"D", "D"}, exact({"F32"}), ""),
      decl("indexer.k_rot", {"D", "D"}, exact({"F32"}), ""),
  };
  d.needs = {"the DSA indexer (rotation + dynamic int8 + lightning indexer)"};
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_int8_dynamic_indexer
