// Op: w4a8_scale_bias_rank_sum (vllm-ascend W4A8_DYNAMIC ModelSlim scale_bias at load time).
//
// ModelSlim stores down_proj's scale_bias as [H, 16] partial columns; a rank of tp loads
// [E, H, 16/tp] and sums its columns (transpose(1, 2).sum(axis=1)); gate/up store [E, 2I, 1].
// Params: tp (1, 2, 4, 8, 16), proj (down | gate_up). An fp32 sum of 16/tp values in an unfixed
// order: EXACT when provable, BOUNDED otherwise (docs/bounds.md).
// Math: reference/ops/scales.cpp (ref::w4a8_scale_bias_rank_sum), optimized/ops/scales.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_scale_bias_rank_sum {

using namespace scales;

constexpr const char* kOp = "w4a8_scale_bias_rank_sum";

std::map<std::string, Note> notes() {
  return {
      {"PartialColumns",
       {"FUNCTIONALITY",
        "down_proj scale_bias [E, H, 16/tp]: the rank sums its 16/tp columns over the LAST axis "
        "(after transpose(1, 2), axis 1) into [E, H]; across ranks the all-reduce of the "
        "outputs completes the sum of all 16.",
        "A port that sums over H, keeps one column, or divides by tp."}},
      {"TpShards",
       {"FUNCTIONALITY",
        "tp = 1, 2, 4, 8, 16: 16, 8, 4, 2 and 1 columns per rank (tp > 16 is rejected by "
        "vllm-ascend).",
        "A port that assumes 16 columns regardless of tp."}},
      {"GateUpSingleColumn",
       {"FUNCTIONALITY",
        "gate/up scale_bias [E, 2I, 1]: the sum of one element is the element itself.",
        "A port that treats the gate/up tensor like the down one."}},
      {"ExactByConstruction",
       {"BASIC",
        "Columns on a common power-of-two grid with a small total: every partial sum is an fp32 "
        "number, any order gives the exact result: checked EXACT (+0 and -0 not distinguished).",
        "Any arithmetic slip fails."}},
      {"BoundedSum",
       {"BASIC",
        "Full-mantissa fp32 columns: the order of the fp32 sum is not fixed, the stage is "
        "BOUNDED by gamma_{C-1} * sum |x| (docs/bounds.md).",
        "A port whose error exceeds what any summation order can produce."}},
      {"Cancellation",
       {"EDGE_CASE",
        "Columns that cancel (x, -x, ...): the bound scales with sum |x|, not with the result.",
        "A port that loses the small remainder entirely (e.g. sums in bf16)."}},
      {"Random",
       {"BASIC", "Seeded partial columns.",
        "General coverage; the seed is derived from the case id."}},
  };
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto params = [](int64_t tp, const std::string& proj) {
    return Params{{"tp", tp}, {"proj", proj}};
  };
  {
    // E=1, H=2, 16 columns: row 0 = 1..16 * 2^-4 (sum 8.5), row 1 = alternating +-0.75 with a
    // final 0.125 (sum 0.125).
    std::vector<float> x;
    for (int j = 1; j <= 16; ++j) x.push_back(static_cast<float>(j) * 0.0625f);
    for (int j = 0; j < 15; ++j) x.push_back(j % 2 ? -0.75f : 0.75f);
    x.push_back(0.125f - 0.75f);
    CaseSpec c = make_case(
        "tp1_sixteen_columns", "tp = 1: row 0 = (1..16) / 16 -> 8.5, row 1 = +-0.75 ... -> 0.125",
        {"PartialColumns", "ExactByConstruction", "Cancellation"}, params(1, "down"));
    c.inputs["scale_bias"] = f32_vals({1, 2, 16}, x);
    v.push_back(std::move(c));
  }
  for (int64_t tp : {2, 4, 8, 16}) {
    const int64_t cols = 16 / tp;
    const std::string name = "grid_tp" + std::to_string(tp);
    CaseSpec c = make_case(name,
                           "tp = " + std::to_string(tp) + ": [2, 12, " + std::to_string(cols) +
                               "] columns on the 2^-10 grid",
                           {"TpShards", "PartialColumns", "ExactByConstruction", "Random"},
                           params(tp, "down"));
    c.inputs["scale_bias"] =
        gen::float_tensor(DType::kF32, {2, 12, cols}, gen::FloatDist::grid(-30000, 30000, -10),
                          case_seed(kOp, name), 0);
    v.push_back(std::move(c));
  }
  {
    CaseSpec c =
        make_case("gate_up_single_column", "gate/up [2, 8, 1]: the values themselves (-0 included)",
                  {"GateUpSingleColumn"}, params(4, "gate_up"));
    c.inputs["scale_bias"] =
        f32_vals({2, 8, 1}, {0.0123f, -1.5f, 3.25f, -0.0f, 100.0f, 1e-30f, -7.0f, 0.333f, 12.0f,
                             -0.001f, 0.5f, 2.0f, -65504.0f, 1e10f, 0.0f, -3.0f});
    v.push_back(std::move(c));
  }
  auto add_bounded = [&](const std::string& name, int64_t tp, Shape shape, bool cancel) {
    CaseSpec c = make_case(name,
                           "tp = " + std::to_string(tp) + ": full-mantissa columns " +
                               shape_str(shape) + (cancel ? ", pairwise cancelling" : ""),
                           {"BoundedSum", "PartialColumns", "Random"}, params(tp, "down"));
    if (cancel) c.flags.push_back("Cancellation");
    Tensor x =
        random_bits_tensor(DType::kF32, shape, 0x3C000000u, 0x41FFFFFFu, case_seed(kOp, name));
    uint32_t* p = x.data<uint32_t>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (i % 3 == 1) p[i] |= 0x80000000u;  // mixed signs
      if (cancel && i % 2 == 1) p[i] = (p[i - 1] ^ 0x80000000u) + (i % 4 == 1 ? 1u : 0u);
    }
    c.inputs["scale_bias"] = std::move(x);
    v.push_back(std::move(c));
  };
  add_bounded("fp32_tp1_bounded", 1, {2, 20, 16}, false);
  add_bounded("fp32_tp2_bounded", 2, {3, 17, 8}, false);
  add_bounded("fp32_tp1_cancellation", 1, {1, 24, 16}, true);
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8_DYNAMIC ModelSlim scale_bias at load: [E, H, 16/tp] partial columns "
      "(down_proj) or [E, 2I, 1] (gate/up) summed over the last axis into float32 [E, H]. Sum "
      "order not fixed: EXACT when provable, else BOUNDED.";
  d.sources = {
      "vllm-project/vllm-ascend quantization/methods/w4a8.py @01697b3e "
      "get_dynamic_quant_param_modelslim, process_weights_after_loading_modelslim [code]",
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE, pitfall 4",
      "docs/bounds.md w4a8_scale_bias_rank_sum"};
  d.inputs = {"scale_bias"};
  d.stages = {{"scale_bias_sum", true, "float32 [E, H]"}};
  d.notes = notes();
  auto tp_of = [](const Params& p) { return param_int(p, "tp", 1); };
  auto proj_of = [](const Params& p) { return parse_w4a8_bias_proj(param_str(p, "proj", "down")); };
  d.reference = [=](const Params& p, const TensorMap& in, TensorMap& out) {
    out["scale_bias_sum"] =
        ref::w4a8_scale_bias_rank_sum(in.at("scale_bias"), tp_of(p), proj_of(p));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [=](const Params& p, const TensorMap& in, TensorMap& out) {
    out["scale_bias_sum"] =
        opt::w4a8_scale_bias_rank_sum(in.at("scale_bias"), tp_of(p), proj_of(p));
  };
#endif
  d.oracle = [=](const Params& p, const TensorMap& in, const TensorMap&) {
    std::map<std::string, Check> m;
    m["scale_bias_sum"] = check_from_bound(
        ref::w4a8_scale_bias_rank_sum_bound(in.at("scale_bias"), tp_of(p), proj_of(p)));
    return m;
  };
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_scale_bias_rank_sum
}  // namespace qconf::conf
