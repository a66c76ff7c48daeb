// Reference: MoE routing (gating top-k), every router variant, with interval enclosures.
//
// Sources (confidence in brackets):
//  * notes/torch_npu_semantics.md §7 [doc + code]: npu_moe_gating_top_k: fp32 throughout,
//    softmax = exp(x - max) * (1 / sum), sel = norm + bias, group score max (mode 0) or top-2
//    sum (mode 1), keep k_group groups (others -inf), top-k on sel, weights from norm (no bias),
//    sigmoid always y / (sum + eps), * routed_scaling_factor, cast RINT to the input dtype.
//    Ties: AscendC Sort32 puts equal scores lower index first [doc]; the kernel's merge sort is
//    assumed to keep that order [inf].
//  * notes/vllm_ascend_quant.md §C "Fused kernel semantics" [code]: called with
//    group_select_mode = 1 (top-2 sum even without a bias); sqrtsoftplus via the hash kernel
//    (no groups, always renormalized with eps).
//  * §C "Native path" and the addendum [code]: max group score, masked experts set to 0.0, both
//    topk calls sorted=False (order unspecified, tie order unspecified: TieRule::kAny [inf]),
//    weights = unbiased scores with a bias, else the top-k values; w / sum(w) without eps; * rsf;
//    weights cast to the hidden dtype (§C "After routing").
//  * §C "Native path" item 4 [code at 4f3cc4c5]: the old select_experts applied rsf twice.
//  * §F [code]: upstream grouped_topk (-inf mask, top-2 group score only with a bias, fp32
//    weights) and fused_topk softmax (ties to the lower index, descending order).
//
// The canonical result (the golden's expected bits) uses correctly rounded exp/log, every other
// fp32 operation rounded to nearest even (qconf::num::f32_*), sums in index order. The bounds
// use the documented assumption of routing.h (kTranscendentalUlp) and interval arithmetic on
// the fp32 grid: every fp32 operation is monotone, so an interval [lo, hi] of operands gives
// [RN(op(lo)), RN(op(hi))]; open-order sums use the classical gamma_n bound (docs/bounds.md).
#include "qconf/ops/routing.h"

#include <algorithm>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/rng/philox.h"

namespace qconf {

namespace {

constexpr const char* kOp = "moe_gating_top_k";

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument(std::string(kOp) + ": " + what);
}

const num::FloatFormat& format_of(DType t) {
  switch (t) {
    case DType::kF32:
      return num::kF32;
    case DType::kF16:
      return num::kF16;
    case DType::kBF16:
      return num::kBF16;
    default:
      fail("expected a float32/float16/bfloat16 tensor, got " + std::string(dtype_name(t)));
  }
}

}  // namespace

std::string_view router_name(Router r) {
  switch (r) {
    case Router::kFusedAscend:
      return "fused_ascend";
    case Router::kNativeVllmAscend:
      return "native_vllm_ascend";
    case Router::kVllmGroupedTopk:
      return "vllm_grouped_topk";
    case Router::kVllmFusedTopkSoftmax:
      return "vllm_fused_topk_softmax";
    case Router::kOldSelectExperts:
      return "old_select_experts";
    case Router::kNativeVllmAscendTopk:
      return "native_vllm_ascend_topk";
    case Router::kVllmFusedTopkBias:
      return "vllm_fused_topk_bias";
  }
  return "?";
}

Router parse_router(std::string_view s) {
  for (Router r : {Router::kFusedAscend, Router::kNativeVllmAscend, Router::kVllmGroupedTopk,
                   Router::kVllmFusedTopkSoftmax, Router::kOldSelectExperts,
                   Router::kNativeVllmAscendTopk, Router::kVllmFusedTopkBias})
    if (router_name(r) == s) return r;
  throw std::invalid_argument("unknown router \"" + std::string(s) +
                              "\" (expected fused_ascend, native_vllm_ascend, vllm_grouped_topk, "
                              "vllm_fused_topk_softmax, old_select_experts, "
                              "native_vllm_ascend_topk or vllm_fused_topk_bias)");
}

std::string_view scoring_name(Scoring s) {
  switch (s) {
    case Scoring::kSoftmax:
      return "softmax";
    case Scoring::kSigmoid:
      return "sigmoid";
    case Scoring::kSqrtSoftplus:
      return "sqrtsoftplus";
  }
  return "?";
}

Scoring parse_scoring(std::string_view s) {
  for (Scoring v : {Scoring::kSoftmax, Scoring::kSigmoid, Scoring::kSqrtSoftplus})
    if (scoring_name(v) == s) return v;
  throw std::invalid_argument("unknown scoring \"" + std::string(s) +
                              "\" (expected softmax, sigmoid or sqrtsoftplus)");
}

// The behaviour of each router variant (sources in the file comment).
RouterTraits router_traits(const RoutingConfig& cfg, bool has_bias, DType logits_dtype) {
  RouterTraits t{};
  switch (cfg.router) {
    case Router::kFusedAscend:
      // group_select_mode = 1: top-2 sum always; Sort32: lower index first; kernel casts y to the
      // input dtype; sigmoid / sqrtsoftplus always renormalized with eps.
      t = {GroupScore::kTop2Sum,
           TieRule::kLowerIndex,
           false,
           true,
           cfg.scoring != Scoring::kSoftmax || cfg.renormalize,
           1,
           logits_dtype};
      break;
    case Router::kNativeVllmAscend:
      t = {GroupScore::kMax, TieRule::kAny, true, false, cfg.renormalize, 1, logits_dtype};
      break;
    case Router::kOldSelectExperts:
      t = {GroupScore::kMax, TieRule::kAny, true, false, cfg.renormalize, 2, logits_dtype};
      break;
    case Router::kVllmGroupedTopk:
      t = {has_bias ? GroupScore::kTop2Sum : GroupScore::kMax,
           TieRule::kAny,
           false,
           false,
           cfg.renormalize,
           1,
           DType::kF32};
      break;
    case Router::kVllmFusedTopkSoftmax:
      t = {GroupScore::kMax, TieRule::kLowerIndex, false, true, cfg.renormalize, 0, DType::kF32};
      t.ordered = true;  // topk_softmax_kernels.cu: iterative argmax, descending (notes §F)
      break;
    case Router::kNativeVllmAscendTopk:
      // grouped_topk_router.py without use_grouped_topk (notes §C "Native path" 3 and the
      // addendum) [code]: topk(s + bias) with the default sorted=True, weights = the biased
      // values, .to(hidden dtype), w / w.sum() and * rsf in that dtype. torch.topk does not
      // specify the order of equal values: TieRule::kAny [inf].
      t = {GroupScore::kMax, TieRule::kAny, false, false, cfg.renormalize, 1, logits_dtype};
      t.ordered = true;
      t.weights_biased = true;
      t.cast_first = true;
      break;
    case Router::kVllmFusedTopkBias:
      // upstream fused_topk_bias Python path (notes §F) [code]: sqrt(softplus(x.float())),
      // topk(s + bias) (default sorted=True [inf: the order of the call as noted]), weights from
      // s, w / clamp(sum, min=1e-20), * rsf, fp32 weights.
      t = {GroupScore::kMax, TieRule::kAny, false, false, cfg.renormalize, 1, DType::kF32};
      t.ordered = true;
      t.denominator = RenormDenominator::kClampEps;
      break;
  }
  // The fused kernel's merge sort emits the top-k by biased score, descending, ties lower index
  // first (notes §7: MrgSort [inf]); the hash kernel (sqrtsoftplus) is assumed to sort alike
  // [inf]. Its renormalization adds eps.
  if (cfg.router == Router::kFusedAscend) {
    t.ordered = true;
    t.denominator = RenormDenominator::kSumPlusEps;
  }
  // sqrt(softplus): the Ascend hash kernel computes ln(1 + exp(x)) with no guard (notes §C
  // "Fused kernel semantics") [code]; every torch path calls F.softplus (threshold 20, log1p)
  // [code: grouped_topk_router.py, upstream fused_topk_bias].
  t.softplus =
      cfg.router == Router::kFusedAscend ? SoftplusForm::kLnOnePlusExp : SoftplusForm::kTorch;
  return t;
}

void check_routing_args(const RoutingArgs& a, const RoutingConfig& c) {
  if (!a.logits) fail("missing input logits");
  const Tensor& x = *a.logits;
  format_of(x.dtype());
  if (x.rank() != 2) fail("logits must be 2-D [tokens, experts], got " + x.describe());
  const int64_t e = x.dim(1);
  if (e < 1) fail("logits need at least one expert column");
  if (c.top_k < 1) fail("top_k must be >= 1");
  if (c.n_group < 1 || c.k_group < 1 || c.k_group > c.n_group)
    fail("need 1 <= k_group <= n_group, got n_group " + std::to_string(c.n_group) + ", k_group " +
         std::to_string(c.k_group));
  if (e % c.n_group != 0)
    fail("experts (" + std::to_string(e) + ") must be divisible by n_group (" +
         std::to_string(c.n_group) + ")");
  const int64_t per_group = e / c.n_group;
  if (c.n_group > 1 && per_group < 2) fail("groups need at least 2 experts (top-2 group score)");
  if (c.top_k > per_group * c.k_group)
    fail("top_k (" + std::to_string(c.top_k) + ") exceeds the experts of the kept groups (" +
         std::to_string(per_group * c.k_group) + ")");
  if (!(c.routed_scaling_factor > 0.0f) || !std::isfinite(c.routed_scaling_factor))
    fail("routed_scaling_factor must be finite and > 0");
  if (!(c.eps >= 0.0f) || !std::isfinite(c.eps)) fail("eps must be finite and >= 0");
  if (c.transcendental_ulp < 0 || c.transcendental_ulp > 1 << 20)
    fail("transcendental_ulp out of range");
  if (c.zero_experts < 0 || c.zero_experts >= e) fail("zero_experts must be in [0, experts)");
  if (a.bias) {
    if (a.bias->dtype() != DType::kF32 || a.bias->rank() != 1 || a.bias->dim(0) != e)
      fail("bias must be float32 [" + std::to_string(e) + "], got " + a.bias->describe());
    for (int64_t i = 0; i < e; ++i)
      if (!std::isfinite(a.bias->data<float>()[i])) fail("bias must be finite");
  }
  const int64_t logical = e - c.zero_experts;
  for (const Tensor* m : {a.expert_map, a.log2phy}) {
    if (!m) continue;
    if (m->dtype() != DType::kI32 || m->rank() != 1 || m->dim(0) != logical)
      fail("expert_map / log2phy must be int32 [" + std::to_string(logical) + "], got " +
           m->describe());
  }
  if (a.log2phy)
    for (int64_t i = 0; i < logical; ++i)
      if (a.log2phy->data<int32_t>()[i] < 0) fail("log2phy entries must be >= 0");
  switch (c.router) {
    case Router::kVllmFusedTopkSoftmax:
      if (c.scoring != Scoring::kSoftmax || a.bias || c.n_group != 1)
        fail("vllm_fused_topk_softmax: softmax only, no bias, no groups");
      break;
    case Router::kVllmGroupedTopk:
      if (c.scoring == Scoring::kSqrtSoftplus) fail("vllm_grouped_topk: softmax or sigmoid only");
      break;
    case Router::kFusedAscend:
      if (c.scoring == Scoring::kSqrtSoftplus && c.n_group != 1)
        fail("fused_ascend sqrtsoftplus (hash kernel) has no groups: n_group must be 1");
      break;
    case Router::kNativeVllmAscendTopk:
      if (c.n_group != 1)
        fail("native_vllm_ascend_topk is the non-grouped path: n_group must be 1");
      break;
    case Router::kVllmFusedTopkBias:
      if (c.scoring != Scoring::kSqrtSoftplus || c.n_group != 1)
        fail("vllm_fused_topk_bias: sqrtsoftplus only, no groups");
      break;
    default:
      break;
  }
  // Finite: the exponent field is not all ones (bit test: this scan also runs on the fast path).
  const num::FloatFormat& f = format_of(x.dtype());
  const uint64_t exp_mask = num::exp_field_max(f) << f.mant_bits;
  for (int64_t i = 0; i < x.numel(); ++i)
    if ((x.bits_at(i) & exp_mask) == exp_mask)
      fail("logits must be finite (element " + std::to_string(i) + ")");
}

Tensor force_load_balance_ids(int64_t tokens, int64_t experts, int64_t k, uint64_t seed) {
  if (tokens < 0 || experts < 1 || k < 1 || k > experts)
    throw std::invalid_argument("force_load_balance_ids: need tokens >= 0, 1 <= k <= experts");
  Tensor out(DType::kI32, {tokens, k});
  std::vector<int32_t> order(static_cast<size_t>(experts));
  std::vector<double> u(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < experts; ++e) {
      u[e] = rng::uniform01_at(seed, 0, static_cast<uint64_t>(t * experts + e));
      order[e] = static_cast<int32_t>(e);
    }
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return u[a] < u[b]; });
    for (int64_t j = 0; j < k; ++j) out.data<int32_t>()[t * k + j] = order[j];
  }
  return out;
}

namespace ref {
namespace {

using High = boost::multiprecision::cpp_bin_float_50;  // ~166-bit significand
using num::Exact;

// ---- fp32 rounding of high-precision values ---------------------------------------------

// The exact value of a cpp_bin_float (a dyadic rational) as an Exact.
Exact to_exact(const High& v) { return v.convert_to<Exact>(); }

float f32_round(const High& v, num::Round mode) {
  return num::f32_from_bits(static_cast<uint32_t>(num::encode(num::kF32, to_exact(v), mode)));
}
High high(float f) { return High(static_cast<double>(f)); }  // exact

// Correctly rounded fp32 exp / log (the canonical reading of the transcendental steps).
float exp_rn(float x) { return f32_round(boost::multiprecision::exp(high(x)), num::Round::kRint); }
float log_rn(float x) { return f32_round(boost::multiprecision::log(high(x)), num::Round::kRint); }
float log1p_rn(float x) {
  return f32_round(boost::multiprecision::log1p(high(x)), num::Round::kRint);
}
float sqrt_rn(float x) { return std::sqrt(x); }  // IEEE: correctly rounded

// ---- interval enclosures on the fp32 grid ----------------------------------------------

struct Iv {
  float lo, hi;
};

// The assumption of routing.h: a platform transcendental f returns a value within
// relative rho = N 2^-23 (plus N smallest subnormals) of the exact value v. The exact value is
// known to ~2^-160 relative; 2^-120 absorbs that.
struct Transcendental {
  int ulp;
  High rho() const { return High(ulp) * boost::multiprecision::ldexp(High(1), -23); }
  High abs() const { return High(ulp) * boost::multiprecision::ldexp(High(1), -149); }
  Iv around(const High& v) const {
    const High margin = boost::multiprecision::ldexp(High(1), -120);
    const High r = rho() + margin;
    High lo = v * (1 - r) - abs(), hi = v * (1 + r) + abs();
    if (v >= 0 && lo < 0) lo = 0;  // exp, sqrt(softplus) are never negative
    return {f32_round(lo, num::Round::kFloor), f32_round(hi, num::Round::kCeil)};
  }
};

// gamma_n = n u / (1 - n u), u = 2^-24: |fl(sum) - sum| <= gamma_{n-1} * sum |a_i| for any
// summation order of n terms (Higham, Accuracy and Stability, Lemma 3.1 / eq. 3.5).
High gamma(int64_t terms) {
  const High n = High(std::max<int64_t>(terms - 1, 0));
  const High u = boost::multiprecision::ldexp(High(1), -24);
  return n * u / (1 - n * u);
}

// Enclosure of an fp32 sum, any order, of nonnegative terms in the given intervals.
Iv sum_iv(const std::vector<Iv>& terms) {
  High lo = 0, hi = 0;
  for (const Iv& t : terms) {
    lo += high(t.lo);
    hi += high(t.hi);
  }
  const High g = gamma(static_cast<int64_t>(terms.size()));
  return {f32_round(lo * (1 - g), num::Round::kFloor), f32_round(hi * (1 + g), num::Round::kCeil)};
}

// ---- per-token model -------------------------------------------------------------------

struct Token {
  // canonical
  std::vector<float> score, sel;
  // enclosures
  std::vector<Iv> score_iv, sel_iv;
  std::vector<High> score_exact;
  std::vector<float> bias;    // 0 without a bias
  std::vector<uint64_t> key;  // experts with equal keys have equal scores in every realization
};

// Scores of one token: canonical values, exact values, enclosures.
// Step 1 of every router (notes §C "Fused kernel semantics" 1, "Native path" 1).
void score_token(const float* x, int64_t e, const float* bias, const RoutingConfig& cfg,
                 const RouterTraits& tr, Token& tk) {
  const Transcendental tx{cfg.transcendental_ulp};
  tk.score.assign(e, 0.0f);
  tk.score_iv.assign(e, Iv{0, 0});
  tk.score_exact.assign(e, High(0));
  if (cfg.scoring == Scoring::kSoftmax) {
    // exp(x - max) with x - max rounded (deterministic), sum in index order (canonical), then
    // * (1 / sum) (fused kernel, upstream topk_softmax) or / sum (torch.softmax) [inf: the NPU
    // torch.softmax formula]. Enclosure: the hull of both formulas.
    float m = x[0];
    for (int64_t i = 1; i < e; ++i) m = std::max(m, x[i]);
    std::vector<float> ex(e);
    std::vector<Iv> ex_iv(e);
    float sum = 0.0f;
    High exact_sum = 0;
    std::vector<High> exact_ex(e);
    for (int64_t i = 0; i < e; ++i) {
      const float d = num::f32_sub(x[i], m);
      ex[i] = exp_rn(d);
      ex_iv[i] = tx.around(boost::multiprecision::exp(high(d)));
      sum = num::f32_add(sum, ex[i]);
      exact_ex[i] = boost::multiprecision::exp(high(x[i]) - high(m));
      exact_sum += exact_ex[i];
    }
    const Iv s_iv = sum_iv(ex_iv);
    const float inv = num::f32_div(1.0f, sum);
    const float inv_lo = num::f32_div(1.0f, s_iv.hi), inv_hi = num::f32_div(1.0f, s_iv.lo);
    for (int64_t i = 0; i < e; ++i) {
      tk.score[i] = tr.reciprocal_softmax ? num::f32_mul(ex[i], inv) : num::f32_div(ex[i], sum);
      tk.score_iv[i] = {
          std::min(num::f32_mul(ex_iv[i].lo, inv_lo), num::f32_div(ex_iv[i].lo, s_iv.hi)),
          std::max(num::f32_mul(ex_iv[i].hi, inv_hi), num::f32_div(ex_iv[i].hi, s_iv.lo))};
      tk.score_exact[i] = exact_ex[i] / exact_sum;
    }
  } else if (cfg.scoring == Scoring::kSigmoid) {
    // 1 / (1 + exp(-x)) with each fp32 operation rounded.
    for (int64_t i = 0; i < e; ++i) {
      const float en = exp_rn(-x[i]);
      tk.score[i] = num::f32_div(1.0f, num::f32_add(1.0f, en));
      const Iv ei = tx.around(boost::multiprecision::exp(-high(x[i])));
      tk.score_iv[i] = {num::f32_div(1.0f, num::f32_add(1.0f, ei.hi)),
                        num::f32_div(1.0f, num::f32_add(1.0f, ei.lo))};
      tk.score_exact[i] = 1 / (1 + boost::multiprecision::exp(-high(x[i])));
    }
  } else if (tr.softplus == SoftplusForm::kLnOnePlusExp) {
    // Ascend hash kernel: sqrt(ln(1 + exp(x))), each step rounded, no overflow guard. 1 + exp(x)
    // rounds to 1 for x below about -17, so the score is exactly 0 there.
    for (int64_t i = 0; i < e; ++i) {
      const float ep = exp_rn(x[i]);
      const float a = num::f32_add(1.0f, ep);
      tk.score[i] = sqrt_rn(log_rn(a));
      const Iv ei = tx.around(boost::multiprecision::exp(high(x[i])));
      const Iv ai = {num::f32_add(1.0f, ei.lo), num::f32_add(1.0f, ei.hi)};
      const Iv l = {tx.around(boost::multiprecision::log(high(ai.lo))).lo,
                    tx.around(boost::multiprecision::log(high(ai.hi))).hi};
      tk.score_iv[i] = {sqrt_rn(l.lo), sqrt_rn(l.hi)};
      tk.score_exact[i] = boost::multiprecision::sqrt(
          boost::multiprecision::log1p(boost::multiprecision::exp(high(x[i]))));
    }
  } else {
    // torch: sqrt(F.softplus(x)), softplus = x if x > 20, else log1p(exp(x)) (each rounded).
    for (int64_t i = 0; i < e; ++i) {
      Iv l;
      if (x[i] > 20.0f) {
        tk.score[i] = sqrt_rn(x[i]);
        l = {x[i], x[i]};
      } else {
        tk.score[i] = sqrt_rn(log1p_rn(exp_rn(x[i])));
        const Iv ei = tx.around(boost::multiprecision::exp(high(x[i])));
        l = {tx.around(boost::multiprecision::log1p(high(ei.lo))).lo,
             tx.around(boost::multiprecision::log1p(high(ei.hi))).hi};
      }
      tk.score_iv[i] = {sqrt_rn(l.lo), sqrt_rn(l.hi)};
      tk.score_exact[i] = boost::multiprecision::sqrt(
          boost::multiprecision::log1p(boost::multiprecision::exp(high(x[i]))));
    }
  }
  // Step 2: selection score = score + bias (fp32), for selection only.
  tk.sel = tk.score;
  tk.sel_iv = tk.score_iv;
  tk.key.assign(e, 0);
  tk.bias.assign(e, 0.0f);
  for (int64_t i = 0; i < e; ++i) {
    const float b = bias ? bias[i] : 0.0f;
    tk.bias[i] = b;
    if (bias) {
      tk.sel[i] = num::f32_add(tk.score[i], b);
      tk.sel_iv[i] = {num::f32_add(tk.score_iv[i].lo, b), num::f32_add(tk.score_iv[i].hi, b)};
    }
    tk.key[i] = (uint64_t{num::f32_bits(x[i])} << 32) | num::f32_bits(b);
  }
}

// ---- reachable top-k -------------------------------------------------------------------

struct Item {
  Iv v;
  uint64_t key;
};

bool tie_wins(int64_t j, int64_t i, TieRule r) { return r == TieRule::kAny || j < i; }

// j ranks above i in some realization.
bool may_beat(const std::vector<Item>& it, int64_t j, int64_t i, TieRule r) {
  if (it[j].key == it[i].key) return tie_wins(j, i, r);
  return it[j].v.hi > it[i].v.lo || (it[j].v.hi == it[i].v.lo && tie_wins(j, i, r));
}
// j ranks above i in every realization.
bool must_beat(const std::vector<Item>& it, int64_t j, int64_t i, TieRule r) {
  if (it[j].key == it[i].key) return r == TieRule::kLowerIndex && j < i;
  return it[j].v.lo > it[i].v.hi ||
         (it[j].v.lo == it[i].v.hi && r == TieRule::kLowerIndex && j < i);
}

constexpr size_t kMaxAlternatives = 512;

// Every k-subset of `cand` that the enclosures make reachable (an over-approximation: sure
// members, plus any choice among the possible ones that no sure ordering contradicts).
std::vector<std::vector<int64_t>> reachable_topk(const std::vector<Item>& it,
                                                 const std::vector<int64_t>& cand, int64_t k,
                                                 TieRule r) {
  std::vector<int64_t> sure, maybe;
  for (int64_t i : cand) {
    int64_t may = 0, must = 0;
    for (int64_t j : cand) {
      if (j == i) continue;
      may += may_beat(it, j, i, r);
      must += must_beat(it, j, i, r);
    }
    if (may < k)
      sure.push_back(i);
    else if (must < k)
      maybe.push_back(i);
  }
  const int64_t need = k - static_cast<int64_t>(sure.size());
  if (need < 0 || need > static_cast<int64_t>(maybe.size()))
    throw std::logic_error(std::string(kOp) + ": inconsistent reachable top-k");
  std::vector<std::vector<int64_t>> out;
  std::vector<int64_t> pick;
  std::function<void(size_t)> rec = [&](size_t from) {
    if (static_cast<int64_t>(pick.size()) == need) {
      std::vector<int64_t> s = sure;
      s.insert(s.end(), pick.begin(), pick.end());
      std::set<int64_t> in(s.begin(), s.end());
      for (int64_t i : s)
        for (int64_t j : cand)
          if (!in.count(j) && must_beat(it, j, i, r)) return;
      std::sort(s.begin(), s.end());
      out.push_back(std::move(s));
      if (out.size() > kMaxAlternatives)
        throw std::logic_error(std::string(kOp) + ": more than 512 reachable top-k sets");
      return;
    }
    for (size_t q = from; q < maybe.size(); ++q) {
      pick.push_back(maybe[q]);
      rec(q + 1);
      pick.pop_back();
    }
  };
  rec(0);
  return out;
}

constexpr size_t kMaxSequences = 4096;

// Every order of `set` that the enclosures make reachable: any sequence in which no element
// comes after one it must beat (tied or near-tied elements in either order; exact ties as the
// tie rule says). Appended to `out` (an over-approximation, like reachable_topk).
void reachable_orders(const std::vector<Item>& it, std::vector<int64_t> rest, TieRule r,
                      std::vector<int64_t>& cur, std::vector<std::vector<int64_t>>& out) {
  if (rest.empty()) {
    out.push_back(cur);
    if (out.size() > kMaxSequences)
      throw std::logic_error(std::string(kOp) + ": more than 4096 reachable top-k sequences");
    return;
  }
  for (size_t q = 0; q < rest.size(); ++q) {
    bool beaten = false;
    for (size_t o = 0; o < rest.size() && !beaten; ++o)
      beaten = o != q && must_beat(it, rest[o], rest[q], r);
    if (beaten) continue;
    const int64_t pick = rest[q];
    cur.push_back(pick);
    rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(q));
    reachable_orders(it, rest, r, cur, out);
    rest.insert(rest.begin() + static_cast<std::ptrdiff_t>(q), pick);
    cur.pop_back();
  }
}

// Canonical top-k of `cand` by value, descending, ties to the lower index (stable sort).
std::vector<int64_t> canonical_topk(const std::vector<float>& v, std::vector<int64_t> cand,
                                    int64_t k) {
  std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  cand.resize(k);
  return cand;
}

// Step 3: group scores (max, or the sum of the two largest selection scores).
float group_score(const std::vector<float>& sel, int64_t g, int64_t per, GroupScore mode) {
  std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
  std::sort(v.begin(), v.end(), std::greater<float>());
  return mode == GroupScore::kMax ? v[0] : num::f32_add(v[0], v[1]);
}

Iv group_score_iv(const std::vector<Iv>& sel, int64_t g, int64_t per, GroupScore mode) {
  std::vector<float> lo, hi;
  for (int64_t i = g * per; i < (g + 1) * per; ++i) {
    lo.push_back(sel[i].lo);
    hi.push_back(sel[i].hi);
  }
  std::sort(lo.begin(), lo.end(), std::greater<float>());
  std::sort(hi.begin(), hi.end(), std::greater<float>());
  if (mode == GroupScore::kMax) return {lo[0], hi[0]};
  return {num::f32_add(lo[0], lo[1]), num::f32_add(hi[0], hi[1])};
}

float cast_weight(float y, DType dt) {
  switch (dt) {
    case DType::kBF16:
      return num::bf16_to_f32(num::f32_to_bf16(y, num::Round::kRint));
    case DType::kF16:
      return num::f16_to_f32(num::f32_to_f16(y, num::Round::kRint));
    default:
      return y;
  }
}

}  // namespace
}  // namespace ref

// Stores an fp32 value already rounded to t's dtype (exact).
void store_weight(Tensor& t, int64_t i, float v) {
  switch (t.dtype()) {
    case DType::kBF16:
      t.data<uint16_t>()[i] = num::f32_to_bf16(v);
      break;
    case DType::kF16:
      t.data<uint16_t>()[i] = num::f32_to_f16(v);
      break;
    default:
      t.data<float>()[i] = v;
  }
}

namespace ref {
namespace {

struct Selection {
  std::vector<int64_t> groups;   // kept groups (sorted)
  std::vector<int64_t> experts;  // selected experts (variant order for the canonical one)
};

struct Problem {
  const RoutingConfig& cfg;
  RouterTraits tr;
  int64_t e, per, logical;
  bool has_bias;
  const int32_t* expert_map;
  const int32_t* log2phy;
};

// Is expert i masked (outside the kept groups)?
bool masked(const Problem& p, const std::vector<int64_t>& groups, int64_t i) {
  if (p.cfg.n_group == 1) return false;
  return !std::binary_search(groups.begin(), groups.end(), i / p.per);
}

// Steps 4-5: candidates for the expert top-k given the kept groups, with their selection
// value (0.0 for masked experts in the native path; masked experts are excluded at -inf).
std::vector<int64_t> candidates(const Problem& p, const std::vector<int64_t>& groups) {
  std::vector<int64_t> c;
  for (int64_t i = 0; i < p.e; ++i)
    if (!masked(p, groups, i) || p.tr.mask_zero) c.push_back(i);
  return c;
}

// Weight of selected expert i before renormalization (steps 5-6).
float raw_weight(const Problem& p, const Token& tk, const std::vector<int64_t>& groups, int64_t i) {
  // Native without a bias returns the top-k values themselves: 0.0 for a masked expert.
  if (p.tr.mask_zero && !p.has_bias && masked(p, groups, i)) return 0.0f;
  return p.tr.weights_biased ? tk.sel[i] : tk.score[i];
}
Iv raw_weight_iv(const Problem& p, const Token& tk, const std::vector<int64_t>& groups, int64_t i) {
  if (p.tr.mask_zero && !p.has_bias && masked(p, groups, i)) return {0.0f, 0.0f};
  return p.tr.weights_biased ? tk.sel_iv[i] : tk.score_iv[i];
}
High raw_weight_exact(const Problem& p, const Token& tk, const std::vector<int64_t>& groups,
                      int64_t i) {
  if (p.tr.mask_zero && !p.has_bias && masked(p, groups, i)) return 0;
  if (p.tr.weights_biased && p.has_bias) return tk.score_exact[i] + high(tk.bias[i]);
  return tk.score_exact[i];
}

// Hull of a / b and a * (1 / b) over a in [a.lo, a.hi], b in [b.lo, b.hi] (b of one sign,
// else unbounded), each fp32 operation rounded to nearest.
Iv div_iv(const Iv& a, const Iv& b) {
  if (!(b.lo > 0.0f || b.hi < 0.0f))
    return {-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (float x : {a.lo, a.hi})
    for (float y : {b.lo, b.hi})
      for (float v : {num::f32_div(x, y), num::f32_mul(x, num::f32_div(1.0f, y))}) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  return {lo, hi};
}

// Enclosure of an fp32 sum, any order, of terms of any sign: |error| <= gamma_{n-1} sum |a_i|.
Iv sum_iv_signed(const std::vector<Iv>& terms) {
  bool nonneg = true;
  for (const Iv& t : terms) nonneg = nonneg && t.lo >= 0.0f;
  if (nonneg) return sum_iv(terms);
  High lo = 0, hi = 0, mag = 0;
  for (const Iv& t : terms) {
    lo += high(t.lo);
    hi += high(t.hi);
    mag += std::max(abs(high(t.lo)), abs(high(t.hi)));
  }
  const High err = gamma(static_cast<int64_t>(terms.size())) * mag;
  return {f32_round(lo - err, num::Round::kFloor), f32_round(hi + err, num::Round::kCeil)};
}

// The renormalization denominator from the sum (RouterTraits::denominator).
float denominator(const Problem& p, float s) {
  switch (p.tr.denominator) {
    case RenormDenominator::kSumPlusEps:
      return num::f32_add(s, p.cfg.eps);
    case RenormDenominator::kClampEps:
      return std::max(s, p.cfg.eps);
    default:
      return s;
  }
}

// Steps 6-7: renormalize (sum in selection order; + eps for the fused kernel, clamp(min=eps)
// upstream), scale, cast. cast_first (native non-grouped path): the cast comes first and every
// later torch op computes in fp32 and rounds to the weight dtype.
std::vector<float> finish_weights(const Problem& p, std::vector<float> w) {
  const DType dt = p.tr.weight_dtype;
  const bool cf = p.tr.cast_first;
  if (cf)
    for (float& v : w) v = cast_weight(v, dt);
  if (p.tr.renorm) {
    float s = 0.0f;
    for (float v : w) s = num::f32_add(s, v);
    if (cf) s = cast_weight(s, dt);
    s = denominator(p, s);
    for (float& v : w) v = num::f32_div(v, s);
    if (cf)
      for (float& v : w) v = cast_weight(v, dt);
  }
  for (int t = 0; t < p.tr.scale_times; ++t)
    for (float& v : w) v = num::f32_mul(v, p.cfg.routed_scaling_factor);
  for (float& v : w) v = cast_weight(v, dt);
  return w;
}
std::vector<Iv> finish_weights_iv(const Problem& p, std::vector<Iv> w) {
  const DType dt = p.tr.weight_dtype;
  const bool cf = p.tr.cast_first;
  auto cast_all = [&](std::vector<Iv>& v) {
    for (Iv& x : v) x = {cast_weight(x.lo, dt), cast_weight(x.hi, dt)};
  };
  if (cf) cast_all(w);
  if (p.tr.renorm) {
    Iv s = sum_iv_signed(w);
    if (cf) s = {cast_weight(s.lo, dt), cast_weight(s.hi, dt)};
    s = {denominator(p, s.lo), denominator(p, s.hi)};
    for (Iv& v : w) v = div_iv(v, s);  // hull of w / s and w * (1 / s)
    if (cf) cast_all(w);
  }
  for (int t = 0; t < p.tr.scale_times; ++t)
    for (Iv& v : w)
      v = {num::f32_mul(v.lo, p.cfg.routed_scaling_factor),
           num::f32_mul(v.hi, p.cfg.routed_scaling_factor)};
  cast_all(w);
  return w;
}
std::vector<High> finish_weights_exact(const Problem& p, std::vector<High> w) {
  if (p.tr.renorm) {
    High s = 0;
    for (const High& v : w) s += v;
    if (p.tr.denominator == RenormDenominator::kSumPlusEps) s += high(p.cfg.eps);
    if (p.tr.denominator == RenormDenominator::kClampEps) s = std::max(s, high(p.cfg.eps));
    for (High& v : w) v /= s;
  }
  for (int t = 0; t < p.tr.scale_times; ++t)
    for (High& v : w) v *= high(p.cfg.routed_scaling_factor);
  return w;
}

// After routing (§C "After routing"): weights of non-local experts are zeroed (expert_map);
// zero experts keep their weight in the dense output (the identity scale of
// zero_experts_compute) but get id 0 and weight 0 in the top-k outputs; log2phy maps the other
// ids to physical ids [inf: order of zero-expert and log2phy handling].
bool zeroed_dense(const Problem& p, int64_t i) {
  return i < p.logical && p.expert_map && p.expert_map[i] < 0;
}
int32_t final_id(const Problem& p, int64_t i) {
  if (i >= p.logical) return 0;
  return p.log2phy ? p.log2phy[i] : static_cast<int32_t>(i);
}

Problem make_problem(const RoutingArgs& a, const RoutingConfig& cfg) {
  check_routing_args(a, cfg);
  const int64_t e = a.logits->dim(1);
  return Problem{cfg,
                 router_traits(cfg, a.bias != nullptr, a.logits->dtype()),
                 e,
                 e / cfg.n_group,
                 e - cfg.zero_experts,
                 a.bias != nullptr,
                 a.expert_map ? a.expert_map->data<int32_t>() : nullptr,
                 a.log2phy ? a.log2phy->data<int32_t>() : nullptr};
}

std::vector<float> logits_f32(const Tensor& x) {
  const num::FloatFormat& f = format_of(x.dtype());
  std::vector<float> v(x.numel());
  for (int64_t i = 0; i < x.numel(); ++i)
    v[i] = static_cast<float>(num::to_double(f, x.bits_at(i)));  // exact widening
  return v;
}

// Canonical selection of one token.
Selection canonical_selection(const Problem& p, const Token& tk) {
  Selection s;
  if (p.cfg.n_group > 1) {
    std::vector<float> gs(p.cfg.n_group);
    std::vector<int64_t> all(p.cfg.n_group);
    for (int64_t g = 0; g < p.cfg.n_group; ++g) {
      gs[g] = group_score(tk.sel, g, p.per, p.tr.group_score);
      all[g] = g;
    }
    s.groups = canonical_topk(gs, all, p.cfg.k_group);
    std::sort(s.groups.begin(), s.groups.end());
  }
  std::vector<float> v = tk.sel;
  for (int64_t i = 0; i < p.e; ++i)
    if (masked(p, s.groups, i)) v[i] = 0.0f;  // only candidates when mask_zero
  s.experts = canonical_topk(v, candidates(p, s.groups), p.cfg.top_k);
  return s;
}

}  // namespace

RoutingStages moe_gating_top_k(const RoutingArgs& a, const RoutingConfig& cfg) {
  const Problem p = make_problem(a, cfg);
  const int64_t t_count = a.logits->dim(0), k = cfg.top_k;
  const std::vector<float> x = logits_f32(*a.logits);
  const float* bias = a.bias ? a.bias->data<float>() : nullptr;
  RoutingStages out;
  out.scores = Tensor(DType::kF32, {t_count, p.e});
  out.topk_ids = Tensor(DType::kI32, {t_count, k});
  out.topk_weights = Tensor(p.tr.weight_dtype, {t_count, k});
  out.expert_weights = Tensor(p.tr.weight_dtype, {t_count, p.e});
  for (int64_t t = 0; t < t_count; ++t) {
    Token tk;
    score_token(x.data() + t * p.e, p.e, bias, cfg, p.tr, tk);
    std::copy(tk.score.begin(), tk.score.end(), out.scores.data<float>() + t * p.e);
    const Selection s = canonical_selection(p, tk);
    std::vector<float> w;
    for (int64_t i : s.experts) w.push_back(raw_weight(p, tk, s.groups, i));
    w = finish_weights(p, w);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = s.experts[j];
      const float wd = zeroed_dense(p, i) ? 0.0f : w[j];
      store_weight(out.expert_weights, t * p.e + i, wd);
      out.topk_ids.data<int32_t>()[t * k + j] = final_id(p, i);
      store_weight(out.topk_weights, t * k + j, i >= p.logical ? 0.0f : wd);
    }
  }
  return out;
}

RoutingBounds moe_gating_top_k_bounds(const RoutingArgs& a, const RoutingConfig& cfg) {
  const Problem p = make_problem(a, cfg);
  const int64_t t_count = a.logits->dim(0), k = cfg.top_k;
  const std::vector<float> x = logits_f32(*a.logits);
  const float* bias = a.bias ? a.bias->data<float>() : nullptr;
  RoutingBounds b;
  b.ordered = p.tr.ordered;
  b.scores_exact = Tensor(DType::kF64, {t_count, p.e});
  b.scores_bound = Tensor(DType::kF64, {t_count, p.e});
  b.weights_exact = Tensor(DType::kF64, {t_count, p.e});
  b.weights_bound = Tensor(DType::kF64, {t_count, p.e});
  // Bound of |v - exact| over an enclosure, rounded up to a double.
  // Measured from the exact value as stored (rounded to double), as the verdict measures it,
  // and rounded up: RN(|g - e|) <= RU(max distance) for every g in the enclosure.
  auto bound_of = [](const Iv& iv, const High& exact) {
    const High e = High(exact.convert_to<double>());
    const High d = std::max(abs(high(iv.hi) - e), abs(e - high(iv.lo)));
    double r = d.convert_to<double>();
    while (High(r) < d) r = std::nextafter(r, std::numeric_limits<double>::infinity());
    return r;
  };
  for (int64_t t = 0; t < t_count; ++t) {
    Token tk;
    score_token(x.data() + t * p.e, p.e, bias, cfg, p.tr, tk);
    for (int64_t i = 0; i < p.e; ++i) {
      b.scores_exact.data<double>()[t * p.e + i] = tk.score_exact[i].convert_to<double>();
      b.scores_bound.data<double>()[t * p.e + i] =
          std::isinf(tk.score_iv[i].hi) ? std::numeric_limits<double>::infinity()
                                        : bound_of(tk.score_iv[i], tk.score_exact[i]);
    }
    // Reachable group sets.
    std::vector<std::vector<int64_t>> group_sets{{}};
    if (cfg.n_group > 1) {
      std::vector<Item> gi(cfg.n_group);
      std::vector<int64_t> all(cfg.n_group);
      for (int64_t g = 0; g < cfg.n_group; ++g) {
        // Link key: the group's (logit, bias) multiset (identical groups score identically).
        std::vector<uint64_t> ks(tk.key.begin() + g * p.per, tk.key.begin() + (g + 1) * p.per);
        std::sort(ks.begin(), ks.end());
        uint64_t h = 1469598103934665603ull;
        for (uint64_t v : ks) h = (h ^ v) * 1099511628211ull;
        gi[g] = {group_score_iv(tk.sel_iv, g, p.per, p.tr.group_score), h};
        all[g] = g;
      }
      group_sets = reachable_topk(gi, all, cfg.k_group, p.tr.ties);
    }
    const Selection canon = canonical_selection(p, tk);
    std::vector<int32_t> canon_ids;
    for (int64_t i : canon.experts) canon_ids.push_back(final_id(p, i));
    if (!p.tr.ordered) std::sort(canon_ids.begin(), canon_ids.end());
    std::set<std::vector<int32_t>> alts;
    std::vector<Iv> dense(p.e, Iv{0, 0});
    std::vector<bool> touched(p.e, false);
    std::vector<int64_t> in_sets(p.e, 0);
    int64_t total_sets = 0;
    bool canon_reached = false;
    bool canon_seq_reached = !p.tr.ordered;
    for (const std::vector<int64_t>& groups : group_sets) {
      std::vector<Item> it(p.e);
      for (int64_t i = 0; i < p.e; ++i) {
        it[i] = {tk.sel_iv[i], tk.key[i]};
        if (masked(p, groups, i)) it[i] = {{0.0f, 0.0f}, ~uint64_t{0}};  // native: 0.0
      }
      for (const std::vector<int64_t>& set :
           reachable_topk(it, candidates(p, groups), k, p.tr.ties)) {
        canon_reached = canon_reached || (groups == canon.groups && set == [&] {
                          std::vector<int64_t> c = canon.experts;
                          std::sort(c.begin(), c.end());
                          return c;
                        }());
        std::vector<int32_t> ids;
        std::vector<Iv> w;
        ++total_sets;
        for (int64_t i : set) {
          ++in_sets[i];
          ids.push_back(final_id(p, i));
          w.push_back(raw_weight_iv(p, tk, groups, i));
        }
        if (p.tr.ordered) {
          std::vector<std::vector<int64_t>> seqs;
          std::vector<int64_t> cur;
          reachable_orders(it, set, p.tr.ties, cur, seqs);
          for (const std::vector<int64_t>& q : seqs) {
            std::vector<int32_t> sq;
            for (int64_t i : q) sq.push_back(final_id(p, i));
            canon_seq_reached = canon_seq_reached || sq == canon_ids;
            if (sq != canon_ids) alts.insert(std::move(sq));
          }
        } else {
          std::sort(ids.begin(), ids.end());
          if (ids != canon_ids) alts.insert(ids);
        }
        w = finish_weights_iv(p, w);
        for (size_t j = 0; j < set.size(); ++j) {
          const int64_t i = set[j];
          const Iv v = zeroed_dense(p, i) ? Iv{0, 0} : w[j];
          dense[i] = touched[i] ? Iv{std::min(dense[i].lo, v.lo), std::max(dense[i].hi, v.hi)} : v;
          touched[i] = true;
        }
      }
    }
    if (!canon_reached || !canon_seq_reached)
      throw std::logic_error(std::string(kOp) + ": canonical selection outside the reachable sets");
    std::vector<High> exact_raw;
    for (int64_t i : canon.experts) exact_raw.push_back(raw_weight_exact(p, tk, canon.groups, i));
    const std::vector<High> exact_w = finish_weights_exact(p, exact_raw);
    std::vector<High> exact_dense(p.e, High(0));
    for (size_t j = 0; j < canon.experts.size(); ++j)
      if (!zeroed_dense(p, canon.experts[j])) exact_dense[canon.experts[j]] = exact_w[j];
    for (int64_t i = 0; i < p.e; ++i) {
      Iv v = dense[i];
      // Selected in some reachable sets only: its weight may also be 0.
      if (touched[i] && in_sets[i] < total_sets) v.lo = std::min(v.lo, 0.0f);
      b.weights_exact.data<double>()[t * p.e + i] = exact_dense[i].convert_to<double>();
      b.weights_bound.data<double>()[t * p.e + i] =
          std::isinf(v.hi) ? std::numeric_limits<double>::infinity() : bound_of(v, exact_dense[i]);
    }
    if (!alts.empty()) {
      b.alt_rows.push_back(t);
      for (const std::vector<int32_t>& r : alts)
        b.alt_ids.insert(b.alt_ids.end(), r.begin(), r.end());
      b.alt_offsets.push_back(static_cast<int64_t>(b.alt_ids.size()));
    }
  }
  return b;
}

}  // namespace ref
}  // namespace qconf
