// Optimized MoE routing: host fp32 arithmetic (IEEE round to nearest, -ffp-contract=off),
// Highway Exp for sigmoid / softmax (documented 1 ULP) and libm expf / logf elsewhere (below
// 1 ulp): inside the kTranscendentalUlp assumption. Partial selection
// instead of full sorts, no allocation per token (per-chunk scratch), threaded over tokens in
// fixed chunks (results do not depend on the thread count: tokens are independent).
//
// Its scores and weights differ from the reference's canonical bits only through exp/log (the
// BOUNDED stages); its ids land in the reachable sets of the reference (tests/ops/routing_test).
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "optimized/ops/routing.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include "qconf/ops/routing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "qconf/numeric/float_format.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace qconf::opt::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// s[i] = 1 / (1 + exp(-x[i])) with Highway's Exp (documented max error 1 ULP). Lanes with
// x < -80 (exp(-x) near fp32 overflow) are recomputed with libm.
void SigmoidRow(const float* HWY_RESTRICT x, float* HWY_RESTRICT s, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    const auto e = hn::Exp(d, hn::Neg(v));
    hn::StoreU(hn::Div(one, hn::Add(one, e)), d, s + i);
  }
#endif
  for (; i < n; ++i) s[i] = 1.0f / (1.0f + std::exp(-x[i]));
  for (int64_t j = 0; j < n; ++j)
    if (x[j] < -80.0f) s[j] = 1.0f / (1.0f + std::exp(-x[j]));
}

// e[i] = exp(x[i] - m) (x[i] - m <= 0), Highway's Exp.
void ExpShiftedRow(const float* HWY_RESTRICT x, float m, float* HWY_RESTRICT e, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, m);
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm)), d, e + i);
#endif
  for (; i < n; ++i) e[i] = std::exp(x[i] - m);
}

}  // namespace qconf::opt::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qconf::opt {
HWY_EXPORT(SigmoidRow);
HWY_EXPORT(ExpShiftedRow);

namespace {

struct Scratch {
  std::vector<float> score, sel, gs;
  std::vector<int32_t> idx, gidx;
  std::vector<uint8_t> keep;
};

inline float bits_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// RINT cast to the weight dtype and back (bit manipulation, qconf/opt/convert.h).
inline float cast_weight(float y, DType dt) {
  if (dt == DType::kBF16) return bits_f32(bf16_to_f32(f32_to_bf16_rne(f32_bits(y))));
  if (dt == DType::kF16) return bits_f32(f16_to_f32(f32_to_f16_rne(f32_bits(y))));
  return y;
}

// Indices of the k largest v[idx[..n)] (descending, ties to the lower index) into idx[0..k).
inline void top_k(const float* v, int32_t* idx, int64_t n, int64_t k) {
  std::partial_sort(idx, idx + k, idx + n,
                    [v](int32_t a, int32_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
}

void route_token(const float* x, int64_t e, const float* bias, const RoutingConfig& c,
                 const RouterTraits& tr, int64_t logical, const int32_t* emap, const int32_t* l2p,
                 Scratch& s, float* scores, int32_t* ids, float* topw, float* dense) {
  float* sc = s.score.data();
  // 1. scores
  if (c.scoring == Scoring::kSoftmax) {
    float m = x[0];
    for (int64_t i = 1; i < e; ++i) m = std::max(m, x[i]);
    HWY_DYNAMIC_DISPATCH(ExpShiftedRow)(x, m, sc, e);
    float sum = 0.0f;
    for (int64_t i = 0; i < e; ++i) sum += sc[i];
    if (tr.reciprocal_softmax) {
      const float inv = 1.0f / sum;
      for (int64_t i = 0; i < e; ++i) sc[i] *= inv;
    } else {
      for (int64_t i = 0; i < e; ++i) sc[i] /= sum;
    }
  } else if (c.scoring == Scoring::kSigmoid) {
    HWY_DYNAMIC_DISPATCH(SigmoidRow)(x, sc, e);
  } else if (tr.softplus == SoftplusForm::kLnOnePlusExp) {
    for (int64_t i = 0; i < e; ++i) sc[i] = std::sqrt(std::log(1.0f + std::exp(x[i])));
  } else {
    for (int64_t i = 0; i < e; ++i)
      sc[i] = std::sqrt(x[i] > 20.0f ? x[i] : std::log1p(std::exp(x[i])));
  }
  std::memcpy(scores, sc, sizeof(float) * e);
  // 2. selection scores
  float* sel = s.sel.data();
  for (int64_t i = 0; i < e; ++i) sel[i] = bias ? sc[i] + bias[i] : sc[i];
  // 3-4. groups
  uint8_t* keep = s.keep.data();
  const int64_t ng = c.n_group, per = e / ng;
  std::fill(keep, keep + ng, uint8_t{1});
  if (ng > 1) {
    for (int64_t g = 0; g < ng; ++g) {
      float a = -INFINITY, b2 = -INFINITY;
      for (int64_t i = g * per; i < (g + 1) * per; ++i) {
        if (sel[i] > a) {
          b2 = a;
          a = sel[i];
        } else if (sel[i] > b2) {
          b2 = sel[i];
        }
      }
      s.gs[g] = tr.group_score == GroupScore::kMax ? a : a + b2;
      s.gidx[g] = static_cast<int32_t>(g);
    }
    top_k(s.gs.data(), s.gidx.data(), ng, c.k_group);
    std::fill(keep, keep + ng, uint8_t{0});
    for (int64_t j = 0; j < c.k_group; ++j) keep[s.gidx[j]] = 1;
  }
  // 5. candidates and top-k
  int64_t n = 0;
  for (int64_t i = 0; i < e; ++i) {
    if (keep[i / per]) {
      s.idx[n++] = static_cast<int32_t>(i);
    } else if (tr.mask_zero) {
      sel[i] = 0.0f;
      s.idx[n++] = static_cast<int32_t>(i);
    }
  }
  const int64_t k = c.top_k;
  top_k(sel, s.idx.data(), n, k);
  // 6. weights
  float w[64];
  float* wp = k <= 64 ? w : topw;  // topw is k long: reuse it for large k
  const DType wdt = tr.weight_dtype;
  for (int64_t j = 0; j < k; ++j) {
    const int32_t i = s.idx[j];
    wp[j] = (tr.mask_zero && !bias && !keep[i / per]) ? 0.0f : (tr.weights_biased ? sel[i] : sc[i]);
    if (tr.cast_first) wp[j] = cast_weight(wp[j], wdt);
  }
  if (tr.renorm) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += wp[j];
    if (tr.cast_first) sum = cast_weight(sum, wdt);
    if (tr.denominator == RenormDenominator::kSumPlusEps) sum += c.eps;
    if (tr.denominator == RenormDenominator::kClampEps) sum = std::max(sum, c.eps);
    for (int64_t j = 0; j < k; ++j) {
      wp[j] /= sum;
      if (tr.cast_first) wp[j] = cast_weight(wp[j], wdt);
    }
  }
  for (int t = 0; t < tr.scale_times; ++t)
    for (int64_t j = 0; j < k; ++j) wp[j] *= c.routed_scaling_factor;
  for (int64_t j = 0; j < k; ++j) wp[j] = cast_weight(wp[j], wdt);
  // 7. after routing
  std::fill(dense, dense + e, 0.0f);
  for (int64_t j = 0; j < k; ++j) {
    const int32_t i = s.idx[j];
    const float wd = (i < logical && emap && emap[i] < 0) ? 0.0f : wp[j];
    dense[i] = wd;
    ids[j] = i >= logical ? 0 : (l2p ? l2p[i] : i);
    topw[j] = i >= logical ? 0.0f : wd;
  }
}

}  // namespace

RoutingStages moe_gating_top_k(const RoutingArgs& a, const RoutingConfig& c, int threads) {
  check_routing_args(a, c);
  const Tensor& xt = *a.logits;
  const int64_t t_count = xt.dim(0), e = xt.dim(1), k = c.top_k;
  const RouterTraits tr = router_traits(c, a.bias != nullptr, xt.dtype());
  RoutingStages out;
  out.scores = Tensor(DType::kF32, {t_count, e});
  out.topk_ids = Tensor(DType::kI32, {t_count, k});
  out.topk_weights = Tensor(tr.weight_dtype, {t_count, k});
  out.expert_weights = Tensor(tr.weight_dtype, {t_count, e});
  const float* bias = a.bias ? a.bias->data<float>() : nullptr;
  const int32_t* emap = a.expert_map ? a.expert_map->data<int32_t>() : nullptr;
  const int32_t* l2p = a.log2phy ? a.log2phy->data<int32_t>() : nullptr;
  const int64_t logical = e - c.zero_experts;
  parallel_for(
      t_count, 64,
      [&](int64_t b, int64_t end) {
        Scratch s;
        s.score.resize(e);
        s.sel.resize(e);
        s.idx.resize(e);
        s.gs.resize(c.n_group);
        s.gidx.resize(c.n_group);
        s.keep.resize(c.n_group);
        std::vector<float> xf(xt.dtype() == DType::kF32 ? 0 : e);
        std::vector<float> dense(e), topw(k);
        for (int64_t t = b; t < end; ++t) {
          const float* x;
          if (xt.dtype() == DType::kF32) {
            x = xt.data<float>() + t * e;
          } else {
            const uint16_t* h = xt.data<uint16_t>() + t * e;
            for (int64_t i = 0; i < e; ++i)
              xf[i] = bits_f32(xt.dtype() == DType::kBF16 ? bf16_to_f32(h[i]) : f16_to_f32(h[i]));
            x = xf.data();
          }
          route_token(x, e, bias, c, tr, logical, emap, l2p, s, out.scores.data<float>() + t * e,
                      out.topk_ids.data<int32_t>() + t * k, topw.data(), dense.data());
          if (tr.weight_dtype == DType::kF32) {
            std::memcpy(out.expert_weights.data<float>() + t * e, dense.data(), 4 * e);
            std::memcpy(out.topk_weights.data<float>() + t * k, topw.data(), 4 * k);
          } else {
            // Values are already rounded to the weight dtype: converting them again is exact.
            uint16_t* ew = out.expert_weights.data<uint16_t>() + t * e;
            uint16_t* tw = out.topk_weights.data<uint16_t>() + t * k;
            const bool bf = tr.weight_dtype == DType::kBF16;
            for (int64_t i = 0; i < e; ++i)
              ew[i] = bf ? f32_to_bf16_rne(f32_bits(dense[i])) : f32_to_f16_rne(f32_bits(dense[i]));
            for (int64_t j = 0; j < k; ++j)
              tw[j] = bf ? f32_to_bf16_rne(f32_bits(topw[j])) : f32_to_f16_rne(f32_bits(topw[j]));
          }
        }
      },
      threads);
  return out;
}

}  // namespace qconf::opt
#endif  // HWY_ONCE
