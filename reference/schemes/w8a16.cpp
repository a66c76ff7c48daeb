// W8A16 linear: vllm-ascend quantization/methods/w8a16.py.
// Source: notes/vllm_ascend_quant.md §A "W8A16" (antiquant adds the offset).
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w8a16 {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W8A16";
  d.layer_type = "linear";
  d.summary =
      "int8 weights, per-channel scale and offset in params dtype; "
      "npu_weight_quant_batchmatmul: x @ ((W + offset) * scale) + bias";
  d.upstream = "quantization/methods/w8a16.py AscendW8A16LinearMethod";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A16"};
  d.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "transposed to [K, N], NZ cast"),
      decl("weight_scale", {"N", "1"}, params_dtype(), "rounded to params dtype, flattened"),
      decl("weight_offset", {"N", "1"}, params_dtype(),
           "rounded to params dtype, flattened; ADDED"),
  };
  d.pipeline_op = "scheme_w8a16_linear";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a16
