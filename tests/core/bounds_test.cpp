// The shared bound helpers (qconf/numeric/bounds.h) against hand-derived values and the host
// double arithmetic; each test fails on an off-by-one exponent or a bound rounded down.
#include "qconf/numeric/bounds.h"

#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <limits>

namespace qconf::num {
namespace {

Exact q(int64_t n, int64_t d) { return Exact(BigInt(n), BigInt(d)); }

TEST(Bounds, Pow2AndFloorLog2AreInverseAtAndBetweenPowersOfTwo) {
  for (int e = -160; e <= 140; e += 7) {
    EXPECT_EQ(floor_log2(pow2(e)), e);
    EXPECT_EQ(floor_log2(pow2(e) * q(3, 2)), e);           // 1.5 * 2^e
    EXPECT_EQ(floor_log2(pow2(e + 1) - pow2(e - 60)), e);  // just below 2^(e+1)
  }
  EXPECT_EQ(floor_log2(q(1, 3)), -2);
}

TEST(Bounds, LowBitIsTheTwoAdicValuationAndIntMaxForZero) {
  EXPECT_EQ(low_bit(Exact(0)), INT_MAX);
  EXPECT_EQ(low_bit(Exact(12)), 2);
  EXPECT_EQ(low_bit(Exact(-12)), 2);
  EXPECT_EQ(low_bit(q(3, 8)), -3);
  EXPECT_EQ(low_bit(pow2(-149)), -149);
}

TEST(Bounds, GammaIsNuOverOneMinusNu) {
  EXPECT_EQ(gamma(1), q(1, (1 << 24) - 1));
  EXPECT_EQ(gamma(3, 11), q(3, 2048 - 3));
  EXPECT_EQ(gamma(0), Exact(0));
}

TEST(Bounds, HalfUlpAndOverflowThresholdMatchTheFormats) {
  EXPECT_EQ(half_ulp(kF32, Exact(1)), pow2(-24));
  EXPECT_EQ(half_ulp(kF32, pow2(1) - pow2(-30)), pow2(-24));
  EXPECT_EQ(half_ulp(kF16, Exact(1024)), Exact(q(1, 2)));
  EXPECT_EQ(half_ulp(kF32, pow2(-140)), pow2(-150));  // subnormal spacing 2^-149
  EXPECT_EQ(half_ulp(kBF16, Exact(1)), pow2(-8));
  EXPECT_EQ(overflow_threshold(kF16), Exact(65520));
  EXPECT_EQ(overflow_threshold(kF32), pow2(128) - pow2(103));
}

TEST(Bounds, StoredBoundCoversTheStorageErrorAndRoundsUp) {
  // 1/3 is not a double: the stored bound covers |double(1/3) - 1/3| even for a zero bound.
  const Exact third = q(1, 3);
  const double ex = to_double_nearest(third);
  EXPECT_EQ(ex, 1.0 / 3.0);
  const double b0 = stored_bound(Exact(0), third);
  EXPECT_GE(Exact(b0), abs_exact(Exact(ex) - third));
  EXPECT_GT(b0, 0.0);
  // A representable bound on a representable value is widened by 2^-50 relative and rounded
  // up: strictly above the bound, at most a few ulps above it.
  const double b = stored_bound(pow2(-20), Exact(1));
  EXPECT_GT(b, std::ldexp(1.0, -20));
  EXPECT_LE(b, std::nextafter(std::ldexp(1.0, -20) * (1 + std::ldexp(1.0, -50)),
                              std::numeric_limits<double>::infinity()));
  EXPECT_EQ(abs_exact(Exact(-5)), Exact(5));
}

}  // namespace
}  // namespace qconf::num
