// int8 GEMM: C (int32) = A (int8 [m, k]) @ W (int8 [k, n], or int4 packed 8 per int32), with
// AVX-512 VNNI (vpdpbusd) when the CPU has it and a scalar fallback otherwise. Integer
// accumulation is exact (modulo 2^32, like the NPU's int32 accumulator), so the result does not
// depend on the kernel, the blocking or the thread count.
//
// How vpdpbusd is used. vpdpbusd multiplies UNSIGNED bytes of its first source by SIGNED bytes of
// its second and adds groups of four into int32 lanes. The activations are the second source,
// broadcast from memory one k-quad (4 bytes) at a time, so they stay signed; the weights are
// stored unsigned, biased by 128 (int8: w ^ 0x80 = w + 128) or by 8 (int4: nibble ^ 8 = w + 8):
//     sum_k a[k] * (w[k] + c) = acc + c * sum_k a[k],
// and the kernel subtracts c * rowsum(a) (computed when A is packed) before handing a tile out.
//
// Layouts (all 64-byte aligned):
//  * W is cut into panels of kGemmS8Nr = 64 columns (4 zmm of 16 int32 lanes), zero-padded (a
//    padded weight is stored as the code of 0). int8: for each k-quad q, 4 vectors of 64 bytes,
//    vector j holding columns 16j..16j+15, byte 4c+t = w[4q+t][16j+c] ^ 0x80. int4: for each
//    k-octet o, 4 vectors of 64 bytes, byte 4c+t = (w[8o+t] ^ 8) | (w[8o+4+t] ^ 8) << 4: one load
//    and two mask/shift ops give the two k-quads' unsigned bytes (int4 is unpacked in registers).
//  * A is cut into blocks of kGemmS8Mr = 6 rows; a block of r rows (6, or fewer for the last
//    block) stores, per k-quad, its r rows' 4 bytes (a quad stride of 4r bytes), k zero-padded
//    to the weights' padded k. Blocks start every 6 * kp bytes. The r-row kernel steps 4r bytes
//    per quad, so a short last block is dense: at M = 1 the row is 4 KiB of contiguous codes
//    (K = 4096), not 4 KiB spread over 24 KiB of cache lines that the quant must write and the
//    kernel must read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "qconf/core/tensor.h"
#include "qconf/ops/quant_matmul.h"

namespace qconf::opt {

inline constexpr int kGemmS8Nr = 64;  // columns per weight panel and per tile
inline constexpr int kGemmS8Mr = 6;   // rows per register block and per tile

// A 64-byte aligned byte buffer (2 MiB aligned and huge-page backed from 2 MiB on where the
// system allows it: qconf/core/large_buffer.h).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  uint8_t* data() { return p_.get(); }
  const uint8_t* data() const { return p_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> p_;
  size_t size_ = 0;
};

// Weights packed once (a benchmark or a model packs at load time, then calls many times).
class PackedWeightsS8 {
 public:
  PackedWeightsS8() = default;
  // w: int8 [k, n], or int32 [k, n/8] (8 int4 per word, element 8j+t in bits [4t, 4t+3]).
  static PackedWeightsS8 pack(const Tensor& w, int threads = 0);
  static PackedWeightsS8 pack_s8(const int8_t* w, int64_t k, int64_t n, int64_t ldw,
                                 int threads = 0);
  // w: k rows of n/8 words.
  static PackedWeightsS8 pack_s4(const int32_t* w, int64_t k, int64_t n, int threads = 0);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  bool int4() const { return int4_; }
  int64_t k_padded() const { return kp_; }  // multiple of 4 (int8) or 8 (int4)
  int64_t panels() const { return (n_ + kGemmS8Nr - 1) / kGemmS8Nr; }
  size_t panel_bytes() const { return static_cast<size_t>(kp_) * kGemmS8Nr / (int4_ ? 2 : 1); }
  const uint8_t* panel(int64_t p) const { return buf_.data() + p * panel_bytes(); }
  // c in sum a * (w + c): 128 for int8, 8 for int4.
  int32_t weight_bias() const { return int4_ ? 8 : 128; }

 private:
  int64_t k_ = 0, n_ = 0, kp_ = 0;
  bool int4_ = false;
  AlignedBuffer buf_;
};

// Activations packed for one GEMM with weights of padded depth kp.
class PackedActivationsS8 {
 public:
  // a: m rows of int8, row stride lda (>= k). pack_s8 and pack_s4 reuse the object's buffers
  // when they are large enough, as reset does.
  void pack_s8(const int8_t* a, int64_t m, int64_t k, int64_t lda, int64_t kp, int threads = 0);
  // a: m rows of k/8 int32 words (packed int4), k % 8 == 0.
  void pack_s4(const int32_t* a, int64_t m, int64_t k, int64_t kp, int threads = 0);

  // For callers that produce the rows themselves (the fused W8A8_DYNAMIC linear quantizes
  // straight into this layout): sizes the object for m rows of padded depth kp, reusing the
  // buffers when they are large enough (no allocation when called again with the same or a
  // smaller size); then every row in [0, m) must be given to set_row (or written through
  // row_codes + set_row_sum).
  void reset(int64_t m, int64_t kp);
  // Stores row `row` (k <= kp int8 values, zeros up to kp) and its row sum (modulo 2^32, like
  // pack_s8). Distinct rows may be set concurrently.
  void set_row(int64_t row, const int8_t* codes, int64_t k);
  // Direct access for a writer of its own: k-quad q of row `row` (4 bytes, all of kp/4 quads
  // must be written, zeros past k) is at row_codes(row) + q * quad_stride(row); its row sum
  // goes to set_row_sum.
  int8_t* row_codes(int64_t row) {
    return reinterpret_cast<int8_t*>(buf_.data()) + (row / kGemmS8Mr) * block_bytes() +
           4 * (row % kGemmS8Mr);
  }
  // Rows in block b (kGemmS8Mr, except a short last block), and the quad stride of its rows.
  int block_rows(int64_t b) const {
    return static_cast<int>(std::min<int64_t>(kGemmS8Mr, m_ - b * kGemmS8Mr));
  }
  int64_t quad_stride(int64_t row) const { return 4 * block_rows(row / kGemmS8Mr); }
  void set_row_sum(int64_t row, int32_t sum) { rowsum_[static_cast<size_t>(row)] = sum; }

  int64_t m() const { return m_; }
  int64_t k_padded() const { return kp_; }
  int64_t blocks() const { return (m_ + kGemmS8Mr - 1) / kGemmS8Mr; }
  size_t block_bytes() const { return static_cast<size_t>(kp_) * kGemmS8Mr; }
  const int8_t* block(int64_t b) const {
    return reinterpret_cast<const int8_t*>(buf_.data()) + b * block_bytes();
  }
  const int32_t* row_sums() const { return rowsum_.get(); }  // sum_k a[r][k], exact

 private:
  int64_t m_ = 0, kp_ = 0;
  AlignedBuffer buf_;
  std::unique_ptr<int32_t[]> rowsum_;
  size_t rowsum_cap_ = 0;  // rows rowsum_ can hold (reset)
};

// One finished tile: rows [row0, row0 + rows) x columns [col0, col0 + cols) of C, as int32
// (the exact acc modulo 2^32). acc has a row stride of kGemmS8Nr; cols <= kGemmS8Nr.
struct S8Tile {
  int64_t row0, col0;
  int rows, cols;
  const int32_t* acc;
  int worker = 0;  // with GemmS8Prologue::own: the worker slot whose activations gave the tile
};
// Called on the worker thread that computed the tile; tiles never overlap.
using S8TileFn = void (*)(void* ctx, const S8Tile& tile);

// Work that must finish before any tile is computed (the fused linear quantizes and packs its
// activation rows here), run by the GEMM's own workers in the same parallel region: units
// [0, units) in chunks of `grain`, handed out dynamically, then every worker waits until all
// units are done and starts on the tiles. This saves a second pool hand-off per call. fn must
// not depend on which thread runs it; an exception from fn is rethrown by gemm_s8.
//
// Replicated instead (`own` set; small M): every worker w first calls own(ctx, w), which prepares
// the worker's own copy of the activations (the same rows, packed alike) and returns it, and then
// computes its tiles from that copy (S8Tile::worker = w); fn and units are not used. No worker
// waits for another, and no worker reads lines that another one wrote. Slots w are 0 .. workers
// - 1, at most max_workers; a slot may run on any thread, but never on two at once.
struct GemmS8Prologue {
  void (*fn)(void* ctx, int64_t u0, int64_t u1) = nullptr;
  void* ctx = nullptr;
  int64_t units = 0, grain = 1;
  const PackedActivationsS8* (*own)(void* ctx, int worker) = nullptr;
  int max_workers = 1;
};

struct GemmS8Options {
  int threads = 0;                           // 0 = default_threads(); results never depend on it
  bool force_scalar = false;                 // run the scalar kernel even on a VNNI CPU (tests)
  const GemmS8Prologue* prologue = nullptr;  // optional, see GemmS8Prologue
};

// "avx512_vnni" or "scalar": the kernel gemm_s8 runs on this CPU.
std::string_view gemm_s8_kernel();

// C = A @ W, tile by tile into `fn`. A's padded k must equal W's.
void gemm_s8(const PackedActivationsS8& a, const PackedWeightsS8& w, S8TileFn fn, void* ctx,
             const GemmS8Options& opt = {});
// C = A @ W into row-major int32 c (m x n, row stride ldc).
void gemm_s8_s32(const PackedActivationsS8& a, const PackedWeightsS8& w, int32_t* c, int64_t ldc,
                 const GemmS8Options& opt = {});

// ---- ops on pre-packed weights -------------------------------------------------------------

// npu_quant_matmul with x2 pre-packed (2-D, int8 or int4 as x1): the output only.
// x1: int8 [m, k] or [b, m, k], or int32 [.., m, k/8]. Same numbers as ref::npu_quant_matmul.
Tensor npu_quant_matmul_packed(const Tensor& x1, const PackedWeightsS8& x2, const Tensor& scale,
                               const Tensor* offset, const Tensor* pertoken_scale,
                               const Tensor* bias, const QuantMatmulConfig& cfg,
                               const GemmS8Options& opt = {});

// vllm-ascend W8A8_DYNAMIC linear apply (notes/vllm_ascend_quant.md §A):
//   (x_q, s) = npu_dynamic_quant(x)   (A2/A3 kernel: m = 127/amax, RINT(x*m), scale = 1/m)
//   y = npu_quant_matmul(x_q, W, weight_scale, pertoken_scale=s, bias, output_dtype=x.dtype)
// x: bfloat16 or float16 [.., K]; weight_scale: float32 or bfloat16 [1] | [N]; bias: optional
// [N] (int32, float32, or x's dtype). Returns x.dtype [.., N].
Tensor w8a8_dynamic_linear(const Tensor& x, const PackedWeightsS8& w, const Tensor& weight_scale,
                           const Tensor* bias, const GemmS8Options& opt = {});
// The same into a caller-owned output (x.dtype, x.shape[:-1] + [N]; every element is written),
// as a framework with a caching allocator would call it: no allocation or zero fill of y.
void w8a8_dynamic_linear(const Tensor& x, const PackedWeightsS8& w, const Tensor& weight_scale,
                         const Tensor* bias, Tensor& y, const GemmS8Options& opt = {});

}  // namespace qconf::opt
