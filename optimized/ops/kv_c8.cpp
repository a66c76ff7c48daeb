// C8 KV cache quantize / dequantize, optimized (qconf/ops/kv_c8.h): IEEE fp32 arithmetic with
// the project's bit-exact RNE narrowing (qconf/opt/convert.h), threaded over fixed chunks of
// elements. Bit-identical to the reference because
//   * a product of two bf16 (8-bit) or fp16 (11-bit) significands fits in fp32's 24 bits, so the
//     fp32 multiply is exact and the one RNE to pdt is the reference's rounding;
//   * the sums and the reciprocal are, like the reference, one fp32 RNE then one RNE to pdt;
//   * torch.round is nearbyint under the default round-to-nearest-even mode (an integer of at
//     most 2^11 in magnitude after the clamp is exact).
// The per-channel parameters are indexed by i % C; no allocation inside the loops.
#include "qconf/ops/kv_c8.h"

#include <cmath>
#include <cstring>

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
inline int8_t code_of(float shifted) {
  // NaN was rejected up front (x NaN); a NaN from Inf + (-Inf) offset is reported by the
  // reference's checks on the same inputs; here it saturates like the clamp would not: guard.
  if (!(shifted == shifted)) return 0;
  if (shifted >= 127.0f) return 127;
  if (shifted <= -128.0f) return -128;
  return static_cast<int8_t>(std::nearbyint(shifted));
}

}  // namespace

C8QuantStages c8_quantize(const Tensor& x, const Tensor& inv_scale, const Tensor& offset,
                          bool intermediates, int threads) {
  check_c8_quantize_inputs(x, inv_scale, offset);
  const DType pdt = x.dtype();
  const bool bf16 = pdt == DType::kBF16;
  const int64_t c = x.dim(-1) * x.dim(-2);
  C8QuantStages s;
  s.q = Tensor(DType::kI8, x.shape());
  if (intermediates) {
    s.scaled = Tensor(pdt, x.shape());
    s.shifted = Tensor(pdt, x.shape());
  }
  const uint16_t* xp = x.data<uint16_t>();
  const uint16_t* ip = inv_scale.data<uint16_t>();
  const uint16_t* op = offset.data<uint16_t>();
  const bool inv1 = inv_scale.numel() == 1, off1 = offset.numel() == 1;
  int8_t* qp = s.q.data<int8_t>();
  uint16_t* ap = intermediates ? s.scaled.data<uint16_t>() : nullptr;
  uint16_t* bp = intermediates ? s.shifted.data<uint16_t>() : nullptr;
  parallel_for(
      x.numel(), kGrain,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t ch = i % c;
          const uint16_t a = narrow(widen(xp[i], bf16) * widen(ip[inv1 ? 0 : ch], bf16), bf16);
          const uint16_t sh = narrow(widen(a, bf16) + widen(op[off1 ? 0 : ch], bf16), bf16);
          // The clamp before rounding is the same as after: 127.5 -> 128 -> 127 either way.
          qp[i] = code_of(widen(sh, bf16));
          if (ap) {
            ap[i] = a;
            bp[i] = sh;
          }
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
