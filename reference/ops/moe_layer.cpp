// The MoE layer skeleton, reference instantiation (qconf/ops/moe_layer.h), its validation and
// the MoE load-time helpers.
#include "qconf/ops/moe_layer.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/ops/moe_layer_skeleton.h"

namespace qconf {

namespace {
[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("moe_layer: " + what);
}
bool is_half(DType d) { return d == DType::kBF16 || d == DType::kF16; }
}  // namespace

void check_moe_layer_args(const MoeLayerArgs& a, const MoeLayerConfig& cfg) {
  if (!a.x || !a.router_logits) fail("x and router_logits are required");
  const Tensor& x = *a.x;
  if (!is_half(x.dtype()) || x.rank() != 2)
    fail("x must be bfloat16/float16 [T, H] (the params dtype), got " + x.describe());
  const Tensor& l = *a.router_logits;
  if (l.rank() != 2 || l.dim(0) != x.dim(0))
    fail("router_logits must be [T, E] with T = " + std::to_string(x.dim(0)) + ", got " +
         l.describe());
  const int64_t e = l.dim(1);
  if (cfg.local_count >= 0 &&
      (cfg.local_start < 0 || cfg.local_count == 0 || cfg.local_start + cfg.local_count > e))
    fail("local expert range [" + std::to_string(cfg.local_start) + ", " +
         std::to_string(cfg.local_start + cfg.local_count) + ") must be a non-empty part of [0, " +
         std::to_string(e) + ")");
  if (cfg.dispatch_quant_mode != 1 && cfg.dispatch_quant_mode != -1)
    fail("dispatch_quant_mode must be 1 (dynamic int8) or -1 (none), got " +
         std::to_string(cfg.dispatch_quant_mode));
  if (cfg.routing.zero_experts != 0) fail("zero experts are not part of the layer skeleton");
}

Tensor moe_expert_map(int64_t experts, const MoeLayerConfig& cfg) {
  if (cfg.local_count < 0 || cfg.local_count >= experts) return Tensor(DType::kI32, {0});
  Tensor m(DType::kI32, {experts});
  for (int64_t e = 0; e < experts; ++e)
    m.data<int32_t>()[e] = e >= cfg.local_start && e < cfg.local_start + cfg.local_count
                               ? static_cast<int32_t>(e - cfg.local_start)
                               : -1;
  return m;
}

InitRoutingV2Config moe_dispatch_config(int64_t tokens, int64_t experts,
                                        const MoeLayerConfig& cfg) {
  // TokenDispatcherWithAllGather.token_dispatch: active_num = num_tokens * top_k,
  // expert_tokens_num_type = 1, expert_tokens_num_flag = True; with an expert map
  // expert_num = len(expert_map) and range [rank * E_loc, (rank + 1) * E_loc), else
  // expert_num = E_loc and range [0, E_loc).
  InitRoutingV2Config c;
  c.active_num = tokens * cfg.routing.top_k;
  c.expert_num = experts;
  c.expert_tokens_type = GroupListType::kCount;
  c.expert_tokens_flag = true;
  c.quant_mode = cfg.dispatch_quant_mode;
  c.dyn_formula = cfg.dispatch_formula;
  const bool all = cfg.local_count < 0 || cfg.local_count >= experts;
  c.range_start = all ? 0 : cfg.local_start;
  c.range_end = all ? experts : cfg.local_start + cfg.local_count;
  c.row_idx_type = RowIdxType::kGather;
  return c;
}

namespace ref {
namespace {
struct RefOps {
  RoutingStages route(const RoutingArgs& a, const RoutingConfig& c) const {
    return ref::moe_gating_top_k(a, c);
  }
  InitRoutingV2Stages init_routing(const Tensor& x, const Tensor& ids,
                                   const InitRoutingV2Config& c) const {
    return ref::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c);
  }
  CombineStages unpermute(const TokenUnpermuteArgs& a) const {
    return ref::npu_moe_token_unpermute(a);
  }
  CombineStages finalize(const FinalizeRoutingArgs& a) const {
    return ref::npu_moe_finalize_routing(a);
  }
};
}  // namespace

MoeLayerStages moe_layer(const MoeLayerArgs& a, const MoeLayerConfig& cfg, const ExpertMlpFn& mlp) {
  return moe_detail::run_moe_layer(a, cfg, mlp, RefOps{});
}
}  // namespace ref

namespace moe_load {

Tensor slice_experts(const Tensor& t, int64_t start, int64_t count) {
  if (t.rank() < 1 || start < 0 || count < 0 || start + count > t.dim(0))
    throw std::invalid_argument("moe_load::slice_experts: experts [" + std::to_string(start) +
                                ", " + std::to_string(start + count) + ") of " + t.describe());
  Shape s = t.shape();
  s[0] = count;
  Tensor o(t.dtype(), s);
  const size_t per = t.dim(0) ? t.nbytes() / static_cast<size_t>(t.dim(0)) : 0;
  if (per != 0 && count != 0)
    std::memcpy(o.bytes(), t.bytes() + per * static_cast<size_t>(start),
                per * static_cast<size_t>(count));
  return o;
}

Tensor transpose_12(const Tensor& t) {
  if (t.rank() != 3)
    throw std::invalid_argument("moe_load::transpose_12: expected [E, A, B], got " + t.describe());
  const int64_t e = t.dim(0), a = t.dim(1), b = t.dim(2);
  const size_t es = dtype_size(t.dtype());
  Tensor o(t.dtype(), {e, b, a});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j)
        std::memcpy(o.bytes() + ((x * b + j) * a + i) * es, t.bytes() + ((x * a + i) * b + j) * es,
                    es);
  return o;
}

Tensor scale_param(const Tensor& s, DType pdt) {
  if (s.rank() < 2 || (s.rank() == 3 && s.dim(2) != 1) || s.rank() > 3)
    throw std::invalid_argument("moe_load::scale_param: expected [E, N, 1] or [E, N], got " +
                                s.describe());
  Tensor p = ckpt::to_params_dtype(s, pdt);
  Tensor v(p.dtype(), {s.dim(0), s.dim(1)});
  std::memcpy(v.bytes(), p.bytes(), p.nbytes());
  return v;
}

}  // namespace moe_load
}  // namespace qconf
