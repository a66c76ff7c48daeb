// Zero experts after routing (LongCat-style "zero" / identity experts): vllm-ascend's
// ops/fused_moe/experts_selector.py::zero_experts_compute and the `final_hidden_states +=
// zero_expert_result` of its W8A8 dynamic MoE scheme (seed 000). One signature, implemented in
// reference/ops/zero_experts.cpp (qconf::ref, with bounds) and optimized/ops/zero_experts.cpp.
//
// Steps (sources: notes/vllm_ascend_quant.md §C "After routing", zero_experts_compute [code]):
//  1. zs[t, j] = w[t, j] where ids[t, j] >= num_experts, else 0 (torch.where(id < E, 0.0, w));
//  2. identity type: p[t, j, h] = x[t, h] * zs[t, j], one multiply rounded to the promoted dtype
//     P of (x, w) (torch type promotion: bf16 * bf16 -> bf16, bf16 * fp32 -> fp32), computed in
//     fp32 (torch's opmath for half types) then rounded to P;
//  3. zero_out[t, h] = sum_j p[t, j, h] (torch sum over dim 1: fp32 accumulation, order not
//     specified [inf], rounded once to P);
//  4. ids where ids >= num_experts become 0, their weights 0.0;
//  5. final[t, h] = routed[t, h] + zero_out[t, h] in place in x's dtype: fp32 add, rounded to
//     fp32, then to x's dtype (torch's in-place add with a promoted operand).
// Zero type: the zero expert contributes nothing (zero_out = 0, final = routed) [inf: a config
// naming a zero-output expert; vllm-ascend only implements "identity" and fails otherwise].
#pragma once

#include <cstdint>
#include <string_view>

#include "qconf/core/tensor.h"

namespace qconf {

enum class ZeroExpertType { kIdentity, kZero };
std::string_view zero_expert_type_name(ZeroExpertType t);   // "identity", "zero"
ZeroExpertType parse_zero_expert_type(std::string_view s);  // throws std::invalid_argument

struct ZeroExpertsArgs {
  const Tensor* hidden = nullptr;   // x [T, H] float32 / float16 / bfloat16
  const Tensor* ids = nullptr;      // int32 [T, k]: logical ids, >= num_experts are zero experts
  const Tensor* weights = nullptr;  // [T, k] float32 or x's dtype
  const Tensor* routed = nullptr;   // optional [T, H] x's dtype: the combine's output
  int64_t num_experts = 0;          // real experts; ids in [num_experts, ...) are zero experts
  ZeroExpertType type = ZeroExpertType::kIdentity;
};

struct ZeroExpertsStages {
  Tensor zero_out;  // [T, H] promoted dtype P
  Tensor ids;       // int32 [T, k]: zero experts -> 0
  Tensor weights;   // [T, k] weights' dtype: zero experts -> 0
  Tensor final;     // [T, H] x's dtype: routed + zero_out (absent without routed)
};

struct ZeroExpertsBounds {
  Tensor zero_exact, zero_bound;    // float64 [T, H]
  Tensor final_exact, final_bound;  // float64 [T, H] (empty without routed)
};

// Validates (std::invalid_argument naming the argument) and returns the promoted dtype P.
DType check_zero_experts_args(const ZeroExpertsArgs& a);

namespace ref {
ZeroExpertsStages zero_experts_compute(const ZeroExpertsArgs& a);
ZeroExpertsBounds zero_experts_compute_bounds(const ZeroExpertsArgs& a);
}  // namespace ref
namespace opt {
ZeroExpertsStages zero_experts_compute(const ZeroExpertsArgs& a, int threads = 0);
}  // namespace opt

}  // namespace qconf
