// Optimized npu_dynamic_quant / npu_dynamic_quant_asymmetric: rows in parallel, Highway SIMD for
// the per-element loops. Every step is one IEEE fp32 operation, the same one the reference rounds
// exactly, so the results are bit-identical (NaN payloads aside: those stages are SPECIAL).
//
// amax uses integer max over |x| bit patterns: for non-NaN floats the order of |x| bits is the
// order of values, and every NaN pattern is above +Inf, so a NaN row yields a NaN amax, as in the
// reference.

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/dynamic_quant.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
// clang-format on

#include "qconf/ops/dynamic_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "qconf/ops/int4pack.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/cpu.h"
#include "qconf/opt/dynamic_quant_row.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// max over i of (bits[i] & 0x7fffffff), as uint32.
uint32_t AbsBitsMax(const uint32_t* HWY_RESTRICT bits, int64_t n) {
  const hn::ScalableTag<uint32_t> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto mask = hn::Set(d, 0x7fffffffu);
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) acc = hn::Max(acc, hn::And(hn::LoadU(d, bits + i), mask));
  uint32_t m = hn::GetLane(hn::MaxOfLanes(d, acc));
  for (; i < n; ++i) m = std::max(m, bits[i] & 0x7fffffffu);
  return m;
}

// codes[i] = sat(RINT(x[i] * m)) with NaN -> 0, into [lo, hi].
void QuantMulRint(const float* HWY_RESTRICT x, float m, int32_t lo, int32_t hi,
                  int8_t* HWY_RESTRICT codes, int64_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  const auto vlo = hn::Set(df, static_cast<float>(lo)), vhi = hn::Set(df, static_cast<float>(hi));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::Mul(hn::LoadU(df, x + i), vm);
    auto not_nan = hn::Eq(v, v);
    // Clamp in float first (saturation, +-Inf included), then round half to even.
    v = hn::Min(hn::Max(v, vlo), vhi);
    auto q = hn::IfThenElseZero(hn::RebindMask(di, not_nan), hn::NearestInt(v));
    hn::StoreU(hn::DemoteTo(d8, q), d8, codes + i);
  }
  for (; i < n; ++i) {
    float v = x[i] * m;
    codes[i] =
        std::isnan(v) ? 0 : static_cast<int8_t>(std::nearbyint(std::fmin(std::fmax(v, lo), hi)));
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf {
namespace opt {
HWY_EXPORT(AbsBitsMax);
HWY_EXPORT(QuantMulRint);

namespace {

float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Scalar saturating round of one fp32 value, as num::float_to_int does.
int8_t round_sat(float v, num::Round mode, int32_t lo, int32_t hi) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<float>(lo)) return static_cast<int8_t>(lo);
  if (v >= static_cast<float>(hi)) return static_cast<int8_t>(hi);
  float r;
  switch (mode) {
    case num::Round::kRint:
      r = std::nearbyint(v);
      break;
    case num::Round::kRound:
      r = std::round(v);
      break;
    case num::Round::kTrunc:
      r = std::trunc(v);
      break;
    case num::Round::kFloor:
      r = std::floor(v);
      break;
    default:
      r = std::ceil(v);
  }
  return static_cast<int8_t>(r);
}

// fp32 upcast and smoothing of rows [r0, r1).
void smooth_rows(const Tensor& x, const Tensor* smooth, const std::vector<int64_t>& group,
                 int64_t h, int64_t r0, int64_t r1, float* out, std::vector<uint32_t>& tmp) {
  const uint16_t* in = x.data<uint16_t>();
  tmp.resize(static_cast<size_t>(h));
  for (int64_t r = r0; r < r1; ++r) {
    uint32_t* o = reinterpret_cast<uint32_t*>(out + r * h);
    if (x.dtype() == DType::kF16)
      f16_to_f32(in + r * h, o, static_cast<size_t>(h));
    else
      bf16_to_f32(in + r * h, o, static_cast<size_t>(h));
    if (!smooth) continue;
    const uint16_t* s = smooth->data<uint16_t>() + group[static_cast<size_t>(r)] * h;
    if (x.dtype() == DType::kF16)
      f16_to_f32(s, tmp.data(), static_cast<size_t>(h));
    else
      bf16_to_f32(s, tmp.data(), static_cast<size_t>(h));
    for (int64_t i = 0; i < h; ++i) out[r * h + i] *= bits_to_float(tmp[static_cast<size_t>(i)]);
  }
}

std::vector<int64_t> groups_of_rows(const Tensor* group_index, int64_t rows) {
  std::vector<int64_t> g(static_cast<size_t>(rows), 0);
  if (!group_index) return g;
  const int32_t* gi = group_index->data<int32_t>();
  int64_t r = 0;
  for (int64_t k = 0; k < group_index->numel(); ++k)
    for (; r < gi[k]; ++r) g[static_cast<size_t>(r)] = k;
  return g;
}

Tensor pack_codes(const Tensor& codes) {
  Shape ys = codes.shape();
  ys.back() /= kInt4PerInt32;
  Tensor y(DType::kI32, ys);
  std::vector<int32_t> widened(static_cast<size_t>(codes.numel()));
  for (int64_t i = 0; i < codes.numel(); ++i)
    widened[static_cast<size_t>(i)] = codes.data<int8_t>()[i];
  pack_int4(widened.data(), y.data<int32_t>(), codes.numel());
  return y;
}

int64_t row_grain(int64_t h) {
  return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(h, 1));
}

}  // namespace

DynQuantStages npu_dynamic_quant(const Tensor& x, const Tensor* smooth, const Tensor* group_index,
                                 const DynQuantConfig& cfg) {
  const DynQuantShape s =
      check_dynamic_quant_inputs("npu_dynamic_quant", x, smooth, group_index, cfg.int4);
  const int32_t hi = cfg.int4 ? 7 : 127, lo = cfg.int4 ? -8 : -128;
  const float qmax = static_cast<float>(hi);
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  DynQuantStages st;
  st.x_smoothed = Tensor(DType::kF32, x.shape());
  st.amax = Tensor(DType::kF32, {s.rows});
  if (cfg.formula != DynQuantFormula::kDivScale) st.multiplier = Tensor(DType::kF32, {s.rows});
  st.codes = Tensor(DType::kI8, x.shape());
  st.scale = Tensor(DType::kF32, row_shape);
  const auto group = groups_of_rows(group_index, s.rows);
  float* xs = st.x_smoothed.data<float>();
  float* amax = st.amax.data<float>();
  float* scale = st.scale.data<float>();
  int8_t* codes = st.codes.data<int8_t>();
  const int64_t h = s.h;
  parallel_for(s.rows, row_grain(h), [&](int64_t r0, int64_t r1) {
    std::vector<uint32_t> tmp;
    smooth_rows(x, smooth, group, h, r0, r1, xs, tmp);
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = xs + r * h;
      amax[r] = bits_to_float(
          HWY_DYNAMIC_DISPATCH(AbsBitsMax)(reinterpret_cast<const uint32_t*>(row), h));
      int8_t* c = codes + r * h;
      if (cfg.formula == DynQuantFormula::kDivScale) {
        const float sc = amax[r] / qmax;
        scale[r] = sc;
        for (int64_t i = 0; i < h; ++i) c[i] = round_sat(row[i] / sc, cfg.rounding, lo, hi);
        continue;
      }
      const float m = qmax / amax[r];
      st.multiplier.data<float>()[r] = m;
      if (cfg.rounding == num::Round::kRint)
        HWY_DYNAMIC_DISPATCH(QuantMulRint)(row, m, lo, hi, c, h);
      else
        for (int64_t i = 0; i < h; ++i) c[i] = round_sat(row[i] * m, cfg.rounding, lo, hi);
      if (cfg.formula == DynQuantFormula::kMulReciprocal) {
        scale[r] = 1.0f / m;
      } else {
        volatile float inv = 1.0f / qmax;  // computed at run time, in fp32, like the kernel
        scale[r] = amax[r] * inv;
      }
    }
  });
  st.y = cfg.int4 ? pack_codes(st.codes) : st.codes;
  return st;
}

void dynamic_quant_row_default(const uint16_t* x, bool f16, int64_t h, float* xf, int8_t* codes,
                               float* scale) {
  // The steps of npu_dynamic_quant's loop body for DynQuantConfig{} and no smoothing.
  uint32_t* bits = reinterpret_cast<uint32_t*>(xf);
  if (f16)
    f16_to_f32(x, bits, static_cast<size_t>(h));
  else
    bf16_to_f32(x, bits, static_cast<size_t>(h));
  const float amax = bits_to_float(HWY_DYNAMIC_DISPATCH(AbsBitsMax)(bits, h));
  const float m = 127.0f / amax;
  HWY_DYNAMIC_DISPATCH(QuantMulRint)(xf, m, -128, 127, codes, h);
  *scale = 1.0f / m;
}

#if defined(__x86_64__)
namespace {
// dynamic_quant_block_packed for bf16 on AVX-512: the same bits as BF16ToF32Lanes + AbsBitsMax +
// QuantMulRint (mul, NaN mask, clamp in float, round half to even, NaN -> 0), in two passes
// over each row (amax, then quantize) with no fp32 / int8 row in between, the codes of the
// block's rows interleaved in registers and stored straight into the packed layout, and summed
// on the way.

// The row's amax bits (|x| as integers: the order of non-negative floats, NaN above Inf) over
// h bf16 values, 32 at a time on the 16-bit words: a bf16 value's fp32 bits are its word << 16,
// so |x| is word & 0x7FFF and a NaN is quieted as BF16ToF32 does (fp32 bit 22 = word bit 6)
// before the max, which picks the same NaN as the max over fp32 bits. `tail` receives the last
// partial group of 32, zero-padded (zeros leave the max unchanged), for the quantize pass.
__attribute__((target("avx512f,avx512bw"))) inline uint32_t row_amax_bits_bf16(const uint16_t* x,
                                                                               int64_t h,
                                                                               uint16_t* tail) {
  const int64_t h32 = h / 32 * 32;
  std::memset(tail, 0, 64);
  std::memcpy(tail, x + h32, static_cast<size_t>(h - h32) * 2);
  const __m512i abs16 = _mm512_set1_epi16(0x7FFF), inf16 = _mm512_set1_epi16(0x7F80);
  const __m512i quiet16 = _mm512_set1_epi16(0x0040);
  __m512i mx = _mm512_setzero_si512();
  for (int64_t i = 0; i < h; i += 32) {
    const int64_t left = h - i;
    const __mmask32 in = left >= 32 ? ~__mmask32{0} : (__mmask32{1} << left) - 1;
    const __m512i a = _mm512_and_si512(_mm512_maskz_loadu_epi16(in, x + i), abs16);
    const __mmask32 nan = _mm512_cmpgt_epu16_mask(a, inf16);
    mx = _mm512_max_epu16(mx, _mm512_mask_mov_epi16(a, nan, _mm512_or_si512(a, quiet16)));
  }
  // (Lane reductions by hand: GCC 12's _mm512_reduce_* trip -Werror=uninitialized.)
  alignas(64) uint16_t lanes[32];
  _mm512_store_si512(lanes, mx);
  uint32_t amax = 0;
  for (uint16_t l : lanes) amax = std::max<uint32_t>(amax, l);
  return amax << 16;
}

// QuantMulRint's last steps on 16 products: RINT(clamp(v)), NaN -> 0. kPlain (a block whose
// rows are all plain_scale): the clamp and the NaN mask change nothing, so they are left out.
template <bool kPlain>
__attribute__((target("avx512f,avx512bw"))) inline __m512i rint_codes(__m512 v) {
  constexpr int kRint = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  if constexpr (kPlain) return _mm512_cvt_roundps_epi32(v, kRint);
  const __mmask16 not_nan = _mm512_cmp_ps_mask(v, v, _CMP_EQ_OQ);
  const __m512 c = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
  return _mm512_maskz_mov_epi32(not_nan, _mm512_cvt_roundps_epi32(c, kRint));
}

// The codes of 32 consecutive values (one row, k = i..i+31) as 32 16-bit words in k order, and
// their sum added to *sum (int32 lanes). Dword j of the load holds the words of k = 2j and
// 2j + 1: `<< 16` gives the fp32 bits of the even one and `& 0xFFFF0000` those of the odd one
// (BF16ToF32 without its NaN quieting: a NaN x gives a NaN product either way, and every NaN
// product becomes 0). The two code vectors are merged back into words: (even & 0xFFFF) |
// (odd << 16). No cross-lane step: the widening and narrowing permutes of a 16-lane version
// (vpmovzxwd, vpmovdb) ran on the shuffle unit, which was the loop's bottleneck.
template <bool kPlain>
__attribute__((target("avx512f,avx512bw"))) inline __m512i quant32(const uint16_t* src, __m512 vm,
                                                                   __m512i* sum) {
  const __m512i w = _mm512_loadu_si512(src);
  const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  const __m512 odd =
      _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  const __m512i qe = rint_codes<kPlain>(_mm512_mul_ps(even, vm));
  const __m512i qo = rint_codes<kPlain>(_mm512_mul_ps(odd, vm));
  *sum = _mm512_add_epi32(*sum, _mm512_add_epi32(qe, qo));
  // 0xE4: c ? a : b bitwise, with c = 0x0000FFFF.
  return _mm512_ternarylogic_epi32(qe, _mm512_slli_epi32(qo, 16), _mm512_set1_epi32(0xFFFF), 0xE4);
}

// Whether a row's products need neither the clamp nor the NaN mask: amax and m = fl(127 / amax)
// both finite (amax = 0 gives m = Inf). Then no product is NaN (every x is finite), and
// |fl(x m)| <= fl(amax m) <= 127 (1 + 2^-24)^2 rounds to at most 127 + one ulp (2^-17) < 127.5,
// so RINT already lies in [-127, 127]. Rows with an Inf (m = 0, NaN products), a NaN, only zeros
// or a tiny amax (m = Inf) keep the full step.
inline bool plain_scale(float amax, float m) { return std::isfinite(amax) && std::isfinite(m); }

__attribute__((target("avx512f,avx512bw"))) inline int32_t lane_sum(__m512i sum) {
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  uint32_t total = 0;
  for (uint32_t l : lanes) total += l;  // modulo 2^32, as the row sum of set_row
  return static_cast<int32_t>(total);
}

// The dword permutes of a block of R rows (1..6) per 32 k. The codes arrive as S = ceil(R / 2)
// byte vectors: vpacksswb of the word vectors of rows 2s and 2s + 1 (row R - 1 twice when R is
// odd) puts, in 128-bit lane L, the dwords (k-quads) [row 2s: 2L, 2L + 1; row 2s + 1: 2L,
// 2L + 1]. The block's layout wants quad j of row r at dword R j + r (quad stride 4R), i.e. 8R
// dwords per 32 k in O = ceil(8R / 16) output vectors. Output dword p takes row r = p % R, quad
// j = p / R from vector r / 2, dword 4 (j / 2) + 2 (r % 2) + j % 2: vectors 0 and 1 through one
// two-source permute (vector 1 at index + 16), vector 2 (R = 5, 6) through a masked permute.
template <int R>
struct BlockPermutes {
  static constexpr int S = (R + 1) / 2;
  static constexpr int O = (8 * R + 15) / 16;
  alignas(64) int32_t idx01[O][16];
  alignas(64) int32_t idx2[O][16];
  uint16_t mask2[O];
  constexpr BlockPermutes() : idx01(), idx2(), mask2() {
    for (int p = 0; p < 8 * R; ++p) {
      const int r = p % R, j = p / R, o = p / 16, e = p % 16;
      const int src = r / 2, at = 4 * (j / 2) + 2 * (r % 2) + j % 2;
      if (src < 2) {
        idx01[o][e] = 16 * src + at;
      } else {
        idx2[o][e] = at;
        mask2[o] = static_cast<uint16_t>(mask2[o] | (1u << e));
      }
    }
  }
};

// One step of quant_block_codes: the 32 values of each row from src[r], the 8 R dwords of
// their codes at d (the first `dwords` of them).
template <int R, bool kPlain>
__attribute__((target("avx512f,avx512bw,prfchw"))) __attribute__((always_inline)) inline void
quant_block_step(const uint16_t* const (&src)[R], const __m512 (&vm)[R], __m512i (&sum)[R],
                 const __m512i* idx01, const __m512i* idx2, const uint16_t* mask2, int8_t* d,
                 int dwords) {
  using P = BlockPermutes<R>;
  constexpr int S = P::S, O = P::O;
  __m512i words[2 * S];
  for (int r = 0; r < R; ++r) words[r] = quant32<kPlain>(src[r], vm[r], &sum[r]);
  if constexpr (R % 2 == 1) words[R] = words[R - 1];
  __m512i bytes[S];
  for (int v = 0; v < S; ++v) bytes[v] = _mm512_packs_epi16(words[2 * v], words[2 * v + 1]);
  // The packed block was last read by the GEMM, on other cores too: take its lines for writing
  // ~1.5 KiB ahead (prefetchw), so that the store misses overlap instead of queueing.
  for (int l = 0; l < 32 * R; l += 64) __builtin_prefetch(d + 1536 + l, 1, 3);
  for (int o = 0; o < O; ++o) {
    __m512i out;
    if constexpr (S == 1) {
      out = _mm512_permutexvar_epi32(idx01[o], bytes[0]);
    } else {
      out = _mm512_permutex2var_epi32(bytes[0], idx01[o], bytes[1]);
      if constexpr (S == 3) out = _mm512_mask_permutexvar_epi32(out, mask2[o], idx2[o], bytes[2]);
    }
    const int n = std::clamp(dwords - 16 * o, 0, 16);
    if (n == 16)
      _mm512_storeu_si512(d + 64 * o, out);
    else if (n > 0)
      _mm512_mask_storeu_epi32(d + 64 * o, static_cast<__mmask16>((1u << n) - 1), out);
  }
}

// The quantize pass of a block of R rows (row r at x + r * ldx, multiplier m[r] = 127 / amax;
// kPlain: every row plain_scale) into the packed layout at dst: codes up to hp (a multiple of
// 4; past h the zero-padded tails, then zeros, which quantize to 0), their sums into rowsum[r].
template <int R, bool kPlain>
__attribute__((target("avx512f,avx512bw,prfchw"))) void quant_block_codes(
    const uint16_t* x, int64_t ldx, int64_t h, int64_t hp, const uint16_t (*tail)[32],
    const float* m, int8_t* dst, int32_t* rowsum) {
  using P = BlockPermutes<R>;
  static constexpr P kPerm{};
  constexpr int O = P::O;
  static const uint16_t zeros[32] = {};
  __m512 vm[R];
  __m512i sum[R];
  for (int r = 0; r < R; ++r) {
    vm[r] = _mm512_set1_ps(m[r]);
    sum[r] = _mm512_setzero_si512();
  }
  __m512i idx01[O], idx2[O];
  for (int o = 0; o < O; ++o) {
    idx01[o] = _mm512_load_si512(kPerm.idx01[o]);
    idx2[o] = _mm512_load_si512(kPerm.idx2[o]);
  }
  int64_t i = 0;
  for (; i + 32 <= h; i += 32) {  // whole groups of 32 (hp >= h: all 8 R dwords)
    const uint16_t* src[R];
    for (int r = 0; r < R; ++r) src[r] = x + r * ldx + i;
    quant_block_step<R, kPlain>(src, vm, sum, idx01, idx2, kPerm.mask2, dst + R * i, 8 * R);
  }
  for (; i < hp; i += 32) {  // the partial group of 32 (the tails), then the padding
    const uint16_t* src[R];
    for (int r = 0; r < R; ++r) src[r] = i < h ? tail[r] : zeros;
    quant_block_step<R, kPlain>(src, vm, sum, idx01, idx2, kPerm.mask2, dst + R * i,
                                static_cast<int>(std::min<int64_t>(8, (hp - i) / 4)) * R);
  }
  for (int r = 0; r < R; ++r) rowsum[r] = lane_sum(sum[r]);
}

// A block of R rows: each row's amax and multiplier m = 127 / amax (the A2/A3 kernel's step 4),
// then the quantize pass of all R rows together.
template <int R>
__attribute__((target("avx512f,avx512bw,prfchw"))) void quant_block_packed_bf16_avx512(
    const uint16_t* x, int64_t ldx, int64_t h, int64_t hp, int8_t* dst, float* scale,
    int32_t* rowsum) {
  alignas(64) uint16_t tail[R][32];
  float m[R];
  bool plain = true;
  for (int r = 0; r < R; ++r) {
    const float amax = bits_to_float(row_amax_bits_bf16(x + r * ldx, h, tail[r]));
    m[r] = 127.0f / amax;
    scale[r] = 1.0f / m[r];
    plain = plain && plain_scale(amax, m[r]);
  }
  if (plain)
    quant_block_codes<R, true>(x, ldx, h, hp, tail, m, dst, rowsum);
  else
    quant_block_codes<R, false>(x, ldx, h, hp, tail, m, dst, rowsum);
}

// The packed quant's conditions: bf16 rows on an AVX-512 (F, BW) CPU, h values padded to hp.
bool packed_quant_applies(bool f16, int64_t h, int64_t hp) {
  static const bool ok = [] {
    const CpuFeatures& f = cpu_features();
    return f.avx512f && f.avx512bw;
  }();
  return !f16 && ok && h > 0 && hp >= h && hp % 4 == 0;
}
}  // namespace
#endif

bool dynamic_quant_block_packed(const uint16_t* x, int64_t ldx, int rows, bool f16, int64_t h,
                                int64_t hp, int8_t* dst, float* scale, int32_t* rowsum) {
  if (rows < 1 || rows > 6)
    throw std::invalid_argument("dynamic_quant_block_packed: rows must be 1..6, got " +
                                std::to_string(rows));
#if defined(__x86_64__)
  if (!packed_quant_applies(f16, h, hp)) return false;
  using Fn = void (*)(const uint16_t*, int64_t, int64_t, int64_t, int8_t*, float*, int32_t*);
  static constexpr Fn kByRows[6] = {
      quant_block_packed_bf16_avx512<1>, quant_block_packed_bf16_avx512<2>,
      quant_block_packed_bf16_avx512<3>, quant_block_packed_bf16_avx512<4>,
      quant_block_packed_bf16_avx512<5>, quant_block_packed_bf16_avx512<6>};
  kByRows[rows - 1](x, ldx, h, hp, dst, scale, rowsum);
  return true;
#else
  // No AVX-512 path: the callers quantize row by row with dynamic_quant_row_default.
  (void)x, (void)ldx, (void)f16, (void)h, (void)hp, (void)dst, (void)scale, (void)rowsum;
  return false;
#endif
}

DynQuantAsymStages npu_dynamic_quant_asymmetric(const Tensor& x, const Tensor* smooth,
                                                const Tensor* group_index, bool int4) {
  const DynQuantShape s =
      check_dynamic_quant_inputs("npu_dynamic_quant_asymmetric", x, smooth, group_index, int4);
  const int32_t hi = int4 ? 7 : 127, lo = int4 ? -8 : -128;
  const float span = int4 ? 15.0f : 255.0f, dst_max = static_cast<float>(hi);
  Shape row_shape(x.shape().begin(), x.shape().end() - 1);
  DynQuantAsymStages st;
  st.x_smoothed = Tensor(DType::kF32, x.shape());
  st.row_max = Tensor(DType::kF32, {s.rows});
  st.row_min = Tensor(DType::kF32, {s.rows});
  st.scale = Tensor(DType::kF32, row_shape);
  st.offset = Tensor(DType::kF32, row_shape);
  Tensor codes(DType::kI8, x.shape());
  const auto group = groups_of_rows(group_index, s.rows);
  float* xs = st.x_smoothed.data<float>();
  const int64_t h = s.h;
  parallel_for(s.rows, row_grain(h), [&](int64_t r0, int64_t r1) {
    std::vector<uint32_t> tmp;
    smooth_rows(x, smooth, group, h, r0, r1, xs, tmp);
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = xs + r * h;
      float mx = row[0], mn = row[0];
      bool nan = std::isnan(row[0]);
      for (int64_t i = 1; i < h; ++i) {
        nan = nan || std::isnan(row[i]);
        mx = row[i] > mx || (row[i] == mx && !std::signbit(row[i])) ? row[i] : mx;
        mn = row[i] < mn || (row[i] == mn && std::signbit(row[i])) ? row[i] : mn;
      }
      if (nan) mx = mn = std::numeric_limits<float>::quiet_NaN();
      st.row_max.data<float>()[r] = mx;
      st.row_min.data<float>()[r] = mn;
      float sc = (mx - mn) / span;
      sc = std::isnan(sc) ? sc : std::fmax(sc, 1e-12f);
      const float off = dst_max - mx / sc;
      st.scale.data<float>()[r] = sc;
      st.offset.data<float>()[r] = off;
      const float inv = 1.0f / sc;
      for (int64_t i = 0; i < h; ++i)
        codes.data<int8_t>()[r * h + i] = round_sat(row[i] * inv + off, num::Round::kRint, lo, hi);
    }
  });
  st.y = int4 ? pack_codes(codes) : codes;
  return st;
}

}  // namespace opt
}  // namespace qconf
#endif
