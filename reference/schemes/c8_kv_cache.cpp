// C8 KV cache: vllm-ascend quantization/methods/kv_c8.py AscendC8KVCacheAttentionMethod. Not in
// vllm-ascend's registry: built directly when kv_cache_type == "C8" for layers that have a
// "k_proj.kv_cache_scale" key. Source: notes/vllm_ascend_quant.md §A, §B.
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_c8_kv_cache {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "C8";
  d.layer_type = "kv_cache";
  d.in_vllm_registry = false;
  d.summary =
      "per-channel int8 K/V cache: q = clamp(round_half_even(k * (1/scale) + offset), -128, 127) "
      "with each op in the model dtype; dequant (q - offset) * scale (dense path), q * scale (NZ "
      "variant) or FIA's antiquant [inf]";
  d.upstream = "quantization/methods/kv_c8.py AscendC8KVCacheAttentionMethod";
  d.sources = {"notes/vllm_ascend_quant.md §A Attention and KV cache",
               "attention/attention_v1.py _quantize_kv_to_int8"};
  d.tensors = {
      decl("k_proj.kv_cache_scale", {"C"}, params_dtype(),
           "C = kvh * D; squeezed and cast to the model dtype (the param is created in "
           "torch.get_default_dtype()); TP-sliced by kv head at first use"),
      decl("k_proj.kv_cache_offset", {"C"}, params_dtype(), ""),
      decl("v_proj.kv_cache_scale", {"C"}, params_dtype(), ""),
      decl("v_proj.kv_cache_offset", {"C"}, params_dtype(), ""),
  };
  d.pipeline_op = "scheme_c8_kv_cache";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_c8_kv_cache
