// W4A4_MXFP4_FLATQUANT linear (A5 only): vllm-ascend quantization/methods/w4a4_mxfp4_flatquant.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes" [inf: tensors assumed to be W4A4_MXFP4's
// plus FlatQuant's left_trans / right_trans / clip_ratio; the notes list the scheme only].
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a4_mxfp4_flatquant {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W4A4_MXFP4_FLATQUANT";
  d.layer_type = "linear";
  d.hardware = "A5";
  d.summary = "FlatQuant Kronecker rotation, then MXFP4 activations and weights [inf]";
  d.upstream = "quantization/methods/w4a4_mxfp4_flatquant.py";
  d.sources = {"notes/vllm_ascend_quant.md §A MX schemes"};
  d.tensors = {
      decl("weight", {"N", "K/2"}, exact({"U8"}), "fp4 e2m1, two per byte [inf]"),
      decl("weight_scale", {"N", "cdiv(K, 32)"}, exact({"U8", "F8_E8M0"}), "e8m0 [inf]"),
      decl("left_trans", {"L", "L"}, params_dtype(), "[inf]"),
      decl("right_trans", {"R", "R"}, params_dtype(), "[inf]"),
      decl("clip_ratio", {"1"}, exact({"F32"}), "[inf]"),
  };
  d.needs = {"npu_kronecker_quant (MX output)", "npu_quant_matmul with e8m0 group scales"};
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a4_mxfp4_flatquant
