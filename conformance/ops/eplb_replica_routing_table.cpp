// Op: eplb_replica_routing_table: vllm-ascend's dynamic-EPLB replica table
// (ops/fused_moe/eplb.py build_expert_replica_routing_table), periodic in 1024 token rows.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"

namespace qconf::conf {
namespace conformance_ops_eplb_replica_routing_table {

constexpr const char* kOp = "eplb_replica_routing_table";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"UpstreamUnitTestLiteral",
       {"BASIC",
        "vllm-ascend tests/ut/ops/test_eplb.py (notes/vllm_ascend_quant.md §E): L2P [[0,4,-1], "
        "[1,5,-1], [2,-1,-1]], counts [2,2,1]: shape (1024, 3) int32, row 0 = [0,5,2] at rank 0 "
        "and [4,1,2] at rank 1, and rank 0's row 1 equals rank 1's row 0.",
        "A port that disagrees with upstream's own unit test."}},
      {"RankAndExpertOffset",
       {"FUNCTIONALITY",
        "table[t, l] = L2P[l, (t + ep_rank + l) % max(count[l], 1)]: both the rank and the "
        "logical id shift the replica index, so ranks and experts start on different replicas.",
        "Dropping either offset sends every rank's first token to the same replica."}},
      {"ZeroReplicaClamp",
       {"EDGE_CASE", "count 0 is clamped to 1 (clamp_min): the column repeats L2P[l, 0].",
        "Division by zero or a -1 physical id."}},
      {"LargeRank",
       {"EDGE_CASE", "ep_rank larger than the replica counts: only its residue matters.",
        "Overflow or a missing modulo in ports that precompute ep_rank + l."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from<int64_t>(std::move(s), v); }

CaseSpec c(std::string name, std::string comment, std::vector<std::string> flags, Tensor l2p,
           Tensor count, int64_t ep_rank) {
  CaseSpec s;
  s.name = std::move(name);
  s.comment = std::move(comment);
  s.flags = std::move(flags);
  s.params["ep_rank"] = ep_rank;
  s.inputs["logical_to_physical_map"] = std::move(l2p);
  s.inputs["logical_replica_count"] = std::move(count);
  return s;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const Tensor ut_map = i64({3, 3}, {0, 4, -1, 1, 5, -1, 2, -1, -1});
  const Tensor ut_count = i64({3}, {2, 2, 1});
  v.push_back(c("ut_rank0", "row 0 = [0, 5, 2]", {"UpstreamUnitTestLiteral", "RankAndExpertOffset"},
                ut_map, ut_count, 0));
  v.push_back(c("ut_rank1", "row 0 = [4, 1, 2] = rank 0's row 1",
                {"UpstreamUnitTestLiteral", "RankAndExpertOffset"}, ut_map, ut_count, 1));
  v.push_back(c("three_replicas_zero_count_rank7",
                "L2P [[10,11,12],[20,-1,-1]], counts [3, 0], ep_rank 7",
                {"RankAndExpertOffset", "ZeroReplicaClamp", "LargeRank"},
                i64({2, 3}, {10, 11, 12, 20, -1, -1}), i64({2}, {3, 0}), 7));
  return v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    out["routing_table"] = fn(in.at("logical_to_physical_map"), in.at("logical_replica_count"),
                              param_int(p, "ep_rank", 0));
  };
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend build_expert_replica_routing_table(L2P int64 [L, R], count int64 [L], "
      "ep_rank) -> int32 [1024, L]: table[t, l] = L2P[l, (t + ep_rank + l) % max(count[l], 1)]. "
      "Param ep_rank.";
  d.sources = {
      "vllm-ascend vllm_ascend/ops/fused_moe/eplb.py build_expert_replica_routing_table "
      "@182b75e [code]",
      "vllm-ascend tests/ut/ops/test_eplb.py [test]",
      "notes/vllm_ascend_quant.md §C (after routing), §E"};
  d.inputs = {"logical_to_physical_map", "logical_replica_count"};
  d.stages = {{"routing_table", true, "int32 [1024, L]"}};
  d.notes = notes();
  d.reference = kernel(ref::eplb_replica_routing_table);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::eplb_replica_routing_table);
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_eplb_replica_routing_table
}  // namespace qconf::conf
