// Op: eplb_map_to_physical: logical top-k expert ids -> physical replica ids under dynamic
// EPLB, as vllm-ascend (periodic replica routing table) or upstream vLLM (flat position
// modulo the replica count) choose the replica.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_eplb_map_to_physical {

constexpr const char* kOp = "eplb_map_to_physical";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"UpstreamUnitTestLiteral",
       {"BASIC",
        "vllm-ascend tests/ut/ops/test_eplb.py test_map_to_physical_uses_periodic_rows: the "
        "unit-test L2P and counts, rank 0, 1025 rows of ids (0, 1): physical[0, 0] = 0, "
        "physical[1023, 0] = 4, row 1024 = row 0. (Upstream uses int64 ids; int32 here keeps "
        "the fixture small: the mapping is the same.)",
        "A port that disagrees with upstream's own unit test."}},
      {"PeriodicRows",
       {"FUNCTIONALITY",
        "Token row t uses routing-table row t % 1024: full blocks of 1024 rows, then the tail.",
        "A port that indexes the table by t (out of bounds) or by the flat position."}},
      {"PeriodVsDirectModulo",
       {"FUNCTIONALITY",
        "Replica counts that do not divide 1024 (3 here), past row 1024: (t % 1024 + ep_rank + "
        "l) % count differs from (t + ep_rank + l) % count. The upstream unit-test vector uses "
        "counts 2 and 1, which divide 1024, so it cannot tell the two apart.",
        "A port that computes the replica slot directly from t, without the 1024-row table, "
        "routes rows >= 1024 to other replicas (found by the mutation catalogue, "
        "tests/mutants/)."}},
      {"ReplicaSelectDivergence",
       {"DIVERGENCE",
        "vllm-ascend picks replica (t % 1024 + ep_rank + l) % max(count, 1) by token row; "
        "upstream vLLM (router/base_router.py) picks (t * k + j) % count by flat position and "
        "ignores the rank. The same inputs under both readings give different ids.",
        "A port of one reading routes tokens to other replicas than the other: the outputs "
        "match, the load balance and the replica traffic do not."}},
      {"Int64Ids",
       {"FUNCTIONALITY", "int64 topk_ids: the output keeps the input dtype.",
        "Narrowing or widening the ids."}},
      {"Random",
       {"BASIC", "Seeded ids over 8 logical experts with 1 to 3 replicas each, odd token counts.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from<int64_t>(std::move(s), v); }

CaseSpec c(std::string name, std::string comment, std::vector<std::string> flags, Tensor ids,
           Tensor l2p, Tensor count, int64_t ep_rank, const std::string& select) {
  CaseSpec s;
  s.name = std::move(name);
  s.comment = std::move(comment);
  s.flags = std::move(flags);
  s.params["ep_rank"] = ep_rank;
  s.params["replica_select"] = select;
  s.inputs["topk_ids"] = std::move(ids);
  s.inputs["logical_to_physical_map"] = std::move(l2p);
  s.inputs["logical_replica_count"] = std::move(count);
  return s;
}

// 8 logical experts, 3 replica columns: expert l has count 1 + (l % 3) replicas with physical
// ids l, 8 + l, 16 + l; unused columns hold -1.
void random_tables(Tensor* l2p, Tensor* count) {
  std::vector<int64_t> m, cnt;
  for (int64_t l = 0; l < 8; ++l) {
    cnt.push_back(1 + l % 3);
    for (int64_t r = 0; r < 3; ++r) m.push_back(r < cnt.back() ? 8 * r + l : -1);
  }
  *l2p = i64({8, 3}, m);
  *count = i64({8}, cnt);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const Tensor ut_map = i64({3, 3}, {0, 4, -1, 1, 5, -1, 2, -1, -1});
  const Tensor ut_count = i64({3}, {2, 2, 1});
  {
    std::vector<int32_t> ids;
    for (int64_t t = 0; t < kExpertReplicaRoutingTableRows + 1; ++t) {
      ids.push_back(0);
      ids.push_back(1);
    }
    v.push_back(c("ut_periodic_rows_rank0",
                  "1025 rows of (0, 1): [0,0]=0, [1023,0]=4, row 1024 = row 0",
                  {"UpstreamUnitTestLiteral", "PeriodicRows"},
                  Tensor::from<int32_t>({kExpertReplicaRoutingTableRows + 1, 2}, ids), ut_map,
                  ut_count, 0, "ascend_routing_table"));
  }
  {
    // Experts 0 (3 replicas) and 1 (2 replicas), rank 1: row 1024 maps expert 0 to replica
    // (0 + 1 + 0) % 3 = 1 (physical 7), a direct (1024 + 1) % 3 = 2 would give physical 8.
    std::vector<int32_t> ids;
    for (int64_t t = 0; t < kExpertReplicaRoutingTableRows + 6; ++t) {
      ids.push_back(0);
      ids.push_back(1);
    }
    v.push_back(c("period_vs_direct_modulo_3_replicas",
                  "1030 rows of (0, 1), expert 0 with 3 replicas (6, 7, 8), rank 1: rows >= 1024 "
                  "restart the table; 1024 % 3 != 0 separates t % 1024 from t",
                  {"PeriodicRows", "PeriodVsDirectModulo"},
                  Tensor::from<int32_t>({kExpertReplicaRoutingTableRows + 6, 2}, ids),
                  i64({2, 3}, {6, 7, 8, 3, 4, -1}), i64({2}, {3, 2}), 1, "ascend_routing_table"));
  }
  const Tensor small = i64({6, 2}, {0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1, 1});
  for (const std::string sel : {"ascend_routing_table", "vllm_flat_position"})
    for (int64_t r : {0, 1})
      v.push_back(c("ut_tables_6x2_rank" + std::to_string(r) + "_" + sel,
                    "ids [[0,1],[0,1],[2,0],[1,2],[0,0],[1,1]] over the unit-test tables",
                    {"ReplicaSelectDivergence", "Int64Ids"}, small, ut_map, ut_count, r, sel));
  Tensor l2p, count;
  random_tables(&l2p, &count);
  for (const std::string sel : {"ascend_routing_table", "vllm_flat_position"}) {
    const std::string name = "random_37x4_rank3_" + sel;
    Tensor ids = gen::int_tensor(DType::kI64, {37, 4}, 0, 7,
                                 rng::seed_from_string(std::string(kOp) + "/random_37x4"), 0);
    v.push_back(c(name, "37 tokens, top-4 of 8 experts with 1..3 replicas",
                  {"Random", "ReplicaSelectDivergence", "Int64Ids"}, std::move(ids), l2p, count, 3,
                  sel));
  }
  {
    const std::string name = "random_1030x2_rank2_int32";
    Tensor ids = gen::int_tensor(DType::kI32, {1030, 2}, 0, 7,
                                 rng::seed_from_string(std::string(kOp) + "/" + name), 0);
    v.push_back(c(name, "1030 tokens: one full 1024-row block and a 6-row tail",
                  {"Random", "PeriodicRows"}, std::move(ids), l2p, count, 2,
                  "ascend_routing_table"));
  }
  return v;
}

ReplicaSelect select_of(const Params& p) {
  const std::string s = param_str(p, "replica_select", "ascend_routing_table");
  if (s == "ascend_routing_table") return ReplicaSelect::kAscendRoutingTable;
  if (s == "vllm_flat_position") return ReplicaSelect::kVllmFlatPosition;
  throw std::invalid_argument(
      std::string(kOp) +
      ": param replica_select must be ascend_routing_table or vllm_flat_position, got " + s);
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    out["physical_ids"] =
        fn(in.at("topk_ids"), in.at("logical_to_physical_map"), in.at("logical_replica_count"),
           param_int(p, "ep_rank", 0), select_of(p));
  };
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "Dynamic EPLB: topk_ids int32/int64 [T, k] (logical) -> physical ids, same dtype and "
      "shape. replica_select ascend_routing_table (vllm-ascend): L2P[l, (t % 1024 + ep_rank + "
      "l) % max(count[l], 1)]; vllm_flat_position (upstream vLLM): L2P[l, (t * k + j) % "
      "count[l]]. Inputs logical_to_physical_map int64 [L, R], logical_replica_count int64 "
      "[L]; params ep_rank, replica_select.";
  d.sources = {"vllm-ascend vllm_ascend/ops/fused_moe/eplb.py map_to_physical @182b75e [code]",
               "vllm-ascend tests/ut/ops/test_eplb.py [test]",
               "vLLM vllm/model_executor/layers/fused_moe/router/base_router.py "
               "eplb_map_to_physical_and_record [code]",
               "notes/vllm_ascend_quant.md §C (after routing), §E"};
  d.inputs = {"topk_ids", "logical_to_physical_map", "logical_replica_count"};
  d.stages = {{"physical_ids", true, "physical expert ids, same dtype and shape as topk_ids"}};
  d.variants = {{"replica_select",
                 {"ascend_routing_table", "vllm_flat_position"},
                 "which replica a token uses: by token row through the 1024-row table "
                 "(vllm-ascend) or by flat position (upstream vLLM)"}};
  d.notes = notes();
  d.reference = kernel(ref::eplb_map_to_physical);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::eplb_map_to_physical);
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_eplb_map_to_physical
}  // namespace qconf::conf
