// npu_quant_matmul (torch_npu): int8 / int4 matmul with an int32 accumulator, then dequant
// (scale, per-token scale, bias, offset) and a cast to the output dtype. One signature,
// implemented in reference/ops/quant_matmul.cpp (qconf::ref, exact) and
// optimized/ops/quant_matmul.cpp (qconf::opt, VNNI GEMM + fused epilogue, bit-exact).
//
// Source: notes/torch_npu_semantics.md §2 (signature, formulas, pertoken order, int64 scale =
// FP19, op-plugin's hidden npu_trans_quant_param, int8 requant golden), §0 (int4 packing);
// notes/vllm_ascend_quant.md §A (W8A8 static and W8A8_DYNAMIC apply).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf {

// Internal precision of the fixpipe (the int64 quant-param dequant unit) [inf: undocumented,
// notes §2 "Gaps"]: variant axis `fixpipe_precision`.
enum class FixpipePrecision {
  kFp32,   // "fp32": acc -> fp32 (RNE), one fp32 multiply by the FP19 scale, then the output cast
  kExact,  // "exact": the exact product acc * scale, rounded once to the output dtype
};
std::string_view fixpipe_precision_name(FixpipePrecision p);
FixpipePrecision parse_fixpipe_precision(std::string_view s);  // throws std::invalid_argument

struct QuantMatmulConfig {
  // output_dtype: kI8 (torch_npu's default), kF16, kBF16, kF32 or kI32.
  DType output_dtype = DType::kI8;
  // Variant axis `opplugin_fp19`: true = op-plugin QuantMatmulKernelNpuOpApi.cpp L297-300
  // converts an fp32 scale (and offset) through npu_trans_quant_param (FP19 truncation, int9
  // offset) when there is no pertoken_scale and the output is neither bf16 nor int32; false =
  // the aclnn op (or a port) uses the fp32 scale as given.
  bool opplugin_fp19 = true;
  FixpipePrecision fixpipe = FixpipePrecision::kFp32;
};

// Which dequant unit an input combination reaches (decided once per call).
enum class QuantMatmulPath {
  kInt32Out,  // output int32: acc (+ int32 bias), the scale is not applied [inf]
  kFixpipe,   // int64 quant param (given, or made by op-plugin): FP19 scale, int9 offset
  kVector,    // fp32 / bf16 scale at full precision: fp32 ops in the vector unit
};

// Validated shapes and the decisions that follow from dtypes and the config. Shared by both
// implementations; every bad input throws std::invalid_argument naming the argument.
struct QuantMatmulPlan {
  bool int4 = false;  // x1 and x2 are int32 words of 8 int4
  int64_t m = 0, k = 0, n = 0;
  int64_t batch = 1;                            // output batch (1 when neither operand has one)
  bool x1_batched = false, x2_batched = false;  // the operand has a batch dim of size `batch`
  Shape out_shape;                              // [batch, m, n] or [m, n]
  QuantMatmulPath path = QuantMatmulPath::kVector;
  bool bias_int32 = false, bias_float = false;
  bool has_pertoken = false, has_offset = false;
};
QuantMatmulPlan plan_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                  const Tensor* offset, const Tensor* pertoken_scale,
                                  const Tensor* bias, const QuantMatmulConfig& cfg);
// The same from x1's and x2's dtype and shape (for callers whose x2 is pre-packed).
QuantMatmulPlan plan_quant_matmul(DType x1_dtype, const Shape& x1_shape, DType x2_dtype,
                                  const Shape& x2_shape, const Tensor& scale, const Tensor* offset,
                                  const Tensor* pertoken_scale, const Tensor* bias,
                                  const QuantMatmulConfig& cfg);

// The per-column dequant parameters the kernel actually uses, after op-plugin's conversion and
// the int64 decode: fp32 bits of the scale (FP19-truncated on the fixpipe path) and the int9
// offset (0 when absent). Both implementations call this (it is cheap: O(n)).
struct QuantMatmulColumnParams {
  std::vector<uint32_t> scale_bits;  // [n]
  std::vector<int32_t> offset9;      // [n], in [-256, 255]
};
QuantMatmulColumnParams quant_matmul_column_params(const QuantMatmulPlan& plan, const Tensor& scale,
                                                   const Tensor* offset);

// The stages of one call, in pipeline order; each has the output's shape.
struct QuantMatmulStages {
  Tensor acc;                      // int32: x1 @ x2 (int32 wrap, see int32_overflows)
  std::optional<Tensor> acc_bias;  // int32: acc + int32 bias (int32 wrap)
  std::optional<Tensor> dequant;   // float32: fp32(acc) * scale (absent for fixpipe `exact`)
  std::optional<Tensor> pertoken;  // float32: dequant * pertoken_scale[m]
  std::optional<Tensor> biased;    // float32: ... + float(bias)
  std::optional<Tensor> requant;   // int32 (int8 output): s9(rint(v)) in [-256, 255]
  Tensor out;                      // output_dtype
  // Reference only: elements whose exact acc (or acc + bias) left the int32 range and wrapped.
  int64_t int32_overflows = 0;
};

namespace ref {
// x1: int8 [m, k] / [b, m, k], or int32 [.., m, k/8] (packed int4).
// x2: int8 [k, n] / [b, k, n], or int32 [.., k, n/8] (packed int4); same kind as x1.
// scale: float32 [1] | [n], bfloat16 [1] | [n], or int64 [1] | [n] (npu_trans_quant_param).
// offset: float32 [1] | [n] (int8 output only). pertoken_scale: float32 [m].
// bias: int32 | bfloat16 | float16 | float32 [n].
QuantMatmulStages npu_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                   const Tensor* offset, const Tensor* pertoken_scale,
                                   const Tensor* bias, const QuantMatmulConfig& cfg);
}  // namespace ref

namespace opt {
// Same contract. With `intermediates` false only `out` is filled (the fused epilogue stores
// nothing else); with true every stage the reference has. threads: 0 = default_threads().
QuantMatmulStages npu_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                   const Tensor* offset, const Tensor* pertoken_scale,
                                   const Tensor* bias, const QuantMatmulConfig& cfg,
                                   bool intermediates = false, int threads = 0);
// Test hook: on a CPU with AVX512_BF16, round the fast epilogue's bf16 outputs with the integer
// sequence instead of vcvtneps2bf16 (the two give bit-identical results; the special-value test
// in tests/ops/quant_matmul_test.cpp runs both).
void quant_matmul_disable_bf16_cvt(bool on);
}  // namespace opt

}  // namespace qconf
