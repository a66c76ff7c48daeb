// Op: zero_experts_compute, the zero (identity) experts after routing: vllm-ascend
// experts_selector.zero_experts_compute plus the `final_hidden_states += zero_expert_result` of
// its caller (reference/include/qconf/ops/zero_experts.h).
//
// Variant axis `zero_expert_type`: identity (the zero expert outputs the token scaled by its
// weight: vllm-ascend, upstream LongCat) | zero (it outputs nothing [inf]).
// Params: num_experts, zero_expert_type. Inputs: hidden_states, topk_ids, topk_weights, routed
// (optional: the combine's output). Stages: zero_out (promoted dtype, BOUNDED: the sum over the
// slots has no fixed order), topk_ids (EXACT: zero experts -> 0), topk_weights (EXACT: -> 0),
// final (x dtype, BOUNDED). Bounds: docs/bounds.md (zero experts).
#include <string>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/zero_experts.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_zero_experts_compute {

constexpr const char* kOp = "zero_experts_compute";

std::map<std::string, Note> notes() {
  return {
      {"ZeroExpertType",
       {"DIVERGENCE",
        "A token routed to a zero expert with a nonzero weight: the identity type adds "
        "x * weight to the token's output (vllm-ascend zero_experts_compute), the zero type "
        "adds nothing [inf].",
        "A port dropping the zero experts' contribution (or adding it for the zero type)."}},
      {"Promotion",
       {"FUNCTIONALITY",
        "bf16 hidden states with bf16 weights: each product is rounded to bf16 (torch type "
        "promotion) before the sum; with fp32 weights the products and the sum are fp32 and "
        "the in-place add rounds fp32 -> bf16.",
        "Wrong promoted dtype of zero_out, or the products left unrounded."}},
      {"TwoSlots",
       {"BASIC",
        "Two zero-expert slots in one token: the sum over the slots (order unspecified) is "
        "BOUNDED.",
        "A slot dropped or counted twice."}},
      {"RoutedPath",
       {"FUNCTIONALITY",
        "Zero-expert ids become 0 and their weights 0.0 (so the dispatcher never sees an id >= "
        "num_experts); real experts keep theirs.",
        "Ids >= num_experts leaking to the dispatch, or real experts zeroed."}},
      {"NoZeroExpert",
       {"EDGE_CASE", "No token picked a zero expert: zero_out = 0 and final = routed exactly.",
        "Spurious contributions."}},
      {"Random", {"BASIC", "Seeded inputs over odd H.", "General coverage."}},
  };
}

ZeroExpertsArgs args_of(const Params& p, const TensorMap& in) {
  ZeroExpertsArgs a;
  auto get = [&](const char* n) -> const Tensor* {
    auto it = in.find(n);
    return it == in.end() ? nullptr : &it->second;
  };
  a.hidden = get("hidden_states");
  a.ids = get("topk_ids");
  a.weights = get("topk_weights");
  a.routed = get("routed");
  a.num_experts = param_int(p, "num_experts", 0);
  a.type = parse_zero_expert_type(param_str(p, "zero_expert_type", "identity"));
  return a;
}

Params params(int64_t num_experts, const char* type) {
  Params p = Params::object();
  p["num_experts"] = num_experts;
  p["zero_expert_type"] = type;
  return p;
}

Tensor floats(DType dt, Shape shape, const std::vector<float>& v) {
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

std::vector<CaseSpec> cases() {
  Builder b;
  // ---- identity vs zero: one zero-expert slot per token (E = 6, ids 6, 7 are zero experts) ----
  for (const char* type : {"identity", "zero"}) {
    TensorMap in;
    in["hidden_states"] = floats(DType::kBF16, {2, 8},
                                 {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 1.5f, -1.0f, 2.5f,  //
                                  4.0f, 0.75f, -3.0f, 0.125f, 2.0f, -0.5f, 1.25f, -4.0f});
    in["topk_ids"] = Tensor::from<int32_t>({2, 3}, {2, 6, 4, 7, 0, 5});
    in["topk_weights"] =
        floats(DType::kBF16, {2, 3}, {0.5f, 0.3125f, 0.1875f, 0.625f, 0.25f, 0.125f});
    in["routed"] = floats(DType::kBF16, {2, 8},
                          {0.5f, 0.25f, -1.0f, 2.0f, 1.0f, -0.5f, 0.0f, 3.0f,  //
                           -1.0f, 2.0f, 0.5f, 1.5f, -2.0f, 0.25f, 1.0f, 0.75f});
    b.add(std::string("identity_vs_zero_") + type,
          "num_experts 6; token 0 routes slot 1 to zero expert 6 (w 0.3125), token 1 slot 0 to "
          "zero expert 7 (w 0.625): identity adds x * w to routed, zero adds nothing",
          {"ZeroExpertType", "RoutedPath"}, params(6, type), std::move(in));
  }
  // ---- promotion: bf16 vs fp32 weights, full-mantissa products ----
  for (DType wdt : {DType::kBF16, DType::kF32}) {
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/promotion");
    TensorMap in;
    in["hidden_states"] =
        gen::float_tensor(DType::kBF16, {3, 9}, gen::FloatDist::normal(0), seed, 1);
    in["topk_ids"] = Tensor::from<int32_t>({3, 2}, {9, 1, 3, 8, 8, 2});
    in["topk_weights"] = floats(wdt, {3, 2}, {0.3f, 0.7f, 0.45f, 0.55f, 0.9f, 0.1f});
    in["routed"] = gen::float_tensor(DType::kBF16, {3, 9}, gen::FloatDist::normal(0), seed, 2);
    b.add(std::string("promotion_weights_") + (wdt == DType::kBF16 ? "bf16" : "fp32"),
          "bf16 x times weights 0.3 / 0.55 / 0.9 (inexact in bf16): products rounded to the "
          "promoted dtype",
          {"Promotion", "ZeroExpertType"}, params(8, "identity"), std::move(in));
  }
  // ---- two zero-expert slots in a token ----
  {
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/two_slots");
    TensorMap in;
    in["hidden_states"] =
        gen::float_tensor(DType::kF32, {2, 7}, gen::FloatDist::normal(0), seed, 1);
    in["topk_ids"] = Tensor::from<int32_t>({2, 3}, {4, 1, 5, 4, 5, 4});
    in["topk_weights"] = floats(DType::kF32, {2, 3}, {0.3f, 0.2f, 0.5f, 0.35f, 0.4f, 0.25f});
    in["routed"] = gen::float_tensor(DType::kF32, {2, 7}, gen::FloatDist::normal(0), seed, 2);
    b.add("two_slots_fp32",
          "num_experts 4: token 0 has zero experts 4 and 5, token 1 three zero-expert slots "
          "(4, 5, 4): the sum over the slots is bounded",
          {"TwoSlots"}, params(4, "identity"), std::move(in));
  }
  // ---- no zero expert selected ----
  {
    TensorMap in;
    in["hidden_states"] =
        floats(DType::kF16, {2, 4}, {1.0f, 2.0f, -3.0f, 0.5f, 4.0f, -1.0f, 0.25f, 8.0f});
    in["topk_ids"] = Tensor::from<int32_t>({2, 2}, {0, 3, 2, 1});
    in["topk_weights"] = floats(DType::kF16, {2, 2}, {0.75f, 0.25f, 0.5f, 0.5f});
    in["routed"] =
        floats(DType::kF16, {2, 4}, {0.5f, -0.5f, 1.5f, 2.5f, -4.0f, 3.0f, 0.125f, 1.0f});
    b.add("no_zero_expert_fp16", "num_experts 4, every id < 4: zero_out 0, final = routed",
          {"NoZeroExpert", "RoutedPath"}, params(4, "identity"), std::move(in));
  }
  // ---- random ----
  struct R {
    const char* name;
    DType xdt, wdt;
    int64_t t, h, k, e, z;
  };
  for (const R& c : {R{"random_bf16_fp32w_5x37", DType::kBF16, DType::kF32, 5, 37, 4, 12, 2},
                     R{"random_fp16_fp16w_6x19", DType::kF16, DType::kF16, 6, 19, 3, 8, 3},
                     R{"random_fp32_3x33", DType::kF32, DType::kF32, 3, 33, 2, 5, 1}}) {
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + c.name);
    TensorMap in;
    in["hidden_states"] = gen::float_tensor(c.xdt, {c.t, c.h}, gen::FloatDist::normal(0), seed, 1);
    in["routed"] = gen::float_tensor(c.xdt, {c.t, c.h}, gen::FloatDist::normal(0), seed, 2);
    in["topk_ids"] = gen::int_tensor(DType::kI32, {c.t, c.k}, 0, c.e + c.z - 1, seed, 3);
    in["topk_weights"] =
        gen::float_tensor(c.wdt, {c.t, c.k}, gen::FloatDist::grid(1, 1023, -10), seed, 4);
    b.add(c.name, "seeded ids over real and zero experts", {"Random"}, params(c.e, "identity"),
          std::move(in));
  }
  return b.v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    ZeroExpertsStages s = fn(args_of(p, in));
    out["zero_out"] = std::move(s.zero_out);
    out["topk_ids"] = std::move(s.ids);
    out["topk_weights"] = std::move(s.weights);
    if (s.final.numel()) out["final"] = std::move(s.final);
  };
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  const ZeroExpertsBounds b = ref::zero_experts_compute_bounds(args_of(p, in));
  std::map<std::string, Check> m;
  Check z;
  z.mode = CheckMode::kBounded;
  z.exact = b.zero_exact;
  z.bound = b.zero_bound;
  z.degenerate_ok = true;  // tokens without a zero expert contribute 0 by design
  m["zero_out"] = std::move(z);
  if (b.final_exact.numel()) {
    Check f;
    f.mode = CheckMode::kBounded;
    f.exact = b.final_exact;
    f.bound = b.final_bound;
    m["final"] = std::move(f);
  }
  m["topk_weights"].degenerate_ok = true;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "Zero (identity) experts after routing: zero_out[t] = sum over the slots with id >= "
      "num_experts of x[t] * w (products rounded to the promoted dtype, fp32 sum, order open: "
      "BOUNDED), their ids -> 0 and weights -> 0 (EXACT), final = routed + zero_out in x's "
      "dtype (BOUNDED). Variant axis zero_expert_type: identity | zero.";
  d.sources = {"vllm-ascend ops/fused_moe/experts_selector.py zero_experts_compute [code]",
               "seed 000 (W8A8 dynamic MoE: final_hidden_states += zero_expert_result) [code]",
               "notes/vllm_ascend_quant.md §C (after routing) [code]",
               "docs/bounds.md (zero experts)"};
  d.inputs = {"hidden_states", "topk_ids", "topk_weights", "routed"};
  d.stages = {{"zero_out", true, "[T, H] promoted dtype: the zero experts' contribution (bounded)"},
              {"topk_ids", true, "int32 [T, k]: zero-expert ids -> 0 (exact)"},
              {"topk_weights", true, "[T, k]: zero-expert weights -> 0 (exact)"},
              {"final", true, "[T, H] x dtype: routed + zero_out (bounded)"}};
  d.variants = {{"zero_expert_type",
                 {"identity", "zero"},
                 "identity: x * weight (vllm-ascend); zero: no contribution [inf]"}};
  d.notes = notes();
  d.reference = kernel([](const ZeroExpertsArgs& a) { return ref::zero_experts_compute(a); });
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel([](const ZeroExpertsArgs& a) { return opt::zero_experts_compute(a); });
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_zero_experts_compute
}  // namespace qconf::conf
