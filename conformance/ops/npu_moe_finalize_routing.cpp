// Op: npu_moe_finalize_routing: out[i] = skip1[i] + skip2[i] + sum_k scales[i,k] *
// (rows[idx] + bias[expert[i,k]]), idx from expanded_src_to_dst_row in the k-major (modes 0/1)
// or token-major (modes 2/3) convention, -1 rows contributing 0. The float sum's order and
// precision are undocumented: BOUNDED (docs/bounds.md), EXACT where provable. Math in
// reference/ops/dispatch.cpp and optimized/ops/dispatch.cpp.
#include <string>
#include <vector>

#include "dispatch_cases.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/dispatch.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_moe_finalize_routing {

namespace dc = conformance_ops_dispatch_cases;
constexpr const char* kOp = "npu_moe_finalize_routing";

std::map<std::string, Note> notes() {
  return {
      {"IndexConvention",
       {"FUNCTIONALITY",
        "The same inputs read with drop_pad_mode 0 (idx = src_to_dst[k*N + i]) and 2 "
        "(idx = src_to_dst[i*K + k]) give different outputs.",
        "A port confusing the k-major and token-major conventions adds other tokens' rows."}},
      {"InactiveRows",
       {"EDGE_CASE", "src_to_dst entries -1: the term (row and bias) contributes 0.",
        "A port reading row -1 (the last row, or garbage) or adding the bias anyway."}},
      {"ExactByConstruction",
       {"BASIC",
        "Grid inputs: every product, every partial sum of every order is representable in fp32 "
        "(docs/bounds.md): the output is checked EXACT.",
        "Catches any slip, however small (a dropped term, a wrong scale)."}},
      {"BoundedSum",
       {"BASIC",
        "Full-mantissa inputs: BOUNDED by gamma_{T+1} sum |terms| (+ half an ulp of the output "
        "dtype), any summation order. fp16/bf16 inputs with fp32 accumulation over k <= 8 are "
        "usually provably exact: those cases are checked EXACT.",
        "A correct port in another order passes; a wrong row or scale fails."}},
      {"AccPrecision",
       {"DIVERGENCE",
        "acc_precision=fp32 (products and sum in fp32, one cast) vs io_dtype (every step in "
        "fp16/bf16) [inf]: vllm-ascend avoids the op for 'accuracy issues' "
        "(moe_comm_method.py). The io_dtype bound is wider; its cases carry that variant.",
        "An fp16-accumulating port fails the fp32 bound on long sums."}},
      {"Random",
       {"BASIC", "Seeded rows N(0, 1), scales in (0, 1], tokens 1-128, k 1-8.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(int mode, const char* acc = "fp32") {
  Params p = Params::object();
  p["drop_pad_mode"] = mode;
  p["acc_precision"] = acc;
  return p;
}

// src_to_dst of a dispatch: a permutation of [0, N*K) (seeded), some entries -1.
Tensor perm_with_holes(const std::string& seed, int64_t nk, int64_t holes_every) {
  std::vector<int32_t> v(static_cast<size_t>(nk));
  for (int64_t i = 0; i < nk; ++i) v[i] = static_cast<int32_t>(i);
  const uint64_t s = rng::seed_from_string(seed);
  for (int64_t i = nk - 1; i > 0; --i) {
    const Tensor d = gen::int_tensor(DType::kI64, {1}, 0, i, s, i);
    std::swap(v[i], v[d.data<int64_t>()[0]]);
  }
  if (holes_every > 0)
    for (int64_t i = 0; i < nk; i += holes_every) v[i] = -1;
  return Tensor::from<int32_t>({nk}, v);
}

TensorMap inputs(const std::string& seed, DType dt, int64_t n, int64_t k, int64_t h, int64_t e,
                 bool grid, int64_t holes_every, bool skip2, bool bias) {
  const uint64_t s = rng::seed_from_string(seed);
  // Not grid: fp32 full 24-bit mantissas; fp16/bf16 N(0, 1) and 8-bit scales.
  const bool f32 = dt == DType::kF32;
  const gen::FloatDist xd = grid  ? gen::FloatDist::grid(-64, 64, -4)
                            : f32 ? gen::FloatDist::grid(-(1 << 24), 1 << 24, -24)
                                  : gen::FloatDist::normal(0);
  const gen::FloatDist sd = grid  ? gen::FloatDist::grid(1, 16, -4)
                            : f32 ? gen::FloatDist::grid(1, 1 << 24, -24)
                                  : gen::FloatDist::grid(1, 255, -8);
  TensorMap in;
  in["expanded_permuted_rows"] = gen::float_tensor(dt, {n * k, h}, xd, s, 0);
  in["skip1"] = gen::float_tensor(dt, {n, h}, xd, s, 1);
  if (skip2) in["skip2"] = gen::float_tensor(dt, {n, h}, xd, s, 2);
  if (bias) in["bias"] = gen::float_tensor(dt, {e, h}, xd, s, 3);
  in["scales"] = gen::float_tensor(dt, {n, k}, sd, s, 4);
  in["expanded_src_to_dst_row"] = perm_with_holes(seed + "/perm", n * k, holes_every);
  in["expert_for_source_row"] = dc::random_topk_ids(seed + "/ids", n, k, e);
  return in;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const std::string o = std::string(kOp) + "/";
  // The index convention separator: same inputs, modes 0 and 2 (and 1, 3 alias them).
  const TensorMap sep = inputs(o + "index_sep", DType::kF32, 3, 2, 4, 4, true, 0, false, true);
  for (int mode : {0, 1, 2, 3})
    v.push_back(dc::make_case("index_convention_mode" + std::to_string(mode),
                              "N 3, K 2, grid inputs: modes 0/1 read src_to_dst[k*N+i], 2/3 "
                              "read [i*K+k]",
                              {"IndexConvention", "ExactByConstruction"}, params(mode), sep));
  // -1 rows, skip2 and bias, exact grids in every dtype.
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::string nm = "inactive_rows_exact_" + std::string(dtype_name(dt));
    v.push_back(dc::make_case(nm, "every 3rd src_to_dst entry -1; skip1 + skip2 + bias",
                              {"InactiveRows", "ExactByConstruction"}, params(0),
                              inputs(o + nm, dt, 7, 2, 8, 8, true, 3, true, true)));
  }
  // Bounded random.
  struct R {
    int64_t n, k, h, e;
    DType dt;
    int mode;
  };
  for (const R& r : {R{1, 1, 16, 8, DType::kF32, 0}, R{7, 2, 17, 16, DType::kF16, 2},
                     R{33, 8, 8, 64, DType::kBF16, 0}, R{128, 8, 4, 256, DType::kF32, 2},
                     R{33, 2, 12, 8, DType::kBF16, 3}}) {
    const std::string nm = "random_" + std::string(dtype_name(r.dt)) + "_n" + std::to_string(r.n) +
                           "_k" + std::to_string(r.k) + "_mode" + std::to_string(r.mode);
    v.push_back(dc::make_case(nm, "seeded, bounded", {"Random", "BoundedSum", "InactiveRows"},
                              params(r.mode),
                              inputs(o + nm, r.dt, r.n, r.k, r.h, r.e, false, 5, r.n % 2, true)));
  }
  // The io_dtype reading: fp16 over k = 8.
  {
    const std::string nm = "acc_io_dtype_fp16_n7_k8";
    v.push_back(dc::make_case(nm, "fp16, acc_precision io_dtype (wider bound)",
                              {"AccPrecision", "BoundedSum"}, params(0, "io_dtype"),
                              inputs(o + nm, DType::kF16, 7, 8, 16, 16, false, 0, true, true)));
  }
  return v;
}

const Tensor* opt_in(const TensorMap& in, const char* k) {
  auto it = in.find(k);
  return it == in.end() ? nullptr : &it->second;
}

FinalizeRoutingArgs args_of(const TensorMap& in, const Params& p) {
  FinalizeRoutingArgs a;
  a.rows = opt_in(in, "expanded_permuted_rows");
  a.skip1 = opt_in(in, "skip1");
  a.skip2 = opt_in(in, "skip2");
  a.bias = opt_in(in, "bias");
  a.scales = opt_in(in, "scales");
  a.src_to_dst = opt_in(in, "expanded_src_to_dst_row");
  a.expert_idx = opt_in(in, "expert_for_source_row");
  a.drop_pad_mode = static_cast<int>(param_int(p, "drop_pad_mode", 0));
  a.k = param_int(p, "k", 0);
  return a;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  const CombineBounds b = ref::npu_moe_finalize_routing_bounds(
      args_of(in, p), parse_acc_precision(param_str(p, "acc_precision", "fp32")));
  if (b.all_provably_exact) {
    m["out"].signed_zero = false;  // a sum may start from +0 or from skip1
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
      "torch_npu.npu_moe_finalize_routing(expanded_permuted_rows, skip1, skip2, bias, scales, "
      "expanded_src_to_dst_row, expert_for_source_row, drop_pad_mode): out[i] = skip1 + skip2 + "
      "sum_k scales[i,k] * (rows[idx] + bias[expert[i,k]]), idx = src_to_dst[k*N+i] (modes "
      "0/1) or [i*K+k] (2/3), -1 adds 0. Stage out BOUNDED (EXACT when provable); variant "
      "acc_precision (fp32 | io_dtype) selects the bound.";
  d.sources = {"notes/torch_npu_semantics.md §9 [doc reference code]",
               "vllm-ascend ops/fused_moe/moe_comm_method.py L186-192 (avoids the op) [code]",
               "docs/bounds.md npu_moe_finalize_routing"};
  d.inputs = {
      "expanded_permuted_rows", "skip1", "skip2", "bias", "scales", "expanded_src_to_dst_row",
      "expert_for_source_row"};
  d.stages = {{"gathered_row", false, "int32 [N, K]: the expanded row of (i, k), or -1"},
              {"out", true, "rows dtype [N, H]"}};
  d.variants = {{"drop_pad_mode", {"0", "1", "2", "3"}, "0/1 k-major index, 2/3 token-major"},
                {"acc_precision", {"fp32", "io_dtype"}, "accumulation precision of the bound"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    CombineStages s = ref::npu_moe_finalize_routing(args_of(in, p));
    out["gathered_row"] = std::move(s.gathered_row);
    out["out"] = std::move(s.out);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    CombineStages s = opt::npu_moe_finalize_routing(args_of(in, p));
    out["gathered_row"] = std::move(s.gathered_row);
    out["out"] = std::move(s.out);
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_npu_moe_finalize_routing
}  // namespace qconf::conf
