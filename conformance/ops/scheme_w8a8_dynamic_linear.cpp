// scheme_w8a8_dynamic_linear: one W8A8_DYNAMIC linear layer end to end, from its checkpoint
// tensors: load-time transforms (transpose, weight_scale rounded to params dtype), then apply
// (npu_dynamic_quant -> npu_quant_matmul with pertoken_scale).
// Source: notes/vllm_ascend_quant.md §A W8A8_DYNAMIC (+ pitfall 2);
// reference/schemes/w8a8_dynamic.cpp. `qconf checkpoint DIR --layer P --run` writes cases of this
// op from real weights.
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/ops/scales.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w8a8_dynamic_linear {

constexpr const char* kOp = "scheme_w8a8_dynamic_linear";
using namespace scheme_pipeline;

// The scale npu_quant_matmul receives: the bf16 parameter for bf16 models; for fp16 models the
// fp32 copy of the fp16 parameter (torch_npu takes no fp16 scale) [inf: which copy apply passes].
Tensor matmul_scale(const Tensor& param) {
  return param.dtype() == DType::kBF16 ? param : widen_f32(param);
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                x.describe());
  Tensor wt = transpose_2d(in.at("weight"));
  Tensor sp = flat_param(in.at("weight_scale"), pdt);
  DynQuantConfig dq;
  // if constexpr: the reference instantiation never references qconf::opt (golden-only builds
  // link without the optimized library).
  DynQuantStages q;
  if constexpr (kOpt)
    q = opt::npu_dynamic_quant(x, nullptr, nullptr, dq);
  else
    q = ref::npu_dynamic_quant(x, nullptr, nullptr, dq);
  QuantMatmulConfig mc;
  mc.output_dtype = pdt;
  const Tensor ms = matmul_scale(sp);
  QuantMatmulStages m;
  if constexpr (kOpt)
    m = opt::npu_quant_matmul(q.y, wt, ms, nullptr, &q.scale, nullptr, mc);
  else
    m = ref::npu_quant_matmul(q.y, wt, ms, nullptr, &q.scale, nullptr, mc);
  out["weight_t"] = std::move(wt);
  out["weight_scale_param"] = std::move(sp);
  out["x_q"] = std::move(q.y);
  out["x_scale"] = std::move(q.scale);
  out["y"] = std::move(m.out);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  struct R {
    const char* name;
    DType pdt;
    int64_t m, k, n;
  };
  for (const R& r :
       {R{"bf16_m3_k40_n24", DType::kBF16, 3, 40, 24}, R{"fp16_m5_k72_n17", DType::kF16, 5, 72, 17},
        R{"bf16_m1_k129_n9", DType::kBF16, 1, 129, 9}}) {
    CaseSpec c;
    c.name = r.name;
    c.comment = "seeded checkpoint-like layer: int8 weight [N, K], fp32 weight_scale [N, 1]";
    c.flags = {"Pipeline", "LoadRounding"};
    c.params = {{"params_dtype", r.pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + r.name);
    c.inputs["x"] = gen::float_tensor(r.pdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 0);
    c.inputs["weight"] = gen::int_tensor(DType::kI8, {r.n, r.k}, -128, 127, s, 1);
    c.inputs["weight_scale"] = ckpt_scale({r.n, 1}, s, 2);
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W8A8_DYNAMIC linear layer from checkpoint tensors: weight [N, K] int8 transposed, "
      "weight_scale rounded once to params dtype (RNE), npu_dynamic_quant (mul_reciprocal, RINT) "
      "then npu_quant_matmul (acc * scale * pertoken_scale, output params dtype).";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8_DYNAMIC, pitfall 2",
               "vllm-ascend quantization/methods/w8a8_dynamic.py",
               "reference/schemes/w8a8_dynamic.cpp (checkpoint declarations)"};
  d.inputs = {"x", "weight", "weight_scale"};
  d.stages = {{"weight_t", false, "int8 [K, N]: the weight after process_weights_after_loading"},
              {"weight_scale_param", false, "params dtype [N]: the loaded, flattened scale"},
              {"x_q", false, "int8 [M, K]: npu_dynamic_quant codes"},
              {"x_scale", false, "float32 [M]: per-token scale"},
              {"y", true, "params dtype [M, N]"}};
  d.notes = {{"Pipeline",
              {"FUNCTIONALITY", "the whole layer, load-time transforms included",
               "a port that skips the load rounding or the transpose differs"}},
             {"LoadRounding",
              {"DIVERGENCE",
               "fp32 checkpoint scales not representable in the params dtype (rounded at load)",
               "a port using the fp32 scale directly gives different y"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = [](const Params&, const TensorMap&, const TensorMap& out) {
    return special_floats(out);
  };
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w8a8_dynamic_linear
}  // namespace qconf::conf
