// Reference: npu_quant_matmul (torch_npu), the executable specification.
//
// Sources (notes/torch_npu_semantics.md §2 unless said otherwise):
//  * signature, dtypes and shapes [doc: op-plugin torch_npu-npu_quant_matmul.md; ops-nn
//    aclnnQuantMatmulV4.md "Constraints" dtype table];
//  * formulas per bias / pertoken combination [doc: aclnnQuantMatmulV4.md];
//  * pertoken path order: int32 acc (+ int32 bias in the cube) -> fp32 -> *scale -> *pertoken
//    -> +float(bias) -> CAST_RINT [code: ops-nn quant_batch_matmul_v3_pertoken.h; test:
//    qbmmv3_kernel_golden.py compute_pertoken]. Confidence: high;
//  * int64 scale = npu_trans_quant_param's quant param: the hardware reads low32 & 0xFFFFE000 as
//    fp32 (FP19) and bits 37..45 as a signed int9 offset [test: matmul_quant_util.py
//    u64_to_deq_scale / u64_to_offset]. Confidence: high (golden);
//  * op-plugin's hidden FP19 truncation: an fp32 scale goes through npu_trans_quant_param when
//    there is no pertoken_scale and the output is neither bf16 nor int32 [code: op-plugin
//    QuantMatmulKernelNpuOpApi.cpp L297-300, `use_trans_quant_param`]. Variant `opplugin_fp19`;
//  * int8 output (requant): y = clip(s9(rint(acc*scale)) + s9(offset), -128, 127),
//    s9 = clip(round(.), -256, 255) [test: qbmmv3_kernel_golden.py compute_requant; arch
//    applicability not stated]. Confidence: medium;
//  * the fixpipe's internal precision for the int64-scale product is undocumented [inf]:
//    variant `fixpipe_precision` (fp32 | exact);
//  * int4 operands: 8 two's-complement nibbles per int32, element 8j+t in bits [4t, 4t+3] of
//    word j (§0). x1 and x2 must both be int8 or both int32 [doc: "x2 ...
//    与x1的数据类型须保持一致"].
//
// Everything is deterministic (the integer accumulation is exact in any order), so every stage
// is exact: integers are summed in int64 (no int8 matmul of a real NPU shape can leave int64),
// every float step is one IEEE fp32 operation computed exactly and rounded once
// (qconf/numeric/fp_ops.h), and every cast names its rounding.
#include "qconf/ops/quant_matmul.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/numeric/rounding.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/scales.h"

namespace qconf {

using num::Exact;
using num::kF32;

std::string_view fixpipe_precision_name(FixpipePrecision p) {
  return p == FixpipePrecision::kFp32 ? "fp32" : "exact";
}

FixpipePrecision parse_fixpipe_precision(std::string_view s) {
  if (s == "fp32") return FixpipePrecision::kFp32;
  if (s == "exact") return FixpipePrecision::kExact;
  throw std::invalid_argument("unknown fixpipe_precision \"" + std::string(s) +
                              "\" (expected fp32 or exact)");
}

namespace {

constexpr const char* kOp = "npu_quant_matmul";

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(std::string(kOp) + ": " + what);
}

bool is_per_column(const Tensor& t, int64_t n) {
  return t.rank() == 1 && (t.dim(0) == 1 || t.dim(0) == n);
}

}  // namespace

// ---- input validation and the dequant path (shared by ref and opt) ----------------------------
// Dtype combinations follow the aclnnQuantMatmulV4 A2/A3 table; the few this reference accepts
// beyond it are said where they are accepted.
QuantMatmulPlan plan_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                  const Tensor* offset, const Tensor* pertoken, const Tensor* bias,
                                  const QuantMatmulConfig& cfg) {
  return plan_quant_matmul(x1.dtype(), x1.shape(), x2.dtype(), x2.shape(), scale, offset, pertoken,
                           bias, cfg);
}

QuantMatmulPlan plan_quant_matmul(DType x1_dtype, const Shape& x1_shape, DType x2_dtype,
                                  const Shape& x2_shape, const Tensor& scale, const Tensor* offset,
                                  const Tensor* pertoken, const Tensor* bias,
                                  const QuantMatmulConfig& cfg) {
  QuantMatmulPlan p;
  // The operand descriptions of the error messages, built only when one is thrown (a plan is
  // made on every call of the optimized linear).
  auto x1s = [&] { return std::string(dtype_name(x1_dtype)) + shape_str(x1_shape); };
  auto x2s = [&] { return std::string(dtype_name(x2_dtype)) + shape_str(x2_shape); };
  if (x1_dtype != DType::kI8 && x1_dtype != DType::kI32)
    bad("x1 must be int8 or int32 (8 packed int4), got " + x1s());
  if (x2_dtype != x1_dtype)
    bad("x2 must have x1's dtype (int8 with int8, int32-packed int4 with int32), got x1 " + x1s() +
        ", x2 " + x2s());
  const int r1 = static_cast<int>(x1_shape.size()), r2 = static_cast<int>(x2_shape.size());
  if (r1 < 2 || r1 > 3) bad("x1 must be [m, k] or [b, m, k], got " + x1s());
  if (r2 < 2 || r2 > 3) bad("x2 must be [k, n] or [b, k, n], got " + x2s());
  p.int4 = x1_dtype == DType::kI32;
  const int64_t per_word = p.int4 ? kInt4PerInt32 : 1;
  p.m = x1_shape[r1 - 2];
  p.k = x1_shape[r1 - 1] * per_word;
  p.n = x2_shape[r2 - 1] * per_word;
  if (x2_shape[r2 - 2] != p.k)
    bad("x2's k (" + std::to_string(x2_shape[r2 - 2]) + ") must equal x1's k (" +
        std::to_string(p.k) + (p.int4 ? ", 8 per int32 word" : "") + "), got x1 " + x1s() +
        ", x2 " + x2s());
  const int64_t b1 = r1 == 3 ? x1_shape[0] : 1, b2 = r2 == 3 ? x2_shape[0] : 1;
  if (b1 != b2 && b1 != 1 && b2 != 1)
    bad("batch dims must match or be 1, got x1 " + x1s() + ", x2 " + x2s());
  p.batch = std::max(b1, b2);
  p.x1_batched = b1 > 1;
  p.x2_batched = b2 > 1;
  p.out_shape = (r1 == 3 || r2 == 3) ? Shape{p.batch, p.m, p.n} : Shape{p.m, p.n};

  const DType out = cfg.output_dtype;
  if (out != DType::kI8 && out != DType::kF16 && out != DType::kBF16 && out != DType::kF32 &&
      out != DType::kI32)
    bad("output_dtype must be int8, float16, bfloat16, float32 or int32, got " +
        std::string(dtype_name(out)));
  // float32 output is not in torch_npu's list; accepted as the un-cast fp32 result.

  if (scale.dtype() != DType::kF32 && scale.dtype() != DType::kBF16 && scale.dtype() != DType::kI64)
    bad("scale must be float32, bfloat16 or int64 (npu_trans_quant_param), got " +
        scale.describe());
  if (!is_per_column(scale, p.n))
    bad("scale must be [1] or [n] with n = " + std::to_string(p.n) + ", got " + scale.describe());
  if (scale.dtype() == DType::kBF16 && out != DType::kBF16 && out != DType::kI32 &&
      out != DType::kF32)
    bad("a bfloat16 scale needs output_dtype bfloat16 (or int32), got " +
        std::string(dtype_name(out)));

  if (offset) {
    p.has_offset = true;
    if (offset->dtype() != DType::kF32 || !is_per_column(*offset, p.n))
      bad("offset must be float32 [1] or [n], got " + offset->describe());
    if (out != DType::kI8) bad("offset is only allowed with output_dtype int8 (aclnn: nullptr)");
    if (scale.dtype() == DType::kI64)
      bad("with an int64 scale the offset lives in its bits 37..45 (npu_trans_quant_param(scale, "
          "offset)); a separate offset tensor is not modelled");
  }
  if (pertoken) {
    p.has_pertoken = true;
    if (pertoken->dtype() != DType::kF32 || pertoken->rank() != 1 || pertoken->dim(0) != p.m)
      bad("pertoken_scale must be float32 [m] with m = " + std::to_string(p.m) + ", got " +
          pertoken->describe());
    if (out != DType::kF16 && out != DType::kBF16 && out != DType::kF32)
      bad("pertoken_scale needs output_dtype float16 or bfloat16, got " +
          std::string(dtype_name(out)));
    if (scale.dtype() == DType::kI64) bad("pertoken_scale needs a float32 or bfloat16 scale");
  }
  if (bias) {
    if (bias->rank() != 1 || bias->dim(0) != p.n)
      bad("bias must be [n] with n = " + std::to_string(p.n) + ", got " + bias->describe());
    const DType bt = bias->dtype();
    if (bt == DType::kI32) {
      p.bias_int32 = true;
    } else if (bt == DType::kF32 || bt == DType::kBF16 || bt == DType::kF16) {
      p.bias_float = true;
      if (out == DType::kI8 || out == DType::kI32)
        bad("a float bias needs a float output, got output_dtype " + std::string(dtype_name(out)));
      if (bt == DType::kF16 && out != DType::kF16) bad("a float16 bias needs output_dtype float16");
      if (bt == DType::kBF16 && out != DType::kBF16)
        bad("a bfloat16 bias needs output_dtype bfloat16");
    } else {
      bad("bias must be int32, bfloat16, float16 or float32, got " + bias->describe());
    }
  }

  // The dequant unit. op-plugin L297-300: use_trans_quant_param = scale is float32 &&
  // !pertoken_scale && output != bf16 && output != int32.
  if (out == DType::kI32) {
    p.path = QuantMatmulPath::kInt32Out;
  } else if (scale.dtype() == DType::kI64) {
    p.path = QuantMatmulPath::kFixpipe;
  } else if (scale.dtype() == DType::kF32 && cfg.opplugin_fp19 && !pertoken &&
             out != DType::kBF16) {
    p.path = QuantMatmulPath::kFixpipe;
  } else {
    p.path = QuantMatmulPath::kVector;
  }
  if (p.path == QuantMatmulPath::kFixpipe && p.bias_float)
    bad("a float bias cannot reach the int64-scale (fixpipe) path, which takes an int32 bias "
        "only (with opplugin_fp19, op-plugin turns this fp32 scale into an int64 one)");
  return p;
}

// The scale and offset each column sees.
//  fixpipe, int64 scale: ref::decode_dequant_scale_bits / decode_offset_int9 (scales.h, the
//    hardware golden's u64_to_deq_scale / u64_to_offset);
//  fixpipe, fp32 scale (op-plugin): npu_trans_quant_param(scale, offset) with its default
//    round_mode 0 (encode_scale_field kFp19Trunc, encode_offset_int9), then the same decode;
//  vector: the fp32 scale as given, a bf16 scale widened (exact); an int8-output offset is
//    s9(offset) = clip(rint(offset), -256, 255), the requant golden's s9 (= encode_offset_int9).
QuantMatmulColumnParams quant_matmul_column_params(const QuantMatmulPlan& plan, const Tensor& scale,
                                                   const Tensor* offset) {
  QuantMatmulColumnParams c;
  c.scale_bits.assign(static_cast<size_t>(plan.n), 0);
  c.offset9.assign(static_cast<size_t>(plan.n), 0);
  if (plan.path == QuantMatmulPath::kInt32Out) return c;
  for (int64_t j = 0; j < plan.n; ++j) {
    const int64_t js = scale.numel() == 1 ? 0 : j;
    const size_t ju = static_cast<size_t>(j);
    uint32_t off_bits = 0;
    if (offset) off_bits = offset->data<uint32_t>()[offset->numel() == 1 ? 0 : j];
    if (scale.dtype() == DType::kI64) {
      const uint64_t qp = static_cast<uint64_t>(scale.data<int64_t>()[js]);
      c.scale_bits[ju] = ref::decode_dequant_scale_bits(qp);
      c.offset9[ju] = ref::decode_offset_int9(qp);
    } else if (plan.path == QuantMatmulPath::kFixpipe) {
      const uint32_t field =
          ref::encode_scale_field(scale.data<uint32_t>()[js], TransQuantEncoding::kFp19Trunc);
      uint64_t qp = static_cast<uint64_t>(field) | kQuantParamFlag;
      if (offset) {
        const int32_t o9 = ref::encode_offset_int9(off_bits, TransQuantEncoding::kFp19Trunc);
        qp |= (static_cast<uint64_t>(o9) & kQuantParamOffsetMask) << kQuantParamOffsetShift;
      }
      c.scale_bits[ju] = ref::decode_dequant_scale_bits(qp);
      c.offset9[ju] = ref::decode_offset_int9(qp);
    } else {
      c.scale_bits[ju] =
          scale.dtype() == DType::kF32
              ? scale.data<uint32_t>()[js]
              : static_cast<uint32_t>(num::convert(num::kBF16, scale.data<uint16_t>()[js], kF32));
      if (offset) c.offset9[ju] = ref::encode_offset_int9(off_bits, TransQuantEncoding::kFp19Trunc);
    }
  }
  return c;
}

namespace ref {
namespace {

// ---- step 1: operand values ------------------------------------------------------------------
// int8 as is; int32 words unpacked: element 8j+t of a row = signed nibble t of word j (§0).
int8_t operand_value(const Tensor& x, bool int4, int64_t row, int64_t col, int64_t cols) {
  if (!int4) return x.data<int8_t>()[row * cols + col];
  const uint32_t word =
      static_cast<uint32_t>(x.data<int32_t>()[row * (cols / kInt4PerInt32) + col / 8]);
  const int32_t nibble = static_cast<int32_t>((word >> (4 * (col % 8))) & 0xFu);
  return static_cast<int8_t>(nibble >= 8 ? nibble - 16 : nibble);
}

// Row-major int8 values of batch b of an operand [.., rows, cols].
std::vector<int8_t> operand_matrix(const Tensor& x, bool int4, bool batched, int64_t b,
                                   int64_t rows, int64_t cols) {
  std::vector<int8_t> v(static_cast<size_t>(rows * cols));
  const int64_t first_row = batched ? b * rows : 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      v[static_cast<size_t>(r * cols + c)] = operand_value(x, int4, first_row + r, c, cols);
  return v;
}

// ---- step 2: the cube's int32 accumulator ----------------------------------------------------
// The exact dot product (int64: |sum| <= k * 2^14, exact for any k < 2^49). The cube's L0C is
// int32; a value outside its range wraps modulo 2^32 [inf: the kernel does not check; it cannot
// happen for int8 with k <= 65535 (|acc| <= 65535 * 2^14 < 2^31), only through an int32 bias].
int64_t exact_dot(const std::vector<int8_t>& a, const std::vector<int8_t>& w, int64_t i, int64_t j,
                  int64_t k, int64_t n) {
  int64_t s = 0;
  for (int64_t t = 0; t < k; ++t)
    s += int64_t{a[static_cast<size_t>(i * k + t)]} * w[static_cast<size_t>(t * n + j)];
  return s;
}

int32_t wrap_to_int32(int64_t exact, int64_t& overflows) {
  if (exact < INT32_MIN || exact > INT32_MAX) ++overflows;
  return static_cast<int32_t>(num::wrap_to_bits(exact, 32));
}

// ---- step 3: + int32 bias, in the int32 accumulator ((x1@x2 + bias) * scale) ------------------
int32_t add_int32_bias(int32_t acc, int32_t bias, int64_t& overflows) {
  return wrap_to_int32(int64_t{acc} + bias, overflows);
}

// ---- step 4: int32 -> fp32, round to nearest even (exact for |acc| <= 2^24) -------------------
uint32_t acc_to_fp32(int32_t acc) {
  return static_cast<uint32_t>(num::encode(kF32, Exact(acc), num::Round::kRint));
}

// ---- step 5: * scale (one fp32 multiply: the vector unit, or the fixpipe read as fp32) -------
uint32_t multiply_by_scale(uint32_t v, uint32_t scale_bits) {
  return static_cast<uint32_t>(num::fp_mul(kF32, v, scale_bits));
}

// ---- step 6: * pertoken_scale[m] (one fp32 multiply) ----------------------------------------
uint32_t multiply_by_pertoken(uint32_t v, uint32_t pertoken_bits) {
  return static_cast<uint32_t>(num::fp_mul(kF32, v, pertoken_bits));
}

// ---- step 7: + float(bias) (bias widened to fp32 exactly, one fp32 add) ------------------------
uint32_t float_bias_bits(const Tensor& bias, int64_t j) {
  switch (bias.dtype()) {
    case DType::kF32:
      return bias.data<uint32_t>()[j];
    case DType::kF16:
      return static_cast<uint32_t>(num::convert(num::kF16, bias.data<uint16_t>()[j], kF32));
    default:
      return static_cast<uint32_t>(num::convert(num::kBF16, bias.data<uint16_t>()[j], kF32));
  }
}
uint32_t add_float_bias(uint32_t v, uint32_t bias_bits) {
  return static_cast<uint32_t>(num::fp_add(kF32, v, bias_bits));
}

// ---- step 8: the output cast -------------------------------------------------------------------
// fp16 / bf16: CAST_RINT (round to nearest even; overflow -> Inf; NaN stays NaN).
const num::FloatFormat& float_format_of(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : kF32);
}
uint64_t cast_fp32_to_output(uint32_t v, DType out) {
  return out == DType::kF32 ? v : num::convert(kF32, v, float_format_of(out), num::Round::kRint);
}

// int8 (requant golden): s9(rint(v)) with s9 = clip(., -256, 255); NaN -> 0, +-Inf saturate
// (notes §0 float->int rule).
int32_t requant_s9_of_fp32(uint32_t v) {
  const int64_t r = num::float_to_int(kF32, v, num::Round::kRint, 32);
  return static_cast<int32_t>(std::clamp<int64_t>(r, kInt9Min, kInt9Max));
}
int32_t requant_s9_of_exact(const Exact& v) {
  const num::BigInt r = num::round_to_integer(v, num::Round::kRint);
  if (r < kInt9Min) return kInt9Min;
  if (r > kInt9Max) return kInt9Max;
  return static_cast<int32_t>(r);
}
// y = clip(s9 + s9(offset), -128, 127).
int8_t requant_add_offset(int32_t s9, int32_t offset9) {
  return static_cast<int8_t>(std::clamp(s9 + offset9, -128, 127));
}

// ---- fixpipe `exact` reading: acc * scale rounded once ---------------------------------------
// The product of a finite FP19 scale and an int32 is exact in Exact; Inf/NaN scales take the
// IEEE product of fp32(acc) and the scale (the exact value does not exist; the specials are the
// same under both readings).
bool scale_is_finite(uint32_t s) { return !num::is_nan(kF32, s) && !num::is_inf(kF32, s); }

}  // namespace

QuantMatmulStages npu_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                   const Tensor* offset, const Tensor* pertoken, const Tensor* bias,
                                   const QuantMatmulConfig& cfg) {
  const QuantMatmulPlan p = plan_quant_matmul(x1, x2, scale, offset, pertoken, bias, cfg);
  const QuantMatmulColumnParams col = quant_matmul_column_params(p, scale, offset);
  const DType out_dt = cfg.output_dtype;
  const bool exact_fixpipe =
      p.path == QuantMatmulPath::kFixpipe && cfg.fixpipe == FixpipePrecision::kExact;
  const bool float_out = out_dt == DType::kF16 || out_dt == DType::kBF16 || out_dt == DType::kF32;

  QuantMatmulStages st;
  st.acc = Tensor(DType::kI32, p.out_shape);
  if (p.bias_int32) st.acc_bias = Tensor(DType::kI32, p.out_shape);
  if (p.path != QuantMatmulPath::kInt32Out && !exact_fixpipe)
    st.dequant = Tensor(DType::kF32, p.out_shape);
  if (p.has_pertoken) st.pertoken = Tensor(DType::kF32, p.out_shape);
  if (p.bias_float) st.biased = Tensor(DType::kF32, p.out_shape);
  if (out_dt == DType::kI8) st.requant = Tensor(DType::kI32, p.out_shape);
  st.out = Tensor(out_dt, p.out_shape);

  for (int64_t b = 0; b < p.batch; ++b) {
    const auto a = operand_matrix(x1, p.int4, p.x1_batched, b, p.m, p.k);
    const auto w = operand_matrix(x2, p.int4, p.x2_batched, b, p.k, p.n);
    for (int64_t i = 0; i < p.m; ++i) {
      for (int64_t j = 0; j < p.n; ++j) {
        const int64_t e = (b * p.m + i) * p.n + j;
        const size_t ju = static_cast<size_t>(j);
        int32_t acc = wrap_to_int32(exact_dot(a, w, i, j, p.k, p.n), st.int32_overflows);
        st.acc.data<int32_t>()[e] = acc;
        if (p.bias_int32) {
          acc = add_int32_bias(acc, bias->data<int32_t>()[j], st.int32_overflows);
          st.acc_bias->data<int32_t>()[e] = acc;
        }
        if (p.path == QuantMatmulPath::kInt32Out) {
          st.out.data<int32_t>()[e] = acc;
          continue;
        }
        const uint32_t sc = col.scale_bits[ju];
        if (exact_fixpipe && scale_is_finite(sc)) {
          const Exact prod = Exact(acc) * num::to_exact(kF32, sc);
          if (float_out) {
            // A zero product keeps the IEEE sign of a product: sign(acc) xor sign(scale).
            const bool negative_zero = (acc < 0) != ((sc >> 31) != 0);
            const uint64_t bits =
                num::encode(float_format_of(out_dt), prod, num::Round::kRint, negative_zero);
            if (out_dt == DType::kF32)
              st.out.data<uint32_t>()[e] = static_cast<uint32_t>(bits);
            else
              st.out.data<uint16_t>()[e] = static_cast<uint16_t>(bits);
          } else {
            const int32_t s9 = requant_s9_of_exact(prod);
            st.requant->data<int32_t>()[e] = s9;
            st.out.data<int8_t>()[e] = requant_add_offset(s9, col.offset9[ju]);
          }
          continue;
        }
        uint32_t v = multiply_by_scale(acc_to_fp32(acc), sc);
        if (st.dequant) st.dequant->data<uint32_t>()[e] = v;
        if (p.has_pertoken) {
          v = multiply_by_pertoken(v, pertoken->data<uint32_t>()[i]);
          st.pertoken->data<uint32_t>()[e] = v;
        }
        if (p.bias_float) {
          v = add_float_bias(v, float_bias_bits(*bias, j));
          st.biased->data<uint32_t>()[e] = v;
        }
        if (float_out) {
          const uint64_t bits = cast_fp32_to_output(v, out_dt);
          if (out_dt == DType::kF32)
            st.out.data<uint32_t>()[e] = static_cast<uint32_t>(bits);
          else
            st.out.data<uint16_t>()[e] = static_cast<uint16_t>(bits);
        } else {
          const int32_t s9 = requant_s9_of_fp32(v);
          st.requant->data<int32_t>()[e] = s9;
          st.out.data<int8_t>()[e] = requant_add_offset(s9, col.offset9[ju]);
        }
      }
    }
  }
  return st;
}

}  // namespace ref
}  // namespace qconf
