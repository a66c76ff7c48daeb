// W8A8FP8_DYNAMIC linear and MoE: vllm-ascend quantization/methods/w8a8fp8_dynamic.py.
// Source: notes/vllm_ascend_quant.md §A "W8A8FP8_DYNAMIC", §D (compressed-tensors float 8-bit).
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w8a8fp8_dynamic {

std::vector<SchemeDef> make() {
  SchemeDef l;
  l.quant_type = "W8A8FP8_DYNAMIC";
  l.layer_type = "linear";
  l.summary =
      "fp8 e4m3 weights, fp32 per-channel scales; activations dynamically quantized to fp8; "
      "bias added after the matmul";
  l.upstream = "quantization/methods/w8a8fp8_dynamic.py";
  l.sources = {"notes/vllm_ascend_quant.md §A W8A8FP8_DYNAMIC"};
  l.tensors = {
      decl("weight", {"N", "K"}, exact({"F8_E4M3"}), "transposed", kBoth),
      decl("weight_scale", {"N", "1"}, exact({"F32"}), "", kBoth),
  };
  l.needs = {"npu_dynamic_quant(dst_type=float8_e4m3fn)", "npu_quant_matmul fp8"};
  SchemeDef m = l;
  m.layer_type = "moe";
  m.summary = "MoE form of W8A8FP8_DYNAMIC (QuantType.W8A8FP)";
  m.tensors = {
      decl("weight", {"I", "H"}, exact({"F8_E4M3"}), "w13", kBoth, "gate_up"),
      decl("weight_scale", {"I", "1"}, exact({"F32"}), "", kBoth, "gate_up"),
      decl("weight", {"H", "I"}, exact({"F8_E4M3"}), "w2", kBoth, "down"),
      decl("weight_scale", {"H", "1"}, exact({"F32"}), "", kBoth, "down"),
  };
  m.needs = {"fp8 dynamic quant", "fp8 grouped matmul", "MoE routing/dispatch ops"};
  return {l, m};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a8fp8_dynamic
