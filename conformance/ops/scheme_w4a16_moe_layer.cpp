// scheme_w4a16_moe_layer: one W4A16 MoE layer end to end, from its compressed-tensors
// pack-quantized checkpoint tensors stacked over experts (`qconf checkpoint --run`,
// checkpoint_cmd.h: w13_weight_packed / w13_weight_scale / w13_weight_shape and w2_*): the MoE
// layer skeleton (qconf/ops/moe_layer.h): router -> topk_weights.to(pdt) ->
// npu_moe_init_routing_v2 (quant_mode -1: W4A16 keeps activations in the params dtype) -> the
// expert MLP of scheme_w4a16_moe (load, grouped antiquant gmm1, npu_swiglu, gmm2) on the
// dispatched rows -> token_unpermute (finalize_routing on an EP rank).
// Checks: conformance/ops/moe_layer_wrap.h (routing as scheme_w8a8_dynamic_moe, the expert MLP by
// scheme_w4a16_moe's oracle, y bounded with the propagated expert_out range).
// Source: notes/vllm_ascend_quant.md §A W4A16 MoE, §C, §D; seed compressed-tensors W4A16
// (w4a16.py); reference/schemes/w4a16.cpp; docs/bounds.md "scheme_w4a16_moe_layer".
#include "moe_layer_wrap.h"
#include "moe_w4_ckpt.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a16_moe {
OpDef make();  // scheme_w4a16_moe.cpp: the expert MLP on dispatched rows
}  // namespace conformance_ops_scheme_w4a16_moe

namespace conformance_ops_scheme_w4a16_moe_layer {

constexpr const char* kOp = "scheme_w4a16_moe_layer";

const moe_layer_wrap::Spec& spec() {
  static const OpDef mlp = conformance_ops_scheme_w4a16_moe::make();
  static const moe_layer_wrap::Spec s = [] {
    moe_layer_wrap::Spec r;
    r.op = kOp;
    r.mlp = &mlp;
    r.weights = {"w13_weight_packed", "w13_weight_scale", "w13_weight_shape",
                 "w2_weight_packed",  "w2_weight_scale",  "w2_weight_shape"};
    return r;
  }();
  return s;
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  moe_layer_wrap::run<kOpt>(spec(), p, in, out);
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  return moe_layer_wrap::oracle(spec(), p, in, out);
}

// ---- cases ------------------------------------------------------------------------------------

// Seeded pack-quantized tensors (g = 32, two groups along each K = 64, group 1's scales 16x
// group 0's; every expert's output 0 all -8 and output 1 all 7), x in
// pdt, fp32 logits.
TensorMap layer_inputs(const std::string& name, DType pdt, int64_t t, int64_t e) {
  namespace ck = moe_w4_ckpt;
  constexpr int64_t kH = 64, kI = 64, kG = 32;
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  Tensor v13 = gen::int_tensor(DType::kI8, {e, 2 * kI, kH}, -8, 7, seed, 1);
  Tensor v2 = gen::int_tensor(DType::kI8, {e, kH, kI}, -8, 7, seed, 2);
  for (int64_t x = 0; x < e; ++x) {
    for (int64_t k = 0; k < kH; ++k) {
      v13.data<int8_t>()[x * 2 * kI * kH + k] = -8;
      v13.data<int8_t>()[x * 2 * kI * kH + kH + k] = 7;
    }
  }
  Tensor s13 = scheme_pipeline::ckpt_scale({e, 2 * kI, kH / kG}, seed, 3);
  Tensor s2 = scheme_pipeline::ckpt_scale({e, kH, kI / kG}, seed, 4);
  for (Tensor* s : {&s13, &s2})
    for (int64_t j = 1; j < s->numel(); j += 2) s->data<float>()[j] *= 16.0f;
  TensorMap in;
  in["w13_weight_packed"] = ck::ct_packed(v13);
  in["w13_weight_scale"] = s13;
  in["w13_weight_shape"] = ck::weight_shape(e, 2 * kI, kH);
  in["w2_weight_packed"] = ck::ct_packed(v2);
  in["w2_weight_scale"] = s2;
  in["w2_weight_shape"] = ck::weight_shape(e, kH, kI);
  in["x"] = gen::float_tensor(pdt, {t, kH}, gen::FloatDist::normal(0), seed, 5);
  in["router_logits"] = gen::float_tensor(DType::kF32, {t, e}, gen::FloatDist::normal(0), seed, 6);
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
    const char* n = "bf16_softmax_e2_top1";
    TensorMap in = layer_inputs(n, DType::kBF16, 3, 2);
    // Expert 1 gets no rows.
    for (int64_t t = 0; t < 3; ++t) in["router_logits"].data<float>()[t * 2 + 1] = -8.0f;
    add(n,
        "softmax router, 2 experts, top-1, 3 tokens, H = I = 64 (g = 32: two groups, group 1 "
        "16x), fp32 scales rounded at load; expert 1 gets no rows",
        {"Pipeline", "GroupBoundary", "Int4Extremes", "EmptyExpert", "LoadRounding"},
        base_params(DType::kBF16, 1), std::move(in));
  }
  {
    const char* n = "fp16_softmax_e2_top2";
    add(n, "float16 params dtype: scales rounded to fp16, 2 experts, top-2, 3 tokens",
        {"Pipeline", "LoadRounding", "Fp16"}, base_params(DType::kF16, 2),
        layer_inputs(n, DType::kF16, 3, 2));
  }
  // The EP-rank path (sliced weights, finalize_routing) is shared with
  // scheme_w4a8_dynamic_moe_layer/ep_rank_tokens_to_no_local_expert; not repeated here to keep
  // the golden generation small (the W4A16 reference antiquant is the cost).
  return v;
}

std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

OpDef make() {
  const moe_layer_wrap::Spec& s = spec();
  OpDef d;
  d.name = kOp;
  d.summary =
      "W4A16 MoE layer from stacked compressed-tensors checkpoint tensors (g = 32): router "
      "(moe_gating_top_k) -> topk_weights.to(pdt) -> npu_moe_init_routing_v2 (quant_mode -1, "
      "counts, local range) -> the W4A16 expert MLP of scheme_w4a16_moe (unpack, int4 pack, "
      "grouped antiquant gmm1, npu_swiglu, gmm2) -> npu_moe_token_unpermute (finalize_routing "
      "on an EP rank).";
  d.sources = {"notes/vllm_ascend_quant.md §A W4A16 MoE, §C (router, dispatch), §D",
               "seed compressed-tensors W4A16 (w4a16.py)",
               "vllm-ascend ops/fused_moe/token_dispatcher.py TokenDispatcherWithAllGather",
               "conformance/ops/scheme_w4a16_moe.cpp; qconf/ops/moe_layer.h",
               "docs/bounds.md scheme_w4a16_moe_layer"};
  d.inputs = {"w13_weight_packed",
              "w13_weight_scale",
              "w13_weight_shape",
              "w2_weight_packed",
              "w2_weight_scale",
              "w2_weight_shape",
              "x",
              "router_logits",
              "e_score_correction_bias"};
  d.stages = moe_layer_wrap::stages(s);
  d.variants = s.mlp->variants;
  d.variants.push_back({"router",
                        {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk",
                         "vllm_fused_topk_softmax", "old_select_experts"},
                        "router variant (moe_gating_top_k)"});
  d.variants.push_back(
      {"acc_precision", {"fp32", "io_dtype"}, "combine accumulation precision of the y bound"});
  d.notes = s.mlp->notes;
  d.notes["EmptyExpert"] = {"EDGE_CASE", "an expert with zero routed tokens (count 0)",
                            "advancing rows for an empty expert uses the wrong weights"};
  d.notes["Fp16"] = {"FUNCTIONALITY", "fp16 params dtype", "bf16-only assumptions"};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w4a16_moe_layer
}  // namespace qconf::conf
