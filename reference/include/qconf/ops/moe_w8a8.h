// The W8A8_DYNAMIC MoE scheme on the MoE layer skeleton (qconf/ops/moe_layer.h): its load-time
// transforms and its expert MLP callback (vllm-ascend quant_apply_mlp, W8A8, AllGather).
//
// Sources: notes/vllm_ascend_quant.md §A "W8A8_DYNAMIC MoE" (checkpoint, after loading), §C
// "Quantized MLP" (paths (a) fused and (b) MC2), pitfall 2 (scales rounded once to pdt at load);
// seed W8A8_DYNAMIC (AscendW8A8DynamicFusedMoEMethod.process_weights_after_loading / apply);
// ops/fused_moe/moe_mlp.py quant_apply_mlp (gmm1 group_list = cumsum_group_list(counts -> 0)).
#pragma once

#include <string_view>

#include "qconf/ops/moe_layer.h"

namespace qconf {

// Which branch of quant_apply_mlp runs gmm1 + SwiGLU + requant [code: moe_mlp.py]:
enum class W8a8MoeMlpPath {
  // (a) fusion_ops_gmmswigluquant on, no dynamic EPLB: npu_grouped_matmul_swiglu_quant(x, w13,
  //     cumsum group list, w13_weight_scale_fp32, x_scale) (double fp16 -> int8 rounding).
  kFused,
  // (b) MC2 without the fused op: npu_grouped_matmul(split_item 3, int32 out) then
  //     npu_dequant_swiglu_quant(weight_scale fp32, activation_scale, group_index counts,
  //     activate_left = True, quant_mode 1) (single rounding).
  kDequantSwiglu,
};
std::string_view w8a8_moe_mlp_path_name(W8a8MoeMlpPath p);   // "fused", "dequant_swiglu"
W8a8MoeMlpPath parse_w8a8_moe_mlp_path(std::string_view s);  // throws std::invalid_argument

// process_weights_after_loading of AscendW8A8DynamicFusedMoEMethod, for the local experts
// [start, start + count) (count < 0: all):
//   w13_weight int8 [E, 2I, H] -> transpose(1, 2) -> [E, H, 2I]   ("w13_weight_t")
//   w2_weight int8 [E, H, I] -> transpose(1, 2) -> [E, I, H]      ("w2_weight_t")
//   w13_weight_scale [E, 2I, 1] -> pdt param (RNE once) viewed [E, 2I] ("w13_scale_param"),
//     and its float32 copy w13_weight_scale_fp32 (exact)            ("w13_scale_fp32")
//   w2_weight_scale [E, H, 1] -> pdt param viewed [E, H]            ("w2_scale_param")
// The NZ cast changes the layout, not the values.
TensorMap w8a8_dynamic_moe_load(const Tensor& w13_weight, const Tensor& w13_weight_scale,
                                const Tensor& w2_weight, const Tensor& w2_weight_scale, DType pdt,
                                int64_t start = 0, int64_t count = -1);

// The gmm2 scale npu_grouped_matmul receives: the bf16 parameter for bf16 models; for fp16
// models the exact float32 widening of the fp16 parameter [inf: the op takes no fp16 scale].
Tensor w8a8_moe_gmm2_scale(const Tensor& w2_scale_param);

// The expert MLP (weights from w8a8_dynamic_moe_load). Stages recorded: "gmm1_dequant" float32
// [R, 2I] (acc * scales, exact), "swiglu" float32 [R, I] (bounded), "act_q" int8 [R, I] and
// "act_scale" float32 [R] (reachable); returns gmm2 = npu_grouped_matmul(act_q, w2, w2 scale,
// per_token_scale = act_scale, counts, output pdt) [R, H].
namespace ref {
Tensor w8a8_dynamic_expert_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& stages,
                               W8a8MoeMlpPath path);
}
namespace opt {
Tensor w8a8_dynamic_expert_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& stages,
                               W8a8MoeMlpPath path, int threads = 0);
}

}  // namespace qconf
