// Op: determine_expert_map (vLLM, used by vllm-ascend when EPLB is off): the expert-parallel
// placement of E experts over ep_size ranks, as rank ep_rank sees it.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"

namespace qconf::conf {
namespace conformance_ops_determine_expert_map {

constexpr const char* kOp = "determine_expert_map";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"EvenSplit",
       {"BASIC", "E divisible by ep_size: rank r holds experts [r E/P, (r+1) E/P) as slots 0..",
        "Wrong slot numbering or wrong block: tokens reach the wrong expert weights."}},
      {"RemainderFirstRanks",
       {"DIVERGENCE",
        "E % ep_size != 0, current vLLM (expert_map_manager.py): ranks r < E % P hold one "
        "expert more, starting at r * (E / P) + min(r, E % P). E = 10, P = 4: sizes 3, 3, 2, 2. "
        "The docstring still says the remainder goes to the last rank.",
        "A port following the docstring (or old vLLM) disagrees on every rank: 2, 2, 2, 4."}},
      {"LegacyLastRank",
       {"LEGACY",
        "Legacy vLLM (fused_moe/layer.py): every rank but the last holds E / P experts, the "
        "last holds the rest. E = 10, P = 4: sizes 2, 2, 2, 4.",
        "Pins the old placement for checkpoints/configs produced with it."}},
      {"RoundRobin",
       {"FUNCTIONALITY",
        "strategy round_robin: rank r holds experts r, r + P, r + 2P, ... as slots 0, 1, ...",
        "A port that numbers slots by block instead of by stride."}},
      {"FewerExpertsThanRanks",
       {"EDGE_CASE",
        "E < ep_size: current vLLM gives one expert to each of the first E ranks and none to the "
        "others (map all -1, local_num_experts 0); legacy vLLM puts all E on the last rank.",
        "Division by zero or negative sizes in ports."}},
      {"EpSizeOne",
       {"EDGE_CASE",
        "ep_size 1: upstream returns (E, None), every expert local; qconf writes the identity "
        "map.",
        "A port that builds a -1 map for a single rank drops every token."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec c(std::string name, std::string comment, std::vector<std::string> flags, int64_t ep_size,
           int64_t ep_rank, int64_t e, const std::string& strategy = "linear",
           const std::string& remainder = "first_ranks") {
  CaseSpec s;
  s.name = std::move(name);
  s.comment = std::move(comment);
  s.flags = std::move(flags);
  s.params["ep_size"] = ep_size;
  s.params["ep_rank"] = ep_rank;
  s.params["global_num_experts"] = e;
  s.params["strategy"] = strategy;
  s.params["remainder"] = remainder;
  return s;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(c("even_256_ep16_rank5", "experts 80..95 -> slots 0..15", {"EvenSplit"}, 16, 5, 256));
  v.push_back(c("even_8_ep2_rank1", "experts 4..7 -> slots 0..3", {"EvenSplit"}, 2, 1, 8));
  for (int64_t r = 0; r < 4; ++r) {
    const std::string rs = std::to_string(r);
    v.push_back(c("remainder_10_ep4_rank" + rs, "current vLLM: sizes 3, 3, 2, 2",
                  {"RemainderFirstRanks"}, 4, r, 10));
    v.push_back(c("legacy_10_ep4_rank" + rs, "legacy vLLM: sizes 2, 2, 2, 4",
                  {"LegacyLastRank", "RemainderFirstRanks"}, 4, r, 10, "linear", "last_rank"));
    v.push_back(c("round_robin_10_ep4_rank" + rs, "experts r, r+4, r+8", {"RoundRobin"}, 4, r, 10,
                  "round_robin"));
  }
  v.push_back(c("round_robin_256_ep16_rank5", "experts 5, 21, ..., 245", {"RoundRobin"}, 16, 5, 256,
                "round_robin"));
  v.push_back(c("fewer_experts_3_ep4_rank0", "current vLLM: expert 0 only",
                {"FewerExpertsThanRanks"}, 4, 0, 3));
  v.push_back(c("fewer_experts_3_ep4_rank3", "current vLLM: no expert", {"FewerExpertsThanRanks"},
                4, 3, 3));
  v.push_back(c("legacy_fewer_experts_3_ep4_rank3", "legacy vLLM: all three experts",
                {"FewerExpertsThanRanks", "LegacyLastRank"}, 4, 3, 3, "linear", "last_rank"));
  v.push_back(c("ep_size_one", "identity over 8 experts", {"EpSizeOne"}, 1, 0, 8));
  return v;
}

ExpertPlacementStrategy strategy_of(const Params& p) {
  const std::string s = param_str(p, "strategy", "linear");
  if (s == "linear") return ExpertPlacementStrategy::kLinear;
  if (s == "round_robin") return ExpertPlacementStrategy::kRoundRobin;
  throw std::invalid_argument(std::string(kOp) +
                              ": param strategy must be linear or round_robin, got " + s);
}

ExpertRemainderRule remainder_of(const Params& p) {
  const std::string s = param_str(p, "remainder", "first_ranks");
  if (s == "first_ranks") return ExpertRemainderRule::kFirstRanks;
  if (s == "last_rank") return ExpertRemainderRule::kLastRank;
  throw std::invalid_argument(std::string(kOp) +
                              ": param remainder must be first_ranks or last_rank, got " + s);
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap&, TensorMap& out) {
    ExpertMap m = fn(param_int(p, "ep_size", 1), param_int(p, "ep_rank", 0),
                     param_int(p, "global_num_experts", 0), strategy_of(p), remainder_of(p));
    out["local_num_experts"] =
        Tensor::from<int64_t>(Shape{}, std::vector<int64_t>{m.local_num_experts});
    out["expert_map"] = std::move(m.map);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  // A rank without experts has local_num_experts 0 on purpose.
  if (out.at("local_num_experts").data<int64_t>()[0] == 0)
    m["local_num_experts"].degenerate_ok = true;
  return m;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vLLM determine_expert_map(ep_size, ep_rank, global_num_experts, strategy): "
      "local_num_experts and expert_map int32 [E] (global id -> local slot, -1 elsewhere). "
      "No inputs; params ep_size, ep_rank, global_num_experts, strategy (linear, round_robin), "
      "remainder (first_ranks: current vLLM; last_rank: legacy vLLM). ep_size 1: identity.";
  d.sources = {
      "vLLM vllm/model_executor/layers/fused_moe/expert_map_manager.py "
      "determine_expert_map @04d26335 [code]",
      "legacy vLLM vllm/model_executor/layers/fused_moe/layer.py determine_expert_map "
      "[code]",
      "vllm-ascend vllm_ascend/eplb/core/eplb_utils.py init_eplb_config (EPLB off) "
      "@182b75e [code]",
      "notes/vllm_ascend_quant.md §C (expert_map in dispatch)"};
  d.inputs = {};
  d.stages = {{"local_num_experts", true, "int64 scalar: experts on this rank"},
              {"expert_map", true, "int32 [E]: local slot of each global expert, or -1"}};
  d.variants = {{"remainder",
                 {"first_ranks", "last_rank"},
                 "who holds E % ep_size: the first ranks (current vLLM) or the last (legacy)"},
                {"strategy", {"linear", "round_robin"}, "contiguous blocks or strided"}};
  d.notes = notes();
  d.reference = kernel(ref::determine_expert_map);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::determine_expert_map);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_determine_expert_map
}  // namespace qconf::conf
