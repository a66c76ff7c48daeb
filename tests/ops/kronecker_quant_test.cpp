// Properties of npu_kronecker_quant and the W4A4_FLATQUANT_DYNAMIC linear layer: the optimized
// op lands in the reference's reachable sets and is identical across thread counts; chunking
// gives the same bits; orthogonal transforms preserve the Frobenius norm and the two-matmul form
// equals x @ kron(P1^T, P2), each within a bound derived from the accumulation lengths and
// magnitudes; planted bugs are caught.
#include "qconf/ops/kronecker_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/index.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}
double val(DType t, uint64_t bits) { return num::to_double(fmt(t), bits); }
Tensor clip_t(float c) {
  uint32_t b;
  std::memcpy(&b, &c, 4);
  return Tensor::from<uint32_t>(DType::kF32, {1}, {b});
}

struct Inputs {
  Tensor x, p1, p2, clip;
};
Inputs make_inputs(const std::string& name, DType dt, int64_t t, int64_t m, int64_t n, float clip,
                   bool orthogonal) {
  const uint64_t s = rng::seed_from_string("kronecker_quant_test/" + name);
  Inputs in;
  in.x = gen::float_tensor(dt, {t, m, n}, gen::FloatDist::normal(0), s, 0);
  in.p1 = orthogonal ? ref::householder_orthogonal(dt, m, 5, s, 1)
                     : gen::float_tensor(dt, {m, m}, gen::FloatDist::normal(-2), s, 1);
  in.p2 = orthogonal ? ref::householder_orthogonal(dt, n, 5, s, 2)
                     : gen::float_tensor(dt, {n, n}, gen::FloatDist::normal(-2), s, 2);
  in.clip = clip_t(clip);
  return in;
}

// Number of elements of `got` that are neither the nominal value nor listed in the set.
int64_t outside(const Tensor& got, const Tensor& nominal, const ReachSet& set) {
  int64_t bad = 0;
  size_t j = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    while (j < set.index.size() && set.index[j] < i) ++j;
    if (got.bits_at(i) == nominal.bits_at(i)) continue;
    bool ok = false;
    if (j < set.index.size() && set.index[j] == i)
      for (int64_t q = set.offsets[j]; q < set.offsets[j + 1]; ++q)
        ok = ok || set.values[size_t(q)] == got.bits_at(i);
    if (!ok) ++bad;
  }
  return bad;
}

struct Config {
  const char* name;
  DType dt;
  int64_t t, m, n;
  float clip;
  bool orthogonal;
  KronFormula formula;
};
const Config kConfigs[] = {
    {"fp16_32x32", DType::kF16, 3, 32, 32, 1.0f, true, KronFormula::kKernel},
    {"bf16_24x32", DType::kBF16, 3, 24, 32, 0.9f, true, KronFormula::kKernel},
    {"fp16_5x16_random", DType::kF16, 6, 5, 16, 1.0f, false, KronFormula::kKernel},
    {"bf16_3x8_random", DType::kBF16, 8, 3, 8, 0.6f, false, KronFormula::kKernel},
    {"fp16_7x24_golden", DType::kF16, 4, 7, 24, 0.8f, true, KronFormula::kOpPluginGolden},
};

TEST(NpuKroneckerQuant, OptimizedStagesLieInTheReferenceReachableSets) {
  int64_t listed = 0;
  for (const Config& c : kConfigs) {
    SCOPED_TRACE(c.name);
    const Inputs in = make_inputs(c.name, c.dt, c.t, c.m, c.n, c.clip, c.orthogonal);
    const KronQuantStages r = ref::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, c.formula);
    const KronQuantReach reach =
        ref::npu_kronecker_quant_reachable(in.x, in.p1, in.p2, in.clip, c.formula);
    const KronQuantStages o =
        opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, c.formula, true);
    EXPECT_EQ(outside(o.x_p2, r.x_p2, reach.x_p2), 0);
    EXPECT_EQ(outside(o.x_p1, r.x_p1, reach.x_p1), 0);
    EXPECT_EQ(outside(o.amax, r.amax, reach.amax), 0);
    EXPECT_EQ(outside(o.quant_scale, r.quant_scale, reach.quant_scale), 0);
    EXPECT_EQ(outside(o.codes, r.codes, reach.codes), 0);
    EXPECT_EQ(outside(o.out, r.out, reach.out), 0);
    listed += static_cast<int64_t>(reach.x_p2.index.size() + reach.x_p1.index.size());
  }
  EXPECT_GT(listed, 0) << "no element with two reachable values: the sets are never exercised";
}

TEST(NpuKroneckerQuant, ReachableSetsAreSmallAndExactWhereNoBoundaryIsInReach) {
  // Most codes must have one value: the sets are not a tolerance in disguise. x' lists the
  // elements within the worst-case bound gamma_31 sum|t| of an fp16 rounding boundary (~5% here);
  // x'' inherits two values whenever one of its 32 x' operands has two (~17%); the codes, whose
  // boundaries are 2^10 times coarser, almost never.
  const Inputs in = make_inputs("small_sets", DType::kF16, 4, 32, 32, 1.0f, true);
  const KronQuantReach reach =
      ref::npu_kronecker_quant_reachable(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel);
  const int64_t elems = 4 * 32 * 32;
  std::printf("listed: x_p2 %zu, x_p1 %zu, codes %zu, out %zu of %lld elements\n",
              reach.x_p2.index.size(), reach.x_p1.index.size(), reach.codes.index.size(),
              reach.out.index.size(), static_cast<long long>(elems));
  EXPECT_LT(static_cast<int64_t>(reach.x_p2.index.size()), elems / 10);
  EXPECT_LT(static_cast<int64_t>(reach.x_p1.index.size()), elems / 4);
  EXPECT_LT(static_cast<int64_t>(reach.codes.index.size()), elems / 100);
  for (size_t j = 0; j < reach.codes.index.size(); ++j)
    EXPECT_LE(reach.codes.offsets[j + 1] - reach.codes.offsets[j], 2);
}

TEST(NpuKroneckerQuant, PlantedBugsLeaveTheReachableSets) {
  const Inputs in = make_inputs("planted", DType::kF16, 4, 8, 16, 1.0f, false);
  const KronQuantStages r =
      ref::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel);
  const KronQuantReach reach =
      ref::npu_kronecker_quant_reachable(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel);
  // P1 transposed inside the op.
  Tensor p1t(in.p1.dtype(), in.p1.shape());
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j)
      p1t.data<uint16_t>()[j * 8 + i] = in.p1.data<uint16_t>()[i * 8 + j];
  const KronQuantStages bug1 =
      opt::npu_kronecker_quant(in.x, p1t, in.p2, in.clip, KronFormula::kKernel, true);
  EXPECT_GT(outside(bug1.codes, r.codes, reach.codes), 0);
  EXPECT_GT(outside(bug1.x_p1, r.x_p1, reach.x_p1), 0);
  // The op-plugin golden reading checked against the kernel's sets (clip 0.5 separates the
  // scales; truncation separates the codes even at clip 1).
  const KronQuantStages bug2 =
      opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kOpPluginGolden, true);
  EXPECT_GT(outside(bug2.codes, r.codes, reach.codes), 0);
  const Tensor half = clip_t(0.5f);
  const KronQuantStages k05 =
      ref::npu_kronecker_quant(in.x, in.p1, in.p2, half, KronFormula::kKernel);
  const KronQuantReach reach05 =
      ref::npu_kronecker_quant_reachable(in.x, in.p1, in.p2, half, KronFormula::kKernel);
  const KronQuantStages g05 =
      opt::npu_kronecker_quant(in.x, in.p1, in.p2, half, KronFormula::kOpPluginGolden, true);
  EXPECT_EQ(outside(g05.quant_scale, k05.quant_scale, reach05.quant_scale), 4);
}

TEST(NpuKroneckerQuant, DoubleRoundingThroughFp16DecidesTheCode) {
  // amax = 4, clip 1, mult = 1.75: x'' = 1.4287109375 gives 2.500244140625 in fp32 -> fp16 2.5
  // -> RINT 2 (straight to an integer: 3); x'' = 2 gives 3.5 -> RINT 4 (TRUNC: 3).
  std::vector<uint16_t> xv{
      num::f32_to_f16(4.0f), num::f32_to_f16(1.4287109375f), num::f32_to_f16(2.0f), 0, 0, 0, 0, 0};
  const Tensor x = Tensor::from<uint16_t>(DType::kF16, {1, 1, 8}, xv);
  std::vector<uint16_t> id(64, 0);
  for (int i = 0; i < 8; ++i) id[size_t(i * 9)] = num::f32_to_f16(1.0f);
  const Tensor p2 = Tensor::from<uint16_t>(DType::kF16, {8, 8}, id);
  const Tensor p1 = Tensor::from<uint16_t>(DType::kF16, {1, 1}, {num::f32_to_f16(1.0f)});
  const KronQuantStages k = ref::npu_kronecker_quant(x, p1, p2, clip_t(1.0f), KronFormula::kKernel);
  const KronQuantStages g =
      ref::npu_kronecker_quant(x, p1, p2, clip_t(1.0f), KronFormula::kOpPluginGolden);
  EXPECT_EQ(k.codes.data<int8_t>()[0], 7);
  EXPECT_EQ(k.codes.data<int8_t>()[1], 2);
  EXPECT_EQ(k.codes.data<int8_t>()[2], 4);
  EXPECT_EQ(g.codes.data<int8_t>()[2], 3);
  // A port rounding the fp32 product straight to an integer (no fp16 step) gets 3.
  const uint32_t mult =
      ref::kron_multiplier(k.amax.data<uint32_t>()[0], num::f32_bits(1.0f), KronFormula::kKernel);
  const uint64_t prod = num::fp_mul(num::kF32, num::f32_bits(1.4287109375f), mult);
  EXPECT_EQ(num::float_to_int(num::kF32, prod, num::Round::kRint, 4), 3);
  const KronQuantReach reach =
      ref::npu_kronecker_quant_reachable(x, p1, p2, clip_t(1.0f), KronFormula::kKernel);
  EXPECT_TRUE(reach.codes.index.empty()) << "identity transforms: every stage has one value";
  EXPECT_TRUE(
      opt::npu_kronecker_quant(x, p1, p2, clip_t(1.0f), KronFormula::kKernel).out.bit_equal(k.out));
}

TEST(NpuKroneckerQuant, InfAndNanTokensGiveZeroCodesAndInfOrNanScales) {
  Inputs in = make_inputs("nonfinite", DType::kBF16, 3, 2, 8, 1.0f, true);
  in.x.data<uint16_t>()[5] = 0xFF80;       // token 0: -Inf
  in.x.data<uint16_t>()[16 + 2] = 0x7FC0;  // token 1: NaN
  const KronQuantStages r =
      ref::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel);
  const KronQuantReach reach =
      ref::npu_kronecker_quant_reachable(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel);
  const KronQuantStages o =
      opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel, true);
  EXPECT_TRUE(num::is_inf(num::kF32, r.quant_scale.data<uint32_t>()[0]));
  EXPECT_TRUE(num::is_nan(num::kF32, r.quant_scale.data<uint32_t>()[1]));
  EXPECT_FALSE(num::is_nan(num::kF32, r.quant_scale.data<uint32_t>()[2]));
  for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(r.codes.data<int8_t>()[i], 0) << i;
  EXPECT_EQ(outside(o.x_p1, r.x_p1, reach.x_p1), 0);
  EXPECT_EQ(outside(o.amax, r.amax, reach.amax), 0);
  EXPECT_EQ(outside(o.quant_scale, r.quant_scale, reach.quant_scale), 0);
  EXPECT_EQ(outside(o.out, r.out, reach.out), 0);
}

TEST(NpuKroneckerQuant, OptimizedIsBitIdenticalAcrossThreadCounts) {
  const Inputs in = make_inputs("threads", DType::kBF16, 300, 16, 32, 0.85f, true);
  const KronQuantStages a =
      opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel, true, 1);
  for (int th : {2, 3, 0}) {
    const KronQuantStages b =
        opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel, true, th);
    EXPECT_TRUE(a.out.bit_equal(b.out)) << th;
    EXPECT_TRUE(a.quant_scale.bit_equal(b.quant_scale)) << th;
    EXPECT_TRUE(a.x_p1.bit_equal(b.x_p1)) << th;
  }
}

// ---- derived bounds for the transform properties -------------------------------------------

double gamma_n(int64_t n, double u) { return n * u / (1 - n * u); }
double half_ulp(DType t, double mag) {
  const num::FloatFormat& f = fmt(t);
  const int emin = num::min_exponent(f);
  int e = mag <= 0 ? emin : static_cast<int>(std::floor(std::log2(mag)));
  if (e < emin) e = emin;
  return std::ldexp(1.0, e - f.mant_bits - 1);
}

// Per token: T = P1 X P2 in float64 and, per element, a bound on |x''(computed) - T| from the
// two fp32 accumulations (any order), the roundings to the dtype / fp16 (half an ulp at the
// computed value), the propagation of x' errors through P1, and float64's own error.
struct Transformed {
  std::vector<double> t, bound;
};
Transformed exact_transform(const Inputs& in, const KronQuantStages& o, int64_t tok) {
  const DType dt = in.x.dtype();
  const int64_t m = in.p1.dim(0), n = in.p2.dim(0);
  auto X = [&](int64_t i, int64_t k) { return val(dt, in.x.bits_at(tok * m * n + i * n + k)); };
  auto P1 = [&](int64_t i, int64_t l) { return val(dt, in.p1.bits_at(i * m + l)); };
  auto P2 = [&](int64_t k, int64_t j) { return val(dt, in.p2.bits_at(k * n + j)); };
  const double u = std::ldexp(1.0, -24), u64 = std::ldexp(1.0, -53);
  std::vector<double> xp(size_t(m * n)), xpabs(size_t(m * n)), b1(size_t(m * n));
  for (int64_t l = 0; l < m; ++l)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < n; ++k) {
        s += X(l, k) * P2(k, j);
        a += std::fabs(X(l, k) * P2(k, j));
      }
      xp[size_t(l * n + j)] = s;
      xpabs[size_t(l * n + j)] = a;
      const double computed = val(dt, o.x_p2.bits_at(tok * m * n + l * n + j));
      b1[size_t(l * n + j)] =
          gamma_n(n - 1, u) * a + n * std::ldexp(1.0, -126) + half_ulp(dt, std::fabs(computed));
    }
  Transformed r;
  r.t.resize(size_t(m * n));
  r.bound.resize(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, prop = 0, a2 = 0, a64 = 0;
      for (int64_t l = 0; l < m; ++l) {
        s += P1(i, l) * xp[size_t(l * n + j)];
        prop += std::fabs(P1(i, l)) * b1[size_t(l * n + j)];
        const double xc = val(dt, o.x_p2.bits_at(tok * m * n + l * n + j));
        a2 += std::fabs(P1(i, l) * xc);
        a64 += std::fabs(P1(i, l)) * xpabs[size_t(l * n + j)];
      }
      const double computed = val(DType::kF16, o.x_p1.bits_at(tok * m * n + i * n + j));
      r.t[size_t(i * n + j)] = s;
      r.bound[size_t(i * n + j)] =
          (prop + gamma_n(m - 1, u) * a2 + m * std::ldexp(1.0, -126) +
           half_ulp(DType::kF16, std::fabs(computed)) + gamma_n(m + n, u64) * a64) *
          (1 + 1e-9);
    }
  return r;
}

// ||P^T P - I||_F, exactly (rational arithmetic), returned rounded up to a double.
double orthogonality_defect(const Tensor& p) {
  const int64_t n = p.dim(0);
  num::Exact sum = 0;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < n; ++b) {
      num::Exact s = a == b ? num::Exact(-1) : num::Exact(0);
      for (int64_t k = 0; k < n; ++k)
        s += num::to_exact(fmt(p.dtype()), p.bits_at(k * n + a)) *
             num::to_exact(fmt(p.dtype()), p.bits_at(k * n + b));
      sum += s * s;
    }
  const double sq = num::to_double(num::kF64, num::encode(num::kF64, sum, num::Round::kCeil));
  return std::sqrt(sq) * (1 + 1e-15) + 1e-300;
}

// The interval of ||x''||_F the derived bound allows, for token tok.
std::pair<double, double> norm_interval(const Inputs& in, const KronQuantStages& o, int64_t tok) {
  const DType dt = in.x.dtype();
  const int64_t mn = in.p1.dim(0) * in.p2.dim(0);
  double xx = 0;
  for (int64_t i = 0; i < mn; ++i) {
    const double v = val(dt, in.x.bits_at(tok * mn + i));
    xx += v * v;
  }
  const double d1 = orthogonality_defect(in.p1), d2 = orthogonality_defect(in.p2);
  const Transformed tr = exact_transform(in, o, tok);
  double dd = 0;
  for (double b : tr.bound) dd += b * b;
  const double D = std::sqrt(dd) * (1 + 1e-9);
  const double nx = std::sqrt(xx);
  const double slack = 1e-12 * nx;  // float64 evaluation of the norms
  return {std::sqrt(std::max(0.0, (1 - d1) * (1 - d2))) * nx - D - slack,
          std::sqrt((1 + d1) * (1 + d2)) * nx + D + slack};
}

double frob(const Tensor& h, int64_t tok, int64_t mn, double factor = 1.0) {
  double s = 0;
  for (int64_t i = 0; i < mn; ++i) {
    const double v = factor * val(DType::kF16, h.bits_at(tok * mn + i));
    s += v * v;
  }
  return std::sqrt(s);
}

TEST(NpuKroneckerQuant, OrthogonalTransformsPreserveTheFrobeniusNormWithinTheDerivedBound) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const Inputs in = make_inputs("norm_" + std::string(dtype_name(dt)), dt, 4, 16, 32, 1.0f, true);
    const KronQuantStages o =
        opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel, true);
    for (int64_t t = 0; t < 4; ++t) {
      const auto [lo, hi] = norm_interval(in, o, t);
      const double got = frob(o.x_p1, t, 16 * 32);
      EXPECT_LE(lo, got) << dtype_name(dt) << " token " << t;
      EXPECT_LE(got, hi) << dtype_name(dt) << " token " << t;
      // Not vacuous: the interval is within 2% of the input norm (fp16) / 6% (bf16) ...
      EXPECT_LT((hi - lo) / hi, dt == DType::kF16 ? 0.02 : 0.06);
      // ... and a planted 4% scaling error leaves it.
      const double bug = frob(o.x_p1, t, 16 * 32, 1.04);
      EXPECT_FALSE(lo <= bug && bug <= hi) << dtype_name(dt) << " token " << t;
    }
  }
}

TEST(NpuKroneckerQuant, TwoMatmulFormEqualsXTimesKronP1TransposedP2WithinTheDerivedBound) {
  const DType dt = DType::kF16;
  const Inputs in = make_inputs("kron_form", dt, 2, 6, 8, 1.0f, false);  // non-symmetric P1
  const KronQuantStages o =
      opt::npu_kronecker_quant(in.x, in.p1, in.p2, in.clip, KronFormula::kKernel, true);
  const int64_t m = 6, n = 8, k = m * n;
  auto P1 = [&](int64_t i, int64_t l) { return val(dt, in.p1.bits_at(i * m + l)); };
  auto P2 = [&](int64_t a, int64_t b) { return val(dt, in.p2.bits_at(a * n + b)); };
  // kron(A, B)[a * n + b][c * n + d] = A[a][c] B[b][d].
  auto kron = [&](bool transpose_p1) {
    std::vector<double> km(size_t(k * k));
    for (int64_t a = 0; a < m; ++a)
      for (int64_t c = 0; c < m; ++c)
        for (int64_t b = 0; b < n; ++b)
          for (int64_t d = 0; d < n; ++d)
            km[size_t((a * n + b) * k + c * n + d)] =
                (transpose_p1 ? P1(c, a) : P1(a, c)) * P2(b, d);
    return km;
  };
  auto worst = [&](const std::vector<double>& km) {
    double worst_ratio = 0;
    for (int64_t t = 0; t < 2; ++t) {
      const Transformed tr = exact_transform(in, o, t);
      for (int64_t col = 0; col < k; ++col) {
        double y = 0, a = 0;
        for (int64_t row = 0; row < k; ++row) {
          const double xv = val(dt, in.x.bits_at(t * k + row));
          y += xv * km[size_t(row * k + col)];
          a += std::fabs(xv * km[size_t(row * k + col)]);
        }
        const double got = val(DType::kF16, o.x_p1.bits_at(t * k + col));
        const double bound = tr.bound[size_t(col)] + gamma_n(k + 2, std::ldexp(1.0, -53)) * a * 2;
        worst_ratio = std::max(worst_ratio, std::fabs(got - y) / bound);
      }
    }
    return worst_ratio;
  };
  EXPECT_LE(worst(kron(true)), 1.0);
  EXPECT_GT(worst(kron(false)), 1.0) << "kron(P1, P2) without the transpose must be rejected";
}

// ---- the linear layer ----------------------------------------------------------------------

TEST(W4A4FlatQuantLinear, ChunkingGivesTheSameBitsAsNoChunking) {
  const int64_t t = 7, kk = 64, n = 16;
  const uint64_t s = rng::seed_from_string("kronecker_quant_test/chunking");
  const Tensor x = gen::float_tensor(DType::kBF16, {t, kk}, gen::FloatDist::normal(0), s, 0);
  const Tensor lt = ref::householder_orthogonal(DType::kBF16, 8, 3, s, 1);
  const Tensor rt = ref::householder_orthogonal(DType::kBF16, 8, 3, s, 2);
  const Tensor clip = clip_t(0.95f);
  const Tensor w = gen::int_tensor(DType::kI8, {n, kk}, -8, 7, s, 3);
  const Tensor ws =
      gen::float_tensor(DType::kF32, {n, 1}, gen::FloatDist::grid(16, 255, -12), s, 4);
  const Tensor bias = gen::float_tensor(DType::kBF16, {n}, gen::FloatDist::normal(-2), s, 5);
  FlatQuantLinearArgs a{&x, &lt, &rt, &clip, &w, &ws, &bias};
  FlatQuantLinearConfig whole;
  const FlatQuantLinearStages ref_whole = ref::w4a4_flatquant_linear(a, whole);
  for (int64_t chunk : {1, 2, 3, 6, 7, 32768}) {
    FlatQuantLinearConfig c;
    c.chunk_tokens = chunk;
    const FlatQuantLinearStages r = ref::w4a4_flatquant_linear(a, c);
    EXPECT_TRUE(r.kq_out.bit_equal(ref_whole.kq_out)) << chunk;
    EXPECT_TRUE(r.kq_scale.bit_equal(ref_whole.kq_scale)) << chunk;
    EXPECT_TRUE(r.y.bit_equal(ref_whole.y)) << chunk;
  }
  // A planted chunking bug (chunks concatenated in reverse order) is caught.
  FlatQuantLinearConfig c3;
  c3.chunk_tokens = 3;
  FlatQuantLinearStages r3 = ref::w4a4_flatquant_linear(a, c3);
  Tensor swapped = r3.kq_scale;
  for (int64_t i = 0; i < 3; ++i)
    std::swap(swapped.data<uint32_t>()[i], swapped.data<uint32_t>()[3 + i]);
  EXPECT_FALSE(swapped.bit_equal(ref_whole.kq_scale));
  // The optimized layer: identical for any thread count.
  const FlatQuantLinearStages o1 = opt::w4a4_flatquant_linear(a, whole, true, 1);
  const FlatQuantLinearStages o2 = opt::w4a4_flatquant_linear(a, whole, true, 2);
  EXPECT_TRUE(o1.y.bit_equal(o2.y));
  EXPECT_TRUE(o1.kq_out.bit_equal(o2.kq_out));
}

TEST(W4A4FlatQuantLinear, OptimizedLayerLiesWithinTheReachableAccumulatorsAndOutputRanges) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const int64_t t = 5, kk = 128, n = 24;  // get_decompose_dim(128) = (8, 16)
    const uint64_t s = rng::seed_from_string(std::string("kronecker_quant_test/linear_") +
                                             std::string(dtype_name(dt)));
    const Tensor x = gen::float_tensor(dt, {t, kk}, gen::FloatDist::normal(0), s, 0);
    const Tensor lt = gen::float_tensor(dt, {8, 8}, gen::FloatDist::normal(-2), s, 1);
    const Tensor rt = gen::float_tensor(dt, {16, 16}, gen::FloatDist::normal(-2), s, 2);
    const Tensor clip = clip_t(1.0f);
    const Tensor w = gen::int_tensor(DType::kI8, {n, kk}, -8, 7, s, 3);
    const Tensor ws = gen::float_tensor(DType::kF32, {n}, gen::FloatDist::grid(16, 255, -12), s, 4);
    const Tensor bias = gen::float_tensor(dt, {n}, gen::FloatDist::normal(-2), s, 5);
    FlatQuantLinearArgs a{&x, &lt, &rt, &clip, &w, &ws, &bias};
    FlatQuantLinearConfig c;
    const FlatQuantLinearStages r = ref::w4a4_flatquant_linear(a, c);
    const FlatQuantLinearReach reach = ref::w4a4_flatquant_linear_reachable(a, c);
    const FlatQuantLinearStages o = opt::w4a4_flatquant_linear(a, c, true);
    EXPECT_EQ(r.decompose_dim.to_vector<int64_t>(), (std::vector<int64_t>{8, 16}));
    EXPECT_EQ(outside(o.kq_out, r.kq_out, reach.kq.out), 0);
    EXPECT_EQ(outside(o.kq_scale, r.kq_scale, reach.kq.quant_scale), 0);
    EXPECT_EQ(outside(o.acc, r.acc, reach.acc), 0);
    for (int64_t i = 0; i < t * n; ++i) {
      EXPECT_LE(std::fabs(val(dt, o.mm_out.bits_at(i)) - reach.mm_exact.data<double>()[i]),
                reach.mm_bound.data<double>()[i]);
      EXPECT_LE(std::fabs(val(dt, o.y.bits_at(i)) - reach.y_exact.data<double>()[i]),
                reach.y_bound.data<double>()[i]);
    }
    // The bounds' epilogue is npu_quant_matmul's: it reproduces the reference output.
    for (int64_t i = 0; i < t * n; ++i)
      EXPECT_EQ(ref::flatquant_epilogue(r.acc.data<int32_t>()[i], ws.data<uint32_t>()[i % n],
                                        r.kq_scale.data<uint32_t>()[i / n], dt),
                r.mm_out.data<uint16_t>()[i]);
    // Planted bug: left_trans used without the transpose changes outputs beyond the ranges.
    Tensor ltt(dt, {8, 8});
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 8; ++j)
        ltt.data<uint16_t>()[j * 8 + i] = lt.data<uint16_t>()[i * 8 + j];
    FlatQuantLinearArgs bad = a;
    bad.left_trans = &ltt;
    const FlatQuantLinearStages ob = opt::w4a4_flatquant_linear(bad, c, true);
    int64_t out_of_range = 0;
    for (int64_t i = 0; i < t * n; ++i)
      out_of_range += std::fabs(val(dt, ob.y.bits_at(i)) - reach.y_exact.data<double>()[i]) >
                      reach.y_bound.data<double>()[i];
    EXPECT_GT(out_of_range, t * n / 2);
  }
}

TEST(W4A4FlatQuantLinear, BadInputsAreRejectedWithAClearMessage) {
  const Tensor x(DType::kF16, {2, 128});
  const Tensor lt(DType::kF16, {16, 16}), rt(DType::kF16, {8, 8});  // swapped factors
  const Tensor clip = clip_t(1.0f);
  const Tensor w(DType::kI8, {8, 128});
  const Tensor ws(DType::kF32, {8});
  FlatQuantLinearArgs a{&x, &lt, &rt, &clip, &w, &ws, nullptr};
  try {
    ref::w4a4_flatquant_linear(a, {});
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("left_trans must be float16 [8, 8]"), std::string::npos)
        << e.what();
  }
  // K = 96 -> (8, 12): the right factor is not a multiple of 8.
  const Tensor x96(DType::kF16, {2, 96}), l8(DType::kF16, {8, 8}), r12(DType::kF16, {12, 12});
  const Tensor w96(DType::kI8, {8, 96});
  FlatQuantLinearArgs a96{&x96, &l8, &r12, &clip, &w96, &ws, nullptr};
  EXPECT_THROW(ref::w4a4_flatquant_linear(a96, {}), std::invalid_argument);
  const Tensor p1(DType::kF16, {2, 2}), p2(DType::kF16, {8, 8}), x3(DType::kF16, {1, 2, 8});
  EXPECT_THROW(ref::npu_kronecker_quant(x3, p1, p2, clip_t(1.5f), KronFormula::kKernel),
               std::invalid_argument);
  EXPECT_THROW(ref::npu_kronecker_quant(x3, p2, p2, clip, KronFormula::kKernel),
               std::invalid_argument);
}

}  // namespace
}  // namespace qconf
