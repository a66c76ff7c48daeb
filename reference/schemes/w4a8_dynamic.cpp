// W4A8_DYNAMIC MoE: vllm-ascend quantization/methods/w4a8.py (the linear scheme was removed in
// efda0446). Source: notes/vllm_ascend_quant.md §A "W4A8_DYNAMIC MoE" (formats A and B), seed
// W4A8_DYNAMIC.
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a8_dynamic {

std::vector<std::string> per_channel_only(const LayerContext& c) {
  auto it = c.description.find("group_size");
  if (it != c.description.end() && it->second != "0")
    return {"group_size = " + it->second +
            ": W4A8_DYNAMIC is per-channel only (w4a8.py raises when group_size > 0)"};
  return {};
}
std::vector<std::string> tp_at_most_16(const LayerContext& c) {
  auto it = c.symbols.find("tp");
  if (it != c.symbols.end() && (it->second > 16 || 16 % it->second != 0))
    return {"tp = " + std::to_string(it->second) +
            ": the down_proj scale_bias has 16 partial columns, split 16/tp per rank (tp > 16 "
            "is rejected)"};
  return {};
}

std::vector<SchemeDef> make() {
  SchemeDef m;
  m.quant_type = "W4A8_DYNAMIC";
  m.layer_type = "moe";
  m.summary =
      "int4 weights (ModelSlim: two per byte along the output dim; LLM-Compressor: one per int8), "
      "per-channel fp32 scales as int64 bits, scale_bias correction 8 * sum W * s; MSD "
      "grouped_matmul_swiglu_quant_v2 then gmm2";
  m.upstream = "quantization/methods/w4a8.py AscendW4A8DynamicFusedMoEMethod";
  m.sources = {"notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE, §C", "seed W4A8_DYNAMIC"};
  m.tensors = {
      // Format A, ModelSlim.
      decl("weight", {"I/2", "H"}, exact({"I8"}), "two int4 per byte along the output dim", kMs,
           "gate_up"),
      decl("weight", {"H/2", "I"}, exact({"I8"}), "two int4 per byte along the output dim", kMs,
           "down"),
      decl("weight_scale", {"I", "1"}, exact({"F32"}), "-> uint32 bits widened to int64", kMs,
           "gate_up"),
      decl("weight_scale", {"H", "1"}, exact({"F32"}), "-> int64, stays [E, 1, H]", kMs, "down"),
      decl("weight_offset", {"I", "1"}, exact({"F32"}), "unused", kMs, "gate_up"),
      decl("weight_offset", {"H", "1"}, exact({"F32"}), "unused", kMs, "down"),
      decl("scale_bias", {"I", "1"}, exact({"F32"}), "summed over dim 1 -> w13_scale_bias [E, 2I]",
           kMs, "gate_up"),
      decl("scale_bias", {"H", "16"}, exact({"F32"}),
           "16 partial columns; each rank loads 16/tp and sums them -> w2_scale_bias [E, H]", kMs,
           "down"),
      // Format B, LLM-Compressor (ascend_quant_method == "compressed-tensors").
      decl("weight", {"I", "H"}, exact({"I8"}), "one int4 value per int8, packed in-process", kCt,
           "gate_up"),
      decl("weight", {"H", "I"}, exact({"I8"}), "one int4 value per int8", kCt, "down"),
      decl("weight_scale", {"I", "1"}, exact({"BF16", "F32"}),
           "-> fp32 -> int64; scale_bias = 8 * sum_k W * s computed at load", kCt, "gate_up"),
      decl("weight_scale", {"H", "1"}, exact({"BF16", "F32"}), "-> fp32 -> int64", kCt, "down"),
  };
  m.checks = {per_channel_only, tp_at_most_16};
  // The whole layer (router, dispatch, combine around the expert MLP) from a checkpoint, in
  // either format (checkpoint --run sets param format from the checkpoint's); the expert MLP on
  // dispatched rows (load transforms included) is checked by scheme_w4a8_dynamic_moe too.
  m.pipeline_op = "scheme_w4a8_dynamic_moe_layer";
  m.part_ops = {"scheme_w4a8_dynamic_moe"};
  return {m};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a8_dynamic
