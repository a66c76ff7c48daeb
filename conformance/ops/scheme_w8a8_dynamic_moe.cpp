// scheme_w8a8_dynamic_moe: one W8A8_DYNAMIC MoE layer end to end, from its checkpoint tensors
// (stacked over experts as `qconf checkpoint --run` assembles them, checkpoint_cmd.h):
// load-time transforms (transpose(1, 2), scales rounded once to params dtype), then the MoE
// layer skeleton (qconf/ops/moe_layer.h): router -> topk_weights.to(pdt) -> init_routing_v2
// (quant_mode 1, counts) -> quant_apply_mlp (gmm1 + SwiGLU + int8 requant, gmm2) ->
// token_unpermute (or finalize_routing on an EP rank).
//
// Checks, reusing the component ops' oracles: load stages, dispatch stages and gmm1_dequant
// EXACT; topk_ids ROW_SET and expert_weights BOUNDED (moe_gating_top_k_bounds); swiglu
// BOUNDED, act_q / act_scale REACHABLE (the swiglu_quant bounds of the chosen gmm1 op);
// expert_out BOUNDED: 0 where the codes and scale of its row are unique, else the extremes of
// the epilogue over the reachable codes and scales; y BOUNDED: the combine bound of the
// reference inputs plus the propagated expert_out and weight-cast uncertainty
// (docs/bounds.md "scheme_w8a8_dynamic_moe").
// Source: notes/vllm_ascend_quant.md §A W8A8_DYNAMIC MoE, §C; seed W8A8_DYNAMIC;
// reference/schemes/w8a8_dynamic.cpp.
#include <cmath>
#include <cstring>

#include "moe_layer_wrap.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/ops/moe_layer.h"
#include "qconf/ops/moe_w8a8.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w8a8_dynamic_moe {

constexpr const char* kOp = "scheme_w8a8_dynamic_moe";

float num_param(const Params& p, const char* key, float dflt) {
  auto it = p.find(key);
  if (it == p.end()) return dflt;
  if (!it->is_number())
    throw std::invalid_argument(std::string(kOp) + ": param \"" + key +
                                "\": expected a number, got " + it->dump());
  const double d = it->get<double>();
  if (static_cast<double>(static_cast<float>(d)) != d)
    throw std::invalid_argument(std::string(kOp) + ": param \"" + key +
                                "\": expected a float32 value, got " + it->dump());
  return static_cast<float>(d);
}

MoeLayerConfig config_of(const Params& p) {
  MoeLayerConfig c;
  RoutingConfig& r = c.routing;
  r.router = parse_router(param_str(p, "router", "fused_ascend"));
  r.scoring = parse_scoring(param_str(p, "scoring", "softmax"));
  r.top_k = param_int(p, "top_k", 2);
  r.n_group = param_int(p, "n_group", 1);
  r.k_group = param_int(p, "k_group", 1);
  r.renormalize = param_int(p, "renormalize", 1) != 0;
  r.routed_scaling_factor = num_param(p, "routed_scaling_factor", 1.0f);
  c.local_start = param_int(p, "local_start", 0);
  c.local_count = param_int(p, "local_count", -1);
  c.dispatch_quant_mode = 1;
  return c;
}

W8a8MoeMlpPath path_of(const Params& p) {
  return parse_w8a8_moe_mlp_path(param_str(p, "mlp_path", "fused"));
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = scheme_pipeline::pdt_of(p);
  const MoeLayerConfig cfg = config_of(p);
  const W8a8MoeMlpPath path = path_of(p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                x.describe());
  // Load time (process_weights_after_loading), for this rank's experts.
  TensorMap w =
      w8a8_dynamic_moe_load(in.at("w13_weight"), in.at("w13_weight_scale"), in.at("w2_weight"),
                            in.at("w2_weight_scale"), pdt, cfg.local_start, cfg.local_count);
  MoeLayerArgs a;
  a.x = &x;
  a.router_logits = &in.at("router_logits");
  auto b = in.find("e_score_correction_bias");
  a.bias = b == in.end() ? nullptr : &b->second;
  a.weights = &w;
  MoeLayerStages st;
  // if constexpr: the reference instantiation never references qconf::opt.
  if constexpr (kOpt) {
    st = opt::moe_layer(a, cfg, [path](const ExpertMlpInput& i, const TensorMap& ww, TensorMap& s) {
      return opt::w8a8_dynamic_expert_mlp(i, ww, s, path);
    });
  } else {
    st = ref::moe_layer(a, cfg, [path](const ExpertMlpInput& i, const TensorMap& ww, TensorMap& s) {
      return ref::w8a8_dynamic_expert_mlp(i, ww, s, path);
    });
  }
  out["w13_weight_t"] = std::move(w.at("w13_weight_t"));
  out["w13_scale_param"] = std::move(w.at("w13_scale_param"));
  out["w2_weight_t"] = std::move(w.at("w2_weight_t"));
  out["w2_scale_param"] = std::move(w.at("w2_scale_param"));
  out["topk_ids"] = std::move(st.routing.topk_ids);
  out["expert_weights"] = std::move(st.routing.expert_weights);
  out["expanded_token"] = std::move(st.expanded_token);
  out["expanded_x"] = std::move(st.dispatch.expanded_x);
  out["expanded_scale"] = std::move(st.dispatch.expanded_scale);
  out["expert_tokens"] = std::move(st.dispatch.expert_tokens);
  for (const char* k : {"gmm1_dequant", "swiglu", "act_q", "act_scale"})
    out[k] = std::move(st.mlp.at(k));
  out["expert_out"] = std::move(st.expert_out);
  out["y"] = std::move(st.combine.out);
}

// ---- oracle -------------------------------------------------------------------------------

Check bounded(Tensor exact, Tensor bound) {
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = std::move(exact);
  c.bound = std::move(bound);
  return c;
}

template <typename T>
Check reachable(const std::vector<int64_t>& index, const std::vector<int64_t>& offsets,
                const std::vector<T>& values) {
  Check c;
  c.mode = CheckMode::kReachable;
  c.accept.index = index;
  c.accept.offsets = offsets;
  c.accept.values = Tensor::from<T>({static_cast<int64_t>(values.size())}, values);
  return c;
}

double to_double(const Tensor& t, int64_t i) {
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

// fp32 -> the params dtype, RNE (as the outputs are cast). bf16 by the bit rule (finite
// values: add 0x7FFF plus the lowest kept bit, truncate), fp16 through the exact converter.
double round_pdt(float v, DType pdt) {
  if (pdt == DType::kBF16 && std::isfinite(v)) {
    const uint32_t b = num::f32_bits(v);
    const uint32_t r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    return num::f32_from_bits(r);
  }
  return pdt == DType::kBF16 ? num::bf16_to_f32(num::f32_to_bf16(v))
                             : num::f16_to_f32(num::f32_to_f16(v));
}

// The gmm2 epilogue of npu_grouped_matmul (npu_quant_matmul's vector path): fp32(acc) * scale
// * per_token_scale, each an fp32 RNE multiply, then RNE to the output dtype. Evaluated with the
// host's IEEE binary32 multiply (correctly rounded; -ffp-contract=off), which equals
// num::f32_mul on finite values; the oracle checks it reproduces the reference value.
double gmm2_value(int64_t acc, float scale, float pts, DType pdt) {
  const volatile float a = static_cast<float>(static_cast<int32_t>(acc));
  const volatile float v1 = a * scale;
  const volatile float v2 = v1 * pts;
  return round_pdt(v2, pdt);
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m;
  const DType pdt = scheme_pipeline::pdt_of(p);
  const MoeLayerConfig cfg = config_of(p);
  const W8a8MoeMlpPath path = path_of(p);

  // Router: moe_gating_top_k's own checks.
  const moe_layer_wrap::RouterBounds router(cfg, in);
  router.require_unique(kOp);
  const RoutingArgs& ra = router.args;
  const RoutingBounds& rb = router.bounds;
  Check ids;
  ids.mode = CheckMode::kRowSet;
  ids.accept.offsets = {0};
  ids.accept.values = Tensor(DType::kI32, {0});
  m["topk_ids"] = std::move(ids);
  m["expert_weights"] = bounded(rb.weights_exact, rb.weights_bound);
  m["expert_weights"].degenerate_ok = true;

  // gmm1 + SwiGLU + requant: the chosen fused op's bounds on the (exact) dispatch outputs.
  const Tensor& ex = out.at("expanded_x");
  const Tensor& exs = out.at("expanded_scale");
  const Tensor& counts = out.at("expert_tokens");
  const Tensor s13 = scheme_pipeline::widen_f32(out.at("w13_scale_param"));
  SwigluQuantBounds sb;
  if (path == W8a8MoeMlpPath::kFused) {
    Tensor cum(DType::kI64, {counts.numel()});
    int64_t run = 0;
    for (int64_t e = 0; e < counts.numel(); ++e) cum.data<int64_t>()[e] = run += counts.int_at(e);
    sb = ref::npu_grouped_matmul_swiglu_quant_bounds(ex, out.at("w13_weight_t"), cum, s13, exs);
  } else {
    GroupedMatmulConfig g1;
    g1.group_list_type = GroupListType::kCount;
    g1.output_dtype = DType::kI32;
    const GroupedMatmulStages acc =
        ref::npu_grouped_matmul(ex, out.at("w13_weight_t"), nullptr, nullptr, nullptr, counts, g1);
    SwigluConfig sc;
    sc.activate_left = true;
    sb = ref::npu_dequant_swiglu_quant_bounds(acc.acc, s13, exs, &counts, sc);
  }
  m["swiglu"] = bounded(sb.swiglu_exact, sb.swiglu_bound);
  if (!sb.y_index.empty()) m["act_q"] = reachable(sb.y_index, sb.y_offsets, sb.y_values);
  if (!sb.scale_index.empty())
    m["act_scale"] = reachable(sb.scale_index, sb.scale_offsets, sb.scale_values);

  // expert_out: the gmm2 epilogue over the reachable codes and scales of each row.
  const Tensor& q = out.at("act_q");
  const Tensor& qs = out.at("act_scale");
  const Tensor& w2t = out.at("w2_weight_t");  // [E_loc, I, H]
  const Tensor s2 = w8a8_moe_gmm2_scale(out.at("w2_scale_param"));
  const Tensor& eo = out.at("expert_out");
  const int64_t rows = eo.dim(0), h = eo.dim(1), inter = q.dim(1);
  Tensor eo_exact(DType::kF64, {rows, h}), eo_bound(DType::kF64, {rows, h});
  std::vector<std::vector<std::pair<int64_t, std::vector<int8_t>>>> alt_codes(rows);
  for (size_t j = 0; j < sb.y_index.size(); ++j) {
    std::vector<int8_t> v(sb.y_values.begin() + sb.y_offsets[j],
                          sb.y_values.begin() + sb.y_offsets[j + 1]);
    alt_codes[sb.y_index[j] / inter].push_back({sb.y_index[j] % inter, std::move(v)});
  }
  std::vector<std::vector<float>> alt_scales(rows);
  for (int64_t r = 0; r < rows; ++r) alt_scales[r] = {qs.data<float>()[r]};
  for (size_t j = 0; j < sb.scale_index.size(); ++j)
    for (int64_t o = sb.scale_offsets[j]; o < sb.scale_offsets[j + 1]; ++o)
      alt_scales[sb.scale_index[j]].push_back(sb.scale_values[o]);
  int64_t r = 0;
  for (int64_t e = 0; e < counts.numel(); ++e) {
    for (int64_t rr = 0; rr < counts.int_at(e); ++rr, ++r) {
      for (int64_t n = 0; n < h; ++n) {
        const int64_t at = r * h + n;
        eo_exact.data<double>()[at] = to_double(eo, at);
        eo_bound.data<double>()[at] = 0.0;
        if (alt_codes[r].empty() && alt_scales[r].size() == 1) continue;
        auto wv = [&](int64_t kk) { return int64_t{w2t.data<int8_t>()[(e * inter + kk) * h + n]}; };
        int64_t acc = 0;
        for (int64_t kk = 0; kk < inter; ++kk)
          acc += int64_t{q.data<int8_t>()[r * inter + kk]} * wv(kk);
        int64_t lo = acc, hi = acc;
        for (const auto& [kk, vals] : alt_codes[r]) {
          const int64_t c0 = q.data<int8_t>()[r * inter + kk];
          int64_t dmin = 0, dmax = 0;
          for (int8_t c : vals) {
            const int64_t d = (int64_t{c} - c0) * wv(kk);
            dmin = std::min(dmin, d), dmax = std::max(dmax, d);
          }
          lo += dmin, hi += dmax;
        }
        const float sc = s2.dtype() == DType::kF32
                             ? s2.data<float>()[e * h + n]
                             : num::bf16_to_f32(s2.data<uint16_t>()[e * h + n]);
        const double ref_v = gmm2_value(acc, sc, qs.data<float>()[r], pdt);
        if (ref_v != eo_exact.data<double>()[at])
          throw std::logic_error(std::string(kOp) +
                                 ": oracle's gmm2 epilogue disagrees with the reference at "
                                 "expert_out element " +
                                 std::to_string(at));
        double bd = 0;
        for (int64_t a : {lo, hi})
          for (float s : alt_scales[r])
            bd = std::max(bd, std::fabs(gmm2_value(a, sc, s, pdt) - ref_v));
        eo_bound.data<double>()[at] = bd;
      }
    }
  }
  m["expert_out"] = bounded(eo_exact, eo_bound);

  // y: the shared layer-output check (expert_out's deviation is its bound: eo_exact is eo).
  m["y"] = moe_layer_wrap::moe_layer_y_check(p, in, ra, rb, cfg, eo, eo_bound, pdt);
  return m;
}

// ---- cases --------------------------------------------------------------------------------

struct Shape5 {
  int64_t t, e, h, inter;
};

TensorMap layer_inputs(const std::string& name, DType pdt, const Shape5& s) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  TensorMap in;
  in["w13_weight"] = gen::int_tensor(DType::kI8, {s.e, 2 * s.inter, s.h}, -128, 127, seed, 1);
  in["w13_weight_scale"] = scheme_pipeline::ckpt_scale({s.e, 2 * s.inter, 1}, seed, 2);
  in["w2_weight"] = gen::int_tensor(DType::kI8, {s.e, s.h, s.inter}, -128, 127, seed, 3);
  in["w2_weight_scale"] = scheme_pipeline::ckpt_scale({s.e, s.h, 1}, seed, 4);
  in["x"] = gen::float_tensor(pdt, {s.t, s.h}, gen::FloatDist::normal(0), seed, 5);
  in["router_logits"] =
      gen::float_tensor(DType::kF32, {s.t, s.e}, gen::FloatDist::normal(0), seed, 6);
  return in;
}

Params base_params(DType pdt, int64_t top_k) {
  return {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}, {"top_k", top_k}};
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags,
                 Params params, TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(params);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  {
    const char* n = "bf16_softmax_e4_top2";
    add(n, "softmax router, 4 experts, top-2, 6 tokens, H 16, I 8", {"Pipeline", "LoadRounding"},
        base_params(DType::kBF16, 2), layer_inputs(n, DType::kBF16, {6, 4, 16, 8}));
  }
  {
    const char* n = "fp16_softmax_e4_top2";
    add(n, "fp16 params dtype: scales rounded to fp16, gmm2 scale widened to fp32",
        {"Pipeline", "LoadRounding", "Fp16"}, base_params(DType::kF16, 2),
        layer_inputs(n, DType::kF16, {5, 4, 16, 8}));
  }
  {
    const char* n = "deepseek_mini_sigmoid_bias_grouped";
    TensorMap in = layer_inputs(n, DType::kBF16, {4, 16, 16, 8});
    in["e_score_correction_bias"] =
        gen::float_tensor(DType::kF32, {16}, gen::FloatDist::grid(-64, 64, -9),
                          rng::seed_from_string(std::string(kOp) + "/" + n), 7);
    Params p = base_params(DType::kBF16, 4);
    p["scoring"] = "sigmoid";
    p["n_group"] = 4;
    p["k_group"] = 2;
    p["routed_scaling_factor"] = 2.5;
    add(n,
        "DeepSeek-V3 routing in miniature: 16 experts, 4 groups keep 2, top-4, sigmoid + "
        "e_score_correction_bias, routed_scaling_factor 2.5 (fused_ascend: top-2-sum group score, "
        "eps renorm)",
        {"Pipeline", "DeepSeekV3Routing"}, p, std::move(in));
  }
  {
    const char* n = "expert_with_zero_tokens";
    TensorMap in = layer_inputs(n, DType::kBF16, {6, 4, 16, 8});
    for (int64_t t = 0; t < 6; ++t) in["router_logits"].data<float>()[t * 4 + 2] = -8.0f;
    add(n, "router logit of expert 2 is -8 for every token: expert 2 gets no rows (count 0)",
        {"Pipeline", "EmptyExpert"}, base_params(DType::kBF16, 2), std::move(in));
  }
  {
    const char* n = "ep_rank_tokens_to_no_local_expert";
    TensorMap in = layer_inputs(n, DType::kBF16, {6, 4, 16, 8});
    // Tokens 0 and 3 prefer experts 0 and 1 (not local to this rank [2, 4)).
    for (int64_t t : {0, 3}) {
      in["router_logits"].data<float>()[t * 4 + 0] = 3.0f;
      in["router_logits"].data<float>()[t * 4 + 1] = 2.5f;
    }
    Params p = base_params(DType::kBF16, 2);
    p["local_start"] = 2;
    p["local_count"] = 2;
    add(n,
        "an EP rank holding experts [2, 4) of 4: tokens 0 and 3 are routed to experts 0 and 1 "
        "only, so no local expert processes them and their output row is zero; combine by "
        "finalize_routing (-1 adds nothing)",
        {"Pipeline", "NoLocalExpert", "EpCombine"}, p, std::move(in));
  }
  {
    const char* n = "routing_ties_lower_index";
    TensorMap in = layer_inputs(n, DType::kBF16, {5, 6, 16, 8});
    // Token 1: experts 1 and 4 bit-identical and the top two; token 3: experts 2, 3 and 5
    // identical and the largest (top-2 picks 2 and 3 by the lower-index rule).
    float* l = in["router_logits"].data<float>();
    l[1 * 6 + 1] = l[1 * 6 + 4] = 2.75f;
    l[3 * 6 + 2] = l[3 * 6 + 3] = l[3 * 6 + 5] = 3.0f;
    add(n,
        "bit-identical router logits: any implementation computes identical scores for them, "
        "and the fused kernel keeps the lower expert id first",
        {"Pipeline", "RoutingTies"}, base_params(DType::kBF16, 2), std::move(in));
  }
  {
    const char* n = "load_rounding_ties";
    TensorMap in = layer_inputs(n, DType::kBF16, {4, 4, 16, 8});
    // Scales exactly halfway between two bf16 values: RNE goes to the even neighbour (half the
    // entries round down, half up); truncation or round-half-up differ on them.
    for (const char* s : {"w13_weight_scale", "w2_weight_scale"}) {
      Tensor& t = in[s];
      for (int64_t i = 0; i < t.numel(); ++i)
        t.data<uint32_t>()[i] = (0x3C000000u + (static_cast<uint32_t>(i % 64) << 16)) | 0x8000u;
    }
    add(n,
        "every checkpoint scale a bf16 midpoint (low 16 bits 0x8000): the load rounding (RNE) "
        "is to even, visible in w13_scale_param / w2_scale_param",
        {"Pipeline", "LoadRounding", "LoadRoundingTies"}, base_params(DType::kBF16, 2),
        std::move(in));
  }
  {
    const char* n = "dequant_swiglu_path";
    Params p = base_params(DType::kBF16, 2);
    p["mlp_path"] = "dequant_swiglu";
    add(n, "quant_apply_mlp path (b): gmm1 int32 then npu_dequant_swiglu_quant (single rounding)",
        {"Pipeline", "MlpPath"}, p, layer_inputs(n, DType::kBF16, {6, 4, 16, 8}));
  }
  {
    const char* n = "random_bf16_e6_top3_odd";
    add(n, "seeded, odd sizes: 7 tokens, 6 experts, top-3, H 24, I 12", {"Pipeline", "Random"},
        base_params(DType::kBF16, 3), layer_inputs(n, DType::kBF16, {7, 6, 24, 12}));
  }
  return v;
}

std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W8A8_DYNAMIC MoE layer from stacked checkpoint tensors: w13 [E, 2I, H] / w2 [E, H, I] "
      "int8 transposed, scales rounded once to params dtype; router (moe_gating_top_k) -> "
      "topk_weights.to(pdt) -> npu_moe_init_routing_v2 (quant_mode 1, counts, local range) -> "
      "gmm1 + SwiGLU + int8 requant (fused op or int32 gmm + dequant_swiglu_quant) -> gmm2 "
      "(w2 scale, per-token scale) -> npu_moe_token_unpermute (finalize_routing on an EP rank).";
  d.sources = {
      "notes/vllm_ascend_quant.md §A W8A8_DYNAMIC MoE, §C (router, dispatch, quantized "
      "MLP), pitfall 2",
      "seed W8A8_DYNAMIC (AscendW8A8DynamicFusedMoEMethod)",
      "vllm-ascend ops/fused_moe/token_dispatcher.py TokenDispatcherWithAllGather, "
      "ops/fused_moe/moe_mlp.py quant_apply_mlp",
      "reference/schemes/w8a8_dynamic.cpp; qconf/ops/moe_layer.h"};
  d.inputs = {"w13_weight",    "w13_weight_scale",       "w2_weight", "w2_weight_scale", "x",
              "router_logits", "e_score_correction_bias"};
  d.stages = {
      {"w13_weight_t", false, "int8 [E_loc, H, 2I]: transpose(1, 2) at load"},
      {"w13_scale_param", false, "pdt [E_loc, 2I]: the loaded scale (RNE once)"},
      {"w2_weight_t", false, "int8 [E_loc, I, H]"},
      {"w2_scale_param", false, "pdt [E_loc, H]"},
      {"topk_ids", false, "int32 [T, k]: router ids (row_set)"},
      {"expert_weights", false, "float32 [T, E]: dense router weights (bounded)"},
      {"expanded_token", false, "int32 [R]: the token of each expanded row (exact)"},
      {"expanded_x", false, "int8 [R, H]: dispatch quant codes (exact)"},
      {"expanded_scale", false, "float32 [R]: dispatch per-row scale (exact)"},
      {"expert_tokens", false, "int64 [E_loc]: rows per local expert (exact)"},
      {"gmm1_dequant", false, "float32 [R, 2I]: acc * x_scale * w13 scale (exact)"},
      {"swiglu", false, "float32 [R, I] (bounded)"},
      {"act_q", false, "int8 [R, I]: requant codes (reachable)"},
      {"act_scale", false, "float32 [R]: requant scale (reachable)"},
      {"expert_out", false, "pdt [R, H]: gmm2 output (bounded: 0 where the row is unambiguous)"},
      {"y", true, "pdt [T, H]: the layer output (bounded)"}};
  d.variants = {
      {"mlp_path",
       {"fused", "dequant_swiglu"},
       "quant_apply_mlp path: (a) npu_grouped_matmul_swiglu_quant, (b) int32 gmm1 + "
       "npu_dequant_swiglu_quant"},
      {"router",
       {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk", "vllm_fused_topk_softmax",
        "old_select_experts"},
       "router variant (moe_gating_top_k)"},
      {"acc_precision", {"fp32", "io_dtype"}, "combine accumulation precision of the y bound"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole MoE layer, load-time transforms included",
        "a port that skips a step or reorders the weights differs"}},
      {"LoadRounding",
       {"DIVERGENCE", "fp32 checkpoint scales not representable in the params dtype",
        "a port using the fp32 scale directly differs at w13_scale_param / gmm1_dequant"}},
      {"LoadRoundingTies",
       {"EDGE_CASE", "scales exactly halfway between two bf16 values",
        "truncating or rounding half away from zero at load differs"}},
      {"Fp16", {"FUNCTIONALITY", "fp16 params dtype", "bf16-only assumptions"}},
      {"DeepSeekV3Routing",
       {"FUNCTIONALITY", "grouped sigmoid + bias routing with routed_scaling_factor",
        "a softmax router, no bias, or the max group score selects other experts"}},
      {"EmptyExpert",
       {"EDGE_CASE", "an expert with zero tokens (count 0)",
        "advancing rows for an empty expert shifts later groups"}},
      {"NoLocalExpert",
       {"EDGE_CASE", "tokens routed only to experts of other EP ranks: output row 0",
        "a port reading |-1| = 1 with a nonzero weight adds row 1"}},
      {"EpCombine",
       {"DIVERGENCE",
        "EP rank combine: vllm-ascend passes |expanded_row_idx| (-1 -> 1, weight 0) to "
        "token_unpermute; the layer uses finalize_routing (-1 adds nothing): equal for finite "
        "rows (docs/divergences.md)",
        "differs only for a non-finite row 1 or a signed zero"}},
      {"RoutingTies",
       {"EDGE_CASE", "bit-identical router logits (ties broken by the lower expert id)",
        "a port breaking ties by the higher id selects another expert"}},
      {"MlpPath",
       {"DIVERGENCE", "gmm1 path (b): single-rounding requant (dequant_swiglu_quant)",
        "codes differ from the fused path's double rounding on some elements"}},
      {"Random", {"BASIC", "seeded layer, odd sizes", "general errors"}},
  };
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w8a8_dynamic_moe
}  // namespace qconf::conf
