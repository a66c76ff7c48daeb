// The W4A8_DYNAMIC MoE expert MLP on weights packed once at load (a serving engine packs after
// process_weights_after_loading, then calls many times): the same numbers as
// opt::w4a8_moe_expert_mlp / ref::w4a8_moe_expert_mlp (qconf/ops/moe_w4.h), whose op API takes
// the loaded int32 int4 layout and so decodes and packs every used expert on every call.
//
// Packing: each expert's int32 [H, 2I/8] / [I, H/8] NPU int4 weight goes straight into the int4
// VNNI panels of gemm_s8.h (PackedWeightsS8::pack_s4: 8 along the output dim, element 8j+t in
// bits [4t, 4t+3], which is the loaded layout), half the bytes of the int8 values the per-call
// path packs; the FP19 scales are decoded once. Apply, per expert with rows: the two MSD nibble
// matmuls of gmm1 as ONE GEMM (the hi rows then the lo rows), the fixpipe, MSD sum, token scale,
// optional clamp, SwiGLU and row requant in the reference's fp32 steps (the shared row code of
// the optimized grouped SwiGLU-quant ops); gmm2 likewise (its two nibble matmuls as one GEMM)
// with the bf16 epilogue. Integer accumulation is exact, the float steps are the per-call path's,
// element-wise: the result does not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "qconf/core/tensor.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/ops/moe_w4.h"
#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/opt/gemm_s8.h"

namespace qconf::opt {

struct W4a8MoePacked {
  int64_t e = 0, h = 0, i = 0;
  std::vector<PackedWeightsS8> w13;  // per expert: int4 [H, 2I] (gate columns then up)
  std::vector<PackedWeightsS8> w2;   // per expert: int4 [I, H]
  Tensor w13_scale_fp19;             // float32 [E, 2I]: the FP19 value of the int64 quant vector
  Tensor w2_scale_fp19;              // float32 [E, H]
  Tensor w13_scale_bias;             // float32 [E, 2I]
  Tensor w2_scale_bias;              // float32 [E, H]
};

// From the loaded weights of either implementation's w4a8_moe_load (only the vllm-ascend
// tensors are read; *_values_prepared is not needed).
W4a8MoePacked w4a8_moe_pack(const W4a8MoeLoaded& w, int threads = 0);

// x: bfloat16 | float16 [M, H]; group_list: int64 counts [E] with sum M (experts with 0 rows
// allowed). Returns y bfloat16 [M, H], bit-identical to w4a8_moe_expert_mlp(...).y.
Tensor w4a8_moe_expert_mlp_packed(const Tensor& x, const Tensor& group_list, const W4a8MoePacked& p,
                                  const W4a8MsdConfig& cfg, int threads = 0);

// ---- W4A16 (compressed-tensors pack-quantized)
// --------------------------------------------------- The W4A16 expert MLP's weights prepared once
// per expert for the fused antiquant GEMM (opt::wqbmm_prepare_weights, what
// opt::npu_weight_quant_batchmatmul does on every call), then per expert wqbmm_gemm_acc, the
// params-dtype rounding, npu_swiglu and the second GEMM: the same kernels on the same rows as
// opt::w4a16_moe_expert_mlp, so the same bits.
struct W4a16MoePacked {
  int64_t e = 0, h = 0, i = 0;  // the group size is each WqbmmWeights' own
  DType pdt = DType::kBF16;
  std::vector<WqbmmWeights> w13, w2;  // per expert: [H, 2I] and [I, H] with their group scales
};
W4a16MoePacked w4a16_moe_pack(const W4a16MoeLoaded& w, int64_t group_size);
// x: the params dtype [M, H]; group_list int64 counts [E] with sum M. Returns y [M, H] (pdt),
// bit-identical to w4a16_moe_expert_mlp(...).y.
Tensor w4a16_moe_expert_mlp_packed(const Tensor& x, const Tensor& group_list,
                                   const W4a16MoePacked& p, int threads = 0);

}  // namespace qconf::opt
