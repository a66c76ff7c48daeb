// scheme_w4a4_dynamic_linear: one W4A4_DYNAMIC (LAOS) linear layer end to end, from its
// checkpoint tensors (vllm-ascend quantization/methods/w4a4_laos_dynamic.py
// AscendW4A4LaosDynamicLinearMethod):
//
//   process_weights_after_loading:
//     weight_scale = weight_scale.to(float32)                      (declared float32: identity)
//     weight = npu_convert_weight_to_int4pack(weight.to(int32))    int8 [N, K] -> int32 [N, K/8]
//     weight = weight.transpose(-1, -2)                            a view [K/8, N]
//   apply:
//     (x_q, s) = npu_dynamic_quant(x, dst_type=quint4x2)           int32 [M, K/8], fp32 [M]
//     mm = npu_quant_matmul(x_q, weight, scale=weight_scale.view(-1), pertoken_scale=s,
//                           bias=None, output_dtype=float16)
//     y = mm.to(x.dtype) (+ bias.to(x.dtype), in x dtype)
//
// The matmul ALWAYS outputs float16, then casts: for bf16 models the result is rounded twice
// (fp32 -> fp16 -> bf16) and overflows to Inf above 65504 (vectors fp16_output_*).
// Source: notes/vllm_ascend_quant.md §A W4A4_DYNAMIC (LAOS); vllm-ascend w4a4_laos_dynamic.py
// @1031b861 (read via the code index); notes/torch_npu_semantics.md §1, §2, §5.
#include "qconf/conformance/op.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/quant_matmul.h"
#include "scheme_int4_util.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a4_dynamic_linear {

constexpr const char* kOp = "scheme_w4a4_dynamic_linear";
using namespace scheme_pipeline;  // NOLINT
using namespace scheme_int4;      // NOLINT

// mm.to(dtype): fp16 -> bf16 with RNE (identity for fp16 models).
Tensor cast_from_f16(const Tensor& mm, DType pdt) {
  if (pdt == DType::kF16) return mm;
  Tensor o(DType::kBF16, mm.shape());
  for (int64_t i = 0; i < mm.numel(); ++i)
    o.data<uint16_t>()[i] = static_cast<uint16_t>(
        num::convert(num::kF16, mm.data<uint16_t>()[i], num::kBF16, num::Round::kRint));
  return o;
}

// output + bias.to(dtype): one addition in the model dtype.
Tensor add_bias(const Tensor& y, const Tensor& bias, DType pdt) {
  const int64_t n = y.dim(-1);
  if (bias.dtype() != pdt || bias.rank() != 1 || bias.dim(0) != n)
    throw std::invalid_argument(std::string(kOp) + ": bias must be " +
                                std::string(dtype_name(pdt)) +
                                " [N] with N = " + std::to_string(n) + ", got " + bias.describe());
  const num::FloatFormat& f = pdt == DType::kBF16 ? num::kBF16 : num::kF16;
  Tensor o(pdt, y.shape());
  for (int64_t i = 0; i < y.numel(); ++i)
    o.data<uint16_t>()[i] =
        static_cast<uint16_t>(num::fp_add(f, y.data<uint16_t>()[i], bias.data<uint16_t>()[i % n]));
  return o;
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt || x.rank() != 2)
    throw std::invalid_argument(std::string(kOp) + ": x must be " + std::string(dtype_name(pdt)) +
                                " [M, K] (the params dtype), got " + x.describe());
  const Tensor& w = in.at("weight");
  if (w.dtype() != DType::kI8 || w.rank() != 2 || w.dim(1) != x.dim(1))
    throw std::invalid_argument(std::string(kOp) + ": weight must be int8 [N, K] with K = " +
                                std::to_string(x.dim(1)) + ", got " + w.describe());
  // process_weights_after_loading.
  Tensor ws = flat_f32(in.at("weight_scale"), kOp, "weight_scale");
  const Tensor w32 = widen_i32(w, kOp);
  Tensor packed;
  if constexpr (kOpt)
    packed = opt::npu_convert_weight_to_int4pack(w32);
  else
    packed = ref::npu_convert_weight_to_int4pack(w32);
  const Tensor x2 = x2_from_transposed(packed, kOp);
  // apply.
  DynQuantConfig dq;
  dq.int4 = true;
  DynQuantStages q;
  if constexpr (kOpt)
    q = opt::npu_dynamic_quant(x, nullptr, nullptr, dq);
  else
    q = ref::npu_dynamic_quant(x, nullptr, nullptr, dq);
  QuantMatmulConfig mc;
  mc.output_dtype = DType::kF16;
  QuantMatmulStages m;
  if constexpr (kOpt)
    m = opt::npu_quant_matmul(q.y, x2, ws, nullptr, &q.scale, nullptr, mc, true);
  else
    m = ref::npu_quant_matmul(q.y, x2, ws, nullptr, &q.scale, nullptr, mc);
  Tensor y = cast_from_f16(m.out, pdt);
  if (auto it = in.find("bias"); it != in.end()) y = add_bias(y, it->second, pdt);
  out["weight_scale_param"] = std::move(ws);
  out["weight_packed"] = std::move(packed);
  out["x_q"] = std::move(q.y);
  out["x_scale"] = std::move(q.scale);
  out["acc"] = std::move(m.acc);
  out["mm_out"] = std::move(m.out);
  out["y"] = std::move(y);
}

struct Spec {
  DType pdt;
  int64_t m, k, n;
  bool bias;
};

TensorMap random_inputs(const std::string& name, const Spec& r) {
  const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
  TensorMap in;
  in["x"] = gen::float_tensor(r.pdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 0);
  in["weight"] = gen::int_tensor(DType::kI8, {r.n, r.k}, -8, 7, s, 1);
  // m * 2^-12, m in [16, 255]: per-channel fp32 scales (int4 weights have large steps).
  in["weight_scale"] =
      gen::float_tensor(DType::kF32, {r.n, 1}, gen::FloatDist::grid(16, 255, -12), s, 2);
  in["weight_offset"] =
      gen::float_tensor(DType::kF32, {r.n, 1}, gen::FloatDist::grid(-3, 3, 0), s, 3);
  if (r.bias) in["bias"] = gen::float_tensor(r.pdt, {r.n}, gen::FloatDist::normal(-2), s, 4);
  return in;
}

// Hand-built: x rows of integers with |max| = 7, so npu_dynamic_quant's multiplier is 7/7 = 1,
// the codes are x itself and the per-token scale is 1. Column 0 accumulates 1 with
// weight_scale 1 + 2^-8 + 2^-12: fp32 1.000244..+2^-8, fp16 1 + 2^-8 (a bf16 tie), bf16 1
// (even) -- a direct bf16 output gives 1 + 2^-7. Column 1 accumulates 7*7*(K-1) with
// weight_scale 100: above 65504, so the fp16 output (and the bf16 cast) is +Inf.
TensorMap fp16_output_inputs(DType pdt) {
  const int64_t m = 2, k = 16, n = 8;
  TensorMap in;
  Tensor x(pdt, {m, k});
  Tensor w(DType::kI8, {n, k});
  auto put = [&](int64_t r, int64_t c, float v) {
    x.data<uint16_t>()[r * k + c] = pdt == DType::kBF16 ? num::f32_to_bf16(v) : num::f32_to_f16(v);
  };
  for (int64_t c = 0; c < k; ++c) {
    put(0, c, c == 1 ? 1.0f : 7.0f);
    put(1, c, static_cast<float>((c * 5) % 15 - 7));  // -7..7, contains -7
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      int8_t v = static_cast<int8_t>((r * 3 + c * 7) % 16 - 8);
      if (r == 0) v = c == 1 ? 1 : 0;
      if (r == 1) v = c == 1 ? 0 : 7;
      w.data<int8_t>()[r * k + c] = v;
    }
  in["x"] = x;
  in["weight"] = w;
  std::vector<uint32_t> ws(n);
  ws[0] = num::f32_bits(1.0f + 0x1p-8f + 0x1p-12f);
  ws[1] = num::f32_bits(100.0f);
  for (int64_t r = 2; r < n; ++r) ws[r] = num::f32_bits(static_cast<float>(r) * 0x1p-6f);
  in["weight_scale"] = Tensor::from<uint32_t>(DType::kF32, {n, 1}, ws);
  in["weight_offset"] = Tensor::from<uint32_t>(DType::kF32, {n, 1}, std::vector<uint32_t>(n, 0));
  return in;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, DType pdt,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  add("fp16_output_bf16_model",
      "bf16 model: column 0 rounds fp32 -> fp16 to a bf16 tie (then 1.0), column 1 overflows "
      "fp16 (+Inf)",
      {"Fp16Output"}, DType::kBF16, fp16_output_inputs(DType::kBF16));
  add("fp16_output_fp16_model", "the same layer in an fp16 model (one rounding; +Inf)",
      {"Fp16Output"}, DType::kF16, fp16_output_inputs(DType::kF16));
  for (const auto& [name, spec] : std::vector<std::pair<std::string, Spec>>{
           {"bf16_m3_k64_n16_bias", {DType::kBF16, 3, 64, 16, true}},
           {"fp16_m5_k40_n8", {DType::kF16, 5, 40, 8, false}},
           {"bf16_m1_k136_n24", {DType::kBF16, 1, 136, 24, false}}})
    add(name, "seeded checkpoint-like layer, int4 weight values in int8 [N, K]",
        {"Pipeline", "Random"}, spec.pdt, random_inputs(name, spec));
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W4A4_DYNAMIC (LAOS) linear layer from checkpoint tensors: int4 values in int8 [N, K] "
      "packed by npu_convert_weight_to_int4pack and transposed at load; npu_dynamic_quant to "
      "int4 (7/amax, RINT), npu_quant_matmul int4 x int4 (acc * weight_scale * pertoken) to "
      "float16, cast to the model dtype, + bias in the model dtype.";
  d.sources = {"notes/vllm_ascend_quant.md §A W4A4_DYNAMIC (LAOS)",
               "vllm-ascend quantization/methods/w4a4_laos_dynamic.py",
               "notes/torch_npu_semantics.md §1 (int4 dynamic quant), §2 (int4 x2 as the "
               "transpose of a contiguous (n, k/8)), §5",
               "reference/schemes/w4a4_dynamic.cpp (checkpoint declarations)"};
  d.inputs = {"x", "weight", "weight_scale", "weight_offset", "bias"};
  d.stages = {
      {"weight_scale_param", false, "float32 [N]: weight_scale.to(float32).view(-1)"},
      {"weight_packed", false, "int32 [N, K/8]: npu_convert_weight_to_int4pack(weight.int32)"},
      {"x_q", false, "int32 [M, K/8]: npu_dynamic_quant int4 codes, packed"},
      {"x_scale", false, "float32 [M]: per-token scale"},
      {"acc", false, "int32 [M, N]: int4 x int4 accumulator"},
      {"mm_out", false, "float16 [M, N]: npu_quant_matmul output (always float16)"},
      {"y", true, "params dtype [M, N]: mm_out.to(dtype) (+ bias)"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole layer, load-time transforms included",
        "a port that packs the weight along N, or reads the packed words untransposed, differs"}},
      {"Fp16Output",
       {"DIVERGENCE",
        "output_dtype is float16 whatever the model dtype; bf16 models round twice and "
        "overflow at 65504",
        "a port that asks the matmul for the model dtype directly (as W4A4_FLATQUANT_DYNAMIC "
        "does) gives 1 + 2^-7 instead of 1 and a finite value instead of +Inf"}},
      {"Random",
       {"BASIC", "seeded inputs; shapes with N a multiple of 8 (int4 matmul), K % 8 == 0",
        "general coverage"}}};
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

}  // namespace conformance_ops_scheme_w4a4_dynamic_linear
}  // namespace qconf::conf
