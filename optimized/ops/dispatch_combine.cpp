// Optimized MoE combine (npu_moe_finalize_routing, npu_moe_token_unpermute; qconf/ops/dispatch.h):
// Highway SIMD with runtime dispatch over the hidden dimension, threaded over tokens.
//
// Fixed accumulation order per output element, the same in every lane and every tail element:
//   acc = skip1 (or +0); acc = acc + skip2; for k = 0..K-1 (valid rows only):
//   v = r; v = v + b (with a bias row); v = s * v (with scales); acc = acc + v;
// then one cast of acc to the output dtype (RNE). All in fp32, a separate multiply and add (never
// a fused multiply-add), so the SIMD lanes, the scalar tail and any thread count give the same
// bits; the reference's derived bound (docs/bounds.md) holds for this order. fp16/bf16 rows are
// widened exactly to fp32 into per-chunk scratch rows by the SIMD converters (qconf/opt/convert.h).

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/dispatch_combine.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include <cstring>
#include <vector>

#include "qconf/ops/dispatch.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// acc[j] = acc[j] + x[j], j < h.
void AddRow(float* HWY_RESTRICT acc, const float* HWY_RESTRICT x, int64_t h) {
  int64_t j = 0;
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (; j + lanes <= h; j += lanes)
    hn::StoreU(hn::Add(hn::LoadU(d, acc + j), hn::LoadU(d, x + j)), d, acc + j);
  for (; j < h; ++j) acc[j] = acc[j] + x[j];
}

// One term of the combine: acc[j] = acc[j] + s * (r[j] + b[j]), b optional, s optional
// (with_scale false: acc[j] = acc[j] + (r[j] + b[j])). Multiply and add are separate roundings.
void AddTerm(float* HWY_RESTRICT acc, const float* HWY_RESTRICT r, const float* HWY_RESTRICT b,
             float s, bool with_scale, int64_t h) {
  int64_t j = 0;
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vs = hn::Set(d, s);
  if (b && with_scale) {
    for (; j + lanes <= h; j += lanes) {
      const auto v = hn::Mul(vs, hn::Add(hn::LoadU(d, r + j), hn::LoadU(d, b + j)));
      hn::StoreU(hn::Add(hn::LoadU(d, acc + j), v), d, acc + j);
    }
  } else if (b) {
    for (; j + lanes <= h; j += lanes) {
      const auto v = hn::Add(hn::LoadU(d, r + j), hn::LoadU(d, b + j));
      hn::StoreU(hn::Add(hn::LoadU(d, acc + j), v), d, acc + j);
    }
  } else if (with_scale) {
    for (; j + lanes <= h; j += lanes) {
      const auto v = hn::Mul(vs, hn::LoadU(d, r + j));
      hn::StoreU(hn::Add(hn::LoadU(d, acc + j), v), d, acc + j);
    }
  } else {
    for (; j + lanes <= h; j += lanes)
      hn::StoreU(hn::Add(hn::LoadU(d, acc + j), hn::LoadU(d, r + j)), d, acc + j);
  }
  for (; j < h; ++j) {
    float v = r[j];
    if (b) v = v + b[j];
    if (with_scale) v = s * v;
    acc[j] = acc[j] + v;
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf {
namespace opt {
HWY_EXPORT(AddRow);
HWY_EXPORT(AddTerm);

namespace {

using dispatch_detail::Combine;

// Row `row` (h elements) of a float tensor as fp32: a pointer into the tensor (fp32) or the
// exact widening into `scratch`.
const float* f32_row(const Tensor& t, int64_t row, int64_t h, std::vector<float>& scratch) {
  const DType dt = t.dtype();
  if (dt == DType::kF32) return t.data<float>() + row * h;
  const uint16_t* src = t.data<uint16_t>() + row * h;
  auto* dst = reinterpret_cast<uint32_t*>(scratch.data());
  if (dt == DType::kF16)
    f16_to_f32(src, dst, static_cast<size_t>(h));
  else
    bf16_to_f32(src, dst, static_cast<size_t>(h));
  return scratch.data();
}

float f32_at(const Tensor& t, int64_t i) {
  uint32_t b;
  switch (t.dtype()) {
    case DType::kF32:
      return t.data<float>()[i];
    case DType::kF16:
      b = f16_to_f32(t.data<uint16_t>()[i]);
      break;
    default:
      b = bf16_to_f32(t.data<uint16_t>()[i]);
  }
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

CombineStages combine_simd(const Combine& c, int threads) {
  CombineStages st;
  st.gathered_row = Tensor::from<int32_t>({c.n, c.k}, c.row);
  st.out = Tensor(c.dt, {c.n, c.h});
  const int64_t h = c.h;
  parallel_for(
      c.n, 8,
      [&](int64_t b, int64_t e) {
        // Scratch per chunk (not per token): the accumulator and two widened rows.
        std::vector<float> acc(static_cast<size_t>(h)), rs(static_cast<size_t>(h)),
            bs(static_cast<size_t>(h));
        for (int64_t i = b; i < e; ++i) {
          if (c.skip1)
            std::memcpy(acc.data(), f32_row(*c.skip1, i, h, rs), static_cast<size_t>(h) * 4);
          else
            std::fill(acc.begin(), acc.end(), 0.0f);
          if (c.skip2) HWY_DYNAMIC_DISPATCH(AddRow)(acc.data(), f32_row(*c.skip2, i, h, rs), h);
          for (int64_t kk = 0; kk < c.k; ++kk) {
            const int32_t r = c.row[i * c.k + kk];
            if (r < 0) continue;  // a -1 row contributes nothing
            const int32_t br = c.brow[i * c.k + kk];
            const float* bias = br >= 0 ? f32_row(*c.bias, br, h, bs) : nullptr;
            const float s = c.scales ? f32_at(*c.scales, i * c.k + kk) : 1.0f;
            HWY_DYNAMIC_DISPATCH(AddTerm)
            (acc.data(), f32_row(*c.rows, r, h, rs), bias, s, c.scales != nullptr, h);
          }
          const auto* a = reinterpret_cast<const uint32_t*>(acc.data());
          if (c.dt == DType::kF32)
            std::memcpy(st.out.data<float>() + i * h, acc.data(), static_cast<size_t>(h) * 4);
          else if (c.dt == DType::kF16)
            f32_to_f16_rne(a, st.out.data<uint16_t>() + i * h, static_cast<size_t>(h));
          else
            f32_to_bf16_rne(a, st.out.data<uint16_t>() + i * h, static_cast<size_t>(h));
        }
      },
      threads);
  return st;
}

}  // namespace

CombineStages npu_moe_finalize_routing(const FinalizeRoutingArgs& a, int threads) {
  return combine_simd(dispatch_detail::finalize_plan(a), threads);
}
CombineStages npu_moe_token_unpermute(const TokenUnpermuteArgs& a, int threads) {
  return combine_simd(dispatch_detail::unpermute_plan(a), threads);
}

}  // namespace opt
}  // namespace qconf
#endif
