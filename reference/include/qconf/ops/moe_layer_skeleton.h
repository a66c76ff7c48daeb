// The body of the MoE layer skeleton (qconf/ops/moe_layer.h), written once and instantiated
// with the reference component ops (reference/ops/moe_layer.cpp) and the optimized ones
// (optimized/ops/moe_layer.cpp), so both implementations run the same steps in the same order.
// Ops must provide: route(args, cfg), init_routing(x, ids, cfg), unpermute(args),
// finalize(args) with the signatures of qconf::ref (the optimized ones take a thread count).
#pragma once

#include <cstdlib>

#include "qconf/numeric/float_format.h"
#include "qconf/ops/moe_layer.h"

namespace qconf::moe_detail {

// Step 2: topk_weights.to(in_dtype): float32 / float16 / bfloat16 -> dt, one RNE rounding
// (exact widening to fp32 first; torch's .to is round-to-nearest-even).
inline Tensor cast_weights(const Tensor& w, DType dt) {
  if (w.dtype() == dt) return w;
  Tensor o(dt, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) {
    float f;
    if (w.dtype() == DType::kF32)
      f = w.data<float>()[i];
    else if (w.dtype() == DType::kF16)
      f = num::f16_to_f32(w.data<uint16_t>()[i]);
    else
      f = num::bf16_to_f32(w.data<uint16_t>()[i]);
    if (dt == DType::kF32)
      o.data<float>()[i] = f;
    else
      o.data<uint16_t>()[i] = dt == DType::kF16 ? num::f32_to_f16(f) : num::f32_to_bf16(f);
  }
  return o;
}

template <typename Ops>
MoeLayerStages run_moe_layer(const MoeLayerArgs& a, const MoeLayerConfig& cfg,
                             const ExpertMlpFn& mlp, const Ops& ops) {
  check_moe_layer_args(a, cfg);
  const Tensor& x = *a.x;
  const int64_t t_count = x.dim(0), experts = a.router_logits->dim(1), k = cfg.routing.top_k;
  MoeLayerStages st;

  // Step 1: router (the variant in cfg.routing), with the expert map of the local range so the
  // weights of non-local experts are 0 (token_dispatcher: topk_weights *= expert_map[ids] != -1).
  st.expert_map = moe_expert_map(experts, cfg);
  RoutingArgs ra;
  ra.logits = a.router_logits;
  ra.bias = a.bias;
  ra.expert_map = st.expert_map.numel() ? &st.expert_map : nullptr;
  st.routing = ops.route(ra, cfg.routing);

  // Step 2: topk_weights.to(in_dtype) (W8A8_DYNAMIC apply: topk_weights.to(self.in_dtype)).
  st.topk_weights = cast_weights(st.routing.topk_weights, x.dtype());

  // Step 3: AllGather dispatch: init_routing_v2 with counts, the local range, quant_mode.
  st.dispatch =
      ops.init_routing(x, st.routing.topk_ids, moe_dispatch_config(t_count, experts, cfg));
  const int64_t rows = st.dispatch.expanded_x.dim(0);
  st.expanded_token = Tensor(DType::kI32, {rows});
  for (int64_t i = 0; i < rows; ++i)
    st.expanded_token.data<int32_t>()[i] =
        static_cast<int32_t>(st.dispatch.sorted_row_idx.data<int32_t>()[i] / k);

  // Step 4: the scheme's expert MLP on the expanded rows (group_list = counts, type 1).
  ExpertMlpInput mi;
  mi.x = &st.dispatch.expanded_x;
  mi.x_scale = cfg.dispatch_quant_mode == 1 ? &st.dispatch.expanded_scale : nullptr;
  mi.counts = &st.dispatch.expert_tokens;
  int64_t valid = 0;
  for (int64_t e = 0; e < st.dispatch.expert_tokens.numel(); ++e)
    valid += st.dispatch.expert_tokens.int_at(e);
  mi.valid_rows = valid;
  mi.out_dtype = x.dtype();
  static const TensorMap kNoWeights;
  st.expert_out = mlp(mi, a.weights ? *a.weights : kNoWeights, st.mlp);
  if (st.expert_out.dtype() != x.dtype() || st.expert_out.rank() != 2 ||
      st.expert_out.dim(0) != rows || st.expert_out.dim(1) != x.dim(1))
    throw std::logic_error("moe_layer: the expert MLP must return " +
                           Tensor(x.dtype(), {rows, x.dim(1)}).describe() + ", got " +
                           st.expert_out.describe());

  // Step 5: combine. expanded_row_idx is the gather form [T*k] (token-major, -1 for tokens
  // routed to a non-local expert).
  const Tensor& eri = st.dispatch.expanded_row_idx;
  st.combine_index = Tensor(DType::kI32, {t_count * k});
  st.ep_combine = cfg.local_count >= 0 && cfg.local_count < experts;
  if (!st.ep_combine) {
    // token_combine: npu_moe_token_unpermute(hidden, abs(expanded_row_idx), topk_weights).
    for (int64_t i = 0; i < t_count * k; ++i)
      st.combine_index.data<int32_t>()[i] = std::abs(eri.data<int32_t>()[i]);
    TokenUnpermuteArgs ua;
    ua.permuted = &st.expert_out;
    ua.indices = &st.combine_index;
    ua.probs = &st.topk_weights;
    st.combine = ops.unpermute(ua);
  } else {
    // EP rank: finalize_routing, token-major index (drop_pad_mode 2), -1 contributes nothing
    // (vllm-ascend's |-1| = 1 with weight 0 is not a permutation; docs/divergences.md).
    std::memcpy(st.combine_index.bytes(), eri.bytes(), eri.nbytes());
    FinalizeRoutingArgs fa;
    fa.rows = &st.expert_out;
    fa.scales = &st.topk_weights;
    fa.src_to_dst = &st.combine_index;
    fa.drop_pad_mode = 2;
    st.combine = ops.finalize(fa);
  }
  return st;
}

}  // namespace qconf::moe_detail
