// Op: npu_moe_token_unpermute (the combine vllm-ascend uses after init_routing_v2):
// out[i] = sum_j probs[i,j] * T[S[i*K + j]] (aclnn doc: index_select, then a weighted sum over
// the token's K rows); probs None: K = 1, a pure gather. BOUNDED / EXACT as finalize_routing.
// Math in reference/ops/dispatch.cpp and optimized/ops/dispatch.cpp.
#include <string>
#include <vector>

#include "dispatch_cases.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/dispatch.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_moe_token_unpermute {

namespace dc = conformance_ops_dispatch_cases;
constexpr const char* kOp = "npu_moe_token_unpermute";

std::map<std::string, Note> notes() {
  return {
      {"IndexForm",
       {"DIVERGENCE",
        "sorted_indices read as a gather (T[k] = T[S[k]], aclnnMoeTokenUnpermute doc; "
        "vllm-ascend passes the gather-form expanded_row_idx) or as a scatter "
        "(out_flat[S[m]] = T[m], Megatron-style unpermute) [inf]. A 3-cycle separates them.",
        "A port with the other reading returns other tokens' rows."}},
      {"NoProbs",
       {"BASIC", "probs None: K = 1, out = T[S[i]] (a copy: EXACT).",
        "Any arithmetic on the copy."}},
      {"RoundTrip",
       {"BASIC",
        "The rows of npu_moe_init_routing_v2 (all experts active) combined with its gather-form "
        "expanded_row_idx and one-hot or power-of-two probs give back x (scaled): EXACT.",
        "unpermute(permute(x)) != x."}},
      {"BoundedSum",
       {"BASIC", "Full-mantissa rows and probs: BOUNDED (docs/bounds.md).",
        "A wrong row or prob fails; another summation order passes."}},
      {"Random",
       {"BASIC", "Seeded permutations and rows over tokens 1-128, k 1-8.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Tensor seeded_perm(const std::string& seed, int64_t nk) {
  std::vector<int32_t> v(static_cast<size_t>(nk));
  for (int64_t i = 0; i < nk; ++i) v[i] = static_cast<int32_t>(i);
  const uint64_t s = rng::seed_from_string(seed);
  for (int64_t i = nk - 1; i > 0; --i) {
    const Tensor d = gen::int_tensor(DType::kI64, {1}, 0, i, s, i);
    std::swap(v[i], v[d.data<int64_t>()[0]]);
  }
  return Tensor::from<int32_t>({nk}, v);
}

Params params(const char* form, const char* acc = "fp32") {
  Params p = Params::object();
  p["index_form"] = form;
  p["acc_precision"] = acc;
  return p;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const std::string o = std::string(kOp) + "/";
  // The gather/scatter separator: S = (1 2 0) on 3 tokens, K = 1, no probs.
  const Tensor t3 = gen::float_tensor(DType::kBF16, {3, 4}, gen::FloatDist::grid(-100, 100, -3),
                                      rng::seed_from_string(o + "cycle"), 0);
  for (const char* f : {"gather", "scatter"})
    v.push_back(dc::make_case(
        std::string("cycle_no_probs_") + f, "S = [1, 2, 0], K = 1", {"IndexForm", "NoProbs"},
        params(f), {{"permuted_tokens", t3}, {"sorted_indices", dc::i32({3}, {1, 2, 0})}}));
  // Round trip through init_routing_v2: x, ids -> expanded_x, expanded_row_idx (all active).
  for (int64_t k : {1, 2, 8}) {
    const int64_t n = 7, h = 6, e = 8;
    const std::string nm = "round_trip_k" + std::to_string(k);
    const Tensor x = gen::float_tensor(DType::kF16, {n, h}, gen::FloatDist::normal(0),
                                       rng::seed_from_string(o + nm), 0);
    InitRoutingV2Config c;
    c.expert_num = e;
    const InitRoutingV2Stages d = ref::npu_moe_init_routing_v2(
        x, dc::random_topk_ids(o + nm + "/ids", n, k, e), nullptr, nullptr, c);
    // probs 1/K (a power of two: exact), so out == x.
    std::vector<uint16_t> pr(static_cast<size_t>(n * k), k == 1   ? 0x3c00
                                                         : k == 2 ? 0x3800
                                                                  : 0x3000);
    v.push_back(dc::make_case(nm, "init_routing_v2 then unpermute with probs 1/K: out == x",
                              {"RoundTrip"}, params("gather"),
                              {{"permuted_tokens", d.expanded_x},
                               {"sorted_indices", d.expanded_row_idx},
                               {"probs", Tensor::from<uint16_t>(DType::kF16, {n, k}, pr)}}));
  }
  struct R {
    int64_t n, k, h;
    DType dt;
  };
  for (const R& r : {R{1, 1, 16, DType::kF32}, R{7, 2, 17, DType::kBF16}, R{33, 8, 8, DType::kF16},
                     R{128, 2, 6, DType::kF32}}) {
    const std::string nm = "random_" + std::string(dtype_name(r.dt)) + "_n" + std::to_string(r.n) +
                           "_k" + std::to_string(r.k);
    const uint64_t s = rng::seed_from_string(o + nm);
    v.push_back(dc::make_case(
        nm, "seeded, bounded", {"Random", "BoundedSum"}, params("gather"),
        {{"permuted_tokens",
          gen::float_tensor(r.dt, {r.n * r.k, r.h},
                            r.dt == DType::kF32 ? gen::FloatDist::grid(-(1 << 24), 1 << 24, -24)
                                                : gen::FloatDist::normal(0),
                            s, 0)},
         {"sorted_indices", seeded_perm(o + nm + "/perm", r.n * r.k)},
         {"probs", gen::float_tensor(r.dt, {r.n, r.k},
                                     r.dt == DType::kF32 ? gen::FloatDist::grid(1, 1 << 24, -24)
                                                         : gen::FloatDist::grid(1, 255, -8),
                                     s, 1)}}));
  }
  return v;
}

const Tensor* opt_in(const TensorMap& in, const char* k) {
  auto it = in.find(k);
  return it == in.end() ? nullptr : &it->second;
}

TokenUnpermuteArgs args_of(const TensorMap& in, const Params& p) {
  TokenUnpermuteArgs a;
  a.permuted = opt_in(in, "permuted_tokens");
  a.indices = opt_in(in, "sorted_indices");
  a.probs = opt_in(in, "probs");
  a.form = parse_unpermute_index_form(param_str(p, "index_form", "gather"));
  return a;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  const CombineBounds b = ref::npu_moe_token_unpermute_bounds(
      args_of(in, p), parse_acc_precision(param_str(p, "acc_precision", "fp32")));
  if (b.all_provably_exact) {
    m["out"].signed_zero = false;
  } else {
    Check c;
    c.mode = CheckMode::kBounded;
    c.exact = b.exact;
    c.bound = b.bound;
    m["out"] = std::move(c);
  }
  return m;
}

OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_moe_token_unpermute(permuted_tokens, sorted_indices, probs=None): "
      "out[i] = sum_j probs[i,j] * T[S[i*K+j]] (gather form; variant index_form scatter: "
      "slot S[m] receives T[m]); probs None: K = 1. Stage out BOUNDED (EXACT when provable).";
  d.sources = {
      "aclnnMoeTokenUnpermute doc (CANN 8.0): T[k] = T[S[k]], O[i] = sum of T[k]*P "
      "[doc]",
      "notes/vllm_ascend_quant.md §C Dispatch (combine with |expanded_row_idx|)",
      "docs/bounds.md npu_moe_finalize_routing (same derivation)"};
  d.inputs = {"permuted_tokens", "sorted_indices", "probs"};
  d.stages = {{"gathered_row", false, "int32 [N, K]: the permuted row of (i, j)"},
              {"out", true, "permuted dtype [N, H]"}};
  d.variants = {{"index_form", {"gather", "scatter"}, "reading of sorted_indices"},
                {"acc_precision", {"fp32", "io_dtype"}, "accumulation precision of the bound"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    CombineStages s = ref::npu_moe_token_unpermute(args_of(in, p));
    out["gathered_row"] = std::move(s.gathered_row);
    out["out"] = std::move(s.out);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    CombineStages s = opt::npu_moe_token_unpermute(args_of(in, p));
    out["gathered_row"] = std::move(s.gathered_row);
    out["out"] = std::move(s.out);
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_npu_moe_token_unpermute
}  // namespace qconf::conf
