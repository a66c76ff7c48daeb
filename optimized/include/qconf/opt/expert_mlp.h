// The W8A8 expert MLP on pre-packed expert weights (a model packs at load time, then calls many
// times): vllm-ascend's fused path (a) of moe_mlp.py::quant_apply_mlp (notes/vllm_ascend_quant.md
// §C): h, h_scale = grouped_matmul_swiglu_quant(x, w13, group_list, w13_scale, x_scale);
// y = npu_grouped_matmul(h, w2, w2_scale, per_token_scale = h_scale, bf16).
#pragma once

#include <vector>

#include "qconf/core/tensor.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/opt/gemm_s8.h"

namespace qconf::opt {

// One PackedWeightsS8 per expert of an int8 [E, K, N] tensor.
struct PackedExpertsS8 {
  std::vector<PackedWeightsS8> w;
  int64_t k = 0, n = 0;
  static PackedExpertsS8 pack(const Tensor& w, int threads = 0);
};

// x: int8 [M, H]; x_scale: float32 [M]; w13: [E] of [H, 2I]; w13_scale: float32 [E, 2I];
// w2: [E] of [I, H]; w2_scale: float32 or bfloat16 [E, H]; group_list: int64 cumsum [E].
// y: bfloat16 [M, H], caller-owned (rows past group_list[-1] are left as they are).
// The same numbers as ref::npu_grouped_matmul_swiglu_quant followed by ref::npu_grouped_matmul
// up to the SwiGLU's exp (std::exp; within the bound of docs/bounds.md "expert MLP").
void w8a8_expert_mlp(const Tensor& x, const Tensor& x_scale, const PackedExpertsS8& w13,
                     const Tensor& w13_scale, const PackedExpertsS8& w2, const Tensor& w2_scale,
                     const Tensor& group_list, Tensor& y, int threads = 0);

// SwiGLU mode 0 on fp32: out[j] = (act[j] / (1 + exp(-act[j]))) * other[j], Highway SIMD
// (optimized/ops/swiglu_simd.cpp; exp within 1 ulp). Element-wise: no dependence on how rows are
// split between threads.
void swiglu_halves_f32(const float* act, const float* other, float* out, int64_t n);
// SwiGLU-OAI (mode 1) of one row of 2n interleaved fp32 values (gate even, up odd), with the
// reference's clamps and fp32 steps (swiglu_simd.cpp). Element-wise, the same code for tails.
void swiglu_oai_f32(const float* row, float* out, int64_t n, float clamp_limit, float glu_alpha,
                    float glu_bias);

// One row of SwiGLU + int8 row quant, the code every optimized grouped SwiGLU-quant op runs per
// row: row holds 2h fp32 values (halves, or interleaved for mode 1); writes the h SwiGLU values,
// the h int8 codes and the row scale (amax / 127), the same numbers as those ops.
void swiglu_quant_row_f32(const float* row, int64_t h, const SwigluConfig& cfg,
                          SwigluQuantRounding rnd, float* swiglu, int8_t* y, float* scale);

}  // namespace qconf::opt
