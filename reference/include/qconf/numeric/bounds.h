// Exact helpers for derived error bounds (docs/bounds.md explains every derivation that uses
// them). Shared by the reference ops whose stages are checked `bounded`: the bound is computed in
// exact rationals from the exact result, the accumulation length and the magnitudes, then stored
// as a double rounded up.
//
// No floating-point arithmetic is involved: results do not depend on the compiler, the
// optimisation level or the FPU state (goldens are bit-identical across them).
#pragma once

#include <cstdint>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/rounding.h"

namespace qconf::num {

// 2^e, exactly.
Exact pow2(int e);

// |v|.
Exact abs_exact(const Exact& v);

// floor(log2(v)) for v > 0.
int floor_log2(const Exact& v);

// The exponent of the lowest set bit of a dyadic rational: the largest q with v a multiple of
// 2^q (|v| = odd * 2^q). INT_MAX for 0. (Every finite float value is dyadic.)
int low_bit(const Exact& v);

// gamma_n = n u / (1 - n u) with unit roundoff u = 2^-p (p = 24 for fp32, 11 for fp16, 8 for
// bf16): Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Lemma 3.1 and eq.
// (4.4), the bound factor of any order of n - 1 additions of n terms. Requires n u < 1.
Exact gamma(int64_t n, int p = 24);

// Half an ulp of format f at magnitude mag (>= 0): the largest error of a round to nearest of
// any value of magnitude <= mag (the ulp grows with the magnitude; below the normal range it is
// the subnormal spacing).
Exact half_ulp(const FloatFormat& f, const Exact& mag);

// Values of magnitude >= this round to Inf (round to nearest): (2 - 2^-p) 2^emax.
Exact overflow_threshold(const FloatFormat& f);

// v rounded to the nearest double (ties to even).
double to_double_nearest(const Exact& v);

// The bound as stored in a fixture next to the exact value stored as a double: the derived
// bound plus the error of storing `exact` as a double (to_double_nearest), widened by 2^-50
// relative for the checker's own double subtraction, rounded up to a double.
double stored_bound(const Exact& bound, const Exact& exact);

}  // namespace qconf::num
