// Op: moe_gating_top_k, the MoE router: scores (softmax / sigmoid / sqrt(softplus)), optional
// selection bias, grouped selection, top-k, weights, renormalization, routed_scaling_factor and
// the after-routing steps (zero experts, expert_map, log2phy).
//
// Variant axis `router`: fused_ascend | native_vllm_ascend | vllm_grouped_topk |
// vllm_fused_topk_softmax | old_select_experts | native_vllm_ascend_topk | vllm_fused_topk_bias
// (reference/include/qconf/ops/routing.h).
// Params: scoring, top_k, n_group, k_group, renormalize, routed_scaling_factor, eps,
// zero_experts.
// Stages: scores (fp32, BOUNDED: exp/sigmoid/log last bits are platform-dependent),
// topk_ids (int32 [T, k], ROW_SET: per token a multiset, with every id set reachable within the
// bounds listed; ordered for the variants that sort their output: every reachable sequence),
// expert_weights (fp32 [T, E], the (id, weight) pairs in dense form, BOUNDED by the hull over the
// reachable id sets). Bounds: docs/bounds.md (moe_gating_top_k).
#include <cmath>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/routing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_moe_gating_top_k {

constexpr const char* kOp = "moe_gating_top_k";

std::map<std::string, Note> notes() {
  return {
      {"ExactTie",
       {"EDGE_CASE",
        "Two experts with bit-identical logits (and bias) tie exactly at the k-th place: the "
        "fused kernel (Sort32) and upstream topk_softmax keep the lower id; torch.topk "
        "(native, upstream grouped_topk) does not specify the order, so both ids are listed.",
        "A port breaking ties to the higher id fails the fused/topk_softmax variants."}},
      {"NearTie",
       {"EDGE_CASE",
        "Two candidates 1 ulp apart at the k-th place: within the exp bound either may win; the "
        "fixture lists both id sets (reachable) and the weight bounds cover both.",
        "A correct port with another exp must pass; a wrong selection still fails."}},
      {"MaskZero",
       {"DIVERGENCE",
        "Biased selection scores below 0 in the kept groups: the native vllm-ascend router masks "
        "other groups with 0.0, so masked experts outrank kept ones; -inf masking (fused kernel, "
        "upstream) never selects them.",
        "Tells 0.0 masking from -inf masking."}},
      {"GroupScoreMode",
       {"DIVERGENCE",
        "One group with the largest single score, another with the largest top-2 sum: the fused "
        "kernel (group_select_mode=1) always uses the top-2 sum; the native router always the "
        "max; upstream grouped_topk the top-2 sum only with a bias.",
        "Tells the group score rule."}},
      {"RenormEps",
       {"DIVERGENCE",
        "sigmoid scores near 1e-26: the fused kernel divides by (sum + 1e-20), so the weights are "
        "far below 1/k; without eps they sum to 1.",
        "Renormalizing without eps (or with it) where the kernel does not fails."}},
      {"ScalingTwice",
       {"LEGACY",
        "routed_scaling_factor 2.5: the old vllm-ascend select_experts multiplied by it twice.",
        "Tells the old path from the current one."}},
      {"WeightDtype",
       {"DIVERGENCE",
        "bf16/fp16 logits: the fused kernel (and vllm-ascend after routing) casts the weights to "
        "the logits dtype (RINT); upstream vLLM returns fp32 weights.",
        "Tells where the weights are rounded."}},
      {"ZeroExperts",
       {"FUNCTIONALITY",
        "The last zero_experts logit columns are zero (identity) experts: their ids become 0 "
        "and their weight is the identity scale (dense column kept).",
        "Ids >= num_experts leaking to the dispatcher."}},
      {"ExpertMap",
       {"FUNCTIONALITY",
        "expert_map: weights of non-local experts (map -1) are zeroed; log2phy maps the "
        "logical ids to physical ones (replica choice: op eplb_map_to_physical).",
        "Unmapped ids or non-zeroed remote weights."}},
      {"SqrtSoftplus",
       {"FUNCTIONALITY", "scoring sqrt(softplus(x)) (DeepSeek-V4), always renormalized with eps.",
        "Wrong scoring function."}},
      {"SqrtSoftplusTiny",
       {"DIVERGENCE",
        "sqrt(softplus(x)) at x = -95..-100: the Ascend hash kernel's 1 + exp(x) rounds to 1, so "
        "its scores and weights are 0; torch's log1p keeps ~1e-21, whose sum (< 1e-20) the "
        "native router divides by as is (weights sum to 1) and upstream fused_topk_bias clamps "
        "to 1e-20 (weights sum to ~0.46).",
        "Tells the kernel's ln(1 + exp), no eps, + eps and clamp(min=eps) apart."}},
      {"OutputOrder",
       {"DIVERGENCE",
        "Well separated top-k: the fused kernel, upstream topk_softmax and torch.topk(sorted=True) "
        "emit the ids by selection score, descending (checked in order); torch.topk(sorted=False) "
        "(native grouped, upstream grouped_topk) leaves the order unspecified (checked as a set).",
        "A port returning the right ids in another order fails the ordered variants only."}},
      {"OrderTie",
       {"EDGE_CASE",
        "Two selected experts with equal (or 1 ulp apart) selection scores inside the top-k: "
        "an exact tie comes out lower id first in the fused kernel and topk_softmax, in either "
        "order from torch.topk; a near tie in either order everywhere.",
        "Tie order inside the top-k."}},
      {"NativeTopk",
       {"DIVERGENCE",
        "vllm-ascend's native router without num_expert_group/topk_group: plain topk of score + "
        "bias, the biased values are the weights, cast to the hidden dtype before renormalizing; "
        "the grouped path (and the fused kernel) weight with the unbiased scores.",
        "Tells the non-grouped native path from the grouped one."}},
      {"DeepSeekV3",
       {"BASIC", "256 experts, 8 groups, 4 kept, top-8, sigmoid + bias, rsf 2.5.",
        "Production shape."}},
      {"Random", {"BASIC", "Seeded logits over shapes with odd sizes.", "General errors."}},
  };
}

RoutingConfig config_of(const Params& p) {
  RoutingConfig c;
  c.router = parse_router(param_str(p, "router", "fused_ascend"));
  c.scoring = parse_scoring(param_str(p, "scoring", "softmax"));
  c.top_k = param_int(p, "top_k", 2);
  c.n_group = param_int(p, "n_group", 1);
  c.k_group = param_int(p, "k_group", 1);
  c.renormalize = param_int(p, "renormalize", 1) != 0;
  c.zero_experts = param_int(p, "zero_experts", 0);
  auto num = [&](const char* key, float dflt) {
    auto it = p.find(key);
    if (it == p.end()) return dflt;
    if (!it->is_number())
      throw std::invalid_argument(std::string("param \"") + key + "\": expected a number, got " +
                                  it->dump());
    const double d = it->get<double>();
    const float f = static_cast<float>(d);
    if (static_cast<double>(f) != d)
      throw std::invalid_argument(std::string("param \"") + key +
                                  "\": expected a float32 value, got " + it->dump());
    return f;
  };
  c.routed_scaling_factor = num("routed_scaling_factor", 1.0f);
  c.eps = num("eps", 1e-20f);
  return c;
}

RoutingArgs args_of(const TensorMap& in) {
  RoutingArgs a;
  auto get = [&](const char* n) -> const Tensor* {
    auto it = in.find(n);
    return it == in.end() ? nullptr : &it->second;
  };
  a.logits = get("logits");
  a.bias = get("bias");
  a.expert_map = get("expert_map");
  a.log2phy = get("log2phy");
  return a;
}

Params params(const char* router, const char* scoring, int64_t k, int64_t n_group = 1,
              int64_t k_group = 1, int renorm = 1, float rsf = 1.0f) {
  Params p = Params::object();
  p["router"] = router;
  p["scoring"] = scoring;
  p["top_k"] = k;
  p["n_group"] = n_group;
  p["k_group"] = k_group;
  p["renormalize"] = renorm;
  p["routed_scaling_factor"] = static_cast<double>(rsf);
  return p;
}

Tensor logits(DType dt, Shape shape, const std::vector<float>& v) {
  Tensor t(dt, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kF32)
      t.data<float>()[i] = v[i];
    else if (dt == DType::kBF16)
      t.data<uint16_t>()[i] = num::f32_to_bf16(v[i]);
    else
      t.data<uint16_t>()[i] = num::f32_to_f16(v[i]);
  }
  return t;
}
Tensor f32(Shape shape, const std::vector<float>& v) { return Tensor::from<float>(shape, v); }

struct Builder {
  std::vector<CaseSpec> v;
  void add(std::string name, std::string comment, std::vector<std::string> flags, Params p,
           TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  }
};

const char* const kAllRouters[] = {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk",
                                   "vllm_fused_topk_softmax", "old_select_experts"};
const char* const kGroupedRouters[] = {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk",
                                       "old_select_experts"};
// Softmax without bias or groups: every router but vllm_fused_topk_bias (sqrtsoftplus only).
const char* const kSoftmaxRouters[] = {"fused_ascend",       "native_vllm_ascend",
                                       "vllm_grouped_topk",  "vllm_fused_topk_softmax",
                                       "old_select_experts", "native_vllm_ascend_topk"};

std::vector<CaseSpec> cases() {
  Builder b;
  // ---- exact tie at the k-th place (softmax, no groups) ----
  for (const char* r : kAllRouters) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {2, 8},
                          {0.25f, 0.5f, 1.0f, 0.125f, 0.375f, 1.0f, 2.0f, -1.0f,  //
                           -0.5f, 3.0f, -0.5f, 0.0f, 3.0f, 1.5f, -2.0f, 0.75f});
    b.add(std::string("exact_tie_") + r,
          "row 0: experts 2 and 5 bit-identical at the 2nd place; row 1: experts 9-col 1 and 4 "
          "tie for the top (both selected)",
          {"ExactTie"}, params(r, "softmax", 2, 1, 1, 0), std::move(in));
  }
  // ---- near tie (1 ulp) at the k-th place ----
  for (const char* r : {"fused_ascend", "vllm_fused_topk_softmax"}) {
    TensorMap in;
    const float one_up = std::nextafter(1.0f, 2.0f);
    in["logits"] = logits(DType::kF32, {1, 6}, {1.0f, 0.25f, 3.0f, one_up, -1.0f, 0.5f});
    b.add(std::string("near_tie_") + r,
          "experts 0 and 3 are 1 ulp apart at the 2nd place: both id sets are reachable",
          {"NearTie"}, params(r, "softmax", 2, 1, 1, 0), std::move(in));
  }
  // ---- 0.0 vs -inf masking: negative biased scores in the kept group ----
  for (const char* r : kGroupedRouters) {
    TensorMap in;
    // 4 groups of 2; bias -0.9 makes sel = sigmoid - 0.9 < 0 except expert 0.
    in["logits"] =
        logits(DType::kF32, {1, 8}, {3.0f, -1.0f, 0.5f, 0.25f, -2.0f, -3.0f, 0.0f, -0.5f});
    in["bias"] = f32({8}, {-0.5f, -0.5f, -0.9f, -0.9f, -0.9f, -0.9f, -0.9f, -0.9f});
    b.add(std::string("mask_zero_vs_neginf_") + r,
          "keep 1 of 4 groups, top-2: the kept group's 2nd expert has sel < 0, so a masked "
          "expert at 0.0 outranks it in the native router",
          {"MaskZero"}, params(r, "sigmoid", 2, 4, 1, 1), std::move(in));
  }
  // ---- group score max vs top-2 sum, without bias ----
  for (const char* r : kGroupedRouters) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {1, 16},
                          {4.0f, -5.0f, -5.0f, -5.0f, 2.5f, 2.25f, -5.0f, -5.0f,  //
                           -4.0f, -4.5f, -6.0f, -6.0f, 0.5f, -3.0f, -3.0f, -3.0f});
    b.add(std::string("group_score_mode_") + r,
          "group 0 has the largest max (4.0), group 1 the largest top-2 sum; keep 1 group, top-2",
          {"GroupScoreMode"}, params(r, "sigmoid", 2, 4, 1, 1), std::move(in));
  }
  // ---- group score with a bias (upstream switches to top-2) ----
  for (const char* r : kGroupedRouters) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {1, 16},
                          {4.0f, -5.0f, -5.0f, -5.0f, 2.5f, 2.25f, -5.0f, -5.0f,  //
                           -4.0f, -4.5f, -6.0f, -6.0f, 0.5f, -3.0f, -3.0f, -3.0f});
    in["bias"] = f32({16}, std::vector<float>(16, 0.125f));
    b.add(std::string("group_score_bias_") + r,
          "as group_score_mode with a uniform bias 0.125: upstream uses the top-2 sum now",
          {"GroupScoreMode"}, params(r, "sigmoid", 2, 4, 1, 1), std::move(in));
  }
  // ---- renormalization eps ----
  for (const char* r : {"fused_ascend", "vllm_grouped_topk", "native_vllm_ascend"}) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {1, 8},
                          {-60.0f, -61.0f, -62.0f, -59.5f, -63.0f, -60.5f, -64.0f, -65.0f});
    b.add(std::string("renorm_eps_") + r,
          "sigmoid scores ~1e-26: sum + 1e-20 is dominated by eps in the fused kernel",
          {"RenormEps"}, params(r, "sigmoid", 2, 1, 1, 1), std::move(in));
  }
  // ---- routed_scaling_factor twice ----
  for (const char* r : {"native_vllm_ascend", "old_select_experts", "fused_ascend"}) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {2, 8},
                          {0.5f, -1.0f, 2.0f, 0.25f, 1.5f, -0.5f, 0.75f, 0.0f,  //
                           -1.5f, 1.0f, 0.5f, 2.5f, -0.25f, 0.125f, 1.25f, -2.0f});
    in["bias"] = f32({8}, {0.0f, 0.1f, -0.1f, 0.2f, 0.0f, 0.05f, -0.05f, 0.0f});
    b.add(std::string("scaling_twice_") + r, "routed_scaling_factor 2.5, sigmoid + bias, renorm",
          {"ScalingTwice"}, params(r, "sigmoid", 3, 2, 2, 1, 2.5f), std::move(in));
  }
  // ---- weight dtype (bf16 / fp16 logits) ----
  for (DType dt : {DType::kBF16, DType::kF16})
    for (const char* r :
         {"fused_ascend", "vllm_fused_topk_softmax", "native_vllm_ascend", "old_select_experts"}) {
      TensorMap in;
      in["logits"] = logits(dt, {2, 12}, {0.3f,  -1.2f, 2.1f,  0.7f,  1.9f, -0.4f, 0.05f, 1.1f,
                                          -2.2f, 0.9f,  0.6f,  -0.8f, 1.3f, 0.2f,  -0.6f, 2.4f,
                                          0.1f,  1.7f,  -1.1f, 0.4f,  0.8f, -0.3f, 1.0f,  0.35f});
      b.add(std::string("weight_dtype_") + (dt == DType::kBF16 ? "bf16_" : "fp16_") + r,
            "softmax top-3 with renormalize: weights in the logits dtype (vllm-ascend) or fp32 "
            "(upstream)",
            {"WeightDtype"}, params(r, "softmax", 3, 1, 1, 1), std::move(in));
    }
  // ---- output order within a token ----
  for (const char* r : kSoftmaxRouters) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {2, 8},
                          {0.5f, -1.0f, 3.0f, 0.25f, 1.5f, -0.5f, 2.25f, 0.0f,  //
                           4.0f, 1.0f, -2.0f, 2.5f, -0.25f, 1.75f, 0.125f, 3.25f});
    b.add(std::string("output_order_") + r,
          "top-3 well separated (row 0: 2, 6, 4; row 1: 0, 7, 3): ordered "
          "variants must emit them descending, unordered ones in any order",
          {"OutputOrder"}, params(r, "softmax", 3, 1, 1, 0), std::move(in));
  }
  for (const char* r : kSoftmaxRouters) {
    TensorMap in;
    const float one_up = std::nextafter(2.0f, 3.0f);
    in["logits"] = logits(DType::kF32, {2, 6},
                          {2.0f, 0.5f, 3.0f, 2.0f, -1.0f, 0.25f,  //
                           2.0f, 0.5f, 3.0f, one_up, -1.0f, 0.25f});
    b.add(std::string("order_tie_") + r,
          "row 0: experts 0 and 3 bit-identical at places 2-3 of the top-3; row 1: 1 ulp apart",
          {"OrderTie"}, params(r, "softmax", 3, 1, 1, 0), std::move(in));
  }
  // ---- native non-grouped path: biased weights, cast first ----
  for (DType dt : {DType::kBF16, DType::kF32})
    for (const char* r : {"native_vllm_ascend_topk", "native_vllm_ascend", "fused_ascend"}) {
      TensorMap in;
      in["logits"] = logits(dt, {2, 8},
                            {0.5f, -1.0f, 2.0f, 0.25f, 1.5f, -0.5f, 0.75f, 0.0f,  //
                             -1.5f, 1.0f, 0.5f, 2.5f, -0.25f, 0.125f, 1.25f, -2.0f});
      in["bias"] = f32({8}, {0.25f, 0.5f, 0.0f, 0.75f, 0.125f, 0.375f, 0.625f, 0.0f});
      b.add(std::string("native_topk_") + (dt == DType::kBF16 ? "bf16_" : "fp32_") + r,
            "sigmoid + bias, top-3, renormalize, rsf 1.5, no groups: the non-grouped native path "
            "weights with the biased values (cast to the logits dtype first)",
            {"NativeTopk"}, params(r, "sigmoid", 3, 1, 1, 1, 1.5f), std::move(in));
    }
  // ---- sqrtsoftplus: tiny scores (ln(1 + exp) vs log1p; eps vs clamp vs none) ----
  for (const char* r :
       {"fused_ascend", "native_vllm_ascend", "native_vllm_ascend_topk", "vllm_fused_topk_bias"}) {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {1, 6}, {-96.0f, -95.0f, -99.0f, -97.0f, -100.0f, -98.0f});
    b.add(std::string("sqrtsoftplus_tiny_") + r,
          "sqrt(softplus(x)) ~1e-21, top-3, renormalize: sum of the weights below 1e-20",
          {"SqrtSoftplusTiny"}, params(r, "sqrtsoftplus", 3, 1, 1, 1), std::move(in));
  }
  // ---- sqrtsoftplus ----
  for (const char* r : {"fused_ascend", "native_vllm_ascend", "vllm_fused_topk_bias"}) {
    TensorMap in;
    in["logits"] =
        logits(DType::kBF16, {3, 8}, {0.5f,  -1.0f,  2.0f, 0.25f, 1.5f,    -0.5f,  0.75f, 0.0f,   //
                                      -1.5f, 1.0f,   0.5f, 2.5f,  -0.25f,  0.125f, 1.25f, -2.0f,  //
                                      25.0f, -30.0f, 0.0f, 3.0f,  -0.125f, 8.0f,   -8.0f, 1.0f});
    b.add(std::string("sqrtsoftplus_") + r,
          "sqrt(softplus(x)), top-3, renormalized (fused: + eps); row 2 spans x = -30 .. 25",
          {"SqrtSoftplus"}, params(r, "sqrtsoftplus", 3, 1, 1, 1, 1.5f), std::move(in));
  }
  // ---- zero experts ----
  {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {2, 10},
                          {0.5f, 1.0f, -0.5f, 2.0f,  0.0f, 0.25f, -1.0f, 0.75f, 3.0f,  -2.0f,  //
                           1.0f, 0.5f, 2.5f,  -0.5f, 0.0f, 1.5f,  0.25f, -1.0f, -3.0f, 2.0f});
    Params p = params("fused_ascend", "softmax", 3, 1, 1, 1);
    p["zero_experts"] = 2;
    b.add("zero_experts_fused_ascend",
          "10 logit columns, the last 2 are zero experts (row 0 picks expert 8, row 1 expert 9)",
          {"ZeroExperts"}, p, std::move(in));
  }
  // ---- expert_map and log2phy ----
  {
    TensorMap in;
    in["logits"] = logits(DType::kF32, {2, 8},
                          {0.5f, 1.0f, -0.5f, 2.0f, 0.0f, 0.25f, -1.0f, 0.75f,  //
                           1.0f, 0.5f, 2.5f, -0.5f, 0.0f, 1.5f, 0.25f, -1.0f});
    in["expert_map"] = Tensor::from<int32_t>({8}, {0, 1, 2, 3, -1, -1, -1, -1});
    in["log2phy"] = Tensor::from<int32_t>({8}, {0, 9, 2, 11, 4, 13, 6, 15});
    b.add("expert_map_log2phy_native_vllm_ascend",
          "experts 4-7 not local (weights zeroed); log2phy sends odd experts to replicas 8 + id",
          {"ExpertMap"}, params("native_vllm_ascend", "softmax", 3, 1, 1, 1), std::move(in));
  }
  // ---- DeepSeek-V3 shape ----
  for (const char* r : kGroupedRouters) {
    const std::string name = std::string("deepseek_v3_") + r;
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/deepseek_v3");
    TensorMap in;
    in["logits"] = gen::float_tensor(DType::kBF16, {4, 256}, gen::FloatDist::normal(0), seed, 1);
    in["bias"] = gen::float_tensor(DType::kF32, {256}, gen::FloatDist::grid(-64, 64, -9), seed, 2);
    b.add(name, "256 experts, 8 groups, keep 4, top-8, sigmoid + bias, rsf 2.5", {"DeepSeekV3"},
          params(r, "sigmoid", 8, 8, 4, 1, 2.5f), std::move(in));
  }
  // ---- random ----
  struct R {
    const char* name;
    const char* router;
    const char* scoring;
    DType dt;
    int64_t t, e, k, ng, kg;
    bool bias;
  };
  for (const R& c : {R{"random_fused_softmax_fp32_7x12", "fused_ascend", "softmax", DType::kF32, 7,
                       12, 3, 3, 2, false},
                     R{"random_fused_sigmoid_bias_fp16_5x18", "fused_ascend", "sigmoid",
                       DType::kF16, 5, 18, 4, 3, 2, true},
                     R{"random_native_softmax_bias_bf16_6x20", "native_vllm_ascend", "softmax",
                       DType::kBF16, 6, 20, 3, 4, 2, true},
                     R{"random_vllm_grouped_sigmoid_fp32_3x24", "vllm_grouped_topk", "sigmoid",
                       DType::kF32, 3, 24, 5, 4, 3, false},
                     R{"random_vllm_topk_softmax_bf16_9x13", "vllm_fused_topk_softmax", "softmax",
                       DType::kBF16, 9, 13, 4, 1, 1, false}}) {
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + c.name);
    TensorMap in;
    in["logits"] = gen::float_tensor(c.dt, {c.t, c.e}, gen::FloatDist::normal(0), seed, 1);
    if (c.bias)
      in["bias"] =
          gen::float_tensor(DType::kF32, {c.e}, gen::FloatDist::grid(-32, 32, -7), seed, 2);
    b.add(c.name, "seeded logits", {"Random"}, params(c.router, c.scoring, c.k, c.ng, c.kg, 1),
          std::move(in));
  }
  return b.v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    RoutingStages s = fn(args_of(in), config_of(p));
    out["scores"] = std::move(s.scores);
    out["topk_ids"] = std::move(s.topk_ids);
    out["expert_weights"] = std::move(s.expert_weights);
  };
}

Check bounded(const Tensor& exact, const Tensor& bound) {
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = exact;
  c.bound = bound;
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  const RoutingBounds b = ref::moe_gating_top_k_bounds(args_of(in), config_of(p));
  m["scores"] = bounded(b.scores_exact, b.scores_bound);
  m["expert_weights"] = bounded(b.weights_exact, b.weights_bound);
  m["expert_weights"].degenerate_ok = true;  // dense: k of E columns are nonzero by design
  Check ids;
  ids.mode = CheckMode::kRowSet;
  ids.ordered = b.ordered;
  ids.accept.index = b.alt_rows;
  ids.accept.offsets = b.alt_offsets;
  ids.accept.values = Tensor::from<int32_t>({static_cast<int64_t>(b.alt_ids.size())}, b.alt_ids);
  m["topk_ids"] = std::move(ids);
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "MoE router (gating top-k): scores = softmax | sigmoid | sqrt(softplus) of fp32 logits, "
      "selection score = score + bias, grouped selection (group score max or top-2 sum, keep "
      "k_group groups, masked -inf or 0.0), top-k, weights from the unbiased scores, "
      "renormalization (with eps in the fused kernel), routed_scaling_factor, cast; then zero "
      "experts, expert_map, log2phy. Variant axis router. Stages scores (BOUNDED), topk_ids "
      "(ROW_SET: per-token id multisets, every set reachable within the exp bound listed; "
      "ordered sequences for the sorting variants), expert_weights (dense [T, E], BOUNDED over "
      "the reachable sets).";
  d.sources = {"notes/torch_npu_semantics.md §7 (npu_moe_gating_top_k) [doc + code]",
               "notes/vllm_ascend_quant.md §C (router selection, fused kernel semantics, native "
               "path, after routing) [code]",
               "notes/vllm_ascend_quant.md §F (upstream grouped_topk, fused_topk) [code]",
               "docs/bounds.md (moe_gating_top_k)"};
  d.inputs = {"logits", "bias", "expert_map", "log2phy"};
  d.stages = {
      {"scores", false, "float32 [T, E]: softmax / sigmoid / sqrt(softplus) (bounded)"},
      {"topk_ids", true,
       "int32 [T, k]: final ids, compared per token as a multiset (row_set), or as a sequence "
       "for the variants that sort their output (row_set ordered)"},
      {"expert_weights", true,
       "float32 [T, E]: weight of each logical expert, 0 if not selected (bounded)"}};
  d.variants = {
      {"router",
       {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk", "vllm_fused_topk_softmax",
        "old_select_experts", "native_vllm_ascend_topk", "vllm_fused_topk_bias"},
       "fused kernel (top-2 group score, -inf mask, eps renorm, dtype cast, sorted), "
       "native vllm-ascend grouped (max group score, 0.0 mask), upstream grouped_topk, "
       "upstream fused_topk softmax (sorted), old select_experts (rsf twice), native "
       "vllm-ascend non-grouped (biased weights cast first, sorted), upstream "
       "fused_topk_bias sqrtsoftplus (clamp(min=1e-20), sorted)"}};
  d.notes = notes();
  d.reference = kernel(ref::moe_gating_top_k);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(
      [](const RoutingArgs& a, const RoutingConfig& c) { return opt::moe_gating_top_k(a, c); });
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_moe_gating_top_k
}  // namespace qconf::conf
