// Optimized int4/int8 packings (see qconf/ops/packing.h): Highway SIMD with runtime dispatch for
// the element-wise packers, 64-bit SWAR block transposes for the layout changes, threads via
// parallel_for over fixed chunks. Every kernel is bit-exact to reference/ops/packing.cpp; the
// results do not depend on the thread count (each output element is computed by one chunk).

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/packing.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>
// clang-format on

#include "qconf/ops/packing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "qconf/ops/int4pack.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- offset-binary / two's-complement nibble packers (contiguous words) ------------------------

// vllm-ascend fallback on int8: u = clamp(v, -8, 7) + 8; byte i = u[2i] | u[2i+1] << 4.
void PkVllmPackI8(const int8_t* HWY_RESTRICT in, int32_t* HWY_RESTRICT out, int64_t n) {
  auto* out8 = reinterpret_cast<uint8_t*>(out);
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<int8_t> d8;
  const hn::RebindToUnsigned<decltype(d8)> du8;
  const hn::Repartition<uint16_t, decltype(d8)> d16;
  const hn::RebindToSigned<decltype(d16)> di16;
  const hn::Rebind<uint8_t, decltype(d16)> d8h;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d8));
  const auto lo = hn::Set(d8, -8), hi = hn::Set(d8, 7);
  const auto eight = hn::Set(du8, 8);
  const auto m0f = hn::Set(d16, 0x000F), mf0 = hn::Set(d16, 0x00F0);
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::Min(hn::Max(hn::LoadU(d8, in + i), lo), hi);
    const auto p = hn::BitCast(d16, hn::Add(hn::BitCast(du8, v), eight));
    const auto merged = hn::Or(hn::And(p, m0f), hn::And(hn::ShiftRight<4>(p), mf0));
    hn::StoreU(hn::DemoteTo(d8h, hn::BitCast(di16, merged)), d8h, out8 + i / 2);
  }
#endif
  for (; i < n; i += 2) {
    auto u = [](int v) { return static_cast<uint8_t>((v < -8 ? -8 : (v > 7 ? 7 : v)) + 8); };
    out8[i / 2] = static_cast<uint8_t>(u(in[i]) | (u(in[i + 1]) << 4));
  }
}

// The same on int32 input (the NPU path's dtype).
void PkVllmPackI32(const int32_t* HWY_RESTRICT in, int32_t* HWY_RESTRICT out, int64_t n) {
  auto* out8 = reinterpret_cast<uint8_t*>(out);
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<int32_t> d32;
  const hn::Rebind<uint8_t, decltype(d32)> d8;
  const hn::Repartition<uint16_t, decltype(d8)> d16;
  const hn::RebindToSigned<decltype(d16)> di16;
  const hn::Rebind<uint8_t, decltype(d16)> d8h;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
  const auto lo = hn::Set(d32, -8), hi = hn::Set(d32, 7), eight = hn::Set(d32, 8);
  const auto m0f = hn::Set(d16, 0x000F), mf0 = hn::Set(d16, 0x00F0);
  if (lanes >= 8) {
    for (; i + lanes <= n; i += lanes) {
      const auto v = hn::Add(hn::Min(hn::Max(hn::LoadU(d32, in + i), lo), hi), eight);
      const auto p = hn::BitCast(d16, hn::DemoteTo(d8, v));
      const auto merged = hn::Or(hn::And(p, m0f), hn::And(hn::ShiftRight<4>(p), mf0));
      hn::StoreU(hn::DemoteTo(d8h, hn::BitCast(di16, merged)), d8h, out8 + i / 2);
    }
  }
#endif
  for (; i < n; i += 2) {
    auto u = [](int32_t v) { return static_cast<uint8_t>((v < -8 ? -8 : (v > 7 ? 7 : v)) + 8); };
    out8[i / 2] = static_cast<uint8_t>(u(in[i]) | (u(in[i + 1]) << 4));
  }
}

// compressed-tensors, 4 bits, along a contiguous run of n int8 (n % 8 == 0): u = v + 8 (mod
// 256); word = sum u_i << 4i. Vectors whose u all fit a nibble (the normal case) merge nibbles;
// any out-of-range u (which carries into the next field) sends its vector to the exact sum.
void PkCtPackB4(const int8_t* HWY_RESTRICT in, int32_t* HWY_RESTRICT out, int64_t n) {
  auto scalar = [&](int64_t b, int64_t e) {
    for (int64_t w = b / 8; w < e / 8; ++w) {
      uint32_t word = 0;
      for (int t = 0; t < 8; ++t)
        word += static_cast<uint32_t>(static_cast<uint8_t>(in[8 * w + t] + 8)) << (4 * t);
      out[w] = static_cast<int32_t>(word);
    }
  };
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint8_t> d8;
  const hn::Repartition<uint16_t, decltype(d8)> d16;
  const hn::RebindToSigned<decltype(d16)> di16;
  const hn::Rebind<uint8_t, decltype(d16)> d8h;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d8));
  const auto eight = hn::Set(d8, 8), high = hn::Set(d8, 0xF0);
  const auto m0f = hn::Set(d16, 0x000F), mf0 = hn::Set(d16, 0x00F0);
  const auto* in8 = reinterpret_cast<const uint8_t*>(in);
  auto* out8 = reinterpret_cast<uint8_t*>(out);
  if (lanes >= 8) {
    for (; i + lanes <= n; i += lanes) {
      const auto u = hn::Add(hn::LoadU(d8, in8 + i), eight);
      if (!hn::AllTrue(d8, hn::Eq(hn::And(u, high), hn::Zero(d8)))) {
        scalar(i, i + lanes);
        continue;
      }
      const auto p = hn::BitCast(d16, u);
      const auto merged = hn::Or(hn::And(p, m0f), hn::And(hn::ShiftRight<4>(p), mf0));
      hn::StoreU(hn::DemoteTo(d8h, hn::BitCast(di16, merged)), d8h, out8 + i / 2);
    }
  }
#endif
  scalar(i, n);
}

// compressed-tensors, 8 bits: u = v + 128 = v ^ 0x80 per byte, 4 bytes little-endian per word.
void PkXorBytes(const uint8_t* HWY_RESTRICT in, uint8_t* HWY_RESTRICT out, int64_t n,
                uint8_t pattern) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint8_t> d8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d8));
  const auto x = hn::Set(d8, pattern);
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::Xor(hn::LoadU(d8, in + i), x), d8, out + i);
#endif
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(in[i] ^ pattern);
}

// compressed-tensors, packed_dim 0: out[c] = sum_i ((row_i[c] + off) mod 256) << (b*i) over the
// `count` rows of one group (rows past the tensor are the padding, u = 0, and are skipped).
void PkCtPackDim0(const int8_t* HWY_RESTRICT in, int64_t cols, int count, int num_bits,
                  int32_t* HWY_RESTRICT out) {
  const auto off = static_cast<uint8_t>(1u << (num_bits - 1));
  int64_t c = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint32_t> d32;
  const hn::Rebind<uint8_t, decltype(d32)> d8q;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
  const auto voff = hn::Set(d8q, off);
  const auto* in8 = reinterpret_cast<const uint8_t*>(in);
  for (; c + lanes <= cols; c += lanes) {
    auto acc = hn::Zero(d32);
    for (int i = 0; i < count; ++i) {
      const auto u = hn::PromoteTo(d32, hn::Add(hn::LoadU(d8q, in8 + i * cols + c), voff));
      acc = hn::Add(acc, hn::ShiftLeftSame(u, num_bits * i));
    }
    hn::StoreU(acc, d32, reinterpret_cast<uint32_t*>(out) + c);
  }
#endif
  for (; c < cols; ++c) {
    uint32_t word = 0;
    for (int i = 0; i < count; ++i)
      word +=
          static_cast<uint32_t>(static_cast<uint8_t>(static_cast<uint8_t>(in[i * cols + c]) + off))
          << (num_bits * i);
    out[c] = static_cast<int32_t>(word);
  }
}

// compressed-tensors unpack, 4 bits, packed_dim 1, contiguous: each input byte (two fields)
// becomes two output bytes, low field first, minus 8.
void PkCtUnpackB4(const uint8_t* HWY_RESTRICT in, int8_t* HWY_RESTRICT out, int64_t nbytes,
                  bool stream) {
  int64_t b = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint16_t> d16;
  const hn::Rebind<uint8_t, decltype(d16)> d8h;
  const hn::Repartition<uint8_t, decltype(d16)> d8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d16));
  const auto m0f = hn::Set(d16, 0x000F), mf0 = hn::Set(d16, 0x00F0);
  const auto eight = hn::Set(d8, 8);
  auto* out8 = reinterpret_cast<uint8_t*>(out);
  // Streaming stores (no read-for-ownership of the output, twice the input) when the caller
  // says the output is large: the bytes before the first vector-aligned output go one at a
  // time (an output at an odd address never aligns: ordinary stores).
  const auto mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(out8) % (2 * lanes));
  stream = stream && mis % 2 == 0;
  if (stream)
    for (; b < std::min(nbytes, (2 * lanes - mis) % (2 * lanes) / 2); ++b) {
      out[2 * b] = static_cast<int8_t>((in[b] & 0xF) - 8);
      out[2 * b + 1] = static_cast<int8_t>((in[b] >> 4) - 8);
    }
  for (; b + lanes <= nbytes; b += lanes) {
    const auto x = hn::PromoteTo(d16, hn::LoadU(d8h, in + b));
    const auto y = hn::Or(hn::And(x, m0f), hn::ShiftLeft<4>(hn::And(x, mf0)));
    const auto v = hn::Sub(hn::BitCast(d8, y), eight);
    if (stream)
      hn::Stream(v, d8, out8 + 2 * b);
    else
      hn::StoreU(v, d8, out8 + 2 * b);
  }
  if (stream) hwy::FlushStream();
#else
  (void)stream;
#endif
  for (; b < nbytes; ++b) {
    out[2 * b] = static_cast<int8_t>((in[b] & 0xF) - 8);
    out[2 * b + 1] = static_cast<int8_t>((in[b] >> 4) - 8);
  }
}

// compressed-tensors unpack, packed_dim 0: one packed row gives `count` output rows,
// out[i * cols + c] = ((in[c] >> (num_bits * i)) & mask) - off; each word is loaded once.
void PkCtUnpackDim0(const int32_t* HWY_RESTRICT in, int64_t cols, int count, int num_bits,
                    bool stream, int8_t* HWY_RESTRICT out) {
  const uint32_t mask = (1u << num_bits) - 1;
  const int off = (1 << num_bits) / 2;
  auto* out8 = reinterpret_cast<uint8_t*>(out);
  (void)out8;  // unused on the scalar target
  // Columns [c0, c1): Highway vectors, then one column at a time.
  auto generic = [=](int64_t c0, int64_t c1) {
    int64_t c = c0;
#if HWY_TARGET != HWY_SCALAR
    const hn::ScalableTag<int32_t> d32;
    const hn::Rebind<uint8_t, decltype(d32)> d8q;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d32));
    const auto vmask = hn::Set(d32, static_cast<int32_t>(mask));
    const auto voff = hn::Set(d8q, static_cast<uint8_t>(off));
    for (; c + lanes <= c1; c += lanes) {
      const auto w = hn::LoadU(d32, in + c);
      for (int i = 0; i < count; ++i) {
        const auto f = hn::And(hn::ShiftRightSame(w, num_bits * i), vmask);  // 0..255
        hn::StoreU(hn::Sub(hn::DemoteTo(d8q, f), voff), d8q, out8 + i * cols + c);
      }
    }
#endif
    for (; c < c1; ++c)
      for (int i = 0; i < count; ++i)
        out[i * cols + c] =
            static_cast<int8_t>(((static_cast<uint32_t>(in[c]) >> (num_bits * i)) & mask) - off);
  };
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if (num_bits == 4) {
    // 64 columns at a time: byte q of the 64 words (vpmovdb truncates w >> 8q) holds fields
    // 2q (low nibble) and 2q + 1 (high nibble), so one byte gather serves two output rows,
    // each stored as one 64-byte line.
    const __m512i m0f = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    // Large outputs (twice the input): streaming stores of whole cache lines. When every row
    // starts at the same offset within a line (cols % 64 == 0), the columns before the first
    // line boundary go to the generic loop and the 64-column steps start on the boundary.
    const bool nt = stream && cols % 64 == 0;
    const int64_t c_lo =
        nt ? static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(out8) % 64) % 64) : 0;
    auto put = [&](uint8_t* p, __m512i v) {
      if (nt)
        _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
      else
        _mm512_storeu_si512(p, v);
    };
    int64_t c = std::min(c_lo, cols);
    generic(0, c);
    for (; c + 64 <= cols; c += 64) {
      __m512i w[4];
      for (int k = 0; k < 4; ++k) w[k] = _mm512_loadu_si512(in + c + 16 * k);
      for (int q = 0; 2 * q < count; ++q) {
        __m512i x = _mm512_castsi128_si512(_mm512_cvtepi32_epi8(_mm512_srli_epi32(w[0], 8 * q)));
        x = _mm512_inserti32x4(x, _mm512_cvtepi32_epi8(_mm512_srli_epi32(w[1], 8 * q)), 1);
        x = _mm512_inserti32x4(x, _mm512_cvtepi32_epi8(_mm512_srli_epi32(w[2], 8 * q)), 2);
        x = _mm512_inserti32x4(x, _mm512_cvtepi32_epi8(_mm512_srli_epi32(w[3], 8 * q)), 3);
        put(out8 + 2 * q * cols + c, _mm512_sub_epi8(_mm512_and_si512(x, m0f), eight));
        if (2 * q + 1 < count)
          put(out8 + (2 * q + 1) * cols + c,
              _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(x, 4), m0f), eight));
      }
    }
    if (nt) _mm_sfence();
    generic(c, cols);
    return;
  }
#endif
  (void)stream;
  generic(0, cols);
}

// npu_quantize quint4x2, saturating reading: codes[c] = clamp(rint(fp32(fp32(x*s) + o)), -8, 7)
// for one row of n values (NaN -> 0, +-Inf -> 7 / -8); s (and o) per element (sv/ov non-null,
// length n) or scalars.
void PkQuantRow(const float* HWY_RESTRICT x, int64_t n, const float* sv, float s, const float* ov,
                float o, bool has_off, int32_t* HWY_RESTRICT codes) {
  int64_t c = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto lo = hn::Set(df, -16.0f), hi = hn::Set(df, 16.0f);
  const auto qlo = hn::Set(di, -8), qhi = hn::Set(di, 7);
  for (; c + lanes <= n; c += lanes) {
    auto p = hn::Mul(hn::LoadU(df, x + c), sv ? hn::LoadU(df, sv + c) : hn::Set(df, s));
    if (has_off) p = hn::Add(p, ov ? hn::LoadU(df, ov + c) : hn::Set(df, o));
    // Clamping to [-16, 16] first keeps every decision inside [-8.5, 7.5] and maps +-Inf.
    const auto q = hn::NearestInt(hn::Min(hn::Max(p, lo), hi));
    const auto nan = hn::RebindMask(di, hn::IsNaN(p));
    hn::StoreU(hn::IfThenZeroElse(nan, hn::Min(hn::Max(q, qlo), qhi)), di, codes + c);
  }
#endif
  for (; c < n; ++c) {
    float p = x[c] * (sv ? sv[c] : s);
    if (has_off) p = p + (ov ? ov[c] : o);
    if (std::isnan(p)) {
      codes[c] = 0;
      continue;
    }
    const float r = std::nearbyint(std::fmin(std::fmax(p, -16.0f), 16.0f));
    codes[c] = static_cast<int32_t>(r < -8.0f ? -8.0f : (r > 7.0f ? 7.0f : r));
  }
}

// ---- 16x16 byte-tile transposes ---------------------------------------------------------------
// Four rounds of "interleave row i with row i + 8" (8-bit lanes) transpose a 16x16 byte tile:
// each round is a perfect shuffle of the rows and of the columns, and four of them swap the
// 4-bit row and column indices. Interleave works per 128-bit block, so a 256-bit vector
// transposes two side-by-side tiles at once (columns c..c+15 in the low block, c+16..c+31 in the
// high block); targets with 256-bit vectors use that, others one 128-bit tile at a time.
#if HWY_TARGET != HWY_SCALAR
template <class D, class V = hn::Vec<D>>
HWY_INLINE void Transpose16x16(D d, V r[16]) {
  for (int round = 0; round < 4; ++round) {
    V n[16];
    for (int i = 0; i < 8; ++i) {
      n[2 * i] = hn::InterleaveLower(d, r[i], r[i + 8]);
      n[2 * i + 1] = hn::InterleaveUpper(d, r[i], r[i + 8]);
    }
    for (int i = 0; i < 16; ++i) r[i] = n[i];
  }
}

// The source rows i of a tile at (r, c): plain bytes or merged nibble pairs.
template <class D>
HWY_INLINE hn::Vec<D> LoadTileRow(D d, const uint8_t* src, int64_t b, int64_t r, int64_t c,
                                  int mode) {
  if (mode == 0) return hn::LoadU(d, src + r * b + c);
  const auto even = hn::LoadU(d, src + 2 * r * b + c);
  const auto odd = hn::LoadU(d, src + (2 * r + 1) * b + c);
  return hn::Or(hn::And(hn::ShiftLeft<4>(odd), hn::Set(d, 0xF0)), hn::And(even, hn::Set(d, 0x0F)));
}

// One 16-column tile (d: 16 lanes) or two (d: 32 lanes) at (r, c) of PkTransposeBand.
template <class D>
HWY_INLINE void TransposeTiles(D d, const uint8_t* src, int64_t a, int64_t b, int64_t r, int64_t c,
                               int mode, uint8_t* dst) {
  hn::Vec<D> v[16];
  for (int i = 0; i < 16; ++i) v[i] = LoadTileRow(d, src, b, r + i, c, mode);
  Transpose16x16(d, v);
  if constexpr (hn::MaxLanes(D()) == 16) {
    for (int i = 0; i < 16; ++i) hn::StoreU(v[i], d, dst + (c + i) * a + r);
  } else {
    const hn::Half<D> dh;
    for (int i = 0; i < 16; ++i) {
      hn::StoreU(hn::LowerHalf(dh, v[i]), dh, dst + (c + i) * a + r);
      hn::StoreU(hn::UpperHalf(dh, v[i]), dh, dst + (c + 16 + i) * a + r);
    }
  }
}
#endif

// Byte transpose of rows [r0, r1) of src [a, b] into dst [b, a] (dst[c * a + r] =
// src[r * b + c]). mode 0: plain bytes (msModelSlim). mode 1 (LLM-Compressor): src is the int4
// weight [2a, b] and source row j is the nibble pair (w[2j+1] << 4) | (w[2j] & 0xF). Full 16x16
// tiles by SIMD, edges scalar.
// Columns [c_begin, b) only (c_begin a multiple of 16: the 64-row kernel below did the rest).
void TransposeBandFrom(const uint8_t* HWY_RESTRICT src, int64_t a, int64_t b, int64_t r0,
                       int64_t r1, int mode, int64_t c_begin, uint8_t* HWY_RESTRICT dst) {
  auto at = [&](int64_t r, int64_t c) -> uint8_t {
    if (mode == 0) return src[r * b + c];
    return static_cast<uint8_t>((src[(2 * r + 1) * b + c] << 4) | (src[2 * r * b + c] & 0x0F));
  };
  const int64_t rt = r0 + (r1 - r0) / 16 * 16, ct = b / 16 * 16;
#if HWY_TARGET != HWY_SCALAR
  const hn::Full128<uint8_t> d1;
  const hn::CappedTag<uint8_t, 32> d2;
  const bool wide = hn::Lanes(d2) == 32;
  // 64-column blocks: the source and destination lines of a block are finished before the
  // next block starts.
  for (int64_t cb = c_begin; cb < ct; cb += 64) {
    const int64_t ce = std::min(ct, cb + 64);
    if (cb + 64 < ct)  // the next block's source lines: 128 (or 256) streams defeat the prefetcher
      for (int64_t r = r0; r < rt; ++r) {
        if (mode == 0) {
          __builtin_prefetch(src + r * b + cb + 64);
        } else {
          __builtin_prefetch(src + 2 * r * b + cb + 64);
          __builtin_prefetch(src + (2 * r + 1) * b + cb + 64);
        }
      }
    // Column tiles outer, row tiles inner: the (up to) 64 bytes of a destination line come
    // from consecutive tiles.
    int64_t c = cb;
    if (wide)
      for (; c + 32 <= ce; c += 32)
        for (int64_t r = r0; r < rt; r += 16) TransposeTiles(d2, src, a, b, r, c, mode, dst);
    for (; c < ce; c += 16)
      for (int64_t r = r0; r < rt; r += 16) TransposeTiles(d1, src, a, b, r, c, mode, dst);
  }
#else
  (void)rt;
  (void)ct;
#endif
  for (int64_t r = r0; r < r1; ++r)  // the right edge (columns >= ct) of every row
    for (int64_t c = (r < rt ? std::max(ct, c_begin) : c_begin); c < b; ++c)
      dst[c * a + r] = at(r, c);
#if HWY_TARGET == HWY_SCALAR
  for (int64_t r = r0; r < rt; ++r)
    for (int64_t c = c_begin; c < ct; ++c) dst[c * a + r] = at(r, c);
#endif
}

#if HWY_TARGET != HWY_SCALAR
// One (d: 16 lanes) or two (d: 32 lanes) 16x16 byte tiles of the W4A16 chain at input rows
// r.., input bytes m..: transpose, then split each byte row C[m'] into output rows 2m' (low
// nibbles of byte pairs) and 2m' + 1 (high nibbles), 8 bytes each.
template <class D>
HWY_INLINE void ChainTiles(D d, const uint8_t* in, int64_t mb, int64_t ob, int64_t r, int64_t m,
                           uint8_t* out) {
  const hn::Repartition<uint16_t, D> d16;
  const hn::RebindToSigned<decltype(d16)> di16;
  const hn::Rebind<uint8_t, decltype(d16)> d8h;  // half of d
  const hn::Half<decltype(d8h)> d8q;             // 8 bytes
  const auto m0f = hn::Set(d16, 0x000F), mf0 = hn::Set(d16, 0x00F0);
  hn::Vec<D> v[16];
  for (int i = 0; i < 16; ++i)
    v[i] = hn::Xor(hn::LoadU(d, in + (r + i) * mb + m), hn::Set(d, 0x88));
  Transpose16x16(d, v);  // block h of v[i] = bytes C[m + 16h + i][r .. r + 15]
  for (int i = 0; i < 16; ++i) {
    const auto w = hn::BitCast(d16, v[i]);  // C[2p] | C[2p+1] << 8
    const auto even = hn::Or(hn::And(w, m0f), hn::And(hn::ShiftRight<4>(w), mf0));
    const auto odd = hn::Or(hn::And(hn::ShiftRight<4>(w), m0f), hn::And(hn::ShiftRight<8>(w), mf0));
    const auto e8 = hn::DemoteTo(d8h, hn::BitCast(di16, even));
    const auto o8 = hn::DemoteTo(d8h, hn::BitCast(di16, odd));
    if constexpr (hn::MaxLanes(D()) == 16) {
      hn::StoreU(e8, d8h, out + 2 * (m + i) * ob + r / 2);
      hn::StoreU(o8, d8h, out + (2 * (m + i) + 1) * ob + r / 2);
    } else {
      hn::StoreU(hn::LowerHalf(d8q, e8), d8q, out + 2 * (m + i) * ob + r / 2);
      hn::StoreU(hn::LowerHalf(d8q, o8), d8q, out + (2 * (m + i) + 1) * ob + r / 2);
      hn::StoreU(hn::UpperHalf(d8q, e8), d8q, out + 2 * (m + 16 + i) * ob + r / 2);
      hn::StoreU(hn::UpperHalf(d8q, o8), d8q, out + (2 * (m + 16 + i) + 1) * ob + r / 2);
    }
  }
}
#endif

// W4A16 chain for n-rows [n0, n1) (n1 - n0 <= 128, a multiple of 8): the input words [n, kw]
// are bytes B[n][m] (m < 4kw) holding nibbles k = 2m (low) and 2m + 1 (high). Transposing the
// bytes gives C[m][n]; output row 2m takes the low nibbles of C[m][2p], C[m][2p+1] and row
// 2m + 1 the high ones; every nibble is XORed with 8 (offset binary -> two's complement).
// Input bytes [m_begin, 4kw) only (m_begin a multiple of 16: the 128-row kernel did the rest).
void ChainBandFrom(const uint8_t* HWY_RESTRICT in, int64_t n, int64_t kw, int64_t n0, int64_t n1,
                   int64_t m_begin, uint8_t* HWY_RESTRICT out) {
  const int64_t mb = 4 * kw, ob = n / 2;  // bytes per input row, per output row
  auto nib = [&](int64_t r, int64_t k) {  // input nibble (n = r, k), as offset binary
    return (in[r * mb + k / 2] >> (4 * (k & 1))) & 0xF;
  };
  const int64_t rt = n0 + (n1 - n0) / 16 * 16, mt = mb / 16 * 16;
#if HWY_TARGET != HWY_SCALAR
  const hn::Full128<uint8_t> d1;
  const hn::CappedTag<uint8_t, 32> d2;
  const bool wide = hn::Lanes(d2) == 32;
  // 64-byte column blocks with the next block's source lines prefetched; inside a block,
  // column tiles outer and row tiles inner (see PkTransposeBand): with 128-row bands each output
  // row receives 64 contiguous bytes from consecutive tiles.
  for (int64_t mb0 = m_begin; mb0 < mt; mb0 += 64) {
    const int64_t me = std::min(mt, mb0 + 64);
    if (mb0 + 64 < mt)
      for (int64_t r = n0; r < rt; ++r) __builtin_prefetch(in + r * mb + mb0 + 64);
    int64_t m = mb0;
    if (wide)
      for (; m + 32 <= me; m += 32)
        for (int64_t r = n0; r < rt; r += 16) ChainTiles(d2, in, mb, ob, r, m, out);
    for (; m < me; m += 16)
      for (int64_t r = n0; r < rt; r += 16) ChainTiles(d1, in, mb, ob, r, m, out);
  }
#else
  (void)rt;
  (void)mt;
#endif
  // Edges (and everything on the scalar target): nibble by nibble, pairs of rows.
  for (int64_t r = n0; r < n1; r += 2)
#if HWY_TARGET != HWY_SCALAR
    for (int64_t k = r < rt ? 2 * std::max(mt, m_begin) : 2 * m_begin; k < 8 * kw; ++k)
#else
    for (int64_t k = 2 * m_begin; k < 8 * kw; ++k)
#endif
      out[k * ob + r / 2] =
          static_cast<uint8_t>(((nib(r, k) ^ 8) & 0xF) | (((nib(r + 1, k) ^ 8) & 0xF) << 4));
}

// ---- 64x64 byte blocks written as whole lines (AVX-512) ----------------------------------------
// The transposing packers move as many bytes as memcpy, so what matters is that every source
// line fetched and every destination line written is used whole, that the next source lines are
// in flight while a block is shuffled, that outputs larger than the caches are written with
// streaming stores (no read-for-ownership), and that the shuffling itself is cheap.
//
// Tiling (WalkBand). A band of up to kGroups x 64 = 512 source rows is walked in 64-byte column
// steps c. At each step every 64-row group g gives one 64x64 byte block, transposed in
// registers into 64 whole destination lines (destination row c + j, bytes r + 64g ..
// r + 64g + 63) that are stored as soon as they are made; quarters outer, groups inner, so
// the kGroups lines of one destination row (512 contiguous bytes) leave close together.
// Source lines arrive by software prefetch into L2 in tiles of kAheadBytes per row (8-line
// runs): the next tile is requested over the 8 steps of the current one, 8 rows per group
// slot, between the shufflings (a burst of all 4096 requests at once stalled the core on its
// miss buffers with nothing to shuffle).
//
// A block (Block64Quarter, one quarter h = 16 columns at a time): vector i gathers bytes
// [16h, 16h + 16) of rows i, 16 + i, 32 + i and 48 + i into its four 128-bit blocks (one load
// and three inserts from memory do the cross-block part of the transpose), then four rounds of
// byte interleaves (Transpose16x16) transpose the four 16x16 tiles in place and vector k is
// destination line 16h + k. Nothing goes back to memory between the load and the store (the
// previous version staged each block twice on the stack: 3 stores per output line instead of
// 1; in-cache throughput 12.6 -> 20 GB/s on one Zen 4 core).
//
// Row producers. The LLM-Compressor packer (nibble pairs of two int4 rows) first builds a
// group's 64 block rows in an L1 scratch from its source rows, then transposes the scratch like
// plain bytes; the W4A16 chain (PkChainBand) builds two blocks per group from one line of each
// of its 128 input rows.
#undef QCONF_PK_BLOCK64  // this file is compiled once per target: decide afresh each time
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
#define QCONF_PK_BLOCK64 1
// 64-row groups per band step (each destination row receives kGroups lines per step), and the
// prefetch distance in bytes per source row.
constexpr int kGroups = 8;
constexpr int64_t kAheadBytes = 512;

HWY_INLINE void StoreLine(__m512i v, uint8_t* p, bool stream) {
  if (stream)
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
  else
    _mm512_storeu_si512(p, v);
}

// Quarter h of the 64x64 byte block at src (row stride ss), transposed: destination line
// 16h + k (at dst + (16h + k) * ds) = column 16h + k of the block, rows 0 .. 63.
HWY_INLINE void Block64Quarter(const uint8_t* src, int64_t ss, int h, uint8_t* dst, int64_t ds,
                               bool stream) {
  const hn::Full512<uint8_t> d;
  hn::Vec<decltype(d)> v[16];
  for (int i = 0; i < 16; ++i) {
    const uint8_t* p = src + i * ss + 16 * h;
    __m512i x = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * ss)), 1);
    x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32 * ss)), 2);
    x = _mm512_inserti32x4(x, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48 * ss)), 3);
    v[i] = hn::Vec<decltype(d)>{x};
  }
  Transpose16x16(d, v);  // block g of v[k]: column 16h + k of rows 16g .. 16g + 15
  for (int k = 0; k < 16; ++k) StoreLine(v[k].raw, dst + (16 * h + k) * ds, stream);
}

// The band walk shared by the transposing packers: rows [r, r + 64 * groups) of a byte matrix,
// its columns [0, cb) (cb a multiple of 64), into the destination [cb, a] (line stride a).
// block(g, c, scratch) returns the 64x64 block of group g at column c as (pointer, row
// stride), either in place or built into scratch + 4096 g; prefetch(i, c) prefetches the
// source line(s) of band row i that block column c needs.
template <class Block, class Prefetch>
HWY_INLINE void WalkBand(int64_t r, int64_t groups, int64_t cb, int64_t a, bool stream,
                         uint8_t* dst, const Block& block, const Prefetch& prefetch) {
  alignas(64) uint8_t scratch[kGroups * 64 * 64];
  constexpr int64_t kSteps = kAheadBytes / 64;  // column steps per prefetch tile
  const int64_t rows = 64 * groups, rows_per_slot = rows / kSteps / groups;  // = 8
  for (int64_t i = 0; i < rows; ++i)                                         // the first tile
    for (int64_t c = 0; c < std::min(cb, kAheadBytes); c += 64) prefetch(i, c);
  for (int64_t c = 0; c < cb; c += 64) {
    const int64_t next = (c / kAheadBytes + 1) * kAheadBytes;  // the next tile's first column
    const int64_t first_row = (c % kAheadBytes) / 64 * (rows / kSteps);
    std::pair<const uint8_t*, int64_t> blocks[kGroups];
    for (int64_t g = 0; g < groups; ++g) {
      // The next tile (kAheadBytes per row: runs that DRAM serves well) is prefetched over the
      // kSteps steps of this one, rows_per_slot rows per group, between the shufflings.
      if (next < cb)
        for (int64_t i = first_row + g * rows_per_slot; i < first_row + (g + 1) * rows_per_slot;
             ++i)
          for (int64_t cp = next; cp < std::min(cb, next + kAheadBytes); cp += 64) prefetch(i, cp);
      blocks[g] = block(g, c, scratch + 4096 * g);
    }
    // Ordinary stores: quarters outer, groups inner, so that the kGroups lines of a destination
    // row are written close together in time. Streaming stores: groups outer, so that a block's
    // 64 source lines stay in L1 over its four quarters (a step's 512 lines fill L1 whole);
    // 11-12.5 vs 12.5-13.5 ms for the 64 MiB ModelSlim transpose on one core (docs/perf.md).
    if (stream) {
      for (int64_t g = 0; g < groups; ++g)
        for (int h = 0; h < 4; ++h)
          Block64Quarter(blocks[g].first, blocks[g].second, h, dst + c * a + r + 64 * g, a, stream);
    } else {
      for (int h = 0; h < 4; ++h)
        for (int64_t g = 0; g < groups; ++g)
          Block64Quarter(blocks[g].first, blocks[g].second, h, dst + c * a + r + 64 * g, a, stream);
    }
  }
}
#endif

// W4A8 transposes (mode as in TransposeBandFrom) of source rows [r0, r1): groups of 64 rows by
// WalkBand, the rest by TransposeBandFrom.
void PkTransposeBand(const uint8_t* HWY_RESTRICT src, int64_t a, int64_t b, int64_t r0, int64_t r1,
                     int mode, bool stream, uint8_t* HWY_RESTRICT dst) {
#ifdef QCONF_PK_BLOCK64
  const int64_t cb = b / 64 * 64;
  stream = stream && a % 64 == 0 && r0 % 64 == 0 && reinterpret_cast<uintptr_t>(dst) % 64 == 0;
  const __m512i m0f = _mm512_set1_epi8(0x0F);
  int64_t r = r0;
  while (r + 64 <= r1 && cb > 0) {
    const int64_t groups = std::min<int64_t>(kGroups, (r1 - r) / 64), rows = 64 * groups;
    if (mode == 0) {
      WalkBand(
          r, groups, cb, a, stream, dst,
          [&](int64_t g, int64_t c, uint8_t*) {
            return std::pair<const uint8_t*, int64_t>(src + (r + 64 * g) * b + c, b);
          },
          [&](int64_t i, int64_t c) { __builtin_prefetch(src + (r + i) * b + c, 0, 2); });
    } else {
      // Source row j of the block = (w[2j+1] << 4) | (w[2j] & 0xF) per byte: bits 4..7 from
      // the odd row, 0..3 from the even one.
      WalkBand(
          r, groups, cb, a, stream, dst,
          [&](int64_t g, int64_t c, uint8_t* s) {
            const int64_t rg = r + 64 * g;
            for (int i = 0; i < 64; ++i) {
              const __m512i even = _mm512_loadu_si512(src + 2 * (rg + i) * b + c);
              const __m512i odd = _mm512_loadu_si512(src + (2 * (rg + i) + 1) * b + c);
              _mm512_store_si512(s + 64 * i, _mm512_ternarylogic_epi32(_mm512_slli_epi16(odd, 4),
                                                                       even, m0f, 0xD8));
            }
            return std::pair<const uint8_t*, int64_t>(s, 64);
          },
          [&](int64_t i, int64_t c) {
            __builtin_prefetch(src + 2 * (r + i) * b + c, 0, 2);
            __builtin_prefetch(src + (2 * (r + i) + 1) * b + c, 0, 2);
          });
    }
    if (cb < b) TransposeBandFrom(src, a, b, r, r + rows, mode, cb, dst);
    r += rows;
  }
  if (stream) _mm_sfence();
  if (r < r1) TransposeBandFrom(src, a, b, r, r1, mode, 0, dst);
#else
  (void)stream;
  TransposeBandFrom(src, a, b, r0, r1, mode, 0, dst);
#endif
}

// W4A16 chain (see ChainBandFrom) of input rows [n0, n1). Output byte (k, p) holds nibble k of
// input rows 2p (low) and 2p + 1 (high), each XORed with 8. With D[p][k] = that byte, the
// output is the byte transpose of D [n/2, 8kw], and D row p is made from input rows 2p and
// 2p + 1 (D[p][2m] takes the low nibbles of their bytes m, D[p][2m + 1] the high ones). The
// walk is WalkBand's (kGroups groups of 128 input rows = 64 rows of D, 64-byte input steps m
// with 512-byte prefetch tiles); each step turns one input line per row into 128 columns of D,
// i.e. two 64x64 blocks per group, made in an L1 scratch and transposed by Block64Quarter. The
// rest (row and column edges) by ChainBandFrom.
void PkChainBand(const uint8_t* HWY_RESTRICT in, int64_t n, int64_t kw, int64_t n0, int64_t n1,
                 bool stream, uint8_t* HWY_RESTRICT out) {
#ifdef QCONF_PK_BLOCK64
  const int64_t mb = 4 * kw, ob = n / 2, mc = mb / 64 * 64;
  stream = stream && ob % 64 == 0 && n0 % 128 == 0 && reinterpret_cast<uintptr_t>(out) % 64 == 0;
  const __m512i m0f = _mm512_set1_epi8(0x0F), x88 = _mm512_set1_epi8(static_cast<char>(0x88));
  constexpr int64_t kSteps = kAheadBytes / 64;  // input lines per row per prefetch tile
  int64_t r = n0;
  while (r + 128 <= n1 && mc > 0) {
    // Up to kGroups groups of 128 input rows (64 rows of D); each column step m takes one
    // 64-byte line of every input row, i.e. 128 columns of D (two 64x64 blocks per group).
    const int64_t groups = std::min<int64_t>(kGroups, (n1 - r) / 128), rows = 128 * groups;
    const int64_t rows_per_slot = rows / kSteps / groups;  // = 16
    auto prefetch = [&](int64_t i, int64_t m) { __builtin_prefetch(in + (r + i) * mb + m, 0, 2); };
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t m = 0; m < std::min(mc, kAheadBytes); m += 64) prefetch(i, m);
    for (int64_t m = 0; m < mc; m += 64) {
      const int64_t next = (m / kAheadBytes + 1) * kAheadBytes;
      const int64_t first_row = (m % kAheadBytes) / 64 * (rows / kSteps);
      for (int64_t g = 0; g < groups; ++g) {
        if (next < mc)  // the next tile, spread over this tile's steps as in WalkBand
          for (int64_t i = first_row + g * rows_per_slot; i < first_row + (g + 1) * rows_per_slot;
               ++i)
            for (int64_t mp = next; mp < std::min(mc, next + kAheadBytes); mp += 64)
              prefetch(i, mp);
        // D row p (64 of them from input rows 2p, 2p + 1), columns 2m' + t for the 64 bytes m'
        // of this step: L = low nibbles (t = 0), H = high nibbles (t = 1), both XOR 8. The
        // byte interleave of L and H works per 128-bit block, so block A (InterleaveLower)
        // column 16l + q is D column 32l + q and block B column 16l + q is D column
        // 32l + 16 + q (l = block, q < 16).
        alignas(64) uint8_t blk[2][64 * 64];
        for (int i = 0; i < 64; ++i) {
          const uint8_t* row = in + (r + 128 * g + 2 * i) * mb + m;
          const __m512i x0 = _mm512_loadu_si512(row), x1 = _mm512_loadu_si512(row + mb);
          // lo = (x0 & 0x0F) | (x1 << 4 & 0xF0); hi = (x0 >> 4 & 0x0F) | (x1 & 0xF0).
          const __m512i lo = _mm512_xor_si512(
              _mm512_ternarylogic_epi32(_mm512_slli_epi16(x1, 4), x0, m0f, 0xD8), x88);
          const __m512i hi = _mm512_xor_si512(
              _mm512_ternarylogic_epi32(x1, _mm512_srli_epi16(x0, 4), m0f, 0xD8), x88);
          _mm512_store_si512(blk[0] + 64 * i, _mm512_unpacklo_epi8(lo, hi));
          _mm512_store_si512(blk[1] + 64 * i, _mm512_unpackhi_epi8(lo, hi));
        }
        // Quarter h of block A -> D columns 2m + 32h + k, of block B -> 2m + 32h + 16 + k.
        uint8_t* d = out + 2 * m * ob + r / 2 + 64 * g;
        for (int h = 0; h < 4; ++h) {
          Block64Quarter(blk[0], 64, h, d + 16 * h * ob, ob, stream);
          Block64Quarter(blk[1], 64, h, d + (16 * h + 16) * ob, ob, stream);
        }
      }
    }
    if (mc < mb) ChainBandFrom(in, n, kw, r, r + rows, mc, out);
    r += rows;
  }
  if (stream) _mm_sfence();
  if (r < n1) ChainBandFrom(in, n, kw, r, n1, 0, out);
#else
  (void)stream;
  ChainBandFrom(in, n, kw, n0, n1, 0, out);
#endif
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf {
namespace opt {
HWY_EXPORT(PkVllmPackI8);
HWY_EXPORT(PkVllmPackI32);
HWY_EXPORT(PkCtPackB4);
HWY_EXPORT(PkXorBytes);
HWY_EXPORT(PkCtPackDim0);
HWY_EXPORT(PkCtUnpackB4);
HWY_EXPORT(PkCtUnpackDim0);
HWY_EXPORT(PkQuantRow);
HWY_EXPORT(PkTransposeBand);
HWY_EXPORT(PkChainBand);

namespace {

// Rows per band of the W4A8 transposing kernels (work items of parallel_for): kGroups groups of
// 64 rows. The same for the W4A16 chain: kGroups groups of 128 input rows.
constexpr int64_t kBand = 512;
constexpr int64_t kChainBand = 1024;

// Outputs from this size on are written with streaming stores (whole 64-byte lines, no
// read-for-ownership): they are larger than half the L3 cache of the machines we measure on, so
// the next consumer reads them from memory anyway. Smaller outputs stay in the cache.
constexpr int64_t kStreamBytes = int64_t{16} << 20;

// Work items per chunk: ~1 Mi elements keeps small tensors on the calling thread.
constexpr int64_t kGrainElems = int64_t{1} << 20;

int64_t grain_for(int64_t row_elems) {
  return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, row_elems));
}

}  // namespace

// ---- b. vllm_ascend_pack_int4_to_int32 ----------------------------------------------------------

void vllm_ascend_pack_int4_to_int32(const int8_t* in, int32_t* out, int64_t n, int threads) {
  parallel_for(
      n / 8, kGrainElems / 8,
      [&](int64_t b, int64_t e) {
        HWY_DYNAMIC_DISPATCH(PkVllmPackI8)(in + 8 * b, out + b, 8 * (e - b));
      },
      threads);
}

void vllm_ascend_pack_int4_to_int32(const int32_t* in, int32_t* out, int64_t n, int threads) {
  parallel_for(
      n / 8, kGrainElems / 8,
      [&](int64_t b, int64_t e) {
        HWY_DYNAMIC_DISPATCH(PkVllmPackI32)(in + 8 * b, out + b, 8 * (e - b));
      },
      threads);
}

Tensor vllm_ascend_pack_int4_to_int32(const Tensor& weight) {
  check_vllm_ascend_pack_input(weight);
  Shape shape = weight.shape();
  shape.back() /= 8;
  Tensor out(DType::kI32, shape);
  if (weight.dtype() == DType::kI8)
    vllm_ascend_pack_int4_to_int32(weight.data<int8_t>(), out.data<int32_t>(), weight.numel());
  else
    vllm_ascend_pack_int4_to_int32(weight.data<int32_t>(), out.data<int32_t>(), weight.numel());
  return out;
}

// ---- c. compressed-tensors ----------------------------------------------------------------------

namespace {

// One row (or a contiguous run of whole words) along packed_dim 1, full words only.
void ct_pack_words(const int8_t* in, int32_t* out, int64_t words, int num_bits) {
  const int pf = 32 / num_bits;
  if (num_bits == 4) {
    HWY_DYNAMIC_DISPATCH(PkCtPackB4)(in, out, words * pf);
  } else if (num_bits == 8) {
    HWY_DYNAMIC_DISPATCH(PkXorBytes)
    (reinterpret_cast<const uint8_t*>(in), reinterpret_cast<uint8_t*>(out), words * 4,
     uint8_t{0x80});
  } else {
    const auto off = static_cast<uint8_t>(1u << (num_bits - 1));
    for (int64_t w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int i = 0; i < pf; ++i)
        word +=
            static_cast<uint32_t>(static_cast<uint8_t>(static_cast<uint8_t>(in[w * pf + i]) + off))
            << (num_bits * i);
      out[w] = static_cast<int32_t>(word);
    }
  }
}

// The last, partial word of a row: the missing fields are the padding, u = 0.
int32_t ct_partial_word(const int8_t* in, int count, int num_bits) {
  const auto off = static_cast<uint8_t>(1u << (num_bits - 1));
  uint32_t word = 0;
  for (int i = 0; i < count; ++i)
    word += static_cast<uint32_t>(static_cast<uint8_t>(static_cast<uint8_t>(in[i]) + off))
            << (num_bits * i);
  return static_cast<int32_t>(word);
}

}  // namespace

void ct_pack_to_int32(const int8_t* in, int64_t rows, int64_t cols, int num_bits, int packed_dim,
                      int32_t* o, int threads) {
  const int64_t pf = 32 / num_bits;
  if (packed_dim == 1) {
    const int64_t wpr = (cols + pf - 1) / pf;
    if (cols % pf == 0) {  // no padding: the whole tensor is one run of words
      parallel_for(
          rows * wpr, kGrainElems / pf,
          [&](int64_t b, int64_t e) { ct_pack_words(in + b * pf, o + b, e - b, num_bits); },
          threads);
    } else {
      parallel_for(
          rows, grain_for(cols),
          [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) {
              ct_pack_words(in + r * cols, o + r * wpr, cols / pf, num_bits);
              o[r * wpr + wpr - 1] = ct_partial_word(in + r * cols + (cols / pf) * pf,
                                                     static_cast<int>(cols % pf), num_bits);
            }
          },
          threads);
    }
    return;
  }
  const int64_t groups = (rows + pf - 1) / pf;
  parallel_for(
      groups, grain_for(cols * pf),
      [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) {
          const int count = static_cast<int>(std::min<int64_t>(pf, rows - j * pf));
          HWY_DYNAMIC_DISPATCH(PkCtPackDim0)
          (in + j * pf * cols, cols, count, num_bits, o + j * cols);
        }
      },
      threads);
}

Tensor ct_pack_to_int32(const Tensor& value, int num_bits, int packed_dim) {
  check_ct_pack_args(value, num_bits, packed_dim);
  const int64_t pf = 32 / num_bits;
  const int64_t rows = value.dim(0), cols = value.dim(1);
  Tensor out(DType::kI32, packed_dim == 1 ? Shape{rows, (cols + pf - 1) / pf}
                                          : Shape{(rows + pf - 1) / pf, cols});
  ct_pack_to_int32(value.data<int8_t>(), rows, cols, num_bits, packed_dim, out.data<int32_t>());
  return out;
}

void ct_unpack_from_int32(const int32_t* in, int64_t prow, int64_t pcol, int num_bits,
                          CtShape shape, int packed_dim, int8_t* o, int threads) {
  const int64_t pf = 32 / num_bits;
  const uint32_t mask = (1u << num_bits) - 1;
  const int off = (1 << num_bits) / 2;
  // Outputs of kStreamBytes and more are written with streaming stores where lines are whole.
  const bool stream = shape.rows * shape.cols >= kStreamBytes;
  // Full words of a run: 4 and 8 bits by SIMD, other widths field by field.
  auto words = [&](const int32_t* w, int64_t n, int8_t* dst) {
    if (num_bits == 4) {
      HWY_DYNAMIC_DISPATCH(PkCtUnpackB4)(reinterpret_cast<const uint8_t*>(w), dst, 4 * n, stream);
    } else if (num_bits == 8) {
      HWY_DYNAMIC_DISPATCH(PkXorBytes)
      (reinterpret_cast<const uint8_t*>(w), reinterpret_cast<uint8_t*>(dst), 4 * n, uint8_t{0x80});
    } else {
      for (int64_t k = 0; k < n; ++k)
        for (int64_t i = 0; i < pf; ++i)
          dst[k * pf + i] =
              static_cast<int8_t>(((static_cast<uint32_t>(w[k]) >> (num_bits * i)) & mask) - off);
    }
  };
  if (packed_dim == 1) {
    if (shape.cols == pcol * pf) {  // nothing to crop: one run
      parallel_for(
          prow * pcol, kGrainElems / pf,
          [&](int64_t b, int64_t e) { words(in + b, e - b, o + b * pf); }, threads);
    } else {
      const int64_t full = shape.cols / pf, rest = shape.cols % pf;
      parallel_for(
          prow, grain_for(shape.cols),
          [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r) {
              words(in + r * pcol, full, o + r * shape.cols);
              if (rest == 0) continue;
              const auto w = static_cast<uint32_t>(in[r * pcol + full]);
              for (int64_t i = 0; i < rest; ++i)
                o[r * shape.cols + full * pf + i] =
                    static_cast<int8_t>(((w >> (num_bits * i)) & mask) - off);
            }
          },
          threads);
    }
    return;
  }
  const int64_t groups = (shape.rows + pf - 1) / pf;
  parallel_for(
      groups, grain_for(pcol * pf),
      [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) HWY_DYNAMIC_DISPATCH(PkCtUnpackDim0)
        (in + j * pcol, pcol, static_cast<int>(std::min<int64_t>(pf, shape.rows - j * pf)),
         num_bits, stream, o + j * pf * pcol);
      },
      threads);
}

Tensor ct_unpack_from_int32(const Tensor& packed, int num_bits, CtShape shape, int packed_dim) {
  check_ct_unpack_args(packed, num_bits, shape, packed_dim);
  Tensor out(DType::kI8, {shape.rows, shape.cols});
  ct_unpack_from_int32(packed.data<int32_t>(), packed.dim(0), packed.dim(1), num_bits, shape,
                       packed_dim, out.data<int8_t>());
  return out;
}

// ---- d. W4A8 MoE ------------------------------------------------------------------------------

void w4a8_modelslim_pack(const int8_t* weight, int64_t e, int64_t a, int64_t b, int32_t* out,
                         int threads) {
  const auto* src = reinterpret_cast<const uint8_t*>(weight);
  auto* dst = reinterpret_cast<uint8_t*>(out);
  // Work items: (expert, 64-row band); a band walks its 64 source rows in 64x64 blocks, each
  // writing 64 whole destination lines. The view as int32 is free (same bytes).
  const bool stream = e * a * b >= kStreamBytes;
  const int64_t bands = (a + kBand - 1) / kBand;
  parallel_for(
      e * bands, std::max<int64_t>(1, kGrainElems / (kBand * std::max<int64_t>(b, 1))),
      [&](int64_t lo, int64_t hi) {
        for (int64_t w = lo; w < hi; ++w) {
          const int64_t x = w / bands, r0 = (w % bands) * kBand;
          HWY_DYNAMIC_DISPATCH(PkTransposeBand)
          (src + x * a * b, a, b, r0, std::min(a, r0 + kBand), 0, stream, dst + x * a * b);
        }
      },
      threads);
}

Tensor w4a8_modelslim_pack(const Tensor& weight) {
  check_w4a8_modelslim_input(weight);
  const int64_t e = weight.dim(0), a = weight.dim(1), b = weight.dim(2);
  Tensor out(DType::kI32, {e, b, a / 4});
  w4a8_modelslim_pack(weight.data<int8_t>(), e, a, b, out.data<int32_t>());
  return out;
}

void w4a8_llmcompressor_pack(const int8_t* weight, int64_t e, int64_t n, int64_t k, int32_t* out,
                             int threads) {
  const auto* src = reinterpret_cast<const uint8_t*>(weight);
  auto* dst = reinterpret_cast<uint8_t*>(out);
  // The pair-merged matrix P [n/2, k] (row j = (w[2j+1] << 4) | (w[2j] & 0xF)) is formed while
  // loading and transposed into [k, n/2] bytes, which view as int32 [k, n/8].
  const int64_t a = n / 2, bands = (a + kBand - 1) / kBand;
  const bool stream = e * a * k >= kStreamBytes;
  parallel_for(
      e * bands, std::max<int64_t>(1, kGrainElems / (2 * kBand * std::max<int64_t>(k, 1))),
      [&](int64_t lo, int64_t hi) {
        for (int64_t w = lo; w < hi; ++w) {
          const int64_t x = w / bands, r0 = (w % bands) * kBand;
          HWY_DYNAMIC_DISPATCH(PkTransposeBand)
          (src + x * n * k, a, k, r0, std::min(a, r0 + kBand), 1, stream, dst + x * a * k);
        }
      },
      threads);
}

Tensor w4a8_llmcompressor_pack(const Tensor& weight) {
  check_w4a8_llmcompressor_input(weight);
  const int64_t e = weight.dim(0), n = weight.dim(1), k = weight.dim(2);
  Tensor out(DType::kI32, {e, k, n / 8});
  w4a8_llmcompressor_pack(weight.data<int8_t>(), e, n, k, out.data<int32_t>());
  return out;
}

// ---- d. npu_quantize quint4x2 -------------------------------------------------------------------

namespace {

// fp32 bits of element i of a float tensor (fp16/bf16 widened exactly).
float as_f32(const Tensor& t, int64_t i) {
  uint32_t bits;
  if (t.dtype() == DType::kF32)
    bits = t.data<uint32_t>()[i];
  else if (t.dtype() == DType::kF16)
    bits = f16_to_f32(t.data<uint16_t>()[i]);
  else
    bits = bf16_to_f32(t.data<uint16_t>()[i]);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void widen_to_f32(const Tensor& t, int64_t begin, int64_t count, float* dst) {
  if (t.dtype() == DType::kF32) {
    std::memcpy(dst, t.data<uint32_t>() + begin, 4 * count);
  } else if (t.dtype() == DType::kF16) {
    f16_to_f32(t.data<uint16_t>() + begin, reinterpret_cast<uint32_t*>(dst),
               static_cast<size_t>(count));
  } else {
    bf16_to_f32(t.data<uint16_t>() + begin, reinterpret_cast<uint32_t*>(dst),
                static_cast<size_t>(count));
  }
}

}  // namespace

Tensor npu_quantize_quint4x2(const Tensor& x, const Tensor& scales, const Tensor* zero_points,
                             const NpuQuantizeArgs& args) {
  check_npu_quantize_args(x, scales, zero_points, args);
  const int64_t n = x.dim(-1), rows = x.numel() / std::max<int64_t>(n, 1);
  const int64_t nch = x.dim(args.axis);
  std::vector<float> s(static_cast<size_t>(scales.numel())), o;
  for (int64_t i = 0; i < scales.numel(); ++i) s[static_cast<size_t>(i)] = as_f32(scales, i);
  if (zero_points) {
    o.resize(static_cast<size_t>(zero_points->numel()));
    for (int64_t i = 0; i < zero_points->numel(); ++i)
      o[static_cast<size_t>(i)] = as_f32(*zero_points, i);
  }
  Shape shape = x.shape();
  shape.back() /= kInt4PerInt32;
  Tensor out(DType::kI32, shape);
  int32_t* dst = out.data<int32_t>();
  const bool per_elem = args.axis == -1 && s.size() > 1;  // scales vary along the row
  const bool off_per_elem = args.axis == -1 && o.size() > 1;
  parallel_for(rows, grain_for(n), [&](int64_t rb, int64_t re) {
    constexpr int64_t kPiece = 1024;  // a multiple of 8: whole words per piece
    float xf[kPiece];
    int32_t codes[kPiece];
    for (int64_t r = rb; r < re; ++r) {
      const int64_t ch = args.axis == -2 ? r % nch : 0;
      const float sc = s.size() == 1 ? s[0] : s[static_cast<size_t>(ch)];
      const float oc = o.empty() ? 0.0f : (o.size() == 1 ? o[0] : o[static_cast<size_t>(ch)]);
      for (int64_t c0 = 0; c0 < n; c0 += kPiece) {
        const int64_t len = std::min(kPiece, n - c0);
        widen_to_f32(x, r * n + c0, len, xf);
        if (args.overflow == Int4Overflow::kSaturate) {
          HWY_DYNAMIC_DISPATCH(PkQuantRow)
          (xf, len, per_elem ? s.data() + c0 : nullptr, sc, off_per_elem ? o.data() + c0 : nullptr,
           oc, zero_points != nullptr, codes);
        } else {
          // The wrap reading: the same fp32 steps, then the low nibble of the integer, which
          // is only defined while the fp16 step is exact (|r| <= 2048), as in the reference.
          for (int64_t c = 0; c < len; ++c) {
            float p = xf[c] * (per_elem ? s[static_cast<size_t>(c0 + c)] : sc);
            if (zero_points) p = p + (off_per_elem ? o[static_cast<size_t>(c0 + c)] : oc);
            if (std::isnan(p)) {  // CAST_RINT: NaN -> 0
              codes[c] = 0;
              continue;
            }
            const float q = std::nearbyint(p);
            if (!(q >= -2048.0f && q <= 2048.0f))
              throw std::invalid_argument(
                  "npu_quantize_quint4x2: int4_overflow \"wrap\" is not defined beyond +-2048 "
                  "(the fp16 step is inexact)");
            const auto qi = static_cast<int32_t>(q);
            codes[c] = ((qi & 0xF) ^ 8) - 8;
          }
        }
        pack_int4(codes, dst + (r * n + c0) / kInt4PerInt32, len);
      }
    }
  });
  return out;
}

// ---- f. w4a16_ct_repack_chain -------------------------------------------------------------------
// unpack (u - 8), transpose, NPU repack = a transpose of the 4-bit matrix in which every nibble
// u becomes (u - 8) & 0xF = u ^ 8: out nibble (k, n) = in nibble (n, k) ^ 8.

void w4a16_ct_repack_chain(const int32_t* weight_packed, int64_t e, int64_t n, int64_t kw,
                           int32_t* out, int threads) {
  const auto* in = reinterpret_cast<const uint8_t*>(weight_packed);
  auto* o = reinterpret_cast<uint8_t*>(out);
  // Work items: (expert, band of 128 input rows n): each output row receives 64 contiguous
  // bytes per band.
  const int64_t bands = (n + kChainBand - 1) / kChainBand;
  const bool stream = e * n * kw * 4 >= kStreamBytes;
  parallel_for(
      e * bands, std::max<int64_t>(1, kGrainElems / (kChainBand * 4 * std::max<int64_t>(kw, 1))),
      [&](int64_t lo, int64_t hi) {
        for (int64_t w = lo; w < hi; ++w) {
          const int64_t x = w / bands, n0 = (w % bands) * kChainBand;
          HWY_DYNAMIC_DISPATCH(PkChainBand)
          (in + x * n * kw * 4, n, kw, n0, std::min(n, n0 + kChainBand), stream,
           o + x * n * kw * 4);
        }
      },
      threads);
}

Tensor w4a16_ct_repack_chain(const Tensor& weight_packed) {
  check_w4a16_chain_input(weight_packed);
  const int64_t e = weight_packed.dim(0), n = weight_packed.dim(1), kw = weight_packed.dim(2);
  Tensor out(DType::kI32, {e, kw * 8, n / 8});
  w4a16_ct_repack_chain(weight_packed.data<int32_t>(), e, n, kw, out.data<int32_t>());
  return out;
}

}  // namespace opt
}  // namespace qconf
#endif
