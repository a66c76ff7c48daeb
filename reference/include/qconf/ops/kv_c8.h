// C8 KV cache (vllm-ascend AscendC8KVCacheAttentionMethod, quantization/methods/kv_c8.py, and
// AscendC8AttentionBackendImpl in attention/attention_v1.py): static per-channel int8 K/V cache.
// One signature per step, implemented in reference/ops/kv_c8.cpp (qconf::ref: exact, every
// rounding explicit) and optimized/ops/kv_c8.cpp (qconf::opt: float arithmetic that rounds the
// same way, threaded, bit-identical).
//
// Steps (all in the model's params dtype pdt = bf16 | fp16, as torch computes them: each
// elementwise op in fp32, rounded once to pdt; the fp32 result of a product of two pdt values is
// exact, so only the sum and the reciprocal are rounded twice):
//   load      k_cache_scale etc. = checkpoint.squeeze().to(pdt)   (_c8_kv_scale_weight_loader)
//   shard     _prepare_c8_scales: when numel != kv_heads * head_size, the rank's kv heads
//             [tp_rank * total / tp_size, + kv_heads) of the [total, head_size] view
//   inv       _c8_k_inv_scale = 1.0 / scale                      (pdt)
//   quantize  q = clamp(torch.round(x * inv + offset), -128, 127).to(int8)
//             (x * inv and + offset each rounded to pdt; torch.round = half to even)
//   dequant   the attention side, three readings (C8Antiquant):
//             sub_offset  (q.to(pdt) - offset) * scale, each op rounded to pdt
//                         (_dequant_paged_kv_to_dense, the prefill-with-cache path) [code]
//             scale_only  q.to(pdt) * scale (the NZ-cache variant of that function, offset
//                         dropped; and the registry note "offset ignored") [code, other version]
//             add_offset  fp32((q + offset) * scale) rounded once to pdt: FIA's antiquant with
//                         key_antiquant_offset, if it follows AscendAntiQuant's
//                         scale * (src + offset) [inf: the FIA formula is not in the notes]
#pragma once

#include <cstdint>
#include <string_view>

#include "qconf/core/tensor.h"

namespace qconf {

enum class C8Antiquant { kSubOffset, kScaleOnly, kAddOffset };
std::string_view c8_antiquant_name(C8Antiquant a);   // "sub_offset", "scale_only", "add_offset"
C8Antiquant parse_c8_antiquant(std::string_view s);  // throws std::invalid_argument

// The stages of quantizing one of K / V, in pipeline order.
struct C8QuantStages {
  Tensor scaled;   // pdt [..., C]: x * inv_scale
  Tensor shifted;  // pdt [..., C]: scaled + offset
  Tensor q;        // int8 [..., C]: clamp(round_half_even(shifted), -128, 127)
};

// Validation shared by both implementations (std::invalid_argument naming the argument):
// x bf16 | fp16 with last dims [..., kv_heads, head_size] flattened to C channels per token;
// inv_scale / offset of x's dtype with 1 or C elements. NaN in x is rejected (torch's clamp
// keeps NaN and the int8 cast of NaN is undefined).
void check_c8_quantize_inputs(const Tensor& x, const Tensor& inv_scale, const Tensor& offset);
void check_c8_dequantize_inputs(const Tensor& q, const Tensor& scale, const Tensor& offset,
                                DType pdt);

namespace ref {
// Checkpoint tensor (F32 | BF16 | F16, any shape) -> pdt [numel] (squeeze, one RNE rounding).
Tensor c8_load_param(const Tensor& ckpt, DType pdt);
// _prepare_c8_scales' TP shard: param pdt [n]; returns [kv_heads * head_size] (or [1] when
// n == 1). Throws when n is neither 1 nor a multiple of head_size, or the slice is out of range.
Tensor c8_shard(const Tensor& param, int64_t kv_heads, int64_t head_size, int64_t tp_rank,
                int64_t tp_size);
// 1.0 / scale: fp32 division (RNE), then RNE to the scale's dtype.
Tensor c8_inv_scale(const Tensor& scale);
C8QuantStages c8_quantize(const Tensor& x, const Tensor& inv_scale, const Tensor& offset);
// q int8 [..., C] -> pdt [..., C].
Tensor c8_dequantize(const Tensor& q, const Tensor& scale, const Tensor& offset, DType pdt,
                     C8Antiquant mode);
// One element of each step (pdt bits), for tests and the optimized code's self-check.
uint16_t c8_quantize_scaled(uint16_t x, uint16_t inv, DType pdt);
uint16_t c8_quantize_shifted(uint16_t scaled, uint16_t offset, DType pdt);
int8_t c8_quantize_code(uint16_t shifted, DType pdt);
}  // namespace ref

namespace opt {
// Same contract. With intermediates false only q is filled. threads: 0 = default.
C8QuantStages c8_quantize(const Tensor& x, const Tensor& inv_scale, const Tensor& offset,
                          bool intermediates = false, int threads = 0);
Tensor c8_dequantize(const Tensor& q, const Tensor& scale, const Tensor& offset, DType pdt,
                     C8Antiquant mode, int threads = 0);
}  // namespace opt

}  // namespace qconf
