// W4A4_MXFP4 (Ascend 950 / A5 only): vllm-ascend quantization/methods/w4a4_mxfp4.py.
// Source: notes/vllm_ascend_quant.md §A "MX schemes".
#include <string>

#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a4_mxfp4 {

std::vector<SchemeDef> make() {
  std::vector<SchemeDef> out;
  for (const char* lt : {"linear", "moe"}) {
    SchemeDef d;
    d.quant_type = "W4A4_MXFP4";
    d.layer_type = lt;
    d.hardware = "A5";
    d.summary =
        "fp4 e2m1 weights, two per byte (low nibble first), e8m0 scales per 32 along K; "
        "activations mx-quantized to fp4 (round_mode round)";
    d.upstream = "quantization/methods/w4a4_mxfp4.py";
    d.sources = {"notes/vllm_ascend_quant.md §A MX schemes"};
    const bool moe = std::string(lt) == "moe";
    const std::string n = moe ? "I" : "N", k = moe ? "H" : "K";
    const std::string n2 = moe ? "H" : "", k2 = moe ? "I" : "";
    auto add = [&](const std::string& rows, const std::string& cols, const std::string& role) {
      d.tensors.push_back(
          decl("weight", {rows, cols + "/2"}, exact({"U8"}), "[K, N] after load", kMs, role));
      d.tensors.push_back(
          decl("weight_scale", {rows, "cdiv(" + cols + ", 32)"}, exact({"U8", "F8_E8M0"}),
               "e8m0 (2^(u-127)); padded to even columns, [K/64, N, 2]", kMs, role));
    };
    if (moe) {
      add(n, k, "gate_up");
      add(n2, k2, "down");
    } else {
      add(n, k, "");
    }
    d.needs = {"npu_dynamic_mx_quant", "npu_quant_matmul with e8m0 group scales"};
    if (moe) d.needs.push_back("MoE routing/dispatch ops");
    out.push_back(std::move(d));
  }
  return out;
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a4_mxfp4
