// A whole MoE layer around an expert-MLP op on dispatched rows (shared by
// scheme_w4a8_dynamic_moe_layer.cpp and scheme_w4a16_moe_layer.cpp): the MoE layer skeleton
// (qconf/ops/moe_layer.h) with init_routing_v2's quant off (quant_mode -1: the int4 expert MLPs
// quantize x themselves, W4A8 by npu_dynamic_quant inside quant_apply_mlp, W4A16 not at all),
// and the scheme's dispatched-rows op (scheme_w4a8_dynamic_moe / scheme_w4a16_moe) as the
// callback, fed with the layer's expanded rows as x and the dispatch counts as group_list.
//
// Checks: the routing stages as scheme_w8a8_dynamic_moe checks them (moe_gating_top_k's
// oracle), the dispatch stages EXACT, the expert-MLP stages by the dispatched op's own oracle
// (run on the reference's dispatch outputs, which are checked EXACT), its output `y` renamed
// `expert_out`, and the layer output y BOUNDED: the combine bound of the reference inputs plus
// the propagated expert_out range and weight-cast uncertainty (docs/bounds.md
// "scheme_w4a8_dynamic_moe_layer / scheme_w4a16_moe_layer").
// Source: notes/vllm_ascend_quant.md §C (router, dispatch, quantized MLP); vllm-ascend
// ops/fused_moe/token_dispatcher.py TokenDispatcherWithAllGather (quant_mode -1 unless the
// scheme is W8A8 with the dispatch quant), ops/fused_moe/moe_mlp.py.
#pragma once

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qconf/numeric/float_format.h"
#include "qconf/ops/dispatch.h"
#include "qconf/ops/moe_layer.h"
#include "qconf/ops/routing.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf::moe_layer_wrap {

// The layer op: its name, the dispatched-rows op (its OpDef, from that file's make()), and the
// checkpoint weight inputs (stacked over all E experts).
struct Spec {
  const char* op = "";
  const OpDef* mlp = nullptr;
  std::vector<std::string> weights;
};

inline float num_param(const Spec& s, const Params& p, const char* key, float dflt) {
  auto it = p.find(key);
  if (it == p.end()) return dflt;
  if (!it->is_number())
    throw std::invalid_argument(std::string(s.op) + ": param \"" + key +
                                "\": expected a number, got " + it->dump());
  const double d = it->get<double>();
  if (static_cast<double>(static_cast<float>(d)) != d)
    throw std::invalid_argument(std::string(s.op) + ": param \"" + key +
                                "\": expected a float32 value, got " + it->dump());
  return static_cast<float>(d);
}

inline MoeLayerConfig config_of(const Spec& s, const Params& p) {
  MoeLayerConfig c;
  RoutingConfig& r = c.routing;
  r.router = parse_router(param_str(p, "router", "fused_ascend"));
  r.scoring = parse_scoring(param_str(p, "scoring", "softmax"));
  r.top_k = param_int(p, "top_k", 2);
  r.n_group = param_int(p, "n_group", 1);
  r.k_group = param_int(p, "k_group", 1);
  r.renormalize = param_int(p, "renormalize", 1) != 0;
  r.routed_scaling_factor = num_param(s, p, "routed_scaling_factor", 1.0f);
  c.local_start = param_int(p, "local_start", 0);
  c.local_count = param_int(p, "local_count", -1);
  c.dispatch_quant_mode = -1;  // the int4 expert MLPs take unquantized rows
  return c;
}

// The weight inputs present in `in`, sliced to the local experts (load time: each rank loads
// only its experts' tensors).
inline TensorMap local_weights(const Spec& s, const TensorMap& in, const MoeLayerConfig& cfg) {
  TensorMap w;
  const int64_t experts = in.at("router_logits").dim(1);
  for (const auto& n : s.weights) {
    auto it = in.find(n);
    if (it == in.end()) continue;  // optional in this format (the dispatched op checks)
    if (it->second.rank() < 1 || it->second.dim(0) != experts)
      throw std::invalid_argument(std::string(s.op) + ": input " + n + " must be stacked over " +
                                  std::to_string(experts) + " experts (router_logits dim 1), got " +
                                  it->second.describe());
    w[n] = cfg.local_count >= 0
               ? moe_load::slice_experts(it->second, cfg.local_start, cfg.local_count)
               : it->second;
  }
  return w;
}

template <bool kOpt>
void run(const Spec& s, const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = scheme_pipeline::pdt_of(p);
  const MoeLayerConfig cfg = config_of(s, p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt)
    throw std::invalid_argument(std::string(s.op) + ": x must have the params dtype, got " +
                                x.describe());
  const TensorMap w = local_weights(s, in, cfg);
  MoeLayerArgs a;
  a.x = &x;
  a.router_logits = &in.at("router_logits");
  auto b = in.find("e_score_correction_bias");
  a.bias = b == in.end() ? nullptr : &b->second;
  a.weights = &w;
  const OpDef* mlp = s.mlp;
  // The expert MLP: the dispatched op (load + MLP) on the expanded rows, group_list = counts.
  auto cb = [mlp, &p](const ExpertMlpInput& i, const TensorMap& ww, TensorMap& st) {
    TensorMap mi = ww;
    mi["x"] = *i.x;
    mi["group_list"] = *i.counts;
    TensorMap mo;
    if constexpr (kOpt)
      mlp->optimized(p, mi, mo);
    else
      mlp->reference(p, mi, mo);
    Tensor y = std::move(mo.at("y"));
    mo.erase("y");
    st = std::move(mo);
    return y;
  };
  MoeLayerStages st;
  // if constexpr: the reference instantiation never references qconf::opt.
  if constexpr (kOpt)
    st = opt::moe_layer(a, cfg, cb);
  else
    st = ref::moe_layer(a, cfg, cb);
  out["topk_ids"] = std::move(st.routing.topk_ids);
  out["expert_weights"] = std::move(st.routing.expert_weights);
  out["expanded_token"] = std::move(st.expanded_token);
  out["expanded_x"] = std::move(st.dispatch.expanded_x);
  out["expert_tokens"] = std::move(st.dispatch.expert_tokens);
  for (auto& [k, t] : st.mlp) out[k] = std::move(t);
  out["expert_out"] = std::move(st.expert_out);
  out["y"] = std::move(st.combine.out);
}

// The layer's stages: routing and dispatch, the dispatched op's stages (its y = expert_out), y.
inline std::vector<StageDef> stages(const Spec& s) {
  std::vector<StageDef> v = {
      {"topk_ids", false, "int32 [T, k]: router ids (row_set)"},
      {"expert_weights", false, "float32 [T, E]: dense router weights (bounded)"},
      {"expanded_token", false, "int32 [R]: the token of each expanded row (exact)"},
      {"expanded_x", false,
       "pdt [R, H]: the dispatched rows, quant_mode -1 (exact; a quant_mode 1 port: compare "
       "x_q, docs/divergences.md W4A8 MoE layer)"},
      {"expert_tokens", false, "int64 [E_loc]: rows per local expert = group_list (exact)"}};
  for (const StageDef& d : s.mlp->stages) {
    if (d.name == "y") continue;
    v.push_back({d.name, false, d.description + " [" + s.mlp->name + "]"});
  }
  v.push_back(
      {"expert_out", false, "[R, H]: the expert MLP output (" + s.mlp->name + "'s y, its check)"});
  v.push_back({"y", true, "pdt [T, H]: the layer output (bounded)"});
  return v;
}

inline double to_double(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kF32:
      return t.data<float>()[i];
    case DType::kBF16:
      return num::bf16_to_f32(t.data<uint16_t>()[i]);
    case DType::kF16:
      return num::f16_to_f32(t.data<uint16_t>()[i]);
    default:
      throw std::logic_error("to_double: not a float tensor");
  }
}

// fp32 -> params dtype, RNE.
inline double round_pdt(float v, DType pdt) {
  return pdt == DType::kBF16 ? num::bf16_to_f32(num::f32_to_bf16(v))
                             : num::f16_to_f32(num::f32_to_f16(v));
}

// One unit in the last place of the params dtype at magnitude m (fp16 subnormal floor).
inline double ulp_pdt(double m, DType pdt) {
  const int mant = pdt == DType::kBF16 ? 7 : 10;
  int e = 0;
  std::frexp(m, &e);
  int ex = e - 1;
  if (pdt == DType::kF16 && ex < -14) ex = -14;
  return std::ldexp(1.0, ex - mant);
}

inline Check bounded(Tensor exact, Tensor bound) {
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = std::move(exact);
  c.bound = std::move(bound);
  return c;
}

// The check of a MoE layer's output y (shared by every MoE layer op): the combine's own bound on
// the reference inputs, plus the propagated uncertainty of its inputs: expert_out rows (eo_dev:
// the deviation from eo any legitimate implementation may show, per element) and the pdt cast of
// the bounded router weights (docs/bounds.md, scheme_w8a8_dynamic_moe).
inline Check moe_layer_y_check(const Params& p, const TensorMap& in, const RoutingArgs& ra,
                               const RoutingBounds& rb, const MoeLayerConfig& cfg, const Tensor& eo,
                               const Tensor& eo_dev, DType pdt) {
  const int64_t t_count = ra.logits->dim(0), experts = ra.logits->dim(1), k = cfg.routing.top_k;
  const int64_t h = eo.dim(1);
  RoutingStages rs = ref::moe_gating_top_k(ra, cfg.routing);
  Tensor tw(pdt, {t_count, k});
  for (int64_t i = 0; i < t_count * k; ++i)
    tw.data<uint16_t>()[i] =
        pdt == DType::kBF16 ? num::f32_to_bf16(static_cast<float>(to_double(rs.topk_weights, i)))
                            : num::f32_to_f16(static_cast<float>(to_double(rs.topk_weights, i)));
  const InitRoutingV2Stages d = ref::npu_moe_init_routing_v2(
      in.at("x"), rs.topk_ids, nullptr, nullptr, moe_dispatch_config(t_count, experts, cfg));
  const bool ep = cfg.local_count >= 0 && cfg.local_count < experts;
  Tensor idx(DType::kI32, {t_count * k});
  for (int64_t i = 0; i < t_count * k; ++i) {
    const int32_t v = d.expanded_row_idx.data<int32_t>()[i];
    idx.data<int32_t>()[i] = ep ? v : std::abs(v);
  }
  const AccPrecision accp = parse_acc_precision(param_str(p, "acc_precision", "fp32"));
  // The combine reads expert_out in the params dtype (W4A8's gmm2 output is bf16).
  CombineBounds cb;
  if (!ep) {
    TokenUnpermuteArgs ua;
    ua.permuted = &eo;
    ua.indices = &idx;
    ua.probs = &tw;
    cb = ref::npu_moe_token_unpermute_bounds(ua, accp);
  } else {
    FinalizeRoutingArgs fa;
    fa.rows = &eo;
    fa.scales = &tw;
    fa.src_to_dst = &idx;
    fa.drop_pad_mode = 2;
    cb = ref::npu_moe_finalize_routing_bounds(fa, accp);
  }
  for (int64_t t = 0; t < t_count; ++t) {
    std::vector<double> dw(k, 0.0), wr(k, 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t id = rs.topk_ids.data<int32_t>()[t * k + j];
      wr[j] = to_double(tw, t * k + j);
      const double we = rb.weights_exact.data<double>()[t * experts + id];
      const double wb = rb.weights_bound.data<double>()[t * experts + id];
      if (wb == 0) continue;
      const float lo = std::nextafter(static_cast<float>(we - wb), -INFINITY);
      const float hi = std::nextafter(static_cast<float>(we + wb), INFINITY);
      dw[j] =
          std::max(std::fabs(round_pdt(lo, pdt) - wr[j]), std::fabs(round_pdt(hi, pdt) - wr[j]));
    }
    for (int64_t n = 0; n < h; ++n) {
      double pert = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int32_t row = idx.data<int32_t>()[t * k + j];
        if (row < 0 || (ep && d.expanded_row_idx.data<int32_t>()[t * k + j] < 0)) continue;
        const double rv = std::fabs(to_double(eo, row * h + n));
        const double rbd = eo_dev.data<double>()[row * h + n];
        pert += std::fabs(wr[j]) * rbd + dw[j] * (rv + rbd);
      }
      double& bd = cb.bound.data<double>()[t * h + n];
      if (pert > 0) {
        pert *= 1.0 + std::ldexp(1.0, -30);
        bd = bd + pert + ulp_pdt(std::fabs(cb.exact.data<double>()[t * h + n]) + pert + bd, pdt);
      }
    }
  }
  return bounded(cb.exact, cb.bound);
}

// The router's checks of one MoE layer case: moe_gating_top_k_bounds over the case's
// router_logits (and e_score_correction_bias, on the EP rank's expert map), as every MoE layer
// oracle and `qconf checkpoint --run` (which redraws the logits of an ambiguous case) run them.
// Not copyable: args points into emap and the inputs.
struct RouterBounds {
  RouterBounds(const MoeLayerConfig& cfg, const TensorMap& in)
      : emap(moe_expert_map(in.at("router_logits").dim(1), cfg)) {
    args.logits = &in.at("router_logits");
    auto b = in.find("e_score_correction_bias");
    args.bias = b == in.end() ? nullptr : &b->second;
    args.expert_map = emap.numel() ? &emap : nullptr;
    bounds = ref::moe_gating_top_k_bounds(args, cfg.routing);
  }
  RouterBounds(const RouterBounds&) = delete;
  RouterBounds& operator=(const RouterBounds&) = delete;

  // The first token whose top-k expert set is not unique under the stated exp accuracy, or -1.
  int64_t ambiguous_token() const { return bounds.alt_rows.empty() ? -1 : bounds.alt_rows[0]; }
  // The layer ops' stages downstream of the router assume one expert set per token.
  void require_unique(const std::string& op) const {
    if (ambiguous_token() < 0) return;
    throw std::runtime_error(
        op + ": token " + std::to_string(ambiguous_token()) +
        "'s expert set is not unique under the stated exp accuracy (moe_gating_top_k lists "
        "alternatives); the downstream stages assume one expert set: use other router_logits "
        "(another --seed)");
  }

  Tensor emap;
  RoutingArgs args;
  RoutingBounds bounds;
};

inline std::map<std::string, Check> oracle(const Spec& s, const Params& p, const TensorMap& in,
                                           const TensorMap& out) {
  std::map<std::string, Check> m;
  const DType pdt = scheme_pipeline::pdt_of(p);
  const MoeLayerConfig cfg = config_of(s, p);

  // Router: moe_gating_top_k's own checks (as scheme_w8a8_dynamic_moe).
  const RouterBounds router(cfg, in);
  router.require_unique(s.op);
  const RoutingArgs& ra = router.args;
  const RoutingBounds& rb = router.bounds;
  Check ids;
  ids.mode = CheckMode::kRowSet;
  ids.accept.offsets = {0};
  ids.accept.values = Tensor(DType::kI32, {0});
  m["topk_ids"] = std::move(ids);
  m["expert_weights"] = bounded(rb.weights_exact, rb.weights_bound);
  m["expert_weights"].degenerate_ok = true;

  // The expert MLP: the dispatched op's oracle on the (exact) dispatch outputs.
  TensorMap mi = local_weights(s, in, cfg);
  mi["x"] = out.at("expanded_x");
  mi["group_list"] = out.at("expert_tokens");
  TensorMap mo;
  for (const StageDef& d : s.mlp->stages) {
    const std::string n = d.name == "y" ? "expert_out" : d.name;
    auto it = out.find(n);
    if (it != out.end()) mo[d.name] = it->second;
  }
  std::map<std::string, Check> mm =
      s.mlp->oracle ? s.mlp->oracle(p, mi, mo) : std::map<std::string, Check>{};
  const Tensor& eo = out.at("expert_out");
  // expert_out's deviation any legitimate implementation may show, around the reference value.
  Tensor eo_dev(DType::kF64, eo.shape());
  {
    auto it = mm.find("y");
    for (int64_t i = 0; i < eo.numel(); ++i) {
      double d = 0;
      if (it != mm.end() && it->second.mode == CheckMode::kBounded) {
        const double v = to_double(eo, i);
        d = std::fabs(v - (*it->second.exact).data<double>()[i]) +
            (*it->second.bound).data<double>()[i];
      }
      eo_dev.data<double>()[i] = d;
    }
  }
  for (auto& [n, c] : mm) m[n == "y" ? "expert_out" : n] = std::move(c);

  m["y"] = moe_layer_y_check(p, in, ra, rb, cfg, eo, eo_dev, pdt);
  return m;
}

}  // namespace qconf::conf::moe_layer_wrap
