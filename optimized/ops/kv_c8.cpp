// C8 KV cache quantize / dequantize, optimized (qconf/ops/kv_c8.h): IEEE fp32 arithmetic with
// the project's bit-exact RNE narrowing (qconf/opt/convert.h; its array forms are Highway SIMD),
// threaded over fixed chunks of tokens. Bit-identical to the reference because
//   * a product of two bf16 (8-bit) or fp16 (11-bit) significands fits in fp32's 24 bits, so the
//     fp32 multiply is exact and the one RNE to pdt is the reference's rounding;
//   * the sums and the reciprocal are, like the reference, one fp32 RNE then one RNE to pdt;
//   * torch.round of a value clamped to [-128, 127] is the fp32 RNE of v + 1.5 * 2^23 - 1.5 * 2^23
//     under the default rounding mode (no contraction, no fast-math).
// Quantize: rows in blocks of 512 channels through stack buffers (SIMD widen / narrow, plain
// loops the compiler vectorizes); per-channel parameters widened once per call. Dequantize: one
// element at a time (the attention side's dense path; not hot in vllm-ascend's decode, which
// dequantizes inside FIA).
#include "qconf/ops/kv_c8.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

namespace qconf::opt {

namespace {

constexpr int64_t kGrain = 16384;

inline float widen(uint16_t h, bool bf16) {
  const uint32_t b = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint16_t narrow(float f, bool bf16) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return bf16 ? f32_to_bf16_rne(b) : f32_to_f16_rne(b);
}
inline int8_t code_of(float v) {
  // Clamping before the round gives the same codes as after (127.5 -> 127 either way). NaN
  // (only from an Inf offset; the reference rejects it) maps to -128. The round is RNE: adding
  // and subtracting 1.5 * 2^23 in fp32 under the default rounding mode (|v| <= 128 here).
  v = v > -128.0f ? v : -128.0f;
  v = v < 127.0f ? v : 127.0f;
  return static_cast<int8_t>((v + 0x1.8p23f) - 0x1.8p23f);
}
}  // namespace

C8QuantStages c8_quantize(const Tensor& x, const Tensor& inv_scale, const Tensor& offset,
                          bool intermediates, int threads) {
  check_c8_quantize_inputs(x, inv_scale, offset);
  const DType pdt = x.dtype();
  const bool bf16 = pdt == DType::kBF16;
  const int64_t c = x.dim(-1) * x.dim(-2);
  const int64_t rows = c == 0 ? 0 : x.numel() / c;
  C8QuantStages s;
  s.q = Tensor(DType::kI8, x.shape());
  if (intermediates) {
    s.scaled = Tensor(pdt, x.shape());
    s.shifted = Tensor(pdt, x.shape());
  }
  // Per-channel parameters as fp32, once per call.
  std::vector<float> inv(static_cast<size_t>(c)), off(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) {
    inv[j] = widen(inv_scale.data<uint16_t>()[inv_scale.numel() == 1 ? 0 : j], bf16);
    off[j] = widen(offset.data<uint16_t>()[offset.numel() == 1 ? 0 : j], bf16);
  }
  const uint16_t* xp = x.data<uint16_t>();
  int8_t* qp = s.q.data<int8_t>();
  uint16_t* ap = intermediates ? s.scaled.data<uint16_t>() : nullptr;
  uint16_t* bp = intermediates ? s.shifted.data<uint16_t>() : nullptr;
  // Rows (tokens) in fixed chunks; each row in blocks of kBlock channels through stack
  // buffers: widen (SIMD), multiply (vectorized loop), narrow (SIMD), widen, add, narrow, widen,
  // clamp and round (vectorized loop).
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(c, 1));
  parallel_for(
      rows, grain,
      [&](int64_t rb, int64_t re) {
        constexpr int64_t kBlock = 512;
        alignas(64) uint32_t f[kBlock];
        alignas(64) uint16_t h[kBlock];
        const auto widen_n = [bf16](const uint16_t* in, uint32_t* out, size_t n) {
          bf16 ? bf16_to_f32(in, out, n) : f16_to_f32(in, out, n);
        };
        const auto narrow_n = [bf16](const uint32_t* in, uint16_t* out, size_t n) {
          bf16 ? f32_to_bf16_rne(in, out, n) : f32_to_f16_rne(in, out, n);
        };
        for (int64_t r = rb; r < re; ++r)
          for (int64_t c0 = 0; c0 < c; c0 += kBlock) {
            const int64_t n = std::min(kBlock, c - c0);
            const size_t un = static_cast<size_t>(n);
            const int64_t base = r * c + c0;
            widen_n(xp + base, f, un);
            for (int64_t j = 0; j < n; ++j)
              f[j] = std::bit_cast<uint32_t>(std::bit_cast<float>(f[j]) * inv[c0 + j]);
            narrow_n(f, h, un);
            if (ap) std::memcpy(ap + base, h, un * 2);
            widen_n(h, f, un);
            for (int64_t j = 0; j < n; ++j)
              f[j] = std::bit_cast<uint32_t>(std::bit_cast<float>(f[j]) + off[c0 + j]);
            narrow_n(f, h, un);
            if (bp) std::memcpy(bp + base, h, un * 2);
            widen_n(h, f, un);
            for (int64_t j = 0; j < n; ++j) qp[base + j] = code_of(std::bit_cast<float>(f[j]));
          }
      },
      threads);
  return s;
}

Tensor c8_dequantize(const Tensor& q, const Tensor& scale, const Tensor& offset, DType pdt,
                     C8Antiquant mode, int threads) {
  check_c8_dequantize_inputs(q, scale, offset, pdt);
  const bool bf16 = pdt == DType::kBF16;
  const int64_t c = q.dim(-1) * q.dim(-2);
  Tensor o(pdt, q.shape());
  const int8_t* qp = q.data<int8_t>();
  const uint16_t* sp = scale.data<uint16_t>();
  const uint16_t* fp = offset.data<uint16_t>();
  const bool s1 = scale.numel() == 1, f1 = offset.numel() == 1;
  uint16_t* out = o.data<uint16_t>();
  parallel_for(
      q.numel(), kGrain,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t ch = i % c;
          const float v = static_cast<float>(qp[i]);
          const float s = widen(sp[s1 ? 0 : ch], bf16);
          const float f = widen(fp[f1 ? 0 : ch], bf16);
          float r;
          switch (mode) {
            case C8Antiquant::kSubOffset:
              r = widen(narrow(v - f, bf16), bf16) * s;
              break;
            case C8Antiquant::kScaleOnly:
              r = v * s;
              break;
            default:  // kAddOffset
              r = (v + f) * s;
              break;
          }
          out[i] = narrow(r, bf16);
        }
      },
      threads);
  return o;
}

}  // namespace qconf::opt
