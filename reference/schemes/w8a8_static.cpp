// W8A8 (static) linear: vllm-ascend quantization/methods/w8a8_static.py AscendW8A8LinearMethod.
// Source: notes/vllm_ascend_quant.md §A "W8A8 (static)", §D (compressed-tensors W8A8) [code].
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w8a8_static {

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W8A8";
  d.layer_type = "linear";
  d.summary =
      "static per-tensor int8 activations (npu_quantize with 1/input_scale in params dtype and "
      "input_offset), per-channel int8 weights; npu_quant_matmul (acc + quant_bias) * deq_scale";
  d.upstream = "quantization/methods/w8a8_static.py AscendW8A8LinearMethod";
  d.sources = {"notes/vllm_ascend_quant.md §A W8A8 (static)", "notes §D (compressed-tensors)"};
  d.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "transposed to [K, N] (NZ cast: layout only)",
           kBoth),
      decl("input_scale", {"1"}, params_dtype(),
           "repeat(K), 1/x computed in params dtype (rounded), ModelSlim", kBoth),
      decl("input_offset", {"1"}, exact({"I8"}), "repeat(K).to(params dtype)", kMs),
      decl("quant_bias", {"N"}, exact({"I32"}),
           "added to the int32 accumulator (ModelSlim folds bias and offset*sum(W) in; rank 0 only "
           "for RowParallel)"),
      decl("deq_scale", {"N"}, by_params("F32", "I64"),
           "fp32 for bf16 models; int64 quant param (FP19) for fp16 models"),
      decl("weight_scale", {"N", "1"}, params_dtype(),
           "flattened; compressed-tensors: deq_scale = input_scale * weight_scale", kBoth),
      decl("weight_offset", {"N", "1"}, params_dtype(), "flattened (unused by apply)"),
  };
  d.pipeline_op = "scheme_w8a8_static_linear";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w8a8_static
