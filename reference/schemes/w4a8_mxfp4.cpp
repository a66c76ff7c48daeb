// W4A8_MXFP (Ascend 950 / A5 only): vllm-ascend quantization/methods/w4a8_mxfp4.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes" [inf: tensor layout assumed to be
// W4A4_MXFP4's; the notes list the scheme, not its tensors].
#include "qconf/schemes/mx.h"

namespace qconf::schemes::scheme_w4a8_mxfp4 {

std::vector<SchemeDef> make() {
  return mx_scheme_defs({.quant_type = "W4A8_MXFP",
                         .summary = "fp4 e2m1 weights with e8m0 scales per 32, fp8 activations",
                         .upstream = "quantization/methods/w4a8_mxfp4.py",
                         .layer_types = {"linear", "moe"},
                         .fp4_weight = true});
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a8_mxfp4
