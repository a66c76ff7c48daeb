// W8A8_DYNAMIC linear and MoE: vllm-ascend quantization/methods/w8a8_dynamic.py.
// Source: notes/vllm_ascend_quant.md §A "W8A8_DYNAMIC", "W8A8_DYNAMIC MoE"; seed W8A8_DYNAMIC.
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w8a8_dynamic {

std::vector<SchemeDef> make() {
  SchemeDef l;
  l.quant_type = "W8A8_DYNAMIC";
  l.layer_type = "linear";
  l.summary =
      "per-token dynamic int8 activations (npu_dynamic_quant), per-channel int8 weights, scale "
      "rounded to params dtype at load; npu_quant_matmul with pertoken_scale";
  l.upstream = "quantization/methods/w8a8_dynamic.py AscendW8A8DynamicLinearMethod";
  l.sources = {"notes/vllm_ascend_quant.md §A W8A8_DYNAMIC", "seed W8A8_DYNAMIC"};
  l.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "transposed to [K, N], NZ cast", kBoth),
      decl("weight_scale", {"N", "1"}, params_dtype(),
           "rounded to params dtype (RNE) at load, flattened; weight_scale_fp32 copy", kBoth),
      decl("weight_offset", {"N", "1"}, params_dtype(), "unused by apply"),
  };
  l.pipeline_op = "scheme_w8a8_dynamic_linear";

  SchemeDef m;
  m.quant_type = "W8A8_DYNAMIC";
  m.layer_type = "moe";
  m.summary =
      "MoE: w13 [E, 2I, H] (gate rows then up rows) and w2 [E, H, I] int8, per-channel scales in "
      "params dtype; gmm1 -> swiglu + dynamic quant -> gmm2";
  m.upstream = "quantization/methods/w8a8_dynamic.py AscendW8A8DynamicFusedMoEMethod";
  m.sources = {"notes/vllm_ascend_quant.md §A W8A8_DYNAMIC MoE, §C quantized MLP"};
  m.tensors = {
      decl("weight", {"I", "H"}, exact({"I8"}), "stacked into w13 [E, 2I, H], transposed", kBoth,
           "gate_up"),
      decl("weight_scale", {"I", "1"}, params_dtype(), "w13_weight_scale [E, 2I]", kBoth,
           "gate_up"),
      decl("weight_offset", {"I", "1"}, params_dtype(), "unused", kMs, "gate_up"),
      decl("weight", {"H", "I"}, exact({"I8"}), "w2 [E, H, I], transposed", kBoth, "down"),
      decl("weight_scale", {"H", "1"}, params_dtype(), "w2_weight_scale [E, H]", kBoth, "down"),
      decl("weight_offset", {"H", "1"}, params_dtype(), "unused", kMs, "down"),
  };
  m.pipeline_op = "scheme_w8a8_dynamic_moe";
  return {l, m};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a8_dynamic
