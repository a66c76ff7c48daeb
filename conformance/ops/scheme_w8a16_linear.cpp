// scheme_w8a16_linear: one W8A16 linear layer end to end from its checkpoint tensors: transpose,
// scale and offset rounded to params dtype at load, then npu_weight_quant_batchmatmul
// (x @ ((W + offset) * scale)). The accumulation is BOUNDED (order unspecified), delegated to the
// npu_weight_quant_batchmatmul oracle. Source: notes/vllm_ascend_quant.md §A W8A16.
#include "qconf/ops/weight_quant_bmm.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w8a16_linear {

constexpr const char* kOp = "scheme_w8a16_linear";
using namespace scheme_pipeline;

struct Loaded {
  Tensor wt, scale, offset;
};
Loaded load(const Params& p, const TensorMap& in) {
  const DType pdt = pdt_of(p);
  return {transpose_2d(in.at("weight")), flat_param(in.at("weight_scale"), pdt),
          flat_param(in.at("weight_offset"), pdt)};
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  if (in.at("x").dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                in.at("x").describe());
  Loaded l = load(p, in);
  WqbmmArgs a;
  a.x = &in.at("x");
  a.weight = &l.wt;
  a.antiquant_scale = &l.scale;
  a.antiquant_offset = &l.offset;
  WqbmmConfig cfg;
  WqbmmStages s;
  // if constexpr: the reference instantiation never references qconf::opt (golden-only builds
  // link without the optimized library).
  if constexpr (kOpt)
    s = opt::npu_weight_quant_batchmatmul(a, cfg);
  else
    s = ref::npu_weight_quant_batchmatmul(a, cfg);
  out["weight_t"] = std::move(l.wt);
  out["weight_scale_param"] = std::move(l.scale);
  out["weight_offset_param"] = std::move(l.offset);
  if (s.antiquant_weight.numel()) out["antiquant_weight"] = std::move(s.antiquant_weight);
  if (s.acc.numel()) out["acc"] = std::move(s.acc);
  out["y"] = std::move(s.y);
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m = special_floats(out);
  Loaded l = load(p, in);
  TensorMap sub;
  sub["x"] = in.at("x");
  sub["weight"] = l.wt;
  sub["antiquant_scale"] = l.scale;
  sub["antiquant_offset"] = l.offset;
  const OpDef* w = OpRegistry::instance().find("npu_weight_quant_batchmatmul");
  if (!w || !w->oracle)
    throw std::logic_error("npu_weight_quant_batchmatmul oracle not registered");
  for (auto& [name, c] : w->oracle(Params::object(), sub, out)) m[name] = c;
  return m;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  struct R {
    const char* name;
    DType pdt;
    int64_t m, k, n;
  };
  for (const R& r : {R{"bf16_m3_k40_n24", DType::kBF16, 3, 40, 24},
                     R{"fp16_m2_k72_n17", DType::kF16, 2, 72, 17}}) {
    CaseSpec c;
    c.name = r.name;
    c.comment = "seeded checkpoint-like layer: int8 weight, fp32 weight_scale and weight_offset";
    c.flags = {"Pipeline", "LoadRounding"};
    c.params = {{"params_dtype", r.pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + r.name);
    c.inputs["x"] = gen::float_tensor(r.pdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 0);
    c.inputs["weight"] = gen::int_tensor(DType::kI8, {r.n, r.k}, -128, 127, s, 1);
    c.inputs["weight_scale"] = ckpt_scale({r.n, 1}, s, 2);
    c.inputs["weight_offset"] =
        gen::float_tensor(DType::kF32, {r.n, 1}, gen::FloatDist::grid(-40, 40, -3), s, 3);
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W8A16 linear layer from checkpoint tensors: weight transposed, weight_scale and "
      "weight_offset rounded once to params dtype, npu_weight_quant_batchmatmul with the offset "
      "ADDED: y = x @ ((W + offset) * scale) (fp32 accumulation BOUNDED).";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A16", "vllm-ascend quantization/methods/w8a16.py",
               "docs/bounds.md (npu_weight_quant_batchmatmul)"};
  d.inputs = {"x", "weight", "weight_scale", "weight_offset"};
  d.stages = {{"weight_t", false, "int8 [K, N]"},
              {"weight_scale_param", false, "params dtype [N]"},
              {"weight_offset_param", false, "params dtype [N]"},
              {"antiquant_weight", false, "params dtype [K, N]: (w + offset) * scale"},
              {"acc", false, "float32 [M, N] (bounded)"},
              {"y", true, "params dtype [M, N] (bounded)"}};
  d.notes = {{"Pipeline",
              {"FUNCTIONALITY", "the whole layer, load-time transforms included",
               "a port that skips the load rounding, or subtracts the offset, differs"}},
             {"LoadRounding",
              {"DIVERGENCE", "fp32 checkpoint scales/offsets rounded to the params dtype at load",
               "a port using the fp32 values directly differs"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w8a16_linear
}  // namespace qconf::conf
