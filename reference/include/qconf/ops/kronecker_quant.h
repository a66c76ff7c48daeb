// npu_kronecker_quant (torch_npu, FlatQuant) and the vllm-ascend W4A4_FLATQUANT_DYNAMIC linear
// layer built on it. One signature each, implemented in reference/ops/kronecker_quant.cpp
// (qconf::ref: the exact specification plus the reachable sets the conformance checks use) and
// optimized/ops/kronecker_quant.cpp (qconf::opt: fused per-token fp32 matmuls, SIMD, threaded).
//
// Source: notes/torch_npu_semantics.md §4 (signature, transform x'' = P1 @ (x @ P2), fp32
// accumulation, x' rounded to the input dtype, x'' rounded to fp16 even for bf16, amax, scale,
// multiplier, fp16 then int4 double rounding, the op-plugin test golden's other reading), §0
// (RoundMode, saturating casts, int4 packing); notes/vllm_ascend_quant.md §A and seed 002
// (vllm-ascend w4a4_flatquant.py: get_decompose_dim, P1 = left_trans^T, chunking of large token
// counts, npu_quant_matmul with the pertoken scale, bias added in the output dtype).
//
// What is deterministic and what is not (docs/bounds.md, "npu_kronecker_quant"):
//   * x' = x @ P2 and x'' = P1 @ x' are fp32 accumulations whose order the kernel does not fix:
//     each element is one of a small set of values (REACHABLE), computed from the exact dot
//     product and its derived bound, propagated through the second matmul as intervals;
//   * amax, quant_scale and the int4 codes follow: REACHABLE sets, exact (one value) wherever no
//     rounding boundary is in reach.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf {

// The readings of the quantization step (notes §4, "Disagreement").
enum class KronFormula {
  // "kernel" (default): quant_scale = fp32(fp32(amax * clip) / 7), mult = fp32(fp32(7 / clip) /
  // amax) (7 when amax == 0), code = sat_int4(RINT(fp16_RNE(fp32(x'' * mult)))) [code: ops-nn
  // flat_quant_vec.h / flat_quant_high.h; doc: aclnnFlatQuant.md].
  kKernel,
  // "opplugin_golden": the op-plugin test golden (test_npu_kronecker_quant.py, all tests
  // skipped): mult = fp32(fp32(7 * clip) / amax) (7 when amax == 0: our choice, the golden
  // divides by zero), quant_scale = fp32(amax / fp32(7 * clip)), code =
  // sat_int4(TRUNC(fp16_RNE(fp32(x'' * mult)))) (`.half().to(int8)`) [test].
  kOpPluginGolden,
};
std::string_view kron_formula_name(KronFormula f);   // "kernel", "opplugin_golden"
KronFormula parse_kron_formula(std::string_view s);  // throws std::invalid_argument

struct KronQuantShape {
  int64_t t = 0, m = 0, n = 0;  // x [T, M, N]; p1 [M, M]; p2 [N, N]
  DType xdt = DType::kF16;
  uint32_t clip = 0;  // clip_ratio, fp32 bits
};
// x: float16 | bfloat16 [T, M, N], N % 8 == 0, M, N in [1, 256]; p1 [M, M], p2 [N, N] of x's
// dtype; clip_ratio float32 (1,) in (0, 1]. Throws std::invalid_argument naming the argument.
KronQuantShape check_kronecker_quant_inputs(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                            const Tensor& clip_ratio);

// The stages of one call, in pipeline order.
struct KronQuantStages {
  Tensor x_p2;         // x dtype [T, M, N]: x' = x @ P2, fp32 accumulation rounded to x dtype
  Tensor x_p1;         // float16 [T, M, N]: x'' = P1 @ x', fp32 accumulation rounded to fp16
  Tensor amax;         // float32 [T]: max |x''| over the token
  Tensor codes;        // int8 [T, M, N]: the int4 codes before packing
  Tensor out;          // int32 [T, M, N / 8]: 8 codes per int32 (notes §0 layout)
  Tensor quant_scale;  // float32 [T]
};

// A set of acceptable values per element, CSR over the flat index (elements not listed have one
// value: the reference's). Values are bit patterns of the stage's dtype.
struct ReachSet {
  std::vector<int64_t> index;
  std::vector<int64_t> offsets{0};
  std::vector<uint64_t> values;
  void add(int64_t i, const std::vector<uint64_t>& v);  // listed only when v.size() >= 2
};
struct KronQuantReach {
  ReachSet x_p2, x_p1, amax, quant_scale, codes, out;
};

namespace ref {
KronQuantStages npu_kronecker_quant(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                    const Tensor& clip_ratio, KronFormula formula);
// Every value each stage can take for some legitimate fp32 summation order (docs/bounds.md).
// Throws std::domain_error when an overflow (fp32 accumulator, or x'/x'' to Inf) is reachable
// but not certain: such a case has no finite description and is not used as a golden.
KronQuantReach npu_kronecker_quant_reachable(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                             const Tensor& clip_ratio, KronFormula formula);
// Steps 4-6 on one token / element (fp32 bits; x'' as fp16 bits).
uint32_t kron_quant_scale(uint32_t amax, uint32_t clip, KronFormula f);
uint32_t kron_multiplier(uint32_t amax, uint32_t clip, KronFormula f);
int8_t kron_code(uint16_t x16, uint32_t mult, KronFormula f);
// Test data: an n x n orthogonal matrix in dtype (fp16 / bf16), the product of `reflections`
// Householder reflections I - 2 v v^T / (v^T v) with v ~ N(0, 1) from the Philox stream
// (seed, stream), computed in float64 (IEEE, no contraction: deterministic) and rounded to
// dtype once. Rounding makes it orthogonal only up to the dtype's precision (docs/bounds.md).
Tensor householder_orthogonal(DType dtype, int64_t n, int reflections, uint64_t seed,
                              uint64_t stream);
}  // namespace ref

namespace opt {
// Same contract. With intermediates false, only out and quant_scale are filled. threads: 0 =
// default. Results do not depend on threads (per-token work in a fixed order).
KronQuantStages npu_kronecker_quant(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                    const Tensor& clip_ratio, KronFormula formula,
                                    bool intermediates = false, int threads = 0);
}  // namespace opt

// ---- W4A4_FLATQUANT_DYNAMIC linear (vllm-ascend w4a4_flatquant.py, seed 002) ----------------
struct FlatQuantLinearArgs {
  const Tensor* x = nullptr;             // float16 | bfloat16 [T, K]
  const Tensor* left_trans = nullptr;    // x dtype [L, L] (checkpoint; P1 = left_trans^T)
  const Tensor* right_trans = nullptr;   // x dtype [R, R] (P2)
  const Tensor* clip_ratio = nullptr;    // float32 (1,)
  const Tensor* weight = nullptr;        // int8 [N, K], values in [-8, 7]
  const Tensor* weight_scale = nullptr;  // float32 [N, 1] | [N]
  const Tensor* bias = nullptr;          // x dtype [N], optional
};
struct FlatQuantLinearConfig {
  KronFormula formula = KronFormula::kKernel;
  // KRONECKER_QUANT_MAX_BATCH_SIZE: 8192 in seed 002 (the PR), 32768 later (notes §4). Any
  // value gives the same bits (a property, tests/ops/kronecker_quant_test.cpp).
  int64_t chunk_tokens = 8192;
};
struct FlatQuantLinearShape {
  int64_t t = 0, k = 0, n = 0, l = 0, r = 0;
  DType xdt = DType::kF16;
};
FlatQuantLinearShape check_flatquant_linear_inputs(const FlatQuantLinearArgs& a);

struct FlatQuantLinearStages {
  Tensor decompose_dim;  // int64 [2]: get_decompose_dim(K) = (L, R)
  Tensor kq_out;         // int32 [T, K / 8]: npu_kronecker_quant output (chunked)
  Tensor kq_scale;       // float32 [T]
  Tensor acc;            // int32 [T, N]: int4 x int4 accumulator
  Tensor mm_out;         // x dtype [T, N]: npu_quant_matmul(..., pertoken_scale, output x dtype)
  Tensor y;              // x dtype [T, N]: mm_out + bias (in x dtype), or mm_out
};
// Per-element descriptions for the checks of the stages after the (reachable) codes.
struct FlatQuantLinearReach {
  KronQuantReach kq;          // x_p2 etc. over [T, L, R] (only quant_scale, out used)
  ReachSet acc;               // int32 values: every integer in the reachable range
  Tensor mm_exact, mm_bound;  // float64 [T, N]: midpoint and half-width of the range
  Tensor y_exact, y_bound;    // float64 [T, N]
};

namespace ref {
FlatQuantLinearStages w4a4_flatquant_linear(const FlatQuantLinearArgs& a,
                                            const FlatQuantLinearConfig& cfg);
FlatQuantLinearReach w4a4_flatquant_linear_reachable(const FlatQuantLinearArgs& a,
                                                     const FlatQuantLinearConfig& cfg);
// The pertoken dequant epilogue of npu_quant_matmul (notes §2, pertoken path order): fp32(acc)
// * scale, * pertoken, cast RINT to the output dtype (fp16 / bf16 bits).
uint16_t flatquant_epilogue(int32_t acc, uint32_t weight_scale, uint32_t pertoken, DType out);
}  // namespace ref
namespace opt {
FlatQuantLinearStages w4a4_flatquant_linear(const FlatQuantLinearArgs& a,
                                            const FlatQuantLinearConfig& cfg,
                                            bool intermediates = false, int threads = 0);
}  // namespace opt

}  // namespace qconf
