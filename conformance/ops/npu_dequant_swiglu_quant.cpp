// Op: npu_dequant_swiglu_quant (torch_npu), the MC2 path of vllm-ascend's W8A8 MoE MLP: the
// int32 gmm1 accumulator -> fp32 * weight_scale[e, j] * activation_scale[m] (exact stage
// `dequant`) -> SwiGLU (activate_left, swiglu_mode 0 or 1 with its clamp; BOUNDED: exp) ->
// dynamic per-row int8 (quant_mode 1): q = amax / 127 (REACHABLE), y = S / q -> int16 RINT ->
// fp16 -> int8 (single rounding; REACHABLE). Rows past sum(group_index): UNSPECIFIED.
//
// Params: activate_left (bool), swiglu_mode (0 | 1), clamp_limit, glu_alpha, glu_bias.
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"
#include "swiglu_quant_checks.h"

namespace qconf::conf {
namespace conformance_ops_npu_dequant_swiglu_quant {

constexpr const char* kOp = "npu_dequant_swiglu_quant";

std::map<std::string, Note> notes() {
  return {
      {"ActivateLeft",
       {"FUNCTIONALITY",
        "activate_left=False (torch_npu's default): swish(second half) * first half; True (what "
        "vllm-ascend passes): swish(first half) * second half. The same input under both.",
        "Swapping the halves changes every code."}},
      {"SwigluOaiClamp",
       {"FUNCTIONALITY",
        "swiglu_mode 1: gate = even columns clamped above at clamp_limit, up = odd columns "
        "clamped to [-limit, limit], out = gate * sigmoid(glu_alpha * gate) * (up + glu_bias); "
        "inputs with |values| well past the limit.",
        "A port without the clamp (or clamping gate below too) gets other codes."}},
      {"SingleRounding",
       {"FUNCTIONALITY",
        "Searched: an exact element where y = S / q rounds differently once (fp32 -> int16 RINT) "
        "than through fp16 first (fp32 -> fp16 RINT -> int8 RINT).",
        "A port with the grouped_matmul_swiglu_quant double rounding fails."}},
      {"ScaleOrder",
       {"FUNCTIONALITY",
        "Full-mantissa scales: (fp32(x) * weight_scale) * activation_scale differs from the "
        "other order in some elements; checked at the exact `dequant` stage.",
        "Multiplying by activation_scale first fails the dequant stage."}},
      {"GroupIndex",
       {"FUNCTIONALITY", "group_index = counts [E]: rows of group g use weight_scale[g].",
        "Reading group_index as a cumsum applies the wrong expert's scales."}},
      {"TailRows",
       {"EDGE_CASE",
        "sum(group_index) < M: rows past it are not written (notes §10 'tail rows garbage'): "
        "UNSPECIFIED via the compared ranges.",
        "Comparing them would fail a correct port."}},
      {"AmaxZero",
       {"EDGE_CASE", "A zero row: S = 0, scale 0, codes 0 (0 / 0 = NaN -> 0) [inf].",
        "A guarded scale differs."}},
      {"Reachable",
       {"FUNCTIONALITY", "Searched: some element's code is reachable two ways.",
        "Legitimate exp implementations are accepted."}},
      {"Random", {"BASIC", "Seeded accumulators and scales over odd shapes.", "General coverage."}},
  };
}

Params params(bool left, int mode = 0) {
  return Params{{"activate_left", left},
                {"swiglu_mode", mode},
                {"clamp_limit", 7.0},
                {"glu_alpha", 1.702},
                {"glu_bias", 1.0}};
}

SwigluConfig config_of(const Params& p) {
  SwigluConfig c;
  if (p.contains("activate_left")) {
    if (!p.at("activate_left").is_boolean())
      throw std::invalid_argument("param activate_left: expected true or false");
    c.activate_left = p.at("activate_left").get<bool>();
  } else {
    c.activate_left = false;  // torch_npu's default
  }
  c.swiglu_mode = static_cast<int>(param_int(p, "swiglu_mode", 0));
  auto num = [&](const char* k, double d) {
    if (!p.contains(k)) return static_cast<float>(d);
    if (!p.at(k).is_number())
      throw std::invalid_argument(std::string("param ") + k + ": expected a number");
    return static_cast<float>(p.at(k).get<double>());
  };
  c.clamp_limit = num("clamp_limit", 7.0);
  c.glu_alpha = num("glu_alpha", 1.702);
  c.glu_bias = num("glu_bias", 1.0);
  return c;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

struct Spec {
  int64_t m, n2;
  std::vector<int64_t> counts;  // empty: no group_index
  int64_t acc_range = 40000;
};

TensorMap inputs(const std::string& name, const Spec& s, uint64_t attempt = 0) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const int64_t e = s.counts.empty() ? 1 : static_cast<int64_t>(s.counts.size());
  TensorMap in;
  in["x"] = gen::int_tensor(DType::kI32, {s.m, s.n2}, -s.acc_range, s.acc_range, seed, 8 * attempt);
  in["weight_scale"] =
      gen::float_tensor(DType::kF32, s.counts.empty() ? Shape{s.n2} : Shape{e, s.n2},
                        gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -31), seed, 8 * attempt + 1);
  in["activation_scale"] = gen::float_tensor(
      DType::kF32, {s.m}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -29), seed, 8 * attempt + 2);
  if (!s.counts.empty()) in["group_index"] = Tensor::from<int64_t>({e}, s.counts);
  return in;
}

SwigluQuantBounds bounds_of(const Params& p, const TensorMap& in) {
  return ref::npu_dequant_swiglu_quant_bounds(in.at("x"), in.at("weight_scale"),
                                              in.at("activation_scale"),
                                              opt_input(in, "group_index"), config_of(p));
}

bool separates_rounding(const Params& p, const TensorMap& in) {
  const SwigluQuantStages st =
      ref::npu_dequant_swiglu_quant(in.at("x"), in.at("weight_scale"), in.at("activation_scale"),
                                    opt_input(in, "group_index"), config_of(p));
  const SwigluQuantBounds b = bounds_of(p, in);
  const int64_t h = st.swiglu.dim(1);
  for (int64_t i = 0; i < st.valid_rows * h; ++i) {
    if (std::binary_search(b.y_index.begin(), b.y_index.end(), i)) continue;
    if (swiglu_code(st.swiglu.data<float>()[i], st.scale.data<float>()[i / h],
                    SwigluQuantRounding::kDoubleFp16) != st.y.data<int8_t>()[i])
      return true;
  }
  return false;
}

std::vector<CaseSpec> build_cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, Params p,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  {
    TensorMap in = inputs("activate_left_shared", {6, 32, {2, 0, 3}});
    std::memset(in["x"].data<int32_t>() + 1 * 32, 0, 32 * 4);  // row 1: zero (amax = 0)
    for (bool left : {false, true})
      add(std::string("activate_left_") + (left ? "true" : "false"),
          "the same input under activate_left " + std::string(left ? "true" : "false") +
              "; counts (2, 0, 3), M = 6: row 5 unspecified; row 1 zero",
          {"ActivateLeft", "GroupIndex", "TailRows", "AmaxZero", "ScaleOrder"}, params(left), in);
  }
  {
    // OAI: accumulators large enough that C reaches +-20 (past the limit 7 both ways).
    TensorMap in = inputs("swiglu_oai_clamp", {5, 24, {}, 400000});
    add("swiglu_oai_clamp", "swiglu_mode 1, limit 7, alpha 1.702, bias 1: |C| up to ~20",
        {"SwigluOaiClamp"}, params(true, 1), std::move(in));
  }
  for (const char* what : {"single_rounding", "reachable"}) {
    const std::string name = std::string(what) + "_search";
    const Params p = params(true);
    for (uint64_t attempt = 0;; ++attempt) {
      TensorMap in = inputs(name, {8, 64, {8}}, attempt);
      const bool ok = std::string(what) == "single_rounding" ? separates_rounding(p, in)
                                                             : !bounds_of(p, in).y_index.empty();
      if (!ok) {
        if (attempt > 2000) throw std::logic_error(name + ": no separating vector found");
        continue;
      }
      add(name,
          std::string(what) == "single_rounding"
              ? "searched: an exact element where fp32 -> int16 and fp32 -> fp16 -> int8 differ"
              : "searched: some element's code is reachable two ways",
          {std::string(what) == "single_rounding" ? "SingleRounding" : "Reachable", "GroupIndex"},
          p, std::move(in));
      break;
    }
  }
  add("random_no_group_index_9x40", "no group_index: every row, weight_scale [2H]", {"Random"},
      params(false), inputs("random_no_group_index_9x40", {9, 40, {}}));
  add("random_oai_groups_11x34", "swiglu_mode 1 with groups and a tail",
      {"Random", "TailRows", "SwigluOaiClamp"}, params(true, 1),
      inputs("random_oai_groups_11x34", {11, 34, {4, 5}, 300000}));
  return v;
}

// The cases are built once per process (some are searched, and the reference and tests ask for
// them many times); every call returns a copy.
std::vector<CaseSpec> cases() {
  static const std::vector<CaseSpec> built = build_cases();
  return built;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    SwigluQuantStages s = fn(in.at("x"), in.at("weight_scale"), in.at("activation_scale"),
                             opt_input(in, "group_index"), config_of(p));
    out["dequant"] = std::move(s.dequant);
    out["swiglu"] = std::move(s.swiglu);
    out["y"] = std::move(s.y);
    out["scale"] = std::move(s.scale);
  };
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m;
  const SwigluQuantBounds b = bounds_of(p, in);
  const int64_t rows = in.at("x").dim(0), n2 = in.at("x").dim(1), h = n2 / 2;
  int64_t valid = rows;
  if (const Tensor* g = opt_input(in, "group_index")) {
    valid = 0;
    for (int64_t i = 0; i < g->numel(); ++i) valid += g->int_at(i);
  }
  conformance_ops_swiglu_quant_checks::add_swiglu_quant_checks(m, b, rows, h, valid, kOp);
  if (valid < rows) m["dequant"].compared = {0, valid * n2};
  (void)out;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_dequant_swiglu_quant, quant_mode 1: fp32(x) * weight_scale * "
      "activation_scale (exact) -> SwiGLU (activate_left; swiglu_mode 1 = OAI with clamp) "
      "(bounded: exp) -> scale = amax/127, y = S / scale -> int16 RINT -> int8 (single "
      "rounding; reachable); rows past sum(group_index) unspecified.";
  d.sources = {"notes/torch_npu_semantics.md §10 (npu_dequant_swiglu_quant), §12 (SwiGLU-OAI)",
               "notes/vllm_ascend_quant.md §C Quantized MLP path (b)",
               "docs/bounds.md (expert MLP)"};
  d.inputs = {"x", "weight_scale", "activation_scale", "group_index"};
  d.stages = {{"dequant", false, "float32 [M, 2H]: (fp32(x) * weight_scale) * activation_scale"},
              {"swiglu", false, "float32 [M, H] (bounded)"},
              {"y", true, "int8 [M, H] (reachable)"},
              {"scale", true, "float32 [M] (reachable)"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_dequant_swiglu_quant);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::npu_dequant_swiglu_quant);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_dequant_swiglu_quant
}  // namespace qconf::conf
