// One row of the optimized npu_dynamic_quant, for fused callers.
#pragma once

#include <cstdint>

namespace qconf::opt {

// One row of opt::npu_dynamic_quant(x) with the default DynQuantConfig (int8, mul_reciprocal,
// rint) and no smoothing (the W8A8_DYNAMIC linear): the same codes and scale, bit for bit.
// x: h float16 (f16) or bfloat16 values; xf: h floats of scratch.
void dynamic_quant_row_default(const uint16_t* x, bool f16, int64_t h, float* xf, int8_t* codes,
                               float* scale);

// A block of `rows` rows (1..6; row r at x + r * ldx) quantized straight into a GEMM's packed
// activation layout, each row exactly as dynamic_quant_row_default gives it (same codes and
// scale[r], bit for bit): the codes of row r, k-quad q (4 bytes) at dst + 4 (rows q + r), i.e.
// quad stride 4 rows (PackedActivationsS8's block layout), zero codes from h up to hp (a
// multiple of 4), and the sum of row r's codes (modulo 2^32) in rowsum[r]. bfloat16 only, on
// AVX-512; returns false, having written nothing, anywhere else (the caller then uses
// dynamic_quant_row_default). Throws std::invalid_argument for rows outside 1..6.
bool dynamic_quant_block_packed(const uint16_t* x, int64_t ldx, int rows, bool f16, int64_t h,
                                int64_t hp, int8_t* dst, float* scale, int32_t* rowsum);

}  // namespace qconf::opt
