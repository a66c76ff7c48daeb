// Op: moe_force_load_balance, the ids vllm-ascend uses in profile runs with force load balance:
// ids = argsort(rand(T, E))[:, :k] (notes/vllm_ascend_quant.md §C "After routing"). torch.rand
// is replaced by the project's Philox stream so the ids are reproducible:
// u[t, e] = rng::uniform01_at(seed_from_string(seed_key), 0, t * E + e), ascending, ties to the
// lower id (docs/rng.md). No inputs; params tokens, experts, top_k, seed_key. Stage topk_ids
// (int32 [T, k], EXACT).
#include "qconf/conformance/op.h"
#include "qconf/ops/routing.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_moe_force_load_balance {

constexpr const char* kOp = "moe_force_load_balance";

Params params(int64_t t, int64_t e, int64_t k, const char* key) {
  Params p = Params::object();
  p["tokens"] = t;
  p["experts"] = e;
  p["top_k"] = k;
  p["seed_key"] = key;
  return p;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  struct C {
    const char* name;
    int64_t t, e, k;
  };
  for (const C& c : {C{"deepseek_v3_16x256_top8", 16, 256, 8}, C{"small_5x7_top3", 5, 7, 3},
                     C{"all_experts_3x4_top4", 3, 4, 4}}) {
    CaseSpec s;
    s.name = c.name;
    s.comment = "Philox-driven argsort of uniforms, first k";
    s.flags = {"ForceLoadBalance"};
    s.params = params(c.t, c.e, c.k, c.name);
    v.push_back(std::move(s));
  }
  return v;
}

void reference(const Params& p, const TensorMap&, TensorMap& out) {
  out["topk_ids"] = force_load_balance_ids(param_int(p, "tokens", 1), param_int(p, "experts", 1),
                                           param_int(p, "top_k", 1),
                                           rng::seed_from_string(param_str(p, "seed_key", "")));
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "Force load balance (profile runs): topk_ids = argsort(rand(T, E))[:, :k] with rand from "
      "the project's Philox stream (u[t, e] = uniform01_at(seed_from_string(seed_key), 0, "
      "t * E + e)), ascending, ties to the lower id. Params tokens, experts, top_k, seed_key.";
  d.sources = {"notes/vllm_ascend_quant.md §C (After routing: force load balance) [code]",
               "docs/rng.md"};
  d.inputs = {};
  d.stages = {{"topk_ids", true, "int32 [T, k]: distinct ids per token"}};
  d.notes = {
      {"ForceLoadBalance",
       {"FUNCTIONALITY", "Reproducible random ids; torch.rand replaced by the project's generator.",
        "Ids that repeat within a token or leave [0, E)."}}};
  d.reference = reference;
  d.optimized = reference;  // the same deterministic draw; nothing to optimize
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_moe_force_load_balance
}  // namespace qconf::conf
