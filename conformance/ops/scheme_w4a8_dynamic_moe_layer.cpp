// scheme_w4a8_dynamic_moe_layer: one W4A8_DYNAMIC MoE layer end to end, from its checkpoint
// tensors stacked over experts (`qconf checkpoint --run`, checkpoint_cmd.h), in either checkpoint
// format (param `format`: modelslim | llmcompressor): the MoE layer skeleton
// (qconf/ops/moe_layer.h): router -> topk_weights.to(pdt) -> npu_moe_init_routing_v2
// (quant_mode -1: W4A8's quant_apply_mlp quantizes the rows itself with npu_dynamic_quant) ->
// the expert MLP of scheme_w4a8_dynamic_moe (load, MSD gmm1 + SwiGLU + requant, MSD gmm2) on the
// dispatched rows -> token_unpermute (finalize_routing on an EP rank).
// Checks: conformance/ops/moe_layer_wrap.h (routing as scheme_w8a8_dynamic_moe, the expert MLP by
// scheme_w4a8_dynamic_moe's oracle, y bounded with the propagated expert_out range).
// Source: notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE, §C; seed W4A8_DYNAMIC (w4a8.py);
// reference/schemes/w4a8_dynamic.cpp; docs/bounds.md "scheme_w4a8_dynamic_moe_layer".
#include "moe_layer_wrap.h"
#include "moe_w4_ckpt.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a8_dynamic_moe {
OpDef make();  // scheme_w4a8_dynamic_moe.cpp: the expert MLP on dispatched rows
}  // namespace conformance_ops_scheme_w4a8_dynamic_moe

namespace conformance_ops_scheme_w4a8_dynamic_moe_layer {

constexpr const char* kOp = "scheme_w4a8_dynamic_moe_layer";

const moe_layer_wrap::Spec& spec() {
  static const OpDef mlp = conformance_ops_scheme_w4a8_dynamic_moe::make();
  static const moe_layer_wrap::Spec s = [] {
    moe_layer_wrap::Spec r;
    r.op = kOp;
    r.mlp = &mlp;
    r.weights = {"w13_weight", "w13_weight_scale", "w13_scale_bias",
                 "w2_weight",  "w2_weight_scale",  "w2_scale_bias"};
    return r;
  }();
  return s;
}

// A float16 model is not modelled, on upstream's word: vllm-ascend's quant_apply_mlp
// (vllm_ascend/ops/fused_moe/moe_mlp.py, the `w1_scale_bias is not None` branch every
// W4A8_DYNAMIC MoE layer takes, both formats: ModelSlim loads scale_bias, LLM-Compressor computes
// it) sets `_output_dtype = torch.bfloat16` ("TODO w4a8 scene: dynamic acquisition of dtype in
// the future") and DeviceOperator.npu_grouped_matmul_gmm2 passes it to npu_grouped_matmul as
// output_dtype, so gmm2 returns bfloat16 rows whatever the model dtype. The combine
// (TokenDispatcherWithAllGather.token_combine -> npu_moe_token_unpermute) then gets bfloat16 rows
// with float16 topk_weights (w4a8.py apply: topk_weights.to(x.dtype)): a mix the
// aclnnMoeTokenUnpermute documentation does not define (docs/divergences.md, "W4A8_DYNAMIC MoE
// layer, float16 model"). The expert MLP alone (scheme_w4a8_dynamic_moe) does model float16
// activations: its y is bfloat16, as upstream's gmm2.
void reject_fp16_model(const Params& p) {
  if (scheme_pipeline::pdt_of(p) != DType::kF16) return;
  throw std::invalid_argument(
      std::string(kOp) +
      ": params_dtype float16 is not supported: vllm-ascend forces W4A8_DYNAMIC MoE gmm2's "
      "output to bfloat16 (vllm_ascend/ops/fused_moe/moe_mlp.py quant_apply_mlp: "
      "`_output_dtype = torch.bfloat16` when w1_scale_bias is set, a TODO upstream), so the "
      "combine npu_moe_token_unpermute would mix bfloat16 expert rows with float16 topk_weights "
      "(w4a8.py AscendW4A8DynamicFusedMoEMethod.apply), which aclnnMoeTokenUnpermute does not "
      "define (docs/divergences.md \"W4A8_DYNAMIC MoE layer, float16 model\"); the expert MLP "
      "on dispatched rows (scheme_w4a8_dynamic_moe) accepts float16 x and returns bfloat16 y");
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  reject_fp16_model(p);
  moe_layer_wrap::run<kOpt>(spec(), p, in, out);
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  reject_fp16_model(p);
  return moe_layer_wrap::oracle(spec(), p, in, out);
}

// ---- cases ------------------------------------------------------------------------------------

struct Shape4 {
  int64_t t, e, h, inter;
};

// Seeded checkpoint tensors of one layer in `format`: int4 values (expert 0's gate row 0 all -8,
// row 1 all 7), fp32 scales (ModelSlim) or their bf16 roundings (LLM-Compressor), x, logits.
TensorMap layer_inputs(const std::string& name, const std::string& format, const Shape4& s) {
  namespace ck = moe_w4_ckpt;
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  Tensor v13 = gen::int_tensor(DType::kI8, {s.e, 2 * s.inter, s.h}, -8, 7, seed, 1);
  Tensor v2 = gen::int_tensor(DType::kI8, {s.e, s.h, s.inter}, -8, 7, seed, 2);
  for (int64_t k = 0; k < s.h; ++k) {
    v13.data<int8_t>()[k] = -8;
    v13.data<int8_t>()[s.h + k] = 7;
  }
  const Tensor s13 = scheme_pipeline::ckpt_scale({s.e, 2 * s.inter, 1}, seed, 3);
  const Tensor s2 = scheme_pipeline::ckpt_scale({s.e, s.h, 1}, seed, 4);
  TensorMap in;
  if (format == "modelslim") {
    in["w13_weight"] = ck::modelslim_bytes(v13);
    in["w13_weight_scale"] = s13;
    in["w13_scale_bias"] = ck::modelslim_scale_bias(v13, s13, 1);
    in["w2_weight"] = ck::modelslim_bytes(v2);
    in["w2_weight_scale"] = s2;
    in["w2_scale_bias"] = ck::modelslim_scale_bias(v2, s2, 16);
  } else {
    in["w13_weight"] = v13;
    in["w13_weight_scale"] = ck::to_bf16(s13);
    in["w2_weight"] = v2;
    in["w2_weight_scale"] = ck::to_bf16(s2);
  }
  in["x"] = gen::float_tensor(DType::kBF16, {s.t, s.h}, gen::FloatDist::normal(0), seed, 5);
  in["router_logits"] =
      gen::float_tensor(DType::kF32, {s.t, s.e}, gen::FloatDist::normal(0), seed, 6);
  return in;
}

Params base_params(const std::string& format, int64_t top_k) {
  return {{"params_dtype", "bfloat16"}, {"format", format}, {"top_k", top_k}};
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
  const Shape4 small = {5, 4, 16, 16};
  for (const char* f : {"modelslim", "llmcompressor"}) {
    const std::string n = std::string(f) + "_softmax_e4_top2";
    add(n,
        std::string(f) +
            " checkpoint: softmax router, 4 experts, top-2, 5 tokens, H 16, I 16; dispatch "
            "without quant, the expert MLP quantizes the rows",
        {"Pipeline", f == std::string("modelslim") ? "ModelSlim" : "LlmCompressor"},
        base_params(f, 2), layer_inputs(n, f, small));
  }
  {
    const char* n = "expert_with_zero_tokens";
    TensorMap in = layer_inputs(n, "modelslim", small);
    for (int64_t t = 0; t < small.t; ++t) in["router_logits"].data<float>()[t * 4 + 1] = -8.0f;
    add(n, "router logit of expert 1 is -8 for every token: expert 1 gets no rows (count 0)",
        {"Pipeline", "EmptyExpert"}, base_params("modelslim", 2), std::move(in));
  }
  {
    const char* n = "ep_rank_tokens_to_no_local_expert";
    TensorMap in = layer_inputs(n, "llmcompressor", small);
    for (int64_t t : {0, 3}) {  // tokens 0 and 3 of 5
      in["router_logits"].data<float>()[t * 4 + 0] = 3.0f;
      in["router_logits"].data<float>()[t * 4 + 1] = 2.5f;
    }
    Params p = base_params("llmcompressor", 2);
    p["local_start"] = 2;
    p["local_count"] = 2;
    add(n,
        "an EP rank holding experts [2, 4) of 4 (weights sliced at load, scale_bias of the local "
        "experts only): tokens 0 and 3 go to experts 0 and 1 only, their output row is zero; "
        "combine by finalize_routing",
        {"Pipeline", "NoLocalExpert", "EpCombine"}, p, std::move(in));
  }
  {
    const char* n = "deepseek_mini_sigmoid_bias_grouped";
    TensorMap in = layer_inputs(n, "modelslim", {4, 8, 16, 16});
    in["e_score_correction_bias"] =
        gen::float_tensor(DType::kF32, {8}, gen::FloatDist::grid(-64, 64, -9),
                          rng::seed_from_string(std::string(kOp) + "/" + n), 7);
    Params p = base_params("modelslim", 3);
    p["scoring"] = "sigmoid";
    p["n_group"] = 4;
    p["k_group"] = 2;
    p["routed_scaling_factor"] = 2.5;
    add(n,
        "DeepSeek-V3 routing in miniature: 8 experts, 4 groups keep 2, top-3, sigmoid + "
        "e_score_correction_bias, routed_scaling_factor 2.5",
        {"Pipeline", "DeepSeekV3Routing"}, p, std::move(in));
  }
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
      "W4A8_DYNAMIC MoE layer from stacked checkpoint tensors (format modelslim | "
      "llmcompressor): router (moe_gating_top_k) -> topk_weights.to(pdt) -> "
      "npu_moe_init_routing_v2 (quant_mode -1, counts, local range) -> the W4A8 expert MLP of "
      "scheme_w4a8_dynamic_moe (load, npu_dynamic_quant, MSD gmm1 + SwiGLU + requant, MSD gmm2) "
      "-> npu_moe_token_unpermute (finalize_routing on an EP rank).";
  d.sources = {
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE, §C (router, dispatch, quantized "
      "MLP W4A8)",
      "seed W4A8_DYNAMIC (w4a8.py)",
      "vllm-ascend ops/fused_moe/token_dispatcher.py TokenDispatcherWithAllGather",
      "conformance/ops/scheme_w4a8_dynamic_moe.cpp; qconf/ops/moe_layer.h",
      "docs/bounds.md scheme_w4a8_dynamic_moe_layer"};
  d.inputs = {"w13_weight", "w13_weight_scale", "w13_scale_bias",
              "w2_weight",  "w2_weight_scale",  "w2_scale_bias",
              "x",          "router_logits",    "e_score_correction_bias"};
  d.stages = moe_layer_wrap::stages(s);
  d.variants = s.mlp->variants;
  d.variants.push_back({"router",
                        {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk",
                         "vllm_fused_topk_softmax", "old_select_experts"},
                        "router variant (moe_gating_top_k)"});
  d.variants.push_back(
      {"acc_precision", {"fp32", "io_dtype"}, "combine accumulation precision of the y bound"});
  d.notes = s.mlp->notes;
  d.notes["ModelSlim"] = {"FUNCTIONALITY",
                          "ModelSlim checkpoint (two int4 per byte, scale_bias in the file)",
                          "a port unpacking the wrong nibble fails w13_values"};
  d.notes["LlmCompressor"] = {"FUNCTIONALITY",
                              "LLM-Compressor checkpoint (one int4 per int8, bf16 scales, "
                              "scale_bias computed at load)",
                              "a port forgetting the factor 8 fails w13_scale_bias"};
  d.notes["EmptyExpert"] = {"EDGE_CASE", "an expert with zero routed tokens (count 0)",
                            "advancing rows for an empty expert shifts later groups"};
  d.notes["NoLocalExpert"] = {"EDGE_CASE",
                              "tokens routed only to experts of other EP ranks: output row 0",
                              "a port reading |-1| = 1 with a nonzero weight adds row 1"};
  d.notes["EpCombine"] = {"DIVERGENCE",
                          "EP rank combine by finalize_routing (docs/divergences.md MoE layer EP "
                          "combine)",
                          "differs only for a non-finite row 1 or a signed zero"};
  d.notes["DeepSeekV3Routing"] = {"FUNCTIONALITY",
                                  "grouped sigmoid + bias routing with routed_scaling_factor",
                                  "a softmax router, no bias, or the max group score selects "
                                  "other experts"};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w4a8_dynamic_moe_layer
}  // namespace qconf::conf
