// scheme_w8a8_mix_linear: one W8A8_MIX linear layer end to end (vllm-ascend
// quantization/methods/w8a8_pdmix.py AscendW8A8PDMixLinearMethod). The layer declares the W8A8
// static tensors and runs the static post-load processing (plus a weight_scale_fp32 copy); apply
// picks ONE path per serving instance, decided once in __init__:
//
//   is_kv_consumer = kv_transfer_config is not None and kv_transfer_config.is_kv_consumer
//   (vLLM config/kv_transfer.py: kv_connector is not None and kv_role in {kv_consumer, kv_both})
//   is_kv_consumer -> AscendW8A8LinearMethod.apply        (static: scheme_w8a8_static_linear)
//   otherwise      -> AscendW8A8DynamicLinearMethod.apply (dynamic: scheme_w8a8_dynamic_linear)
//
// So "prefill dynamic, decode static" holds for a disaggregated deployment (a kv_producer node
// prefills, a kv_consumer node decodes); the selector is the node's KV role, not the batch's
// phase: a kv_both node runs every batch static, a deployment without a KV connector runs every
// batch (decode included) dynamic. Param `kv_role`: none | kv_producer | kv_consumer | kv_both.
//
// Both paths are the existing pipeline ops, called through the op registry (their reference or
// optimized kernel), so the two schemes cannot drift apart. Source: notes/vllm_ascend_quant.md §A
// W8A8_MIX; vllm-ascend w8a8_pdmix.py @1031b861 (read via the code index); vLLM
// config/kv_transfer.py is_kv_consumer.
#include <algorithm>

#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w8a8_mix_linear {

constexpr const char* kOp = "scheme_w8a8_mix_linear";
using namespace scheme_pipeline;  // NOLINT

const std::vector<std::string> kRoles = {"none", "kv_producer", "kv_consumer", "kv_both"};

// The selector, exactly as vllm-ascend evaluates it (once per instance).
bool is_kv_consumer(const std::string& role) {
  if (std::find(kRoles.begin(), kRoles.end(), role) == kRoles.end())
    throw std::invalid_argument(std::string(kOp) +
                                ": param kv_role must be none, kv_producer, kv_consumer or "
                                "kv_both, got \"" +
                                role + "\"");
  return role == "kv_consumer" || role == "kv_both";
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const bool consumer = is_kv_consumer(param_str(p, "kv_role", "none"));
  const char* path_op = consumer ? "scheme_w8a8_static_linear" : "scheme_w8a8_dynamic_linear";
  const OpDef* def = OpRegistry::instance().find(path_op);
  if (!def) throw std::logic_error(std::string(kOp) + ": op " + path_op + " is not registered");
  const Kernel& k = kOpt ? def->optimized : def->reference;
  if (!k) throw Unimplemented(std::string(kOp) + ": " + path_op + " has no such kernel");
  // Only the inputs the chosen path reads (both paths share weight and x).
  TensorMap sub;
  for (const auto& name : def->inputs) {
    auto it = in.find(name);
    if (it == in.end())
      throw std::invalid_argument(std::string(kOp) + ": missing input \"" + name + "\"");
    sub.emplace(name, it->second);
  }
  Params sp = Params::object();
  sp["params_dtype"] = param_str(p, "params_dtype", "bfloat16");
  TensorMap po;
  k(sp, sub, po);
  out["is_kv_consumer"] = Tensor::from<int8_t>({1}, {static_cast<int8_t>(consumer ? 1 : 0)});
  // process_weights_after_loading: the static processing always runs, then weight_scale_fp32.
  // The dynamic op's weight_scale_param is the flattened params-dtype scale; the static path
  // does not read it, but the layer holds it either way.
  const DType pdt = pdt_of(p);
  out["weight_scale_param"] = flat_param(in.at("weight_scale"), pdt);
  for (auto& [name, t] : po) {
    if (name == "weight_scale_param") continue;
    out[name] = std::move(t);
  }
}

struct Spec {
  DType pdt;
  int64_t m, k, n;
};

TensorMap inputs_for(const std::string& name, const Spec& r) {
  const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
  TensorMap in;
  in["x"] = gen::float_tensor(r.pdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 0);
  in["weight"] = gen::int_tensor(DType::kI8, {r.n, r.k}, -128, 127, s, 1);
  in["input_scale"] = Tensor::from<uint32_t>(DType::kF32, {1}, {num::f32_bits(0.0234f)});
  in["input_offset"] = Tensor::from<int8_t>({1}, {3});
  in["quant_bias"] = gen::int_tensor(DType::kI32, {r.n}, -5000, 5000, s, 3);
  Tensor deq = ckpt_scale({r.n}, s, 2);
  in["deq_scale"] =
      r.pdt == DType::kBF16
          ? deq
          : ref::npu_trans_quant_param(deq, nullptr, TransQuantEncoding::kFp19Trunc).quant_param;
  in["weight_scale"] = ckpt_scale({r.n, 1}, s, 4);
  // weight_offset: declared in params dtype, unused by either apply path.
  in["weight_offset"] =
      gen::float_tensor(DType::kF32, {r.n, 1}, gen::FloatDist::grid(-3, 3, 0), s, 5);
  return in;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  // The same tokens, weights and scales under every KV role: kv_producer and none give the
  // dynamic path's y, kv_consumer and kv_both the static path's; the two y differ.
  for (const auto& [tag, spec] :
       std::vector<std::pair<std::string, Spec>>{{"bf16_m3_k40_n24", {DType::kBF16, 3, 40, 24}},
                                                 {"fp16_m4_k72_n17", {DType::kF16, 4, 72, 17}}}) {
    const TensorMap in = inputs_for(tag, spec);
    for (const auto& role : kRoles) {
      CaseSpec c;
      c.name = tag + "_" + role;
      c.comment = "kv_role " + role + ": " +
                  (is_kv_consumer(role) ? "static path (KV consumer)" : "dynamic path") +
                  "; the same inputs as every " + tag + " case";
      c.flags = {"Pipeline", "Selector"};
      if (role == "kv_both") c.flags.push_back("KvBothIsStatic");
      if (role == "none") c.flags.push_back("NoConnectorIsDynamic");
      c.params = {{"params_dtype", spec.pdt == DType::kBF16 ? "bfloat16" : "float16"},
                  {"kv_role", role}};
      c.inputs = in;
      v.push_back(std::move(c));
    }
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W8A8_MIX linear layer from its checkpoint tensors (the W8A8 static set): the static "
      "post-load processing; apply takes the static path (npu_quantize with 1/input_scale, "
      "(acc + quant_bias) * deq_scale) on KV-consumer instances (kv_role kv_consumer or kv_both) "
      "and the W8A8_DYNAMIC path (npu_dynamic_quant, acc * weight_scale * pertoken) otherwise. "
      "The role is fixed per instance, not per batch.";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8_MIX",
               "vllm-ascend quantization/methods/w8a8_pdmix.py (is_kv_consumer from "
               "kv_transfer_config, decided in __init__)",
               "vLLM config/kv_transfer.py: is_kv_consumer = kv_connector is not None and "
               "kv_role in (kv_consumer, kv_both)",
               "conformance/ops/scheme_w8a8_static_linear.cpp, scheme_w8a8_dynamic_linear.cpp"};
  d.inputs = {"x",          "weight",    "input_scale",  "input_offset",
              "quant_bias", "deq_scale", "weight_scale", "weight_offset"};
  d.stages = {
      {"is_kv_consumer", false, "int8 [1]: 1 = static path, 0 = dynamic path"},
      {"weight_t", false, "int8 [K, N]: the weight after process_weights_after_loading"},
      {"weight_scale_param", false, "params dtype [N]: the loaded, flattened weight_scale"},
      {"input_scale_reciprocal", false, "static path: params dtype [K]"},
      {"input_offset_param", false, "static path: params dtype [K]"},
      {"x_q", false, "int8 [M, K]: npu_quantize (static) or npu_dynamic_quant (dynamic) codes"},
      {"x_scale", false, "dynamic path: float32 [M] per-token scale"},
      {"acc", false, "static path: int32 [M, N]"},
      {"y", true, "params dtype [M, N]"}};
  d.variants = {{"kv_role", kRoles,
                 "vLLM KVTransferConfig.kv_role (none = no kv_transfer_config): kv_consumer and "
                 "kv_both select the static path"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole layer, load-time transforms included",
        "a port that applies the wrong path's scales differs"}},
      {"Selector",
       {"DIVERGENCE",
        "the same tokens under each kv_role: the static and dynamic y differ on every case",
        "a port that chooses the path by the batch's phase (prefill / decode) instead of the "
        "instance's KV role fails the kv_both (prefill batches too) and none (decode too) cases"}},
      {"KvBothIsStatic",
       {"EDGE_CASE", "kv_role kv_both counts as a KV consumer (vLLM KVConsumer literal)",
        "a port that treats only kv_consumer as the decode role runs kv_both dynamic"}},
      {"NoConnectorIsDynamic",
       {"EDGE_CASE",
        "no kv_transfer_config (a non-disaggregated server): every batch, decode included, is "
        "dynamic",
        "a port that runs decode batches static on a plain server differs"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = [](const Params&, const TensorMap&, const TensorMap& out) {
    return special_floats(out);
  };
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w8a8_mix_linear
}  // namespace qconf::conf
