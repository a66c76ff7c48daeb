// W8A8_DYNAMIC MoE: load-time transforms and the reference expert MLP (qconf/ops/moe_w8a8.h).
#include "qconf/ops/moe_w8a8.h"

#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/ops/expert_mlp.h"

namespace qconf {

std::string_view w8a8_moe_mlp_path_name(W8a8MoeMlpPath p) {
  return p == W8a8MoeMlpPath::kFused ? "fused" : "dequant_swiglu";
}
W8a8MoeMlpPath parse_w8a8_moe_mlp_path(std::string_view s) {
  if (s == "fused") return W8a8MoeMlpPath::kFused;
  if (s == "dequant_swiglu") return W8a8MoeMlpPath::kDequantSwiglu;
  throw std::invalid_argument("mlp_path must be fused or dequant_swiglu, got \"" + std::string(s) +
                              "\"");
}

namespace {
Tensor widen(const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  Tensor w(DType::kF32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint16_t b = t.data<uint16_t>()[i];
    w.data<float>()[i] = t.dtype() == DType::kF16 ? num::f16_to_f32(b) : num::bf16_to_f32(b);
  }
  return w;
}
void need(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("W8A8_DYNAMIC MoE load: " + what);
}
}  // namespace

TensorMap w8a8_dynamic_moe_load(const Tensor& w13_weight, const Tensor& w13_weight_scale,
                                const Tensor& w2_weight, const Tensor& w2_weight_scale, DType pdt,
                                int64_t start, int64_t count) {
  need(w13_weight.dtype() == DType::kI8 && w13_weight.rank() == 3 && w13_weight.dim(1) % 2 == 0,
       "w13_weight must be int8 [E, 2I, H], got " + w13_weight.describe());
  const int64_t e = w13_weight.dim(0), i2 = w13_weight.dim(1), h = w13_weight.dim(2);
  need(w2_weight.dtype() == DType::kI8 && w2_weight.rank() == 3 && w2_weight.dim(0) == e &&
           w2_weight.dim(1) == h && w2_weight.dim(2) == i2 / 2,
       "w2_weight must be int8 [E, H, I] = [" + std::to_string(e) + ", " + std::to_string(h) +
           ", " + std::to_string(i2 / 2) + "], got " + w2_weight.describe());
  need(w13_weight_scale.rank() >= 2 && w13_weight_scale.dim(0) == e &&
           w13_weight_scale.dim(1) == i2 && w13_weight_scale.numel() == e * i2,
       "w13_weight_scale must be [E, 2I, 1], got " + w13_weight_scale.describe());
  need(w2_weight_scale.rank() >= 2 && w2_weight_scale.dim(0) == e && w2_weight_scale.dim(1) == h &&
           w2_weight_scale.numel() == e * h,
       "w2_weight_scale must be [E, H, 1], got " + w2_weight_scale.describe());
  if (count < 0) start = 0, count = e;
  TensorMap m;
  // transpose(1, 2).contiguous() (then NZ: layout only).
  m["w13_weight_t"] = moe_load::transpose_12(moe_load::slice_experts(w13_weight, start, count));
  m["w2_weight_t"] = moe_load::transpose_12(moe_load::slice_experts(w2_weight, start, count));
  // The pdt parameters (one RNE rounding at load), viewed [E, N]; w13_weight_scale_fp32 copy.
  m["w13_scale_param"] =
      moe_load::scale_param(moe_load::slice_experts(w13_weight_scale, start, count), pdt);
  m["w13_scale_fp32"] = widen(m["w13_scale_param"]);
  m["w2_scale_param"] =
      moe_load::scale_param(moe_load::slice_experts(w2_weight_scale, start, count), pdt);
  return m;
}

Tensor w8a8_moe_gmm2_scale(const Tensor& w2_scale_param) {
  return w2_scale_param.dtype() == DType::kBF16 ? w2_scale_param : widen(w2_scale_param);
}

namespace moe_w8a8_detail {
// cumsum_group_list(counts, 1, 0): the running sum (moe_mlp.py).
Tensor counts_to_cumsum(const Tensor& counts) {
  Tensor c(DType::kI64, {counts.numel()});
  int64_t run = 0;
  for (int64_t e = 0; e < counts.numel(); ++e) c.data<int64_t>()[e] = run += counts.int_at(e);
  return c;
}
void check_in(const ExpertMlpInput& in, const TensorMap& w) {
  if (!in.x || !in.x_scale || !in.counts || in.x->dtype() != DType::kI8)
    throw std::invalid_argument(
        "w8a8_dynamic_expert_mlp: needs int8 expanded x, its per-row scale and counts "
        "(dispatch quant_mode 1)");
  for (const char* k : {"w13_weight_t", "w13_scale_fp32", "w2_weight_t", "w2_scale_param"})
    if (!w.count(k))
      throw std::invalid_argument(std::string("w8a8_dynamic_expert_mlp: weight \"") + k +
                                  "\" missing (from w8a8_dynamic_moe_load)");
}
}  // namespace moe_w8a8_detail

namespace ref {
Tensor w8a8_dynamic_expert_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& stages,
                               W8a8MoeMlpPath path) {
  moe_w8a8_detail::check_in(in, w);
  SwigluQuantStages q;
  if (path == W8a8MoeMlpPath::kFused) {
    // (a) npu_grouped_matmul_swiglu_quant(x, w13, cumsum(counts), w13_weight_scale_fp32, x_scale)
    q = ref::npu_grouped_matmul_swiglu_quant(*in.x, w.at("w13_weight_t"),
                                             moe_w8a8_detail::counts_to_cumsum(*in.counts),
                                             w.at("w13_scale_fp32"), *in.x_scale);
  } else {
    // (b) gmm1 int32 (split_item 3), then npu_dequant_swiglu_quant(activate_left, quant_mode 1)
    GroupedMatmulConfig g1;
    g1.group_list_type = GroupListType::kCount;
    g1.output_dtype = DType::kI32;
    GroupedMatmulStages a = ref::npu_grouped_matmul(*in.x, w.at("w13_weight_t"), nullptr, nullptr,
                                                    nullptr, *in.counts, g1);
    SwigluConfig sc;
    sc.activate_left = true;
    q = ref::npu_dequant_swiglu_quant(a.acc, w.at("w13_scale_fp32"), *in.x_scale, in.counts, sc);
  }
  // gmm2: npu_grouped_matmul(act_q, w2, scale = w2_scale, per_token_scale = act_scale,
  // group_list counts, output dtype = the input hidden dtype).
  GroupedMatmulConfig g2;
  g2.group_list_type = GroupListType::kCount;
  g2.output_dtype = in.out_dtype;
  const Tensor s2 = w8a8_moe_gmm2_scale(w.at("w2_scale_param"));
  GroupedMatmulStages o =
      ref::npu_grouped_matmul(q.y, w.at("w2_weight_t"), &s2, &q.scale, nullptr, *in.counts, g2);
  stages["gmm1_dequant"] = std::move(q.dequant);
  stages["swiglu"] = std::move(q.swiglu);
  stages["act_q"] = std::move(q.y);
  stages["act_scale"] = std::move(q.scale);
  return std::move(o.out);
}
}  // namespace ref

}  // namespace qconf
