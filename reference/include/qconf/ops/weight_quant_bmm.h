// npu_weight_quant_batchmatmul (torch_npu): y = x @ ANTIQUANT(weight) + bias, with
// ANTIQUANT(w) = (w + antiquant_offset) * antiquant_scale (PLUS sign), optionally requantized to
// int8: y = (x @ W + bias) * quant_scale + quant_offset.
//
// One signature, implemented in reference/ops/weight_quant_bmm.cpp (qconf::ref: the exact
// specification, and the per-element bounds and reachable sets the conformance checks use) and
// optimized/ops/weight_quant_bmm.cpp (qconf::opt: the antiquant fused into a threaded SIMD GEMV /
// GEMM over prepacked weights).
//
// What is deterministic and what is not (docs/bounds.md, "npu_weight_quant_batchmatmul"):
//   * the antiquantized weight W (every step one rounding in a fixed dtype): EXACT;
//   * the fp32 accumulation x @ W + bias: the cube unit's summation order is not specified, so
//     y is BOUNDED by a limit derived from the exact dot product;
//   * the int8 output follows the inexact accumulation: REACHABLE sets of codes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "qconf/core/large_buffer.h"
#include "qconf/core/tensor.h"

namespace qconf {

// How the int8 output (quant_scale given) is produced. The readings (notes §2, §3):
enum class WqbmmRequant {
  // "fixpipe" (default): op-plugin converts an fp32 quant_scale with aclnnTransQuantParamV2 to
  // the uint64 the kernel reads (code: op-plugin WeightQuantBatchMatmulKernelNpuOpApi.cpp), i.e.
  // the scale truncated to FP19 (bits & 0xFFFFE000) and the offset rounded to a 9-bit integer;
  // the requant golden of the quant matmul kernels: y = clip(s9(RINT(acc * scale19)) +
  // s9(offset), -128, 127), s9 = clip to [-256, 255] [test: qbmmv3_kernel_golden.py].
  // Applying that golden to this op is [inf].
  kFixpipe,
  // "fp32": the documented formula in fp32: y = sat_int8(RINT(fp32(fp32(acc * quant_scale) +
  // quant_offset))) [doc: aclnnWeightQuantBatchMatmulV2.md].
  kFp32,
};
std::string_view wqbmm_requant_name(WqbmmRequant r);
WqbmmRequant parse_wqbmm_requant(std::string_view s);

// The precision of the antiquant for fp16 x (bf16 x always computes in fp32, then rounds once).
enum class WqbmmAntiquant {
  // "x_dtype" (default): fp16 x -> every antiquant op rounds to fp16 (AntiQuantCalType<half> in
  // weight_quant_batch_matmul_v2_common.h; AscendAntiQuant doc) [code].
  kXDtype,
  // "fp32": fp16 x -> (w + offset) and * scale in fp32, one final rounding to fp16 (other kernel
  // templates, msd/splitK/NZ, are not audited [inf]; a CPU port computing in fp32).
  kFp32,
};
std::string_view wqbmm_antiquant_name(WqbmmAntiquant a);
WqbmmAntiquant parse_wqbmm_antiquant(std::string_view s);

struct WqbmmConfig {
  int64_t group_size = 0;  // antiquant_group_size: 0, or a multiple of 32 in [32, K - 1]
  WqbmmRequant requant = WqbmmRequant::kFixpipe;
  WqbmmAntiquant antiquant = WqbmmAntiquant::kXDtype;
};

// The inputs (optional ones may be null).
struct WqbmmArgs {
  const Tensor* x = nullptr;                 // float16 | bfloat16 [M, K]
  const Tensor* weight = nullptr;            // int8 [K, N], or int32 [K, N/8] (8 int4 along N)
  const Tensor* antiquant_scale = nullptr;   // x dtype: (1,) | (N,) | (1, N) | (ceil(K/G), N)
  const Tensor* antiquant_offset = nullptr;  // x dtype, the shape of antiquant_scale
  const Tensor* quant_scale = nullptr;       // float32 (1,) | (N,) | (1, N): int8 output
  const Tensor* quant_offset = nullptr;      // float32, the shape of quant_scale
  const Tensor* bias = nullptr;              // (N,) | (1, N): float16 for fp16 x, float32 for bf16
};

enum class WqbmmScaleMode { kPerTensor, kPerChannel, kPerGroup };

struct WqbmmShape {
  int64_t m = 0, k = 0, n = 0;
  bool int4 = false;
  DType xdt = DType::kF16;
  WqbmmScaleMode mode = WqbmmScaleMode::kPerTensor;
  int64_t group_size = 0, groups = 1;  // per-group: ceil(K / G) groups
  bool quant_out = false;              // quant_scale given: int8 output
  bool per_channel_quant = false;      // quant_scale has N elements
  // The row of the scale/offset tensors used by weight row k, and the column index used by n.
  int64_t group_of(int64_t k) const {
    return mode == WqbmmScaleMode::kPerGroup ? k / group_size : 0;
  }
  int64_t param_index(int64_t k, int64_t n) const {
    return mode == WqbmmScaleMode::kPerTensor ? 0 : group_of(k) * this->n + n;
  }
};
// Validates (std::invalid_argument naming the op, the argument and what was expected).
WqbmmShape check_wqbmm_inputs(const WqbmmArgs& a, const WqbmmConfig& cfg);

// The stages of one call, in pipeline order.
struct WqbmmStages {
  Tensor weight_values;     // int8 [K, N]: the int8 weights, or the int4 codes unpacked
  Tensor antiquant_weight;  // x dtype [K, N]: W = (w + offset) * scale, rounded as specified
  Tensor acc;               // float32 [M, N]: x @ W + bias in fp32 (ref: the exact value rounded
                            // once; any summation order is within the bound)
  Tensor y;                 // x dtype [M, N], or int8 [M, N] with quant_scale
};

// What the conformance checks need (docs/bounds.md): per element of [M, N], float64.
struct WqbmmBounds {
  Tensor acc_exact, acc_bound;  // exact x @ W + bias; bound of any fp32 summation
  Tensor y_exact, y_bound;      // float output: exact, bound incl. the rounding to the x dtype
  std::vector<bool> acc_provably_exact;  // every summation order gives the exact value
  // int8 output: every code reachable from the interval [exact - bound, exact + bound] through
  // the requant epilogue, for the elements with >= 2 reachable codes (CSR, flat index order).
  std::vector<int64_t> reach_index, reach_offsets;
  std::vector<int8_t> reach_codes;
};

namespace ref {
WqbmmStages npu_weight_quant_batchmatmul(const WqbmmArgs& a, const WqbmmConfig& cfg);
WqbmmBounds npu_weight_quant_batchmatmul_bounds(const WqbmmArgs& a, const WqbmmConfig& cfg);
// Step 1: the int8 weights, or the int4 codes of the packed int32 words (element 8j+t of a row
// in bits [4t, 4t+3] of word j, two's complement: notes §0).
Tensor wqbmm_weight_values(const Tensor& weight);
// Step 2: one antiquantized weight, as x-dtype bits. offset may be null.
uint16_t wqbmm_antiquant(DType xdt, int8_t w, uint16_t scale, const uint16_t* offset,
                         WqbmmAntiquant mode);
// Step 5 (int8 output): one code from the fp32 accumulator (bits). quant_offset may be null.
int8_t wqbmm_requant(uint32_t acc, uint32_t quant_scale, const uint32_t* quant_offset,
                     WqbmmRequant mode);
}  // namespace ref

namespace opt {
WqbmmStages npu_weight_quant_batchmatmul(const WqbmmArgs& a, const WqbmmConfig& cfg);

// The fused GEMV/GEMM on weights prepared once (as an inference engine prepares them at load
// time): columns stored k-contiguous (int8: K bytes per column; int4: K/2 bytes, the even k in
// the low nibble), padded to a multiple of 64 rows (int4: 128), with the raw scale/offset bits per
// (column, group). The antiquant is computed on the fly inside the GEMV (int4: a 16-entry
// table per column and group; int8: per element), never materialized.
struct WqbmmWeights {
  WqbmmShape shape;
  WqbmmAntiquant antiquant = WqbmmAntiquant::kXDtype;
  bool has_offset = false;
  int64_t kpad = 0;  // K rounded up to a multiple of 64 (int4: of 128)
  // N * kpad (int8) or N * kpad / 2 (int4) bytes (huge-page backed when large, as streamed)
  std::vector<uint8_t, LargeBufferAllocator<uint8_t>> packed;
  std::vector<uint16_t> params;   // [N][groups][2]: scale bits, offset bits (0 if none)
  std::vector<float> params_f32;  // [N][groups][2]: the same, widened to fp32 (exact)
  std::vector<uint8_t> kinds;     // [N][groups]: the antiquant formula of each column group
  // bf16 x only: every W is a normal number or zero, and groups are multiples of 64 (the dot
  // path's int8 blocks; int4 superblocks split at 64), so the bf16 dot-product path (vdpbf16ps,
  // which flushes subnormals) computes exact products.
  bool dot_ok = false;
};
WqbmmWeights wqbmm_prepare_weights(const WqbmmArgs& a, const WqbmmConfig& cfg);
// acc[m, n] = sum_k x[m, k] * W[k, n] (+ bias[n]) in fp32, in a summation order fixed per
// element, independent of `threads` and of the row blocking (it depends only on the CPU's
// AVX512_BF16 and, for bf16 x, on whether x holds subnormals: optimized/ops/
// weight_quant_bmm.cpp). x: M rows of K x-dtype bits; bias: N floats or null.
void wqbmm_gemm_acc(const WqbmmWeights& w, const uint16_t* x, int64_t m, const float* bias,
                    float* acc, int threads = 0);
// Name of the kernel used on this CPU ("avx512" or "portable").
std::string_view wqbmm_kernel_name();
// Test hook: run the portable kernel even where AVX-512 is available (both give bit-identical
// results; tests/ops/weight_quant_bmm_test.cpp proves it).
void wqbmm_force_portable_kernel(bool on);
// Test hook: on a CPU with AVX-512 VBMI, compute the int8 bf16 words by conversion instead of
// by table lookup (the VBMI lookup and the conversion give bit-identical results).
void wqbmm_disable_vbmi_lookup(bool on);
}  // namespace opt

}  // namespace qconf
