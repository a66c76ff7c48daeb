// Optimized npu_kronecker_quant and the W4A4_FLATQUANT_DYNAMIC linear layer.
//
// Per token (x viewed [M, N]), fused, on one thread's scratch buffers:
//   x'  = x @ P2   : for each row i, acc[:] += x[i, k] * P2[k, :] for k = 0 .. N-1 in order,
//                    fp32 multiply then fp32 add (no FMA), SIMD over the output columns;
//                    rounded to the input dtype;
//   x'' = P1 @ x'  : the same routine with the row P1[i, :] and the matrix x'; rounded to fp16;
//   amax, multiplier, quant_scale, codes (fp32 multiply, fp16 RNE, RINT / TRUNC, saturate) and
//   the int4 packing shared with npu_convert_weight_to_int4pack (opt::pack_int4).
// The summation order is fixed (sequential in k for every element, the same for every SIMD
// target since lanes are independent columns), so results do not depend on the thread count or
// the CPU; they are one of the legitimate orders, so they lie in the reference's reachable sets
// (tests/ops/kronecker_quant_test.cpp).

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/kronecker_quant.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
// clang-format on

#include "qconf/ops/kronecker_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "qconf/ops/int4pack.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out[r][0..n) = sum_{k < kk} a[r * lda + k] * b[k * n + j] for rows r < rows, summed in
// increasing k, each step fl(fl(a b) + acc), starting from +0 (so the first step is the rounded
// product). Four rows at a time share each load of b and give four independent add chains.
void RowsTimesMatrix(const float* HWY_RESTRICT a, int64_t lda, int64_t rows,
                     const float* HWY_RESTRICT b, int64_t kk, int64_t n, float* HWY_RESTRICT out) {
  int64_t r = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  for (; r + 4 <= rows; r += 4) {
    const float* a0 = a + r * lda;
    int64_t j = 0;
    for (; j + L <= n; j += L) {
      auto c0 = hn::Zero(d), c1 = hn::Zero(d), c2 = hn::Zero(d), c3 = hn::Zero(d);
      for (int64_t k = 0; k < kk; ++k) {
        const auto v = hn::LoadU(d, b + k * n + j);
        c0 = hn::Add(c0, hn::Mul(hn::Set(d, a0[k]), v));
        c1 = hn::Add(c1, hn::Mul(hn::Set(d, a0[lda + k]), v));
        c2 = hn::Add(c2, hn::Mul(hn::Set(d, a0[2 * lda + k]), v));
        c3 = hn::Add(c3, hn::Mul(hn::Set(d, a0[3 * lda + k]), v));
      }
      hn::StoreU(c0, d, out + r * n + j);
      hn::StoreU(c1, d, out + (r + 1) * n + j);
      hn::StoreU(c2, d, out + (r + 2) * n + j);
      hn::StoreU(c3, d, out + (r + 3) * n + j);
    }
    for (; j < n; ++j)
      for (int64_t q = 0; q < 4; ++q) {
        float c = 0.0f;
        for (int64_t k = 0; k < kk; ++k) {
          const float p = a0[q * lda + k] * b[k * n + j];
          c = c + p;
        }
        out[(r + q) * n + j] = c;
      }
  }
  for (; r < rows; ++r) {
    int64_t j = 0;
    for (; j + L <= n; j += L) {
      auto c0 = hn::Zero(d);
      for (int64_t k = 0; k < kk; ++k)
        c0 = hn::Add(c0, hn::Mul(hn::Set(d, a[r * lda + k]), hn::LoadU(d, b + k * n + j)));
      hn::StoreU(c0, d, out + r * n + j);
    }
    for (; j < n; ++j) {
      float c = 0.0f;
      for (int64_t k = 0; k < kk; ++k) {
        const float p = a[r * lda + k] * b[k * n + j];
        c = c + p;
      }
      out[r * n + j] = c;
    }
  }
#else
  for (; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      float c = 0.0f;
      for (int64_t k = 0; k < kk; ++k) {
        const float p = a[r * lda + k] * b[k * n + j];
        c = c + p;
      }
      out[r * n + j] = c;
    }
#endif
}

// v[i] = fl32(x[i] * mult).
void ScaleBy(const float* HWY_RESTRICT x, float mult, int64_t n, float* HWY_RESTRICT v) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto m = hn::Set(d, mult);
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), m), d, v + i);
#endif
  for (; i < n; ++i) v[i] = x[i] * mult;
}

// codes[i] = clamp(RINT(h[i]) or TRUNC(h[i]), -8, 7), NaN -> 0 (h: fp16 values widened).
void ToInt4(const float* HWY_RESTRICT h, int rint, int64_t n, int32_t* HWY_RESTRICT codes) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  const auto lo = hn::Set(d, -8.0f), hi = hn::Set(d, 7.0f);
  for (; i + L <= n; i += L) {
    const auto x = hn::LoadU(d, h + i);
    auto r = rint ? hn::Round(x) : hn::Trunc(x);
    r = hn::IfThenElse(hn::IsNaN(r), hn::Zero(d), r);
    r = hn::Min(hn::Max(r, lo), hi);
    hn::StoreU(hn::ConvertTo(di, r), di, codes + i);
  }
#endif
  for (; i < n; ++i) {
    const float x = h[i];
    if (std::isnan(x)) {
      codes[i] = 0;
      continue;
    }
    const float r = rint ? std::nearbyint(x) : std::trunc(x);
    codes[i] = static_cast<int32_t>(std::clamp(r, -8.0f, 7.0f));
  }
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf {
namespace opt {
HWY_EXPORT(RowsTimesMatrix);
HWY_EXPORT(ScaleBy);
HWY_EXPORT(ToInt4);

namespace {

float bits_f(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t f_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

void widen(DType dt, const uint16_t* in, float* out, int64_t n) {
  if (dt == DType::kF16)
    f16_to_f32(in, reinterpret_cast<uint32_t*>(out), static_cast<size_t>(n));
  else
    bf16_to_f32(in, reinterpret_cast<uint32_t*>(out), static_cast<size_t>(n));
}
void narrow(DType dt, const float* in, uint16_t* out, int64_t n) {
  if (dt == DType::kF16)
    f32_to_f16_rne(reinterpret_cast<const uint32_t*>(in), out, static_cast<size_t>(n));
  else
    f32_to_bf16_rne(reinterpret_cast<const uint32_t*>(in), out, static_cast<size_t>(n));
}

// Steps 4-6 in host fp32 arithmetic (IEEE, round to nearest; -ffp-contract=off).
float multiplier(float amax, float clip, KronFormula f) {
  if (amax == 0.0f) return 7.0f;
  const float c = f == KronFormula::kKernel ? 7.0f / clip : 7.0f * clip;
  return c / amax;
}
float scale_of(float amax, float clip, KronFormula f) {
  return f == KronFormula::kKernel ? (amax * clip) / 7.0f : amax / (7.0f * clip);
}

struct Scratch {
  std::vector<float> xf, acc, x1f;
  std::vector<uint16_t> h;
  std::vector<int32_t> codes;
};

}  // namespace

KronQuantStages npu_kronecker_quant(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                    const Tensor& clip_ratio, KronFormula formula,
                                    bool intermediates, int threads) {
  const KronQuantShape s = check_kronecker_quant_inputs(x, p1, p2, clip_ratio);
  const int64_t tok = s.m * s.n;
  KronQuantStages st;
  st.out = Tensor(DType::kI32, {s.t, s.m, s.n / kInt4PerInt32});
  st.quant_scale = Tensor(DType::kF32, {s.t});
  if (intermediates) {
    st.x_p2 = Tensor(s.xdt, {s.t, s.m, s.n});
    st.x_p1 = Tensor(DType::kF16, {s.t, s.m, s.n});
    st.amax = Tensor(DType::kF32, {s.t});
    st.codes = Tensor(DType::kI8, {s.t, s.m, s.n});
  }
  std::vector<float> p1f(static_cast<size_t>(s.m * s.m)), p2f(static_cast<size_t>(s.n * s.n));
  widen(s.xdt, p1.data<uint16_t>(), p1f.data(), s.m * s.m);
  widen(s.xdt, p2.data<uint16_t>(), p2f.data(), s.n * s.n);
  const float clip = bits_f(s.clip);
  const uint16_t* xin = x.data<uint16_t>();
  int32_t* out = st.out.data<int32_t>();
  uint32_t* scale = st.quant_scale.data<uint32_t>();
  const auto rows_times = HWY_DYNAMIC_DISPATCH(RowsTimesMatrix);
  const auto scale_by = HWY_DYNAMIC_DISPATCH(ScaleBy);
  const auto to_int4 = HWY_DYNAMIC_DISPATCH(ToInt4);
  // Chunks of tokens of about 256 KiB of input each (a fixed partition: results per token).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / tok);
  parallel_for(
      s.t, grain,
      [&](int64_t b, int64_t e) {
        Scratch w;
        w.xf.resize(static_cast<size_t>(tok));
        w.acc.resize(static_cast<size_t>(tok));
        w.x1f.resize(static_cast<size_t>(tok));
        w.h.resize(static_cast<size_t>(tok));
        w.codes.resize(static_cast<size_t>(tok));
        for (int64_t t = b; t < e; ++t) {
          widen(s.xdt, xin + t * tok, w.xf.data(), tok);
          // Step 1: x' = x @ P2, rounded to the input dtype.
          rows_times(w.xf.data(), s.n, s.m, p2f.data(), s.n, s.n, w.acc.data());
          narrow(s.xdt, w.acc.data(), w.h.data(), tok);
          if (intermediates)
            std::memcpy(st.x_p2.data<uint16_t>() + t * tok, w.h.data(), size_t(tok) * 2);
          widen(s.xdt, w.h.data(), w.x1f.data(), tok);
          // Step 2: x'' = P1 @ x', rounded to fp16.
          rows_times(p1f.data(), s.m, s.m, w.x1f.data(), s.m, s.n, w.acc.data());
          narrow(DType::kF16, w.acc.data(), w.h.data(), tok);
          if (intermediates)
            std::memcpy(st.x_p1.data<uint16_t>() + t * tok, w.h.data(), size_t(tok) * 2);
          widen(DType::kF16, w.h.data(), w.xf.data(), tok);
          // Step 3: amax (NaN propagates).
          float amax = 0.0f;
          bool nan = false;
          for (int64_t i = 0; i < tok; ++i) {
            const float v = std::fabs(w.xf[size_t(i)]);
            nan = nan || std::isnan(v);
            amax = v > amax ? v : amax;
          }
          if (nan) amax = bits_f(0x7FC00000u);
          const float mult = multiplier(amax, clip, formula);
          scale[t] = f_bits(scale_of(amax, clip, formula));
          // Step 6: fp32 product, fp16 RNE (convert.h, exact), RINT / TRUNC, saturate.
          scale_by(w.xf.data(), mult, tok, w.acc.data());
          f32_to_f16_rne(reinterpret_cast<const uint32_t*>(w.acc.data()), w.h.data(), size_t(tok));
          f16_to_f32(w.h.data(), reinterpret_cast<uint32_t*>(w.acc.data()), size_t(tok));
          to_int4(w.acc.data(), formula == KronFormula::kKernel ? 1 : 0, tok, w.codes.data());
          if (intermediates) {
            st.amax.data<uint32_t>()[t] = f_bits(amax);
            for (int64_t i = 0; i < tok; ++i)
              st.codes.data<int8_t>()[t * tok + i] = static_cast<int8_t>(w.codes[size_t(i)]);
          }
          pack_int4(w.codes.data(), out + t * (tok / kInt4PerInt32), tok);
        }
      },
      threads);
  return st;
}

FlatQuantLinearStages w4a4_flatquant_linear(const FlatQuantLinearArgs& a,
                                            const FlatQuantLinearConfig& cfg, bool intermediates,
                                            int threads) {
  const FlatQuantLinearShape s = check_flatquant_linear_inputs(a);
  FlatQuantLinearStages st;
  st.decompose_dim = Tensor::from<int64_t>({2}, {s.l, s.r});
  Tensor p1(s.xdt, {s.l, s.l});
  for (int64_t i = 0; i < s.l; ++i)
    for (int64_t j = 0; j < s.l; ++j)
      p1.data<uint16_t>()[j * s.l + i] = a.left_trans->data<uint16_t>()[i * s.l + j];
  Tensor x3(s.xdt, {s.t, s.l, s.r});
  std::memcpy(x3.bytes(), a.x->bytes(), x3.nbytes());
  // No chunking needed here: every token is independent (chunking gives the same bits).
  KronQuantStages q =
      npu_kronecker_quant(x3, p1, *a.right_trans, *a.clip_ratio, cfg.formula, false, threads);
  st.kq_out = Tensor::from<int32_t>({s.t, s.k / kInt4PerInt32}, q.out.to_vector<int32_t>());
  st.kq_scale = std::move(q.quant_scale);
  // weight int8 [N, K] -> int4 words [K, N / 8] (prepared per call here; an engine does it once).
  std::vector<int32_t> wt(static_cast<size_t>(s.k * s.n));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t k = 0; k < s.k; ++k)
      wt[size_t(k * s.n + n)] = a.weight->data<int8_t>()[n * s.k + k];
  Tensor x2(DType::kI32, {s.k, s.n / kInt4PerInt32});
  pack_int4(wt.data(), x2.data<int32_t>(), s.k * s.n);
  const Tensor sc =
      Tensor::from<uint32_t>(DType::kF32, {s.n}, a.weight_scale->to_vector<uint32_t>());
  QuantMatmulConfig qc;
  qc.output_dtype = s.xdt;
  QuantMatmulStages mm = npu_quant_matmul(st.kq_out, x2, sc, nullptr, &st.kq_scale, nullptr, qc,
                                          intermediates, threads);
  if (intermediates) st.acc = std::move(mm.acc);
  st.mm_out = std::move(mm.out);
  st.y = st.mm_out;
  if (a.bias) {
    // fp16/bf16 + fp16/bf16 in fp32, rounded once: the correctly rounded sum (fp32 has
    // 24 >= 2p + 2 bits for p = 11 and 8).
    uint16_t* y = st.y.data<uint16_t>();
    const uint16_t* bias = a.bias->data<uint16_t>();
    const bool f16 = s.xdt == DType::kF16;
    for (int64_t i = 0; i < st.y.numel(); ++i) {
      const uint32_t u = f16 ? f16_to_f32(y[i]) : bf16_to_f32(y[i]);
      const uint32_t v = f16 ? f16_to_f32(bias[i % s.n]) : bf16_to_f32(bias[i % s.n]);
      const uint32_t r = f_bits(bits_f(u) + bits_f(v));
      y[i] = f16 ? f32_to_f16_rne(r) : f32_to_bf16_rne(r);
    }
  }
  return st;
}

}  // namespace opt
}  // namespace qconf
#endif
