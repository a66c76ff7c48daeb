// The quantized expert MLP of vllm-ascend's MoE layer (moe_mlp.py::quant_apply_mlp, W8A8 and
// W4A8): grouped int8 matmul, SwiGLU, and the fused SwiGLU + per-token int8 requantization ops.
// One signature per op, implemented in reference/ops/expert_mlp.cpp (qconf::ref, exact) and
// optimized/ops/expert_mlp.cpp (qconf::opt).
//
// Sources: notes/torch_npu_semantics.md §10 (npu_grouped_matmul, grouped_matmul_swiglu_quant,
// dequant_swiglu_quant, swiglu), §0 (rounding modes, saturation), §12 (SwiGLU-OAI reference);
// notes/vllm_ascend_quant.md §C "Quantized MLP", §A "W4A8_DYNAMIC MoE" (the MSD decomposition);
// seeds/001 (w4a8_dynamic.py).
//
// What is exact and what is not. The grouped matmul is integer (exact) followed by the
// quant_matmul epilogue (each fp32 step one IEEE op): every stage exact. SwiGLU uses exp,
// which no implementation computes exactly and whose accuracy is not documented for the NPU:
// the fp32 SwiGLU stage is BOUNDED (docs/bounds.md, "expert MLP"), from the exact value (exp in
// 50-digit binary floating point) and the stated exp accuracy kExpRelError; the int8 codes and
// the per-row scale after it are REACHABLE sets computed on intervals; rows past the group list
// are not written by the kernels and are UNSPECIFIED (the fixture's compared ranges).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"
#include "qconf/ops/index.h"
#include "qconf/ops/quant_matmul.h"

namespace qconf {

// ---- npu_grouped_matmul (W8A8: int8 x int8 -> int32, then the quant_matmul epilogue) ----------

struct GroupedMatmulConfig {
  GroupListType group_list_type = GroupListType::kCumsum;  // 0 cumsum, 1 count, 2 key_value
  // kBF16 / kF16 / kF32: (acc (+ int32 bias)) -> fp32 * scale[e] * per_token_scale (+ float
  // bias) -> cast RINT. kI32: the raw accumulator (split_item=3 of the MC2 path).
  DType output_dtype = DType::kBF16;
};

// The row groups a group list describes, in row order: group g covers rows [begin[g], end[g])
// and uses expert expert[g]. valid_rows = end of the last group (<= M); rows past it are not
// written by the kernel (unspecified).
struct GroupRows {
  std::vector<int64_t> expert, begin, end;
  int64_t valid_rows = 0;
};
// group_list: int64 [E] (cumsum or count) or [E, 2] (key_value); E = the weight's experts.
// Throws std::invalid_argument (bad format, sum > m).
GroupRows group_rows(const Tensor& group_list, GroupListType type, int64_t experts, int64_t m);

struct GroupedMatmulStages {
  Tensor acc;  // int32 [M, N]: x @ w[e] per group (rows past valid_rows: 0, unspecified)
  Tensor out;  // output_dtype [M, N] (rows past valid_rows: 0, unspecified)
  int64_t valid_rows = 0;
};

// x: int8 [M, K]; weight: int8 [E, K, N]; scale: float32 or bfloat16 [E, N] (ignored, and may be
// null, for int32 output); per_token_scale: float32 [M] or null; bias: int32 / float32 [E, N] or
// null; group_list: int64 (see GroupRows).
namespace ref {
GroupedMatmulStages npu_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor* scale,
                                       const Tensor* per_token_scale, const Tensor* bias,
                                       const Tensor& group_list, const GroupedMatmulConfig& cfg);
}
namespace opt {
GroupedMatmulStages npu_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor* scale,
                                       const Tensor* per_token_scale, const Tensor* bias,
                                       const Tensor& group_list, const GroupedMatmulConfig& cfg,
                                       int threads = 0);
}

// ---- SwiGLU -------------------------------------------------------------------------------------

// The stated accuracy of exp assumed by every bound and reachable set of this file [inf]: the
// NPU's vector Exp accuracy is undocumented; glibc expf and Highway's contrib Exp are within 1
// ulp; we allow 4 ulp of fp32, a relative error of 2^-21 (docs/bounds.md, "expert MLP").
inline constexpr int kExpRelErrorLog2 = -21;

struct SwigluConfig {
  // Which half gets swish: true = swish(first half) * second half (npu_swiglu,
  // grouped_matmul_swiglu_quant, vllm-ascend's call of dequant_swiglu_quant); false = swish(second
  // half) * first half (dequant_swiglu_quant's default, notes §10).
  bool activate_left = true;
  // 0: halves; 1: SwiGLU-OAI: gate = x[..., 0::2] clamped above at clamp_limit, up = x[..., 1::2]
  // clamped to [-limit, limit], out = gate * sigmoid(glu_alpha * gate) * (up + glu_bias).
  int swiglu_mode = 0;
  float clamp_limit = 7.0f, glu_alpha = 1.702f, glu_bias = 1.0f;
};

// The canonical fp32 evaluation (every op one IEEE fp32 op, exp correctly rounded):
//   mode 0: e = exp(-a); s = a / (1 + e); out = s * b
//   mode 1: t = alpha * g; e = exp(-t); s = g / (1 + e); u = up + bias; out = s * u
// plus, per element, the exact value (exp in 50 digits, stored as a double) and the bound of any
// implementation that rounds each step to fp32 and whose exp is within 2^kExpRelErrorLog2.
struct SwigluEval {
  float value;   // canonical fp32 result
  double exact;  // exact result, rounded to nearest double
  double bound;  // |any implementation's fp32 result - exact| <= bound (derived)
  float lo, hi;  // the fp32 interval [exact - bound, exact + bound], rounded outward
};
// a: the activated input (after the clamp in mode 1), b: the other one.
SwigluEval swiglu_eval(float a, float b, const SwigluConfig& cfg);
// The (activated, other) pair of output column j of a row of 2H fp32 values.
std::pair<float, float> swiglu_operands(const float* row, int64_t h, int64_t j,
                                        const SwigluConfig& cfg);

struct SwigluStages {
  Tensor out;    // x's dtype [..., H]: the canonical value cast RINT
  Tensor exact;  // float64: exact values (for the bounded check)
  Tensor bound;  // float64: derived bounds (the cast to x's dtype included)
};
// npu_swiglu(x, dim=-1) (mode 0, activate_left) and SwiGLU-OAI (mode 1). x: float32 / float16 /
// bfloat16 [..., 2H]; computed in fp32.
namespace ref {
SwigluStages npu_swiglu(const Tensor& x, const SwigluConfig& cfg);
}
namespace opt {
Tensor npu_swiglu(const Tensor& x, const SwigluConfig& cfg);
}

// ---- SwiGLU + dynamic int8 quant (fused)
// ---------------------------------------------------------

// The per-row int8 requantization after SwiGLU, as each op's kernel does it (notes §10):
enum class SwigluQuantRounding {
  // grouped_matmul_swiglu_quant: q = amax / 127 (the output scale), y = S * (1 / q), then
  // fp32 -> fp16 RINT -> int8 RINT: DOUBLE rounding (2.5 + 2^-12 -> fp16 2.5 -> int8 2).
  kDoubleFp16,
  // dequant_swiglu_quant: q = amax / 127, y = S / q [inf: "dynamic quant per row /127"], then
  // fp32 -> int16 RINT -> fp16 -> int8 (exact after the first cast): SINGLE rounding.
  kSingleInt16,
};

struct SwigluQuantStages {
  Tensor dequant;  // float32 [M, 2H]: the scaled accumulator (exact)
  Tensor swiglu;   // float32 [M, H]: canonical SwiGLU (bounded)
  Tensor y;        // int8 [M, H] (reachable; unspecified rows past valid_rows)
  Tensor scale;    // float32 [M] (reachable; unspecified rows past valid_rows)
  int64_t valid_rows = 0;
};

// What the oracle needs: per element of `swiglu`, exact and bound; reachable codes and scales.
struct SwigluQuantBounds {
  Tensor swiglu_exact, swiglu_bound;  // float64 [M, H]
  std::vector<int64_t> y_index, y_offsets;
  std::vector<int8_t> y_values;
  std::vector<int64_t> scale_index, scale_offsets;
  std::vector<float> scale_values;
};

// The shared quant step on the canonical S of one row plus its intervals.
struct RowQuant {
  float scale;
  std::vector<int8_t> codes;
};
RowQuant swiglu_row_quant(const float* s, int64_t h, SwigluQuantRounding r);
int8_t swiglu_code(float s, float q, SwigluQuantRounding r);

// npu_grouped_matmul_swiglu_quant(x int8 [M, K], weight int8 [E, K, 2H], group_list int64
// cumsum [E], weight_scale float32 [E, 2H], x_scale float32 [M]): acc -> fp32 -> * x_scale ->
// * weight_scale -> swish(first half) * second half -> kDoubleFp16 quant. Rows past
// group_list[-1] are not written.
namespace ref {
SwigluQuantStages npu_grouped_matmul_swiglu_quant(const Tensor& x, const Tensor& weight,
                                                  const Tensor& group_list,
                                                  const Tensor& weight_scale,
                                                  const Tensor& x_scale);
SwigluQuantBounds npu_grouped_matmul_swiglu_quant_bounds(const Tensor& x, const Tensor& weight,
                                                         const Tensor& group_list,
                                                         const Tensor& weight_scale,
                                                         const Tensor& x_scale);
}  // namespace ref
namespace opt {
SwigluQuantStages npu_grouped_matmul_swiglu_quant(const Tensor& x, const Tensor& weight,
                                                  const Tensor& group_list,
                                                  const Tensor& weight_scale, const Tensor& x_scale,
                                                  int threads = 0);
}

// npu_dequant_swiglu_quant(x int32 [M, 2H], weight_scale float32 [E, 2H] (or [2H]),
// activation_scale float32 [M], group_index int64 counts [E] (optional: all rows, expert 0),
// activate_left, quant_mode=1 (dynamic), swiglu_mode, clamp_limit, glu_alpha, glu_bias):
// fp32(x) * weight_scale * activation_scale -> SwiGLU (cfg) -> kSingleInt16 quant.
namespace ref {
SwigluQuantStages npu_dequant_swiglu_quant(const Tensor& x, const Tensor& weight_scale,
                                           const Tensor& activation_scale,
                                           const Tensor* group_index, const SwigluConfig& cfg);
SwigluQuantBounds npu_dequant_swiglu_quant_bounds(const Tensor& x, const Tensor& weight_scale,
                                                  const Tensor& activation_scale,
                                                  const Tensor* group_index,
                                                  const SwigluConfig& cfg);
}  // namespace ref
namespace opt {
SwigluQuantStages npu_dequant_swiglu_quant(const Tensor& x, const Tensor& weight_scale,
                                           const Tensor& activation_scale,
                                           const Tensor* group_index, const SwigluConfig& cfg);
}

// ---- W4A8 MSD decomposition (notes/vllm_ascend_quant.md §A "Why the correction is 8·Σ") -------

// x = 16 * hi + lo' + 8 with hi = floor(x / 16) = x >> 4 (arithmetic) in [-8, 7] and
// lo' = (x & 0xF) - 8 in [-8, 7]: both int4. Then for int4 weights w [K, N]:
//   x @ w = 16 * (hi @ w) + (lo' @ w) + 8 * colsum(w)
// exactly in integers; scale_bias = 8 * sum_k w[k, n] * s[n] is the float form of the last term
// (w4a8_scale_bias). Returns the three int32 terms [M, N]: hi @ w, lo' @ w, 8 * colsum(w).
struct W4a8MsdTerms {
  Tensor hi, lo, bias8;  // int32 [M, N]
};
namespace ref {
W4a8MsdTerms w4a8_msd_split_matmul(const Tensor& x, const Tensor& w);  // x int8, w int8 in [-8,7]
}

// ---- w4a8_msd_grouped_matmul: the W4A8 MoE gmm1 + SwiGLU + int8 requant by MSD ----------------
// (notes/vllm_ascend_quant.md §A "Why the correction is 8·Σ"; the vllm-ascend custom op
// grouped_matmul_swiglu_quant_v2 with weight_assist_matrix = w13_scale_bias, §C W4A8 path):
//   x_hi = x >> 4, x_lo' = (x & 0xF) - 8 (int4 each); A_hi = x_hi @ w[e], A_lo = x_lo' @ w[e]
//   (int32, exact); the cube's fixpipe applies s[e, n] (FP19, the uint64 quant vector) and
//   outputs fp16: a = fp16(A * s); then y = 16 a_hi + a_lo + scale_bias[e, n] (fp32),
//   C = y * s_tok[m], optional clamp (gate <= limit, up in [-limit, limit]), S = swish(C[:, :H])
//   * C[:, H:], per-row int8 requant (amax / 127).
struct W4a8MsdConfig {
  // Variant `fixpipe_precision` (as npu_quant_matmul) [inf]: fp32(A) * s in fp32 then fp16, or
  // the exact product rounded once to fp16.
  FixpipePrecision fixpipe = FixpipePrecision::kFp32;
  // Variant `msd_sum_order` [inf: the notes give the formula, not the order]: false =
  // (16 a_hi + a_lo) + scale_bias, true = 16 a_hi + (a_lo + scale_bias).
  bool bias_first = false;
  // Variant `requant_rounding` [inf: "re-quantize each row to int8 (max/127)"]: kDoubleFp16 (as
  // grouped_matmul_swiglu_quant, the v1 kernel) or kSingleInt16 (as dequant_swiglu_quant).
  SwigluQuantRounding rounding = SwigluQuantRounding::kDoubleFp16;
  // The optional clamp; <= 0 (or not finite): none.
  float clamp_limit = 0.0f;
};

struct W4a8MsdStages {
  Tensor x_hi, x_lo;      // int8 [M, K]: high nibble (arithmetic shift) and low nibble - 8
  Tensor acc_hi, acc_lo;  // int32 [M, 2H] (rows past valid_rows: 0, unspecified)
  Tensor a_hi, a_lo;      // float16 [M, 2H]: the fixpipe outputs
  Tensor msd_sum;         // float32 [M, 2H]: 16 a_hi + a_lo + scale_bias
  SwigluQuantStages q;    // dequant = msd_sum * s_tok (before the clamp), swiglu, y, scale
};

// x: int8 [M, K]; weight: int8 [E, K, 2H] holding int4 values in [-8, 7]; scale: float32
// [E, 2H], FP19 values (low 13 mantissa bits zero: what the quant vector carries); scale_bias:
// float32 [E, 2H]; x_scale: float32 [M]; group_list: int64 cumsum [E]. `bounds` (reference
// only): the SwiGLU bounds and reachable codes / scales.
// The MSD op's two float steps, shared with the W4A8 MoE gmm2 (qconf/ops/moe_w4.h): the fixpipe
// fp16(A * s) (variant fixpipe_precision) and 16 a_hi + a_lo + scale_bias in fp32 (bias_first:
// 16 a_hi + (a_lo + scale_bias)).
namespace ref {
uint16_t w4a8_msd_fixpipe_f16(int32_t acc, float s, FixpipePrecision p);
float w4a8_msd_sum(uint16_t a_hi, uint16_t a_lo, float sb, bool bias_first);
}  // namespace ref
namespace opt {  // native fp32, the same results
uint16_t w4a8_msd_fixpipe_f16(int32_t acc, float s, FixpipePrecision p);
float w4a8_msd_sum(uint16_t a_hi, uint16_t a_lo, float sb, bool bias_first);
}  // namespace opt

namespace ref {
W4a8MsdStages w4a8_msd_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor& scale,
                                      const Tensor& scale_bias, const Tensor& x_scale,
                                      const Tensor& group_list, const W4a8MsdConfig& cfg,
                                      SwigluQuantBounds* bounds = nullptr);
}
namespace opt {
W4a8MsdStages w4a8_msd_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor& scale,
                                      const Tensor& scale_bias, const Tensor& x_scale,
                                      const Tensor& group_list, const W4a8MsdConfig& cfg);
}

}  // namespace qconf
