// Exact decode/encode of binary float formats. See float_format.h for the semantics.
//
// Sources: IEEE 754-2019 §3.4 (binary interchange encoding), §4.3 (rounding-direction attributes),
// §7.4 (overflow); Intel SDM vol. 2 for the NaN rule of VCVTPS2PH / VCVTPH2PS / VCVTNEPS2BF16
// (NaN payload kept from the top, quiet bit forced).
#include "qconf/numeric/float_format.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <limits>
#include <set>
#include <stdexcept>

namespace qconf::num {

namespace {

// ---- helpers ------------------------------------------------------------------------------------

std::string hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

void check_format(const FloatFormat& f) {
  if (f.exp_bits < 2 || f.exp_bits > 11 || f.mant_bits < 1 || f.mant_bits > 52) {
    throw std::invalid_argument("unsupported float format '" + std::string(f.name) +
                                "': exp_bits must be in [2, 11] and mant_bits in [1, 52], got " +
                                std::to_string(f.exp_bits) + " and " + std::to_string(f.mant_bits));
  }
}

void check_bits(const FloatFormat& f, uint64_t bits) {
  check_format(f);
  if (total_bits(f) < 64 && (bits >> total_bits(f)) != 0) {
    throw std::invalid_argument("bit pattern " + hex(bits, 1) + " is wider than the " +
                                std::to_string(total_bits(f)) + "-bit format " +
                                std::string(f.name));
  }
}

// v * 2^k, exactly.
Exact mul_pow2(const Exact& v, int k) {
  const BigInt n = boost::multiprecision::numerator(v);
  const BigInt d = boost::multiprecision::denominator(v);
  return k >= 0 ? Exact(n << k, d) : Exact(n, d << -k);
}

// The binade of a positive value: the e with 2^e <= mag < 2^(e+1).
int binade_exponent(const Exact& mag) {
  const BigInt n = boost::multiprecision::numerator(mag);
  const BigInt d = boost::multiprecision::denominator(mag);
  // n in [2^a, 2^(a+1)) and d in [2^b, 2^(b+1)) put n/d in (2^(a-b-1), 2^(a-b+1)).
  int e = static_cast<int>(boost::multiprecision::msb(n)) -
          static_cast<int>(boost::multiprecision::msb(d));
  const bool at_least_2e = e >= 0 ? n >= (d << e) : (n << -e) >= d;
  if (!at_least_2e) --e;
  return e;
}

uint64_t zero_bits(const FloatFormat& f, bool negative) { return negative ? sign_mask(f) : 0; }

// IEEE 754-2019 §7.4: the result of an overflow depends on the rounding direction.
uint64_t overflow_bits(const FloatFormat& f, bool negative, Round mode) {
  switch (mode) {
    case Round::kRint:
    case Round::kRound:
      return inf_bits(f, negative);
    case Round::kTrunc:
      return max_finite_bits(f, negative);
    case Round::kFloor:
      return negative ? inf_bits(f, true) : max_finite_bits(f, false);
    case Round::kCeil:
      return negative ? max_finite_bits(f, true) : inf_bits(f, false);
  }
  throw std::invalid_argument("invalid Round value");
}

// Assembles sign, biased exponent field and mantissa field.
uint64_t pack(const FloatFormat& f, bool negative, uint64_t exp_field, uint64_t mant_field) {
  return zero_bits(f, negative) | (exp_field << f.mant_bits) | (mant_field & mant_mask(f));
}

// NaN -> NaN between formats: payload aligned at the top of the mantissa field (truncated when
// narrowing, zero-extended when widening), quiet bit forced, sign kept.
uint64_t convert_nan(const FloatFormat& from, uint64_t bits, const FloatFormat& to) {
  const bool negative = (bits & sign_mask(from)) != 0;
  const uint64_t payload = bits & mant_mask(from);
  const uint64_t aligned = to.mant_bits >= from.mant_bits
                               ? payload << (to.mant_bits - from.mant_bits)
                               : payload >> (from.mant_bits - to.mant_bits);
  const uint64_t quiet = uint64_t{1} << (to.mant_bits - 1);
  return pack(to, negative, exp_field_max(to), aligned | quiet);
}

// 10^k as an exact rational.
Exact pow10(int k) {
  BigInt p = 1;
  for (int i = 0; i < (k >= 0 ? k : -k); ++i) p *= 10;
  return k >= 0 ? Exact(p) : Exact(BigInt(1), p);
}

// Decimal rendering of a positive value with at most kDigits significant digits, rounded to
// nearest even; sets `exact` when no digit was dropped. Fixed notation for 1e-5 <= mag < 1e21,
// else d.ddde+XX.
std::string decimal_str(const Exact& mag, bool& exact) {
  constexpr int kDigits = 21;
  // The decimal exponent k with 10^k <= mag < 10^(k+1), from the binary one, then corrected.
  int k = binade_exponent(mag) * 30103 / 100000;
  while (mag >= pow10(k + 1)) ++k;
  while (mag < pow10(k)) --k;
  const Exact scaled = mag * pow10(kDigits - 1 - k);
  BigInt n = round_to_integer(scaled, Round::kRint);
  exact = Exact(n) == scaled;
  if (n == boost::multiprecision::numerator(pow10(kDigits))) {  // rounded up to 10^kDigits
    n /= 10;
    ++k;
  }
  std::string digits = n.str();
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int nd = static_cast<int>(digits.size());
  if (k >= -5 && k < 21) {
    if (k < 0) return "0." + std::string(-k - 1, '0') + digits;
    if (nd <= k + 1) return digits + std::string(k + 1 - nd, '0');
    return digits.substr(0, k + 1) + "." + digits.substr(k + 1);
  }
  std::string s = digits.substr(0, 1);
  if (nd > 1) s += "." + digits.substr(1);
  char e[16];
  std::snprintf(e, sizeof e, "e%c%02d", k < 0 ? '-' : '+', k < 0 ? -k : k);
  return s + e;
}

// Appends the mantissa patterns of one exponent field of `from` to `out` (see rounding_probes).
void add_probes_for_exponent(const FloatFormat& from, const FloatFormat& to, uint64_t exp_field,
                             std::set<uint64_t>& out) {
  const int m = from.mant_bits;
  const uint64_t mmax = mant_mask(from);
  // Binade of the values with this exponent field (the subnormal field shares the lowest one).
  const int e =
      exp_field == 0 ? min_exponent(from) : static_cast<int>(exp_field) - exponent_bias(from);
  const int src_quantum = e - m;
  const int dst_quantum = std::max(e, min_exponent(to)) - to.mant_bits;
  const int d = dst_quantum - src_quantum;  // discarded low bits of the significand
  std::vector<uint64_t> mants;
  if (d <= 0) {
    mants = {0, 1, 2, mmax - 1, mmax};
  } else {
    // Discarded part: 0, 1, half-1, half, half+1, all ones (restricted to the mantissa field).
    const int dd = std::min(d, m);
    const uint64_t full = (uint64_t{1} << dd) - 1;
    const uint64_t half = d <= m ? uint64_t{1} << (d - 1) : uint64_t{1} << (m - 1);
    const uint64_t lows[] = {0, 1, half - 1, half, half + 1, full - 1, full};
    // Kept part: even, odd, and the largest ones (a carry out of them crosses the binade).
    const uint64_t umax = d < m ? (uint64_t{1} << (m - d)) - 1 : 0;
    const uint64_t ups[] = {0, 1, 2, 3, umax - 1, umax};
    for (uint64_t u : ups) {
      for (uint64_t l : lows) {
        const uint64_t up = d < m ? (u & umax) << d : 0;
        mants.push_back(up | (l & full));
      }
    }
  }
  for (uint64_t mant : mants) {
    for (bool negative : {false, true}) out.insert(pack(from, negative, exp_field, mant & mmax));
  }
}

}  // namespace

// ---- FP19 ---------------------------------------------------------------------------------------

uint32_t fp19_to_fp32_bits(uint32_t fp19) {
  check_bits(kFP19, fp19);
  return fp19 << 13;  // same sign, exponent and bias; the 13 new mantissa bits are zero
}

uint32_t fp32_bits_truncate_to_fp19(uint32_t f32) { return f32 & 0xFFFFE000u; }

uint32_t fp32_bits_rne_to_fp19(uint32_t f32) {
  return static_cast<uint32_t>(convert(kF32, f32, kFP19, Round::kRint)) << 13;
}

// ---- decode / encode ----------------------------------------------------------------------------

std::string_view fclass_name(FClass c) {
  switch (c) {
    case FClass::kZero:
      return "zero";
    case FClass::kSubnormal:
      return "subnormal";
    case FClass::kNormal:
      return "normal";
    case FClass::kInf:
      return "inf";
    case FClass::kNaN:
      return "nan";
  }
  return "?";
}

Decoded decode(const FloatFormat& f, uint64_t bits) {
  check_bits(f, bits);
  const bool negative = (bits & sign_mask(f)) != 0;
  const uint64_t exp_field = (bits >> f.mant_bits) & exp_field_max(f);
  const uint64_t mant_field = bits & mant_mask(f);
  if (exp_field == exp_field_max(f)) {
    return {mant_field == 0 ? FClass::kInf : FClass::kNaN, negative, Exact(0)};
  }
  if (exp_field == 0 && mant_field == 0) return {FClass::kZero, negative, Exact(0)};
  // Subnormal: 0.M * 2^min_exponent; normal: 1.M * 2^(E - bias). Both as integer * 2^quantum.
  const bool subnormal = exp_field == 0;
  const BigInt significand =
      subnormal ? BigInt(mant_field) : (BigInt(1) << f.mant_bits) + BigInt(mant_field);
  const int exponent = subnormal ? min_exponent(f) : static_cast<int>(exp_field) - exponent_bias(f);
  Exact value = mul_pow2(Exact(significand), exponent - f.mant_bits);
  if (negative) value = -value;
  return {subnormal ? FClass::kSubnormal : FClass::kNormal, negative, value};
}

namespace {

// encode(), one function per step. A finite nonzero v is written as significand * 2^quantum.

// Step 1: the quantum (weight of the last significand bit) for v: that of v's binade, or the
// subnormal quantum 2^(min_exponent - mant_bits) below the normal range (IEEE 754-2019 §3.4).
int quantum_exponent(const FloatFormat& f, const Exact& v) {
  const int binade = binade_exponent(v < 0 ? Exact(-v) : v);
  return std::max(binade, min_exponent(f)) - f.mant_bits;
}

// Step 2: |v / 2^quantum| rounded to an integer with `mode`. The signed value is rounded, so kFloor
// and kCeil round toward -/+infinity as IEEE 754-2019 §4.3.2 requires.
BigInt rounded_significand(const Exact& v, int quantum, Round mode) {
  BigInt significand = round_to_integer(mul_pow2(v, -quantum), mode);
  return significand < 0 ? BigInt(-significand) : significand;
}

// Step 3: rounding up may carry to 2^(mant_bits+1), the first value of the next binade; that value
// is even, so halving the significand and raising the quantum is exact.
void absorb_carry(const FloatFormat& f, BigInt& significand, int& quantum) {
  if (boost::multiprecision::msb(significand) == static_cast<unsigned>(f.mant_bits) + 1) {
    significand >>= 1;
    ++quantum;
  }
}

// Step 4: the fields. A significand below 2^mant_bits (only possible at the subnormal quantum) is
// subnormal, exponent field 0; otherwise the implicit bit is dropped and the exponent biased.
// Step 5: an exponent field past the largest finite one is an overflow (IEEE 754-2019 §7.4).
uint64_t assemble(const FloatFormat& f, bool negative, const BigInt& significand, int quantum,
                  Round mode) {
  const bool subnormal =
      boost::multiprecision::msb(significand) < static_cast<unsigned>(f.mant_bits);
  const int64_t exp_field =
      subnormal ? 0 : static_cast<int64_t>(quantum) + f.mant_bits + exponent_bias(f);
  if (exp_field >= static_cast<int64_t>(exp_field_max(f))) return overflow_bits(f, negative, mode);
  const uint64_t mant_field = (significand & BigInt(mant_mask(f))).convert_to<uint64_t>();
  return pack(f, negative, static_cast<uint64_t>(exp_field), mant_field);
}

}  // namespace

uint64_t encode(const FloatFormat& f, const Exact& v, Round mode, bool negative_zero) {
  check_format(f);
  if (v == 0) return zero_bits(f, negative_zero);
  const bool negative = v < 0;
  int quantum = quantum_exponent(f, v);
  BigInt significand = rounded_significand(v, quantum, mode);
  if (significand == 0) return zero_bits(f, negative);  // underflow to a zero of v's sign
  absorb_carry(f, significand, quantum);
  return assemble(f, negative, significand, quantum, mode);
}

uint64_t convert(const FloatFormat& from, uint64_t bits, const FloatFormat& to, Round mode) {
  check_format(to);
  const Decoded d = decode(from, bits);
  switch (d.cls) {
    case FClass::kNaN:
      return convert_nan(from, bits, to);
    case FClass::kInf:
      return inf_bits(to, d.negative);
    case FClass::kZero:
      return zero_bits(to, d.negative);
    default:
      return encode(to, d.value, mode, d.negative);
  }
}

double to_double(const FloatFormat& f, uint64_t bits) {
  return std::bit_cast<double>(convert(f, bits, kF64, Round::kRint));
}

Exact to_exact(const FloatFormat& f, uint64_t bits) {
  Decoded d = decode(f, bits);
  if (d.cls == FClass::kInf || d.cls == FClass::kNaN) {
    throw std::domain_error("to_exact: " + bits_str(f, bits) + " has no finite value");
  }
  return d.value;
}

bool is_nan(const FloatFormat& f, uint64_t bits) {
  check_bits(f, bits);
  return (bits & ~sign_mask(f)) > inf_bits(f);
}
bool is_inf(const FloatFormat& f, uint64_t bits) {
  check_bits(f, bits);
  return (bits & ~sign_mask(f)) == inf_bits(f);
}

// ---- conveniences -------------------------------------------------------------------------------

uint32_t f32_bits(float x) { return std::bit_cast<uint32_t>(x); }
float f32_from_bits(uint32_t bits) { return std::bit_cast<float>(bits); }

uint16_t f32_to_f16(float x, Round mode) {
  return static_cast<uint16_t>(convert(kF32, f32_bits(x), kF16, mode));
}
uint16_t f32_to_bf16(float x, Round mode) {
  return static_cast<uint16_t>(convert(kF32, f32_bits(x), kBF16, mode));
}
float f16_to_f32(uint16_t bits) {
  return f32_from_bits(static_cast<uint32_t>(convert(kF16, bits, kF32)));
}
float bf16_to_f32(uint16_t bits) {
  return f32_from_bits(static_cast<uint32_t>(convert(kBF16, bits, kF32)));
}

// ---- ordering -----------------------------------------------------------------------------------

int64_t ordinal(const FloatFormat& f, uint64_t bits) {
  check_bits(f, bits);
  if (is_nan(f, bits)) throw std::domain_error("ordinal: " + bits_str(f, bits) + " is NaN");
  // Sign-magnitude to two's complement: magnitudes are ordered like the values they encode.
  const auto magnitude = static_cast<int64_t>(bits & ~sign_mask(f));
  return (bits & sign_mask(f)) ? -magnitude : magnitude;
}

int64_t ulp_distance(const FloatFormat& f, uint64_t a, uint64_t b) {
  if (is_nan(f, a) || is_nan(f, b)) return std::numeric_limits<int64_t>::max();
  const int64_t oa = ordinal(f, a);
  const int64_t ob = ordinal(f, b);
  return oa > ob ? oa - ob : ob - oa;
}

// ---- printing -----------------------------------------------------------------------------------

std::string exact_str(const Exact& v) {
  if (v == 0) return "0";
  const BigInt& n = boost::multiprecision::numerator(v);
  const BigInt& d = boost::multiprecision::denominator(v);
  if (d == 1) return n.str();
  const bool negative = v < 0;
  bool exact = false;
  const std::string decimal = decimal_str(negative ? Exact(-v) : v, exact);
  std::string s = std::string(exact ? "" : "~") + (negative ? "-" : "") + decimal;
  // The fraction adds nothing to a short exact decimal such as 0.375.
  const size_t sig_digits = std::count_if(decimal.begin(), decimal.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  const std::string fraction = n.str() + "/" + d.str();
  if (fraction.size() <= 40 &&
      (!exact || sig_digits > 7 || decimal.find('e') != std::string::npos)) {
    s += " (= " + fraction + ")";
  }
  return s;
}

std::string bits_str(const FloatFormat& f, uint64_t bits) {
  const Decoded d = decode(f, bits);
  std::string value;
  switch (d.cls) {
    case FClass::kNaN:
      value = d.negative ? "-nan" : "nan";
      break;
    case FClass::kInf:
      value = d.negative ? "-inf" : "inf";
      break;
    case FClass::kZero:
      value = d.negative ? "-0" : "0";
      break;
    default:
      value = exact_str(d.value);
  }
  return std::string(f.name) + " " + hex(bits, (total_bits(f) + 3) / 4) + " (" + value + ")";
}

// ---- test vectors -------------------------------------------------------------------------------

std::vector<uint64_t> rounding_probes(const FloatFormat& from, const FloatFormat& to) {
  check_format(from);
  check_format(to);
  std::set<uint64_t> out;
  for (uint64_t e = 0; e < exp_field_max(from); ++e) add_probes_for_exponent(from, to, e, out);
  // Inf and NaNs: quiet and signalling, payload only in the top bit, only in the bits `to` keeps,
  // only in the bits `to` drops (narrowing such a NaN must not give Inf), and all ones.
  const int m = from.mant_bits;
  const int drop = std::max(0, from.mant_bits - to.mant_bits);
  const uint64_t payloads[] = {0,
                               1,
                               uint64_t{1} << (m - 1),
                               uint64_t{1} << std::max(0, m - 2),
                               (uint64_t{1} << drop) - 1,
                               uint64_t{1} << std::min(m - 1, drop),
                               mant_mask(from)};
  for (uint64_t p : payloads) {
    for (bool negative : {false, true}) {
      out.insert(pack(from, negative, exp_field_max(from), p & mant_mask(from)));
    }
  }
  return {out.begin(), out.end()};
}

const FloatFormat& float_format_of(DType t) {
  switch (t) {
    case DType::kF32:
      return kF32;
    case DType::kF16:
      return kF16;
    case DType::kBF16:
      return kBF16;
    default:
      throw std::invalid_argument("expected a float32, float16 or bfloat16 dtype, got " +
                                  std::string(dtype_name(t)));
  }
}

}  // namespace qconf::num
