// FAKQuant attention (MLA KV quantization): vllm-ascend quantization/methods/kv_c8.py.
// Source: notes/vllm_ascend_quant.md §A "Attention and KV cache", §B (fa_quant_type, the FA layer
// list from keys containing "fa_k.scale").
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_fakquant {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "FAKQuant";
  d.layer_type = "attention";
  d.summary =
      "per-head int8 (A2/A3; fp8 on A5) quantization of the MLA K cache: fak_descale = k scale "
      "[1, kvh], quant_kscale = 1/k_scale.repeat(kv_lora_rank); decode (KV-consumer) nodes only "
      "on A2/A3";
  d.upstream = "quantization/methods/kv_c8.py (FAKQuant)";
  d.sources = {"notes/vllm_ascend_quant.md §A Attention and KV cache"};
  d.tensors = {
      decl("fa_q.scale", {"Hq", "1"}, params_dtype(), "sharded by TP on dim 0 [inf: dtype]"),
      decl("fa_q.offset", {"Hq", "1"}, exact({"I8"}), ""),
      decl("fa_k.scale", {"Hkv", "1"}, params_dtype(), "fak_descale, 1/x repeated kv_lora_rank"),
      decl("fa_k.offset", {"Hkv", "1"}, exact({"I8"}), ""),
      decl("fa_v.scale", {"Hkv", "1"}, params_dtype(), ""),
      decl("fa_v.offset", {"Hkv", "1"}, exact({"I8"}), ""),
  };
  d.needs = {"MLA attention with an int8 K cache (npu_fused_infer_attention_score antiquant)"};
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_fakquant
