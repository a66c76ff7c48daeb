// Optimized npu_weight_quant_batchmatmul: the antiquant fused into a threaded GEMV / GEMM.
//
// Weights are prepared once (wqbmm_prepare_weights, what an inference engine does at load time):
// each column stored k-contiguous and padded to a multiple of 64 rows, int4 128 (int8: one byte
// per k; int4: two k per byte, the even k in the low nibble), N padded to a multiple of 4 with
// zero columns, and the raw scale/offset bits per (column, group). The GEMV never materializes W:
//   int8: per element, W = antiquant(w) with the exact roundings of the reference (below); on
//         the bf16 dot path with AVX-512 VBMI and groups of >= 512 k, a lookup in a 256-word
//         table per (column, group) built with the same formula (int8_dot_lut);
//   int4: per (column, group) a 16-entry table T[nibble] = antiquant(value) is built in one SIMD
//         register, and each weight is a table lookup (vpermps; on the dot path vpermw).
//
// Summation order (fixed per output element, independent of the thread split, which is over
// column quads): 32 k per block; two 16-lane accumulators acc0, acc1 with
//   int8: acc0[j] += x[32b + j] W[32b + j],        acc1[j] += x[32b + 16 + j] W[32b + 16 + j]
//   int4: acc0[j] += x[32b + 2j] W[32b + 2j],      acc1[j] += x[32b + 2j + 1] W[32b + 2j + 1]
// (fused multiply-add; the products of two fp16/bf16 values are exact in fp32), lanes with
// k >= K skipped; then t = acc0 + acc1, t[j] += t[j + 8], t[j] += t[j + 4], t[j] += t[j + 2],
// t[0] += t[1], and + bias. With bf16 x on a CPU with AVX512_BF16, when every W is normal or
// zero and no x is subnormal, the bf16 dot-product path (vdpbf16ps, its own lane order, see
// "the bf16 dot-product path") is used instead. The AVX-512 kernel and the portable kernel
// implement the same orders, so their results are bit-identical (the dot path: unless a
// partial sum underflows); every result is within the bound of docs/bounds.md like every fp32
// summation order.
//
// Exact antiquant in fp32 arithmetic (equal to the reference's roundings, bit for bit):
//   fp16 x (x_dtype): fl16(w + off) = fl16(fl32(w + off)) (w and off are fp16 values; double
//     rounding through fp32 is innocuous since 24 >= 2 * 11 + 2); a * s is exact in fp32 (two
//     11-bit significands), so fl16(a * s) = fl16(fl32(a * s)). When w + off is an fp16 value for
//     every w of the range (checked per column and group), the first rounding is skipped.
//   fp16 x (fp32) and bf16 x: fl32(w + off), fl32(a * s), then the x-dtype rounding (F16C
//     vcvtps2ph, or an integer round-to-nearest-even for bf16, valid for finite parameters;
//     non-finite bf16 parameters take a scalar path).
// GCC 12 (bug 105593) flags the _mm*_undefined_*() pass-through operands inside the AVX-512
// intrinsic headers as uninitialized at -O3; the diagnostic belongs to the header's lines, so it
// is silenced for exactly that include (fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "qconf/ops/int4pack.h"
#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/cpu.h"
#include "qconf/opt/parallel.h"

// Every AVX-512 function is compiled for F/BW/VL/DQ + F16C + FMA + BF16; the functions are only
// called when cpu_features() reports AVX-512 F and BW (which come with VL and DQ on every such
// CPU) and F16C, and the instances that use vcvtne2ps2bf16 only when it reports AVX512_BF16 (the
// others contain no BF16 instruction: nothing in them converts to a bf16 type).
#define QCONF_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma")))

namespace qconf::opt {
namespace {

constexpr int64_t kBlock = 32;  // k per block
constexpr int64_t kQuad = 4;    // columns per GEMV tile
// Columns per tile_dot call at M = 1 (the bf16 dot path): a quad is computed as two pairs. Each
// column is a separate stream of k-contiguous bytes, and two streams at a time beat four
// (K = N = 4096, weights from DRAM, same-process A/B, medians of 30 alternating rounds,
// 2026-11-22 session 5): W4A16 +7.6% (1 thread) and +4.7% (2 threads), W8A16 +3.6% / +0.4%.
// One column at a time was slower for W8A16 (-27%: the table lookup then has a single
// vdpbf16ps chain and waits on its latency). Each column's summation order is unchanged.
constexpr int64_t kDotPair = 2;
// Software prefetch: each column prefetches the same position of the column kPrefetchTiles
// quads ahead (kPrefetchTiles * kQuad columns later in memory), i.e. the data of a later tile;
// the dot-path tiles also prefetch the next tile's scale/offset pairs (a separate stream, 2 fp32
// per column and group, that the hardware prefetcher does not follow across 4 columns). On a
// Zen 4 core shared with compile jobs, 4 tiles ahead + the parameter prefetch looked best of
// 1/2/4/8/16 tiles (W8A16 ~0.55 -> ~0.65-0.8 of the streaming read), but the machine was too
// loaded to separate it from noise: re-measure on a quiet machine (bench/weight_quant_bench).
// int4 weights are prefetched into L2 (prefetcht1), not L1: the weight stream is then
// DRAM-bound, and an L1 prefetch holds one of the few L1 miss buffers for the whole DRAM
// latency; W4A16 K = N = 4096 with weights from DRAM (20 copies in rotation), one Zen 4 core
// under load, CPU time, median of 200: ~9.8-10.2 GB/s with prefetcht0, 11.6-15.3 GB/s with
// prefetcht1 at 2, 4 or 8 tiles ahead. int8 weights keep prefetcht0: that path is bound by
// the antiquant arithmetic (the same time with the weights hot in L3), not by the stream.
// The int8 VBMI lookup (int8_dot_lut) is fast enough to be bound by the stream, and it too
// prefetches into L2: W8A16 K = N = 4096 from DRAM, one core, thread CPU time per call, min /
// median of 200 (2026-11-22, load ~10): prefetcht0 1340-1545 / 1781-1814 us, prefetcht1
// 889-932 / 1049-1059 us. Distances of 1, 2, 4, 8, 16 tiles (prefetcht1): 1-4 within the noise
// of each other (median ~1000-1100 us), 8 and 16 ~5-10% slower, none (0) ~2x slower.
// Session 6 (2026-11-22, the dot paths after the 64-k / 128-k block changes, K = N = 4096 from
// DRAM, same-process alternating rounds, medians of 12-16): one tile ahead against four, W8A16
// +9.6% on 2 threads and +1.8% on 1, W4A16 +5-8% on 2 threads and +1% on 1; 2 tiles were in
// between, 8 and 16 slower (-3%, -11%), none 41% slower.
// Session 9 (2026-11-22, one build with a knob, K = N = 4096 from DRAM, alternating rounds,
// medians of 20-30): the streams that prefetch into L2 (int4 dot path, int8 lookup) prefetch
// every line twice, one tile and half a tile (two columns) ahead. W4A16 +6.5-7.5% on 1 thread
// and +4-7% on 2; W8A16 +3-5% on 1 thread and +1-3% on 2; hot (L3) -0.5%. Prefetching only
// every other line halved the speed (0.45x, like no prefetch at all): a line the prefetch
// misses costs a stall the loop never recovers, and a second prefetch of the same line catches
// those the first one lost. The other pairs of distances tried (two tiles and one, four and
// one, four and two) and three prefetches per line measured the same (+3-8%).
constexpr int64_t kPrefetchTiles = 1;
int64_t prefetch_distance(const WqbmmWeights& w) {
  return kPrefetchTiles * kQuad * (w.shape.int4 ? w.kpad / 2 : w.kpad);
}

float f_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t b_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float h2f(uint16_t h) { return f_of(f16_to_f32(h)); }
float bh2f(uint16_t h) { return f_of(bf16_to_f32(h)); }
float round_f16(float v) { return h2f(f32_to_f16_rne(b_of(v))); }
float round_bf16(float v) { return bh2f(f32_to_bf16_rne(b_of(v))); }

// ---- per (column, group) antiquant formulas -------------------------------------------------
//
// The antiquant W(w) of one column and group is computed by one of these formulas. Each gives
// exactly the reference's value (only the sign of a zero W may differ, which a product and an
// accumulation cannot turn into a different nonzero value); the choice depends on the
// parameters only (never on the CPU), so every kernel gives the same bits.
enum Kind : int {
  kF16Mul,       // fp16 x, no offset: fl16(w * s) (the product is exact in fp32)
  kF16Fma,       // fp16 x, w + off exact (in fp16 for x_dtype, in fp32 for the fp32 reading):
                 // fl16(fma(w, s, off * s)) ((w + off) * s and off * s are exact in fp32)
  kF16AddRound,  // fp16 x, x_dtype: fl16(fl16(fl32(w + off)) * s)
  kF16Fp32,      // fp16 x, fp32 reading: fl16(fl32(fl32(w + off) * s))
  kBf16Mul,      // bf16 x, no offset, |s| >= 2^-126: bf16(fl32(w * s)), never subnormal
  kBf16Fma,      // bf16 x, w + off exact in fp32, off * s exact and normal, |s| 2^min(q, 0) >=
                 // 2^-126 (off = M 2^q): bf16(fma(w, s, off * s)), never subnormal
  kBf16General,  // bf16 x, finite parameters: bf16(fl32(fl32(w + off) * s)) (integer RNE)
  kScalar,       // bf16 x with non-finite parameters: the scalar formula, element by element
};

struct Param {
  float s = 0, off = 0, os = 0;
  int kind = kF16Mul;
};

// off (fp16 or bf16 bits) = M 2^q with M odd (M = 0 for zero); false for Inf/NaN.
bool odd_form(uint16_t bits, bool f16, int64_t* m, int* q) {
  const uint16_t a = bits & 0x7FFF;
  const int mant_bits = f16 ? 10 : 7;
  const uint16_t exp_max = f16 ? 0x1F : 0xFF;
  const int bias = f16 ? 15 : 127;
  const int e = a >> mant_bits;
  if (e == exp_max) return false;
  int64_t mm = a & ((1 << mant_bits) - 1);
  int qq = 1 - bias - mant_bits;
  if (e) {
    mm |= int64_t{1} << mant_bits;
    qq = e - bias - mant_bits;
  }
  if (mm == 0) {
    *m = 0;
    *q = 0;
    return true;
  }
  const int tz = __builtin_ctzll(static_cast<uint64_t>(mm));
  mm >>= tz;
  qq += tz;
  *m = mm;
  *q = qq;
  return true;
}

// w + off is exactly representable with `digits` significand bits for every |w| <= wmax
// (sufficient condition, off = M 2^q): q >= 0: |off| + wmax < 2^digits; q < 0:
// wmax 2^-q + |M| < 2^digits.
bool add_exact(int64_t m, int q, int64_t wmax, int digits) {
  if (m == 0) return true;
  const int64_t lim = int64_t{1} << digits;
  if (q >= 0) return q < 40 && (m << q) + wmax < lim;
  if (-q > 40) return false;
  return (wmax << -q) + m < lim;
}

Param decide_param(const WqbmmWeights& w, int64_t n, int64_t g) {
  const uint16_t* p = w.params.data() + 2 * (n * w.shape.groups + g);
  const bool f16 = w.shape.xdt == DType::kF16;
  Param r;
  r.s = f16 ? h2f(p[0]) : bh2f(p[0]);
  r.off = w.has_offset ? (f16 ? h2f(p[1]) : bh2f(p[1])) : 0.0f;
  const int64_t wmax = w.shape.int4 ? 8 : 128;
  const bool finite = std::isfinite(r.s) && std::isfinite(r.off);
  int64_t m = 0;
  int q = 0;
  const bool off_ok = w.has_offset && odd_form(p[1], f16, &m, &q);
  if (f16) {
    if (!w.has_offset) {
      r.kind = kF16Mul;
    } else if (finite && off_ok &&
               add_exact(m, q, wmax, w.antiquant == WqbmmAntiquant::kXDtype ? 11 : 24)) {
      r.kind = kF16Fma;
      r.os = r.off * r.s;  // exact: two 11-bit significands, far from the fp32 range limits
    } else {
      r.kind = w.antiquant == WqbmmAntiquant::kXDtype ? kF16AddRound : kF16Fp32;
    }
    return r;
  }
  const float kMinNormal = 1.17549435e-38f;  // 2^-126
  if (!finite) {
    r.kind = kScalar;
  } else if (!w.has_offset) {
    r.kind = std::fabs(r.s) >= kMinNormal ? kBf16Mul : kBf16General;
  } else {
    r.kind = kBf16General;
    r.os = r.off * r.s;  // two 8-bit significands: exact unless it underflows or overflows
    const bool os_ok =
        r.os == 0 ? r.off == 0 || r.s == 0 : std::isfinite(r.os) && std::fabs(r.os) >= kMinNormal;
    // |s| 2^min(q, 0) >= 2^-126, i.e. the exponent of |s| is at least -126 - min(q, 0).
    const int exp_s = static_cast<int>((b_of(r.s) >> 23) & 0xFF) - 127;
    const bool no_subnormal = std::fabs(r.s) >= kMinNormal && exp_s >= -126 - std::min(q, 0);
    if (off_ok && os_ok && no_subnormal && add_exact(m, q, wmax, 24)) r.kind = kBf16Fma;
  }
  return r;
}

// The parameters of a column and group with the formula decided at preparation.
Param param_of(const WqbmmWeights& w, int64_t n, int64_t g) {
  const float* p = w.params_f32.data() + 2 * (n * w.shape.groups + g);
  Param r;
  r.s = p[0];
  r.off = p[1];
  r.kind = w.kinds[static_cast<size_t>(n * w.shape.groups + g)];
  if (r.kind == kF16Fma || r.kind == kBf16Fma) r.os = r.off * r.s;
  return r;
}

// The scale and offset of a column and group as fp32 (exact widening; offset 0 when absent).
void raw_params(const WqbmmWeights& w, int64_t n, int64_t g, float* s, float* off) {
  const float* p = w.params_f32.data() + 2 * (n * w.shape.groups + g);
  *s = p[0];
  *off = p[1];
}

// The antiquantized weight value of integer w (exactly the reference's roundings).
float antiquant_scalar(const WqbmmWeights& w, float wv, float s, float off) {
  if (w.shape.xdt == DType::kF16 && w.antiquant == WqbmmAntiquant::kXDtype) {
    float a = wv;
    if (w.has_offset) a = round_f16(wv + off);
    return round_f16(a * s);
  }
  float a = wv;
  if (w.has_offset) a = wv + off;
  const float r = a * s;
  return w.shape.xdt == DType::kF16 ? round_f16(r) : round_bf16(r);
}

// The per-kind formula, scalar (the portable kernel and the int4 tables of kScalar).
float aq_kind(const WqbmmWeights& w, float wv, const Param& p) {
  switch (p.kind) {
    case kF16Mul:
      return round_f16(wv * p.s);
    case kF16Fma:
      return round_f16(std::fma(wv, p.s, p.os));
    case kF16AddRound:
      return round_f16(round_f16(wv + p.off) * p.s);
    case kF16Fp32: {
      const float a = wv + p.off;
      return round_f16(a * p.s);
    }
    case kBf16Mul:
      return round_bf16(wv * p.s);
    case kBf16Fma:
      return round_bf16(std::fma(wv, p.s, p.os));
    case kBf16General: {
      const float a = wv + p.off;
      return round_bf16(a * p.s);
    }
    default:
      return antiquant_scalar(w, wv, p.s, p.off);
  }
}

int nibble_value(int i) { return i < 8 ? i : i - 16; }

// The k offset (within a block of 32) of lane j of accumulator `half` (0 or 1).
//   int8, fp16 x:  half * 16 + j
//   int8, bf16 x:  the order of vcvtne2ps2bf16 + vpunpck{l,h}wd: half 0 lanes take k 0-3, 8-11,
//                  16-19, 24-27; half 1 lanes take k 4-7, 12-15, 20-23, 28-31
//   int4:          2j + half (even k in acc0, odd k in acc1)
int lane_k(const WqbmmShape& s, int half, int j) {
  if (s.int4) return 2 * j + half;
  if (s.xdt == DType::kF16) return half * 16 + j;
  return 8 * (j / 4) + 4 * half + j % 4;
}

// ---- the portable kernel (the same lanes and order, scalar)
// --------------------------------------

void column_portable(const WqbmmWeights& w, int64_t n, const float* const* xrows, int64_t mrows,
                     float* out /* [mrows] */) {
  const WqbmmShape& s = w.shape;
  const int64_t nb = (s.k + kBlock - 1) / kBlock;
  std::vector<float> acc(static_cast<size_t>(mrows * 32), 0.0f);
  float table[16];
  Param p;
  int64_t group = -1;
  int lk[32];
  for (int l = 0; l < 32; ++l) lk[l] = lane_k(s, l / 16, l % 16);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k0 = b * kBlock;
    const int64_t g = s.group_of(k0);
    if (g != group) {
      group = g;
      if (s.int4) {
        float sv, ov;
        raw_params(w, n, g, &sv, &ov);
        for (int i = 0; i < 16; ++i)
          table[i] = antiquant_scalar(w, static_cast<float>(nibble_value(i)), sv, ov);
      } else {
        p = param_of(w, n, g);
      }
    }
    float wv[32];
    for (int l = 0; l < 32; ++l) {
      const int64_t k = k0 + lk[l];
      if (s.int4) {
        const uint8_t byte = w.packed[static_cast<size_t>(n * (w.kpad / 2) + k / 2)];
        wv[l] = table[k % 2 ? byte >> 4 : byte & 0xF];
      } else {
        const auto* col = reinterpret_cast<const int8_t*>(w.packed.data() + n * w.kpad);
        wv[l] = aq_kind(w, col[k], p);
      }
    }
    for (int64_t m = 0; m < mrows; ++m)
      for (int l = 0; l < 32; ++l) {
        if (k0 + lk[l] >= s.k) continue;
        // xrows hold x in lane order (x[k0 + lane_k(l)] at k0 + l).
        float& a = acc[static_cast<size_t>(m * 32 + l)];
        a = std::fma(wv[l], xrows[m][k0 + l], a);
      }
  }
  for (int64_t m = 0; m < mrows; ++m) {
    float t[16];
    for (int j = 0; j < 16; ++j)
      t[j] = acc[static_cast<size_t>(m * 32 + j)] + acc[static_cast<size_t>(m * 32 + 16 + j)];
    for (int j = 0; j < 8; ++j) t[j] = t[j] + t[j + 8];
    for (int j = 0; j < 4; ++j) t[j] = t[j] + t[j + 4];
    for (int j = 0; j < 2; ++j) t[j] = t[j] + t[j + 2];
    out[m] = t[0] + t[1];
  }
}

// ---- the AVX-512 kernel -------------------------------------------------------------------------

#define QCONF_INLINE inline __attribute__((always_inline))

QCONF_AVX512 QCONF_INLINE __m512 round16_v(__m512 v) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
// Round to nearest even to bf16 on the bits (finite values and infinities; no NaN here).
QCONF_AVX512 QCONF_INLINE __m512 round_bf16_v(__m512 v) {
  const __m512i b = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb);
  return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// The 16-entry table T[nibble] of one column and group (int4), by the general formula (exact
// for every input, NaN and Inf included): fp16 x_dtype: fl16(fl16(v + off) * s); otherwise
// round(fl32(fl32(v + off) * s)) to the x dtype. The portable kernel uses the same formula
// (antiquant_scalar), so the tables are identical bit for bit (NaN payloads aside).
QCONF_AVX512 QCONF_INLINE __m512 table_v(const WqbmmWeights& w, float s, float off) {
  const __m512 v = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
  const __m512 vs = _mm512_set1_ps(s), voff = _mm512_set1_ps(off);
  if (w.shape.xdt == DType::kF16) {
    __m512 a = v;
    if (w.has_offset) {
      a = _mm512_add_ps(v, voff);
      if (w.antiquant == WqbmmAntiquant::kXDtype) a = round16_v(a);
    }
    return round16_v(_mm512_mul_ps(a, vs));
  }
  const __m512 a = w.has_offset ? _mm512_add_ps(v, voff) : v;
  return round_bf16_v(_mm512_mul_ps(a, vs));
}

// Broadcast constants of one column and group.
struct VParam {
  __m512 s, off, os;
};
QCONF_AVX512 QCONF_INLINE VParam vparam(const Param& p) {
  return {_mm512_set1_ps(p.s), _mm512_set1_ps(p.off), _mm512_set1_ps(p.os)};
}

// fp32 r (before the x-dtype rounding) of the formula kKind, on 16 lanes of w.
template <int kKind>
QCONF_AVX512 QCONF_INLINE __m512 pre_round_v(__m512 w, const VParam& p) {
  if constexpr (kKind == kF16Fma || kKind == kBf16Fma) {
    return _mm512_fmadd_ps(w, p.s, p.os);
  } else if constexpr (kKind == kF16AddRound) {
    return _mm512_mul_ps(round16_v(_mm512_add_ps(w, p.off)), p.s);
  } else if constexpr (kKind == kF16Fp32 || kKind == kBf16General) {
    return _mm512_mul_ps(_mm512_add_ps(w, p.off), p.s);
  } else {  // kF16Mul, kBf16Mul
    return _mm512_mul_ps(w, p.s);
  }
}

// 32 int8 weights of one block (column pointer at the block) as two vectors in lane order (see
// lane_k), by the formula kKind (not kScalar).
template <int kKind, bool kHasBf16Cvt>
QCONF_AVX512 QCONF_INLINE void weights_int8_v(const int8_t* col, const VParam& p, __m512* w0,
                                              __m512* w1) {
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col));
  const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(bytes)));
  const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(bytes, 1)));
  const __m512 ra = pre_round_v<kKind>(a, p), rb = pre_round_v<kKind>(b, p);
  if constexpr (kKind < kBf16Mul) {
    *w0 = round16_v(ra);
    *w1 = round16_v(rb);
  } else if constexpr (kHasBf16Cvt && kKind != kBf16General) {
    // Never subnormal here (Param's conditions): vcvtne2ps2bf16 (which flushes subnormal inputs
    // to zero) rounds to nearest even like the reference; unpacking against zero puts each bf16
    // in the high half of an fp32 lane (the lane order of lane_k).
    const __m512i zero = _mm512_setzero_si512();
    const __m512i h = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(rb, ra));
    *w0 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, h));
    *w1 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, h));
  } else {
    const __m512 qa = round_bf16_v(ra), qb = round_bf16_v(rb);
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i hi =
        _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    *w0 = _mm512_permutex2var_ps(qa, lo, qb);
    *w1 = _mm512_permutex2var_ps(qa, hi, qb);
  }
}

// Any formula, chosen at run time per column (columns of a tile whose formulas differ).
template <bool kBf16, bool kHasBf16Cvt>
QCONF_AVX512 QCONF_INLINE void weights_int8_any(const WqbmmWeights& w, const int8_t* col,
                                                const Param& p, const VParam& vp, __m512* w0,
                                                __m512* w1) {
  if constexpr (!kBf16) {
    switch (p.kind) {
      case kF16Mul:
        return weights_int8_v<kF16Mul, false>(col, vp, w0, w1);
      case kF16Fma:
        return weights_int8_v<kF16Fma, false>(col, vp, w0, w1);
      case kF16AddRound:
        return weights_int8_v<kF16AddRound, false>(col, vp, w0, w1);
      default:
        return weights_int8_v<kF16Fp32, false>(col, vp, w0, w1);
    }
  } else {
    switch (p.kind) {
      case kBf16Mul:
        return weights_int8_v<kBf16Mul, kHasBf16Cvt>(col, vp, w0, w1);
      case kBf16Fma:
        return weights_int8_v<kBf16Fma, kHasBf16Cvt>(col, vp, w0, w1);
      case kBf16General:
        return weights_int8_v<kBf16General, kHasBf16Cvt>(col, vp, w0, w1);
      default: {
        alignas(64) float t[32];
        for (int l = 0; l < 32; ++l) t[l] = aq_kind(w, col[lane_k(w.shape, l / 16, l % 16)], p);
        *w0 = _mm512_load_ps(t);
        *w1 = _mm512_load_ps(t + 16);
      }
    }
  }
}

struct Masks {
  __mmask16 tail0 = 0, tail1 = 0;  // lanes of the last block that are < K
  int64_t last_block = -1;         // -1: K is a multiple of 32
};

Masks masks_of(const WqbmmWeights& w) {
  Masks mk;
  const int64_t nb = (w.shape.k + kBlock - 1) / kBlock;
  const int64_t rem = w.shape.k - (nb - 1) * kBlock;  // 1..32
  if (rem == kBlock) return mk;
  mk.last_block = nb - 1;
  for (int j = 0; j < 16; ++j) {
    if (lane_k(w.shape, 0, j) < rem) mk.tail0 = static_cast<__mmask16>(mk.tail0 | (1u << j));
    if (lane_k(w.shape, 1, j) < rem) mk.tail1 = static_cast<__mmask16>(mk.tail1 | (1u << j));
  }
  return mk;
}

QCONF_AVX512 QCONF_INLINE float reduce_v(__m512 a0, __m512 a1) {
  const __m512 t = _mm512_add_ps(a0, a1);
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(t),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
  return _mm_cvtss_f32(q);
}

// The multiply-accumulate of one block: acc[(m * CB + c) * 2 + h] += wv[c][h] * x[m] (masked on
// the last, partial block).
template <int CB, int MB>
QCONF_AVX512 QCONF_INLINE void fma_block(const __m512 (&wv)[CB][2], const float* const* x,
                                         int64_t k0, bool tail, const Masks& mk,
                                         __m512 (&acc)[MB * CB * 2]) {
  for (int m = 0; m < MB; ++m) {
    const __m512 x0 = _mm512_loadu_ps(x[m] + k0), x1 = _mm512_loadu_ps(x[m] + k0 + 16);
    for (int c = 0; c < CB; ++c) {
      __m512& a0 = acc[(m * CB + c) * 2];
      __m512& a1 = acc[(m * CB + c) * 2 + 1];
      if (!tail) {
        a0 = _mm512_fmadd_ps(wv[c][0], x0, a0);
        a1 = _mm512_fmadd_ps(wv[c][1], x1, a1);
      } else {
        a0 = _mm512_mask3_fmadd_ps(wv[c][0], x0, a0, mk.tail0);
        a1 = _mm512_mask3_fmadd_ps(wv[c][1], x1, a1, mk.tail1);
      }
    }
  }
}

// int8 blocks [b0, b1) of one group where every column uses the formula kKind.
template <int kKind, bool kHasBf16Cvt, int CB, int MB>
QCONF_AVX512 QCONF_INLINE void int8_blocks(const int8_t* const (&col)[CB], const Param* p,
                                           const float* const* x, const Masks& mk, int64_t b0,
                                           int64_t b1, int64_t pf, __m512 (&acc)[MB * CB * 2]) {
  VParam vp[CB];
  for (int c = 0; c < CB; ++c) vp[c] = vparam(p[c]);
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t k0 = b * kBlock;
    __m512 wv[CB][2];
    for (int c = 0; c < CB; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(col[c] + k0 + pf), _MM_HINT_T0);
      weights_int8_v<kKind, kHasBf16Cvt>(col[c] + k0, vp[c], &wv[c][0], &wv[c][1]);
    }
    fma_block<CB, MB>(wv, x, k0, b == mk.last_block, mk, acc);
  }
}

// CB columns starting at n0, MB rows: out[m * CB + c] = the dot product of row m and column
// n0 + c, in the order of the header comment. Groups are walked with the accumulators in
// registers; per group, the columns' formula is a compile-time constant when they agree.
template <int CB, int MB, bool kInt4, bool kBf16, bool kHasBf16Cvt>
QCONF_AVX512 void tile_avx512(const WqbmmWeights& w, int64_t n0, const float* const* x,
                              const Masks& mk, float* out) {
  const WqbmmShape& s = w.shape;
  const int64_t nb = (s.k + kBlock - 1) / kBlock;
  const int64_t bpg = s.mode == WqbmmScaleMode::kPerGroup ? s.group_size / kBlock : nb;
  const int64_t pf = prefetch_distance(w);
  __m512 acc[MB * CB * 2];
#pragma GCC unroll 32
  for (int i = 0; i < MB * CB * 2; ++i) acc[i] = _mm512_setzero_ps();
  const int8_t* col8[CB];
  const uint8_t* col4[CB];
  for (int c = 0; c < CB; ++c) {
    col8[c] = reinterpret_cast<const int8_t*>(w.packed.data() + (n0 + c) * w.kpad);
    col4[c] = w.packed.data() + (n0 + c) * (w.kpad / 2);
  }
  for (int64_t g = 0, b0 = 0; b0 < nb; ++g, b0 += bpg) {
    const int64_t b1 = std::min(nb, b0 + bpg);
    if constexpr (kInt4) {
      __m512 tab[CB];
      for (int c = 0; c < CB; ++c) {
        float sv, ov;
        raw_params(w, n0 + c, g, &sv, &ov);
        tab[c] = table_v(w, sv, ov);
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t k0 = b * kBlock;
        __m512 wv[CB][2];
        for (int c = 0; c < CB; ++c) {
          if (b % 2 == 0)
            _mm_prefetch(reinterpret_cast<const char*>(col4[c] + k0 / 2 + pf), _MM_HINT_T1);
          const __m512i d = _mm512_cvtepu8_epi32(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(col4[c] + k0 / 2)));
          wv[c][0] = _mm512_permutexvar_ps(d, tab[c]);  // vpermps reads index bits 0-3
          wv[c][1] = _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab[c]);
        }
        fma_block<CB, MB>(wv, x, k0, b == mk.last_block, mk, acc);
      }
    } else {
      Param p[CB];
      bool uniform = true;
      for (int c = 0; c < CB; ++c) {
        p[c] = param_of(w, n0 + c, g);
        uniform = uniform && p[c].kind == p[0].kind;
      }
      const int kind = uniform ? p[0].kind : -1;
      if constexpr (!kBf16) {
        if (kind == kF16Mul)
          int8_blocks<kF16Mul, false, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else if (kind == kF16Fma)
          int8_blocks<kF16Fma, false, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else if (kind == kF16AddRound)
          int8_blocks<kF16AddRound, false, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else if (kind == kF16Fp32)
          int8_blocks<kF16Fp32, false, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else
          goto mixed;
        continue;
      } else {
        if (kind == kBf16Fma)
          int8_blocks<kBf16Fma, kHasBf16Cvt, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else if (kind == kBf16Mul)
          int8_blocks<kBf16Mul, kHasBf16Cvt, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else if (kind == kBf16General)
          int8_blocks<kBf16General, kHasBf16Cvt, CB, MB>(col8, p, x, mk, b0, b1, pf, acc);
        else
          goto mixed;
        continue;
      }
    mixed:
      VParam vp[CB];
      for (int c = 0; c < CB; ++c) vp[c] = vparam(p[c]);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t k0 = b * kBlock;
        __m512 wv[CB][2];
        for (int c = 0; c < CB; ++c)
          weights_int8_any<kBf16, kHasBf16Cvt>(w, col8[c] + k0, p[c], vp[c], &wv[c][0], &wv[c][1]);
        fma_block<CB, MB>(wv, x, k0, b == mk.last_block, mk, acc);
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int c = 0; c < CB; ++c)
      out[m * CB + c] = reduce_v(acc[(m * CB + c) * 2], acc[(m * CB + c) * 2 + 1]);
}

// ---- the bf16 dot-product path (vdpbf16ps) ------------------------------------------------------
//
// For bf16 x when every W is a normal number or zero (WqbmmWeights::dot_ok) and no x is subnormal:
// the weights are rounded to bf16 words and multiplied by the bf16 x words with vdpbf16ps, which
// adds the two products of a pair to the fp32 accumulator one after the other (the odd element
// first), each sum rounded to nearest even and flushed to zero below 2^-126 (a flush the bound
// covers, docs/bounds.md). Lanes:
//   int8: 64-k blocks of two operands, one accumulator (see "int8 weights on the dot path");
//   int4: 128-k superblocks, four accumulators (see "int4 weights on the dot path" below);
// padded k (x = 0) add zero products; then the reduction of the FMA path (int8: acc1 = 0; int4:
// acc0 + acc2 and acc1 + acc3).
// The portable kernel emulates this order exactly when no product or partial sum falls below
// 2^-126 (in that range the instruction's internal handling is not documented precisely).

constexpr int64_t kDotBlock8 = 64, kDotBlock4 = 128;

// ---- int8 weights on the dot path ---------------------------------------------------------------
//
// 64-k blocks (k0 = 64b) of two 32-word operands, in the order of the byte-to-word interleave
// within 128-bit lanes (vpunpck{l,h}bw) that the table lookup below produces: operand A word i
// is the weight of k0 + 16 (i / 8) + i % 8, operand B word i that of k0 + 8 + 16 (i / 8) + i % 8.
// The x words are laid out to match (wqbmm_gemm_acc): position k0 + i holds the x of A's word i,
// k0 + 32 + i that of B's. One accumulator per column: acc = dp(dp(acc, A, xA), B, xB), so lane
// j takes A's words 2j + 1, 2j, then B's words 2j + 1, 2j. (Same-process A/B, W8A16 K = N =
// 4096, one Zen 4 thread, 2026-11-22 session 6: the lookup without the byte permute that put
// the words back in k order, +10% from DRAM, +14% from L2.)

// The operands A and B of one 64-k block by conversion (vpmovsxbd, vcvtdq2ps, the formula kKind,
// vcvtne2ps2bf16): one qword permute puts the bytes of A's words in 128-bit lanes 0-1 and B's in
// lanes 2-3.
template <int kKind, int kLane>
QCONF_AVX512 QCONF_INLINE __m512 lane_values(__m512i bytes, const VParam& p) {
  const __m128i q = _mm512_extracti32x4_epi32(bytes, kLane);
  return pre_round_v<kKind>(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), p);
}
template <int kKind>
QCONF_AVX512 QCONF_INLINE void bf16_words_int8(const int8_t* col, const VParam& p, __m512i* a,
                                               __m512i* b) {
  const __m512i bytes =
      _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_loadu_si512(col));
  *a = reinterpret_cast<__m512i>(
      _mm512_cvtne2ps_pbh(lane_values<kKind, 1>(bytes, p), lane_values<kKind, 0>(bytes, p)));
  *b = reinterpret_cast<__m512i>(
      _mm512_cvtne2ps_pbh(lane_values<kKind, 3>(bytes, p), lane_values<kKind, 2>(bytes, p)));
}

// ---- int8 weights by table lookup (AVX-512 VBMI) ------------------------------------------------
//
// On the dot path every W of a column and group is one of 256 bf16 words, a function of the
// weight byte only. With VBMI the words are looked up instead of computed: per (column, group)
// the 256-word table T[u] = bf16(pre_round(int8(u))) (the same formula, the same instructions as
// bf16_words_int8, so the same bits) is built in registers as its 256 low bytes (4 registers)
// and its 256 high bytes (4 registers); per 64 weights two masked vpermi2b per half look up the
// low and the high bytes (bit 7 of the byte picks the table half), and the two interleaves give
// the operands A and B of bf16_words_int8, so the summation order and the result are those of
// the conversion path bit for bit. Per 64 weights: 1 vpmovb2m, 4 vpermi2b, 2 vpunpck,
// 2 vdpbf16ps, instead of 1 vpermq, 4 vpmovsxbd, 4 vcvtdq2ps, 4 FMA, 2 vcvtne2ps2bf16,
// 2 vdpbf16ps. Building a table costs ~50 instructions, so the lookup is used only when a group
// spans at least kLutMinK k (per-channel scales: the whole column).
#define QCONF_AVX512_VBMI                                                \
  __attribute__((                                                        \
      target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi," \
             "f16c,fma")))

constexpr int64_t kLutMinK = 512;

// The fp32 value of each byte u read as int8, u = 0..255.
struct ByteValues {
  alignas(64) float v[256];
  constexpr ByteValues() : v() {
    for (int u = 0; u < 256; ++u) v[u] = static_cast<float>(u < 128 ? u : u - 256);
  }
};
constexpr ByteValues kByteValues;

// The byte indices the table build permutes with, computed once at compile time: even[i] = 2i
// and odd[i] = 2i + 1 (the low and the high byte of word i of a 64-word pair).
struct LutIndices {
  alignas(64) uint8_t even[64];
  alignas(64) uint8_t odd[64];
  constexpr LutIndices() : even(), odd() {
    for (int i = 0; i < 64; ++i) {
      even[i] = static_cast<uint8_t>(2 * i);
      odd[i] = static_cast<uint8_t>(2 * i + 1);
    }
  }
};
constexpr LutIndices kLutIndices;

std::atomic<bool> g_disable_lut{false};

template <int kKind>
QCONF_AVX512_VBMI QCONF_INLINE void lut_build_kind(const VParam& p, __m512i (&lo)[4],
                                                   __m512i (&hi)[4]) {
  __m512i words[8];
  for (int t = 0; t < 8; ++t) {
    const __m512 a = pre_round_v<kKind>(_mm512_load_ps(kByteValues.v + 32 * t), p);
    const __m512 b = pre_round_v<kKind>(_mm512_load_ps(kByteValues.v + 32 * t + 16), p);
    words[t] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
  }
  const __m512i ie = _mm512_load_si512(kLutIndices.even);
  const __m512i io = _mm512_load_si512(kLutIndices.odd);
  for (int q = 0; q < 4; ++q) {
    lo[q] = _mm512_permutex2var_epi8(words[2 * q], ie, words[2 * q + 1]);
    hi[q] = _mm512_permutex2var_epi8(words[2 * q], io, words[2 * q + 1]);
  }
}

// The 64-k blocks [b0, b1) of one group on the dot path, CB columns (formulas kBf16Fma or
// kBf16Mul, dot_ok), MB rows, accumulating into acc like tile_dot8. NC columns at a time (NC = 2
// for one row: two independent vdpbf16ps chains; one column for several rows): the two tables
// of a column take 8 of the 32 vector registers; the tables of four columns would not fit, and
// reloading them from the stack cost as much as the conversion they replace.
template <int CB, int MB>
QCONF_AVX512_VBMI void int8_dot_lut(const int8_t* const (&col)[CB], const Param* p,
                                    const uint16_t* const* xw, int64_t b0, int64_t b1, int64_t pf,
                                    __m512 (&acc)[MB * CB]) {
  constexpr int NC = MB == 1 && CB % 2 == 0 ? 2 : 1;
  for (int c0 = 0; c0 < CB; c0 += NC) {
    __m512i lo[NC][4], hi[NC][4];
    __m512 a[MB][NC];
    for (int i = 0; i < NC; ++i) {
      const VParam vp = vparam(p[c0 + i]);
      if (p[c0 + i].kind == kBf16Fma)
        lut_build_kind<kBf16Fma>(vp, lo[i], hi[i]);
      else
        lut_build_kind<kBf16Mul>(vp, lo[i], hi[i]);
      for (int m = 0; m < MB; ++m) a[m][i] = acc[m * CB + c0 + i];
    }
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t k0 = b * kDotBlock8;
      __m512i x0[MB], x1[MB];
      for (int m = 0; m < MB; ++m) {
        x0[m] = _mm512_loadu_si512(xw[m] + k0);
        x1[m] = _mm512_loadu_si512(xw[m] + k0 + 32);
      }
      for (int i = 0; i < NC; ++i) {
        const int8_t* cp = col[c0 + i];
        _mm_prefetch(reinterpret_cast<const char*>(cp + k0 + pf), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(cp + k0 + pf / 2), _MM_HINT_T1);
        const __m512i u = _mm512_loadu_si512(reinterpret_cast<const void*>(cp + k0));
        const __mmask64 neg = _mm512_movepi8_mask(u);
        const __mmask64 pos = _knot_mask64(neg);
        __m512i l = _mm512_mask2_permutex2var_epi8(lo[i][0], u, pos, lo[i][1]);
        l = _mm512_mask2_permutex2var_epi8(lo[i][2], l, neg, lo[i][3]);
        __m512i h = _mm512_mask2_permutex2var_epi8(hi[i][0], u, pos, hi[i][1]);
        h = _mm512_mask2_permutex2var_epi8(hi[i][2], h, neg, hi[i][3]);
        const __m512i wa = _mm512_unpacklo_epi8(l, h), wb = _mm512_unpackhi_epi8(l, h);
        for (int m = 0; m < MB; ++m) {
          a[m][i] = _mm512_dpbf16_ps(a[m][i], reinterpret_cast<__m512bh>(wa),
                                     reinterpret_cast<__m512bh>(x0[m]));
          a[m][i] = _mm512_dpbf16_ps(a[m][i], reinterpret_cast<__m512bh>(wb),
                                     reinterpret_cast<__m512bh>(x1[m]));
        }
      }
    }
    for (int i = 0; i < NC; ++i)
      for (int m = 0; m < MB; ++m) acc[m * CB + c0 + i] = a[m][i];
  }
}

bool use_lut() { return !g_disable_lut.load() && cpu_features().avx512vbmi; }

// Prefetches the next tile's parameter pairs: columns [n0 + CB, n0 + 2 CB), all groups
// (contiguous in `params`, [N][groups][2]).
template <int CB>
QCONF_AVX512 QCONF_INLINE void prefetch_next_params(const std::vector<float>& params,
                                                    int64_t groups, int64_t n0) {
  const int64_t size = static_cast<int64_t>(params.size());
  const int64_t first = 2 * std::min<int64_t>((n0 + CB) * groups, size / 2);
  const int64_t last = std::min<int64_t>(first + 2 * CB * groups, size);
  for (int64_t i = first; i < last; i += 16)
    _mm_prefetch(reinterpret_cast<const char*>(params.data() + i), _MM_HINT_T0);
}

// int8 weights on the dot path: CB columns starting at n0, MB rows, out[m * CB + c].
template <int CB, int MB>
QCONF_AVX512 void tile_dot8(const WqbmmWeights& w, int64_t n0, const uint16_t* const* xw,
                            float* out) {
  const WqbmmShape& s = w.shape;
  const int64_t bk = kDotBlock8;
  const int64_t nb = w.kpad / bk;
  const int64_t bpg = s.mode == WqbmmScaleMode::kPerGroup ? s.group_size / bk : nb;
  const int64_t pf = prefetch_distance(w);
  prefetch_next_params<CB>(w.params_f32, s.groups, n0);
  __m512 acc[MB * CB];
#pragma GCC unroll 32
  for (int i = 0; i < MB * CB; ++i) acc[i] = _mm512_setzero_ps();
  const int8_t* col[CB];
  for (int c = 0; c < CB; ++c)
    col[c] = reinterpret_cast<const int8_t*>(w.packed.data() + (n0 + c) * w.kpad);
  for (int64_t g = 0, b0 = 0; b0 < nb; ++g, b0 += bpg) {
    const int64_t b1 = std::min(nb, b0 + bpg);
    Param p[CB];
    VParam vp[CB];
    bool all_fma = true;
    for (int c = 0; c < CB; ++c) {
      p[c] = param_of(w, n0 + c, g);
      vp[c] = vparam(p[c]);
      all_fma = all_fma && p[c].kind == kBf16Fma;
    }
    if ((b1 - b0) * bk >= kLutMinK && use_lut()) {
      int8_dot_lut<CB, MB>(col, p, xw, b0, b1, pf, acc);
      continue;
    }
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t k0 = b * bk;
      __m512i wa[CB], wb[CB];
      for (int c = 0; c < CB; ++c) {
        _mm_prefetch(reinterpret_cast<const char*>(col[c] + k0 + pf), _MM_HINT_T0);
        if (all_fma || p[c].kind == kBf16Fma)
          bf16_words_int8<kBf16Fma>(col[c] + k0, vp[c], &wa[c], &wb[c]);
        else
          bf16_words_int8<kBf16Mul>(col[c] + k0, vp[c], &wa[c], &wb[c]);
      }
      for (int m = 0; m < MB; ++m) {
        const __m512i x0 = _mm512_loadu_si512(xw[m] + k0);
        const __m512i x1 = _mm512_loadu_si512(xw[m] + k0 + 32);
        for (int c = 0; c < CB; ++c) {
          __m512& a = acc[m * CB + c];
          a = _mm512_dpbf16_ps(a, reinterpret_cast<__m512bh>(wa[c]),
                               reinterpret_cast<__m512bh>(x0));
          a = _mm512_dpbf16_ps(a, reinterpret_cast<__m512bh>(wb[c]),
                               reinterpret_cast<__m512bh>(x1));
        }
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int c = 0; c < CB; ++c) out[m * CB + c] = reduce_v(acc[m * CB + c], _mm512_setzero_ps());
}

// ---- int4 weights on the dot path ---------------------------------------------------------------
//
// A column's int4 weights are read 128 k (one 64-byte line) at a time as 32 16-bit words: word i
// holds the codes of k0 + 4i + t at bits 4t..4t+3 (t = 0..3; the packed layout has two k per
// byte, the even k in the low nibble). vpermw reads bits 0-4 of each index word, so with a table
// holding T[0..15] twice the words shifted right by 4t look up operand t: word i = W[k0 + 4i + t].
// Per 128 weights: 1 load, 3 shifts, 4 vpermw, 4 vdpbf16ps (64-k blocks took one more zero
// extension and one more shift). The x words are laid out to match (wqbmm_gemm_acc): position
// k0 + 32t + i holds x[k0 + 4i + t]. A group size that is a multiple of 64 but not of 128 splits
// a superblock between two groups: the upper 16 words (k >= k0 + 64) are looked up in the second
// group's table (a masked vpermw). Accumulators: four per column, operand t into acc_t, lane j of
// acc_t takes k0 + 8j + 4 + t, then k0 + 8j + t (the odd element of a pair first); padded k
// (x = 0) add zero products; then reduce_v(acc_0 + acc_2, acc_1 + acc_3).
//
// Measured (same-process A/B of the two builds, K = N = 4096, group 128, one Zen 4 thread,
// weights from DRAM, 2026-11-22 session 6): the superblocks +3-7% over 64-k blocks; tables by
// one FMA from (scale, offset * scale) with one loop over superblocks +11%; the tables built one
// group ahead +12% (21.3 -> 24.0 GB/s), then the values two groups ahead and the conversion one
// ahead +4%. With no table build at all the loop would run another ~15% faster: a table costs
// 3 instructions, but its load -> FMA -> conversion -> vpermw latency stalls the lookups when it
// is built just before them. The whole table built two groups ahead, or two columns sharing one
// conversion, was slower (-3%, -5%).
//
// The table's values are (code + offset) * scale, an add and a multiply that each take one
// parameter as an embedded broadcast ({1to16}), instead of one FMA from (scale, offset *
// scale). On Zen 4 a separate vbroadcastss to a zmm register runs on the shuffle pipes that
// vpermw uses (a loop of broadcasts and vpermw: 1 per cycle together, as vpermw alone), and an
// FMA can embed only one of its two broadcast operands. Measured (same-process A/B, K = N =
// 4096, group 128, 2026-11-23 session 10, medians of 25 rounds): one thread +3.5-4.5% from
// DRAM, +4.3% hot in L3; two threads (bound by memory) +0.3%.

// The 32 words T[0..15] twice of one column and group, from its pair p of
// WqbmmWeights::params_f32 (scale, offset; offset 0 without one). Two steps: the fp32 values of
// the 16 codes, fl32(fl32(w + off) * s) as in the reference (kBf16General), then the words. On
// the dot path every column and group is kBf16Mul (off = 0) or kBf16Fma (w + off exact), see
// wqbmm_prepare_weights, and the values before the bf16 rounding are never subnormal (dot_ok),
// so vcvtne2ps2bf16 rounds them like the reference.
QCONF_AVX512 QCONF_INLINE __m512 int4_table_values(const float* p) {
  const __m512 v = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
  return _mm512_mul_ps(_mm512_add_ps(v, _mm512_set1_ps(p[1])), _mm512_set1_ps(p[0]));
}
QCONF_AVX512 QCONF_INLINE __m512i int4_table_words(__m512 r) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(r, r));
}
QCONF_AVX512 QCONF_INLINE __m512i int4_table_words(const float* p) {
  return int4_table_words(int4_table_values(p));
}

// One 128-k superblock of CB columns and MB rows (see above).
template <int CB, int MB, bool kSplit>
QCONF_AVX512 QCONF_INLINE void dot4_block(const uint8_t* const (&col)[CB], const __m512i (&tab)[CB],
                                          const __m512i (&tab_hi)[CB], const uint16_t* const* xw,
                                          int64_t k0, int64_t pf, __m512 (&acc)[MB * CB * 4]) {
  __m512i op[CB][4];
  for (int c = 0; c < CB; ++c) {
    const uint8_t* line = col[c] + k0 / 2;
    _mm_prefetch(reinterpret_cast<const char*>(line + pf), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(line + pf / 2), _MM_HINT_T1);
    const __m512i wd = _mm512_loadu_si512(line);
    const __m512i idx[4] = {wd, _mm512_srli_epi16(wd, 4), _mm512_srli_epi16(wd, 8),
                            _mm512_srli_epi16(wd, 12)};
    for (int t = 0; t < 4; ++t) {
      op[c][t] = _mm512_permutexvar_epi16(idx[t], tab[c]);
      if constexpr (kSplit)
        op[c][t] = _mm512_mask_permutexvar_epi16(op[c][t], 0xFFFF0000u, idx[t], tab_hi[c]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int t = 0; t < 4; ++t) {
      const __m512i x = _mm512_loadu_si512(xw[m] + k0 + 32 * t);
      for (int c = 0; c < CB; ++c) {
        __m512& a = acc[(m * CB + c) * 4 + t];
        a = _mm512_dpbf16_ps(a, reinterpret_cast<__m512bh>(op[c][t]),
                             reinterpret_cast<__m512bh>(x));
      }
    }
}

// The end of an int4 dot-path tile: out[m * CB + c] = reduce_v(acc_0 + acc_2, acc_1 + acc_3).
template <int CB, int MB>
QCONF_AVX512 QCONF_INLINE void reduce_dot4(const __m512 (&acc)[MB * CB * 4], float* out) {
  for (int m = 0; m < MB; ++m)
    for (int c = 0; c < CB; ++c) {
      const __m512* a = acc + (m * CB + c) * 4;
      out[m * CB + c] = reduce_v(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
    }
}

// One step of dot4_groups' table pipeline at group g: g's words move into tab, g + 1's values
// are converted into next, and g + 2's values computed while there is a group g + 2.
template <int CB>
QCONF_AVX512 QCONF_INLINE void dot4_next_group(const float* const (&par)[CB], int64_t g,
                                               int64_t last_g, __m512i (&tab)[CB],
                                               __m512i (&next)[CB], __m512 (&values)[CB]) {
  for (int c = 0; c < CB; ++c) {
    tab[c] = next[c];
    next[c] = int4_table_words(values[c]);
  }
  if (g + 2 <= last_g)
    for (int c = 0; c < CB; ++c) values[c] = int4_table_values(par[c] + 2 * (g + 2));
}

// Whole superblocks per group (bpg of them; per channel: one group of nb), groups 0..last_g.
// A software pipeline over groups: while group g is looked up, the words of group g + 1 are
// converted and the values of group g + 2 computed (while there is one), so that the table's
// load -> add -> multiply -> conversion latency overlaps lookups instead of stalling them. One
// superblock per group (group 128) has its own flat loop (3-4% faster than the nested one at
// group 128, same-process A/B, one thread from DRAM).
template <int CB, int MB>
QCONF_AVX512 QCONF_INLINE void dot4_groups(const uint8_t* const (&col)[CB],
                                           const float* const (&par)[CB], int64_t nb, int64_t bpg,
                                           int64_t last_g, const uint16_t* const* xw, int64_t pf,
                                           float* out) {
  const int64_t bk = kDotBlock4;
  if (nb < 1) __builtin_unreachable();  // K >= 1 (check_wqbmm_inputs)
  __m512 acc[MB * CB * 4];
#pragma GCC unroll 32
  for (int i = 0; i < MB * CB * 4; ++i) acc[i] = _mm512_setzero_ps();
  __m512i tab[CB];
  __m512i next[CB];   // the words of group g + 1
  __m512 values[CB];  // the values of group g + 2
  for (int c = 0; c < CB; ++c) {
    next[c] = int4_table_words(par[c]);
    values[c] = int4_table_values(par[c] + 2 * std::min<int64_t>(1, last_g));
  }
  if (bpg == 1) {
    for (int64_t b = 0; b < nb; ++b) {
      dot4_next_group<CB>(par, b, last_g, tab, next, values);
      dot4_block<CB, MB, false>(col, tab, tab, xw, b * bk, pf, acc);
    }
  } else {
    for (int64_t g = 0, b = 0; b < nb; ++g) {
      dot4_next_group<CB>(par, g, last_g, tab, next, values);
      for (const int64_t b_end = std::min(nb, b + bpg); b < b_end; ++b)
        dot4_block<CB, MB, false>(col, tab, tab, xw, b * bk, pf, acc);
    }
  }
  reduce_dot4<CB, MB>(acc, out);
}

// Groups of 64 mod 128: two tables per superblock (the groups of k0 and of k0 + 64), built one
// superblock ahead.
template <int CB, int MB>
QCONF_AVX512 QCONF_INLINE void dot4_split(const uint8_t* const (&col)[CB],
                                          const float* const (&par)[CB], int64_t nb,
                                          const WqbmmShape& s, const uint16_t* const* xw,
                                          int64_t pf, float* out) {
  const int64_t bk = kDotBlock4;
  __m512 acc[MB * CB * 4];
#pragma GCC unroll 32
  for (int i = 0; i < MB * CB * 4; ++i) acc[i] = _mm512_setzero_ps();
  const auto group_at = [&](int64_t k) { return std::min(s.groups - 1, k / s.group_size); };
  __m512i tab[CB], tab_hi[CB], next[CB], next_hi[CB];
  for (int c = 0; c < CB; ++c) {
    next[c] = int4_table_words(par[c] + 2 * group_at(0));
    next_hi[c] = int4_table_words(par[c] + 2 * group_at(bk / 2));
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t kn = std::min(b + 1, nb - 1) * bk;  // the next superblock's first k
    const int64_t lo = 2 * group_at(kn), hi = 2 * group_at(kn + bk / 2);
    for (int c = 0; c < CB; ++c) {
      tab[c] = next[c];
      tab_hi[c] = next_hi[c];
    }
    for (int c = 0; c < CB; ++c) {
      next[c] = int4_table_words(par[c] + lo);
      next_hi[c] = int4_table_words(par[c] + hi);
    }
    dot4_block<CB, MB, true>(col, tab, tab_hi, xw, b * bk, pf, acc);
  }
  reduce_dot4<CB, MB>(acc, out);
}

// int4 weights on the dot path: CB columns starting at n0, MB rows, out[m * CB + c]. Per tile
// there is no division and no memory-zeroed array: each path keeps its accumulators in
// registers. (With one accumulator array shared by both paths, GCC zero-filled a dead memory
// copy of it with rep stos, and the last group took a division: the fixed cost of a column pair
// fell from ~70 to ~40 cycles without them, +6% from DRAM and +7% hot on one thread at
// K = N = 4096, group 128.)
template <int CB, int MB>
QCONF_AVX512 void tile_dot4(const WqbmmWeights& w, int64_t n0, const uint16_t* const* xw,
                            float* out) {
  const WqbmmShape& s = w.shape;
  const int64_t nb = w.kpad / kDotBlock4;
  const int64_t pf = prefetch_distance(w);
  prefetch_next_params<CB>(w.params_f32, s.groups, n0);
  const uint8_t* col[CB];
  const float* par[CB];  // the column's params_f32 pairs, one per group
  for (int c = 0; c < CB; ++c) {
    col[c] = w.packed.data() + (n0 + c) * (w.kpad / 2);
    par[c] = w.params_f32.data() + 2 * (n0 + c) * s.groups;
  }
  if (s.mode != WqbmmScaleMode::kPerGroup) {
    dot4_groups<CB, MB>(col, par, nb, nb, 0, xw, pf, out);
  } else if (s.group_size % kDotBlock4 == 0) {
    // kpad is the multiple of 128 at or above K, so the groups cover it: ceil(kpad / group) =
    // ceil(K / group) = groups.
    dot4_groups<CB, MB>(col, par, nb, s.group_size / kDotBlock4, s.groups - 1, xw, pf, out);
  } else {
    dot4_split<CB, MB>(col, par, nb, s, xw, pf, out);
  }
}

float ftz(float v) { return std::fabs(v) < 1.17549435e-38f ? std::copysign(0.0f, v) : v; }

// The portable emulation of the dot path (same lanes and order).
// One vdpbf16ps lane: the odd element of the pair first, each sum flushed below 2^-126.
void dot_pair(float& a, float w_even, float x_even, float w_odd, float x_odd) {
  a = ftz(a + w_odd * x_odd);
  a = ftz(a + w_even * x_even);
}

// The final reduction of the dot path: t = a0 + a1 (16 lanes), then the tree of reduce_v.
float reduce_portable(const float* a0, const float* a1) {
  float t[16];
  for (int j = 0; j < 16; ++j) t[j] = a0[j] + a1[j];
  for (int j = 0; j < 8; ++j) t[j] = t[j] + t[j + 8];
  for (int j = 0; j < 4; ++j) t[j] = t[j] + t[j + 4];
  for (int j = 0; j < 2; ++j) t[j] = t[j] + t[j + 2];
  return t[0] + t[1];
}

// int8: 64-k blocks of two operands, one accumulator (see "int8 weights on the dot path").
void column_portable_dot8(const WqbmmWeights& w, int64_t n, const uint16_t* const* xw,
                          int64_t mrows, float* out) {
  const WqbmmShape& s = w.shape;
  const int64_t nb = w.kpad / kDotBlock8;
  const auto* col = reinterpret_cast<const int8_t*>(w.packed.data() + n * w.kpad);
  std::vector<float> acc(static_cast<size_t>(mrows * 16), 0.0f);
  Param p;
  int64_t group = -1;
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k0 = b * kDotBlock8;
    const int64_t g = std::min(s.groups - 1, s.group_of(k0));
    if (g != group) {
      group = g;
      p = param_of(w, n, group);
    }
    // wv[h][i]: word i of operand h (A: k0 + 16 (i / 8) + i % 8; B: 8 more).
    float wv[2][32];
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 32; ++i) wv[h][i] = aq_kind(w, col[k0 + 8 * h + 16 * (i / 8) + i % 8], p);
    for (int64_t m = 0; m < mrows; ++m)
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 16; ++j)
          dot_pair(acc[static_cast<size_t>(m * 16 + j)], wv[h][2 * j],
                   bh2f(xw[m][k0 + 32 * h + 2 * j]), wv[h][2 * j + 1],
                   bh2f(xw[m][k0 + 32 * h + 2 * j + 1]));
  }
  const float zero[16] = {};
  for (int64_t m = 0; m < mrows; ++m)
    out[m] = reduce_portable(&acc[static_cast<size_t>(m * 16)], zero);
}

// int4: 128-k superblocks, four accumulators (see "int4 weights on the dot path").
void column_portable_dot4(const WqbmmWeights& w, int64_t n, const uint16_t* const* xw,
                          int64_t mrows, float* out) {
  const WqbmmShape& s = w.shape;
  const int64_t nb = w.kpad / kDotBlock4;
  const uint8_t* col = w.packed.data() + n * (w.kpad / 2);
  std::vector<float> acc(static_cast<size_t>(mrows * 64), 0.0f);  // [m][t][16]
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t k0 = b * kDotBlock4;
    // The table of each half of the superblock (k0 and k0 + 64; past K, the last group's).
    float table[2][16];
    for (int h = 0; h < 2; ++h) {
      float sv, ov;
      raw_params(w, n, std::min(s.groups - 1, s.group_of(k0 + 64 * h)), &sv, &ov);
      for (int i = 0; i < 16; ++i)
        table[h][i] = antiquant_scalar(w, static_cast<float>(nibble_value(i)), sv, ov);
    }
    // wv[t][i] = W[k0 + 4i + t]: nibble t of the 16-bit word i (bytes 2i, 2i + 1).
    float wv[4][32];
    for (int i = 0; i < 32; ++i) {
      const unsigned word = col[k0 / 2 + 2 * i] | (unsigned{col[k0 / 2 + 2 * i + 1]} << 8);
      for (int t = 0; t < 4; ++t) wv[t][i] = table[i / 16][(word >> (4 * t)) & 0xF];
    }
    for (int64_t m = 0; m < mrows; ++m)
      for (int t = 0; t < 4; ++t)
        for (int j = 0; j < 16; ++j)
          dot_pair(acc[static_cast<size_t>(m * 64 + 16 * t + j)], wv[t][2 * j],
                   bh2f(xw[m][k0 + 32 * t + 2 * j]), wv[t][2 * j + 1],
                   bh2f(xw[m][k0 + 32 * t + 2 * j + 1]));
  }
  for (int64_t m = 0; m < mrows; ++m) {
    const float* a = &acc[static_cast<size_t>(m * 64)];
    float s02[16], s13[16];
    for (int j = 0; j < 16; ++j) {
      s02[j] = a[j] + a[32 + j];
      s13[j] = a[16 + j] + a[48 + j];
    }
    out[m] = reduce_portable(s02, s13);
  }
}

void column_portable_dot(const WqbmmWeights& w, int64_t n, const uint16_t* const* xw, int64_t mrows,
                         float* out) {
  if (w.shape.int4)
    column_portable_dot4(w, n, xw, mrows, out);
  else
    column_portable_dot8(w, n, xw, mrows, out);
}

// The instance for the weights' type and the CPU.
template <int CB, int MB>
void tile(const WqbmmWeights& w, int64_t n0, const float* const* x, const Masks& mk, float* out) {
  const bool bf16 = w.shape.xdt == DType::kBF16;
  if (w.shape.int4) {
    if (bf16)
      tile_avx512<CB, MB, true, true, false>(w, n0, x, mk, out);
    else
      tile_avx512<CB, MB, true, false, false>(w, n0, x, mk, out);
  } else if (!bf16) {
    tile_avx512<CB, MB, false, false, false>(w, n0, x, mk, out);
  } else if (cpu_features().avx512bf16) {
    tile_avx512<CB, MB, false, true, true>(w, n0, x, mk, out);
  } else {
    tile_avx512<CB, MB, false, true, false>(w, n0, x, mk, out);
  }
}

std::atomic<bool> g_force_portable{false};

bool use_avx512() {
  const CpuFeatures& f = cpu_features();
  return !g_force_portable.load() && f.avx512f && f.avx512bw && f.f16c;
}

// Rows [0, mrows) of one column (AVX-512), in chunks of 8, 4, 2, 1 rows.
void column_rows_avx512(const WqbmmWeights& w, int64_t n, const float* const* x, int64_t mrows,
                        const Masks& mk, float* out) {
  int64_t m = 0;
  for (; m + 8 <= mrows; m += 8) tile<1, 8>(w, n, x + m, mk, out + m);
  for (; m + 4 <= mrows; m += 4) tile<1, 4>(w, n, x + m, mk, out + m);
  for (; m + 2 <= mrows; m += 2) tile<1, 2>(w, n, x + m, mk, out + m);
  for (; m < mrows; ++m) tile<1, 1>(w, n, x + m, mk, out + m);
}

// Rows [0, mrows) of one column on the dot path (AVX-512 BF16).
void column_rows_dot(const WqbmmWeights& w, int64_t n, const uint16_t* const* xw, int64_t mrows,
                     float* out) {
  // (int4: at most 4 rows, the 4 accumulators per row of tile_dot4 then fit in registers)
  int64_t m = 0;
  if (w.shape.int4) {
    for (; m + 4 <= mrows; m += 4) tile_dot4<1, 4>(w, n, xw + m, out + m);
    for (; m + 2 <= mrows; m += 2) tile_dot4<1, 2>(w, n, xw + m, out + m);
    for (; m < mrows; ++m) tile_dot4<1, 1>(w, n, xw + m, out + m);
    return;
  }
  for (; m + 8 <= mrows; m += 8) tile_dot8<1, 8>(w, n, xw + m, out + m);
  for (; m + 4 <= mrows; m += 4) tile_dot8<1, 4>(w, n, xw + m, out + m);
  for (; m + 2 <= mrows; m += 2) tile_dot8<1, 2>(w, n, xw + m, out + m);
  for (; m < mrows; ++m) tile_dot8<1, 1>(w, n, xw + m, out + m);
}

}  // namespace

std::string_view wqbmm_kernel_name() { return use_avx512() ? "avx512" : "portable"; }
void wqbmm_force_portable_kernel(bool on) { g_force_portable.store(on); }
void wqbmm_disable_vbmi_lookup(bool on) { g_disable_lut.store(on); }

WqbmmWeights wqbmm_prepare_weights(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  WqbmmWeights w;
  w.shape = check_wqbmm_inputs(a, cfg);
  w.antiquant = cfg.antiquant;
  w.has_offset = a.antiquant_offset != nullptr;
  const WqbmmShape& s = w.shape;
  const int64_t kalign = s.int4 ? kDotBlock4 : kDotBlock8;  // the dot path's blocks
  w.kpad = (s.k + kalign - 1) / kalign * kalign;
  const int64_t npad = (s.n + kQuad - 1) / kQuad * kQuad;
  const int64_t col_bytes = s.int4 ? w.kpad / 2 : w.kpad;
  w.packed.assign(static_cast<size_t>(npad * col_bytes), 0);
  w.params.assign(static_cast<size_t>(npad * s.groups * 2), 0);
  w.params_f32.assign(static_cast<size_t>(npad * s.groups * 2), 0.0f);
  const uint16_t* sc = a.antiquant_scale->data<uint16_t>();
  const uint16_t* of = w.has_offset ? a.antiquant_offset->data<uint16_t>() : nullptr;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      const int64_t i = s.param_index(g * std::max<int64_t>(s.group_size, 1), n);
      w.params[static_cast<size_t>(2 * (n * s.groups + g))] = sc[i];
      w.params[static_cast<size_t>(2 * (n * s.groups + g) + 1)] = of ? of[i] : 0;
      const bool f16 = s.xdt == DType::kF16;
      w.params_f32[static_cast<size_t>(2 * (n * s.groups + g))] = f16 ? h2f(sc[i]) : bh2f(sc[i]);
      w.params_f32[static_cast<size_t>(2 * (n * s.groups + g) + 1)] =
          of ? (f16 ? h2f(of[i]) : bh2f(of[i])) : 0.0f;
    }
  // The formula of each column and group (padding columns: scale 0, a plain product, W = 0).
  w.kinds.assign(static_cast<size_t>(npad * s.groups), s.xdt == DType::kF16 ? kF16Mul : kBf16Mul);
  bool dot = s.xdt == DType::kBF16 &&
             (s.mode != WqbmmScaleMode::kPerGroup || s.group_size % (2 * kBlock) == 0);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < s.groups; ++g) {
      const int kind = decide_param(w, n, g).kind;
      w.kinds[static_cast<size_t>(n * s.groups + g)] = static_cast<uint8_t>(kind);
      dot = dot && (kind == kBf16Mul || kind == kBf16Fma);
    }
  w.dot_ok = dot;
  // Transpose into columns (threads over column blocks of 64: reads of 64 neighbours per row).
  parallel_for((s.n + 63) / 64, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t n0 = c0 * 64; n0 < std::min(s.n, c1 * 64); n0 += 64) {
      const int64_t n1 = std::min(s.n, n0 + 64);
      for (int64_t k = 0; k < s.k; ++k) {
        if (!s.int4) {
          const int8_t* row = a.weight->data<int8_t>() + k * s.n;
          for (int64_t n = n0; n < n1; ++n)
            w.packed[static_cast<size_t>(n * col_bytes + k)] = static_cast<uint8_t>(row[n]);
        } else {
          const int32_t* row = a.weight->data<int32_t>() + k * (s.n / kInt4PerInt32);
          for (int64_t n = n0; n < n1; ++n) {
            const uint32_t nib = (static_cast<uint32_t>(row[n / 8]) >> (4 * (n % 8))) & 0xF;
            uint8_t& byte = w.packed[static_cast<size_t>(n * col_bytes + k / 2)];
            byte = static_cast<uint8_t>(byte | (k % 2 ? nib << 4 : nib));
          }
        }
      }
    }
  });
  return w;
}

void wqbmm_gemm_acc(const WqbmmWeights& w, const uint16_t* x, int64_t mrows, const float* bias,
                    float* acc, int threads) {
  const WqbmmShape& s = w.shape;
  // The dot path needs AVX512_BF16 (or its emulation when the portable kernel is forced) and
  // no subnormal x (vdpbf16ps treats them as zero).
  bool dot = w.dot_ok && cpu_features().avx512bf16;
  if (dot) {  // any subnormal x? (branch-free, so the compiler vectorizes the scan)
    unsigned subnormal = 0;
    for (int64_t i = 0; i < mrows * s.k; ++i)
      subnormal |= static_cast<unsigned>((x[i] & 0x7F80) == 0) & ((x[i] & 0x7F) != 0);
    dot = subnormal == 0;
  }
  const bool avx = use_avx512();
  // x in lane order, zero-padded to kpad. FMA path: fp32 (exact), position k0 + l holds
  // x[k0 + lane_k(l / 16, l % 16)] for each 32-block k0. Dot path: the bf16 words in the operand
  // order of tile_dot8 (int8, per 64-k block) or tile_dot4 (int4, per 128-k superblock).
  std::vector<float> xl;
  std::vector<uint16_t> xw;
  if (dot) {
    xw.assign(static_cast<size_t>(mrows * w.kpad), 0);
    for (int64_t m = 0; m < mrows; ++m) {
      const uint16_t* src = x + m * s.k;
      uint16_t* dst = xw.data() + m * w.kpad;
      if (!s.int4) {
        // int8: per 64-k block, position k0 + 32h + i holds x[k0 + 8h + 16 (i / 8) + i % 8].
        for (int64_t k = 0; k < s.k; ++k) {
          const int64_t r = k % kDotBlock8, h = (r / 8) % 2;
          dst[k - r + 32 * h + 8 * (r / 16) + r % 8] = src[k];
        }
        continue;
      }
      // int4: per 128-k superblock, position k0 + 32t + i holds x[k0 + 4i + t] (whole
      // superblocks without a division per element; the last partial one element by element).
      const int64_t full = s.k / kDotBlock4 * kDotBlock4;
      for (int64_t k0 = 0; k0 < full; k0 += kDotBlock4)
        for (int64_t i = 0; i < 32; ++i)
          for (int64_t t = 0; t < 4; ++t) dst[k0 + 32 * t + i] = src[k0 + 4 * i + t];
      for (int64_t k = full; k < s.k; ++k)
        dst[full + 32 * ((k - full) % 4) + (k - full) / 4] = src[k];
    }
  } else {
    xl.assign(static_cast<size_t>(mrows * w.kpad), 0.0f);
    std::vector<uint32_t> row(static_cast<size_t>(s.k));
    int pos_of_k[kBlock];
    for (int l = 0; l < kBlock; ++l) pos_of_k[lane_k(s, l / 16, l % 16)] = l;
    for (int64_t m = 0; m < mrows; ++m) {
      if (s.xdt == DType::kF16)
        f16_to_f32(x + m * s.k, row.data(), static_cast<size_t>(s.k));
      else
        bf16_to_f32(x + m * s.k, row.data(), static_cast<size_t>(s.k));
      float* dst = xl.data() + m * w.kpad;
      for (int64_t k = 0; k < s.k; ++k)
        dst[k / kBlock * kBlock + pos_of_k[k % kBlock]] = f_of(row[static_cast<size_t>(k)]);
    }
  }
  std::vector<const float*> xrows(static_cast<size_t>(mrows));
  std::vector<const uint16_t*> xwrows(static_cast<size_t>(mrows));
  for (int64_t m = 0; m < mrows; ++m) {
    if (dot)
      xwrows[static_cast<size_t>(m)] = xw.data() + m * w.kpad;
    else
      xrows[static_cast<size_t>(m)] = xl.data() + m * w.kpad;
  }
  const Masks mk = masks_of(w);
  const int64_t quads = (s.n + kQuad - 1) / kQuad;
  // Grain: about 256 KiB of weights per chunk.
  const int64_t quad_bytes = kQuad * (s.int4 ? w.kpad / 2 : w.kpad);
  const int64_t grain =
      std::max<int64_t>(1, (int64_t{256} << 10) / std::max<int64_t>(quad_bytes, 1));
  parallel_for(
      quads, grain,
      [&](int64_t q0, int64_t q1) {
        // Per-thread scratch, kept across chunks and calls (no allocation per chunk).
        static thread_local std::vector<float> out, col;
        out.resize(static_cast<size_t>(mrows * kQuad));
        col.resize(static_cast<size_t>(mrows));
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t n0 = q * kQuad;
          if (avx && mrows == 1) {
            if (dot) {
              // Two columns at a time (see kDotPair): two weight streams instead of four.
              static_assert(kQuad == 2 * kDotPair);
              float* o = out.data();
              if (s.int4) {
                tile_dot4<kDotPair, 1>(w, n0, xwrows.data(), o);
                tile_dot4<kDotPair, 1>(w, n0 + kDotPair, xwrows.data(), o + kDotPair);
              } else {
                tile_dot8<kDotPair, 1>(w, n0, xwrows.data(), o);
                tile_dot8<kDotPair, 1>(w, n0 + kDotPair, xwrows.data(), o + kDotPair);
              }
            } else
              tile<kQuad, 1>(w, n0, xrows.data(), mk, out.data());
          } else {
            for (int64_t c = 0; c < kQuad; ++c) {
              if (avx && dot)
                column_rows_dot(w, n0 + c, xwrows.data(), mrows, col.data());
              else if (avx)
                column_rows_avx512(w, n0 + c, xrows.data(), mrows, mk, col.data());
              else if (dot)
                column_portable_dot(w, n0 + c, xwrows.data(), mrows, col.data());
              else
                column_portable(w, n0 + c, xrows.data(), mrows, col.data());
              for (int64_t m = 0; m < mrows; ++m)
                out[static_cast<size_t>(m * kQuad + c)] = col[static_cast<size_t>(m)];
            }
          }
          for (int64_t m = 0; m < mrows; ++m)
            for (int64_t c = 0; c < kQuad && n0 + c < s.n; ++c) {
              float v = out[static_cast<size_t>(m * kQuad + c)];
              if (bias) v = v + bias[n0 + c];
              acc[m * s.n + n0 + c] = v;
            }
        }
      },
      threads);
}

namespace {

int64_t sat_rint(float v, int64_t lo, int64_t hi) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<float>(lo)) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int64_t>(std::nearbyint(v));
}

uint32_t f32_param(const Tensor* t, int64_t n) {
  return t->data<uint32_t>()[t->numel() == 1 ? 0 : n];
}

}  // namespace

WqbmmStages npu_weight_quant_batchmatmul(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  const WqbmmWeights w = wqbmm_prepare_weights(a, cfg);
  const WqbmmShape& s = w.shape;
  WqbmmStages st;
  // weight_values and antiquant_weight: the exact antiquant, element by element.
  st.weight_values = Tensor(DType::kI8, {s.k, s.n});
  st.antiquant_weight = Tensor(s.xdt, {s.k, s.n});
  parallel_for(s.k, std::max<int64_t>(1, 4096 / s.n), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t n = 0; n < s.n; ++n) {
        int v;
        if (s.int4) {
          const uint8_t byte = w.packed[static_cast<size_t>(n * (w.kpad / 2) + k / 2)];
          v = nibble_value(k % 2 ? byte >> 4 : byte & 0xF);
        } else {
          v = static_cast<int8_t>(w.packed[static_cast<size_t>(n * w.kpad + k)]);
        }
        st.weight_values.data<int8_t>()[k * s.n + n] = static_cast<int8_t>(v);
        const Param p = param_of(w, n, s.group_of(k));
        const float wv = antiquant_scalar(w, static_cast<float>(v), p.s, p.off);
        st.antiquant_weight.data<uint16_t>()[k * s.n + n] = static_cast<uint16_t>(
            s.xdt == DType::kF16 ? f32_to_f16_rne(b_of(wv)) : f32_to_bf16_rne(b_of(wv)));
      }
  });
  if (!s.int4) st.weight_values = Tensor();  // int8: the input itself, no stage
  st.acc = Tensor(DType::kF32, {s.m, s.n});
  std::vector<float> bias;
  if (a.bias) {
    bias.resize(static_cast<size_t>(s.n));
    for (int64_t n = 0; n < s.n; ++n)
      bias[static_cast<size_t>(n)] =
          s.xdt == DType::kF16 ? h2f(a.bias->data<uint16_t>()[n]) : a.bias->data<float>()[n];
  }
  wqbmm_gemm_acc(w, a.x->data<uint16_t>(), s.m, a.bias ? bias.data() : nullptr,
                 st.acc.data<float>());
  const int64_t mn = s.m * s.n;
  if (!s.quant_out) {
    st.y = Tensor(s.xdt, {s.m, s.n});
    const auto* in = reinterpret_cast<const uint32_t*>(st.acc.data<float>());
    if (s.xdt == DType::kF16)
      f32_to_f16_rne(in, st.y.data<uint16_t>(), static_cast<size_t>(mn));
    else
      f32_to_bf16_rne(in, st.y.data<uint16_t>(), static_cast<size_t>(mn));
    return st;
  }
  st.y = Tensor(DType::kI8, {s.m, s.n});
  for (int64_t i = 0; i < mn; ++i) {
    const int64_t n = i % s.n;
    const float accv = st.acc.data<float>()[i];
    const uint32_t qs = f32_param(a.quant_scale, n);
    int64_t code;
    if (cfg.requant == WqbmmRequant::kFixpipe) {
      const float s19 = f_of(qs & 0xFFFFE000u);
      const int64_t off9 =
          a.quant_offset ? sat_rint(f_of(f32_param(a.quant_offset, n)), -256, 255) : 0;
      code = std::clamp<int64_t>(sat_rint(accv * s19, -256, 255) + off9, -128, 127);
    } else {
      float v = accv * f_of(qs);
      if (a.quant_offset) v = v + f_of(f32_param(a.quant_offset, n));
      code = sat_rint(v, -128, 127);
    }
    st.y.data<int8_t>()[i] = static_cast<int8_t>(code);
  }
  return st;
}

}  // namespace qconf::opt
