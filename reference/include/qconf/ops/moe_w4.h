// The int4 MoE schemes of vllm-ascend end to end on dispatched tokens: W4A8_DYNAMIC (ModelSlim
// packed format with scale_bias, and LLM-Compressor) and W4A16 (compressed-tensors
// pack-quantized, group 32). Load-time transforms (process_weights_after_loading) and the expert
// MLP (moe_mlp.py::quant_apply_mlp / unquant W4A16 path) on the rows of each expert, built from
// the existing component ops (packing.h, scales.h, expert_mlp.h, weight_quant_bmm.h,
// dynamic_quant.h); nothing here re-implements a component.
//
// Sources: notes/vllm_ascend_quant.md §A "MoE schemes" (W4A8_DYNAMIC MoE formats A and B, after
// loading, why the correction is 8*sum; W4A16 MoE), §C "Quantized MLP" (W4A8 path), §D (the
// compressed-tensors packing); seeds W4A8_DYNAMIC (w4a8.py) and compressed-tensors W4A16
// (w4a16.py); notes/torch_npu_semantics.md §2 (the int64 quant vector: FP19), §3 (antiquant),
// §10 (grouped matmul).
//
// Conventions: E experts of this rank, H hidden, I intermediate per partition; checkpoint tensors
// stacked over experts with gate rows then up rows (the checkpoint MoE input convention of
// `qconf checkpoint`). group_list: int64 counts [E] (expert_tokens_num_type = 1, what the
// dispatch gives and what the W4A8 path converts to), summing to the rows of x.
//
// What is exact and what is not (docs/bounds.md, "scheme_w4a8_dynamic_moe /
// scheme_w4a16_moe"): every load-time stage is exact except the fp32 sums (scale_bias), which
// are bounded by their component ops; W4A8's gmm1 is the MSD op (exact to `dequant`, then bounded
// SwiGLU and reachable codes); gmm2's output follows those reachable codes and scales and the
// bounded down scale_bias: a reachable RANGE (monotone corners), checked BOUNDED by its midpoint
// and half-width. W4A16's gmm1 is bounded (fp32 accumulation order), SwiGLU and gmm2 follow
// reachable ranges of their inputs.
#pragma once

#include <cstdint>
#include <string_view>

#include "qconf/core/tensor.h"
#include "qconf/ops/expert_mlp.h"

namespace qconf {

// ---- W4A8_DYNAMIC MoE ---------------------------------------------------------------------------

enum class W4a8MoeFormat {
  kModelSlim,      // "modelslim": two int4 per byte along the output dim, scale_bias in the file
  kLlmCompressor,  // "llmcompressor": one int4 per int8, scale_bias = 8 * sum W * s at load
};
std::string_view w4a8_moe_format_name(W4a8MoeFormat f);
W4a8MoeFormat parse_w4a8_moe_format(std::string_view s);  // throws std::invalid_argument

// The checkpoint tensors of one layer (pointers into the caller's tensors).
//   ModelSlim:     w13_weight int8 [E, I, H] (gate [I/2, H] then up [I/2, H] bytes per expert),
//                  w13_weight_scale f32 [E, 2I, 1], w13_scale_bias f32 [E, 2I, 1],
//                  w2_weight int8 [E, H/2, I], w2_weight_scale f32 [E, H, 1],
//                  w2_scale_bias f32 [E, H, 16] (the file's 16 partial columns; the rank takes
//                  16/tp of them).
//   LLM-Compressor: w13_weight int8 [E, 2I, H], w13_weight_scale bf16|f32 [E, 2I, 1],
//                  w2_weight int8 [E, H, I], w2_weight_scale bf16|f32 [E, H, 1]; no scale_bias.
struct W4a8MoeCheckpoint {
  const Tensor* w13_weight = nullptr;
  const Tensor* w13_weight_scale = nullptr;
  const Tensor* w13_scale_bias = nullptr;
  const Tensor* w2_weight = nullptr;
  const Tensor* w2_weight_scale = nullptr;
  const Tensor* w2_scale_bias = nullptr;
};

struct W4a8MoeLoadConfig {
  W4a8MoeFormat format = W4a8MoeFormat::kModelSlim;
  int64_t tp = 1;       // divides 16 (vllm-ascend rejects tp > 16)
  int64_t tp_rank = 0;  // which 16/tp columns of the down scale_bias this rank loads
};

// After process_weights_after_loading (NZ is a layout: not modelled; view(int32) is).
struct W4a8MoeLoaded {
  Tensor w13_weight;          // int32 [E, H, 2I/8]: NPU int4 layout, 8 along the output dim
  Tensor w2_weight;           // int32 [E, I, H/8]
  Tensor w13_scale;           // int64 [E, 2I]: fp32 bits (uint32) zero-extended
  Tensor w2_scale;            // int64 [E, 1, H]
  Tensor w2_scale_bias_cols;  // float32 [E, H, 16/tp]: this rank's columns (ModelSlim only)
  Tensor w13_scale_bias;      // float32 [E, 2I]
  Tensor w2_scale_bias;       // float32 [E, H]
  // opt::w4a8_moe_load only (empty after ref::w4a8_moe_load): the int4 codes of w13_weight /
  // w2_weight decoded once at load, as an engine prepares weights; not a vllm-ascend tensor.
  Tensor w13_values_prepared, w2_values_prepared;
};

// Shape checks shared by both implementations (std::invalid_argument naming the tensor).
struct W4a8MoeDims {
  int64_t e = 0, h = 0, i = 0;
};
W4a8MoeDims check_w4a8_moe_checkpoint(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg);

// The expert MLP (quant_apply_mlp, W4A8): x_q, x_scale = npu_dynamic_quant(x) (or the dispatch's
// quant_mode 1, the same op); gmm1 + SwiGLU + requant = grouped_matmul_swiglu_quant_v2 with
// weight_assist_matrix = w13_scale_bias (the MSD op, w4a8_msd_grouped_matmul); gmm2 =
// npu_grouped_matmul(int8 y1, int4 w2, scale = int64 w2_scale, bias = w2_scale_bias,
// per_token_scale = y1 scale, output bf16), modelled as the same MSD split [inf: the notes give
// the call, and the only reading under which bias = scale_bias is the 8 * colsum term]:
//   A_hi = (y1 >> 4) @ w2, A_lo = ((y1 & 0xF) - 8) @ w2 (int32, exact), a = fixpipe fp16(A * s),
//   msd_sum = 16 a_hi + a_lo + scale_bias (fp32, order = msd.bias_first), y = bf16(msd_sum *
//   y1_scale) (RINT).
// The quant vector is read as FP19 (low 32 bits & 0xFFFFE000: notes/torch_npu_semantics.md §2).
struct W4a8MoeMlpStages {
  Tensor x_q, x_scale;              // int8 [M, H], float32 [M]
  Tensor w13_values;                // int8 [E, H, 2I]: the int4 codes of w13_weight
  Tensor w13_scale_fp19;            // float32 [E, 2I]
  W4a8MsdStages gmm1;               // x_hi ... y (int8 [M, I]), scale (float32 [M])
  Tensor w2_values;                 // int8 [E, I, H]
  Tensor w2_scale_fp19;             // float32 [E, H]
  Tensor gmm2_acc_hi, gmm2_acc_lo;  // int32 [M, H]
  Tensor gmm2_a_hi, gmm2_a_lo;      // float16 [M, H]
  Tensor gmm2_msd_sum;              // float32 [M, H]
  Tensor y;                         // bfloat16 [M, H]
};

// The reachable range of gmm2's output (bf16 values as float64): every y a legitimate
// implementation can produce, given the reachable codes / scales of gmm1 and the bounded down
// scale_bias (docs/bounds.md). lo == hi where y is unique.
struct W4a8MoeGmm2Range {
  Tensor acc_hi_lo, acc_hi_hi, acc_lo_lo, acc_lo_hi;  // int64 [M, H]: integer ranges
  Tensor a_hi_lo, a_hi_hi, a_lo_lo, a_lo_hi;          // float64 [M, H]: fp16 values
  Tensor msd_lo, msd_hi;                              // float64 [M, H]: fp32 values
  Tensor lo, hi;                                      // float64 [M, H]: y, bf16 values
};

namespace ref {
W4a8MoeLoaded w4a8_moe_load(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg);
// x: bfloat16 | float16 [M, H]; group_list int64 counts [E] with sum M. `bounds`: gmm1's SwiGLU
// bounds and reachable codes (reference only).
W4a8MoeMlpStages w4a8_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                     const W4a8MoeLoaded& w, const W4a8MsdConfig& cfg,
                                     SwigluQuantBounds* bounds = nullptr);
// w2_scale_bias interval per element: [sb_lo, sb_hi] (fp32 values; equal where exact).
W4a8MoeGmm2Range w4a8_moe_gmm2_range(const W4a8MoeMlpStages& st, const SwigluQuantBounds& b,
                                     const Tensor& group_list, const Tensor& sb_lo,
                                     const Tensor& sb_hi, const W4a8MsdConfig& cfg);
// The MSD gmm2 on given operands (exact ints, then the fp16 fixpipe, fp32 sum, bf16 output).
float w4a8_gmm2_msd_value(int32_t acc_hi, int32_t acc_lo, float s, float sb, float tok_scale,
                          const W4a8MsdConfig& cfg);
}  // namespace ref
namespace opt {
W4a8MoeLoaded w4a8_moe_load(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg);
W4a8MoeMlpStages w4a8_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                     const W4a8MoeLoaded& w, const W4a8MsdConfig& cfg);
}  // namespace opt

// group_list counts [E] -> cumsum [E] (both int64), checking sum == rows.
Tensor moe_w4_cumsum(const Tensor& counts, int64_t experts, int64_t rows, const char* op);
// int32 [E, K, N/8] in the NPU int4 layout -> int8 [E, K, N].
Tensor moe_w4_int4_values(const Tensor& packed);
// int64 quant vector -> the FP19 fp32 the hardware reads (low 32 bits & 0xFFFFE000), [E, N].
Tensor moe_w4_fp19_scale(const Tensor& quant, int64_t e, int64_t n);

// ---- W4A16 MoE
// ------------------------------------------------------------------------------------

// Checkpoint (compressed-tensors pack-quantized, symmetric, group g):
//   w13_weight_packed int32 [E, 2I, H/8], w13_weight_scale f32|pdt [E, 2I, H/g],
//   w13_weight_shape int32|int64 [E, 2] (= [2I, H]); w2_weight_packed int32 [E, H, I/8],
//   w2_weight_scale [E, H, I/g], w2_weight_shape [E, 2] (= [H, I]).
struct W4a16MoeCheckpoint {
  const Tensor* w13_weight_packed = nullptr;
  const Tensor* w13_weight_scale = nullptr;
  const Tensor* w13_weight_shape = nullptr;
  const Tensor* w2_weight_packed = nullptr;
  const Tensor* w2_weight_scale = nullptr;
  const Tensor* w2_weight_shape = nullptr;
};

struct W4a16MoeLoaded {
  Tensor w13_unpacked;  // int8 [E, 2I, H]: unpack_from_int32 (v - 8)
  Tensor w13_weight;    // int32 [E, H, 2I/8]: transposed, npu_convert_weight_to_int4pack
  Tensor w13_scale;     // pdt [E, H/g, 2I]: rounded to params dtype at load, transposed
  Tensor w13_offset;    // pdt [E, H/g, 2I]: zeros (created by the code, never loaded)
  Tensor w2_unpacked, w2_weight, w2_scale, w2_offset;  // [E, H, I], [E, I, H/8], [E, I/g, H] x2
};

struct W4a16MoeMlpStages {
  Tensor gmm1;    // pdt [M, 2I]: x @ ((w13 + off) * s_group) per expert
  Tensor swiglu;  // pdt [M, I]: npu_swiglu
  Tensor y;       // pdt [M, H]: swiglu @ ((w2 + off) * s_group)
};
// The checks: gmm1 bounded from the exact product (exact, bound); swiglu and y: reachable ranges
// [lo, hi] of their inputs' reachable values (float64, pdt values).
struct W4a16MoeRanges {
  Tensor gmm1_exact, gmm1_bound;
  Tensor swiglu_lo, swiglu_hi;
  Tensor y_lo, y_hi;
};

struct W4a16MoeDims {
  int64_t e = 0, h = 0, i = 0;
};
W4a16MoeDims check_w4a16_moe_checkpoint(const W4a16MoeCheckpoint& c, int64_t group_size);

namespace ref {
W4a16MoeLoaded w4a16_moe_load(const W4a16MoeCheckpoint& c, DType params_dtype, int64_t group_size);
W4a16MoeMlpStages w4a16_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                       const W4a16MoeLoaded& w, int64_t group_size,
                                       W4a16MoeRanges* ranges = nullptr);
}  // namespace ref
namespace opt {
W4a16MoeLoaded w4a16_moe_load(const W4a16MoeCheckpoint& c, DType params_dtype, int64_t group_size);
W4a16MoeMlpStages w4a16_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                       const W4a16MoeLoaded& w, int64_t group_size);
}  // namespace opt

}  // namespace qconf
