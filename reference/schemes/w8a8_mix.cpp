// W8A8_MIX linear: vllm-ascend quantization/methods/w8a8_pdmix.py (static on decode nodes,
// dynamic otherwise, on one int8 weight). Source: notes/vllm_ascend_quant.md §A "W8A8_MIX".
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w8a8_mix {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W8A8_MIX";
  d.layer_type = "linear";
  d.summary =
      "the W8A8 static tensors and post-load processing; apply takes the static path on "
      "KV-consumer instances (kv_role kv_consumer or kv_both: decode nodes) and the dynamic path "
      "(weight_scale) otherwise, decided once per instance, not per batch";
  d.upstream = "quantization/methods/w8a8_pdmix.py";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8_MIX"};
  d.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "transposed to [K, N]"),
      decl("input_scale", {"1"}, params_dtype(), "static path: 1/x in params dtype"),
      decl("input_offset", {"1"}, exact({"I8"}), "static path"),
      decl("quant_bias", {"N"}, exact({"I32"}), "static path"),
      decl("deq_scale", {"N"}, by_params("F32", "I64"), "static path"),
      decl("weight_scale", {"N", "1"}, params_dtype(), "dynamic path scale"),
      decl("weight_offset", {"N", "1"}, params_dtype(), "unused"),
  };
  d.pipeline_op = "scheme_w8a8_mix_linear";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a8_mix
