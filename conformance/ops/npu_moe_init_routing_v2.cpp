// Op: npu_moe_init_routing_v2: the AllGather dispatch of vllm-ascend (token_dispatcher.py): a
// stable sort of the flat token-major expert ids, the expanded row index (gather or scatter form),
// the expanded (optionally quantized) rows, and the per-expert token counts. Math in
// reference/ops/dispatch.cpp and optimized/ops/dispatch.cpp.
#include <string>
#include <vector>

#include "dispatch_cases.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/dispatch.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_moe_init_routing_v2 {

namespace dc = conformance_ops_dispatch_cases;
constexpr const char* kOp = "npu_moe_init_routing_v2";

std::map<std::string, Note> notes() {
  return {
      {"StableSortSeparator",
       {"FUNCTIONALITY",
        "One expert id chosen by several tokens at different k slots: the token-major stable "
        "order (t*K + j, the documented sort) and a k-major order (j*N + t) give different "
        "expanded rows and expanded_row_idx.",
        "An unstable sort, or one breaking ties by the k-major index, permutes the rows of an "
        "expert: a grouped matmul still computes, the combine then adds the wrong rows."}},
      {"InactiveExperts",
       {"EDGE_CASE",
        "Experts outside active_expert_range: below start they sort last (INT32_MAX key), at "
        "or above end after the active ones; their flat positions get -1 (gather form) and "
        "they are not counted.",
        "Counting inactive rows, or giving them a row index, corrupts the EP-local dispatch."}},
      {"ExpertTokensFormats",
       {"BASIC",
        "expert_tokens_num_type 0 cumsum, 1 count [end - start], 2 key_value [expert_num, 2] "
        "(global id, count) of the non-empty experts, then (0, 0) rows (group_list_convert).",
        "A wrong group list misroutes every group of the grouped matmul."}},
      {"EmptyExperts",
       {"EDGE_CASE", "Experts of the range without tokens (cumsum steps of 0, no key_value row).",
        "Off-by-one in the counts."}},
      {"RowIdxScatter",
       {"FUNCTIONALITY",
        "row_idx_type 1: expanded_row_idx[i] = perm[i] for the active rows (the inverse of the "
        "gather form).",
        "Swapping the two forms is a wrong permutation whenever it is not an involution."}},
      {"ActiveNum",
       {"EDGE_CASE",
        "active_num below the active total: expanded_x keeps the first active_num rows; the "
        "gather-form row index still numbers every active row (CANN golden).",
        "Ports that cap the row index as well."}},
      {"DropPad",
       {"FUNCTIONALITY",
        "drop_pad_mode 1: the first expert_capacity rows of each expert (sorted order) go to "
        "slot e*C + j of expanded_x [E, C, H] (zero padding); later rows are dropped (-1); "
        "expert_tokens are the counts before capacity.",
        "Dropping other rows than the last ones of an expert, or counting after capacity."}},
      {"StaticQuantPrecision",
       {"DIVERGENCE",
        "quant_mode 0: y = RINT(x*scale + offset). CANN's golden rounds x, scale, offset, the "
        "product and the sum to fp16 (static_precision=fp16); the notes' formula read in fp32 "
        "(static_precision=fp32) [inf]. x = 95, scale 0.3: fp16 gives 28 (28.5, a tie to "
        "even), fp32 gives 29 (28.500002).",
        "A port computing in the other precision is off by one code on such elements."}},
      {"DynamicQuantFormula",
       {"DIVERGENCE",
        "quant_mode 1: per-row int8 quant of the expanded rows (after the optional smooth scale, "
        "[H] or [end-start, H] per expert). The doc / CANN golden divides by amax/127 "
        "(dyn_formula=div_scale); the npu_dynamic_quant A2 kernel multiplies by 127/amax "
        "(mul_reciprocal) [inf for this op].",
        "A port using the other formula differs by one code on some elements and in the "
        "scale bits."}},
      {"ScaleGather",
       {"BASIC", "quant_mode -1 with a per-token scale [N]: expanded_scale[i] = scale[perm[i]/K].",
        "Gathering the scale by the expanded row instead of the token."}},
      {"Random",
       {"BASIC",
        "Seeded top-k ids (K distinct experts per token) and N(0, 1) rows over tokens 1, 7, 33, "
        "128, experts 8, 16, 64, 256, k 1, 2, 8.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(int64_t expert_num, int64_t tokens_type = 1, bool flag = true) {
  Params p = Params::object();
  p["expert_num"] = expert_num;
  p["expert_tokens_num_type"] = tokens_type;
  p["expert_tokens_num_flag"] = flag;
  return p;
}

Tensor rows(const std::string& seed, DType dt, int64_t n, int64_t h) {
  return gen::float_tensor(dt, {n, h}, gen::FloatDist::normal(0), rng::seed_from_string(seed), 0);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const std::string o = std::string(kOp) + "/";
  // The stability separator: expert 1 at (t0,j0), (t1,j1), (t2,j0), (t3,j1).
  const Tensor dup = dc::i32({4, 2}, {1, 0, 0, 1, 1, 2, 2, 1});
  const Tensor x4 = gen::float_tensor(DType::kF16, {4, 8}, gen::FloatDist::grid(-64, 63, -4),
                                      rng::seed_from_string(o + "dup"), 0);
  for (int64_t type : {0, 1, 2}) {
    v.push_back(dc::make_case("stable_dup_experts_type" + std::to_string(type),
                              "ids [[1,0],[0,1],[1,2],[2,1]], E 4: token-major order of expert 1 "
                              "is t0,t1,t2,t3; k-major would be t0,t2,t1,t3",
                              {"StableSortSeparator", "ExpertTokensFormats", "EmptyExperts"},
                              params(4, type), {{"x", x4}, {"expert_idx", dup}}));
  }
  {
    Params p = params(4, 1);
    p["row_idx_type"] = 1;
    v.push_back(dc::make_case("stable_dup_experts_scatter", "the separator, row_idx_type 1",
                              {"StableSortSeparator", "RowIdxScatter"}, p,
                              {{"x", x4}, {"expert_idx", dup}}));
  }
  // Inactive experts: E 8, range [2, 6); ids 0, 1 (below), 6, 7 (above) and active ones.
  const Tensor ids_in = dc::i32({5, 3}, {0, 2, 7, 3, 1, 2, 6, 5, 3, 2, 4, 0, 7, 1, 6});
  const Tensor x5 = gen::float_tensor(DType::kBF16, {5, 9}, gen::FloatDist::grid(-100, 100, -5),
                                      rng::seed_from_string(o + "inactive"), 0);
  for (int64_t type : {0, 1, 2}) {
    Params p = params(8, type);
    p["active_expert_range"] = {2, 6};
    v.push_back(dc::make_case(
        "inactive_range_2_6_type" + std::to_string(type), "E 8, range [2, 6): 7 of 15 ids inactive",
        {"InactiveExperts", "ExpertTokensFormats"}, p, {{"x", x5}, {"expert_idx", ids_in}}));
  }
  {
    Params p = params(8, 1);
    p["active_expert_range"] = {2, 6};
    p["row_idx_type"] = 1;
    v.push_back(dc::make_case("inactive_range_scatter", "range [2, 6), row_idx_type 1",
                              {"InactiveExperts", "RowIdxScatter"}, p,
                              {{"x", x5}, {"expert_idx", ids_in}}));
    p = params(8, 0);
    p["active_expert_range"] = {2, 6};
    p["active_num"] = 4;
    v.push_back(dc::make_case("inactive_range_active_num_4", "range [2, 6), active_num 4 of 8",
                              {"InactiveExperts", "ActiveNum"}, p,
                              {{"x", x5}, {"expert_idx", ids_in}}));
  }
  // Drop-pad: E 4, capacity 2; expert 1 has 4 tokens (2 dropped), expert 3 none.
  {
    const Tensor ids = dc::i32({5, 2}, {1, 0, 0, 1, 1, 2, 2, 1, 1, 0});
    const Tensor x = gen::float_tensor(DType::kF32, {5, 6}, gen::FloatDist::grid(-1000, 1000, -8),
                                       rng::seed_from_string(o + "drop"), 0);
    Params p = params(4, 1);
    p["drop_pad_mode"] = 1;
    p["expert_capacity"] = 2;
    const Tensor sc = gen::float_tensor(DType::kF32, {5}, gen::FloatDist::grid(1, 100, -6),
                                        rng::seed_from_string(o + "drop_scale"), 0);
    v.push_back(dc::make_case("drop_pad_capacity_2", "E 4, C 2: expert 1 keeps t0, t1 of 4",
                              {"DropPad", "EmptyExperts", "StableSortSeparator"}, p,
                              {{"x", x}, {"expert_idx", ids}, {"scale", sc}}));
  }
  // Static quant: the fp16/fp32 separator (x = 5, scale 0.3, offset 0) and a general row.
  for (const char* prec : {"fp16", "fp32"}) {
    Params p = params(4, 1);
    p["quant_mode"] = 0;
    p["static_precision"] = prec;
    const Tensor x =
        Tensor::from<float>({2, 4}, {95.0f, -95.0f, 1.25f, 100.0f, 3.0f, -0.5f, 7.0f, 400.0f});
    v.push_back(
        dc::make_case(std::string("static_quant_separator_") + prec,
                      "x 95 * scale 0.3: fp16 28 (28.5 tie), fp32 29 (28.500002); 400 * 0.3 "
                      "= 120",
                      {"StaticQuantPrecision"}, p,
                      {{"x", x},
                       {"expert_idx", dc::i32({2, 2}, {0, 3, 3, 1})},
                       {"scale", Tensor::from<float>({1}, {0.3f})},
                       {"offset", Tensor::from<float>({1}, {0.0f})}}));
  }
  // Dynamic quant: both formulas on the same rows; smooth [H] and per expert [end-start, H].
  for (const char* f : {"div_scale", "mul_reciprocal"}) {
    Params p = params(8, 1);
    p["quant_mode"] = 1;
    p["dyn_formula"] = f;
    const Tensor ids = dc::random_topk_ids(o + "dyn_ids", 16, 2, 8);
    const Tensor x = rows(o + "dyn_x", DType::kBF16, 16, 48);
    v.push_back(dc::make_case(std::string("dynamic_quant_") + f, "16 tokens, k 2, bf16, no smooth",
                              {"DynamicQuantFormula"}, p, {{"x", x}, {"expert_idx", ids}}));
    p["active_expert_range"] = {2, 7};
    const Tensor sm = gen::float_tensor(DType::kF32, {5, 48}, gen::FloatDist::grid(16, 64, -5),
                                        rng::seed_from_string(o + "dyn_smooth"), 0);
    v.push_back(dc::make_case(std::string("dynamic_quant_smooth_per_expert_") + f,
                              "range [2, 7), smooth scale [5, 48] chosen by the expert",
                              {"DynamicQuantFormula", "InactiveExperts"}, p,
                              {{"x", x}, {"expert_idx", ids}, {"scale", sm}}));
  }
  {
    Params p = params(8, 0);
    const Tensor ids = dc::random_topk_ids(o + "gather_scale_ids", 6, 2, 8);
    v.push_back(
        dc::make_case("scale_gather_no_quant", "quant_mode -1, scale [N]", {"ScaleGather"}, p,
                      {{"x", rows(o + "gs_x", DType::kF16, 6, 5)},
                       {"expert_idx", ids},
                       {"scale", gen::float_tensor(DType::kF32, {6}, gen::FloatDist::normal(0),
                                                   rng::seed_from_string(o + "gs_scale"), 0)}}));
  }
  // Random shapes.
  struct R {
    int64_t n, e, k, h;
    DType dt;
    int64_t type;
  };
  for (const R& r : {R{1, 8, 1, 16, DType::kF16, 1}, R{7, 16, 2, 17, DType::kBF16, 0},
                     R{33, 64, 8, 24, DType::kF16, 2}, R{128, 256, 8, 8, DType::kBF16, 1},
                     R{128, 8, 2, 12, DType::kF32, 0}, R{7, 256, 1, 33, DType::kF32, 2},
                     R{33, 16, 8, 16, DType::kBF16, 1}, R{128, 64, 2, 16, DType::kF16, 0}}) {
    const std::string name = "random_n" + std::to_string(r.n) + "_e" + std::to_string(r.e) + "_k" +
                             std::to_string(r.k) + "_h" + std::to_string(r.h);
    Params p = params(r.e, r.type);
    if (r.e >= 16) p["active_expert_range"] = {r.e / 4, r.e / 4 + r.e / 2};
    v.push_back(
        dc::make_case(name, "seeded", {"Random"}, p,
                      {{"x", rows(o + name, r.dt, r.n, r.h)},
                       {"expert_idx", dc::random_topk_ids(o + name + "/ids", r.n, r.k, r.e)}}));
  }
  {
    const std::string name = "random_quant_n33_e16_k2";
    Params p = params(16, 1);
    p["quant_mode"] = 1;
    p["active_expert_range"] = {0, 8};
    v.push_back(dc::make_case(name, "seeded, dynamic quant, half the experts local",
                              {"Random", "DynamicQuantFormula"}, p,
                              {{"x", rows(o + name, DType::kF16, 33, 40)},
                               {"expert_idx", dc::random_topk_ids(o + name + "/ids", 33, 2, 16)}}));
  }
  return v;
}

InitRoutingV2Config config(const Params& p) {
  InitRoutingV2Config c;
  c.active_num = param_int(p, "active_num", -1);
  c.expert_capacity = param_int(p, "expert_capacity", -1);
  c.expert_num = param_int(p, "expert_num", -1);
  c.drop_pad_mode = static_cast<int>(param_int(p, "drop_pad_mode", 0));
  const int64_t t = param_int(p, "expert_tokens_num_type", 0);
  if (t < 0 || t > 2)
    throw std::invalid_argument(std::string(kOp) + ": expert_tokens_num_type must be 0, 1 or 2");
  c.expert_tokens_type = static_cast<GroupListType>(t);
  c.expert_tokens_flag =
      p.contains("expert_tokens_num_flag") && p["expert_tokens_num_flag"].get<bool>();
  c.quant_mode = static_cast<int>(param_int(p, "quant_mode", -1));
  if (p.contains("active_expert_range")) {
    const Json& r = p["active_expert_range"];
    if (!r.is_array() || r.size() != 2)
      throw std::invalid_argument(std::string(kOp) + ": active_expert_range must be [start, end]");
    c.range_start = r[0].get<int64_t>(), c.range_end = r[1].get<int64_t>();
  }
  const int64_t rt = param_int(p, "row_idx_type", 0);
  if (rt != 0 && rt != 1)
    throw std::invalid_argument(std::string(kOp) + ": row_idx_type must be 0 or 1");
  c.row_idx_type = static_cast<RowIdxType>(rt);
  c.static_precision = parse_static_quant_precision(param_str(p, "static_precision", "fp16"));
  c.dyn_formula = parse_dyn_quant_formula(param_str(p, "dyn_formula", "div_scale"));
  return c;
}

const Tensor* opt_in(const TensorMap& in, const char* k) {
  auto it = in.find(k);
  return it == in.end() ? nullptr : &it->second;
}

void emit(InitRoutingV2Stages s, TensorMap& out) {
  out["sorted_expert_idx"] = std::move(s.sorted_expert_idx);
  out["sorted_row_idx"] = std::move(s.sorted_row_idx);
  out["expanded_row_idx"] = std::move(s.expanded_row_idx);
  out["expanded_x"] = std::move(s.expanded_x);
  // Not requested: an empty tensor of the stage's dtype (the op returns an undefined/empty one).
  out["expert_tokens"] =
      s.expert_tokens.numel() ? std::move(s.expert_tokens) : Tensor(DType::kI64, {0});
  out["expanded_scale"] =
      s.expanded_scale.numel() ? std::move(s.expanded_scale) : Tensor(DType::kF32, {0});
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  // Drop-pad outputs are mostly zero padding on purpose; inactive experts make -1 runs.
  for (const char* s : {"expanded_x", "expert_tokens", "expanded_row_idx", "expanded_scale"})
    if (out.count(s)) m[s].degenerate_ok = true;
  return m;
}

OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_moe_init_routing_v2(x, expert_idx, scale, offset, active_num, "
      "expert_capacity, expert_num, drop_pad_mode, expert_tokens_num_type, "
      "expert_tokens_num_flag, quant_mode, active_expert_range, row_idx_type): experts below "
      "the range start keyed INT32_MAX, stable sort on the token-major flat position, "
      "expanded_row_idx in gather (-1 for inactive) or scatter form, expanded_x = x[perm/K] "
      "(quant_mode 0 static, 1 dynamic per row), expert_tokens cumsum/count/key_value. "
      "All stages EXACT.";
  d.sources = {"notes/torch_npu_semantics.md §8 [doc reference code MoeInitRoutingV2CPU]",
               "notes/vllm_ascend_quant.md §C Dispatch (ops/fused_moe/token_dispatcher.py)",
               "op-plugin MoeInitRoutingV2KernelNpuOpApi.cpp: QUANT_MODE_STATIC = 0, "
               "QUANT_MODE_DYNAMIC = 1 [code]",
               "CANN ops golden script of moe_init_routing (fp16 static quant, division "
               "dynamic quant, capacity drop, key_value) [test; facts only]"};
  d.inputs = {"x", "expert_idx", "scale", "offset"};
  d.stages = {{"sorted_expert_idx", false, "int32 [N*K] sorted keys (INT32_MAX below start)"},
              {"sorted_row_idx", false, "int32 [N*K] the stable permutation of flat positions"},
              {"expanded_row_idx", true, "int32: gather [N*K] / scatter [total] / drop-pad [N*K]"},
              {"expanded_x", true, "x dtype or int8 [n_out, H]; drop-pad [E, C, H]"},
              {"expert_tokens", true,
               "int64: cumsum/count [end-start], key_value [E, 2]; [0] without the flag"},
              {"expanded_scale", true, "float32 [n_out] (quant_mode 1 or scale gather), else [0]"}};
  d.variants = {{"static_precision", {"fp16", "fp32"}, "quant_mode 0 arithmetic precision"},
                {"dyn_formula",
                 {"div_scale", "mul_reciprocal", "db_scale"},
                 "quant_mode 1 formula (as npu_dynamic_quant)"},
                {"row_idx_type", {"0", "1"}, "expanded_row_idx form: 0 gather, 1 scatter"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    emit(ref::npu_moe_init_routing_v2(in.at("x"), in.at("expert_idx"), opt_in(in, "scale"),
                                      opt_in(in, "offset"), config(p)),
         out);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    emit(opt::npu_moe_init_routing_v2(in.at("x"), in.at("expert_idx"), opt_in(in, "scale"),
                                      opt_in(in, "offset"), config(p)),
         out);
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_npu_moe_init_routing_v2
}  // namespace qconf::conf
