// Reference: npu_quantize.
//
// Sources (notes/torch_npu_semantics.md §6, §0):
//   div_mode=false -> aclnnAscendQuantV3(sqrt_mode=false, round_mode="round", axis)
//     [code: op-plugin QuantizeKernelNpuOpApi.cpp; hicann/ops-nn quant/ascend_quant_v2/op_kernel
//     ascend_quant_v2_fp16.h / _bf16.h / _fp32.h Compute: x and scale cast to fp32 (exact),
//     Mul(x, scale), then Add(offset) when an offset is given; ascend_quant_v2_kernel.h CastOut:
//     fp32 -> int32 CAST_RINT, int32 -> half CAST_NONE, half -> int8 (or int4) CAST_RINT].
//     Confidence: high (kernel code).
//   div_mode=true  -> aclnnQuantize [doc: hicann/ops-nn quant/quantize/docs/aclnnQuantize.md:
//     out = round(x / scales + zeroPoints); code: op_api/aclnn_quantize.cpp (fp16 scales are cast
//     to fp32 first, scales/zeroPoints reshaped to broadcast along axis); the Ascend 950 kernel
//     op_kernel/arch35/quantize_per_channel_regbase.h: fp32 Div(x, scale), fp32 Add(zero point
//     cast to fp32), fp32 -> int16 -> half -> int8/uint8, or fp32 -> int32]. The A2/A3 kernel is
//     not in the open repositories [inf]: qconf follows the arch35 arithmetic and makes the
//     rounding of the first cast a variant (QuantizeConfig::div_rounding).
//   Saturation: float -> int casts saturate (notes §0 [doc]); NaN -> 0 and +-Inf -> the range
//     ends (the AscendC scalar cast rule, notes §0; assumed for the vector casts [inf]). int4
//     saturation is [inf] (notes §0: "not stated for fp16 -> int4"; the npu_quantize_quint4x2 op
//     models the wrapping reading as a variant).
//   int4 layout: notes §0, qconf/ops/int4pack.h (ref::pack_int4_word).
// Every arithmetic step is computed exactly (qconf::num) and rounded once, as one vector
// instruction does.
#include "qconf/ops/quantize.h"

#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/int4pack.h"

namespace qconf {

namespace {

constexpr const char* kOp = "npu_quantize";

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(std::string(kOp) + ": " + what);
}

bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

std::string_view quantize_out_type_name(QuantizeOutType t) {
  switch (t) {
    case QuantizeOutType::kQInt8:
      return "qint8";
    case QuantizeOutType::kQUInt8:
      return "quint8";
    case QuantizeOutType::kInt32:
      return "int32";
    case QuantizeOutType::kQUInt4x2:
      return "quint4x2";
  }
  return "?";
}

QuantizeOutType parse_quantize_out_type(std::string_view s) {
  for (auto t : {QuantizeOutType::kQInt8, QuantizeOutType::kQUInt8, QuantizeOutType::kInt32,
                 QuantizeOutType::kQUInt4x2})
    if (quantize_out_type_name(t) == s) return t;
  bad("dtype must be qint8, quint8, int32 or quint4x2, got \"" + std::string(s) + "\"");
}

DType quantize_out_dtype(QuantizeOutType t) {
  switch (t) {
    case QuantizeOutType::kQInt8:
      return DType::kI8;
    case QuantizeOutType::kQUInt8:
      return DType::kU8;
    default:
      return DType::kI32;
  }
}

QuantizeLayout check_quantize_inputs(const Tensor& x, const Tensor& scales,
                                     const Tensor* zero_points, const QuantizeConfig& cfg) {
  if (!is_float_dtype(x.dtype()))
    bad("input must be float32, float16 or bfloat16, got " + x.describe());
  if (x.rank() < 1) bad("input must have rank >= 1, got " + x.describe());
  if (!is_float_dtype(scales.dtype()))
    bad("scales must be float32, float16 or bfloat16, got " + scales.describe());
  const int64_t rank = x.rank();
  QuantizeLayout l;
  if (cfg.div_mode) {
    // aclnnQuantize (op_api/aclnn_quantize.cpp CheckDtypeValid / CheckShapeValid).
    if (cfg.dtype == QuantizeOutType::kQUInt4x2)
      bad("div_mode=True supports dtype qint8, quint8 or int32, not quint4x2");
    if (scales.rank() != 1) bad("scales must be 1-D when div_mode=True, got " + scales.describe());
    if (zero_points) {
      const DType z = zero_points->dtype();
      if (z != DType::kI8 && z != DType::kU8 && z != DType::kI32 && z != DType::kBF16)
        bad("zero_points must be int8, uint8, int32 or bfloat16 when div_mode=True, got " +
            zero_points->describe());
      if (zero_points->rank() != 1 || zero_points->dim(0) != scales.dim(0))
        bad("zero_points must be 1-D with the size of scales (" + std::to_string(scales.dim(0)) +
            "), got " + zero_points->describe());
      if ((z == DType::kBF16 || scales.dtype() == DType::kBF16) &&
          (x.dtype() != DType::kBF16 || scales.dtype() != DType::kBF16 || z != DType::kBF16))
        bad("with bfloat16 scales or zero_points, input, scales and zero_points must all be "
            "bfloat16, got input " +
            x.describe() + ", scales " + scales.describe() + ", zero_points " +
            zero_points->describe());
    } else if (scales.dtype() == DType::kBF16 && x.dtype() != DType::kBF16) {
      bad("bfloat16 scales need a bfloat16 input, got " + x.describe());
    }
    l.per_tensor = scales.dim(0) == 1;
    if (l.per_tensor) {
      l.axis = rank - 1;  // unused: every element takes scales[0]
    } else {
      if (cfg.axis < -rank || cfg.axis >= rank)
        bad("axis must be in [" + std::to_string(-rank) + ", " + std::to_string(rank - 1) +
            "], got " + std::to_string(cfg.axis));
      l.axis = cfg.axis < 0 ? cfg.axis + rank : cfg.axis;
      if (scales.dim(0) != x.dim(static_cast<int>(l.axis)))
        bad("scales must have 1 element or x.size(axis) = " +
            std::to_string(x.dim(static_cast<int>(l.axis))) + " elements, got " +
            scales.describe());
    }
  } else {
    // aclnnAscendQuantV3 via op-plugin (doc: axis in [-2, +inf), -2 is the second-to-last axis,
    // anything larger the last axis; the axis must exist in the input).
    if (cfg.dtype != QuantizeOutType::kQInt8 && cfg.dtype != QuantizeOutType::kQUInt4x2)
      bad("div_mode=False supports dtype qint8 or quint4x2, not " +
          std::string(quantize_out_type_name(cfg.dtype)));
    if (cfg.axis < -2 || cfg.axis >= rank)
      bad("axis must be in [-2, " + std::to_string(rank - 1) + "] when div_mode=False, got " +
          std::to_string(cfg.axis));
    if (cfg.axis == -2 && rank < 2) bad("axis -2 needs an input of rank >= 2, got " + x.describe());
    l.axis = cfg.axis == -2 ? rank - 2 : rank - 1;
    if (cfg.dtype == QuantizeOutType::kQUInt4x2 && x.dim(-1) % kInt4PerInt32 != 0)
      bad("quint4x2 needs the last dim to be a multiple of 8, got " + x.describe());
    const int64_t n = x.dim(static_cast<int>(l.axis));
    auto check_shape = [&](const Tensor& t, const std::string& name) {
      bool ok = false;
      if (t.rank() == 1) ok = t.dim(0) == 1 || t.dim(0) == n;
      if (t.rank() == rank && rank > 1) {
        ok = true;
        for (int64_t d = 0; d < rank; ++d) {
          const int64_t sz = t.dim(static_cast<int>(d));
          ok = ok && (d == l.axis ? (sz == 1 || sz == n) : sz == 1);
        }
      }
      if (!ok)
        bad(name + " must be 1-D of size 1 or " + std::to_string(n) +
            ", or of x's rank with size 1 except " + std::to_string(n) + " on axis " +
            std::to_string(l.axis) + ", got " + t.describe());
    };
    check_shape(scales, "scales");
    if (zero_points) {
      if (zero_points->dtype() != scales.dtype() || zero_points->shape() != scales.shape())
        bad("zero_points must have the dtype and shape of scales (" + scales.describe() +
            "), got " + zero_points->describe());
    }
    l.per_tensor = scales.numel() == 1;
  }
  l.outer = 1;
  for (int64_t d = 0; d < l.axis; ++d) l.outer *= x.dim(static_cast<int>(d));
  l.axis_len = x.dim(static_cast<int>(l.axis));
  l.inner = 1;
  for (int64_t d = l.axis + 1; d < rank; ++d) l.inner *= x.dim(static_cast<int>(d));
  return l;
}

namespace ref {
namespace {

using num::kF32;

// Step 1: an input float element to fp32 (Cast CAST_NONE from fp16/bf16: exact).
uint32_t float_to_fp32(const Tensor& t, int64_t i) {
  return static_cast<uint32_t>(num::convert(num::float_format_of(t.dtype()), t.bits_at(i), kF32));
}

// Step 1 (zero points): int8/uint8 -> half -> fp32 (exact); int32 -> fp32 with CAST_RINT
// (exact below 2^24 in magnitude, rounded above); bf16 -> fp32 (exact).
uint32_t zero_point_to_fp32(const Tensor& zp, int64_t i) {
  if (zp.dtype() == DType::kI32 || zp.dtype() == DType::kI8 || zp.dtype() == DType::kU8)
    return static_cast<uint32_t>(num::encode(kF32, num::Exact(zp.int_at(i)), num::Round::kRint));
  return float_to_fp32(zp, i);
}

// Step 2: the fp32 value before rounding. div_mode=true: Div(x, s) then Add(zp);
// div_mode=false: Mul(x, s) then Add(zp). Two roundings to nearest even (no fused multiply-add:
// the kernels issue two vector instructions). Without zero points the Add is skipped.
uint32_t pre_round_value(uint32_t x, uint32_t s, const uint32_t* zp, bool div_mode) {
  uint64_t v = div_mode ? num::fp_div(kF32, x, s) : num::fp_mul(kF32, x, s);
  if (zp) v = num::fp_add(kF32, v, *zp);
  return static_cast<uint32_t>(v);
}

int64_t clamp_to(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Steps 3-5 (div_mode=false, CastOut): fp32 -> int32 with CAST_RINT (saturating, NaN -> 0);
// int32 -> half (CAST_NONE: rounds to nearest even when inexact, i.e. beyond 2048, and
// overflows to Inf beyond 65504: both far outside the int8/int4 range); half -> int8 or int4
// with CAST_RINT, saturating.
int64_t ascend_quant_cast_chain(uint32_t v, int out_bits) {
  const int64_t r32 = num::float_to_int(kF32, v, num::Round::kRint, 32);
  const uint64_t h = num::encode(num::kF16, num::Exact(r32), num::Round::kRint);
  return num::float_to_int(num::kF16, h, num::Round::kRint, out_bits);
}

// Steps 3-5 (div_mode=true, the arch35 chain): int8/uint8: fp32 -> int16 with `mode`
// (saturating), int16 -> half, half -> int8 / uint8 (saturating); int32: fp32 -> int32 with
// `mode` (saturating). NaN -> 0.
int64_t quantize_cast_chain(uint32_t v, QuantizeOutType dtype, num::Round mode) {
  if (dtype == QuantizeOutType::kInt32) return num::float_to_int(kF32, v, mode, 32);
  const int64_t r16 = num::float_to_int(kF32, v, mode, 16);
  const uint64_t h = num::encode(num::kF16, num::Exact(r16), num::Round::kRint);
  const int64_t hi = num::float_to_int(num::kF16, h, num::Round::kRint, 17);  // an integer
  return dtype == QuantizeOutType::kQUInt8 ? clamp_to(hi, 0, 255) : clamp_to(hi, -128, 127);
}

}  // namespace

int64_t quantize_code(uint32_t f32_bits, QuantizeOutType dtype, num::Round mode, bool div_mode) {
  if (!div_mode)
    return ascend_quant_cast_chain(f32_bits, dtype == QuantizeOutType::kQUInt4x2 ? 4 : 8);
  return quantize_cast_chain(f32_bits, dtype, mode);
}

QuantizeStages npu_quantize(const Tensor& x, const Tensor& scales, const Tensor* zero_points,
                            const QuantizeConfig& cfg) {
  const QuantizeLayout l = check_quantize_inputs(x, scales, zero_points, cfg);
  QuantizeStages st;
  st.value = Tensor(DType::kF32, x.shape());
  uint32_t* value = st.value.data<uint32_t>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = l.scale_of(i);
    const uint32_t s = float_to_fp32(scales, c);
    uint32_t zp = 0;
    if (zero_points) zp = zero_point_to_fp32(*zero_points, c);
    value[i] = pre_round_value(float_to_fp32(x, i), s, zero_points ? &zp : nullptr, cfg.div_mode);
  }
  const num::Round mode = cfg.div_mode ? cfg.div_rounding : num::Round::kRint;
  if (cfg.dtype == QuantizeOutType::kQUInt4x2) {
    st.codes = Tensor(DType::kI8, x.shape());
    for (int64_t i = 0; i < x.numel(); ++i)
      st.codes.data<int8_t>()[i] =
          static_cast<int8_t>(quantize_code(value[i], cfg.dtype, mode, cfg.div_mode));
    // Step 6: 8 int4 codes per int32 along the last dim (notes §0 layout).
    Shape ys = x.shape();
    ys.back() /= kInt4PerInt32;
    st.y = Tensor(DType::kI32, ys);
    for (int64_t w = 0; w < st.y.numel(); ++w) {
      int32_t eight[kInt4PerInt32];
      for (int t = 0; t < kInt4PerInt32; ++t)
        eight[t] = st.codes.data<int8_t>()[kInt4PerInt32 * w + t];
      st.y.data<int32_t>()[w] = pack_int4_word(eight);
    }
    return st;
  }
  st.y = Tensor(quantize_out_dtype(cfg.dtype), x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t q = quantize_code(value[i], cfg.dtype, mode, cfg.div_mode);
    switch (cfg.dtype) {
      case QuantizeOutType::kQInt8:
        st.y.data<int8_t>()[i] = static_cast<int8_t>(q);
        break;
      case QuantizeOutType::kQUInt8:
        st.y.data<uint8_t>()[i] = static_cast<uint8_t>(q);
        break;
      default:
        st.y.data<int32_t>()[i] = static_cast<int32_t>(q);
    }
  }
  return st;
}

}  // namespace ref
}  // namespace qconf
