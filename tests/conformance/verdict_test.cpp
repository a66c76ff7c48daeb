// The verdict engine on hand-made stages: every check mode, mismatch reports, MISTRUSTED, and
// element formatting.
#include "qconf/conformance/verdict.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "qconf/conformance/fixture.h"
#include "qconf/core/tensor.h"

namespace qconf::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A tensor from raw element bits (low dtype_size bytes of each value, little-endian).
Tensor bits(DType dt, Shape shape, const std::vector<uint64_t>& b) {
  Tensor t(dt, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numel()), b.size());
  const size_t sz = dtype_size(dt);
  for (size_t i = 0; i < b.size(); ++i)
    std::memcpy(reinterpret_cast<unsigned char*>(t.bytes()) + i * sz, &b[i], sz);
  return t;
}
Tensor bits(DType dt, const std::vector<uint64_t>& b) {
  return bits(dt, {static_cast<int64_t>(b.size())}, b);
}
Tensor f64(const std::vector<double>& v) {
  return Tensor::from<double>({static_cast<int64_t>(v.size())}, v);
}
Tensor i32(Shape shape, const std::vector<int32_t>& v) {
  return Tensor::from<int32_t>(std::move(shape), v);
}

Stage make_stage(Tensor expected, CheckMode mode = CheckMode::kExact) {
  Stage s;
  s.name = "out";
  s.expected = std::move(expected);
  s.check.mode = mode;
  return s;
}

// A copy of t with element i's bits replaced.
Tensor with_bits(Tensor t, int64_t i, uint64_t b) {
  const size_t sz = dtype_size(t.dtype());
  std::memcpy(reinterpret_cast<unsigned char*>(t.bytes()) + static_cast<size_t>(i) * sz, &b, sz);
  return t;
}

// ---- exact -------------------------------------------------------------------------------------

TEST(VerifyExact, PassesOnBitEqualityForEveryDtype) {
  for (DType dt : all_dtypes()) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor t = bits(dt, {3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0});
    StageResult r = verify_stage(make_stage(t), t);
    EXPECT_EQ(r.verdict, Verdict::kPass) << r.message;
    EXPECT_EQ(r.mismatches, 0);
    EXPECT_TRUE(r.first.empty());
    EXPECT_EQ(r.stage, "out");
    EXPECT_FALSE(r.used_accept_set);
  }
}

TEST(VerifyExact, FailsOnOneDifferingElementAndCountsIt) {
  Tensor e = i32({4}, {1, 2, 3, 4});
  StageResult r = verify_stage(make_stage(e), i32({4}, {1, 2, 7, 4}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.mismatches, 1);
  EXPECT_EQ(r.message, "1 of 4 elements differ (exact)");
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, 2);
  EXPECT_EQ(r.first[0].coords, "[2]");
  EXPECT_EQ(r.first[0].expected, "3 (0x00000003)");
  EXPECT_EQ(r.first[0].got, "7 (0x00000007)");
  EXPECT_EQ(r.first[0].difference, "+4 codes");
}

TEST(VerifyExact, NanWithDifferentPayloadFailsInExactButPassesInSpecial) {
  struct Pair {
    DType dt;
    uint64_t expected, got;
  };
  for (const Pair& p : {Pair{DType::kF32, 0x7fc00000, 0x7fc00001},
                        Pair{DType::kF32, 0x7fc00000, 0xffc00000},  // sign of a NaN
                        Pair{DType::kF16, 0x7e00, 0x7c01},          // quiet vs signalling
                        Pair{DType::kBF16, 0x7fc0, 0x7fc1},
                        Pair{DType::kF64, 0x7ff8000000000000ull, 0x7ff8000000000001ull}}) {
    SCOPED_TRACE(std::string(dtype_name(p.dt)) + " " + std::to_string(p.got));
    Tensor e = bits(p.dt, {0, p.expected});
    Tensor g = bits(p.dt, {0, p.got});
    StageResult exact = verify_stage(make_stage(e, CheckMode::kExact), g);
    EXPECT_EQ(exact.verdict, Verdict::kFail);
    EXPECT_EQ(exact.mismatches, 1);
    StageResult special = verify_stage(make_stage(e, CheckMode::kSpecial), g);
    EXPECT_EQ(special.verdict, Verdict::kPass) << special.message;
  }
}

// Both values are NaN: the report must not claim that one of them is not.
TEST(VerifyExact, NanPayloadMismatchIsNotDescribedAsNanVersusNonNan) {
  Tensor e = bits(DType::kF32, {0x7fc00000});
  StageResult r = verify_stage(make_stage(e), bits(DType::kF32, {0x7fc00001}));
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_THAT(r.first[0].difference, Not(HasSubstr("non-NaN")));
  // A real NaN vs number mismatch says so.
  StageResult r2 = verify_stage(make_stage(e), bits(DType::kF32, {0x3f800000}));
  ASSERT_EQ(r2.first.size(), 1u);
  EXPECT_THAT(r2.first[0].difference, HasSubstr("NaN"));
}

TEST(VerifyExact, NegativeZeroVersusPositiveZeroFailsUnlessSignedZeroIsFalse) {
  for (auto [dt, neg] :
       {std::pair{DType::kF16, uint64_t{0x8000}}, std::pair{DType::kBF16, uint64_t{0x8000}},
        std::pair{DType::kF32, uint64_t{0x80000000}},
        std::pair{DType::kF64, uint64_t{0x8000000000000000}}}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor e = bits(dt, {neg, 0});
    Tensor g = bits(dt, {0, neg});
    for (CheckMode m : {CheckMode::kExact, CheckMode::kSpecial}) {
      Stage s = make_stage(e, m);
      StageResult r = verify_stage(s, g);
      EXPECT_EQ(r.verdict, Verdict::kFail);
      EXPECT_EQ(r.mismatches, 2);
      s.check.signed_zero = false;
      EXPECT_EQ(verify_stage(s, g).verdict, Verdict::kPass);
      // signed_zero=false relaxes only zeros.
      EXPECT_EQ(verify_stage(s, with_bits(g, 0, 1)).verdict, Verdict::kFail);
    }
  }
}

// A -0/+0 mismatch is zero ulps apart: reporting "0 ulp" as the difference says nothing.
TEST(VerifyExact, SignedZeroMismatchIsNotReportedAsZeroUlp) {
  StageResult r =
      verify_stage(make_stage(bits(DType::kF32, {0x80000000})), bits(DType::kF32, {0x00000000}));
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_NE(r.first[0].difference, "0 ulp");
}

TEST(VerifySpecial, InfinitiesNeedTheRightSignAndFiniteValuesAreExact) {
  Tensor e = bits(DType::kF32, {0x7f800000, 0xff800000, 0x3f800000, 0x7fc00000});
  Stage s = make_stage(e, CheckMode::kSpecial);
  EXPECT_EQ(verify_stage(s, e).verdict, Verdict::kPass);
  EXPECT_EQ(verify_stage(s, with_bits(e, 0, 0xff800000)).verdict, Verdict::kFail);
  EXPECT_EQ(verify_stage(s, with_bits(e, 1, 0xff7fffff)).verdict, Verdict::kFail);
  EXPECT_EQ(verify_stage(s, with_bits(e, 2, 0x3f800001)).verdict, Verdict::kFail);
  EXPECT_EQ(verify_stage(s, with_bits(e, 3, 0x7f800000)).verdict, Verdict::kFail);  // NaN vs Inf
  EXPECT_EQ(verify_stage(s, with_bits(e, 3, 0x7f800001)).verdict, Verdict::kPass);  // any NaN
}

// ---- exact_ties / reachable --------------------------------------------------------------------

// int8 stage 10, 20, 30, 40, 50; element 2 may be 30 or 31, element 4 may be 49, 50 or 51.
Stage accept_stage(CheckMode mode) {
  Stage s = make_stage(Tensor::from<int8_t>({5}, std::vector<int8_t>{10, 20, 30, 40, 50}), mode);
  s.check.accept.index = {2, 4};
  s.check.accept.offsets = {0, 2, 5};
  s.check.accept.values = Tensor::from<int8_t>({5}, std::vector<int8_t>{30, 31, 49, 50, 51});
  return s;
}
Tensor i8(const std::vector<int8_t>& v) {
  return Tensor::from<int8_t>({static_cast<int64_t>(v.size())}, v);
}

TEST(VerifyAccept, ListedAlternativePassesAndSetsUsedAcceptSet) {
  for (CheckMode m : {CheckMode::kExactTies, CheckMode::kReachable}) {
    SCOPED_TRACE(std::string(check_mode_name(m)));
    Stage s = accept_stage(m);
    StageResult r = verify_stage(s, i8({10, 20, 31, 40, 49}));
    EXPECT_EQ(r.verdict, Verdict::kPass) << r.message;
    EXPECT_TRUE(r.used_accept_set);
    EXPECT_EQ(r.mismatches, 0);
    StageResult same = verify_stage(s, i8({10, 20, 30, 40, 50}));
    EXPECT_EQ(same.verdict, Verdict::kPass);
    EXPECT_FALSE(same.used_accept_set);
  }
}

TEST(VerifyAccept, UnlistedValueAtAListedElementFails) {
  for (CheckMode m : {CheckMode::kExactTies, CheckMode::kReachable}) {
    SCOPED_TRACE(std::string(check_mode_name(m)));
    StageResult r = verify_stage(accept_stage(m), i8({10, 20, 29, 40, 50}));
    EXPECT_EQ(r.verdict, Verdict::kFail);
    EXPECT_EQ(r.mismatches, 1);
    ASSERT_EQ(r.first.size(), 1u);
    EXPECT_EQ(r.first[0].index, 2);
    EXPECT_EQ(r.first[0].difference, "-1 code");
    // 31 is acceptable at element 2, not at element 4.
    EXPECT_EQ(verify_stage(accept_stage(m), i8({10, 20, 30, 40, 31})).verdict, Verdict::kFail);
  }
}

TEST(VerifyAccept, DifferenceAtAnUnlistedElementFailsEvenWhenAnotherUsesTheSet) {
  for (CheckMode m : {CheckMode::kExactTies, CheckMode::kReachable}) {
    SCOPED_TRACE(std::string(check_mode_name(m)));
    StageResult r = verify_stage(accept_stage(m), i8({10, 21, 31, 40, 50}));
    EXPECT_EQ(r.verdict, Verdict::kFail);
    EXPECT_EQ(r.mismatches, 1);
    ASSERT_EQ(r.first.size(), 1u);
    EXPECT_EQ(r.first[0].index, 1);
    // A listed value is no excuse for an element that is not listed ("30" is listed for 2).
    EXPECT_EQ(verify_stage(accept_stage(m), i8({30, 20, 30, 40, 50})).verdict, Verdict::kFail);
  }
}

TEST(VerifyAccept, ExactModeIgnoresAnAcceptSet) {
  Stage s = accept_stage(CheckMode::kExactTies);
  s.check.mode = CheckMode::kExact;
  EXPECT_EQ(verify_stage(s, i8({10, 20, 31, 40, 50})).verdict, Verdict::kFail);
}

// ---- bounded -----------------------------------------------------------------------------------

// float32 stage; exact e, bound b.
Stage bounded_stage(const std::vector<double>& e, const std::vector<double>& b) {
  std::vector<float> rounded;
  for (double x : e) rounded.push_back(static_cast<float>(x));
  Stage s = make_stage(Tensor::from<float>({static_cast<int64_t>(e.size())}, rounded),
                       CheckMode::kBounded);
  s.check.exact = f64(e);
  s.check.bound = f64(b);
  return s;
}
Tensor f32(const std::vector<float>& v) {
  return Tensor::from<float>({static_cast<int64_t>(v.size())}, v);
}

// ---- row_set, unordered and ordered ---------------------------------------------------------

// Two rows of 3 ids; row 1 may also be {2, 9, 4} in that order (an alternative sequence).
Stage row_stage(bool ordered) {
  Stage s = make_stage(i32({2, 3}, {7, 1, 4, 9, 2, 5}), CheckMode::kRowSet);
  s.check.ordered = ordered;
  s.check.accept.index = {1};
  s.check.accept.offsets = {0, 3};
  s.check.accept.values = i32({3}, {2, 9, 4});
  return s;
}

TEST(VerifyRowSet, UnorderedAcceptsAnyOrderOfTheSetOrAnAlternative) {
  const Stage s = row_stage(false);
  EXPECT_EQ(verify_stage(s, i32({2, 3}, {4, 7, 1, 5, 2, 9})).verdict, Verdict::kPass);
  EXPECT_EQ(verify_stage(s, i32({2, 3}, {1, 4, 7, 4, 9, 2})).verdict, Verdict::kPass);
  EXPECT_EQ(verify_stage(s, i32({2, 3}, {7, 1, 3, 9, 2, 5})).verdict, Verdict::kFail);
}

TEST(VerifyRowSet, OrderedFailsTheRightSetInAnotherOrderAndAcceptsListedSequences) {
  const Stage s = row_stage(true);
  EXPECT_EQ(verify_stage(s, i32({2, 3}, {7, 1, 4, 9, 2, 5})).verdict, Verdict::kPass);
  const StageResult alt = verify_stage(s, i32({2, 3}, {7, 1, 4, 2, 9, 4}));
  EXPECT_EQ(alt.verdict, Verdict::kPass);
  EXPECT_TRUE(alt.used_accept_set);
  // The expected set reversed (ascending port): fails, reported at the first differing place.
  const StageResult r = verify_stage(s, i32({2, 3}, {4, 1, 7, 9, 2, 5}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].coords, "[0, 0]");
  EXPECT_THAT(r.first[0].difference, HasSubstr("not an acceptable sequence"));
  EXPECT_THAT(r.message, HasSubstr("ordered"));
  // The alternative's set in another order is not listed: fails.
  EXPECT_EQ(verify_stage(s, i32({2, 3}, {7, 1, 4, 9, 4, 2})).verdict, Verdict::kFail);
}

TEST(VerifyBounded, WithinBoundPassesAndStatisticsAreRight) {
  Stage s = bounded_stage({1, 2, 3, 4}, {0.5, 0.25, 1, 2});
  // q = (g - e) / b = 0.5, -1 (exactly at the bound), 0, 0.5
  StageResult r = verify_stage(s, f32({1.25f, 1.75f, 3.0f, 5.0f}));
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.message;
  EXPECT_EQ(r.stats.elements, 4);
  EXPECT_DOUBLE_EQ(r.stats.max_err_over_bound, 1.0);
  EXPECT_DOUBLE_EQ(r.stats.mean_err_over_bound, 0.0);
  EXPECT_DOUBLE_EQ(r.stats.rms_err_over_bound, std::sqrt((0.25 + 1 + 0 + 0.25) / 4));
}

TEST(VerifyBounded, MeanIsSignedAndShowsABias) {
  Stage s = bounded_stage({1, 2, 3, 4}, {1, 1, 1, 1});
  StageResult r = verify_stage(s, f32({0.5f, 1.75f, 2.5f, 3.75f}));
  EXPECT_EQ(r.verdict, Verdict::kPass);
  EXPECT_DOUBLE_EQ(r.stats.mean_err_over_bound, -(0.5 + 0.25 + 0.5 + 0.25) / 4);
  EXPECT_DOUBLE_EQ(r.stats.max_err_over_bound, 0.5);
  EXPECT_DOUBLE_EQ(r.stats.rms_err_over_bound, std::sqrt((0.25 + 0.0625 + 0.25 + 0.0625) / 4));
}

TEST(VerifyBounded, JustOverTheBoundFails) {
  Stage s = bounded_stage({1, 2, 3, 4}, {0.5, 0.25, 1, 2});
  float just_below = std::nextafter(1.75f, 0.0f);  // err 0.25 + 2^-23 > 0.25
  StageResult r = verify_stage(s, f32({1.0f, just_below, 3.0f, 4.0f}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.mismatches, 1);
  EXPECT_EQ(r.message, "1 of 4 elements differ (bounded)");
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, 1);
  EXPECT_THAT(r.first[0].difference, StartsWith("err "));
  EXPECT_THAT(r.first[0].difference, HasSubstr(" > bound "));
  EXPECT_GT(r.stats.max_err_over_bound, 1.0);
}

// The printed error must visibly exceed the printed bound, or the report contradicts itself
// ("err 0.25 > bound 0.25").
TEST(VerifyBounded, ReportedErrorVisiblyExceedsReportedBound) {
  Stage s = bounded_stage({2}, {0.25});
  StageResult r = verify_stage(s, f32({std::nextafter(1.75f, 0.0f)}));
  ASSERT_EQ(r.first.size(), 1u);
  double err = 0, bound = 0;
  ASSERT_EQ(std::sscanf(r.first[0].difference.c_str(), "err %lf > bound %lf", &err, &bound), 2)
      << r.first[0].difference;
  EXPECT_GT(err, bound) << r.first[0].difference;
}

// Chart samples for the HTML report: small stages are shown whole, large ones every k-th
// element, and the failing elements and the worst one are never sampled away.
TEST(VerifyBounded, SmallStageSamplesEveryElementWithItsErrorAndBound) {
  Stage s = bounded_stage({1, 2, 3, 4}, {0.5, 0.25, 1, 2});
  StageResult r = verify_stage(s, f32({1.25f, 1.75f, 3.0f, 5.0f}));
  EXPECT_EQ(r.sample_stride, 1);
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[1].index, 1);
  EXPECT_DOUBLE_EQ(r.samples[1].err, 0.25);
  EXPECT_DOUBLE_EQ(r.samples[1].bound, 0.25);
  EXPECT_DOUBLE_EQ(r.samples[3].err, 1.0);
}

TEST(VerifyBounded, LargeStageIsSampledButKeepsFailingAndWorstElements) {
  const int n = 5003;
  std::vector<double> e(n, 1.0), b(n, 0.5);
  std::vector<float> g(n, 1.0f);
  g[7] = 1.25f;    // worst passing element, not on the stride
  g[4001] = 3.0f;  // failing, not on the stride
  g[4003] = 2.0f;  // failing
  Stage s = bounded_stage(e, b);
  StageResult r = verify_stage(s, f32(g));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.sample_stride, 6);  // ceil(5003 / 1000)
  EXPECT_LE(r.samples.size(), kMaxBoundSamples + kMaxFailingSamples + 1);
  auto has = [&](int64_t i) {
    for (const auto& x : r.samples)
      if (x.index == i) return true;
    return false;
  };
  EXPECT_TRUE(has(0));
  EXPECT_TRUE(has(6));
  EXPECT_FALSE(has(5));
  EXPECT_TRUE(has(4001));
  EXPECT_TRUE(has(4003));
  EXPECT_FALSE(has(7)) << "only the element with the largest |err|/bound is added";
  EXPECT_EQ(r.samples.size(), static_cast<size_t>((n + 5) / 6 + 2));
}

TEST(VerifyBounded, FailingSamplesAreCapped) {
  const int n = 3000;
  std::vector<double> e(n, 1.0), b(n, 0.5);
  std::vector<float> g(n, 9.0f);  // every element fails
  StageResult r = verify_stage(bounded_stage(e, b), f32(g));
  EXPECT_EQ(r.sample_stride, 3);
  EXPECT_EQ(r.samples.size(), 1000u + kMaxFailingSamples);
}

TEST(VerifyBounded, InfiniteBoundAcceptsAnything) {
  Stage s = bounded_stage({1, 1, 1, 1}, {kInf, kInf, kInf, kInf});
  StageResult r = verify_stage(s, f32({1e30f, -std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::quiet_NaN(), -7.0f}));
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.message;
  EXPECT_EQ(r.stats.elements, 0);  // no finite bound: nothing to average
}

TEST(VerifyBounded, NanExactRequiresNan) {
  Stage s = bounded_stage({kNaN, 1}, {1, 1});
  EXPECT_EQ(verify_stage(s, f32({std::numeric_limits<float>::quiet_NaN(), 1.0f})).verdict,
            Verdict::kPass);
  StageResult r = verify_stage(s, f32({1.0f, 1.0f}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].index, 0);
  EXPECT_THAT(r.first[0].difference, HasSubstr("NaN"));
  // Even an infinite bound does not excuse a number where NaN is exact.
  Stage inf_bound = bounded_stage({kNaN}, {kInf});
  EXPECT_EQ(verify_stage(inf_bound, f32({0.0f})).verdict, Verdict::kFail);
}

TEST(VerifyBounded, NonFiniteResultPassesOnlyAsTheSameInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  Stage s = bounded_stage({kInf, 1}, {1, 1e30});
  EXPECT_EQ(verify_stage(s, f32({inf, 1.0f})).verdict, Verdict::kPass);
  EXPECT_EQ(verify_stage(s, f32({-inf, 1.0f})).verdict, Verdict::kFail);
  EXPECT_EQ(verify_stage(s, f32({3.4e38f, 1.0f})).verdict, Verdict::kFail);
  // A huge finite bound does not admit Inf or NaN for a finite exact value.
  EXPECT_EQ(verify_stage(s, f32({inf, inf})).verdict, Verdict::kFail);
  EXPECT_EQ(verify_stage(s, f32({inf, std::numeric_limits<float>::quiet_NaN()})).verdict,
            Verdict::kFail);
}

TEST(VerifyBounded, ZeroBoundRequiresEqualityAndMakesMaxInfinite) {
  Stage s = bounded_stage({1, 2}, {0, 1});
  StageResult ok = verify_stage(s, f32({1.0f, 2.5f}));
  EXPECT_EQ(ok.verdict, Verdict::kPass);
  EXPECT_EQ(ok.stats.elements, 1);  // only b > 0 is averaged
  EXPECT_DOUBLE_EQ(ok.stats.max_err_over_bound, 0.5);
  StageResult bad = verify_stage(s, f32({std::nextafter(1.0f, 2.0f), 2.0f}));
  EXPECT_EQ(bad.verdict, Verdict::kFail);
  EXPECT_EQ(bad.stats.max_err_over_bound, kInf);
}

TEST(VerifyBounded, ConvertsHalfPrecisionResultsExactly) {
  // float16 stage: 0x3c00 = 1, 0x3c02 = 1 + 2^-9.
  Stage s = make_stage(bits(DType::kF16, {0x3c00}), CheckMode::kBounded);
  s.check.exact = f64({1.0003});
  s.check.bound = f64({0.001});
  EXPECT_EQ(verify_stage(s, bits(DType::kF16, {0x3c00})).verdict, Verdict::kPass);
  EXPECT_EQ(verify_stage(s, bits(DType::kF16, {0x3c02})).verdict, Verdict::kFail);
  Stage b = make_stage(bits(DType::kBF16, {0x3f80}), CheckMode::kBounded);
  b.check.exact = f64({1.0});
  b.check.bound = f64({0.0078125});                                                  // 2^-7
  EXPECT_EQ(verify_stage(b, bits(DType::kBF16, {0x3f81})).verdict, Verdict::kPass);  // 1+2^-7
  EXPECT_EQ(verify_stage(b, bits(DType::kBF16, {0x3f82})).verdict, Verdict::kFail);
}

// ---- dtype and shape ---------------------------------------------------------------------------

TEST(VerifyStage, DtypeMismatchFailsNamingBoth) {
  Stage s = make_stage(i32({2, 2}, {1, 2, 3, 4}));
  StageResult r = verify_stage(s, Tensor::from<int8_t>({2, 2}, std::vector<int8_t>{1, 2, 3, 4}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_THAT(r.message, HasSubstr("int32[2, 2]"));
  EXPECT_THAT(r.message, HasSubstr("int8[2, 2]"));
  // Same bits, different type of the same size: still a mismatch.
  EXPECT_EQ(
      verify_stage(s, Tensor::from<uint32_t>({2, 2}, std::vector<uint32_t>{1, 2, 3, 4})).verdict,
      Verdict::kFail);
}

TEST(VerifyStage, ShapeMismatchFailsNamingBothEvenWithTheSameBytes) {
  Stage s = make_stage(i32({2, 2}, {1, 2, 3, 4}));
  StageResult r = verify_stage(s, i32({4}, {1, 2, 3, 4}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.message, "expected int32[2, 2], got int32[4]");
  StageResult t = verify_stage(s, i32({1, 2, 2}, {1, 2, 3, 4}));
  EXPECT_EQ(t.verdict, Verdict::kFail);
  EXPECT_THAT(t.message, HasSubstr("int32[1, 2, 2]"));
}

TEST(VerifyStage, BoundedStageChecksDtypeAndShapeFirst) {
  Stage s = bounded_stage({1, 2}, {kInf, kInf});
  StageResult r = verify_stage(s, Tensor::from<double>({2}, std::vector<double>{1, 2}));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_THAT(r.message, HasSubstr("float32[2]"));
  EXPECT_THAT(r.message, HasSubstr("float64[2]"));
  EXPECT_EQ(verify_stage(s, f32({1, 2, 3})).verdict, Verdict::kFail);
}

// ---- mismatch reports --------------------------------------------------------------------------

TEST(MismatchReport, RecordsAtMostTenButCountsAll) {
  std::vector<int32_t> zeros(24, 1), ones(24, 2);
  StageResult r = verify_stage(make_stage(i32({2, 3, 4}, zeros)), i32({2, 3, 4}, ones));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(r.mismatches, 24);
  EXPECT_EQ(r.message, "24 of 24 elements differ (exact)");
  ASSERT_EQ(r.first.size(), kMaxReported);
  ASSERT_EQ(kMaxReported, 10u);
  for (size_t k = 0; k < r.first.size(); ++k) EXPECT_EQ(r.first[k].index, static_cast<int64_t>(k));
  EXPECT_EQ(r.first[9].coords, "[0, 2, 1]");
}

TEST(MismatchReport, CoordsAreRowMajorForA3DTensor) {
  std::vector<int32_t> e(24);
  for (int i = 0; i < 24; ++i) e[static_cast<size_t>(i)] = i;
  std::vector<int32_t> g = e;
  g[5] = -1;
  g[23] = 100;
  StageResult r = verify_stage(make_stage(i32({2, 3, 4}, e)), i32({2, 3, 4}, g));
  ASSERT_EQ(r.first.size(), 2u);
  EXPECT_EQ(r.first[0].index, 5);
  EXPECT_EQ(r.first[0].coords, "[0, 1, 1]");
  EXPECT_EQ(r.first[1].index, 23);
  EXPECT_EQ(r.first[1].coords, "[1, 2, 3]");
  EXPECT_EQ(r.first[1].expected, "23 (0x00000017)");
  EXPECT_EQ(r.first[1].got, "100 (0x00000064)");
}

TEST(MismatchReport, FloatDifferenceIsInUlps) {
  auto diff = [](DType dt, uint64_t e, uint64_t g) {
    StageResult r = verify_stage(make_stage(bits(dt, {e})), bits(dt, {g}));
    return r.first.empty() ? std::string("<none>") : r.first[0].difference;
  };
  EXPECT_EQ(diff(DType::kF32, 0x3f800000, 0x3f800003), "3 ulp");
  EXPECT_EQ(diff(DType::kF32, 0x3f800003, 0x3f800000), "3 ulp");
  EXPECT_EQ(diff(DType::kF32, 0x80000001, 0x00000001), "2 ulp");  // across zero
  EXPECT_EQ(diff(DType::kF16, 0x7bff, 0x7c00), "1 ulp");          // max finite to Inf
  EXPECT_EQ(diff(DType::kF16, 0x3c00, 0x4000), "1024 ulp");       // 1 to 2
  EXPECT_EQ(diff(DType::kBF16, 0x3f80, 0x3f81), "1 ulp");
  EXPECT_EQ(diff(DType::kF64, 0x3ff0000000000000ull, 0x3ff0000000000002ull), "2 ulp");
}

TEST(MismatchReport, IntegerDifferenceIsInCodes) {
  auto diff = [](int8_t e, int8_t g) {
    StageResult r = verify_stage(make_stage(i8({e})), i8({g}));
    return r.first.empty() ? std::string("<none>") : r.first[0].difference;
  };
  EXPECT_EQ(diff(5, 6), "+1 code");
  EXPECT_EQ(diff(5, 4), "-1 code");
  EXPECT_EQ(diff(5, 2), "-3 codes");
  EXPECT_EQ(diff(5, 7), "+2 codes");
  EXPECT_EQ(diff(-128, 127), "+255 codes");  // signed, not the raw bytes
  StageResult u =
      verify_stage(make_stage(Tensor::from<uint16_t>({1}, std::vector<uint16_t>{65535})),
                   Tensor::from<uint16_t>({1}, std::vector<uint16_t>{0}));
  ASSERT_EQ(u.first.size(), 1u);
  EXPECT_EQ(u.first[0].difference, "-65535 codes");  // unsigned, not -1
}

// got - expected for int64 extremes does not fit in int64: it must not wrap around.
TEST(MismatchReport, Int64DifferenceDoesNotOverflow) {
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  StageResult r = verify_stage(make_stage(Tensor::from<int64_t>({1}, std::vector<int64_t>{lo})),
                               Tensor::from<int64_t>({1}, std::vector<int64_t>{hi}));
  ASSERT_EQ(r.first.size(), 1u);
  EXPECT_EQ(r.first[0].difference, "+18446744073709551615 codes");
}

// ---- MISTRUSTED --------------------------------------------------------------------------------

TEST(Mistrusted, OutputOfEightZerosIsMistrusted) {
  Tensor z = i32({8}, std::vector<int32_t>(8, 0));
  StageResult r = verify_stage(make_stage(z), z);
  EXPECT_EQ(r.verdict, Verdict::kMistrusted);
  EXPECT_THAT(r.message, HasSubstr("90%"));
  EXPECT_FALSE(verdict_is_failure(r.verdict));
}

TEST(Mistrusted, SevenElementsAreNeverMistrusted) {
  Tensor z = i32({7}, std::vector<int32_t>(7, 0));
  EXPECT_EQ(verify_stage(make_stage(z), z).verdict, Verdict::kPass);
  EXPECT_FALSE(is_degenerate(z));
}

TEST(Mistrusted, ThresholdIsMoreThanNinetyPercentZero) {
  std::vector<int32_t> v(10, 0);
  v[0] = 3;  // exactly 90% zero: not degenerate
  EXPECT_FALSE(is_degenerate(i32({10}, v)));
  EXPECT_EQ(verify_stage(make_stage(i32({10}, v)), i32({10}, v)).verdict, Verdict::kPass);
  std::vector<int32_t> w(20, 0);
  w[7] = -1;  // 95% zero
  EXPECT_TRUE(is_degenerate(i32({20}, w)));
  EXPECT_EQ(verify_stage(make_stage(i32({20}, w)), i32({20}, w)).verdict, Verdict::kMistrusted);
}

TEST(Mistrusted, NegativeZerosCountAsZeros) {
  Tensor z = bits(DType::kF32, std::vector<uint64_t>(8, 0x80000000));
  EXPECT_TRUE(is_degenerate(z));
  EXPECT_EQ(verify_stage(make_stage(z), z).verdict, Verdict::kMistrusted);
  Tensor h = bits(DType::kF16, {0x8000, 0, 0x8000, 0, 0x8000, 0, 0x8000, 0, 0x8000, 0x0001});
  EXPECT_FALSE(is_degenerate(h));  // 9 of 10: not more than 90%
}

TEST(Mistrusted, NotWhenDegenerateOk) {
  Tensor z = i32({8}, std::vector<int32_t>(8, 0));
  Stage s = make_stage(z);
  s.check.degenerate_ok = true;
  EXPECT_EQ(verify_stage(s, z).verdict, Verdict::kPass);
}

TEST(Mistrusted, NotForIntermediates) {
  Tensor z = i32({8}, std::vector<int32_t>(8, 0));
  Stage s = make_stage(z);
  s.output = false;
  EXPECT_EQ(verify_stage(s, z).verdict, Verdict::kPass);
}

TEST(Mistrusted, AWrongResultIsAFailureNotMistrusted) {
  Tensor z = i32({8}, std::vector<int32_t>(8, 0));
  std::vector<int32_t> g(8, 0);
  g[3] = 1;
  EXPECT_EQ(verify_stage(make_stage(z), i32({8}, g)).verdict, Verdict::kFail);
}

// ---- names and formatting ----------------------------------------------------------------------

// ---- compared ranges (unspecified elements) --------------------------------------------------

TEST(VerifyCompared, ElementsOutsideTheRangesAreNeverCompared) {
  // 3 rows of 2; the last row is unspecified (e.g. GMM tail rows past the group list).
  for (CheckMode m : {CheckMode::kExact, CheckMode::kReachable, CheckMode::kExactTies}) {
    SCOPED_TRACE(std::string(check_mode_name(m)));
    Stage s = make_stage(i32({3, 2}, {1, 2, 3, 4, 0, 0}), m);
    s.check.compared = {0, 4};
    EXPECT_EQ(verify_stage(s, i32({3, 2}, {1, 2, 3, 4, 77, -9})).verdict, Verdict::kPass);
    // A compared element still fails, and the message counts compared elements only.
    StageResult r = verify_stage(s, i32({3, 2}, {1, 2, 3, 5, 77, -9}));
    EXPECT_EQ(r.verdict, Verdict::kFail);
    EXPECT_EQ(r.mismatches, 1);
    EXPECT_EQ(r.message, "1 of 4 elements differ (" + std::string(check_mode_name(m)) + ")");
    // Without the ranges the same garbage fails: the field is what makes the tail unspecified.
    s.check.compared.clear();
    EXPECT_EQ(verify_stage(s, i32({3, 2}, {1, 2, 3, 4, 77, -9})).verdict, Verdict::kFail);
  }
}

TEST(VerifyCompared, BoundedSkipsUnspecifiedElementsIncludingStatistics) {
  Stage s = make_stage(f32({1, 2, 3, 4}), CheckMode::kBounded);
  s.check.exact = f64({1, 2, 3, 4});
  s.check.bound = f64({0.5, 0.5, 0.5, 0.5});
  s.check.compared = {1, 3};
  StageResult r = verify_stage(s, f32({100, 2.25f, 3, -100}));
  EXPECT_EQ(r.verdict, Verdict::kPass) << r.message;
  EXPECT_EQ(r.stats.elements, 2);
  EXPECT_DOUBLE_EQ(r.stats.max_err_over_bound, 0.5);
  EXPECT_EQ(verify_stage(s, f32({1, 2, 3.75f, 4})).verdict, Verdict::kFail);
}

TEST(VerifyCompared, MistrustCountsOnlyComparedElements) {
  // 8 compared non-zero elements and 100 unspecified zeros: not degenerate.
  std::vector<int32_t> v(108, 0);
  for (int i = 0; i < 8; ++i) v[static_cast<size_t>(i)] = i + 1;
  Stage s = make_stage(i32({108}, v));
  EXPECT_EQ(verify_stage(s, s.expected).verdict, Verdict::kMistrusted);
  s.check.compared = {0, 8};
  EXPECT_EQ(verify_stage(s, s.expected).verdict, Verdict::kPass);
  EXPECT_FALSE(is_degenerate(s.expected, s.check));
}

TEST(VerdictNames, NamesAndFailureSet) {
  EXPECT_EQ(verdict_name(Verdict::kPass), "PASS");
  EXPECT_EQ(verdict_name(Verdict::kFail), "FAIL");
  EXPECT_EQ(verdict_name(Verdict::kMistrusted), "MISTRUSTED");
  EXPECT_EQ(verdict_name(Verdict::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(verdict_name(Verdict::kSkipped), "SKIPPED");
  EXPECT_EQ(verdict_name(Verdict::kCrash), "CRASH");
  EXPECT_EQ(verdict_name(Verdict::kTimeout), "TIMEOUT");
  EXPECT_FALSE(verdict_is_failure(Verdict::kPass));
  EXPECT_TRUE(verdict_is_failure(Verdict::kFail));
  EXPECT_FALSE(verdict_is_failure(Verdict::kMistrusted));
  EXPECT_TRUE(verdict_is_failure(Verdict::kUnimplemented));
  EXPECT_FALSE(verdict_is_failure(Verdict::kSkipped));
  EXPECT_TRUE(verdict_is_failure(Verdict::kCrash));
  EXPECT_TRUE(verdict_is_failure(Verdict::kTimeout));
}

TEST(FormatElement, FloatsShowBitsAndValue) {
  EXPECT_EQ(format_element(bits(DType::kF16, {0x3c00}), 0), "0x3c00 (1)");
  EXPECT_EQ(format_element(bits(DType::kF16, {0xc000}), 0), "0xc000 (-2)");
  EXPECT_EQ(format_element(bits(DType::kF16, {0x0001}), 0), "0x0001 (5.96046448e-08)");
  EXPECT_EQ(format_element(bits(DType::kF16, {0x7c00}), 0), "0x7c00 (inf)");
  EXPECT_EQ(format_element(bits(DType::kBF16, {0x3f80}), 0), "0x3f80 (1)");
  EXPECT_EQ(format_element(bits(DType::kBF16, {0xbfc0}), 0), "0xbfc0 (-1.5)");
  EXPECT_EQ(format_element(bits(DType::kF32, {0x3fc00000}), 0), "0x3fc00000 (1.5)");
  EXPECT_EQ(format_element(bits(DType::kF32, {0x80000000}), 0), "0x80000000 (-0)");
  EXPECT_THAT(format_element(bits(DType::kF32, {0x7fc00001}), 0), StartsWith("0x7fc00001 ("));
  EXPECT_THAT(format_element(bits(DType::kF32, {0x7fc00001}), 0), HasSubstr("nan"));
  EXPECT_EQ(format_element(bits(DType::kF64, {0x3ff8000000000000ull}), 0),
            "0x3ff8000000000000 (1.5)");
}

TEST(FormatElement, IntegersShowValueAndWideOnesTheirBits) {
  EXPECT_EQ(format_element(i8({-3}), 0), "-3");
  EXPECT_EQ(format_element(Tensor::from<uint8_t>({1}, std::vector<uint8_t>{200}), 0), "200");
  EXPECT_EQ(format_element(i32({1}, {-3}), 0), "-3 (0xfffffffd)");
  EXPECT_EQ(format_element(i32({1}, {0x76543210}), 0), "1985229328 (0x76543210)");
  EXPECT_EQ(format_element(Tensor::from<int64_t>({1}, std::vector<int64_t>{-1}), 0),
            "-1 (0xffffffffffffffff)");
  EXPECT_EQ(format_element(Tensor::from<uint64_t>(
                               {1}, std::vector<uint64_t>{std::numeric_limits<uint64_t>::max()}),
                           0),
            "18446744073709551615");
  EXPECT_EQ(format_element(i32({2}, {1, 2}), 1), "2 (0x00000002)");
  EXPECT_EQ(format_element(i32({2}, {1, 2}), 2), "<out of range>");
  EXPECT_EQ(format_element(i32({2}, {1, 2}), -1), "<out of range>");
}

TEST(CoordsOf, RowMajor) {
  EXPECT_EQ(coords_of({2, 3, 4}, 0), "[0, 0, 0]");
  EXPECT_EQ(coords_of({2, 3, 4}, 4), "[0, 1, 0]");
  EXPECT_EQ(coords_of({2, 3, 4}, 23), "[1, 2, 3]");
  EXPECT_EQ(coords_of({7}, 6), "[6]");
  EXPECT_EQ(coords_of({}, 0), "[]");
}

}  // namespace
}  // namespace qconf::conf
