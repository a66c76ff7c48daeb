// MoE dispatch and combine: npu_moe_init_routing (v1), npu_moe_init_routing_v2,
// npu_moe_finalize_routing and npu_moe_token_unpermute.
//
// One signature per op, implemented in reference/ops/dispatch.cpp (qconf::ref: the executable
// specification, plus the per-element bounds of the float combines) and
// optimized/ops/dispatch.cpp (qconf::opt: a stable counting sort, threaded gathers) and
// optimized/ops/dispatch_combine.cpp (a fixed-order fp32 combine, Highway SIMD over H).
//
// What is deterministic and what is not:
//   * init_routing: a stable sort and copies (or the quantized copies): EXACT.
//   * finalize_routing / token_unpermute: a float sum over the k experts of a token whose order
//     and accumulation precision are not documented: BOUNDED by a limit derived from the exact
//     sum (docs/bounds.md, "npu_moe_finalize_routing"), EXACT where provable.
//
// Every function throws std::invalid_argument naming the op, the argument and what was expected.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/index.h"

namespace qconf {

// ---- npu_moe_init_routing (v1) -----------------------------------------------------------------
// notes/torch_npu_semantics.md §8 [doc reference code]:
//   perm = argsort(expert_idx.flatten(), stable); expanded_expert_idx = sorted ids;
//   src = row_idx.flatten()[perm]; expanded_row_idx[src[i]] = i; expanded_x[i] = x[src[i] % N]
//   for the first min(N, active_num) * K rows.
// The doc's stable sort breaks ties between equal expert ids by the token-major flat position
// t*K + j. A kernel that sorts (expert, row_idx) pairs breaks them by the row_idx VALUE, which is
// k-major (j*N + t) for row_idx from npu_moe_gating_top_k_softmax [inf]. Both are variants.
enum class RoutingTieOrder {
  kFlatPosition,  // "flat_position": token-major t*K + j (doc reference code)
  kRowIdxValue,   // "row_idx_value": the value row_idx[t, j] [inf]
};
std::string_view routing_tie_order_name(RoutingTieOrder o);
RoutingTieOrder parse_routing_tie_order(std::string_view s);

struct InitRoutingV1Config {
  int64_t active_num = 0;  // tokens kept: expanded_x has min(N, active_num) * K rows
  RoutingTieOrder tie_order = RoutingTieOrder::kFlatPosition;
};

struct InitRoutingV1Stages {
  Tensor sorted_position;      // int32 [N*K]: token-major flat positions in sorted order
  Tensor expanded_expert_idx;  // int32 [N*K]: the sorted expert ids
  Tensor expanded_row_idx;     // int32 [N*K]: indexed by the row_idx value (k-major j*N + t)
  Tensor expanded_x;           // x dtype [min(N, active_num) * K, H]
};

// ---- npu_moe_init_routing_v2 -------------------------------------------------------------------
// notes/torch_npu_semantics.md §8 [doc reference code MoeInitRoutingV2CPU]; vllm_ascend_quant.md
// §C "Dispatch"; CANN ops golden (facts only): experts < start become INT32_MAX; a stable sort
// of the flat token-major ids; active rows are the first `total` (ids in [start, end)).
enum class RowIdxType {
  kGather = 0,   // expanded_row_idx[perm[i]] = i, -1 for inactive flat positions: [N*K]
  kScatter = 1,  // expanded_row_idx[i] = perm[i] for the active rows: [total]
};
// Static quant (quant_mode 0): y = sat8(RINT(x * scale + offset)), scale and offset [1].
enum class StaticQuantPrecision {
  kFp16,  // "fp16": x, scale, offset cast to fp16, the Mul and the Add rounded to fp16 (CANN
          // ops golden script of moe_init_routing_v2/v3)
  kFp32,  // "fp32": the notes' formula in fp32, two fp32 roundings [inf]
};
std::string_view static_quant_precision_name(StaticQuantPrecision p);
StaticQuantPrecision parse_static_quant_precision(std::string_view s);

struct InitRoutingV2Config {
  int64_t active_num = -1;       // <= 0: every active row; else min(active_num, total) rows
  int64_t expert_capacity = -1;  // drop_pad_mode 1 only
  int64_t expert_num = -1;
  int drop_pad_mode = 0;
  GroupListType expert_tokens_type = GroupListType::kCumsum;
  bool expert_tokens_flag = false;
  int quant_mode = -1;  // -1 none, 0 static (scale/offset [1]), 1 dynamic per row
  // active_expert_range [start, end); both -1: [0, expert_num).
  int64_t range_start = -1, range_end = -1;
  RowIdxType row_idx_type = RowIdxType::kGather;
  StaticQuantPrecision static_precision = StaticQuantPrecision::kFp16;
  // quant_mode 1: the formula of the per-row quant. The doc / CANN golden divides
  // (kDivScale); the npu_dynamic_quant A2 kernel multiplies by 127/amax (kMulReciprocal) [inf].
  DynQuantFormula dyn_formula = DynQuantFormula::kDivScale;
};

struct InitRoutingV2Stages {
  Tensor sorted_expert_idx;  // int32 [N*K]: sorted keys (experts < start are INT32_MAX)
  Tensor sorted_row_idx;     // int32 [N*K]: perm, the token-major flat position of sorted row i
  Tensor expanded_row_idx;   // int32, see RowIdxType; drop-pad: e*C + slot or -1
  Tensor expanded_x;         // x dtype or int8: [n_out, H]; drop-pad [E, C, H] (zero padding)
  Tensor expert_tokens;      // int64 (flag): cumsum/count [end-start], key_value [E, 2];
                             // drop-pad: counts before capacity [E]
  Tensor expanded_scale;     // float32 [n_out]: quant_mode 1, or the scale gathered (mode -1)
};

// ---- npu_moe_finalize_routing ------------------------------------------------------------------
// notes/torch_npu_semantics.md §9 [doc reference code]:
//   out[i] = skip1[i] + skip2[i] + sum_k scales[i,k] * (rows[idx] + bias[expert[i,k]])
//   idx = src_to_dst[k*N + i] (drop_pad_mode 0/1) or src_to_dst[i*K + k] (2/3); idx -1 adds 0.
enum class AccPrecision {
  kFp32,     // "fp32": the products and the sum in fp32, one final cast (the brief; [inf])
  kIoDtype,  // "io_dtype": every step rounded to the input dtype (fp16/bf16) [inf]: VA calls
             // the op inaccurate (moe_comm_method.py)
};
std::string_view acc_precision_name(AccPrecision a);
AccPrecision parse_acc_precision(std::string_view s);

struct FinalizeRoutingArgs {
  const Tensor* rows = nullptr;        // [R, H] or [E, C, H]: fp16 | bf16 | fp32
  const Tensor* skip1 = nullptr;       // [N, H] or null
  const Tensor* skip2 = nullptr;       // [N, H] or null
  const Tensor* bias = nullptr;        // [E, H] or null
  const Tensor* scales = nullptr;      // [N, K] or null (weights 1)
  const Tensor* src_to_dst = nullptr;  // int32 [N*K]
  const Tensor* expert_idx = nullptr;  // int32 [N, K]; needed with a bias
  int drop_pad_mode = 0;               // 0/1: k-major index, 2/3: token-major
  int64_t k = 0;                       // K when there are no scales and no expert_idx
};

// npu_moe_token_unpermute(permuted_tokens, sorted_indices, probs=None): aclnnMoeTokenUnpermute
// [doc]: T[k] = T[S[k]] (index_select), out[i] = sum_j P[i,j] * T[i*K + j]; probs None: K = 1.
// vllm-ascend passes |expanded_row_idx| of init_routing_v2 (gather form) [code]. A
// Megatron-style unpermute scatters instead: out_flat[S[m]] = T[m] [inf for this op].
enum class UnpermuteIndexForm {
  kGather,   // "gather": row i*K + j of the token is T[S[i*K + j]] (aclnn doc, vllm-ascend)
  kScatter,  // "scatter": row S[m] of the token-major list is T[m]
};
std::string_view unpermute_index_form_name(UnpermuteIndexForm f);
UnpermuteIndexForm parse_unpermute_index_form(std::string_view s);

struct TokenUnpermuteArgs {
  const Tensor* permuted = nullptr;  // [N*K, H]: fp16 | bf16 | fp32
  const Tensor* indices = nullptr;   // int32 [N*K], a permutation of [0, N*K)
  const Tensor* probs = nullptr;     // [N, K], the permuted dtype, or null (K = 1)
  UnpermuteIndexForm form = UnpermuteIndexForm::kGather;
};

// Per output element (float64): the exact combine, its bound for any order (and any precision
// allowed by `acc`), and whether every order gives the exact value (bound 0).
struct CombineBounds {
  Tensor exact;  // float64 [N, H]
  Tensor bound;  // float64 [N, H] (+Inf: an overflow is reachable)
  bool all_provably_exact = true;
};

struct CombineStages {
  Tensor gathered_row;  // int32 [N, K]: the expanded row each (token, k) reads, or -1
  Tensor out;           // the rows' dtype [N, H]
};

namespace ref {
InitRoutingV1Stages npu_moe_init_routing(const Tensor& x, const Tensor& row_idx,
                                         const Tensor& expert_idx, const InitRoutingV1Config& c);
InitRoutingV2Stages npu_moe_init_routing_v2(const Tensor& x, const Tensor& expert_idx,
                                            const Tensor* scale, const Tensor* offset,
                                            const InitRoutingV2Config& c);
// The reference output is the exact combine rounded once to the output dtype.
CombineStages npu_moe_finalize_routing(const FinalizeRoutingArgs& a);
CombineBounds npu_moe_finalize_routing_bounds(const FinalizeRoutingArgs& a, AccPrecision acc);
CombineStages npu_moe_token_unpermute(const TokenUnpermuteArgs& a);
CombineBounds npu_moe_token_unpermute_bounds(const TokenUnpermuteArgs& a, AccPrecision acc);

// Steps, exposed for tests.
// The stable order of the flat positions by key (ties by position).
std::vector<int32_t> stable_sort_positions(const std::vector<int64_t>& key);
// Per-expert counts of the active sorted ids in [start, end).
std::vector<int64_t> expert_counts(const Tensor& sorted_expert_idx, int64_t total, int64_t start,
                                   int64_t end);
}  // namespace ref

namespace opt {
InitRoutingV1Stages npu_moe_init_routing(const Tensor& x, const Tensor& row_idx,
                                         const Tensor& expert_idx, const InitRoutingV1Config& c,
                                         int threads = 0);
InitRoutingV2Stages npu_moe_init_routing_v2(const Tensor& x, const Tensor& expert_idx,
                                            const Tensor* scale, const Tensor* offset,
                                            const InitRoutingV2Config& c, int threads = 0);
// fp32, k in increasing order: skip1 + skip2 first, then each term s * (r + b); one final cast.
// SIMD lanes over H (no fused multiply-add), threads over tokens: the same bits for any target
// and thread count.
CombineStages npu_moe_finalize_routing(const FinalizeRoutingArgs& a, int threads = 0);
CombineStages npu_moe_token_unpermute(const TokenUnpermuteArgs& a, int threads = 0);
}  // namespace opt

// Validation and index plans shared by both implementations (reference/ops/dispatch.cpp).
namespace dispatch_detail {
[[noreturn]] void fail(const std::string& op, const std::string& what);
bool is_float(DType d);
void check_v1(const Tensor& x, const Tensor& row_idx, const Tensor& expert_idx,
              const InitRoutingV1Config& c);
struct V2Plan {
  int64_t n, k, h, nk, start, end, total, n_out;
};
V2Plan check_v2(const Tensor& x, const Tensor& expert_idx, const Tensor* scale,
                const Tensor* offset, const InitRoutingV2Config& c);
// A combine reduced to: out[i] = skip1[i] + skip2[i] + sum_k s[i,k] * (R[row(i,k)] +
// B[brow(i,k)]), rows -1 contributing nothing.
struct Combine {
  std::string op;
  int64_t n = 0, k = 0, h = 0;
  DType dt = DType::kF32;
  const Tensor* rows = nullptr;
  const Tensor* skip1 = nullptr;
  const Tensor* skip2 = nullptr;
  const Tensor* bias = nullptr;
  const Tensor* scales = nullptr;  // [N, K] or null
  std::vector<int32_t> row;        // [N*K]: expanded row or -1
  std::vector<int32_t> brow;       // [N*K]: bias row (expert) or -1
};
Combine finalize_plan(const FinalizeRoutingArgs& a);
Combine unpermute_plan(const TokenUnpermuteArgs& a);
}  // namespace dispatch_detail

}  // namespace qconf
