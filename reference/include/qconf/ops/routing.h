// MoE routing (gating top-k): the router variants of vllm-ascend, torch_npu and upstream vLLM.
// One signature, implemented in reference/ops/routing.cpp (qconf::ref: canonical values plus
// interval enclosures) and optimized/ops/routing.cpp (qconf::opt).
//
// Sources: notes/torch_npu_semantics.md §7, notes/vllm_ascend_quant.md §C (router selection,
// fused kernel semantics, native path, after routing) and §F (upstream vLLM).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf {

enum class Router {
  kFusedAscend,           // csrc/moe/moe_gating_top_k (group_select_mode=1), torch_npu op
  kNativeVllmAscend,      // vllm-ascend _native_grouped_topk: max group score, masked -> 0.0
  kVllmGroupedTopk,       // upstream grouped_topk: -inf mask, top-2 group score only with bias
  kVllmFusedTopkSoftmax,  // upstream fused_topk (topk_softmax_kernels.cu): no groups, no bias
  kOldSelectExperts,  // native path at vllm-ascend 4f3cc4c5: routed_scaling_factor applied twice
  // vllm-ascend AscendGroupedTopKRouter without use_grouped_topk (num_expert_group/topk_group
  // unset): topk(s + bias) sorted, the biased values are the weights, cast to the hidden dtype
  // before renormalizing (in that dtype), then * rsf (in that dtype).
  kNativeVllmAscendTopk,
  // upstream fused_topk_bias Python path for sqrtsoftplus: topk(s + bias) sorted, weights from
  // s, renormalized as w / clamp(sum, min=1e-20), fp32 weights.
  kVllmFusedTopkBias,
};
enum class Scoring { kSoftmax, kSigmoid, kSqrtSoftplus };
enum class GroupScore { kMax, kTop2Sum };
// How exact ties (bit-identical selection scores) are broken: the lower expert id first
// (AscendC Sort32 doc, upstream topk_softmax), or unspecified (torch.topk: every tied choice is
// acceptable).
enum class TieRule { kLowerIndex, kAny };
// Renormalization denominator: sum, sum + eps (Ascend kernels), max(sum, eps) (upstream
// sqrtsoftplus: clamp(min=1e-20)).
enum class RenormDenominator { kSum, kSumPlusEps, kClampEps };
// sqrt(softplus(x)) readings: ln(1 + exp(x)) step by step with no guard (Ascend hash kernel), or
// torch's softplus (x > 20: x, else log1p(exp(x))).
enum class SoftplusForm { kLnOnePlusExp, kTorch };

std::string_view router_name(Router r);    // "fused_ascend", ...
Router parse_router(std::string_view s);   // throws std::invalid_argument
std::string_view scoring_name(Scoring s);  // "softmax", "sigmoid", "sqrtsoftplus"
Scoring parse_scoring(std::string_view s);

// The documented assumption behind every bound of this op (docs/bounds.md, "moe_gating_top_k"):
// the platform's fp32 exp and log return a value within kTranscendentalUlp units in the last
// place of the exact value, i.e. within relative kTranscendentalUlp * 2^-23 (plus the same
// number of smallest subnormals). [inf] The AscendC Exp/Ln docs state no ulp accuracy; Highway's
// Exp is documented at 1 ULP, glibc expf below 1 ULP, CUDA expf at 2 ULP. 4 is a conservative
// choice over the documented implementations.
inline constexpr int kTranscendentalUlp = 4;

struct RoutingConfig {
  Router router = Router::kFusedAscend;
  Scoring scoring = Scoring::kSoftmax;
  int64_t top_k = 2;
  int64_t n_group = 1;  // expert groups (num_expert_group / group_count)
  int64_t k_group = 1;  // groups kept (topk_group)
  bool renormalize = true;
  float routed_scaling_factor = 1.0f;
  float eps = 1e-20f;        // fused kernel renormalization epsilon
  int64_t zero_experts = 0;  // the last zero_experts logit columns are zero (identity) experts
  int transcendental_ulp = kTranscendentalUlp;
};

struct RoutingArgs {
  const Tensor* logits = nullptr;      // [T, E] float32 / bfloat16 / float16
  const Tensor* bias = nullptr;        // optional [E] float32 (e_score_correction_bias)
  const Tensor* expert_map = nullptr;  // optional int32 [E - zero_experts]: -1 = not local
  const Tensor* log2phy = nullptr;     // optional int32 [E - zero_experts]: logical -> physical
};

struct RoutingStages {
  Tensor scores;          // float32 [T, E]: softmax / sigmoid / sqrt(softplus) of the logits
  Tensor topk_ids;        // int32 [T, k]: final ids (zero experts -> 0, then log2phy)
  Tensor topk_weights;    // [T, k] in the variant's weight dtype (RouterTraits::weight_dtype),
                          // paired with topk_ids (zero experts and non-local experts: 0)
  Tensor expert_weights;  // [T, E], weight dtype: dense form: the weight of logical expert e in
                          // token t (0 if not selected); zero-expert columns hold the identity
                          // scale
};

// What the router variant does, derived from the config and the presence of a bias.
struct RouterTraits {
  GroupScore group_score;
  TieRule ties;
  bool mask_zero;           // masked experts compete with selection score 0.0 (native)
  bool reciprocal_softmax;  // softmax as exp(x - max) * (1 / sum) (else exp / sum)
  bool renorm;              // weights divided by their sum (denominator below)
  int scale_times;          // how many times routed_scaling_factor is applied
  DType weight_dtype;       // float32 or the logits dtype
  // The top-k ids come out sorted by selection score, descending (ties per `ties`): the fused
  // kernel's merge sort, upstream topk_softmax, torch.topk(sorted=True). Else the order within
  // a token is unspecified (torch.topk(sorted=False)).
  bool ordered = false;
  RenormDenominator denominator = RenormDenominator::kSum;  // when renorm
  SoftplusForm softplus = SoftplusForm::kLnOnePlusExp;
  bool weights_biased = false;  // the weights are the selection scores (score + bias)
  bool cast_first = false;      // cast to weight_dtype, then renorm and scale in that dtype
};
RouterTraits router_traits(const RoutingConfig& cfg, bool has_bias, DType logits_dtype);

// Validates shapes, dtypes and the config (std::invalid_argument naming the problem).
void check_routing_args(const RoutingArgs& a, const RoutingConfig& cfg);

// Checks of a routing result, for the conformance oracle: per-row alternatives of the id set
// and the bounds of the scores and of the dense weights.
struct RoutingBounds {
  Tensor scores_exact, scores_bound;    // float64 [T, E]
  Tensor weights_exact, weights_bound;  // float64 [T, E]
  // Rows with more than one acceptable id multiset: alternatives (each sorted ascending, k
  // ids), excluding the canonical one. CSR over rows: alt_offsets counts ids.
  // ordered (RouterTraits::ordered): the alternatives are id sequences instead, every
  // acceptable order of every reachable set (tied / near-tied ids in either order), excluding
  // the canonical sequence.
  bool ordered = false;
  std::vector<int64_t> alt_rows;
  std::vector<int64_t> alt_offsets{0};
  std::vector<int32_t> alt_ids;
};

// Force load balance (profile runs): ids = argsort(rand(T, E))[:, :k] with rand from the
// project's Philox stream: u[t, e] = rng::uniform01_at(seed, 0, t * E + e); ascending, ties to
// the lower id. int32 [T, k].
Tensor force_load_balance_ids(int64_t tokens, int64_t experts, int64_t k, uint64_t seed);

// Stores v (already a value of t's dtype: float32, bfloat16 or float16) at element i.
void store_weight(Tensor& t, int64_t i, float v);

namespace ref {
RoutingStages moe_gating_top_k(const RoutingArgs& a, const RoutingConfig& cfg);
RoutingBounds moe_gating_top_k_bounds(const RoutingArgs& a, const RoutingConfig& cfg);
}  // namespace ref

namespace opt {
// threads: 0 = default. Results do not depend on the thread count.
RoutingStages moe_gating_top_k(const RoutingArgs& a, const RoutingConfig& cfg, int threads = 0);
}  // namespace opt

}  // namespace qconf
