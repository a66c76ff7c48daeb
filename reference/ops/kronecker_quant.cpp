// Reference: npu_kronecker_quant (FlatQuant) and the W4A4_FLATQUANT_DYNAMIC linear layer.
//
// Sources (confidence in brackets):
//   notes/torch_npu_semantics.md §4 [code: hicann/ops-nn flat_quant_cube.h, flat_quant_vec.h,
//     flat_quant_high.h; doc: aclnnFlatQuant.md; high for the steps]:
//     1. x' = x @ P2 per token (x viewed [M, N]), fp32 accumulation, rounded to the input dtype;
//     2. x'' = P1 @ x', fp32 accumulation, rounded to fp16 even for bf16 inputs;
//     3. amax = max |x''| over the token;
//     4. quant_scale = amax * clip / 7;
//     5. mult = (7 / clip) / amax, or 7 when amax == 0;
//     6. y = int4(CAST_NONE)(fp16(CAST_RINT)(x'' * mult)), saturating [inf: saturation is not
//        documented for fp16 -> int4, notes §0 "Gaps"], packed 8 per int32 (notes §0).
//     The op-plugin test golden reads steps 4-6 differently (KronFormula::kOpPluginGolden).
//   notes/vllm_ascend_quant.md §A, seed 002 (vllm-ascend w4a4_flatquant.py) [code, high]: the
//     linear layer: get_decompose_dim(K) = (L, R), P1 = left_trans^T, P2 = right_trans, the
//     kronecker quant in chunks of KRONECKER_QUANT_MAX_BATCH_SIZE tokens, npu_quant_matmul(q,
//     weight_packed^T, weight_scale, pertoken_scale = quant_scale, output dtype = x dtype), then
//     `output + bias.to(x dtype)`.
//
// The order of the fp32 accumulations is not fixed by the kernel, so the reference computes the
// dot products EXACTLY (products of two fp16/bf16 values are dyadic rationals: integers scaled by
// 2^kScale) and:
//   * the nominal stage value is the exact sum rounded once to fp32 (an accumulator without
//     intermediate rounding), then to the stage dtype;
//   * the reachable values are every stage-dtype value between the roundings of the ends of
//     [min exact - e, max exact + e], e the bound of docs/bounds.md ("npu_kronecker_quant"),
//     where for x'' the exact sum ranges over every reachable x'.
#include "qconf/ops/kronecker_quant.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/index.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/rng/generators.h"

namespace qconf {

namespace {
constexpr const char* kOp = "npu_kronecker_quant";
constexpr const char* kLinOp = "w4a4_flatquant_linear";
[[noreturn]] void bad(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}
}  // namespace

void ReachSet::add(int64_t i, const std::vector<uint64_t>& v) {
  if (v.size() < 2) return;
  index.push_back(i);
  values.insert(values.end(), v.begin(), v.end());
  offsets.push_back(static_cast<int64_t>(values.size()));
}

std::string_view kron_formula_name(KronFormula f) {
  return f == KronFormula::kKernel ? "kernel" : "opplugin_golden";
}
KronFormula parse_kron_formula(std::string_view s) {
  if (s == "kernel") return KronFormula::kKernel;
  if (s == "opplugin_golden") return KronFormula::kOpPluginGolden;
  throw std::invalid_argument(
      "npu_kronecker_quant: formula must be kernel or opplugin_golden, got \"" + std::string(s) +
      "\"");
}

KronQuantShape check_kronecker_quant_inputs(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                            const Tensor& clip_ratio) {
  KronQuantShape s;
  if ((x.dtype() != DType::kF16 && x.dtype() != DType::kBF16) || x.rank() != 3)
    bad(kOp, "x must be float16 or bfloat16 [T, M, N], got " + x.describe());
  s.xdt = x.dtype();
  s.t = x.dim(0);
  s.m = x.dim(1);
  s.n = x.dim(2);
  if (s.t < 1 || s.m < 1 || s.m > 256 || s.n < 8 || s.n > 256 || s.n % 8 != 0)
    bad(kOp, "x must be [T >= 1, M in [1, 256], N in [8, 256] with N % 8 == 0] (notes §4), got " +
                 x.describe());
  if (p1.dtype() != s.xdt || p1.shape() != Shape{s.m, s.m})
    bad(kOp, "kronecker_p1 must be " + std::string(dtype_name(s.xdt)) +
                 " [M, M] with M = " + std::to_string(s.m) + ", got " + p1.describe());
  if (p2.dtype() != s.xdt || p2.shape() != Shape{s.n, s.n})
    bad(kOp, "kronecker_p2 must be " + std::string(dtype_name(s.xdt)) +
                 " [N, N] with N = " + std::to_string(s.n) + ", got " + p2.describe());
  if (clip_ratio.dtype() != DType::kF32 || clip_ratio.numel() != 1)
    bad(kOp, "clip_ratio must be float32 (1,), got " + clip_ratio.describe());
  s.clip = clip_ratio.data<uint32_t>()[0];
  const num::Decoded c = num::decode(num::kF32, s.clip);
  if (c.cls == num::FClass::kNaN || c.cls == num::FClass::kInf || c.value <= 0 || c.value > 1)
    bad(kOp, "clip_ratio must be in (0, 1] (aclnnFlatQuant.md), got " +
                 num::bits_str(num::kF32, s.clip));
  return s;
}

namespace ref {
namespace {

using num::BigInt;
using num::Exact;
using num::kF16;
using num::kF32;
using num::Round;

const num::FloatFormat& fmt(DType t) { return t == DType::kF16 ? kF16 : num::kBF16; }

Exact pow2(int e) { return e >= 0 ? Exact(BigInt(1) << e) : Exact(BigInt(1), BigInt(1) << -e); }

uint32_t f32c(float f) { return num::f32_bits(f); }

// Every product of two fp16 / bf16 values is a multiple of 2^-266 (bf16 subnormals squared).
constexpr int kScale = 300;

struct Dyadic {
  int64_t m = 0;
  int e = 0;
};
Dyadic dyadic(const num::FloatFormat& f, uint64_t bits) {
  const bool neg = (bits & num::sign_mask(f)) != 0;
  const uint64_t ef = (bits >> f.mant_bits) & num::exp_field_max(f);
  uint64_t mant = bits & num::mant_mask(f);
  int e = num::min_exponent(f) - f.mant_bits;
  if (ef != 0) {
    mant |= uint64_t{1} << f.mant_bits;
    e = static_cast<int>(ef) - num::exponent_bias(f) - f.mant_bits;
  }
  const int64_t m = static_cast<int64_t>(mant);
  return {neg ? -m : m, e};
}

bool special(const num::FloatFormat& f, uint64_t b) {
  return num::is_nan(f, b) || num::is_inf(f, b);
}

// One dot product sum_k p_k * v_k, v_k ranging over the values of its format in [vlo_k, vhi_k]
// (one value when vlo == vhi), kept exactly: the nominal sum (v = vnom), the smallest and
// largest sums, and what the bound needs.
struct Dot {
  const num::FloatFormat* f = nullptr;
  BigInt nom, lo, hi, abs_max;
  Exact under;  // sum over the terms that may underflow fp32 of their possible error
  int64_t terms = 0;
  int pow2_all = INT_MAX;
  bool unique = true;  // every operand has one value
  bool nan = false, pos_inf = false, neg_inf = false;

  static BigInt product(const num::FloatFormat& f, uint64_t a, uint64_t b) {
    const Dyadic x = dyadic(f, a), y = dyadic(f, b);
    const int64_t m = x.m * y.m;
    const BigInt s = BigInt(m < 0 ? -m : m) << (x.e + y.e + kScale);
    return m < 0 ? BigInt(-s) : s;
  }
  void add(uint64_t p, uint64_t vnom, uint64_t vlo, uint64_t vhi) {
    ++terms;
    if (special(*f, p) || special(*f, vnom)) {
      // Operands with a special value are unique (mixed finite / Inf sets are rejected).
      const bool pi = num::is_inf(*f, p), vi = num::is_inf(*f, vnom);
      if (num::is_nan(*f, p) || num::is_nan(*f, vnom)) {
        nan = true;
      } else {
        const uint64_t other = pi ? vnom : p;
        if (!num::is_inf(*f, other) && (other & ~num::sign_mask(*f)) == 0) {
          nan = true;  // Inf * 0
        } else {
          (((p ^ vnom) & num::sign_mask(*f)) ? neg_inf : pos_inf) = true;
        }
      }
      (void)vi;
      return;
    }
    const BigInt pn = product(*f, p, vnom);
    nom += pn;
    BigInt pl = pn, ph = pn;
    if (vlo != vhi) {
      unique = false;
      pl = product(*f, p, vlo);
      ph = product(*f, p, vhi);
      if (pl > ph) std::swap(pl, ph);
    }
    lo += pl;
    hi += ph;
    const BigInt amax = std::max(BigInt(abs(pl)), BigInt(abs(ph)));
    abs_max += amax;
    const Exact tiny = pow2(-126);
    if (vlo == vhi) {
      if (pn != 0) {
        const Exact a = Exact(amax, BigInt(1) << kScale);
        if (a < tiny) under += a;  // a subnormal or flushed product is off by at most |t|
        const Dyadic x = dyadic(*f, p), y = dyadic(*f, vnom);
        const int tz = __builtin_ctzll(static_cast<uint64_t>(x.m < 0 ? -x.m : x.m)) +
                       __builtin_ctzll(static_cast<uint64_t>(y.m < 0 ? -y.m : y.m)) + x.e + y.e;
        pow2_all = std::min(pow2_all, tz);
      }
    } else {
      // Some value of the set may give a product below 2^-126 (the set may contain or be near
      // zero): that product is off by less than 2^-126.
      const bool straddles = (pl <= 0 && ph >= 0);
      const BigInt minabs = straddles ? BigInt(0) : std::min(BigInt(abs(pl)), BigInt(abs(ph)));
      if (Exact(minabs, BigInt(1) << kScale) < tiny) under += tiny;
    }
  }
  bool is_special() const { return nan || pos_inf || neg_inf; }
  uint32_t special_bits() const {
    if (nan || (pos_inf && neg_inf)) return static_cast<uint32_t>(num::quiet_nan_bits(kF32));
    return static_cast<uint32_t>(num::inf_bits(kF32, neg_inf));
  }
};

Exact scaled(const BigInt& v) { return Exact(v, BigInt(1) << kScale); }

// gamma_n = n u / (1 - n u), u = 2^-24 (Higham, 2nd ed., Lemma 3.1, eq. (4.4)).
Exact gamma(int64_t n) {
  const Exact nu = Exact(n) * pow2(-24);
  return nu / (Exact(1) - nu);
}
Exact overflow_threshold(const num::FloatFormat& f) {
  return pow2(num::max_exponent(f) + 1) - pow2(num::max_exponent(f) - f.mant_bits - 1);
}

// The rounded result of one dot product in the stage format `out`: nominal and range.
struct Rounded {
  uint64_t nom = 0, lo = 0, hi = 0;
};

[[noreturn]] void indeterminate(const std::string& where) {
  throw std::domain_error(std::string(kOp) + ": " + where +
                          ": an overflow is reachable but not certain; the reachable set has "
                          "no finite description (choose smaller inputs)");
}

Rounded round_dot(const Dot& d, const num::FloatFormat& out, bool want_reach,
                  const std::string& where) {
  Rounded r;
  if (d.is_special()) {
    r.nom = r.lo = r.hi = num::convert(kF32, d.special_bits(), out);
    return r;
  }
  const uint64_t n32 = num::encode(kF32, scaled(d.nom), Round::kRint);
  r.nom = num::convert(kF32, n32, out);
  if (!want_reach) {
    r.lo = r.hi = r.nom;
    return r;
  }
  // The bound (docs/bounds.md): provably exact when every operand is unique, no product is
  // below 2^-126, every term is a multiple of 2^q (q >= -126) and sum |t| < 2^(24 + q);
  // otherwise e = E + gamma_n (A + E) + n 2^-126 (1 + gamma_n).
  const Exact a = scaled(d.abs_max);
  Exact e = 0;
  const bool exact_sum =
      d.unique && d.under == 0 &&
      (d.pow2_all == INT_MAX || (d.pow2_all >= -126 && a < pow2(24 + d.pow2_all) && a < pow2(127)));
  if (!exact_sum) {
    const int64_t n = d.terms - 1;
    const Exact g = gamma(n);
    const Exact ftz = Exact(n) * pow2(-126) * (Exact(1) + g);
    if ((a + d.under) * (Exact(1) + g) + ftz >= overflow_threshold(kF32))
      indeterminate(where + " (fp32 accumulator)");
    e = d.under + g * (a + d.under) + ftz;
  }
  r.lo = num::convert(kF32, num::encode(kF32, scaled(d.lo) - e, Round::kFloor), out);
  r.hi = num::convert(kF32, num::encode(kF32, scaled(d.hi) + e, Round::kCeil), out);
  const bool li = num::is_inf(out, r.lo), hi = num::is_inf(out, r.hi);
  if ((li || hi) && r.lo != r.hi) indeterminate(where + " (" + std::string(out.name) + " cast)");
  return r;
}

uint64_t from_ordinal(const num::FloatFormat& f, int64_t o) {
  return o >= 0 ? static_cast<uint64_t>(o) : (num::sign_mask(f) | static_cast<uint64_t>(-o));
}

// Every value of format f from lo to hi (both zeros where the range reaches 0), nominal first.
std::vector<uint64_t> values_between(const num::FloatFormat& f, const Rounded& r) {
  std::vector<uint64_t> v{r.nom};
  // A zero sum: +0 from a sum starting at +0 (RNE), -0 when every term is -0 and the
  // accumulation starts from the first term. Both are legitimate.
  const bool zero = (r.nom & ~num::sign_mask(f)) == 0;
  if (r.lo == r.hi) {
    // NaN: IEEE leaves the sign of a default NaN open (x86 produces a negative one for
    // Inf * 0); the payload is the canonical quiet one either way.
    if (zero || num::is_nan(f, r.nom)) v.push_back(r.nom ^ num::sign_mask(f));
    return v;
  }
  const int64_t a = num::ordinal(f, r.lo), b = num::ordinal(f, r.hi);
  if (b - a > 4096) indeterminate("a reachable range of more than 4096 values");
  for (int64_t o = a; o <= b; ++o) {
    for (uint64_t bits : o == 0 ? std::vector<uint64_t>{0, num::sign_mask(f)}
                                : std::vector<uint64_t>{from_ordinal(f, o)})
      if (bits != r.nom) v.push_back(bits);
  }
  return v;
}

double as_double(const num::FloatFormat& f, uint64_t b) { return num::to_double(f, b); }

// The whole op on one token: nominal stages and (want_reach) the reachable sets.
struct TokenResult {
  std::vector<Rounded> x1, x2;               // [M * N]
  std::vector<std::vector<uint64_t>> x2set;  // fp16 values of x'' (want_reach)
  uint32_t amax = 0;
};

TokenResult token(const KronQuantShape& s, const uint16_t* x, const uint16_t* p1,
                  const uint16_t* p2, bool want_reach, int64_t t) {
  const num::FloatFormat& f = fmt(s.xdt);
  TokenResult r;
  r.x1.resize(static_cast<size_t>(s.m * s.n));
  r.x2.resize(r.x1.size());
  // Step 1: x'[i, j] = sum_k x[i, k] * P2[k, j], fp32, rounded to the input dtype.
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      Dot d;
      d.f = &f;
      for (int64_t k = 0; k < s.n; ++k) {
        const uint64_t v = x[i * s.n + k];
        d.add(p2[k * s.n + j], v, v, v);
      }
      r.x1[static_cast<size_t>(i * s.n + j)] =
          round_dot(d, f, want_reach,
                    "token " + std::to_string(t) + " x'[" + std::to_string(i) + ", " +
                        std::to_string(j) + "]");
    }
  // Step 2: x''[i, j] = sum_l P1[i, l] * x'[l, j], fp32, rounded to fp16 (also for bf16 x).
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      Dot d;
      d.f = &f;
      for (int64_t l = 0; l < s.m; ++l) {
        const Rounded& v = r.x1[static_cast<size_t>(l * s.n + j)];
        d.add(p1[i * s.m + l], v.nom, v.lo, v.hi);
      }
      r.x2[static_cast<size_t>(i * s.n + j)] =
          round_dot(d, kF16, want_reach,
                    "token " + std::to_string(t) + " x''[" + std::to_string(i) + ", " +
                        std::to_string(j) + "]");
    }
  // Step 3: amax = max |x''| in fp32 (exact: fp16 values), NaN propagates.
  uint64_t amax = 0;
  for (const Rounded& v : r.x2)
    amax =
        num::fp_max_propagate_nan(kF32, amax, num::fp_abs(kF32, num::convert(kF16, v.nom, kF32)));
  r.amax = static_cast<uint32_t>(amax);
  if (want_reach)
    for (const Rounded& v : r.x2) r.x2set.push_back(values_between(kF16, v));
  return r;
}

}  // namespace

// Step 4: quant_scale.
uint32_t kron_quant_scale(uint32_t amax, uint32_t clip, KronFormula f) {
  if (f == KronFormula::kKernel)
    return static_cast<uint32_t>(num::fp_div(kF32, num::fp_mul(kF32, amax, clip), f32c(7.0f)));
  return static_cast<uint32_t>(num::fp_div(kF32, amax, num::fp_mul(kF32, f32c(7.0f), clip)));
}

// Step 5: the multiplier (7 when amax == 0; amax is a magnitude, so +0).
uint32_t kron_multiplier(uint32_t amax, uint32_t clip, KronFormula f) {
  if (amax == 0) return f32c(7.0f);
  const uint64_t c = f == KronFormula::kKernel ? num::fp_div(kF32, f32c(7.0f), clip)
                                               : num::fp_mul(kF32, f32c(7.0f), clip);
  return static_cast<uint32_t>(num::fp_div(kF32, c, amax));
}

// Step 6: fp32(x'' * mult) -> fp16 (RNE) -> int4 (kernel: RINT; golden: truncation),
// saturating to [-8, 7]; NaN -> 0 (notes §0, scalar float -> int).
int8_t kron_code(uint16_t x16, uint32_t mult, KronFormula f) {
  const uint64_t v = num::fp_mul(kF32, num::convert(kF16, x16, kF32), mult);
  const uint64_t h = num::convert(kF32, v, kF16, Round::kRint);
  return static_cast<int8_t>(
      num::float_to_int(kF16, h, f == KronFormula::kKernel ? Round::kRint : Round::kTrunc, 4));
}

Tensor householder_orthogonal(DType dtype, int64_t n, int reflections, uint64_t seed,
                              uint64_t stream) {
  std::vector<double> q(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) q[size_t(i * n + i)] = 1.0;
  const Tensor v =
      gen::float_tensor(DType::kF64, {reflections, n}, gen::FloatDist::normal(0), seed, stream);
  std::vector<double> w(static_cast<size_t>(n));
  for (int r = 0; r < reflections; ++r) {
    const double* vr = v.data<double>() + r * n;
    double vv = 0;
    for (int64_t i = 0; i < n; ++i) vv += vr[i] * vr[i];
    if (vv == 0) continue;
    // Q <- Q (I - 2 v v^T / vv): w = Q v, Q -= (2 / vv) w v^T.
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += q[size_t(i * n + j)] * vr[j];
      w[size_t(i)] = acc;
    }
    const double c = 2.0 / vv;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) q[size_t(i * n + j)] -= (c * w[size_t(i)]) * vr[j];
  }
  Tensor out(dtype, {n, n});
  const num::FloatFormat& f = fmt(dtype);
  for (int64_t i = 0; i < n * n; ++i) {
    uint64_t b;
    std::memcpy(&b, &q[size_t(i)], 8);
    out.data<uint16_t>()[i] = static_cast<uint16_t>(num::convert(num::kF64, b, f));
  }
  return out;
}

KronQuantStages npu_kronecker_quant(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                    const Tensor& clip_ratio, KronFormula formula) {
  const KronQuantShape s = check_kronecker_quant_inputs(x, p1, p2, clip_ratio);
  const int64_t tok = s.m * s.n;
  KronQuantStages st;
  st.x_p2 = Tensor(s.xdt, {s.t, s.m, s.n});
  st.x_p1 = Tensor(DType::kF16, {s.t, s.m, s.n});
  st.amax = Tensor(DType::kF32, {s.t});
  st.codes = Tensor(DType::kI8, {s.t, s.m, s.n});
  st.out = Tensor(DType::kI32, {s.t, s.m, s.n / kInt4PerInt32});
  st.quant_scale = Tensor(DType::kF32, {s.t});
  for (int64_t t = 0; t < s.t; ++t) {
    const TokenResult r =
        token(s, x.data<uint16_t>() + t * tok, p1.data<uint16_t>(), p2.data<uint16_t>(), false, t);
    const uint32_t mult = kron_multiplier(r.amax, s.clip, formula);
    for (int64_t i = 0; i < tok; ++i) {
      st.x_p2.data<uint16_t>()[t * tok + i] = static_cast<uint16_t>(r.x1[size_t(i)].nom);
      st.x_p1.data<uint16_t>()[t * tok + i] = static_cast<uint16_t>(r.x2[size_t(i)].nom);
      st.codes.data<int8_t>()[t * tok + i] =
          kron_code(static_cast<uint16_t>(r.x2[size_t(i)].nom), mult, formula);
    }
    st.amax.data<uint32_t>()[t] = r.amax;
    st.quant_scale.data<uint32_t>()[t] = kron_quant_scale(r.amax, s.clip, formula);
  }
  // The int4 layout shared with npu_convert_weight_to_int4pack (int4pack.h).
  for (int64_t w = 0; w < st.out.numel(); ++w) {
    int32_t v[kInt4PerInt32];
    for (int q = 0; q < kInt4PerInt32; ++q) v[q] = st.codes.data<int8_t>()[w * kInt4PerInt32 + q];
    st.out.data<int32_t>()[w] = pack_int4_word(v);
  }
  return st;
}

KronQuantReach npu_kronecker_quant_reachable(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                             const Tensor& clip_ratio, KronFormula formula) {
  const KronQuantShape s = check_kronecker_quant_inputs(x, p1, p2, clip_ratio);
  const int64_t tok = s.m * s.n;
  const num::FloatFormat& f = fmt(s.xdt);
  KronQuantReach rs;
  for (int64_t t = 0; t < s.t; ++t) {
    const TokenResult r =
        token(s, x.data<uint16_t>() + t * tok, p1.data<uint16_t>(), p2.data<uint16_t>(), true, t);
    for (int64_t i = 0; i < tok; ++i) rs.x_p2.add(t * tok + i, values_between(f, r.x1[size_t(i)]));
    for (int64_t i = 0; i < tok; ++i) rs.x_p1.add(t * tok + i, r.x2set[size_t(i)]);
    // amax: |v| of any reachable x'' that is >= every element's smallest reachable magnitude.
    std::vector<uint64_t> amaxes{r.amax};
    if (num::is_nan(num::kF32, r.amax)) {
      amaxes.push_back(r.amax ^ num::sign_mask(num::kF32));  // either NaN sign (see above)
    } else {
      double floor_mag = 0;
      for (const auto& set : r.x2set) {
        double mn = std::numeric_limits<double>::infinity();
        for (uint64_t b : set) mn = std::min(mn, std::fabs(as_double(kF16, b)));
        floor_mag = std::max(floor_mag, mn);
      }
      for (const auto& set : r.x2set)
        for (uint64_t b : set) {
          const uint64_t a = num::fp_abs(kF32, num::convert(kF16, b, kF32));
          if (num::to_double(kF32, a) >= floor_mag &&
              std::find(amaxes.begin(), amaxes.end(), a) == amaxes.end())
            amaxes.push_back(a);
        }
    }
    rs.amax.add(t, amaxes);
    std::vector<uint64_t> scales, mults;
    for (uint64_t a : amaxes) {
      const uint64_t sc = kron_quant_scale(static_cast<uint32_t>(a), s.clip, formula);
      if (std::find(scales.begin(), scales.end(), sc) == scales.end()) scales.push_back(sc);
      const uint64_t mu = kron_multiplier(static_cast<uint32_t>(a), s.clip, formula);
      if (std::find(mults.begin(), mults.end(), mu) == mults.end()) mults.push_back(mu);
    }
    rs.quant_scale.add(t, scales);
    // Codes: every (x'', mult) pair (a superset: the coupling between an element and the amax
    // it may set is ignored). Nominal first.
    std::vector<std::vector<uint64_t>> codes(static_cast<size_t>(tok));
    for (int64_t i = 0; i < tok; ++i) {
      auto& c = codes[size_t(i)];
      for (uint64_t v : r.x2set[size_t(i)])
        for (uint64_t mu : mults) {
          const uint64_t code = static_cast<uint8_t>(
              kron_code(static_cast<uint16_t>(v), static_cast<uint32_t>(mu), formula));
          if (std::find(c.begin(), c.end(), code) == c.end()) c.push_back(code);
        }
      rs.codes.add(t * tok + i, c);
    }
    // Packed words: every combination of the 8 codes' sets (nominal word first).
    for (int64_t w = 0; w < tok / kInt4PerInt32; ++w) {
      std::vector<uint32_t> words{0};
      for (int q = 0; q < kInt4PerInt32; ++q) {
        const auto& c = codes[size_t(w * kInt4PerInt32 + q)];
        std::vector<uint32_t> next;
        for (uint32_t base : words)
          for (uint64_t code : c)
            next.push_back(base | (static_cast<uint32_t>(code & 0xF) << (4 * q)));
        words.swap(next);
        if (words.size() > 65536) indeterminate("more than 65536 reachable packed words");
      }
      rs.out.add(t * (tok / kInt4PerInt32) + w, std::vector<uint64_t>(words.begin(), words.end()));
    }
  }
  return rs;
}

}  // namespace ref

// ---- W4A4_FLATQUANT_DYNAMIC linear ----------------------------------------------------------

FlatQuantLinearShape check_flatquant_linear_inputs(const FlatQuantLinearArgs& a) {
  if (!a.x || !a.left_trans || !a.right_trans || !a.clip_ratio || !a.weight || !a.weight_scale)
    bad(kLinOp, "x, left_trans, right_trans, clip_ratio, weight and weight_scale are required");
  FlatQuantLinearShape s;
  const Tensor& x = *a.x;
  if ((x.dtype() != DType::kF16 && x.dtype() != DType::kBF16) || x.rank() != 2)
    bad(kLinOp, "x must be float16 or bfloat16 [T, K], got " + x.describe());
  s.xdt = x.dtype();
  s.t = x.dim(0);
  s.k = x.dim(1);
  if (s.k % 8 != 0 || s.k < 8)
    bad(kLinOp, "K (x's last dim) must be a positive multiple of 8, got " + x.describe());
  const DecomposeDims dd = ref::get_decompose_dim(s.k);
  s.l = dd.left;
  s.r = dd.right;
  const std::string want_l = "[" + std::to_string(s.l) + ", " + std::to_string(s.l) + "]";
  const std::string want_r = "[" + std::to_string(s.r) + ", " + std::to_string(s.r) + "]";
  if (a.left_trans->dtype() != s.xdt || a.left_trans->shape() != Shape{s.l, s.l})
    bad(kLinOp, "left_trans must be " + std::string(dtype_name(s.xdt)) + " " + want_l +
                    " (get_decompose_dim(K)), got " + a.left_trans->describe());
  if (a.right_trans->dtype() != s.xdt || a.right_trans->shape() != Shape{s.r, s.r})
    bad(kLinOp, "right_trans must be " + std::string(dtype_name(s.xdt)) + " " + want_r +
                    " (get_decompose_dim(K)), got " + a.right_trans->describe());
  if (s.r % 8 != 0)
    bad(kLinOp, "get_decompose_dim(K = " + std::to_string(s.k) + ") = (" + std::to_string(s.l) +
                    ", " + std::to_string(s.r) +
                    "): npu_kronecker_quant needs the right factor to be a multiple of 8 "
                    "(its int4 output packs 8 codes per int32 along it)");
  const Tensor& w = *a.weight;
  if (w.dtype() != DType::kI8 || w.rank() != 2 || w.dim(1) != s.k || w.dim(0) % 8 != 0)
    bad(kLinOp, "weight must be int8 [N, K] with N % 8 == 0 and K = " + std::to_string(s.k) +
                    ", got " + w.describe());
  s.n = w.dim(0);
  for (int64_t i = 0; i < w.numel(); ++i)
    if (w.data<int8_t>()[i] < -8 || w.data<int8_t>()[i] > 7)
      bad(kLinOp, "weight element " + std::to_string(i) + " = " +
                      std::to_string(w.data<int8_t>()[i]) + " is outside the int4 range [-8, 7]");
  const Tensor& ws = *a.weight_scale;
  if (ws.dtype() != DType::kF32 || !(ws.shape() == Shape{s.n} || ws.shape() == Shape{s.n, 1}))
    bad(kLinOp, "weight_scale must be float32 [N] or [N, 1] with N = " + std::to_string(s.n) +
                    ", got " + ws.describe());
  if (a.bias && (a.bias->dtype() != s.xdt || a.bias->shape() != Shape{s.n}))
    bad(kLinOp, "bias must be " + std::string(dtype_name(s.xdt)) +
                    " [N] with N = " + std::to_string(s.n) + ", got " + a.bias->describe());
  return s;
}

namespace ref {
namespace {

Tensor transpose2(const Tensor& t) {
  Tensor o(t.dtype(), {t.dim(1), t.dim(0)});
  for (int64_t i = 0; i < t.dim(0); ++i)
    for (int64_t j = 0; j < t.dim(1); ++j)
      o.data<uint16_t>()[j * t.dim(0) + i] = t.data<uint16_t>()[i * t.dim(1) + j];
  return o;
}

Tensor token_slice(const Tensor& x, int64_t b, int64_t e, const Shape& inner) {
  Shape sh{e - b};
  sh.insert(sh.end(), inner.begin(), inner.end());
  Tensor o(x.dtype(), sh);
  const size_t row = o.nbytes() / static_cast<size_t>(e - b);
  std::memcpy(o.bytes(), x.bytes() + static_cast<size_t>(b) * row, o.nbytes());
  return o;
}

// weight int8 [N, K] -> int32 [K, N / 8]: x2 of npu_quant_matmul, 8 codes along N per word.
Tensor weight_x2(const Tensor& w, int64_t n, int64_t k) {
  Tensor o(DType::kI32, {k, n / kInt4PerInt32});
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n / kInt4PerInt32; ++j) {
      int32_t v[kInt4PerInt32];
      for (int q = 0; q < kInt4PerInt32; ++q)
        v[q] = w.data<int8_t>()[(j * kInt4PerInt32 + q) * k + kk];
      o.data<int32_t>()[kk * (n / kInt4PerInt32) + j] = pack_int4_word(v);
    }
  return o;
}

Tensor scale_vec(const Tensor& ws) {
  return Tensor::from<uint32_t>(DType::kF32, {ws.numel()}, ws.to_vector<uint32_t>());
}

}  // namespace

uint16_t flatquant_epilogue(int32_t acc, uint32_t weight_scale, uint32_t pertoken, DType out) {
  const uint64_t a = num::encode(kF32, Exact(acc), Round::kRint);
  const uint64_t v = num::fp_mul(kF32, num::fp_mul(kF32, a, weight_scale), pertoken);
  return static_cast<uint16_t>(num::convert(kF32, v, fmt(out), Round::kRint));
}

FlatQuantLinearStages w4a4_flatquant_linear(const FlatQuantLinearArgs& a,
                                            const FlatQuantLinearConfig& cfg) {
  const FlatQuantLinearShape s = check_flatquant_linear_inputs(a);
  if (cfg.chunk_tokens < 1) bad(kLinOp, "chunk_tokens must be >= 1");
  FlatQuantLinearStages st;
  st.decompose_dim = Tensor::from<int64_t>({2}, {s.l, s.r});
  // process_weights_after_loading: P1 = left_trans^T; apply: x viewed [T, L, R].
  const Tensor p1 = transpose2(*a.left_trans);
  st.kq_out = Tensor(DType::kI32, {s.t, s.k / kInt4PerInt32});
  st.kq_scale = Tensor(DType::kF32, {s.t});
  for (int64_t b = 0; b < s.t; b += cfg.chunk_tokens) {
    const int64_t e = std::min(s.t, b + cfg.chunk_tokens);
    const KronQuantStages q = npu_kronecker_quant(token_slice(*a.x, b, e, {s.l, s.r}), p1,
                                                  *a.right_trans, *a.clip_ratio, cfg.formula);
    std::memcpy(st.kq_out.bytes() + b * (s.k / 2), q.out.bytes(), q.out.nbytes());
    std::memcpy(st.kq_scale.bytes() + b * 4, q.quant_scale.bytes(), q.quant_scale.nbytes());
  }
  QuantMatmulConfig qc;
  qc.output_dtype = s.xdt;
  const Tensor x2 = weight_x2(*a.weight, s.n, s.k);
  const Tensor sc = scale_vec(*a.weight_scale);
  QuantMatmulStages mm = npu_quant_matmul(st.kq_out, x2, sc, nullptr, &st.kq_scale, nullptr, qc);
  st.acc = std::move(mm.acc);
  st.mm_out = std::move(mm.out);
  st.y = st.mm_out;
  if (a.bias)
    for (int64_t i = 0; i < st.y.numel(); ++i)
      st.y.data<uint16_t>()[i] = static_cast<uint16_t>(num::fp_add(
          fmt(s.xdt), st.mm_out.data<uint16_t>()[i], a.bias->data<uint16_t>()[i % s.n]));
  return st;
}

FlatQuantLinearReach w4a4_flatquant_linear_reachable(const FlatQuantLinearArgs& a,
                                                     const FlatQuantLinearConfig& cfg) {
  const FlatQuantLinearShape s = check_flatquant_linear_inputs(a);
  const FlatQuantLinearStages st = w4a4_flatquant_linear(a, cfg);
  FlatQuantLinearReach r;
  const Tensor p1 = transpose2(*a.left_trans);
  Tensor x3 = token_slice(*a.x, 0, s.t, {s.l, s.r});
  r.kq = npu_kronecker_quant_reachable(x3, p1, *a.right_trans, *a.clip_ratio, cfg.formula);
  const KronQuantStages nom =
      npu_kronecker_quant(x3, p1, *a.right_trans, *a.clip_ratio, cfg.formula);
  // Per element of the codes: the smallest and largest reachable change from the nominal code.
  std::vector<int> dmin(static_cast<size_t>(s.t * s.k), 0), dmax(dmin.size(), 0);
  for (size_t j = 0; j < r.kq.codes.index.size(); ++j) {
    const int64_t i = r.kq.codes.index[j];
    const int c0 = nom.codes.data<int8_t>()[i];
    for (int64_t q = r.kq.codes.offsets[j]; q < r.kq.codes.offsets[j + 1]; ++q) {
      const int c = static_cast<int8_t>(static_cast<uint8_t>(r.kq.codes.values[size_t(q)]));
      dmin[size_t(i)] = std::min(dmin[size_t(i)], c - c0);
      dmax[size_t(i)] = std::max(dmax[size_t(i)], c - c0);
    }
  }
  std::vector<std::vector<uint32_t>> scales(static_cast<size_t>(s.t));
  for (int64_t t = 0; t < s.t; ++t) scales[size_t(t)] = {st.kq_scale.data<uint32_t>()[t]};
  for (size_t j = 0; j < r.kq.quant_scale.index.size(); ++j) {
    auto& v = scales[size_t(r.kq.quant_scale.index[j])];
    v.clear();
    for (int64_t q = r.kq.quant_scale.offsets[j]; q < r.kq.quant_scale.offsets[j + 1]; ++q)
      v.push_back(static_cast<uint32_t>(r.kq.quant_scale.values[size_t(q)]));
  }
  const num::FloatFormat& of = fmt(s.xdt);
  for (Tensor* t : {&r.mm_exact, &r.mm_bound, &r.y_exact, &r.y_bound})
    *t = Tensor(DType::kF64, {s.t, s.n});
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < s.t; ++t)
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t o = t * s.n + n;
      int64_t lo = st.acc.data<int32_t>()[o], hi = lo;
      for (int64_t k = 0; k < s.k; ++k) {
        const int64_t w = a.weight->data<int8_t>()[n * s.k + k];
        const int64_t x0 = dmin[size_t(t * s.k + k)] * w, x1 = dmax[size_t(t * s.k + k)] * w;
        lo += std::min(x0, x1);
        hi += std::max(x0, x1);
      }
      if (hi > lo) {
        if (hi - lo > 4096) indeterminate("linear: an accumulator range of more than 4096");
        std::vector<uint64_t> v{static_cast<uint32_t>(st.acc.data<int32_t>()[o])};
        for (int64_t c = lo; c <= hi; ++c)
          if (c != st.acc.data<int32_t>()[o]) v.push_back(static_cast<uint32_t>(c));
        r.acc.add(o, v);
      }
      // The epilogue is monotone in acc and in the pertoken scale: the range is at the corners.
      double mn = inf, mx = -inf, ymn = inf, ymx = -inf;
      bool nonfinite = false;
      const uint32_t ws = a.weight_scale->data<uint32_t>()[n];
      for (int64_t c : {lo, hi})
        for (uint32_t ps : scales[size_t(t)]) {
          const uint16_t m = flatquant_epilogue(static_cast<int32_t>(c), ws, ps, s.xdt);
          const uint16_t y =
              a.bias ? static_cast<uint16_t>(num::fp_add(of, m, a.bias->data<uint16_t>()[n])) : m;
          const double md = num::to_double(of, m), yd = num::to_double(of, y);
          if (!std::isfinite(md) || !std::isfinite(yd)) nonfinite = true;
          mn = std::min(mn, md);
          mx = std::max(mx, md);
          ymn = std::min(ymn, yd);
          ymx = std::max(ymx, yd);
        }
      const bool unique = lo == hi && scales[size_t(t)].size() == 1;
      const double m0 = num::to_double(of, st.mm_out.data<uint16_t>()[o]);
      const double y0 = num::to_double(of, st.y.data<uint16_t>()[o]);
      if (unique || nonfinite) {
        // One value (or a special result, checked as exactly that value).
        r.mm_exact.data<double>()[o] = m0;
        r.y_exact.data<double>()[o] = y0;
        r.mm_bound.data<double>()[o] = (unique || !std::isfinite(m0)) ? 0 : inf;
        r.y_bound.data<double>()[o] = (unique || !std::isfinite(y0)) ? 0 : inf;
      } else {
        // Midpoint and half-width: exact in float64 (sums of two fp16/bf16 values, halved).
        r.mm_exact.data<double>()[o] = (mn + mx) / 2;
        r.mm_bound.data<double>()[o] = (mx - mn) / 2;
        r.y_exact.data<double>()[o] = (ymn + ymx) / 2;
        r.y_bound.data<double>()[o] = (ymx - ymn) / 2;
      }
    }
  return r;
}

}  // namespace ref
}  // namespace qconf
