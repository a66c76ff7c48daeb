// Op: npu_swiglu (torch_npu) and SwiGLU-OAI (variant swiglu_mode = 1): out = A * sigmoid(A) * B
// with A the first half of the last dim (mode 0), or gate = x[..., 0::2] clamped above at limit,
// up = x[..., 1::2] clamped to [-limit, limit], out = gate * sigmoid(alpha * gate) * (up + 1)
// (mode 1, vllm-ascend tests/ut/ops/a3_2/test_activation.py, notes §12). Computed in fp32 and
// cast to x's dtype; exp makes the result BOUNDED (docs/bounds.md, "expert MLP").
#include "qconf/conformance/op.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_swiglu {

constexpr const char* kOp = "npu_swiglu";

std::map<std::string, Note> notes() {
  return {
      {"FirstHalfActivated",
       {"FUNCTIONALITY", "mode 0: the FIRST half goes through swish (A * sigmoid(A) * B).",
        "Activating the second half gives other values (outside the bound)."}},
      {"OaiClamp",
       {"FUNCTIONALITY",
        "mode 1 with values past +-limit: gate clamped above only, up clamped both ways, "
        "interleaved columns, (up + 1).",
        "A missing clamp, halves instead of interleaving, or up without + 1 fail."}},
      {"Saturation",
       {"EDGE_CASE",
        "Large negative activations: exp(-a) overflows fp32 for a < -88.7 (the result may be "
        "-0 or tiny); large positive ones: sigmoid = 1.",
        "A port returning NaN (inf/inf) fails."}},
      {"Random", {"BASIC", "Seeded fp32 / bf16 / fp16 inputs.", "General coverage."}},
  };
}

Params params(int mode) {
  return Params{
      {"swiglu_mode", mode}, {"clamp_limit", 7.0}, {"glu_alpha", 1.702}, {"glu_bias", 1.0}};
}

SwigluConfig config_of(const Params& p) {
  SwigluConfig c;
  c.activate_left = true;
  c.swiglu_mode = static_cast<int>(param_int(p, "swiglu_mode", 0));
  if (c.swiglu_mode != 0 && c.swiglu_mode != 1)
    throw std::invalid_argument("param swiglu_mode: expected 0 or 1");
  auto num = [&](const char* k, double d) {
    if (!p.contains(k)) return static_cast<float>(d);
    if (!p.at(k).is_number())
      throw std::invalid_argument(std::string("param ") + k + ": expected a number");
    return static_cast<float>(p.at(k).get<double>());
  };
  c.clamp_limit = num("clamp_limit", 7.0);
  c.glu_alpha = num("glu_alpha", 1.702);
  c.glu_bias = num("glu_bias", 1.0);
  return c;
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, Params p,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  const uint64_t seed = rng::seed_from_string(kOp);
  add("plain_fp32", "fp32 [3, 2x16], sigma 2", {"FirstHalfActivated"}, params(0),
      {{"x", gen::float_tensor(DType::kF32, {3, 32}, gen::FloatDist::normal(1), seed, 0)}});
  add("saturation_fp32", "fp32 with |a| up to ~190: exp(-a) overflows for a < -88.7",
      {"Saturation", "FirstHalfActivated"}, params(0),
      {{"x", gen::float_tensor(DType::kF32, {2, 32}, gen::FloatDist::normal(5), seed, 1)}});
  add("oai_clamp_fp32", "mode 1, limit 7: values up to ~+-24", {"OaiClamp"}, params(1),
      {{"x", gen::float_tensor(DType::kF32, {3, 32}, gen::FloatDist::normal(3), seed, 2)}});
  add("random_bf16_5x2x24", "bf16", {"Random", "FirstHalfActivated"}, params(0),
      {{"x", gen::float_tensor(DType::kBF16, {5, 48}, gen::FloatDist::normal(1), seed, 3)}});
  add("random_fp16_oai_4x2x20", "fp16, mode 1", {"Random", "OaiClamp"}, params(1),
      {{"x", gen::float_tensor(DType::kF16, {4, 40}, gen::FloatDist::normal(2), seed, 4)}});
  return v;
}

// The cases are built once per process (some are searched, and the reference and tests ask for
// them many times); every call returns a copy.
std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  const SwigluStages s = ref::npu_swiglu(in.at("x"), config_of(p));
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = s.exact;
  c.bound = s.bound;
  return {{"out", c}};
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_swiglu (A * sigmoid(A) * B, A = first half) and SwiGLU-OAI (swiglu_mode "
      "1: interleaved, clamped, (up + 1) * gate * sigmoid(alpha * gate)); fp32 compute, bounded "
      "(exp).";
  d.sources = {"notes/torch_npu_semantics.md §10 (npu_swiglu), §12 (SwiGLU-OAI reference)",
               "docs/bounds.md (expert MLP)"};
  d.inputs = {"x"};
  d.stages = {{"out", true, "x dtype [..., H] (bounded)"}};
  d.variants = {};  // swiglu_mode (0 halves, 1 OAI) is an op argument, set per case
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["out"] = ref::npu_swiglu(in.at("x"), config_of(p)).out;
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["out"] = opt::npu_swiglu(in.at("x"), config_of(p));
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_swiglu
}  // namespace qconf::conf
