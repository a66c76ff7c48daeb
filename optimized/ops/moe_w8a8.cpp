// W8A8_DYNAMIC MoE expert MLP with the optimized component ops (qconf/ops/moe_w8a8.h): the same
// calls in the same order as the reference.
#include "qconf/ops/moe_w8a8.h"

#include "qconf/ops/expert_mlp.h"

namespace qconf {
namespace moe_w8a8_detail {
Tensor counts_to_cumsum(const Tensor& counts);
void check_in(const ExpertMlpInput& in, const TensorMap& w);
}  // namespace moe_w8a8_detail

namespace opt {
Tensor w8a8_dynamic_expert_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& stages,
                               W8a8MoeMlpPath path, int threads) {
  moe_w8a8_detail::check_in(in, w);
  SwigluQuantStages q;
  if (path == W8a8MoeMlpPath::kFused) {
    q = opt::npu_grouped_matmul_swiglu_quant(*in.x, w.at("w13_weight_t"),
                                             moe_w8a8_detail::counts_to_cumsum(*in.counts),
                                             w.at("w13_scale_fp32"), *in.x_scale, threads);
  } else {
    GroupedMatmulConfig g1;
    g1.group_list_type = GroupListType::kCount;
    g1.output_dtype = DType::kI32;
    GroupedMatmulStages a = opt::npu_grouped_matmul(*in.x, w.at("w13_weight_t"), nullptr, nullptr,
                                                    nullptr, *in.counts, g1, threads);
    SwigluConfig sc;
    sc.activate_left = true;
    q = opt::npu_dequant_swiglu_quant(a.acc, w.at("w13_scale_fp32"), *in.x_scale, in.counts, sc);
  }
  GroupedMatmulConfig g2;
  g2.group_list_type = GroupListType::kCount;
  g2.output_dtype = in.out_dtype;
  const Tensor s2 = w8a8_moe_gmm2_scale(w.at("w2_scale_param"));
  GroupedMatmulStages o = opt::npu_grouped_matmul(q.y, w.at("w2_weight_t"), &s2, &q.scale, nullptr,
                                                  *in.counts, g2, threads);
  stages["gmm1_dequant"] = std::move(q.dequant);
  stages["swiglu"] = std::move(q.swiglu);
  stages["act_q"] = std::move(q.y);
  stages["act_scale"] = std::move(q.scale);
  return std::move(o.out);
}
}  // namespace opt
}  // namespace qconf
