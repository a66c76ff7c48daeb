// Optimized SwiGLU (mode 0, halves, and mode 1, SwiGLU-OAI): Highway SIMD with runtime
// dispatch.
//
// Per lane, the canonical fp32 steps of the reference (reference/ops/expert_mlp.cpp,
// swiglu_eval): e = exp(-a), d = 1 + e, s = a / d, out = s * b, each one IEEE fp32 operation (no
// FMA: -ffp-contract=off, and the Highway ops used are Add / Div / Mul). exp is Highway's
// hwy/contrib/math Exp, documented "Max Error: ULP = 1" for float32 on [-FLT_MAX, +104]: within
// the 4 ulp the bound assumes (docs/bounds.md, expert MLP). The argument is clamped above at 104
// (exp overflows fp32 from 88.73 on, so the result is +Inf either way). A row's tail is padded
// into a vector, so every element of a row goes through the same SIMD code whatever the thread
// split: results do not depend on the thread count.
//
// Mode 1 (OAI, interleaved): LoadInterleaved2 splits gate (even columns) and up (odd columns);
// the clamps are selects with the reference's comparisons (gate > l -> l; up > l -> l; up < -l
// -> -l; a NaN stays NaN, unlike Min/Max), then t = alpha * gate, e = exp(-t), d = 1 + e,
// s = gate / d, u = up + bias, out = s * u: the reference's fp32 steps in its order.

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

template <class D, class V>
V SwigluOaiLanes(D d, V gate, V up, V limit, V alpha, V bias) {
  const V neg_limit = hn::Neg(limit);
  gate = hn::IfThenElse(hn::Gt(gate, limit), limit, gate);
  up = hn::IfThenElse(hn::Gt(up, limit), limit, up);
  up = hn::IfThenElse(hn::Lt(up, neg_limit), neg_limit, up);
  const V t = hn::Mul(alpha, gate);
  const V e = hn::Exp(d, hn::Min(hn::Neg(t), hn::Set(d, 104.0f)));
  const V den = hn::Add(hn::Set(d, 1.0f), e);
  return hn::Mul(hn::Div(gate, den), hn::Add(up, bias));
}

// row: 2n interleaved values (gate, up, gate, up, ...); out: n values.
void SwigluOaiF32(const float* HWY_RESTRICT row, float* HWY_RESTRICT out, int64_t n, float limit,
                  float alpha, float bias) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vl = hn::Set(d, limit), va = hn::Set(d, alpha), vb = hn::Set(d, bias);
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    hn::Vec<decltype(d)> gate, up;
    hn::LoadInterleaved2(d, row + 2 * j, gate, up);
    hn::StoreU(SwigluOaiLanes(d, gate, up, vl, va, vb), d, out + j);
  }
  if (j < n) {  // the tail through the same vector code, zero-padded
    constexpr size_t kMax = HWY_MAX_BYTES / sizeof(float);
    HWY_ALIGN float tr[2 * kMax] = {}, to[kMax];
    const size_t rest = static_cast<size_t>(n - j);
    std::memcpy(tr, row + 2 * j, 2 * rest * sizeof(float));
    hn::Vec<decltype(d)> gate, up;
    hn::LoadInterleaved2(d, tr, gate, up);
    hn::Store(SwigluOaiLanes(d, gate, up, vl, va, vb), d, to);
    std::memcpy(out + j, to, rest * sizeof(float));
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf::opt {

HWY_EXPORT(SwigluHalvesF32);
HWY_EXPORT(SwigluOaiF32);

void swiglu_halves_f32(const float* act, const float* other, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SwigluHalvesF32)(act, other, out, n);
}

void swiglu_oai_f32(const float* row, float* out, int64_t n, float clamp_limit, float glu_alpha,
                    float glu_bias) {
  HWY_DYNAMIC_DISPATCH(SwigluOaiF32)(row, out, n, clamp_limit, glu_alpha, glu_bias);
}

}  // namespace qconf::opt
#endif  // HWY_ONCE
