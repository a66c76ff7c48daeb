// The MoE layer skeleton, optimized instantiation (qconf/ops/moe_layer.h): the same steps as the
// reference (qconf/ops/moe_layer_skeleton.h) with the optimized component ops (threaded router,
// counting-sort dispatch, SIMD combine). The expert MLP callback picks its own ops.
#include "qconf/ops/moe_layer.h"

#include "qconf/ops/moe_layer_skeleton.h"

namespace qconf::opt {
namespace {
struct OptOps {
  int threads = 0;
  RoutingStages route(const RoutingArgs& a, const RoutingConfig& c) const {
    return opt::moe_gating_top_k(a, c, threads);
  }
  InitRoutingV2Stages init_routing(const Tensor& x, const Tensor& ids,
                                   const InitRoutingV2Config& c) const {
    return opt::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c, threads);
  }
  CombineStages unpermute(const TokenUnpermuteArgs& a) const {
    return opt::npu_moe_token_unpermute(a, threads);
  }
  CombineStages finalize(const FinalizeRoutingArgs& a) const {
    return opt::npu_moe_finalize_routing(a, threads);
  }
};
}  // namespace

MoeLayerStages moe_layer(const MoeLayerArgs& a, const MoeLayerConfig& cfg, const ExpertMlpFn& mlp,
                         int threads) {
  OptOps ops;
  ops.threads = threads;
  return moe_detail::run_moe_layer(a, cfg, mlp, ops);
}

}  // namespace qconf::opt
