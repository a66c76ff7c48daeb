// W8A8_MXFP8 (Ascend 950 / A5 only): vllm-ascend quantization/methods/w8a8_mxfp8.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes".
#include "qconf/schemes/mx.h"

namespace qconf::schemes::scheme_w8a8_mxfp8 {

std::vector<SchemeDef> make() {
  return mx_scheme_defs({.quant_type = "W8A8_MXFP8",
                         .summary = "fp8 e4m3 weights with e8m0 scales per 32 along K; activations "
                                    "npu_dynamic_mx_quant to fp8",
                         .upstream = "quantization/methods/w8a8_mxfp8.py",
                         .layer_types = {"linear", "moe"},
                         .fp4_weight = false});
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a8_mxfp8
