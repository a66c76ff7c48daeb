// int8 GEMM (s8 x s8 -> s32), AVX-512 VNNI with a scalar fallback. See gemm_s8.h for the
// layouts and the +128 / +8 bias trick that lets vpdpbusd (u8 x s8) multiply signed operands.
//
// Blocking (tuned on Zen 4: L1d 32 KiB, L2 1 MiB, one zmm vpdpbusd per cycle, ~465 GOPS per
// core measured with a register-only vpdpbusd loop). The work is a grid of (weight panel of 64
// columns) x (chunk of up to kBlocksPerItem row blocks of 6 rows); items are numbered
// panel-major, so consecutive items of one worker reuse the panel from L2. A register block
// holds 6 rows x 64 columns = 24 zmm accumulators; per k-quad it loads 4 weight vectors (256
// bytes) and issues 24 vpdpbusd whose activation dword is an embedded {1to16} broadcast from
// memory. The whole k range is accumulated in registers (no k blocking: a 64-column panel of
// K = 4096 is 256 KiB and stays in L2; the 6 activation rows are 24 KiB, packed contiguously);
// the weight stream is software-prefetched into L1.
// Small M (M <= 192: one item per panel): a worker claims runs of consecutive panels (guided:
// the remaining panels / (2 * workers), at most items / (2 * workers); see the driver), and
// claims its next run before the last panel of the current one, so it always knows its next
// item, and the current item prefetches the next panel into L2 (prefetcht1), spread evenly over
// the first half of its k-steps. Without this, the first row block of every panel waits on L3 /
// DRAM (at M = 16, 3 row blocks per panel, that first block cost as much as the other two). Larger
// M: items one at a time, dynamically. One parallel region per call: a caller's prologue (the fused
// linear's activation quant) runs on the same workers before the tiles (GemmS8Prologue), shared
// out, or replicated into each worker's own copy (GemmS8Prologue::own). Measured on the shared
// 2-core Zen 4 (CPU time, best of >= 5, bench/quant_matmul_bench or a stand-alone harness): M =
// 1024 ~ 440 GOPS (95% of the vpdpbusd peak) with the weights in L2; M = 16 1.75 -> 1.5 ms per GEMM
// with the next-panel prefetch. Session 4 (2 threads, same-process A/B under `chrt -f 10`,
// docs/perf.md): runs of 16 panels beat one panel per claim (with a look-ahead claim for the
// prefetch) by 10-20% at M = 1 and 16 and 2-7% at M = 128 (with interleaved panels neither thread
// streams contiguous memory); runs of 4 or 8 were 0-6% slower than 16. M <= 192 as one item per
// panel beat 96-row chunks at M = 128 by 4% (1 thread) and 11% (2 threads, GEMM alone: with 2
// chunks per panel both threads read every panel from L3). A longer pool spin (100-300 us) gave
// nothing. A fixed home half of the panels per thread (the caller one half, the helper the other,
// then stealing), in case the 2 vCPUs sit on different L3s: no difference (M = 1 / 16 / 128: 0.75 /
// 0.95 / 0.97 vs 0.73 / 0.98 / 0.97). Tried and dropped (all slower here): a 16-row x 16-column
// kernel reading the weights once for M <= 16; k blocking with the accumulators in an L1 tile
// buffer (W slice of 8-32 KiB in L1 for 4-16 row blocks: 5-20% slower at M = 16 and M = 1024: the
// extra accumulator loads / stores cost more than the L2 -> L1 weight traffic they save);
// chunk-major item order (A chunk in L2, the panels streamed: 15-20% slower at M = 1024); other
// software-prefetch distances (512-2048 bytes: no difference at M = 1024). Integer sums are exact
// modulo 2^32 in any order, so neither blocking nor threads change C.
#include "qconf/opt/gemm_s8.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "qconf/core/large_buffer.h"
#include "qconf/opt/cpu.h"
#include "qconf/opt/parallel.h"

namespace qconf::opt {

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  p_.reset(static_cast<uint8_t*>(allocate_large_buffer(std::max<size_t>(bytes, 1))));
}

void AlignedBuffer::Free::operator()(uint8_t* p) const { free_large_buffer(p); }

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Signed int4 element `col` of a row of packed words (notes §0: element 8j+t = nibble t of j).
int32_t int4_at(const int32_t* row_words, int64_t col) {
  const uint32_t w = static_cast<uint32_t>(row_words[col / 8]);
  const int32_t nib = static_cast<int32_t>((w >> (4 * (col % 8))) & 0xFu);
  return nib >= 8 ? nib - 16 : nib;
}

bool cpu_has_vnni() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vnni;
}

// ---- kernels ------------------------------------------------------------------------------
// Each computes one tile of R rows x 64 columns over the whole padded k and writes
// tile[r][c] = sum - corr[r] (corr = weight_bias * rowsum, both modulo 2^32).

#define QCONF_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

// acc += vpdpbusd(w (u8 x 64), 4 activation bytes at p (s8) broadcast to the 16 lanes).
// Inline asm, for two reasons: GCC 12 compiles _mm512_dpbusd_epi32 with a copy of the
// accumulator around every instruction (the pattern does not tie it to the destination), which
// spills a 24-accumulator block; and the {1to16} memory broadcast keeps the activations out of
// registers (the int4 kernel needs 24 accumulators + 2 unpacked weight vectors + a mask).
using i32_alias = int32_t __attribute__((may_alias));
QCONF_VNNI_TARGET inline void dpbusd_bcst(__m512i& acc, __m512i w, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0"
      : "+v"(acc)
      : "v"(w), "m"(*reinterpret_cast<const i32_alias*>(p)));
}

// Software prefetch of the weight stream (4 cache lines per k-step). A full block (R > 2) reads a
// panel that is already in L2 (see PanelPrefetch), or, alone (M <= 6), streams it from L3 or DRAM:
// 4 KiB ahead into L1. A small block (R <= 2, a few cycles per k-step, each panel read once from L3
// or DRAM) issues none: a panel is 256 KiB of contiguous memory that the hardware stream
// prefetchers follow on their own, and every software prefetch tried made it slower. Session 7,
// same process, alternating rounds against oneDNN (K = N = 4096, medians of 12-30 rounds): M = 1
// went from 0.83-0.94x to 1.00-1.16x oneDNN on 2 threads and from 0.93-1.05x to 1.11-1.29x on 1
// thread with the weights in L3, and from 1.05x to 1.20x from DRAM (2 threads); M = 2 +9% (2
// threads); the int4 kernel +12% at M = 1 (2 threads). Keeping only the L1 prefetch 4 KiB ahead
// lost 4-19%, an L1 prefetch 1 KiB ahead 23-31%. Sessions 4-6 had measured the opposite on this VM
// (the L2 prefetch +7% at M = 1): the host behind it changes (docs/perf.md).
// The full block's L1 prefetch runs 4 KiB (16 k-steps) ahead. Session 9, same process against
// oneDNN in alternating rounds, K = N = 4096, weights from DRAM (medians of 15-21 rounds): a
// single block of 3-6 rows, which streams each panel once, went from 0.87-0.97x to 0.99-1.10x
// oneDNN on 1 thread (1 KiB ahead -> 4 KiB); on 2 threads M = 3 went from 0.92-0.93x to 0.99x,
// and M = 4 and 6 measured the same. 2 KiB and 8 KiB lay between; 16 KiB varied. With several
// blocks (the panel in L2), M = 7 to 128: within +-2% on 1 and 2 threads; M = 1024: the same.
// The int4 kernel (8 k per 64 bytes, so 4 KiB are 128 k ahead): M = 4 went from 482-492 to
// 417-423 us on 1 thread and from 250-256 to 218-227 us on 2; M = 16 and 128 the same.
constexpr int64_t kL1PrefetchBytes = 4096;
template <int R>
QCONF_VNNI_TARGET inline void prefetch_weights(const uint8_t* w) {
  if constexpr (R > 2) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(w + kL1PrefetchBytes + 64 * j), _MM_HINT_T0);
  }
}

// The lines of the next weight panel that a kernel call pulls into L2 while it computes:
// `lines` cache lines from `next` on, rate16 / 16 lines per k-step (see the driver).
struct PanelPrefetch {
  const uint8_t* next = nullptr;
  int64_t lines = 0, rate16 = 0;
};

// int8 weights: per k-quad, 4 weight vectors x R activation dwords (24 vpdpbusd for R = 6).
template <int R>
QCONF_VNNI_TARGET void kernel_s8_vnni(const uint8_t* w, const int8_t* a, int64_t quads,
                                      const uint32_t* corr, int32_t* tile, PanelPrefetch np) {
  __m512i c[R][4];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) c[r][j] = _mm512_setzero_si512();
  int64_t pf_line = 0, pf_acc = 0;
  for (int64_t q = 0; q < quads; ++q) {
    prefetch_weights<R>(w);
    if (pf_line < np.lines) {  // the next panel, np.rate16 / 16 lines per k-step
      pf_acc += np.rate16;
      for (; pf_acc >= 16 && pf_line < np.lines; pf_acc -= 16, ++pf_line)
        _mm_prefetch(reinterpret_cast<const char*>(np.next + 64 * pf_line), _MM_HINT_T1);
    }

    const __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + 64);
    const __m512i w2 = _mm512_load_si512(w + 128), w3 = _mm512_load_si512(w + 192);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      dpbusd_bcst(c[r][0], w0, a + 4 * r);
      dpbusd_bcst(c[r][1], w1, a + 4 * r);
      dpbusd_bcst(c[r][2], w2, a + 4 * r);
      dpbusd_bcst(c[r][3], w3, a + 4 * r);
    }
    w += 4 * 64;
    a += 4 * R;  // a block of R rows: quad stride 4R (gemm_s8.h)
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m512i k = _mm512_set1_epi32(static_cast<int32_t>(corr[r]));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      _mm512_store_si512(tile + r * kGemmS8Nr + 16 * j, _mm512_sub_epi32(c[r][j], k));
  }
}

// int4 weights: per k-octet, each 64-byte vector holds two k-quads as nibbles; the low nibbles
// are quad 2o, the high nibbles quad 2o+1 (unpacked in registers with one and, one shift).
template <int R>
QCONF_VNNI_TARGET void kernel_s4_vnni(const uint8_t* w, const int8_t* a, int64_t octets,
                                      const uint32_t* corr, int32_t* tile, PanelPrefetch np) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512i c[R][4];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) c[r][j] = _mm512_setzero_si512();
  int64_t pf_line = 0, pf_acc = 0;
  for (int64_t o = 0; o < octets; ++o) {
    prefetch_weights<R>(w);
    if (pf_line < np.lines) {  // the next panel, np.rate16 / 16 lines per k-step
      pf_acc += np.rate16;
      for (; pf_acc >= 16 && pf_line < np.lines; pf_acc -= 16, ++pf_line)
        _mm_prefetch(reinterpret_cast<const char*>(np.next + 64 * pf_line), _MM_HINT_T1);
    }

#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512i v = _mm512_load_si512(w + 64 * j);
      const __m512i lo = _mm512_and_si512(v, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        dpbusd_bcst(c[r][j], lo, a + 4 * r);
        dpbusd_bcst(c[r][j], hi, a + 4 * R + 4 * r);
      }
    }
    w += 4 * 64;
    a += 8 * R;
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m512i k = _mm512_set1_epi32(static_cast<int32_t>(corr[r]));
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      _mm512_store_si512(tile + r * kGemmS8Nr + 16 * j, _mm512_sub_epi32(c[r][j], k));
  }
}

using VnniKernel = void (*)(const uint8_t*, const int8_t*, int64_t, const uint32_t*, int32_t*,
                            PanelPrefetch);
constexpr VnniKernel kS8Kernels[kGemmS8Mr + 1] = {
    nullptr,           kernel_s8_vnni<1>, kernel_s8_vnni<2>, kernel_s8_vnni<3>,
    kernel_s8_vnni<4>, kernel_s8_vnni<5>, kernel_s8_vnni<6>};
constexpr VnniKernel kS4Kernels[kGemmS8Mr + 1] = {
    nullptr,           kernel_s4_vnni<1>, kernel_s4_vnni<2>, kernel_s4_vnni<3>,
    kernel_s4_vnni<4>, kernel_s4_vnni<5>, kernel_s4_vnni<6>};

// Scalar fallback on the same packed layouts (also the test oracle for the VNNI kernels).
// Unsigned arithmetic: the sums wrap modulo 2^32 exactly like vpdpbusd.
void kernel_scalar(const uint8_t* w, const int8_t* a, int64_t kp, bool int4, int rows,
                   const uint32_t* corr, int32_t* tile) {
  uint32_t acc[kGemmS8Mr][kGemmS8Nr] = {};
  const int64_t quads = kp / 4;
  for (int64_t q = 0; q < quads; ++q) {
    const int8_t* aq = a + q * 4 * rows;  // a block of `rows` rows: quad stride 4 rows
    for (int c = 0; c < kGemmS8Nr; ++c) {
      const int j = c / 16, lane = c % 16;
      uint8_t wu[4];
      for (int t = 0; t < 4; ++t) {
        if (!int4) {
          wu[t] = w[q * 256 + j * 64 + lane * 4 + t];
        } else {
          const uint8_t byte = w[(q / 2) * 256 + j * 64 + lane * 4 + t];
          wu[t] = (q % 2 == 0) ? (byte & 0xF) : (byte >> 4);
        }
      }
      for (int r = 0; r < rows; ++r)
        for (int t = 0; t < 4; ++t)
          acc[r][c] += static_cast<uint32_t>(wu[t]) * static_cast<uint32_t>(aq[4 * r + t]);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < kGemmS8Nr; ++c)
      tile[r * kGemmS8Nr + c] = static_cast<int32_t>(acc[r][c] - corr[r]);
}

constexpr int64_t kBlocksPerItem = 16;  // 96 rows per work item
constexpr int64_t kSmallMBlocks = 32;   // up to 192 rows: one item per panel (small M)

}  // namespace

// ---- packing ------------------------------------------------------------------------------

PackedWeightsS8 PackedWeightsS8::pack(const Tensor& w, int threads) {
  if (w.rank() != 2)
    throw std::invalid_argument("PackedWeightsS8::pack: weight must be 2-D [k, n], got " +
                                w.describe());
  if (w.dtype() == DType::kI8)
    return pack_s8(w.data<int8_t>(), w.dim(0), w.dim(1), w.dim(1), threads);
  if (w.dtype() == DType::kI32) return pack_s4(w.data<int32_t>(), w.dim(0), w.dim(1) * 8, threads);
  throw std::invalid_argument(
      "PackedWeightsS8::pack: weight must be int8 [k, n] or int32 [k, n/8] (packed int4), got " +
      w.describe());
}

PackedWeightsS8 PackedWeightsS8::pack_s8(const int8_t* w, int64_t k, int64_t n, int64_t ldw,
                                         int threads) {
  if (k < 0 || n < 0 || ldw < n)
    throw std::invalid_argument("PackedWeightsS8::pack_s8: bad k, n or ldw");
  PackedWeightsS8 p;
  p.k_ = k;
  p.n_ = n;
  p.kp_ = round_up(k, 4);
  p.int4_ = false;
  p.buf_ = AlignedBuffer(static_cast<size_t>(p.panels()) * p.panel_bytes());
  const int64_t quads = p.kp_ / 4;
  parallel_for(
      p.panels(), 1,
      [&](int64_t p0, int64_t p1) {
        for (int64_t pn = p0; pn < p1; ++pn) {
          uint8_t* dst = p.buf_.data() + pn * p.panel_bytes();
          for (int64_t q = 0; q < quads; ++q)
            for (int c = 0; c < kGemmS8Nr; ++c) {
              const int64_t col = pn * kGemmS8Nr + c;
              uint8_t* d = dst + q * 256 + (c / 16) * 64 + (c % 16) * 4;
              for (int t = 0; t < 4; ++t) {
                const int64_t kk = 4 * q + t;
                const int8_t v = (kk < k && col < n) ? w[kk * ldw + col] : 0;
                d[t] = static_cast<uint8_t>(static_cast<uint8_t>(v) ^ 0x80u);  // w + 128
              }
            }
        }
      },
      threads);
  return p;
}

PackedWeightsS8 PackedWeightsS8::pack_s4(const int32_t* w, int64_t k, int64_t n, int threads) {
  if (k < 0 || n < 0 || n % 8 != 0)
    throw std::invalid_argument("PackedWeightsS8::pack_s4: n must be a multiple of 8");
  PackedWeightsS8 p;
  p.k_ = k;
  p.n_ = n;
  p.kp_ = round_up(k, 8);
  p.int4_ = true;
  p.buf_ = AlignedBuffer(static_cast<size_t>(p.panels()) * p.panel_bytes());
  const int64_t octets = p.kp_ / 8, words = n / 8;
  auto u4 = [&](int64_t kk, int64_t col) -> uint32_t {  // (w + 8) as an unsigned nibble
    const int32_t v = (kk < k && col < n) ? int4_at(w + kk * words, col) : 0;
    return static_cast<uint32_t>(v + 8);
  };
  parallel_for(
      p.panels(), 1,
      [&](int64_t p0, int64_t p1) {
        for (int64_t pn = p0; pn < p1; ++pn) {
          uint8_t* dst = p.buf_.data() + pn * p.panel_bytes();
          for (int64_t o = 0; o < octets; ++o)
            for (int c = 0; c < kGemmS8Nr; ++c) {
              const int64_t col = pn * kGemmS8Nr + c;
              uint8_t* d = dst + o * 256 + (c / 16) * 64 + (c % 16) * 4;
              for (int t = 0; t < 4; ++t)
                d[t] = static_cast<uint8_t>(u4(8 * o + t, col) | u4(8 * o + 4 + t, col) << 4);
            }
        }
      },
      threads);
  return p;
}

void PackedActivationsS8::pack_s8(const int8_t* a, int64_t m, int64_t k, int64_t lda, int64_t kp,
                                  int threads) {
  if (m < 0 || k < 0 || lda < k || kp < k || kp % 4 != 0)
    throw std::invalid_argument("PackedActivationsS8::pack_s8: bad m, k, lda or padded k");
  reset(m, kp);  // the storage, reused when it is large enough (no allocation per call)
  // Zero padding past k (the quads of a partial last k-quad and the padded quads).
  if (kp != k) std::memset(buf_.data(), 0, static_cast<size_t>(blocks()) * block_bytes());
  const int64_t quads = k / 4;
  parallel_for(
      blocks(), 8,
      [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          int8_t* dst = reinterpret_cast<int8_t*>(buf_.data()) + b * block_bytes();
          const int64_t qs = 4 * block_rows(b);  // the block's quad stride
          for (int r = 0; r < block_rows(b); ++r) {
            const int64_t row = b * kGemmS8Mr + r;
            const int8_t* src = a + row * lda;
            // Whole k-quads as 4-byte moves, then the tail byte by byte.
            for (int64_t q = 0; q < quads; ++q) std::memcpy(dst + q * qs + 4 * r, src + 4 * q, 4);
            for (int64_t kk = 4 * quads; kk < k; ++kk)
              dst[quads * qs + 4 * r + (kk - 4 * quads)] = src[kk];
            int64_t sum = 0;
            for (int64_t kk = 0; kk < k; ++kk) sum += src[kk];
            rowsum_[static_cast<size_t>(row)] = static_cast<int32_t>(static_cast<uint32_t>(sum));
          }
        }
      },
      threads);
}

void PackedActivationsS8::reset(int64_t m, int64_t kp) {
  if (m < 0 || kp < 0 || kp % 4 != 0)
    throw std::invalid_argument("PackedActivationsS8::reset: bad m or padded k");
  m_ = m;
  kp_ = kp;
  const size_t bytes = static_cast<size_t>(blocks()) * block_bytes();
  if (buf_.size() < bytes || !buf_.data()) buf_ = AlignedBuffer(bytes);
  if (rowsum_cap_ < static_cast<size_t>(std::max<int64_t>(m, 1))) {
    rowsum_cap_ = static_cast<size_t>(std::max<int64_t>(m, 1));
    rowsum_.reset(new int32_t[rowsum_cap_]);
  }
  // No zeroing: set_row writes a row's k padding, and a partial last block holds only its rows
  // (quad stride 4r). Zeroing that block cost a 24 KiB memset per call at K = 4096, M = 1.
}

void PackedActivationsS8::set_row(int64_t row, const int8_t* codes, int64_t k) {
  if (row < 0 || row >= m_ || k < 0 || k > kp_)
    throw std::invalid_argument("PackedActivationsS8::set_row: bad row or k");
  int8_t* dst = row_codes(row);
  const int64_t quads = k / 4;
  const int64_t qs = quad_stride(row);
  for (int64_t q = 0; q < quads; ++q) std::memcpy(dst + q * qs, codes + 4 * q, 4);
  // The partial last quad and the padding up to kp: zeros after the row's last value.
  for (int64_t q = quads; q < kp_ / 4; ++q) {
    int8_t quad[4] = {0, 0, 0, 0};
    for (int t = 0; t < 4 && 4 * q + t < k; ++t) quad[t] = codes[4 * q + t];
    std::memcpy(dst + q * qs, quad, 4);
  }
  int64_t sum = 0;
  for (int64_t kk = 0; kk < k; ++kk) sum += codes[kk];
  rowsum_[static_cast<size_t>(row)] = static_cast<int32_t>(static_cast<uint32_t>(sum));
}

void PackedActivationsS8::pack_s4(const int32_t* a, int64_t m, int64_t k, int64_t kp, int threads) {
  if (m < 0 || k < 0 || k % 8 != 0 || kp < k || kp % 4 != 0)
    throw std::invalid_argument("PackedActivationsS8::pack_s4: bad m, k or padded k");
  reset(m, kp);  // the storage, reused when it is large enough
  std::memset(buf_.data(), 0, static_cast<size_t>(blocks()) * block_bytes());
  parallel_for(
      blocks(), 8,
      [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          int8_t* dst = reinterpret_cast<int8_t*>(buf_.data()) + b * block_bytes();
          const int64_t qs = 4 * block_rows(b);  // the block's quad stride
          for (int r = 0; r < block_rows(b); ++r) {
            const int64_t row = b * kGemmS8Mr + r;
            int64_t sum = 0;
            for (int64_t kk = 0; kk < k; ++kk) {
              const int32_t v = int4_at(a + row * (k / 8), kk);
              dst[(kk / 4) * qs + 4 * r + kk % 4] = static_cast<int8_t>(v);
              sum += v;
            }
            rowsum_[static_cast<size_t>(row)] = static_cast<int32_t>(static_cast<uint32_t>(sum));
          }
        }
      },
      threads);
}

// ---- driver -------------------------------------------------------------------------------

std::string_view gemm_s8_kernel() { return cpu_has_vnni() ? "avx512_vnni" : "scalar"; }

void gemm_s8(const PackedActivationsS8& a, const PackedWeightsS8& w, S8TileFn fn, void* ctx,
             const GemmS8Options& opt) {
  if (a.k_padded() != w.k_padded())
    throw std::invalid_argument("gemm_s8: activations packed for padded k " +
                                std::to_string(a.k_padded()) + ", weights have " +
                                std::to_string(w.k_padded()));
  const GemmS8Prologue* pro =
      opt.prologue && (opt.prologue->units > 0 || opt.prologue->own) ? opt.prologue : nullptr;
  const bool replicated = pro && pro->own;
  if (replicated && pro->max_workers < 1)
    throw std::invalid_argument("gemm_s8: a replicated prologue needs max_workers >= 1");
  const int64_t pro_grain = pro ? std::max<int64_t>(1, pro->grain) : 1;  // units per claim
  const int64_t panels = w.panels(), blocks = a.blocks();
  if ((panels == 0 || blocks == 0) && (!pro || replicated)) return;
  const bool vnni = !opt.force_scalar && cpu_has_vnni();
  // Row chunks of at most kBlocksPerItem blocks, as even as possible (M = 128: 11 + 11 blocks,
  // not 16 + 6, so that the last items of a call are not the long ones).
  const int64_t chunks =
      blocks <= kSmallMBlocks ? 1 : (blocks + kBlocksPerItem - 1) / kBlocksPerItem;
  const int64_t chunk_blocks = (blocks + chunks - 1) / chunks;
  const uint32_t wbias = static_cast<uint32_t>(w.weight_bias());
  const int64_t steps = w.int4() ? w.k_padded() / 8 : w.k_padded() / 4;
  const int64_t items = panels * chunks;
  const int64_t panel_lines = static_cast<int64_t>(w.panel_bytes()) / 64;
  // Small M (M <= 192, one chunk of row blocks: every item is a new panel): a worker claims a
  // run of consecutive panels, so it knows its next panel and pulls it into L2 while the
  // current one computes (see PanelPrefetch). Larger M: items one at a time (a panel serves
  // several consecutive items from L2; the next-panel prefetch measured 0-3% slower at
  // M = 1024, where it keeps L2 busy next to the A chunk).
  const bool small_m = chunks == 1;

  auto compute_item = [&](const PackedActivationsS8& act, int worker, int64_t item,
                          int64_t next_item, int32_t* tile, uint32_t* corr) {
    const int64_t pn = item / chunks, chunk = item % chunks;
    const int64_t b_first = chunk * chunk_blocks;
    const int64_t b_end = std::min(blocks, b_first + chunk_blocks);
    // With more than one row block (M = 1 is a pure stream with its own long prefetch
    // distance), the next panel's lines are spread evenly over the first half of this item's
    // k-steps. Session 8, same process, alternating rounds (K = N = 4096): over the whole item
    // -> over its first half took M = 16 on 2 threads from 676-686 to 657-658 us (three pairs
    // of 40 rounds); 1 thread at M = 16 and 128, and 2 threads at M = 32 to 128, measured the
    // same (within +-0.5%). Over the first block only, or no next-panel prefetch at all, was
    // slower at M = 16 (2 threads: 668 and 699 against 659 us for the half).
    const bool next_panel = next_item >= 0 && b_end - b_first > 1 && steps > 0;
    int64_t pf_done = 0;
    const int64_t item_steps = (b_end - b_first) * steps;
    const int64_t rate16 = next_panel ? 2 * ((16 * panel_lines + item_steps - 1) / item_steps) : 0;
    for (int64_t b = b_first; b < b_end; ++b) {
      const int rows = act.block_rows(b);
      for (int r = 0; r < rows; ++r)
        corr[r] = wbias * static_cast<uint32_t>(act.row_sums()[b * kGemmS8Mr + r]);
      if (vnni) {
        PanelPrefetch np;
        if (next_panel) {
          np.next = w.panel(next_item / chunks) + 64 * pf_done;
          np.rate16 = rate16;
          np.lines = std::min(panel_lines - pf_done, (rate16 * steps) / 16);
          pf_done += np.lines;
        }
        (w.int4() ? kS4Kernels : kS8Kernels)[rows](w.panel(pn), act.block(b), steps, corr, tile,
                                                   np);
      } else {
        kernel_scalar(w.panel(pn), act.block(b), w.k_padded(), w.int4(), rows, corr, tile);
      }
      const int cols = static_cast<int>(std::min<int64_t>(kGemmS8Nr, w.n() - pn * kGemmS8Nr));
      const S8Tile t{b * kGemmS8Mr, pn * kGemmS8Nr, rows, cols, tile, worker};
      fn(ctx, t);
    }
  };

  // One parallel region: the prologue's units, a wait until they are all done, then the items,
  // both claimed through shared counters (any worker may take any claim, so a helper that
  // starts late, or a descheduled one, costs at most one claim). The wait cannot hang: every
  // unit counted as claimed is being run by a worker that is running (a pool that runs the
  // region inline runs it as one call that does all the units first). A replicated prologue has
  // no units and no wait: slot i (parallel_for's index; the inline call is slot 0) prepares its
  // own activations, then claims items like the others.
  std::atomic<int64_t> next_unit{0}, units_done{0}, next{0};
  std::atomic<bool> failed{false};
  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  const int64_t work =
      std::max(items, pro && !replicated ? (pro->units + pro_grain - 1) / pro_grain : 0);
  const int64_t workers = std::max<int64_t>(
      1, std::min<int64_t>({threads, work, replicated ? pro->max_workers : threads}));
  // Small M: runs of consecutive panels per claim, so that each thread streams long stretches
  // of contiguous weights and the next panel is prefetched; guided sizes, i.e. the remaining
  // items / (2 * workers), at most `run` (2 threads, N = 4096: 16, 12, 9, 7, 5, 4, 3, 2, 2,
  // 1...), so that the threads finish within about one panel of each other (equal runs of 16
  // ended up to a whole run apart when one thread ran a few percent slower). Same-process A/B,
  // medians of 20-30 alternating rounds (session 5): +1.5% at M = 128, +2% at M = 16, +0.6%
  // at M = 1 (2 threads). Larger M: one item per claim.
  const int64_t run = small_m ? std::max<int64_t>(1, (items + 2 * workers - 1) / (2 * workers)) : 1;
  auto claim = [&](int64_t* c0, int64_t* c1) {
    int64_t i0 = next.load(std::memory_order_relaxed), len = 1;
    do {
      if (i0 >= items) {
        *c0 = *c1 = items;
        return;
      }
      len = std::clamp<int64_t>((items - i0 + 2 * workers - 1) / (2 * workers), 1, run);
    } while (!next.compare_exchange_weak(i0, i0 + len, std::memory_order_relaxed));
    *c0 = i0;
    *c1 = i0 + len;
  };
  parallel_for(
      workers, 1,
      [&](int64_t slot, int64_t) {
        const PackedActivationsS8* mine = &a;
        if (replicated) {
          mine = pro->own(pro->ctx, static_cast<int>(slot));
          if (!mine || mine->blocks() != blocks || mine->k_padded() != a.k_padded())
            throw std::logic_error("gemm_s8: a replicated prologue returned other activations");
        } else if (pro) {
          for (int64_t u;
               (u = next_unit.fetch_add(pro_grain, std::memory_order_relaxed)) < pro->units;) {
            const int64_t u1 = std::min(pro->units, u + pro_grain);
            try {
              pro->fn(pro->ctx, u, u1);
            } catch (...) {
              failed.store(true, std::memory_order_relaxed);
              units_done.fetch_add(u1 - u, std::memory_order_release);
              throw;  // the pool (or the inline caller) rethrows it from gemm_s8
            }
            units_done.fetch_add(u1 - u, std::memory_order_release);
          }
          while (units_done.load(std::memory_order_acquire) < pro->units) _mm_pause();
          if (failed.load(std::memory_order_relaxed)) return;
        }
        alignas(64) int32_t tile[kGemmS8Mr * kGemmS8Nr];
        uint32_t corr[kGemmS8Mr];
        int64_t c0, c1;
        claim(&c0, &c1);
        while (c0 < items) {
          int64_t n0 = items, n1 = items;
          if (!small_m) claim(&n0, &n1);  // one item per claim, nothing to prefetch
          for (int64_t item = c0; item < c1; ++item) {
            // Small M: the next run is claimed while the last panel of this one computes, so
            // that panel can prefetch the next run's first panel.
            if (small_m && item + 1 == c1) claim(&n0, &n1);
            const int64_t following = !small_m        ? -1
                                      : item + 1 < c1 ? item + 1
                                      : n0 < items    ? n0
                                                      : -1;
            compute_item(*mine, static_cast<int>(slot), item, following, tile, corr);
          }
          c0 = n0;
          c1 = n1;
        }
      },
      static_cast<int>(workers));
}

namespace {
struct StoreS32 {
  int32_t* c;
  int64_t ldc;
};
void store_s32_tile(void* ctx, const S8Tile& t) {
  const auto* s = static_cast<const StoreS32*>(ctx);
  for (int r = 0; r < t.rows; ++r)
    std::memcpy(s->c + (t.row0 + r) * s->ldc + t.col0, t.acc + r * kGemmS8Nr,
                static_cast<size_t>(t.cols) * sizeof(int32_t));
}
}  // namespace

void gemm_s8_s32(const PackedActivationsS8& a, const PackedWeightsS8& w, int32_t* c, int64_t ldc,
                 const GemmS8Options& opt) {
  StoreS32 s{c, ldc};
  gemm_s8(a, w, store_s32_tile, &s, opt);
}

}  // namespace qconf::opt
