// scheme_w8a8_static_linear: one W8A8 (static) linear layer end to end from its ModelSlim
// checkpoint tensors: transpose; aclnn_input_scale_reciprocal = 1/input_scale computed in params
// dtype and repeated K times; input_offset repeated and cast; npu_quantize (x * recip + offset,
// RINT, saturate); npu_quant_matmul ((acc + quant_bias) * deq_scale, fp32 deq_scale for bf16
// models, int64 quant param for fp16 models). Source: notes/vllm_ascend_quant.md §A W8A8 (static).
#include "qconf/ops/quant_matmul.h"
#include "qconf/ops/quantize.h"
#include "qconf/ops/scales.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w8a8_static_linear {

constexpr const char* kOp = "scheme_w8a8_static_linear";
using namespace scheme_pipeline;

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                x.describe());
  const int64_t k = x.dim(-1);
  Tensor wt = transpose_2d(in.at("weight"));
  // input_scale is loaded into a params-dtype parameter, then 1/x in that dtype.
  ReciprocalResult rr = ref::w8a8_static_input_scale_reciprocal(
      widen_f32(in.at("input_scale")), pdt, ReciprocalReading::kParamsDtype);
  Tensor recip(pdt, {k}), off(pdt, {k});
  const Tensor& io = in.at("input_offset");
  if (io.dtype() != DType::kI8 || io.numel() != 1 || rr.reciprocal.numel() != 1)
    throw std::invalid_argument(std::string(kOp) +
                                ": input_scale and input_offset must hold one "
                                "element (int8 offset)");
  const uint16_t ob = pdt == DType::kBF16 ? num::f32_to_bf16(static_cast<float>(io.int_at(0)))
                                          : num::f32_to_f16(static_cast<float>(io.int_at(0)));
  for (int64_t i = 0; i < k; ++i) {
    recip.data<uint16_t>()[i] = rr.reciprocal.data<uint16_t>()[0];
    off.data<uint16_t>()[i] = ob;  // small integers: exact in bf16/fp16
  }
  QuantizeConfig qc;
  qc.dtype = QuantizeOutType::kQInt8;
  qc.axis = -1;
  qc.div_mode = false;
  // if constexpr: the reference instantiation never references qconf::opt (golden-only builds
  // link without the optimized library).
  QuantizeStages q;
  if constexpr (kOpt)
    q = opt::npu_quantize(x, recip, &off, qc);
  else
    q = ref::npu_quantize(x, recip, &off, qc);
  QuantMatmulConfig mc;
  mc.output_dtype = pdt;
  const Tensor& deq = in.at("deq_scale");
  const Tensor& qb = in.at("quant_bias");
  QuantMatmulStages m;
  if constexpr (kOpt)
    m = opt::npu_quant_matmul(q.y, wt, deq, nullptr, nullptr, &qb, mc, true);
  else
    m = ref::npu_quant_matmul(q.y, wt, deq, nullptr, nullptr, &qb, mc);
  out["weight_t"] = std::move(wt);
  out["input_scale_reciprocal"] = std::move(recip);
  out["input_offset_param"] = std::move(off);
  out["x_q"] = std::move(q.y);
  out["acc"] = std::move(m.acc);
  out["y"] = std::move(m.out);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  struct R {
    const char* name;
    DType pdt;
    int64_t m, k, n;
  };
  for (const R& r : {R{"bf16_m3_k40_n24", DType::kBF16, 3, 40, 24},
                     R{"fp16_m4_k72_n17", DType::kF16, 4, 72, 17}}) {
    CaseSpec c;
    c.name = r.name;
    c.comment =
        "seeded ModelSlim-like layer; deq_scale fp32 (bf16 model) or the int64 quant param "
        "npu_trans_quant_param makes (fp16 model)";
    c.flags = {"Pipeline", "ReciprocalInParamsDtype"};
    c.params = {{"params_dtype", r.pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + r.name);
    c.inputs["x"] = gen::float_tensor(r.pdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 0);
    c.inputs["weight"] = gen::int_tensor(DType::kI8, {r.n, r.k}, -128, 127, s, 1);
    c.inputs["input_scale"] = Tensor::from<uint32_t>(DType::kF32, {1}, {num::f32_bits(0.0234f)});
    c.inputs["input_offset"] = Tensor::from<int8_t>({1}, {3});
    c.inputs["quant_bias"] = gen::int_tensor(DType::kI32, {r.n}, -5000, 5000, s, 3);
    Tensor deq = ckpt_scale({r.n}, s, 2);
    c.inputs["deq_scale"] =
        r.pdt == DType::kBF16
            ? deq
            : ref::npu_trans_quant_param(deq, nullptr, TransQuantEncoding::kFp19Trunc).quant_param;
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W8A8 static linear layer from ModelSlim checkpoint tensors: 1/input_scale in params dtype "
      "repeated K, npu_quantize(x * recip + offset, RINT), npu_quant_matmul((acc + quant_bias) * "
      "deq_scale) to params dtype.";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8 (static)",
               "vllm-ascend quantization/methods/w8a8_static.py"};
  d.inputs = {"x", "weight", "input_scale", "input_offset", "quant_bias", "deq_scale"};
  d.stages = {{"weight_t", false, "int8 [K, N]"},
              {"input_scale_reciprocal", false, "params dtype [K]: 1/input_scale, repeated"},
              {"input_offset_param", false, "params dtype [K]"},
              {"x_q", false, "int8 [M, K]"},
              {"acc", false, "int32 [M, N]"},
              {"y", true, "params dtype [M, N]"}};
  d.notes = {{"Pipeline",
              {"FUNCTIONALITY", "the whole layer, load-time transforms included",
               "a port computing 1/input_scale in fp32 or dividing by the scale differs"}},
             {"ReciprocalInParamsDtype",
              {"DIVERGENCE", "1/input_scale rounded to the params dtype before quantizing",
               "see w8a8_static_input_scale_reciprocal"}}};
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

}  // namespace conformance_ops_scheme_w8a8_static_linear
}  // namespace qconf::conf
