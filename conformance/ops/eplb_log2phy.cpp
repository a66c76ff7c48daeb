// Op: eplb_log2phy: vllm-ascend's static EPLB maps (eplb_utils.py init_eplb_config and
// generate_log2phy_map): per-rank expert maps from a placement, and the physical replica this
// rank sends each logical expert to (topk_ids = log2phy[topk_ids]).
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"

namespace qconf::conf {
namespace conformance_ops_eplb_log2phy {

constexpr const char* kOp = "eplb_log2phy";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"NoRedundancy",
       {"BASIC", "One replica per logical expert: log2phy is the expert's physical slot.",
        "Wrong physical numbering."}},
      {"PhysicalIdIsFlatSlot",
       {"FUNCTIONALITY",
        "physical id = local slot + rank * valid_count, valid_count = the experts on rank 0: "
        "the flat slot of the placement.",
        "Numbering by logical id, or by the rank's own count."}},
      {"ReplicaByRank",
       {"FUNCTIONALITY",
        "tp_size None (or 1): rank ep_rank takes replica ep_rank % replicas, replicas in rank "
        "order.",
        "Every rank choosing replica 0 (no balancing) or another order."}},
      {"ReplicaByTpDp",
       {"FUNCTIONALITY",
        "tp_size > 1: replica (ep_rank % tp_size + ep_rank // tp_size + logical id) % replicas.",
        "Ports that ignore tp_size or the logical-id offset."}},
      {"UnsortedPlacement",
       {"EDGE_CASE",
        "A placement whose ranks list experts out of order: the expert map holds slot "
        "positions, not sorted ranks.",
        "A port that sorts the placement."}},
      {"FromDefaultPlacement",
       {"BASIC", "Placements made by eplb_default_placement (vllm-ascend's default layout).",
        "The path vllm-ascend takes without an expert_map_path file."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec c(std::string name, std::string comment, std::vector<std::string> flags, Tensor placement,
           int64_t num_experts, int64_t ep_rank, int64_t tp_size) {
  CaseSpec s;
  s.name = std::move(name);
  s.comment = std::move(comment);
  s.flags = std::move(flags);
  s.params["num_experts"] = num_experts;
  s.params["ep_rank"] = ep_rank;
  s.params["tp_size"] = tp_size;
  s.inputs["global_placement"] = std::move(placement);
  return s;
}

Tensor rows(int64_t r, int64_t s, std::vector<int32_t> v) {
  return Tensor::from<int32_t>({r, s}, v);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const Tensor plain = ref::eplb_default_placement(8, 4, 0, 0);
  v.push_back(c("n8_ep4_rank2", "no redundancy: log2phy = arange(8)",
                {"NoRedundancy", "FromDefaultPlacement"}, plain, 8, 2, 0));
  const Tensor red = ref::eplb_default_placement(8, 4, 4, 0);  // [[0,1,2],[3,4,5],[6,7,0],[1,2,3]]
  for (int64_t r = 0; r < 4; ++r)
    v.push_back(c("n8_ep4_red4_rank" + std::to_string(r),
                  "experts 0..3 have two replicas; replica ep_rank % 2",
                  {"ReplicaByRank", "PhysicalIdIsFlatSlot", "FromDefaultPlacement"}, red, 8, r, 0));
  for (int64_t r : {1, 2, 3})
    v.push_back(c("n8_ep4_red4_tp2_rank" + std::to_string(r),
                  "tp_size 2: replica (r % 2 + r / 2 + l) % 2",
                  {"ReplicaByTpDp", "FromDefaultPlacement"}, red, 8, r, 2));
  const Tensor shuffled = rows(3, 3, {3, 0, 5, 1, 4, 2, 5, 3, 0});
  v.push_back(c("shuffled_rank2", "[[3,0,5],[1,4,2],[5,3,0]]: three replicas of 0, 3, 5",
                {"UnsortedPlacement", "ReplicaByRank", "PhysicalIdIsFlatSlot"}, shuffled, 6, 2, 0));
  v.push_back(c("shuffled_tp3_rank1", "[[3,0,5],[1,4,2],[5,3,0]], tp_size 3",
                {"UnsortedPlacement", "ReplicaByTpDp"}, shuffled, 6, 1, 3));
  v.push_back(c("mix_n8_shared2_ep4_red4_rank1",
                "mix placement [[0,1,2,8],[2,3,4,9],[4,5,6,8],[6,7,0,9]], 10 experts",
                {"FromDefaultPlacement", "ReplicaByRank"}, ref::eplb_default_placement(10, 4, 4, 2),
                10, 1, 0));
  return v;
}

template <typename MapFn, typename L2pFn>
Kernel kernel(MapFn map_fn, L2pFn l2p_fn) {
  return [map_fn, l2p_fn](const Params& p, const TensorMap& in, TensorMap& out) {
    Tensor m = map_fn(in.at("global_placement"), param_int(p, "num_experts", 0));
    out["log2phy"] = l2p_fn(m, param_int(p, "ep_rank", 0), param_int(p, "tp_size", 0));
    out["global_expert_map"] = std::move(m);
  };
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend static EPLB maps: global_expert_map int32 [ep_size, num_experts] (per rank: "
      "expert_map[placement[r][j]] = j, else -1) and log2phy int32 [num_experts] (this rank's "
      "physical replica of each logical expert: physical = slot + rank * valid_count; replica "
      "ep_rank % replicas, or (tp_rank + dp_like_rank + l) % replicas when tp_size > 1). Input "
      "global_placement int32 [ep_size, slots]; params num_experts, ep_rank, tp_size (0 or 1: "
      "None).";
  d.sources = {
      "vllm-ascend vllm_ascend/eplb/core/eplb_utils.py init_eplb_config, "
      "generate_log2phy_map @182b75e [code]",
      "vllm-ascend vllm_ascend/ops/fused_moe/routed_experts.py (topk_ids = "
      "log2phy[topk_ids]) [code]",
      "notes/vllm_ascend_quant.md §C (after routing)"};
  d.inputs = {"global_placement"};
  d.stages = {{"global_expert_map", true, "int32 [ep_size, num_experts]"},
              {"log2phy", true, "int32 [num_experts]"}};
  d.notes = notes();
  d.reference = kernel(ref::eplb_global_expert_map, ref::eplb_log2phy);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::eplb_global_expert_map, opt::eplb_log2phy);
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_eplb_log2phy
}  // namespace qconf::conf
