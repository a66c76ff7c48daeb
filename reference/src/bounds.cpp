// Exact helpers for derived error bounds (qconf/numeric/bounds.h, docs/bounds.md).
#include "qconf/numeric/bounds.h"

#include <climits>

namespace qconf::num {

Exact pow2(int e) { return e >= 0 ? Exact(BigInt(1) << e) : Exact(BigInt(1), BigInt(1) << -e); }

Exact abs_exact(const Exact& v) { return v < 0 ? Exact(-v) : v; }

int floor_log2(const Exact& v) {
  const BigInt num = boost::multiprecision::numerator(v),
               den = boost::multiprecision::denominator(v);
  // msb(num) - msb(den) is floor(log2 v) or one more; adjust exactly.
  int e = static_cast<int>(boost::multiprecision::msb(num)) -
          static_cast<int>(boost::multiprecision::msb(den));
  while (pow2(e) > v) --e;
  while (pow2(e + 1) <= v) ++e;
  return e;
}

int low_bit(const Exact& v) {
  if (v == 0) return INT_MAX;
  const BigInt num = boost::multiprecision::numerator(v),
               den = boost::multiprecision::denominator(v);
  const BigInt an = num < 0 ? BigInt(-num) : num;
  // The denominator of a dyadic rational in lowest terms is a power of two.
  return static_cast<int>(boost::multiprecision::lsb(an)) -
         static_cast<int>(boost::multiprecision::msb(den));
}

Exact gamma(int64_t n, int p) {
  const Exact nu = Exact(n) * pow2(-p);
  return nu / (Exact(1) - nu);
}

Exact half_ulp(const FloatFormat& f, const Exact& mag) {
  const int emin = min_exponent(f);
  const int e = mag < pow2(emin) ? emin : floor_log2(mag);
  return pow2(e - f.mant_bits - 1);
}

Exact overflow_threshold(const FloatFormat& f) {
  return pow2(max_exponent(f) + 1) - pow2(max_exponent(f) - f.mant_bits - 1);
}

double to_double_nearest(const Exact& v) { return to_double(kF64, encode(kF64, v, Round::kRint)); }

double stored_bound(const Exact& bound, const Exact& exact) {
  const Exact err = abs_exact(to_exact(kF64, encode(kF64, exact, Round::kRint)) - exact);
  const Exact b = (bound + err) * (Exact(1) + pow2(-50));
  return to_double(kF64, encode(kF64, b, Round::kCeil));
}

}  // namespace qconf::num
