// W4A16 MoE (LLM-Compressor checkpoints only): vllm-ascend quantization/methods/w4a16.py.
// Source: notes/vllm_ascend_quant.md §A "W4A16 MoE", §D (packing); seed compressed-tensors W4A16.
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a16 {

std::vector<std::string> group_size_is_32(const LayerContext& c) {
  auto it = c.description.find("group_size");
  if (it != c.description.end() && it->second != "32")
    return {"description group_size = " + it->second +
            ": vllm-ascend sizes weight_scale with quant_description.get(\"group_size\", 32)"};
  return {};
}

std::vector<SchemeDef> make() {
  SchemeDef m;
  m.quant_type = "W4A16";
  m.layer_type = "moe";
  m.summary =
      "int4 weights packed 8 per int32 along K (offset binary), group scales with g = "
      "group_size (default 32, never set by the compressed-tensors path); unpack, transpose, "
      "npu_convert_weight_to_int4pack; grouped-matmul antiquant";
  m.upstream = "quantization/methods/w4a16.py AscendW4A16FusedMoEMethod";
  m.sources = {"notes/vllm_ascend_quant.md §A W4A16 MoE, §D", "seed compressed-tensors W4A16"};
  m.tensors = {
      decl("weight_packed", {"I", "H/8"}, exact({"I32"}), "unpack_from_int32 (v - 8)", kCt,
           "gate_up"),
      decl("weight_packed", {"H", "I/8"}, exact({"I32"}), "unpack_from_int32 (v - 8)", kCt, "down"),
      decl("weight_scale", {"I", "H/g"}, params_dtype(), "transposed to [E, K/g, N]", kCt,
           "gate_up"),
      decl("weight_scale", {"H", "I/g"}, params_dtype(), "transposed to [E, K/g, N]", kCt, "down"),
      decl("weight_shape", {"2"}, exact({"I32", "I64"}), "crops the padded columns", kCt,
           "gate_up"),
      decl("weight_shape", {"2"}, exact({"I32", "I64"}), "crops the padded columns", kCt, "down"),
  };
  m.checks = {group_size_is_32};
  // The whole layer (router, dispatch, combine around the expert MLP) from a checkpoint; the
  // expert MLP on dispatched rows (load transforms included) is checked by scheme_w4a16_moe too.
  m.pipeline_op = "scheme_w4a16_moe_layer";
  m.part_ops = {"scheme_w4a16_moe"};
  return {m};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a16
