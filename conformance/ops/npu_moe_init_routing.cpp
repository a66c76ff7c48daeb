// Op: npu_moe_init_routing (v1): stable sort of the flat expert ids, expanded_expert_idx,
// expanded_row_idx indexed by the (k-major) row_idx value, expanded_x for the first
// min(N, active_num) * K rows. Math in reference/ops/dispatch.cpp and optimized/ops/dispatch.cpp.
#include <string>
#include <vector>

#include "dispatch_cases.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/dispatch.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_moe_init_routing {

namespace dc = conformance_ops_dispatch_cases;
constexpr const char* kOp = "npu_moe_init_routing";

std::map<std::string, Note> notes() {
  return {
      {"StableSortSeparator",
       {"DIVERGENCE",
        "One expert chosen by several tokens at different k slots. The doc reference code "
        "sorts expert_idx.flatten() stably: ties in token-major order t*K + j "
        "(tie_order=flat_position). A kernel sorting (expert, row_idx) pairs breaks ties by the "
        "k-major row_idx value j*N + t (tie_order=row_idx_value) [inf]. The two give different "
        "expanded_x / expanded_row_idx on these vectors.",
        "An unstable sort fails both readings."}},
      {"KMajorRowIdx",
       {"FUNCTIONALITY",
        "row_idx from npu_moe_gating_top_k_softmax is k-major (row_idx[t, j] = j*N + t); "
        "expanded_row_idx is indexed by that value, and expanded_x[i] = x[row_idx % N].",
        "Indexing expanded_row_idx by the token-major position, or x by row_idx / K."}},
      {"ActiveNum",
       {"EDGE_CASE", "active_num below N: only the first active_num * K rows of expanded_x.",
        "A port writing all N*K rows has the wrong shape."}},
      {"Random",
       {"BASIC", "Seeded top-k ids and rows over tokens 1, 7, 33, 128, experts 8-256, k 1-8.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(int64_t active_num, const char* order) {
  Params p = Params::object();
  p["active_num"] = active_num;
  p["tie_order"] = order;
  return p;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const std::string o = std::string(kOp) + "/";
  const Tensor dup = dc::i32({4, 2}, {1, 0, 0, 1, 1, 2, 2, 1});
  const Tensor x4 = gen::float_tensor(DType::kF16, {4, 8}, gen::FloatDist::grid(-64, 63, -4),
                                      rng::seed_from_string(o + "dup"), 0);
  for (const char* ord : {"flat_position", "row_idx_value"})
    v.push_back(
        dc::make_case(std::string("stable_dup_experts_") + ord,
                      "ids [[1,0],[0,1],[1,2],[2,1]]: expert 1 is t0,t1,t2,t3 "
                      "token-major and t0,t2,t1,t3 by row_idx value",
                      {"StableSortSeparator", "KMajorRowIdx"}, params(4, ord),
                      {{"x", x4}, {"row_idx", dc::k_major_row_idx(4, 2)}, {"expert_idx", dup}}));
  v.push_back(
      dc::make_case("active_num_2_of_4", "active_num 2: 4 rows of expanded_x",
                    {"ActiveNum", "KMajorRowIdx"}, params(2, "flat_position"),
                    {{"x", x4}, {"row_idx", dc::k_major_row_idx(4, 2)}, {"expert_idx", dup}}));
  struct R {
    int64_t n, e, k, h;
    DType dt;
  };
  for (const R& r : {R{1, 8, 1, 16, DType::kF16}, R{7, 16, 2, 17, DType::kBF16},
                     R{33, 64, 8, 9, DType::kF32}, R{128, 256, 2, 8, DType::kF16}}) {
    const std::string name = "random_n" + std::to_string(r.n) + "_e" + std::to_string(r.e) + "_k" +
                             std::to_string(r.k) + "_h" + std::to_string(r.h);
    v.push_back(
        dc::make_case(name, "seeded", {"Random", "KMajorRowIdx"}, params(r.n, "flat_position"),
                      {{"x", gen::float_tensor(r.dt, {r.n, r.h}, gen::FloatDist::normal(0),
                                               rng::seed_from_string(o + name), 0)},
                       {"row_idx", dc::k_major_row_idx(r.n, r.k)},
                       {"expert_idx", dc::random_topk_ids(o + name + "/ids", r.n, r.k, r.e)}}));
  }
  return v;
}

InitRoutingV1Config config(const Params& p) {
  InitRoutingV1Config c;
  c.active_num = param_int(p, "active_num", 0);
  c.tie_order = parse_routing_tie_order(param_str(p, "tie_order", "flat_position"));
  return c;
}

void emit(InitRoutingV1Stages s, TensorMap& out) {
  out["sorted_position"] = std::move(s.sorted_position);
  out["expanded_expert_idx"] = std::move(s.expanded_expert_idx);
  out["expanded_row_idx"] = std::move(s.expanded_row_idx);
  out["expanded_x"] = std::move(s.expanded_x);
}

OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_moe_init_routing(x, row_idx, expert_idx, active_num): perm = stable "
      "argsort of the flat expert ids; expanded_expert_idx = sorted ids; expanded_row_idx"
      "[row_idx[perm[i]]] = i; expanded_x[i] = x[row_idx[perm[i]] % N] for the first "
      "min(N, active_num) * K rows. Variant tie_order (flat_position | row_idx_value). EXACT.";
  d.sources = {"notes/torch_npu_semantics.md §8 (v1 doc reference code), §7 (row_idx k-major)"};
  d.inputs = {"x", "row_idx", "expert_idx"};
  d.stages = {{"sorted_position", false, "int32 [N*K] flat positions in sorted order"},
              {"expanded_expert_idx", true, "int32 [N*K]"},
              {"expanded_row_idx", true, "int32 [N*K], indexed by the row_idx value"},
              {"expanded_x", true, "x dtype [min(N, active_num) * K, H]"}};
  d.variants = {{"tie_order",
                 {"flat_position", "row_idx_value"},
                 "ties between equal expert ids: token-major flat position (doc) or the row_idx "
                 "value (k-major) [inf]"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    emit(ref::npu_moe_init_routing(in.at("x"), in.at("row_idx"), in.at("expert_idx"), config(p)),
         out);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    emit(opt::npu_moe_init_routing(in.at("x"), in.at("row_idx"), in.at("expert_idx"), config(p)),
         out);
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_npu_moe_init_routing
}  // namespace qconf::conf
