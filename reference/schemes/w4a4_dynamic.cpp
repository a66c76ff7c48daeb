// W4A4_DYNAMIC (LAOS) linear: vllm-ascend quantization/methods/w4a4_laos_dynamic.py.
// Source: notes/vllm_ascend_quant.md §A "W4A4_DYNAMIC (LAOS)".
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a4_dynamic {

std::vector<std::string> k_multiple_of_8(const LayerContext& c) {
  auto it = c.symbols.find("K");
  if (it != c.symbols.end() && it->second % 8 != 0)
    return {"K = " + std::to_string(it->second) +
            " is not a multiple of 8 (npu_convert_weight_to_int4pack packs 8 per int32)"};
  return {};
}

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W4A4_DYNAMIC";
  d.layer_type = "linear";
  d.summary =
      "int4 values in int8 [N, K] packed to int32 at load; npu_dynamic_quant to quint4x2, "
      "npu_quant_matmul int4 (fp16 output, cast to the model dtype) + bias";
  d.upstream = "quantization/methods/w4a4_laos_dynamic.py";
  d.sources = {"notes/vllm_ascend_quant.md §A W4A4_DYNAMIC (LAOS)"};
  d.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "npu_convert_weight_to_int4pack -> [N, K/8], .t()"),
      decl("weight_scale", {"N", "1"}, exact({"F32"}), "flattened"),
      decl("weight_offset", {"N", "1"}, exact({"F32"}), "unused"),
  };
  d.checks = {k_multiple_of_8};
  d.pipeline_op = "scheme_w4a4_dynamic_linear";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a4_dynamic
