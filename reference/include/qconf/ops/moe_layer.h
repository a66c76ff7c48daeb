// The MoE layer skeleton shared by every MoE quantization scheme (W8A8_DYNAMIC, W4A8_DYNAMIC,
// W4A16, ...): vllm-ascend's AllGather path of one MoE layer, from hidden states and router
// logits to the combined output, with the scheme's expert MLP plugged in as a callback.
//
//   1. router          moe_gating_top_k (variant from RoutingConfig: fused_ascend sigmoid + bias
//                      grouped for DeepSeek-V3, softmax for others)
//                      [notes/vllm_ascend_quant.md §C "Router selection", "Fused kernel
//                      semantics", "Native path"; torch_npu_semantics.md §7]
//   2. weights cast    topk_weights.to(in_dtype) (fused_moe apply; seed W8A8_DYNAMIC apply)
//                      [§C "After routing"]
//   3. dispatch        npu_moe_init_routing_v2(x, ids, active_num = T*k, expert_num,
//                      expert_tokens_num_type = 1 (counts), active_expert_range, quant_mode = 1
//                      when the scheme quantizes activations, else -1) [§C "Dispatch";
//                      torch_npu_semantics.md §8; token_dispatcher.py TokenDispatcherWithAllGather]
//   4. expert MLP      the scheme's callback: (expanded x, per-row scale, counts, stacked local
//                      weights) -> expert outputs [rows, H] in the params dtype
//                      [§C "Quantized MLP" (quant_apply_mlp)]
//   5. combine         npu_moe_token_unpermute(expert_out, |expanded_row_idx|, topk_weights)
//                      when every expert is local; with a local expert range (an EP rank) the
//                      unpermute's index is not a permutation (|-1| = 1 for tokens routed to no
//                      local expert, weight 0): the skeleton combines with
//                      npu_moe_finalize_routing (drop_pad_mode 2: token-major, -1 adds nothing),
//                      docs/divergences.md "MoE layer EP combine" [§C "Dispatch";
//                      torch_npu_semantics.md §9].
//
// The same skeleton runs in qconf::ref (reference component ops) and qconf::opt (optimized
// component ops); the callback decides which expert-MLP ops it uses.
//
// Load-time helpers (process_weights_after_loading of the MoE schemes) are here too: the
// checkpoint's per-expert tensors arrive stacked ([E, 2I, H] gate rows then up rows, [E, H, I]),
// are sliced to the local experts and transposed on dims 1 and 2 (the NZ cast changes layout,
// not values) [§A "W8A8_DYNAMIC MoE"; seed W8A8_DYNAMIC process_weights_after_loading].
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "qconf/core/tensor.h"
#include "qconf/ops/dispatch.h"
#include "qconf/ops/routing.h"

namespace qconf {

struct MoeLayerConfig {
  RoutingConfig routing;
  // The local experts [local_start, local_start + local_count) of this rank (the stacked
  // weights the callback receives hold exactly these). local_count < 0: every expert is local
  // (no expert_map; vllm-ascend's AllGather dispatcher then uses range [0, E) and expert_num E).
  int64_t local_start = 0;
  int64_t local_count = -1;
  // quant_mode of init_routing_v2: 1 (dynamic per-row int8, W8A8/W4A8) or -1 (none, W4A16).
  int dispatch_quant_mode = 1;
  // The per-row quant formula of quant_mode 1 (the dispatch op's variant).
  DynQuantFormula dispatch_formula = DynQuantFormula::kDivScale;
};

// What the expert MLP receives from the dispatch.
struct ExpertMlpInput {
  const Tensor* x = nullptr;        // expanded_x [R, H]: int8 (quant_mode 1) or the x dtype
  const Tensor* x_scale = nullptr;  // float32 [R] per-row scale (quant_mode 1), else null
  const Tensor* counts = nullptr;   // int64 [E_local]: tokens per local expert (group_list
                                    // type 1, count), rows in expert order
  int64_t valid_rows = 0;           // sum(counts) (== R in the AllGather path)
  DType out_dtype = DType::kBF16;   // the params dtype: the MLP's output dtype
};

// The scheme's expert MLP: returns the expert outputs [R, H] in out_dtype and may record named
// intermediate stages (e.g. "gmm1_dequant", "swiglu", "act_q", "act_scale") into `stages`.
// `weights` are the scheme's post-load stacked local-expert tensors (e.g. w13 [E_loc, H, 2I]).
using ExpertMlpFn =
    std::function<Tensor(const ExpertMlpInput& in, const TensorMap& weights, TensorMap& stages)>;

struct MoeLayerArgs {
  const Tensor* x = nullptr;              // hidden states [T, H], params dtype
  const Tensor* router_logits = nullptr;  // [T, E] float32 / bfloat16 / float16
  const Tensor* bias = nullptr;           // e_score_correction_bias [E] float32, optional
  const TensorMap* weights = nullptr;     // passed to the callback unchanged
};

struct MoeLayerStages {
  RoutingStages routing;         // step 1
  Tensor expert_map;             // int32 [E] (-1 = not local); empty when every expert is local
  Tensor topk_weights;           // step 2: [T, k] in the x dtype (non-local experts 0)
  InitRoutingV2Stages dispatch;  // step 3
  Tensor expanded_token;         // int32 [R]: the token of expanded row i (sorted_row_idx / k)
  TensorMap mlp;                 // step 4: the callback's intermediates
  Tensor expert_out;             // step 4: [R, H] in the x dtype
  Tensor combine_index;          // step 5: int32 [T*k]: the index the combine receives
  CombineStages combine;         // step 5: combine.out = the layer output [T, H]
  bool ep_combine = false;       // true: finalize_routing (local range), false: token_unpermute
};

// Validation shared by both implementations: shapes, dtypes, the local range. Throws
// std::invalid_argument naming the argument.
void check_moe_layer_args(const MoeLayerArgs& a, const MoeLayerConfig& cfg);
// The expert map of a local range (int32 [E]: e - local_start inside, -1 outside); empty
// tensor when every expert is local.
Tensor moe_expert_map(int64_t experts, const MoeLayerConfig& cfg);
// The dispatch config the skeleton passes to npu_moe_init_routing_v2 for T tokens.
InitRoutingV2Config moe_dispatch_config(int64_t tokens, int64_t experts, const MoeLayerConfig& cfg);

namespace ref {
MoeLayerStages moe_layer(const MoeLayerArgs& a, const MoeLayerConfig& cfg, const ExpertMlpFn& mlp);
}
namespace opt {
// threads: 0 = default; results do not depend on it.
MoeLayerStages moe_layer(const MoeLayerArgs& a, const MoeLayerConfig& cfg, const ExpertMlpFn& mlp,
                         int threads = 0);
}  // namespace opt

// ---- load-time helpers (exact layout transforms, shared by ref and opt) ----------------------
namespace moe_load {
// Experts [start, start + count) of a stacked tensor [E, ...].
Tensor slice_experts(const Tensor& t, int64_t start, int64_t count);
// [E, A, B] -> [E, B, A] contiguous (transpose(1, 2).contiguous()).
Tensor transpose_12(const Tensor& t);
// A [E, N, 1] (or [E, N]) checkpoint scale as the params-dtype parameter viewed [E, N]: the
// float rounded once to pdt (RNE) at load (param.data.copy_), then view(E, -1).
Tensor scale_param(const Tensor& s, DType pdt);
}  // namespace moe_load

}  // namespace qconf
