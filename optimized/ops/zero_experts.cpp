// Optimized zero experts (reference/include/qconf/ops/zero_experts.h): per token, the
// zero-expert slots in slot order, each one Highway SIMD pass over H: acc += P(x * zs) with the
// product rounded to the promoted dtype P in lanes (fp32: nothing; bfloat16: the integer
// round-to-nearest-even of the top 16 bits; float16: DemoteTo/PromoteTo, RNE), then zero_out =
// P(acc) and final = x_dtype(routed + zero_out). The reference's canonical order (fp32 sum in
// slot order, real-expert slots add an exact 0), so the results are bit-identical to it, for
// every target and thread count (tokens are independent, threaded in fixed chunks).

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/zero_experts.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include "qconf/ops/zero_experts.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// mode: 0 = fp32 products, 1 = rounded to bfloat16, 2 = rounded to float16.
template <class D>
hn::Vec<D> RoundLanes(D d, hn::Vec<D> v, int mode) {
  if (mode == 1) {
    const hn::RebindToUnsigned<D> du;
    const auto b = hn::BitCast(du, v);
    const auto lsb = hn::And(hn::ShiftRight<16>(b), hn::Set(du, 1u));
    const auto r =
        hn::And(hn::Add(b, hn::Add(hn::Set(du, 0x7FFFu), lsb)), hn::Set(du, 0xFFFF0000u));
    return hn::BitCast(d, r);
  }
  if (mode == 2) {
    const hn::Rebind<hwy::float16_t, D> dh;
    return hn::PromoteTo(d, hn::DemoteTo(dh, v));
  }
  return v;
}

void AccumulateScaled(const float* HWY_RESTRICT x, float zs, float* HWY_RESTRICT acc, int64_t n,
                      int mode) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto s = hn::Set(d, zs);
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    const auto p = RoundLanes(d, hn::Mul(hn::LoadU(d, x + j), s), mode);
    hn::StoreU(hn::Add(hn::LoadU(d, acc + j), p), d, acc + j);
  }
  if (j < n) {  // the tail through the same vector code, zero-padded
    constexpr size_t kMax = HWY_MAX_BYTES / sizeof(float);
    HWY_ALIGN float tx[kMax] = {}, ta[kMax] = {};
    const size_t rest = static_cast<size_t>(n - j);
    std::memcpy(tx, x + j, rest * sizeof(float));
    std::memcpy(ta, acc + j, rest * sizeof(float));
    const auto p = RoundLanes(d, hn::Mul(hn::Load(d, tx), s), mode);
    hn::Store(hn::Add(hn::Load(d, ta), p), d, ta);
    std::memcpy(acc + j, ta, rest * sizeof(float));
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf::opt {
HWY_EXPORT(AccumulateScaled);

namespace {

float widen(const Tensor& t, int64_t i) {
  uint32_t b;
  if (t.dtype() == DType::kF32)
    b = t.data<uint32_t>()[i];
  else if (t.dtype() == DType::kBF16)
    b = bf16_to_f32(t.data<uint16_t>()[i]);
  else
    b = f16_to_f32(t.data<uint16_t>()[i]);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Stores fp32 v rounded (RNE) to t's dtype; returns the stored value as fp32.
float store_rounded(Tensor& t, int64_t i, float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  if (t.dtype() == DType::kF32) {
    t.data<float>()[i] = v;
    return v;
  }
  const uint16_t h = t.dtype() == DType::kBF16 ? f32_to_bf16_rne(b) : f32_to_f16_rne(b);
  t.data<uint16_t>()[i] = h;
  const uint32_t w = t.dtype() == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

}  // namespace

ZeroExpertsStages zero_experts_compute(const ZeroExpertsArgs& a, int threads) {
  const DType p = check_zero_experts_args(a);
  const Tensor& x = *a.hidden;
  const int64_t tn = x.dim(0), h = x.dim(1), k = a.ids->dim(1);
  const int mode = p == DType::kF32 ? 0 : (p == DType::kBF16 ? 1 : 2);
  ZeroExpertsStages s;
  s.zero_out = Tensor(p, {tn, h});
  s.ids = Tensor(DType::kI32, {tn, k});
  s.weights = Tensor(a.weights->dtype(), {tn, k});
  if (a.routed) s.final = Tensor(x.dtype(), {tn, h});
  const int32_t* ids = a.ids->data<int32_t>();
  const size_t wsz = dtype_size(a.weights->dtype());
  parallel_for(
      tn, std::max<int64_t>(1, 4096 / std::max<int64_t>(h, 1)),
      [&](int64_t t0, int64_t t1) {
        std::vector<float> xr(static_cast<size_t>(h)), acc(static_cast<size_t>(h));
        for (int64_t t = t0; t < t1; ++t) {
          std::fill(acc.begin(), acc.end(), 0.0f);
          if (a.type == ZeroExpertType::kIdentity) {
            for (int64_t c = 0; c < h; ++c) xr[c] = widen(x, t * h + c);
            for (int64_t j = 0; j < k; ++j) {
              if (ids[t * k + j] < a.num_experts) continue;  // adds an exact 0
              const float zs = widen(*a.weights, t * k + j);
              HWY_DYNAMIC_DISPATCH(AccumulateScaled)(xr.data(), zs, acc.data(), h, mode);
            }
          }
          for (int64_t c = 0; c < h; ++c) {
            const float z = store_rounded(s.zero_out, t * h + c, acc[c]);
            if (a.routed) store_rounded(s.final, t * h + c, widen(*a.routed, t * h + c) + z);
          }
          for (int64_t j = 0; j < k; ++j) {
            const bool zero = ids[t * k + j] >= a.num_experts;
            s.ids.data<int32_t>()[t * k + j] = zero ? 0 : ids[t * k + j];
            if (zero)
              std::memset(s.weights.bytes() + (t * k + j) * wsz, 0, wsz);
            else
              std::memcpy(s.weights.bytes() + (t * k + j) * wsz,
                          a.weights->bytes() + (t * k + j) * wsz, wsz);
          }
        }
      },
      threads);
  return s;
}

}  // namespace qconf::opt
#endif  // HWY_ONCE
