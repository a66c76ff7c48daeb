// Reference: scale encodings and load-time scale transforms (qconf/ops/scales.h).
//
// Every float step is computed exactly (qconf::num::Exact) and rounded once, explicitly; the
// integer steps are written as the bit operations the sources perform. Each step cites its
// source and confidence:
//   [seed 000] vllm-ascend quantization/methods/w8a8_dynamic.py scale_from_float_to_int64
//   [seed 001] vllm-ascend PR #2392 quantization/w4a8_dynamic.py process_scale,
//              process_scale_second (Aug 2025)
//   [HEAD]     vllm-ascend quantization/methods/w4a8.py @01697b3e: _process_scale,
//              update_bias_compressed_tensors, process_weights_after_loading_modelslim
//   [kernel]   hicann/ops-nn quant/trans_quant_param_v2/op_kernel/trans_quant_param_v2.h
//              CalQuantPreScaleValue, CalOffsetValueShapeOne, SetOffsetValue
//   [host]     hicann/ops-nn quant/trans_quant_param/op_host/op_api/quant_util.cpp
//              TransQuantScaleToM1, TransQuantOffsetToToM1, aclnn_trans_quant_param.cpp
//   [golden]   hicann/ops-nn matmul/common/tests/st/arch35/matmul_quant_util.py
//              u64_to_deq_scale, u64_to_offset
//   [notes]    notes/torch_npu_semantics.md §0, §2, §6; notes/vllm_ascend_quant.md §A
#include "qconf/ops/scales.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "qconf/numeric/bounds.h"
#include "qconf/numeric/float_format.h"

namespace qconf {

using num::Exact;
using num::FClass;
using num::FloatFormat;
using num::kF16;
using num::kF32;
using num::kF64;
using num::Round;
// Bound helpers (qconf/numeric/bounds.h, docs/bounds.md).
using num::gamma;
using num::pow2;
using num::stored_bound;

// ---- names ----------------------------------------------------------------------------------

std::string_view trans_quant_encoding_name(TransQuantEncoding e) {
  switch (e) {
    case TransQuantEncoding::kFp19Trunc:
      return "fp19_trunc";
    case TransQuantEncoding::kFp19Rne:
      return "fp19_rne";
    case TransQuantEncoding::kFullFp32:
      return "full_fp32";
  }
  return "?";
}

TransQuantEncoding parse_trans_quant_encoding(std::string_view s) {
  for (auto e : {TransQuantEncoding::kFp19Trunc, TransQuantEncoding::kFp19Rne,
                 TransQuantEncoding::kFullFp32})
    if (trans_quant_encoding_name(e) == s) return e;
  throw std::invalid_argument("npu_trans_quant_param: unknown encoding \"" + std::string(s) +
                              "\" (expected fp19_trunc, fp19_rne or full_fp32)");
}

std::string_view w4a8_scale_rounding_name(W4a8ScaleRounding r) {
  return r == W4a8ScaleRounding::kFp16 ? "fp16" : "none";
}

W4a8ScaleRounding parse_w4a8_scale_rounding(std::string_view s) {
  if (s == "fp16") return W4a8ScaleRounding::kFp16;
  if (s == "none") return W4a8ScaleRounding::kNone;
  throw std::invalid_argument("w4a8_process_scale: unknown scale_rounding \"" + std::string(s) +
                              "\" (expected fp16 or none)");
}

std::string_view w4a8_bias_proj_name(W4a8BiasProj p) {
  return p == W4a8BiasProj::kDown ? "down" : "gate_up";
}

W4a8BiasProj parse_w4a8_bias_proj(std::string_view s) {
  if (s == "down") return W4a8BiasProj::kDown;
  if (s == "gate_up") return W4a8BiasProj::kGateUp;
  throw std::invalid_argument("w4a8_scale_bias_rank_sum: unknown proj \"" + std::string(s) +
                              "\" (expected down or gate_up)");
}

std::string_view reciprocal_reading_name(ReciprocalReading r) {
  switch (r) {
    case ReciprocalReading::kParamsDtype:
      return "params_dtype";
    case ReciprocalReading::kFp32ThenParamsDtype:
      return "fp32_then_params_dtype";
    case ReciprocalReading::kFp32:
      return "fp32";
  }
  return "?";
}

ReciprocalReading parse_reciprocal_reading(std::string_view s) {
  for (auto r : {ReciprocalReading::kParamsDtype, ReciprocalReading::kFp32ThenParamsDtype,
                 ReciprocalReading::kFp32})
    if (reciprocal_reading_name(r) == s) return r;
  throw std::invalid_argument("w8a8_static_input_scale_reciprocal: unknown reciprocal \"" +
                              std::string(s) +
                              "\" (expected params_dtype, fp32_then_params_dtype or fp32)");
}

DType parse_params_dtype(std::string_view op, std::string_view s) {
  if (s == "bfloat16") return DType::kBF16;
  if (s == "float16") return DType::kF16;
  throw std::invalid_argument(std::string(op) +
                              ": params_dtype must be bfloat16 or float16, got \"" +
                              std::string(s) + "\"");
}

bool SumBound::all_exact() const {
  return std::all_of(provably_exact.begin(), provably_exact.end(), [](bool b) { return b; });
}

// ---- shared input checks ----------------------------------------------------------------------

namespace {

bool is_scale_dtype(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

const FloatFormat& format_of(DType t) {
  switch (t) {
    case DType::kF32:
      return kF32;
    case DType::kBF16:
      return num::kBF16;
    case DType::kF16:
      return kF16;
    default:
      throw std::logic_error("scales: not a scale dtype: " + std::string(dtype_name(t)));
  }
}

void require_scale_dtype(const std::string& op, const std::string& arg, const Tensor& t) {
  if (!is_scale_dtype(t.dtype()))
    throw std::invalid_argument(op + ": " + arg + " must be float32, bfloat16 or float16, got " +
                                t.describe());
}

void require_f32(const std::string& op, const std::string& arg, const Tensor& t) {
  if (t.dtype() != DType::kF32)
    throw std::invalid_argument(op + ": " + arg + " must be float32, got " + t.describe());
}

}  // namespace

QuantParamShape check_trans_quant_param_inputs(const Tensor& scale, const Tensor* offset) {
  const std::string op = "npu_trans_quant_param";
  require_f32(op, "scale", scale);
  auto form_ok = [](const Tensor& t) {
    return (t.rank() == 1 || (t.rank() == 2 && t.dim(0) == 1)) && t.numel() >= 1;
  };
  if (!form_ok(scale))
    throw std::invalid_argument(op + ": scale must be 1-D [t] or 2-D [1, n] with t, n >= 1, got " +
                                scale.describe());
  QuantParamShape s;
  s.n_scale = scale.numel();
  s.n = s.n_scale;
  if (offset) {
    require_f32(op, "offset", *offset);
    if (!form_ok(*offset))
      throw std::invalid_argument(
          op + ": offset must be 1-D [t] or 2-D [1, n] with t, n >= 1, got " + offset->describe());
    s.n_offset = offset->numel();
    s.n = std::max(s.n_scale, s.n_offset);
    if ((s.n_scale != 1 && s.n_scale != s.n) || (s.n_offset != 1 && s.n_offset != s.n))
      throw std::invalid_argument(op + ": scale and offset lengths must be equal or 1, got " +
                                  scale.describe() + " and " + offset->describe());
    if (scale.rank() == 2 && offset->numel() != scale.numel())
      throw std::invalid_argument(op + ": a 2-D scale needs an offset of the same size, got " +
                                  scale.describe() + " and " + offset->describe());
  }
  // op-plugin TransQuantParamKernelNpuOpApi.cpp: the output has scale's shape, except that a 1-D
  // scale with an offset gives the longer of the two 1-D shapes.
  s.out_shape = scale.rank() == 2 ? scale.shape() : Shape{s.n};
  return s;
}

DType w4a8_product_dtype(DType a, DType b) { return a == b ? a : DType::kF32; }

W4a8Shape check_w4a8_process_scale_inputs(const Tensor& scale, const Tensor* pgs,
                                          W4a8ScaleRounding rounding) {
  const std::string op = "w4a8_process_scale";
  require_scale_dtype(op, "scale", scale);
  if (scale.rank() != 3 || scale.dim(1) != 1)
    throw std::invalid_argument(op +
                                ": scale must be [E, 1, N] (the transposed [E, N, 1] weight "
                                "scale), got " +
                                scale.describe());
  W4a8Shape s;
  s.e = scale.dim(0);
  s.n = scale.dim(2);
  if (pgs) {
    if (rounding == W4a8ScaleRounding::kNone)
      throw std::invalid_argument(op +
                                  ": per_group_scale is not supported with scale_rounding=none "
                                  "(vllm-ascend HEAD w4a8.py is per-channel only)");
    require_scale_dtype(op, "per_group_scale", *pgs);
    if (pgs->rank() != 3 || pgs->dim(0) != s.e || pgs->dim(2) != s.n || pgs->dim(1) < 1)
      throw std::invalid_argument(op + ": per_group_scale must be [E, G, N] = [" +
                                  std::to_string(s.e) + ", G, " + std::to_string(s.n) + "], got " +
                                  pgs->describe());
    s.g = pgs->dim(1);
  }
  return s;
}

W4a8Shape check_w4a8_scale_bias_inputs(const Tensor& weight, const Tensor& scale,
                                       const Tensor* pgs) {
  const std::string op = "w4a8_scale_bias";
  if (weight.dtype() != DType::kI8 || weight.rank() != 3)
    throw std::invalid_argument(
        op + ": weight must be int8 [E, K, N] (one int4 value per byte), got " + weight.describe());
  W4a8Shape s;
  s.e = weight.dim(0);
  s.k = weight.dim(1);
  s.n = weight.dim(2);
  require_scale_dtype(op, "scale", scale);
  if (scale.rank() != 3 || scale.dim(0) != s.e || scale.dim(1) != 1 || scale.dim(2) != s.n)
    throw std::invalid_argument(op + ": scale must be [E, 1, N] = [" + std::to_string(s.e) +
                                ", 1, " + std::to_string(s.n) + "], got " + scale.describe());
  if (pgs) {
    require_scale_dtype(op, "per_group_scale", *pgs);
    if (pgs->rank() != 3 || pgs->dim(0) != s.e || pgs->dim(2) != s.n || pgs->dim(1) < 1 ||
        s.k % pgs->dim(1) != 0)
      throw std::invalid_argument(op + ": per_group_scale must be [E, G, N] = [" +
                                  std::to_string(s.e) + ", G, " + std::to_string(s.n) +
                                  "] with K = " + std::to_string(s.k) + " a multiple of G, got " +
                                  pgs->describe());
    s.g = pgs->dim(1);
  }
  return s;
}

int64_t check_w4a8_rank_sum_inputs(const Tensor& sb, int64_t tp, W4a8BiasProj proj) {
  const std::string op = "w4a8_scale_bias_rank_sum";
  require_f32(op, "scale_bias", sb);
  if (sb.rank() != 3)
    throw std::invalid_argument(op + ": scale_bias must be float32 [E, H, C], got " +
                                sb.describe());
  if (tp < 1 || tp > 16 || 16 % tp != 0)
    throw std::invalid_argument(op + ": tp must divide 16 (vllm-ascend rejects tp > 16), got " +
                                std::to_string(tp));
  const int64_t want = proj == W4a8BiasProj::kDown ? 16 / tp : 1;
  if (sb.dim(2) != want)
    throw std::invalid_argument(
        op + ": scale_bias for proj=" + std::string(w4a8_bias_proj_name(proj)) +
        " must have last dim " + std::to_string(want) +
        (proj == W4a8BiasProj::kDown ? " (16/tp)" : "") + ", got " + sb.describe());
  return want;
}

namespace ref {
namespace {

// ---- exact IEEE fp32 arithmetic (one torch fp32 elementwise op = one correctly rounded step) ---
// NaN operands give the first NaN operand, quieted (x86/ARM propagate it); invalid operations
// give the default NaN. NaN payloads are never pinned by the goldens of these ops.

constexpr uint32_t kQuietBit32 = 0x00400000u;
constexpr uint32_t kDefaultNaN32 = 0x7FC00000u;

uint32_t f32_mul(uint32_t a, uint32_t b) {
  const num::Decoded da = num::decode(kF32, a), db = num::decode(kF32, b);
  if (da.cls == FClass::kNaN) return a | kQuietBit32;
  if (db.cls == FClass::kNaN) return b | kQuietBit32;
  const bool neg = da.negative != db.negative;
  if (da.cls == FClass::kInf || db.cls == FClass::kInf) {
    if (da.cls == FClass::kZero || db.cls == FClass::kZero) return kDefaultNaN32;
    return static_cast<uint32_t>(num::inf_bits(kF32, neg));
  }
  if (da.cls == FClass::kZero || db.cls == FClass::kZero) return neg ? 0x80000000u : 0u;
  return static_cast<uint32_t>(num::encode(kF32, da.value * db.value, Round::kRint));
}

uint32_t f32_add(uint32_t a, uint32_t b) {
  const num::Decoded da = num::decode(kF32, a), db = num::decode(kF32, b);
  if (da.cls == FClass::kNaN) return a | kQuietBit32;
  if (db.cls == FClass::kNaN) return b | kQuietBit32;
  if (da.cls == FClass::kInf && db.cls == FClass::kInf)
    return da.negative == db.negative ? a : kDefaultNaN32;
  if (da.cls == FClass::kInf) return a;
  if (db.cls == FClass::kInf) return b;
  const Exact s = da.value + db.value;
  if (s == 0) return (da.negative && db.negative) ? 0x80000000u : 0u;  // exact zero: +0 (RNE)
  return static_cast<uint32_t>(num::encode(kF32, s, Round::kRint));
}

// Exactly representable int -> fp32 bits (|v| <= 2^24).
uint32_t f32_from_int(int64_t v) {
  if (v == 0) return 0;
  return static_cast<uint32_t>(num::encode(kF32, Exact(v), Round::kRint));
}

// x.to(torch.float32) for a float element of dtype t: exact widening (NaN quieted).
uint32_t widen_bits(DType t, uint64_t bits) {
  if (t == DType::kF32) return static_cast<uint32_t>(bits);  // .to(float32) is a no-op
  return static_cast<uint32_t>(num::convert(format_of(t), bits, kF32, Round::kRint));
}

// Round fp32 bits to dtype t (RNE), as torch does after computing a bf16/fp16 op in fp32.
uint64_t narrow_bits(uint32_t f32, DType t) {
  if (t == DType::kF32) return f32;
  return num::convert(kF32, f32, format_of(t), Round::kRint);
}

// 1/x in format f: the exact quotient rounded once to nearest even.
uint64_t reciprocal_bits(const FloatFormat& f, uint64_t x) {
  const num::Decoded d = num::decode(f, x);
  switch (d.cls) {
    case FClass::kNaN:
      return x | (uint64_t{1} << (f.mant_bits - 1));
    case FClass::kInf:
      return d.negative ? num::sign_mask(f) : 0;  // 1/(+-Inf) = +-0
    case FClass::kZero:
      return num::inf_bits(f, d.negative);  // 1/(+-0) = +-Inf (IEEE division by zero)
    default:
      return num::encode(f, Exact(1) / d.value, Round::kRint);
  }
}

bool representable_f32(const Exact& x) {
  const uint64_t b = num::encode(kF32, x, Round::kRint);
  return !num::is_inf(kF32, b) && num::to_exact(kF32, b) == x;
}

// |x| rounds to Inf in fp32 (round to nearest): |x| >= 2^128 - 2^103.
bool overflows_f32(const Exact& x) { return num::abs_exact(x) >= num::overflow_threshold(kF32); }

}  // namespace

// =================================================================================================
// a. scale_from_float_to_int64  [seed 000] (confidence: high, code)
//    torch.from_numpy(np.frombuffer(scale.cpu().to(torch.float32).numpy().tobytes(),
//                                   dtype=np.int32).astype(np.int64))
// =================================================================================================

// Step 1: scale.to(torch.float32). The W8A8_DYNAMIC scales are params_dtype (bf16/fp16): the
// widening is exact. (A signalling NaN is quieted here; torch's bf16 widening keeps it as is:
// not pinned by any golden.)
Tensor widen_scale_to_fp32(const Tensor& scale) {
  require_scale_dtype("scale_from_float_to_int64", "scale", scale);
  Tensor out(DType::kF32, scale.shape());
  uint32_t* o = out.data<uint32_t>();
  for (int64_t i = 0; i < scale.numel(); ++i) o[i] = widen_bits(scale.dtype(), scale.bits_at(i));
  return out;
}

// Steps 2-3: np.frombuffer(.., dtype=np.int32) reads the 32 bits as a SIGNED int32;
// .astype(np.int64) then sign-extends: a negative scale (sign bit set) gets 0xFFFFFFFF in the
// upper half. (Contrast w4a8_process_scale, which reads uint32 and zero-extends.)
int64_t fp32_bits_sign_extended(uint32_t bits) {
  const int32_t as_int32 = static_cast<int32_t>(bits);  // two's-complement reinterpretation
  return static_cast<int64_t>(as_int32);                // sign extension
}

Tensor scale_from_float_to_int64(const Tensor& scale) {
  const Tensor f32 = widen_scale_to_fp32(scale);
  Tensor out(DType::kI64, scale.shape());
  int64_t* o = out.data<int64_t>();
  const uint32_t* in = f32.data<uint32_t>();
  for (int64_t i = 0; i < f32.numel(); ++i) o[i] = fp32_bits_sign_extended(in[i]);
  return out;
}

// =================================================================================================
// b. npu_trans_quant_param  [kernel] [host] [notes §2] (confidence: high, code)
// =================================================================================================

// The scale field (the low 32 bits of the word).
//  fp19_trunc [kernel, round_mode 0]: keep sign + exponent + top 10 mantissa bits.
//  fp19_rne   [kernel, round_mode 1]: exponent field 0 (zeros AND subnormals) -> signed zero (the
//             kernel flushes subnormals); exponent field 255 (Inf/NaN) -> truncated like mode 0
//             (no quiet bit is set, so a NaN whose payload lies only in the low 13 bits becomes
//             Inf); otherwise round to nearest even at bit 13, a carry moving into the exponent
//             and, from the largest binade, up to Inf (qconf::num::fp32_bits_rne_to_fp19, which
//             agrees with the kernel on every normal input: tests/ops/scales_test.cpp).
//  full_fp32  [host TransQuantScaleToM1]: all 32 bits (the 0xFFFFE000 mask is defined, unused).
uint32_t encode_scale_field(uint32_t bits, TransQuantEncoding enc) {
  switch (enc) {
    case TransQuantEncoding::kFp19Trunc:
      return num::fp32_bits_truncate_to_fp19(bits);
    case TransQuantEncoding::kFp19Rne: {
      const uint32_t exp_field = (bits >> 23) & 0xFFu;
      if (exp_field == 0) return bits & 0x80000000u;
      if (exp_field == 0xFFu) return num::fp32_bits_truncate_to_fp19(bits);
      return num::fp32_bits_rne_to_fp19(bits);
    }
    case TransQuantEncoding::kFullFp32:
      return bits;
  }
  throw std::logic_error("encode_scale_field: bad encoding");
}

// The int9 offset.
//  kernel (fp19_trunc, fp19_rne): Cast(int32, fp32, CAST_RINT) (half to even; the vector cast
//    saturates to the int32 range [notes §0]), then Maxs(-256), Mins(255). A NaN offset gives 0:
//    the notes §0 float->int rule (NaN -> 0), INFERRED [inf] for the vector Cast; the aclnn doc
//    says callers must not pass NaN/Inf.
//  full_fp32 [host TransQuantOffsetToToM1 / Float32ToInt9]: static_cast<int>(round(v)): C round(),
//    half AWAY from zero, then clamp. For NaN and |round(v)| >= 2^31 that cast is undefined in
//    C++ (x86 gives INT_MIN -> -256, aarch64 saturates, NaN -> 0); modelled as saturating with
//    NaN -> 0 [inf], and no golden of this encoding exercises it.
int32_t encode_offset_int9(uint32_t bits, TransQuantEncoding enc) {
  const Round mode = enc == TransQuantEncoding::kFullFp32 ? Round::kRound : Round::kRint;
  const int64_t as_int32 = num::float_to_int(kF32, bits, mode, 32);
  return static_cast<int32_t>(std::clamp<int64_t>(as_int32, kInt9Min, kInt9Max));
}

namespace {
// out = (scale_field | 1 << 46) | (int9 & 0x1FF) << 37; an element without a scale (full_fp32
// past the scale's length) has neither the field nor the flag.
uint64_t assemble_quant_param(bool has_scale, uint32_t field, bool has_offset, int32_t off9) {
  uint64_t w = 0;
  if (has_scale) w = static_cast<uint64_t>(field) | kQuantParamFlag;
  if (has_offset)
    w |= (static_cast<uint64_t>(static_cast<uint32_t>(off9)) & kQuantParamOffsetMask)
         << kQuantParamOffsetShift;
  return w;
}
}  // namespace

// Broadcasting. The kernel broadcasts a length-1 scale (CalScaleValueShapeOne) and a length-1
// offset (CalOffsetValueShapeOne) over the output. The host API (full_fp32) does not: it writes
// scale element i only for i < scaleSize and offset element i only for i < offsetSize (its
// zero-filled padding to a multiple of 16 words is not part of the result modelled here).
TransQuantParamResult npu_trans_quant_param(const Tensor& scale, const Tensor* offset,
                                            TransQuantEncoding enc) {
  const QuantParamShape s = check_trans_quant_param_inputs(scale, offset);
  const bool broadcast = enc != TransQuantEncoding::kFullFp32;
  TransQuantParamResult r;
  r.scale_field = Tensor(DType::kU32, s.out_shape);
  r.quant_param = Tensor(DType::kI64, s.out_shape);
  if (offset) r.offset_int9 = Tensor(DType::kI32, s.out_shape);
  const uint32_t* sc = scale.data<uint32_t>();
  for (int64_t i = 0; i < s.n; ++i) {
    const bool has_scale = broadcast || i < s.n_scale;
    const uint32_t field = has_scale ? encode_scale_field(sc[s.n_scale == 1 ? 0 : i], enc) : 0u;
    bool has_offset = false;
    int32_t off9 = 0;
    if (offset) {
      has_offset = broadcast || i < s.n_offset;
      if (has_offset)
        off9 = encode_offset_int9(offset->data<uint32_t>()[s.n_offset == 1 ? 0 : i], enc);
      r.offset_int9->data<int32_t>()[i] = off9;
    }
    r.scale_field.data<uint32_t>()[i] = field;
    r.quant_param.data<int64_t>()[i] =
        static_cast<int64_t>(assemble_quant_param(has_scale, field, has_offset, off9));
  }
  return r;
}

// =================================================================================================
// c. npu_trans_quant_param_decode  [golden] (confidence: high, test golden)
//    deq_scale = (uint32(u64) & 0xFFFFE000) viewed as fp32: the hardware reads 19 bits;
//    offset = bits 37..45 as a signed int9. Bit 46 and bits 32..36, 47..63 are ignored.
// =================================================================================================

uint32_t decode_dequant_scale_bits(uint64_t qp) {
  return static_cast<uint32_t>(qp) & kFp19KeepMask;
}

int32_t decode_offset_int9(uint64_t qp) {
  const int32_t raw = static_cast<int32_t>((qp >> kQuantParamOffsetShift) & kQuantParamOffsetMask);
  return (raw & 0x100) ? raw - 0x200 : raw;  // sign bit of the int9
}

QuantParamDecoded npu_trans_quant_param_decode(const Tensor& qp) {
  if (qp.dtype() != DType::kI64 && qp.dtype() != DType::kU64)
    throw std::invalid_argument(
        "npu_trans_quant_param_decode: quant_param must be int64 or "
        "uint64, got " +
        qp.describe());
  QuantParamDecoded d{Tensor(DType::kF32, qp.shape()), Tensor(DType::kI32, qp.shape())};
  for (int64_t i = 0; i < qp.numel(); ++i) {
    d.dequant_scale.data<uint32_t>()[i] = decode_dequant_scale_bits(qp.bits_at(i));
    d.offset.data<int32_t>()[i] = decode_offset_int9(qp.bits_at(i));
  }
  return d;
}

// =================================================================================================
// d. w4a8_process_scale  [seed 001 process_scale] / [HEAD _process_scale] (confidence: high, code)
//    seed 001: scale_fp32 = (scale * per_group_scale).to(torch.float16).to(torch.float32)
//              sscale_uint64 = zeros((E, G, 2N), uint32); sscale_uint64[..., ::2] =
//              bits(scale_fp32) np.frombuffer(.., dtype=np.int64).reshape(E, G, N)
//    HEAD:     scale_np.dtype = np.uint32; scale_np.astype(np.int64)  (no fp16 rounding)
//    Either way the int64 is the uint32 bits ZERO-extended (little-endian: the high word is the
//    zero at the odd position).
// =================================================================================================

W4a8ProcessScaleResult w4a8_process_scale(const Tensor& scale, const Tensor* pgs,
                                          W4a8ScaleRounding rounding) {
  const W4a8Shape s = check_w4a8_process_scale_inputs(scale, pgs, rounding);
  const DType arith = pgs ? w4a8_product_dtype(scale.dtype(), pgs->dtype()) : scale.dtype();
  const Shape out_shape{s.e, s.g, s.n};
  W4a8ProcessScaleResult r;
  if (pgs) r.product = Tensor(arith, out_shape);
  if (rounding == W4a8ScaleRounding::kFp16) r.scale_fp16 = Tensor(DType::kF16, out_shape);
  r.scale_fp32 = Tensor(DType::kF32, out_shape);
  r.interleaved_u32 = Tensor(DType::kU32, {s.e, s.g, 2 * s.n});
  r.scale_int64 = Tensor(DType::kI64, out_shape);
  for (int64_t e = 0; e < s.e; ++e)
    for (int64_t g = 0; g < s.g; ++g)
      for (int64_t n = 0; n < s.n; ++n) {
        const int64_t i = (e * s.g + g) * s.n + n;
        const uint64_t sc = scale.bits_at(e * s.n + n);  // [E, 1, N] broadcast over G
        // Step 1 (seed 001): scale * per_group_scale in torch's promoted dtype: computed in fp32
        // (exact product, one RNE rounding) and, for a bf16/fp16 result, rounded to it (RNE).
        uint64_t p = sc;
        if (pgs) {
          const uint32_t prod32 =
              f32_mul(widen_bits(scale.dtype(), sc), widen_bits(pgs->dtype(), pgs->bits_at(i)));
          p = narrow_bits(prod32, arith);
          if (arith == DType::kF32)
            r.product->data<uint32_t>()[i] = static_cast<uint32_t>(p);
          else
            r.product->data<uint16_t>()[i] = static_cast<uint16_t>(p);
        }
        // Step 2 (seed 001 only): .to(torch.float16), RNE (overflow -> Inf, fp16 subnormals kept),
        // then Step 3: .to(torch.float32), exact.
        uint32_t f32;
        if (rounding == W4a8ScaleRounding::kFp16) {
          const uint16_t h = static_cast<uint16_t>(num::convert(format_of(arith), p, kF16));
          r.scale_fp16->data<uint16_t>()[i] = h;
          f32 = static_cast<uint32_t>(num::convert(kF16, h, kF32));
        } else {
          f32 = widen_bits(arith, p);  // HEAD: scale.to(torch.float32) (a no-op for fp32)
        }
        r.scale_fp32.data<uint32_t>()[i] = f32;
        // Step 4: the uint32 bits at even positions of a zeroed [.., 2N] uint32 array ...
        r.interleaved_u32.data<uint32_t>()[2 * i] = f32;
        r.interleaved_u32.data<uint32_t>()[2 * i + 1] = 0;
        // Step 5: ... viewed as little-endian int64: the bits zero-extended.
        r.scale_int64.data<int64_t>()[i] = static_cast<int64_t>(static_cast<uint64_t>(f32));
      }
  return r;
}

// =================================================================================================
// e. w4a8_scale_bias  [seed 001 process_scale (old format), process_scale_second]
//                     [HEAD update_bias_compressed_tensors] (confidence: high, code)
//    weight_high = W.to(fp32).reshape(E, G, K/G, N) * per_group_scale.reshape(E, G, 1, N)
//    bias = 8 * (weight_high.to(fp32) * scale).sum(axis=1)       (fp32 throughout)
//    Without per_group_scale (LLM-Compressor): bias = 8 * (W.to(fp32) * scale).sum(axis=1).
//    The products are deterministic fp32 roundings; the ORDER of the fp32 sum over K is not
//    fixed by torch, so the output is checked against w4a8_scale_bias_bound() (docs/bounds.md).
//    The reference sums k = 0, 1, ..., K-1 left to right, starting from the first term.
// =================================================================================================

W4a8ScaleBiasResult w4a8_scale_bias(const Tensor& weight, const Tensor& scale, const Tensor* pgs) {
  const W4a8Shape s = check_w4a8_scale_bias_inputs(weight, scale, pgs);
  const int64_t kg = pgs ? s.k / s.g : s.k;  // rows per quant group
  W4a8ScaleBiasResult r;
  if (pgs) r.weight_high = Tensor(DType::kF32, {s.e, s.k, s.n});
  r.scale_bias = Tensor(DType::kF32, {s.e, s.n});
  const int8_t* w = weight.data<int8_t>();
  const uint32_t eight = f32_from_int(8);
  for (int64_t e = 0; e < s.e; ++e)
    for (int64_t n = 0; n < s.n; ++n) {
      const uint32_t sc = widen_bits(scale.dtype(), scale.bits_at(e * s.n + n));
      uint32_t acc = 0;
      for (int64_t k = 0; k < s.k; ++k) {
        const int64_t wi = (e * s.k + k) * s.n + n;
        // Step 1: W.to(fp32), exact.
        uint32_t wh = f32_from_int(w[wi]);
        // Step 2: * per_group_scale of group k / (K/G) (widened to fp32), one fp32 rounding.
        if (pgs) {
          wh = f32_mul(wh, widen_bits(pgs->dtype(), pgs->bits_at((e * s.g + k / kg) * s.n + n)));
          r.weight_high->data<uint32_t>()[wi] = wh;
        }
        // Step 3: * scale (widened to fp32), one fp32 rounding.
        const uint32_t term = f32_mul(wh, sc);
        // Step 4: the fp32 sum over k (here left to right).
        acc = k == 0 ? term : f32_add(acc, term);
      }
      // Step 5: * 8 (exact unless it overflows).
      r.scale_bias.data<uint32_t>()[e * s.n + n] = f32_mul(eight, acc);
    }
  return r;
}

// The bound (docs/bounds.md, "w4a8_scale_bias"). Per output element, T_k = W_k * P_k * S exactly
// (P_k = 1 without per_group_scale):
//   exact value     8 * sum_k T_k
//   provably exact  every product of two or three of W_k, P_k, S is an fp32 number, all T_k are
//                   multiples of 2^q (q = min 2-adic exponent, q >= -149) and
//                   sum_k |T_k| <= 2^(24+q) and 8 sum_k |T_k| <= max finite: then every partial
//                   sum, in every order and association, is an fp32 number: bound 0.
//   otherwise       8 * (gamma_{K+1} * sum_k |T_k| + sum_k a_k), gamma_n = n u / (1 - n u),
//                   u = 2^-24 (two product roundings per term and K-1 additions in any order;
//                   Higham Lemma 3.3), a_k = 2^-149 * max(1, |W_k|, |P_k|, |S|) when some
//                   nonzero partial product of the term lies below 2^-126 (underflow), else 0;
//                   +Inf when a partial product or 8 * sum |T| * (1 + gamma) can overflow.
//   non-finite inputs: the reference's fp32 result, bound 0 (NaN must stay NaN, Inf the same Inf).
SumBound w4a8_scale_bias_bound(const Tensor& weight, const Tensor& scale, const Tensor* pgs) {
  const W4a8Shape s = check_w4a8_scale_bias_inputs(weight, scale, pgs);
  const Tensor result = w4a8_scale_bias(weight, scale, pgs).scale_bias;
  const int64_t kg = pgs ? s.k / s.g : s.k;
  SumBound b{Tensor(DType::kF64, {s.e, s.n}), Tensor(DType::kF64, {s.e, s.n}), {}};
  b.provably_exact.assign(static_cast<size_t>(s.e * s.n), false);
  const Exact g = gamma(s.k + 1);
  const Exact tiny = pow2(-126);
  const int8_t* w = weight.data<int8_t>();
  for (int64_t e = 0; e < s.e; ++e)
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t o = e * s.n + n;
      const uint32_t sc_bits = widen_bits(scale.dtype(), scale.bits_at(o));
      bool finite = num::decode(kF32, sc_bits).cls != FClass::kInf &&
                    num::decode(kF32, sc_bits).cls != FClass::kNaN;
      for (int64_t gi = 0; pgs && finite && gi < s.g; ++gi) {
        const uint32_t pb = widen_bits(pgs->dtype(), pgs->bits_at((e * s.g + gi) * s.n + n));
        finite = !num::is_inf(kF32, pb) && !num::is_nan(kF32, pb);
      }
      if (!finite) {
        b.exact.data<double>()[o] = num::to_double(kF32, result.data<uint32_t>()[o]);
        b.bound.data<double>()[o] = 0;
        continue;
      }
      const Exact S = num::to_exact(kF32, sc_bits);
      const Exact absS = S < 0 ? Exact(-S) : S;
      Exact sum = 0, sum_abs = 0, slack = 0;
      bool products_exact = true, overflow = false;
      int q = 1 << 30;
      for (int64_t k = 0; k < s.k; ++k) {
        const Exact W = Exact(static_cast<int>(w[(e * s.k + k) * s.n + n]));
        const Exact P =
            pgs ? num::to_exact(
                      kF32, widen_bits(pgs->dtype(), pgs->bits_at((e * s.g + k / kg) * s.n + n)))
                : Exact(1);
        const Exact T = W * P * S;
        sum += T;
        sum_abs += T < 0 ? Exact(-T) : T;
        bool underflow = false;
        for (const Exact& x : {Exact(W * P), Exact(P * S), Exact(W * S), T}) {
          if (x == 0) continue;
          products_exact = products_exact && representable_f32(x);
          overflow = overflow || overflows_f32(x);
          underflow = underflow || (x < 0 ? Exact(-x) : x) < tiny;
        }
        if (underflow) {
          Exact m = 1;
          for (const Exact& f : {W, P, absS}) m = std::max(m, f < 0 ? Exact(-f) : f);
          slack += pow2(-149) * m;
        }
        if (T != 0) q = std::min(q, num::low_bit(T));
      }
      const Exact exact = Exact(8) * sum;
      const bool exact_ok = products_exact && !overflow &&
                            (sum_abs == 0 || (q >= -149 && sum_abs <= pow2(24 + q) &&
                                              !overflows_f32(Exact(8) * sum_abs)));
      b.exact.data<double>()[o] = num::to_double_nearest(exact);
      if (exact_ok) {
        b.bound.data<double>()[o] = 0;
        b.provably_exact[static_cast<size_t>(o)] = true;
      } else if (overflow || overflows_f32(Exact(8) * sum_abs * (Exact(1) + g))) {
        b.bound.data<double>()[o] = HUGE_VAL;
      } else {
        b.bound.data<double>()[o] = stored_bound(Exact(8) * (g * sum_abs + slack), exact);
      }
    }
  return b;
}

// =================================================================================================
// f. w4a8_scale_bias_rank_sum  [HEAD process_weights_after_loading_modelslim] (confidence: high)
//    layer.w2_scale_bias = w2_scale_bias.transpose(1, 2).contiguous().sum(axis=1)
//    ModelSlim stores down_proj's scale_bias as [H, 16] partial columns; a rank of tp loads
//    16/tp of them ([E, H, 16/tp]) and sums them (the all-reduce after the matmul adds the
//    ranks). gate/up: [E, 2I, 1], a sum of one element. fp32 sum, order not fixed: bounded.
// =================================================================================================

Tensor w4a8_scale_bias_rank_sum(const Tensor& sb, int64_t tp, W4a8BiasProj proj) {
  const int64_t c = check_w4a8_rank_sum_inputs(sb, tp, proj);
  const int64_t rows = sb.dim(0) * sb.dim(1);
  Tensor out(DType::kF32, {sb.dim(0), sb.dim(1)});
  const uint32_t* in = sb.data<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    uint32_t acc = in[r * c];
    for (int64_t j = 1; j < c; ++j) acc = f32_add(acc, in[r * c + j]);  // left to right
    out.data<uint32_t>()[r] = acc;
  }
  return out;
}

// The bound (docs/bounds.md, "w4a8_scale_bias_rank_sum"): C - 1 fp32 additions of given fp32
// values in any order: |computed - sum| <= gamma_{C-1} * sum |x_j|; provably exact when all
// x_j are multiples of 2^q and sum |x_j| <= 2^(24+q) (every partial sum is an fp32 number).
SumBound w4a8_scale_bias_rank_sum_bound(const Tensor& sb, int64_t tp, W4a8BiasProj proj) {
  const int64_t c = check_w4a8_rank_sum_inputs(sb, tp, proj);
  const Tensor result = w4a8_scale_bias_rank_sum(sb, tp, proj);
  const int64_t rows = sb.dim(0) * sb.dim(1);
  SumBound b{
      Tensor(DType::kF64, {sb.dim(0), sb.dim(1)}), Tensor(DType::kF64, {sb.dim(0), sb.dim(1)}), {}};
  b.provably_exact.assign(static_cast<size_t>(rows), false);
  const Exact g = gamma(c - 1);
  const uint32_t* in = sb.data<uint32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    bool finite = true;
    for (int64_t j = 0; j < c; ++j)
      finite = finite && !num::is_inf(kF32, in[r * c + j]) && !num::is_nan(kF32, in[r * c + j]);
    if (!finite) {
      b.exact.data<double>()[r] = num::to_double(kF32, result.data<uint32_t>()[r]);
      b.bound.data<double>()[r] = 0;
      continue;
    }
    Exact sum = 0, sum_abs = 0;
    int q = 1 << 30;
    for (int64_t j = 0; j < c; ++j) {
      const Exact x = num::to_exact(kF32, in[r * c + j]);
      sum += x;
      sum_abs += x < 0 ? Exact(-x) : x;
      if (x != 0) q = std::min(q, num::low_bit(x));
    }
    b.exact.data<double>()[r] = num::to_double_nearest(sum);
    if (sum_abs == 0 || c == 1 || (sum_abs <= pow2(24 + q) && !overflows_f32(sum_abs))) {
      b.bound.data<double>()[r] = 0;
      b.provably_exact[static_cast<size_t>(r)] = true;
    } else if (overflows_f32(sum_abs * (Exact(1) + g))) {
      b.bound.data<double>()[r] = HUGE_VAL;
    } else {
      b.bound.data<double>()[r] = stored_bound(g * sum_abs, sum);
    }
  }
  return b;
}

// =================================================================================================
// g. load_scale_to_params_dtype  [notes vllm_ascend_quant.md §A "W8A8_DYNAMIC", pitfall 2]
//    (confidence: high, code): the scale parameter is created with dtype params_dtype, so the
//    weight loader's copy_ rounds the fp32 checkpoint value to bf16/fp16: RNE, overflow -> Inf,
//    fp16 subnormals kept (IEEE; whether the NPU cast flushes them is not documented [inf]),
//    NaN stays NaN (payload not pinned).
// =================================================================================================

Tensor load_scale_to_params_dtype(const Tensor& scale, DType pdt) {
  require_f32("load_scale_to_params_dtype", "scale", scale);
  if (pdt != DType::kBF16 && pdt != DType::kF16)
    throw std::invalid_argument(
        "load_scale_to_params_dtype: params_dtype must be bfloat16 or "
        "float16, got " +
        std::string(dtype_name(pdt)));
  Tensor out(pdt, scale.shape());
  for (int64_t i = 0; i < scale.numel(); ++i)
    out.data<uint16_t>()[i] = static_cast<uint16_t>(narrow_bits(scale.data<uint32_t>()[i], pdt));
  return out;
}

// =================================================================================================
// h. w8a8_static_input_scale_reciprocal  [notes vllm_ascend_quant.md §A "W8A8 (static)",
//    torch_npu_semantics.md §6] (confidence: high for params_dtype, code)
//    params_dtype: input_scale is a pdt parameter (load rounding, g.), then
//                  aclnn_input_scale_reciprocal = 1 / input_scale.repeat(K) in pdt. torch
//                  evaluates 1/t as t.reciprocal() * 1: the reciprocal is computed in fp32 and
//                  rounded to pdt, which equals the exact quotient rounded once (24 >= 2*11+2:
//                  the double rounding is innocuous, tests/ops/scales_test.cpp). The NPU
//                  Reciprocal kernel's accuracy is not documented [inf].
//    fp32_then_params_dtype: 1/x of the fp32 checkpoint value, rounded to fp32, then to pdt
//                  (a port that keeps the scale in fp32 and casts the reciprocal at the end).
//    fp32:         1/x of the fp32 value in fp32 (upstream vLLM CPU: the reciprocal in double,
//                  cast to float = correctly rounded, 53 >= 2*24+2).
//    (The repeat(K) is a broadcast and not modelled: the output has the input's shape.)
// =================================================================================================

ReciprocalResult w8a8_static_input_scale_reciprocal(const Tensor& input_scale, DType pdt,
                                                    ReciprocalReading reading) {
  require_f32("w8a8_static_input_scale_reciprocal", "input_scale", input_scale);
  if (pdt != DType::kBF16 && pdt != DType::kF16)
    throw std::invalid_argument(
        "w8a8_static_input_scale_reciprocal: params_dtype must be "
        "bfloat16 or float16, got " +
        std::string(dtype_name(pdt)));
  ReciprocalResult r;
  const int64_t n = input_scale.numel();
  const uint32_t* in = input_scale.data<uint32_t>();
  switch (reading) {
    case ReciprocalReading::kParamsDtype: {
      r.input_scale_param = load_scale_to_params_dtype(input_scale, pdt);  // step 1: load
      r.reciprocal = Tensor(pdt, input_scale.shape());
      for (int64_t i = 0; i < n; ++i)  // step 2: 1/x in pdt, one rounding
        r.reciprocal.data<uint16_t>()[i] = static_cast<uint16_t>(
            reciprocal_bits(format_of(pdt), r.input_scale_param->data<uint16_t>()[i]));
      break;
    }
    case ReciprocalReading::kFp32ThenParamsDtype:
      r.reciprocal = Tensor(pdt, input_scale.shape());
      for (int64_t i = 0; i < n; ++i)
        r.reciprocal.data<uint16_t>()[i] = static_cast<uint16_t>(
            narrow_bits(static_cast<uint32_t>(reciprocal_bits(kF32, in[i])), pdt));
      break;
    case ReciprocalReading::kFp32:
      r.reciprocal = Tensor(DType::kF32, input_scale.shape());
      for (int64_t i = 0; i < n; ++i)
        r.reciprocal.data<uint32_t>()[i] = static_cast<uint32_t>(reciprocal_bits(kF32, in[i]));
      break;
  }
  return r;
}

}  // namespace ref
}  // namespace qconf
