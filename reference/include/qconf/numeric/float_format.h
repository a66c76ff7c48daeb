// Binary floating-point formats, decoded to exact rationals and encoded back with correct rounding.
//
// A FloatFormat is an IEEE 754-style binary format (IEEE 754-2019 §3.3, §3.4): a sign bit,
// `exp_bits` biased exponent bits (bias 2^(exp_bits-1) - 1), `mant_bits` trailing significand
// bits, subnormals when the exponent field is 0, and Inf/NaN when it is all ones. A value's bits
// are right-aligned in a uint64_t (sign at bit exp_bits + mant_bits).
//
// This is the reference: decode() and encode() are exact (rational arithmetic, no float
// arithmetic), so every other converter in the project is checked against them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "qconf/core/tensor.h"
#include "qconf/numeric/rounding.h"

namespace qconf::num {

struct FloatFormat {
  std::string_view name;
  int exp_bits;
  int mant_bits;

  // Formats compare by shape; the name is only a label.
  friend constexpr bool operator==(const FloatFormat& a, const FloatFormat& b) {
    return a.exp_bits == b.exp_bits && a.mant_bits == b.mant_bits;
  }
};

inline constexpr FloatFormat kF32{"float32", 8, 23};
inline constexpr FloatFormat kF16{"float16", 5, 10};
inline constexpr FloatFormat kBF16{"bfloat16", 8, 7};
// FP19 as used by npu_trans_quant_param (torch_npu_semantics.md §2): sign + 8 exponent + 10
// mantissa bits, i.e. the top 19 bits of an fp32. As a value format its bits are right-aligned.
inline constexpr FloatFormat kFP19{"fp19", 8, 10};
inline constexpr FloatFormat kF64{"float64", 11, 52};

// The format of a float32 / float16 / bfloat16 tensor dtype; std::invalid_argument for any other.
const FloatFormat& float_format_of(DType t);

// ---- format parameters --------------------------------------------------------------------------
// Supported formats: exp_bits in [2, 11], mant_bits in [1, 52]. Functions below throw
// std::invalid_argument for other formats and for bit patterns wider than the format.
constexpr int total_bits(const FloatFormat& f) { return 1 + f.exp_bits + f.mant_bits; }
constexpr int exponent_bias(const FloatFormat& f) { return (1 << (f.exp_bits - 1)) - 1; }
// Exponent of the smallest normal number: 2^min_exponent.
constexpr int min_exponent(const FloatFormat& f) { return 1 - exponent_bias(f); }
// Exponent of the largest finite number's binade.
constexpr int max_exponent(const FloatFormat& f) { return exponent_bias(f); }
constexpr uint64_t sign_mask(const FloatFormat& f) {
  return uint64_t{1} << (f.exp_bits + f.mant_bits);
}
constexpr uint64_t mant_mask(const FloatFormat& f) { return (uint64_t{1} << f.mant_bits) - 1; }
constexpr uint64_t exp_field_max(const FloatFormat& f) { return (uint64_t{1} << f.exp_bits) - 1; }
constexpr uint64_t inf_bits(const FloatFormat& f, bool negative = false) {
  return (negative ? sign_mask(f) : 0) | (exp_field_max(f) << f.mant_bits);
}
constexpr uint64_t max_finite_bits(const FloatFormat& f, bool negative = false) {
  return inf_bits(f, negative) - 1;
}
// The canonical quiet NaN: exponent all ones, only the quiet (top mantissa) bit set.
constexpr uint64_t quiet_nan_bits(const FloatFormat& f, bool negative = false) {
  return inf_bits(f, negative) | (uint64_t{1} << (f.mant_bits - 1));
}

// ---- FP19 helpers (npu_trans_quant_param, torch_npu_semantics.md §2) ----------------------------
// ----------------------------- Exact widening of a right-aligned fp19 pattern into the high 19
// bits of an fp32 pattern.
uint32_t fp19_to_fp32_bits(uint32_t fp19);
// What npu_trans_quant_param does by default: `fp32bits & 0xFFFFE000`. Note that this turns a NaN
// whose payload lies only in the low 13 bits into Inf; that is the operator's behaviour.
uint32_t fp32_bits_truncate_to_fp19(uint32_t f32);
// round_mode=1 of npu_trans_quant_param: round to nearest even to 10 mantissa bits, as fp32 bits.
// Overflow gives Inf; NaN stays NaN (the convert() rule: quiet bit set, payload truncated).
uint32_t fp32_bits_rne_to_fp19(uint32_t f32);

// ---- decode / encode ----------------------------------------------------------------------------
enum class FClass { kZero, kSubnormal, kNormal, kInf, kNaN };
std::string_view fclass_name(FClass c);  // "zero", "subnormal", "normal", "inf", "nan"

struct Decoded {
  FClass cls;
  bool negative;  // the sign bit (also for zeros, Inf and NaN)
  Exact value;    // exact value, signed; 0 for zeros, Inf and NaN
};
Decoded decode(const FloatFormat& f, uint64_t bits);

// Correctly rounded encoding of the exact finite value v (IEEE 754-2019 §4.3, §7.4):
//  * the significand is rounded with `mode` at the precision of v's binade, or at the subnormal
//    quantum 2^(min_exponent - mant_bits) below the normal range;
//  * a carry out of the significand moves to the next binade (subnormal -> normal included);
//  * overflow: kRint/kRound -> Inf; kTrunc -> max finite; kFloor -> max finite for v > 0 and
//    -Inf for v < 0; kCeil -> +Inf for v > 0 and -max finite for v < 0;
//  * a zero result has the sign of v when v != 0; when v == 0, negative_zero chooses the sign.
uint64_t encode(const FloatFormat& f, const Exact& v, Round mode, bool negative_zero = false);

// Format-to-format conversion.
//  * NaN stays NaN: sign kept, payload (mantissa field) aligned at the top and truncated (or
//    zero-extended), quiet bit (top mantissa bit) set. This is the rule of x86 VCVTPS2PH (F16C)
//    and VCVTNEPS2BF16, and of the widening VCVTPH2PS.
//  * Inf stays Inf, zeros keep their sign.
//  * finite values are encode()d with `mode`.
uint64_t convert(const FloatFormat& from, uint64_t bits, const FloatFormat& to,
                 Round mode = Round::kRint);

// The value as a double: exact for every supported format (all fit in fp64); Inf and NaN map to
// Inf and NaN (NaN by the convert() rule).
double to_double(const FloatFormat& f, uint64_t bits);
// The exact value; throws std::domain_error naming the format and pattern for Inf and NaN.
Exact to_exact(const FloatFormat& f, uint64_t bits);

bool is_nan(const FloatFormat& f, uint64_t bits);
bool is_inf(const FloatFormat& f, uint64_t bits);

// ---- conveniences for fp32 / fp16 / bf16 (reference semantics) ----------------------------------
uint32_t f32_bits(float x);
float f32_from_bits(uint32_t bits);
uint16_t f32_to_f16(float x, Round mode = Round::kRint);
uint16_t f32_to_bf16(float x, Round mode = Round::kRint);
float f16_to_f32(uint16_t bits);   // exact
float bf16_to_f32(uint16_t bits);  // exact

// ---- ordering -----------------------------------------------------------------------------------
// ------------------------------------------------------------------------------------ Position of
// a non-NaN pattern on the monotone integer line: -0 and +0 map to 0, the next positive number to
// 1, -Inf and +Inf to -/+(max finite position + 1). Throws on NaN.
int64_t ordinal(const FloatFormat& f, uint64_t bits);
// |ordinal(a) - ordinal(b)|: the number of representable steps between a and b (so +0 and -0 are
// 0 apart). INT64_MAX if either is NaN.
int64_t ulp_distance(const FloatFormat& f, uint64_t a, uint64_t b);

// ---- printing -----------------------------------------------------------------------------------
// ------------------------------------------------------------------------------------ Readable
// decimal with up to 21 significant digits, prefixed by "~" when it is not exact, then the exact
// fraction when it is short, e.g. "0.5", "-3", "~0.333333333333333333333 (= 1/3)",
// "5.9604644775390625e-08 (= 1/16777216)".
std::string exact_str(const Exact& v);
// "float16 0x3c00 (1)", "float32 0x7fc00000 (nan)".
std::string bits_str(const FloatFormat& f, uint64_t bits);

// ---- test vectors -------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------- Deterministic
// bit patterns of `from` that probe every rounding decision of a conversion to `to`: for each
// biased exponent of `from` (all of them) and both signs, mantissas whose discarded part is 0, 1,
// half-1, half, half+1 and all ones, combined with kept parts that are even, odd, and the largest
// (so a carry crosses the binade); the discard position accounts for `to`'s subnormal range. Also
// zeros, subnormals of `from`, Inf, and NaNs whose payload lies only above or only below `to`'s
// mantissa width. Sorted and without duplicates.
std::vector<uint64_t> rounding_probes(const FloatFormat& from, const FloatFormat& to);

}  // namespace qconf::num
