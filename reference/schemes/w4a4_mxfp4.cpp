// W4A4_MXFP4 (Ascend 950 / A5 only): vllm-ascend quantization/methods/w4a4_mxfp4.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes".
#include "qconf/schemes/mx.h"

namespace qconf::schemes::scheme_w4a4_mxfp4 {

std::vector<SchemeDef> make() {
  return mx_scheme_defs(
      {.quant_type = "W4A4_MXFP4",
       .summary = "fp4 e2m1 weights, two per byte (low nibble first), e8m0 scales per 32 along K; "
                  "activations mx-quantized to fp4 (round_mode round)",
       .upstream = "quantization/methods/w4a4_mxfp4.py",
       .layer_types = {"linear", "moe"},
       .fp4_weight = true});
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a4_mxfp4
