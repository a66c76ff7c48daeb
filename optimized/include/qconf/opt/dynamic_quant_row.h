// One row of the optimized npu_dynamic_quant, for fused callers.
#pragma once

#include <cstdint>

namespace qconf::opt {

// One row of opt::npu_dynamic_quant(x) with the default DynQuantConfig (int8, mul_reciprocal,
// rint) and no smoothing (the W8A8_DYNAMIC linear): the same codes and scale, bit for bit.
// x: h float16 (f16) or bfloat16 values; xf: h floats of scratch.
void dynamic_quant_row_default(const uint16_t* x, bool f16, int64_t h, float* xf, int8_t* codes,
                               float* scale);

// The same row (same codes and scale, bit for bit), quantized straight into a GEMM's packed
// activation layout: the codes of k-quad q (4 bytes) at dst + q * quad_stride, zero codes from
// h up to hp (a multiple of 4), and the sum of the codes (modulo 2^32) in *rowsum. bfloat16 only,
// on AVX-512; returns false, having written nothing, anywhere else (the caller then uses
// dynamic_quant_row_default).
bool dynamic_quant_row_packed(const uint16_t* x, bool f16, int64_t h, int64_t hp, int8_t* dst,
                              int64_t quad_stride, float* scale, int32_t* rowsum);

// Six rows (row r at x + r * ldx) into one full block of that layout (quad stride 24: the
// codes of row r, k-quad q at dst + 24 q + 4 r), each row exactly as dynamic_quant_row_packed
// gives it (scale[r], rowsum[r]); the 24 dwords of four k-quads are interleaved in registers and
// stored as two vectors. Same conditions and fallback as dynamic_quant_row_packed.
bool dynamic_quant_block6_packed(const uint16_t* x, int64_t ldx, bool f16, int64_t h, int64_t hp,
                                 int8_t* dst, float* scale, int32_t* rowsum);

}  // namespace qconf::opt
