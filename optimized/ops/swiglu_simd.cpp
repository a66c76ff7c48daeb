// Optimized SwiGLU (mode 0, halves): Highway SIMD with runtime dispatch.
//
// Per lane, the canonical fp32 steps of the reference (reference/ops/expert_mlp.cpp,
// swiglu_eval): e = exp(-a), d = 1 + e, s = a / d, out = s * b, each one IEEE fp32 operation (no
// FMA: -ffp-contract=off, and the Highway ops used are Add / Div / Mul). exp is Highway's
// hwy/contrib/math Exp, documented "Max Error: ULP = 1" for float32 on [-FLT_MAX, +104]: within
// the 4 ulp the bound assumes (docs/bounds.md, expert MLP). The argument is clamped above at 104
// (exp overflows fp32 from 88.73 on, so the result is +Inf either way). A row's tail is padded
// into a vector, so every element of a row goes through the same SIMD code whatever the thread
// split: results do not depend on the thread count.

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/swiglu_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include <cstdint>
#include <cstring>

#include "qconf/opt/expert_mlp.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D, class V>
V SwigluLanes(D d, V a, V b) {
  const V arg = hn::Min(hn::Neg(a), hn::Set(d, 104.0f));
  const V e = hn::Exp(d, arg);
  const V den = hn::Add(hn::Set(d, 1.0f), e);
  return hn::Mul(hn::Div(a, den), b);
}

void SwigluHalvesF32(const float* HWY_RESTRICT act, const float* HWY_RESTRICT other,
                     float* HWY_RESTRICT out, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes)
    hn::StoreU(SwigluLanes(d, hn::LoadU(d, act + j), hn::LoadU(d, other + j)), d, out + j);
  if (j < n) {  // the tail through the same vector code, zero-padded
    constexpr size_t kMax = HWY_MAX_BYTES / sizeof(float);
    HWY_ALIGN float ta[kMax] = {}, tb[kMax] = {}, to[kMax];
    const size_t rest = static_cast<size_t>(n - j);
    std::memcpy(ta, act + j, rest * sizeof(float));
    std::memcpy(tb, other + j, rest * sizeof(float));
    hn::Store(SwigluLanes(d, hn::Load(d, ta), hn::Load(d, tb)), d, to);
    std::memcpy(out + j, to, rest * sizeof(float));
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf::opt {

HWY_EXPORT(SwigluHalvesF32);

void swiglu_halves_f32(const float* act, const float* other, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SwigluHalvesF32)(act, other, out, n);
}

}  // namespace qconf::opt
#endif  // HWY_ONCE
