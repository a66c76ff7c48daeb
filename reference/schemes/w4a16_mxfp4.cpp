// W4A16_MXFP4 (Ascend 950 / A5 only): vllm-ascend quantization/methods/w4a16_mxfp4.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes" [inf: tensor layout assumed to be
// W4A4_MXFP4's].
#include "qconf/schemes/mx.h"

namespace qconf::schemes::scheme_w4a16_mxfp4 {

std::vector<SchemeDef> make() {
  return mx_scheme_defs(
      {.quant_type = "W4A16_MXFP4",
       .summary =
           "fp4 e2m1 weights (value table in w4a16_mxfp4.py) with e8m0 scales, 16-bit activations",
       .upstream = "quantization/methods/w4a16_mxfp4.py",
       .layer_types = {"moe"},
       .fp4_weight = true});
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a16_mxfp4
