// Op: npu_grouped_matmul (torch_npu), the W8A8 expert matmul of vllm-ascend's MoE MLP:
// per row group g (expert e), out[rows] = cast((x[rows] @ w[e] (+ int32 bias)) * scale[e] *
// per_token_scale[rows]), or the int32 accumulator (split_item=3, the MC2 path).
//
// Params: group_list_type (cumsum | count | key_value: torch_npu's 0 / 1 / 2), output_dtype
// (bfloat16 | float16 | float32 | int32). Stages: acc (int32, intermediate), out. Every stage is
// exact; rows past the group list's total are not written by the kernel (notes §10: undocumented)
// and are UNSPECIFIED: the check's compared ranges stop at valid_rows * N.
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_grouped_matmul {

constexpr const char* kOp = "npu_grouped_matmul";

std::map<std::string, Note> notes() {
  return {
      {"GroupListCumsum",
       {"FUNCTIONALITY", "group_list_type 0: int64 [E] cumulative row ends (non-decreasing).",
        "Reading cumsum as counts takes the wrong rows for every expert after the first."}},
      {"GroupListCount",
       {"FUNCTIONALITY", "group_list_type 1: int64 [E] row counts per expert.",
        "Reading counts as cumsum makes groups overlap or go backwards."}},
      {"GroupListKeyValue",
       {"FUNCTIONALITY",
        "group_list_type 2: int64 [E, 2] (expert id, count) pairs of the experts with rows, "
        "packed first in increasing id order, then (0, 0) (index.h, vllm-ascend test_moe_mlp).",
        "Using the pair's position instead of its expert id applies the wrong expert's weights."}},
      {"EmptyGroup",
       {"EDGE_CASE", "Experts with zero rows between non-empty ones.",
        "A port that still advances a row or reads an empty expert's scale shifts the groups."}},
      {"TailRows",
       {"EDGE_CASE",
        "sum(group_list) < M: rows past the total are not written by the kernel (garbage on the "
        "NPU) and are UNSPECIFIED here: the stage's compared ranges exclude them.",
        "A verdict that compared them would fail a correct NPU port; a port that writes group "
        "rows into the tail is still caught on the compared rows."}},
      {"Int32Output",
       {"FUNCTIONALITY",
        "output_dtype int32 (split_item=3 in vllm-ascend's MC2 path): the raw accumulator; "
        "scale is not applied.",
        "Feeding dequant_swiglu_quant with scaled values scales twice."}},
      {"PerTokenScale",
       {"FUNCTIONALITY",
        "vllm-ascend path (c): (x @ w) * scale[e] * per_token_scale in fp32 (this order, each "
        "step rounded), then RINT to bf16 (notes/vllm_ascend_quant.md §C).",
        "Applying the scales in another order or fused changes low bits."}},
      {"Int32Bias",
       {"FUNCTIONALITY", "int32 bias [E, N] added to the accumulator before the dequant.",
        "Adding the bias after the scale, or the wrong expert's bias."}},
      {"Random",
       {"BASIC", "Seeded int8 x and w, grid scales, random group sizes over odd shapes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(const std::string& glt, const std::string& out) {
  return Params{{"group_list_type", glt}, {"output_dtype", out}};
}

GroupedMatmulConfig config_of(const Params& p) {
  GroupedMatmulConfig c;
  c.group_list_type = parse_group_list_type(param_str(p, "group_list_type", "cumsum"));
  c.output_dtype = parse_dtype(param_str(p, "output_dtype", "bfloat16"));
  return c;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

// The same per-expert counts as a group list of each type.
Tensor group_list_of(const std::vector<int64_t>& counts, const std::string& type) {
  const int64_t e = static_cast<int64_t>(counts.size());
  if (type == "count") return Tensor::from<int64_t>({e}, counts);
  if (type == "cumsum") {
    std::vector<int64_t> c;
    int64_t s = 0;
    for (int64_t v : counts) c.push_back(s += v);
    return Tensor::from<int64_t>({e}, c);
  }
  std::vector<int64_t> kv;
  for (int64_t i = 0; i < e; ++i)
    if (counts[static_cast<size_t>(i)] > 0) {
      kv.push_back(i);
      kv.push_back(counts[static_cast<size_t>(i)]);
    }
  kv.resize(static_cast<size_t>(2 * e), 0);
  return Tensor::from<int64_t>({e, 2}, kv);
}

struct Spec {
  int64_t m, k, n;
  std::vector<int64_t> counts;  // per expert
  bool per_token = true;
  bool bias = false;
  DType scale_dt = DType::kF32;
};

TensorMap inputs(const std::string& name, const Spec& s, const std::string& glt) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const int64_t e = static_cast<int64_t>(s.counts.size());
  TensorMap in;
  in["x"] = gen::int_tensor(DType::kI8, {s.m, s.k}, -128, 127, seed, 0);
  in["weight"] = gen::int_tensor(DType::kI8, {e, s.k, s.n}, -128, 127, seed, 1);
  // Scales ~ 2^-16 .. 2^-8 with full fp32 mantissas (so the fp32 steps round).
  in["scale"] = gen::float_tensor(s.scale_dt, {e, s.n}, gen::FloatDist::normal(-12), seed, 2);
  if (s.per_token)
    in["per_token_scale"] =
        gen::float_tensor(DType::kF32, {s.m}, gen::FloatDist::grid(1, 1 << 20, -27), seed, 3);
  if (s.bias) in["bias"] = gen::int_tensor(DType::kI32, {e, s.n}, -100000, 100000, seed, 4);
  in["group_list"] = group_list_of(s.counts, glt);
  return in;
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
  // The same groups in the three formats: experts 0, 2, 3 have rows, 1 and 4 none, and 2 tail
  // rows past the total. Each format's case carries its own list, so a port that reads one
  // format as another fails.
  const Spec groups{11, 40, 24, {3, 0, 4, 2, 0}, true, false};
  for (const char* t : {"cumsum", "count", "key_value"}) {
    const std::string flag =
        std::string(t) == "cumsum"
            ? "GroupListCumsum"
            : (std::string(t) == "count" ? "GroupListCount" : "GroupListKeyValue");
    add(std::string("group_list_") + t,
        "counts (3, 0, 4, 2, 0) as group_list_type " + std::string(t) +
            "; M = 11: rows 9 and 10 unspecified",
        {flag, "EmptyGroup", "TailRows", "PerTokenScale"}, params(t, "bfloat16"),
        inputs("group_list_shared", groups, t));
  }
  add("int32_output_mc2", "int32 accumulator output (split_item=3), tail rows, int32 bias",
      {"Int32Output", "TailRows", "Int32Bias", "GroupListCount"}, params("count", "int32"),
      inputs("int32_output_mc2", {9, 64, 32, {2, 3, 0, 3}, false, true}, "count"));
  add("bias_fp16_no_tail", "int32 bias, fp16 output, every row in a group",
      {"Int32Bias", "PerTokenScale", "GroupListCumsum"}, params("cumsum", "float16"),
      inputs("bias_fp16_no_tail", {8, 33, 16, {5, 3}, true, true}, "cumsum"));
  add("bf16_scale_w8a8",
      "vllm-ascend W8A8 gmm2: bf16 weight scale (params dtype), per-token "
      "scale, bf16 output",
      {"PerTokenScale", "GroupListCount"}, params("count", "bfloat16"),
      inputs("bf16_scale_w8a8", {7, 48, 40, {1, 2, 4}, true, false, DType::kBF16}, "count"));
  add("float32_output_key_value", "fp32 output (no final cast), key_value list with a tail",
      {"GroupListKeyValue", "TailRows", "EmptyGroup"}, params("key_value", "float32"),
      inputs("float32_output_key_value", {10, 20, 8, {0, 4, 0, 0, 3}, true, false}, "key_value"));
  // Seeded groups over odd shapes.
  struct R {
    const char* name;
    int64_t m, k, n, e;
    const char* glt;
    const char* out;
  };
  for (const R& r : {R{"random_8exp_37x72x48", 37, 72, 48, 8, "count", "bfloat16"},
                     R{"random_16exp_53x100x24", 53, 100, 24, 16, "cumsum", "float16"},
                     R{"random_5exp_29x64x16_int32", 29, 64, 16, 5, "key_value", "int32"}}) {
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + r.name);
    // Counts: uniform in [0, 2M/E], then trimmed so that the total stays <= M.
    Tensor c = gen::int_tensor(DType::kI64, {r.e}, 0, 2 * r.m / r.e, seed, 9);
    std::vector<int64_t> counts = c.to_vector<int64_t>();
    int64_t total = 0;
    for (auto& x : counts) {
      x = std::min(x, r.m - total);
      total += x;
    }
    add(r.name, "seeded inputs and group sizes", {"Random"}, params(r.glt, r.out),
        inputs(r.name, {r.m, r.k, r.n, counts, true, false}, r.glt));
  }
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
    GroupedMatmulStages s =
        fn(in.at("x"), in.at("weight"), opt_input(in, "scale"), opt_input(in, "per_token_scale"),
           opt_input(in, "bias"), in.at("group_list"), config_of(p));
    if (s.acc.numel()) out["acc"] = std::move(s.acc);
    out["out"] = std::move(s.out);
  };
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m;
  const Tensor& w = in.at("weight");
  const int64_t rows = in.at("x").dim(0), n = w.dim(2);
  const GroupRows g = group_rows(in.at("group_list"), config_of(p).group_list_type, w.dim(0), rows);
  if (g.valid_rows < rows) {
    if (g.valid_rows == 0) throw std::logic_error("npu_grouped_matmul: a case with no valid row");
    for (const char* s : {"acc", "out"}) m[s].compared = {0, g.valid_rows * n};
  }
  (void)out;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_grouped_matmul, W8A8: int8 x [M, K] by the group's expert weight int8 [E, "
      "K, N] into an int32 accumulator (exact), then the quant_matmul epilogue ((acc + int32 "
      "bias) -> fp32 * scale[e] * per_token_scale -> cast RINT) or the int32 accumulator. "
      "group_list types cumsum / count / key_value; rows past the total unspecified.";
  d.sources = {"notes/torch_npu_semantics.md §10 (npu_grouped_matmul), §2 (epilogue order)",
               "notes/vllm_ascend_quant.md §C Quantized MLP (paths b and c)",
               "op-plugin docs torch_npu-npu_grouped_matmul.md [doc]",
               "reference/include/qconf/ops/index.h (group list formats)"};
  d.inputs = {"x", "weight", "scale", "per_token_scale", "bias", "group_list"};
  d.stages = {{"acc", false, "int32 [M, N]: x @ w[e] (+ int32 bias for int32 output)"},
              {"out", true, "output_dtype [M, N]"}};
  d.variants = {};
  d.notes = notes();
  d.reference = kernel(ref::npu_grouped_matmul);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel([](const Tensor& x, const Tensor& w, const Tensor* s, const Tensor* pt,
                          const Tensor* b, const Tensor& gl, const GroupedMatmulConfig& c) {
    return opt::npu_grouped_matmul(x, w, s, pt, b, gl, c);
  });
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_grouped_matmul
}  // namespace qconf::conf
