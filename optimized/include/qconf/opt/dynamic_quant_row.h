// One row of the optimized npu_dynamic_quant, for fused callers.
#pragma once

#include <cstdint>

namespace qconf::opt {

// One row of opt::npu_dynamic_quant(x) with the default DynQuantConfig (int8, mul_reciprocal,
// rint) and no smoothing (the W8A8_DYNAMIC linear): the same codes and scale, bit for bit.
// x: h float16 (f16) or bfloat16 values; xf: h floats of scratch.
void dynamic_quant_row_default(const uint16_t* x, bool f16, int64_t h, float* xf, int8_t* codes,
                               float* scale);

}  // namespace qconf::opt
