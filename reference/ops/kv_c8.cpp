// C8 KV cache quantize / dequantize: the exact specification (qconf/ops/kv_c8.h).
//
// Sources: notes/vllm_ascend_quant.md §A "Attention and KV cache" (C8), notes/torch_npu_semantics
// §12 (`clamp(round(x*inv_scale+offset),-128,127)`, torch.round = half to even [code: VA
// attention_v1.py]); vllm-ascend kv_c8.py (_c8_kv_scale_weight_loader: squeeze, .to(param dtype)
// with the param created in torch.get_default_dtype(), i.e. the model dtype) and attention_v1.py
// (_prepare_c8_scales: TP shard by kv head, inv = 1.0 / scale; _quantize_kv_to_int8;
// _dequant_paged_kv_to_dense) [code, read via the code index]. Reduced-precision torch
// elementwise ops compute in fp32 and round the result to the tensor dtype (RNE) [code: ATen].
// Confidence: high for load, shard, inverse and quantize; the FIA antiquant reading is [inf].
#include "qconf/ops/kv_c8.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/numeric/rounding.h"

namespace qconf {

namespace {
[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("c8_kv_cache: " + what);
}
const num::FloatFormat& fmt(DType t) { return t == DType::kBF16 ? num::kBF16 : num::kF16; }
bool half_float(DType t) { return t == DType::kBF16 || t == DType::kF16; }

void check_channels(const char* name, const Tensor& t, DType pdt, int64_t c) {
  if (t.dtype() != pdt || !(t.numel() == 1 || t.numel() == c))
    bad(std::string(name) + " must be " + std::string(dtype_name(pdt)) + " with 1 or " +
        std::to_string(c) + " elements (kv_heads * head_size), got " + t.describe());
}
int64_t channels_of(const Tensor& x) {
  if (x.rank() < 3) bad("x must be [tokens, kv_heads, head_size], got " + x.describe());
  return x.dim(-1) * x.dim(-2);
}
}  // namespace

std::string_view c8_antiquant_name(C8Antiquant a) {
  switch (a) {
    case C8Antiquant::kSubOffset:
      return "sub_offset";
    case C8Antiquant::kScaleOnly:
      return "scale_only";
    case C8Antiquant::kAddOffset:
      return "add_offset";
  }
  return "?";
}
C8Antiquant parse_c8_antiquant(std::string_view s) {
  if (s == "sub_offset") return C8Antiquant::kSubOffset;
  if (s == "scale_only") return C8Antiquant::kScaleOnly;
  if (s == "add_offset") return C8Antiquant::kAddOffset;
  throw std::invalid_argument("antiquant must be sub_offset, scale_only or add_offset, got \"" +
                              std::string(s) + "\"");
}

void check_c8_quantize_inputs(const Tensor& x, const Tensor& inv_scale, const Tensor& offset) {
  if (!half_float(x.dtype())) bad("x must be bfloat16 or float16, got " + x.describe());
  const int64_t c = channels_of(x);
  check_channels("inv_scale", inv_scale, x.dtype(), c);
  check_channels("offset", offset, x.dtype(), c);
  for (int64_t i = 0; i < x.numel(); ++i)
    if (num::is_nan(fmt(x.dtype()), x.data<uint16_t>()[i]))
      bad("x element " + std::to_string(i) +
          " is NaN (torch.clamp keeps NaN; its int8 cast is undefined)");
}

void check_c8_dequantize_inputs(const Tensor& q, const Tensor& scale, const Tensor& offset,
                                DType pdt) {
  if (!half_float(pdt)) bad("the params dtype must be bfloat16 or float16");
  if (q.dtype() != DType::kI8) bad("q must be int8, got " + q.describe());
  const int64_t c = channels_of(q);
  check_channels("scale", scale, pdt, c);
  check_channels("offset", offset, pdt, c);
}

namespace ref {

// ---- load (kv_c8.py _c8_kv_scale_weight_loader) ----------------------------------------------
Tensor c8_load_param(const Tensor& ckpt, DType pdt) {
  if (!half_float(pdt)) bad("the params dtype must be bfloat16 or float16");
  const Tensor p = ckpt::to_params_dtype(ckpt, pdt);  // one RNE rounding (exact when pdt already)
  Tensor f(pdt, {p.numel()});
  std::memcpy(f.bytes(), p.bytes(), p.nbytes());
  return f;
}

// ---- shard (attention_v1.py _prepare_c8_scales, _shard_and_reshape) --------------------------
Tensor c8_shard(const Tensor& param, int64_t kv_heads, int64_t head_size, int64_t tp_rank,
                int64_t tp_size) {
  const int64_t n = param.numel();
  if (kv_heads < 1 || head_size < 1) bad("kv_heads and head_size must be >= 1");
  if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size)
    bad("tp_rank must be in [0, tp_size), got " + std::to_string(tp_rank) + " of " +
        std::to_string(tp_size));
  if (n == 1 || n == kv_heads * head_size) return param;
  if (n % head_size != 0)
    bad("a scale/offset of " + std::to_string(n) + " elements is not a whole number of heads of " +
        std::to_string(head_size));
  const int64_t total = n / head_size;
  const int64_t start = tp_rank * total / tp_size;
  if (start + kv_heads > total)
    bad("rank " + std::to_string(tp_rank) + " of " + std::to_string(tp_size) + " takes kv heads [" +
        std::to_string(start) + ", " + std::to_string(start + kv_heads) + ") of " +
        std::to_string(total));
  Tensor o(param.dtype(), {kv_heads * head_size});
  const size_t es = dtype_size(param.dtype());
  std::memcpy(o.bytes(), param.bytes() + static_cast<size_t>(start * head_size) * es, o.nbytes());
  return o;
}

// ---- inverse scale: 1.0 / scale ----------------------------------------------------------------
Tensor c8_inv_scale(const Tensor& scale) {
  if (!half_float(scale.dtype())) bad("scale must be bfloat16 or float16, got " + scale.describe());
  const num::FloatFormat& f = fmt(scale.dtype());
  Tensor o(scale.dtype(), scale.shape());
  const uint64_t one = num::f32_bits(1.0f);
  for (int64_t i = 0; i < scale.numel(); ++i) {
    const uint64_t s32 = num::convert(f, scale.data<uint16_t>()[i], num::kF32);
    o.data<uint16_t>()[i] =
        static_cast<uint16_t>(num::convert(num::kF32, num::fp_div(num::kF32, one, s32), f));
  }
  return o;
}

// ---- quantize, one element per step ------------------------------------------------------------
uint16_t c8_quantize_scaled(uint16_t x, uint16_t inv, DType pdt) {
  const num::FloatFormat& f = fmt(pdt);
  const uint64_t p =
      num::fp_mul(num::kF32, num::convert(f, x, num::kF32), num::convert(f, inv, num::kF32));
  return static_cast<uint16_t>(num::convert(num::kF32, p, f));
}
uint16_t c8_quantize_shifted(uint16_t scaled, uint16_t offset, DType pdt) {
  const num::FloatFormat& f = fmt(pdt);
  const uint64_t s = num::fp_add(num::kF32, num::convert(f, scaled, num::kF32),
                                 num::convert(f, offset, num::kF32));
  return static_cast<uint16_t>(num::convert(num::kF32, s, f));
}
// torch.round (half to even, exact in pdt), clamp(-128, 127), .to(int8).
int8_t c8_quantize_code(uint16_t shifted, DType pdt) {
  const num::Decoded d = num::decode(fmt(pdt), shifted);
  if (d.cls == num::FClass::kNaN) bad("x * inv_scale + offset is NaN");
  if (d.cls == num::FClass::kInf) return d.negative ? int8_t{-128} : int8_t{127};
  return static_cast<int8_t>(num::saturate_round(d.value, num::Round::kRint, 8));
}

C8QuantStages c8_quantize(const Tensor& x, const Tensor& inv_scale, const Tensor& offset) {
  check_c8_quantize_inputs(x, inv_scale, offset);
  const DType pdt = x.dtype();
  const int64_t c = channels_of(x);
  C8QuantStages s;
  s.scaled = Tensor(pdt, x.shape());
  s.shifted = Tensor(pdt, x.shape());
  s.q = Tensor(DType::kI8, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t ch = i % c;
    const uint16_t inv = inv_scale.data<uint16_t>()[inv_scale.numel() == 1 ? 0 : ch];
    const uint16_t off = offset.data<uint16_t>()[offset.numel() == 1 ? 0 : ch];
    const uint16_t a = c8_quantize_scaled(x.data<uint16_t>()[i], inv, pdt);
    const uint16_t b = c8_quantize_shifted(a, off, pdt);
    s.scaled.data<uint16_t>()[i] = a;
    s.shifted.data<uint16_t>()[i] = b;
    s.q.data<int8_t>()[i] = c8_quantize_code(b, pdt);
  }
  return s;
}

// ---- dequantize ------------------------------------------------------------------------------
Tensor c8_dequantize(const Tensor& q, const Tensor& scale, const Tensor& offset, DType pdt,
                     C8Antiquant mode) {
  check_c8_dequantize_inputs(q, scale, offset, pdt);
  const num::FloatFormat& f = fmt(pdt);
  const int64_t c = channels_of(q);
  Tensor o(pdt, q.shape());
  for (int64_t i = 0; i < q.numel(); ++i) {
    const int64_t ch = i % c;
    const uint64_t s32 =
        num::convert(f, scale.data<uint16_t>()[scale.numel() == 1 ? 0 : ch], num::kF32);
    const uint64_t off32 =
        num::convert(f, offset.data<uint16_t>()[offset.numel() == 1 ? 0 : ch], num::kF32);
    // q.to(pdt): an int8 is exact in bf16 and fp16; as fp32 bits:
    const uint64_t q32 = num::f32_bits(static_cast<float>(q.data<int8_t>()[i]));
    uint64_t r = 0;
    switch (mode) {
      case C8Antiquant::kSubOffset: {  // (q - offset) in pdt, then * scale in pdt
        const uint64_t t = num::convert(num::kF32, num::fp_sub(num::kF32, q32, off32), f);
        r = num::convert(num::kF32, num::fp_mul(num::kF32, num::convert(f, t, num::kF32), s32), f);
        break;
      }
      case C8Antiquant::kScaleOnly:
        r = num::convert(num::kF32, num::fp_mul(num::kF32, q32, s32), f);
        break;
      case C8Antiquant::kAddOffset:  // fp32 (q + offset) * scale, one rounding to pdt [inf]
        r = num::convert(num::kF32, num::fp_mul(num::kF32, num::fp_add(num::kF32, q32, off32), s32),
                         f);
        break;
    }
    o.data<uint16_t>()[i] = static_cast<uint16_t>(r);
  }
  return o;
}

}  // namespace ref
}  // namespace qconf
