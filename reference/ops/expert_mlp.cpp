// Reference: the quantized expert MLP ops (reference/include/qconf/ops/expert_mlp.h).
//
// Sources and confidence, step by step:
//  * npu_grouped_matmul: group_list types 0 cumsum / 1 count / 2 [E, 2] (expert, count); the
//    quant formula (x @ w + int32 bias) * scale * per_token_scale [doc: op-plugin
//    torch_npu-npu_grouped_matmul.md, notes §10]; the per-group epilogue is npu_quant_matmul's
//    vector path (acc -> fp32 -> * scale -> * pertoken -> + float bias -> cast RINT; notes §2).
//    Rows past sum(group_list) are undocumented [notes §10: "Rows beyond sum(group_list):
//    undocumented"]: unspecified. Confidence: high for the groups, [inf] for the tail.
//  * grouped_matmul_swiglu_quant [code: ops-transformer grouped_matmul_swiglu_quant.h, notes
//    §10]: acc -> fp32 -> * x_scale -> * w_scale (this order); S = swish(C[:, :H]) * C[:, H:],
//    swish(a) = a / (1 + exp(-a)); q = max|S| / 127 (output); y = S * (1 / q) -> fp32 -> fp16
//    RINT -> int8 RINT (double rounding); rows >= group_list[-1] not written. Confidence: high
//    (kernel), exp accuracy [inf].
//  * dequant_swiglu_quant [doc: op-plugin; code: ops-nn dequant_swiglu_quant_dynamic_base.hpp,
//    notes §10]: x * weight_scale * activation_scale; activate_left=False: swish(second half) *
//    first half; swiglu_mode 1: interleaved (gate = even, up = odd columns), gate clamped above at
//    clamp_limit, up clamped to [-limit, limit], gate * sigmoid(alpha * gate) * (up + glu_bias)
//    (the same formula as vllm-ascend's SwiGLU-OAI test, notes §12); dynamic quant per row: q =
//    amax / 127 and y = S / q [inf: the kernel's exact divide/multiply order is not in the
//    notes]; fp32 -> int16 RINT -> fp16 -> int8 (single rounding). group_index = counts; rows
//    past their sum not written. Confidence: medium.
//  * npu_swiglu = A * sigmoid(A) * B, A the first half [doc].
//  * W4A8 MSD split [code: vllm-ascend csrc/gmm/grouped_matmul_swiglu_quant_v2 *_a8w4_msd_*,
//    notes/vllm_ascend_quant.md §A]: x = 16 * floor(x / 16) + ((x & 0xF) - 8) + 8.
//
// Exactness: integer steps in int64; every fp32 step one IEEE operation (fp_ops.h); exp is the
// only transcendental: the canonical value uses exp correctly rounded to fp32 (computed in
// 50-digit binary floating point); the exact value uses the 50-digit exp itself, whose relative
// error (< 2^-160) is added to every bound. Bounds and intervals: docs/bounds.md, "expert MLP".
#include "qconf/ops/expert_mlp.h"

#include <algorithm>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/numeric/bounds.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/numeric/rounding.h"
#include "qconf/ops/quant_matmul.h"

namespace qconf {

using num::Exact;
using Big = boost::multiprecision::cpp_bin_float_50;

namespace {

[[noreturn]] void bad(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

// The exact rational value of a finite binary float (cpp_bin_float has < 200 mantissa bits).
Exact exact_of(const Big& v) {
  if (v == 0) return Exact(0);
  int e = 0;
  Big m = boost::multiprecision::frexp(v, &e);  // v = m 2^e, 0.5 <= |m| < 1
  num::BigInt mi(boost::multiprecision::ldexp(m, 200));
  Exact r(mi);
  const int sh = e - 200;
  if (sh >= 0) return r * Exact(num::BigInt(1) << sh);
  return r / Exact(num::BigInt(1) << (-sh));
}

Big big_of(float f) { return Big(static_cast<double>(f)); }

float f32_of_exact(const Exact& v, num::Round mode) {
  return num::f32_from_bits(static_cast<uint32_t>(num::encode(num::kF32, v, mode)));
}
double f64_of_exact(const Exact& v, num::Round mode) {
  const uint64_t b = num::encode(num::kF64, v, mode);
  double d;
  std::memcpy(&d, &b, sizeof d);
  return d;
}

// fp32(int32) with RINT (> 2^24 rounds).
float f32_of_int(int64_t v) { return f32_of_exact(Exact(v), num::Round::kRint); }

// exp(t) correctly rounded to fp32 (RNE from 50 digits; a double rounding at a tie of the fp32
// grid would need exp(t) within 2^-160 of a midpoint, which does not happen for fp32 t).
float exp_f32(float t) {
  return f32_of_exact(exact_of(boost::multiprecision::exp(big_of(t))), num::Round::kRint);
}

}  // namespace

// ---- group lists ---------------------------------------------------------------------------

GroupRows group_rows(const Tensor& group_list, GroupListType type, int64_t experts, int64_t m) {
  const char* op = "npu_grouped_matmul";
  if (group_list.dtype() != DType::kI64)
    bad(op, "group_list must be int64, got " + group_list.describe());
  Tensor counts;
  try {
    counts = ref::group_list_counts(group_list, type, experts);
  } catch (const std::invalid_argument& e) {
    bad(op, std::string("group_list (") + group_list_type_name(type) + "): " + e.what());
  }
  if (counts.numel() != experts)
    bad(op, "group_list describes " + std::to_string(counts.numel()) + " experts, the weight has " +
                std::to_string(experts));
  GroupRows g;
  int64_t row = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t c = counts.int_at(e);
    if (c == 0) continue;
    g.expert.push_back(e);
    g.begin.push_back(row);
    row += c;
    g.end.push_back(row);
  }
  if (row > m)
    bad(op, "group_list sums to " + std::to_string(row) + " rows, x has " + std::to_string(m));
  g.valid_rows = row;
  return g;
}

namespace {

Tensor rows_of(const Tensor& t, int64_t r0, int64_t r1) {
  // Rows [r0, r1) of a [R, ...] tensor (R = dim 0), as a new tensor.
  Shape s = t.shape();
  const int64_t row = t.numel() / std::max<int64_t>(s[0], 1);
  s[0] = r1 - r0;
  Tensor out(t.dtype(), s);
  const size_t sz = dtype_size(t.dtype());
  if (out.numel())
    std::memcpy(out.bytes(), t.bytes() + static_cast<size_t>(r0 * row) * sz, out.nbytes());
  return out;
}

Tensor reshaped(const Tensor& t, Shape s) {
  Tensor out(t.dtype(), std::move(s));
  if (out.nbytes() != t.nbytes()) throw std::logic_error("reshaped: element count differs");
  if (out.nbytes()) std::memcpy(out.bytes(), t.bytes(), t.nbytes());
  return out;
}

void put_rows(Tensor& dst, int64_t r0, const Tensor& src) {
  const size_t sz = dtype_size(dst.dtype());
  const int64_t row = dst.numel() / std::max<int64_t>(dst.dim(0), 1);
  if (src.numel())
    std::memcpy(dst.bytes() + static_cast<size_t>(r0 * row) * sz, src.bytes(), src.nbytes());
}

}  // namespace

namespace {
struct GmmChecked {
  int64_t m, k, n, e;
};
GmmChecked check_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor* scale,
                                const Tensor* per_token_scale, const Tensor* bias,
                                const GroupedMatmulConfig& cfg) {
  const char* op = "npu_grouped_matmul";
  if (x.dtype() != DType::kI8 || x.rank() != 2)
    bad(op, "x must be int8 [M, K], got " + x.describe());
  if (weight.dtype() != DType::kI8 || weight.rank() != 3 || weight.dim(1) != x.dim(1))
    bad(op, "weight must be int8 [E, K, N] with x's K, got " + weight.describe() + " for x " +
                x.describe());
  GmmChecked c{x.dim(0), x.dim(1), weight.dim(2), weight.dim(0)};
  const DType o = cfg.output_dtype;
  if (o != DType::kBF16 && o != DType::kF16 && o != DType::kF32 && o != DType::kI32)
    bad(op, "output_dtype must be bfloat16, float16, float32 or int32");
  if (o != DType::kI32) {
    if (!scale || (scale->dtype() != DType::kF32 && scale->dtype() != DType::kBF16) ||
        scale->shape() != Shape{c.e, c.n})
      bad(op, "scale must be float32 or bfloat16 [E, N] = [" + std::to_string(c.e) + ", " +
                  std::to_string(c.n) + "]" + (scale ? ", got " + scale->describe() : ""));
    if (per_token_scale &&
        (per_token_scale->dtype() != DType::kF32 || per_token_scale->shape() != Shape{c.m}))
      bad(op, "per_token_scale must be float32 [M], got " + per_token_scale->describe());
  }
  if (bias && ((bias->dtype() != DType::kI32 && bias->dtype() != DType::kF32) ||
               bias->shape() != Shape{c.e, c.n}))
    bad(op, "bias must be int32 or float32 [E, N], got " + bias->describe());
  if (bias && o == DType::kI32 && bias->dtype() != DType::kI32)
    bad(op, "int32 output takes an int32 bias only");
  return c;
}
}  // namespace

namespace ref {

// One group = one npu_quant_matmul call on the group's rows and its expert's weight and scale
// (the vector-path epilogue, no op-plugin FP19 conversion: GMM takes its scale as given).
GroupedMatmulStages npu_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor* scale,
                                       const Tensor* per_token_scale, const Tensor* bias,
                                       const Tensor& group_list, const GroupedMatmulConfig& cfg) {
  const GmmChecked c = check_grouped_matmul(x, weight, scale, per_token_scale, bias, cfg);
  const GroupRows g = group_rows(group_list, cfg.group_list_type, c.e, c.m);
  GroupedMatmulStages s;
  s.acc = Tensor(DType::kI32, {c.m, c.n});
  s.out = Tensor(cfg.output_dtype, {c.m, c.n});
  s.valid_rows = g.valid_rows;
  QuantMatmulConfig qc;
  qc.output_dtype = cfg.output_dtype;
  qc.opplugin_fp19 = false;
  const Tensor one = Tensor::from<float>({1}, {1.0f});
  for (size_t i = 0; i < g.expert.size(); ++i) {
    const int64_t e = g.expert[i], r0 = g.begin[i], r1 = g.end[i];
    const Tensor xg = rows_of(x, r0, r1);
    const Tensor wg = reshaped(rows_of(weight, e, e + 1), {c.k, c.n});
    const bool i32 = cfg.output_dtype == DType::kI32;
    const Tensor sg = i32 ? one : reshaped(rows_of(*scale, e, e + 1), {c.n});
    std::optional<Tensor> pg, bg;
    if (per_token_scale && !i32) pg = rows_of(*per_token_scale, r0, r1);
    if (bias) bg = reshaped(rows_of(*bias, e, e + 1), {c.n});
    QuantMatmulStages q =
        npu_quant_matmul(xg, wg, sg, nullptr, pg ? &*pg : nullptr, bg ? &*bg : nullptr, qc);
    put_rows(s.acc, r0, q.acc);
    put_rows(s.out, r0, q.out);
  }
  return s;
}

}  // namespace ref

// ---- SwiGLU ----------------------------------------------------------------------------------

std::pair<float, float> swiglu_operands(const float* row, int64_t h, int64_t j,
                                        const SwigluConfig& cfg) {
  if (cfg.swiglu_mode == 1) {
    // Interleaved: gate = even column, up = odd column; clamps (exact: min/max).
    float gate = row[2 * j], up = row[2 * j + 1];
    const float l = cfg.clamp_limit;
    if (gate > l) gate = l;
    if (up > l) up = l;
    if (up < -l) up = -l;
    return {gate, up};
  }
  const float first = row[j], second = row[h + j];
  return cfg.activate_left ? std::pair{first, second} : std::pair{second, first};
}

SwigluEval swiglu_eval(float a, float b, const SwigluConfig& cfg) {
  using num::f32_add;
  using num::f32_div;
  using num::f32_mul;
  const bool oai = cfg.swiglu_mode == 1;
  SwigluEval r{};
  // The canonical fp32 evaluation.
  const float t = oai ? f32_mul(cfg.glu_alpha, a) : a;  // exp argument is -t
  const float e = exp_f32(-t);
  const float d = f32_add(1.0f, e);
  const float s = f32_div(a, d);
  const float u = oai ? f32_add(b, cfg.glu_bias) : b;
  r.value = f32_mul(s, u);
  if (!std::isfinite(a) || !std::isfinite(b) || !std::isfinite(r.value)) {
    r.exact = r.value;
    r.bound = std::numeric_limits<double>::infinity();
    r.lo = -std::numeric_limits<float>::infinity();
    r.hi = std::numeric_limits<float>::infinity();
    return r;
  }
  // The exact value.
  const Big ta = oai ? big_of(cfg.glu_alpha) * big_of(a) : big_of(a);
  const Big ub = oai ? big_of(b) + big_of(cfg.glu_bias) : big_of(b);
  const Big ex = big_of(a) * ub / (1 + boost::multiprecision::exp(-ta));
  const Big mag = abs(ex);
  // The bound (docs/bounds.md, "expert MLP"): a relative part gamma |S| from r roundings (each
  // possibly inverted), the exp error eps and, for SwiGLU-OAI, the rounding of the exp argument
  // alpha * gate (exp(|t| u)); an absolute part where a step may underflow; and |S| itself where
  // exp(-t) may overflow fp32 (the result may then be 0).
  const Big u32 = boost::multiprecision::ldexp(Big(1), -24);
  const Big eps = boost::multiprecision::ldexp(Big(1), kExpRelErrorLog2) +
                  boost::multiprecision::ldexp(Big(1), -140);
  const int rounds = oai ? 5 : 4;
  // (1 - eps)^-2: the exp error may enter twice (the stable sigmoid e^a / (1 + e^a) for a < 0).
  Big gamma = 1 / (pow(1 - u32, rounds) * pow(1 - eps, 2));
  if (oai) gamma *= boost::multiprecision::exp(abs(ta) * u32);
  gamma -= 1;
  gamma += boost::multiprecision::ldexp(Big(1), -150);  // the 50-digit exp
  Big bound = 0;
  if (ex != 0) {
    bound = gamma * mag;
    const Big tiny = boost::multiprecision::ldexp(Big(1), -126);
    const Big den = 1 + boost::multiprecision::exp(-ta);
    const bool may_underflow =
        abs(big_of(a)) / den * (1 - gamma) < tiny || mag * (1 - gamma) < tiny;
    if (may_underflow)
      bound += boost::multiprecision::ldexp(Big(1), -148) * (1 + abs(big_of(a))) * (1 + abs(ub));
    if (-ta >= 87) bound += mag;  // exp(-t) may overflow: 1 + e = inf, s = 0
  }
  const Exact ex_q = exact_of(ex), bd_q = exact_of(bound);
  r.exact = f64_of_exact(ex_q, num::Round::kRint);
  // Stored bound: the derived one plus the error of storing the exact value, widened for the
  // checker's own double subtraction and rounded up (qconf/numeric/bounds.h, stored_bound).
  r.bound = num::stored_bound(bd_q, ex_q);
  r.lo = f32_of_exact(ex_q - bd_q, num::Round::kFloor);
  r.hi = f32_of_exact(ex_q + bd_q, num::Round::kCeil);
  if (!std::isfinite(r.lo) || !std::isfinite(r.hi))
    r.bound = std::numeric_limits<double>::infinity();
  return r;
}

namespace {

void check_swiglu_input(const char* op, const Tensor& x) {
  if ((x.dtype() != DType::kF32 && x.dtype() != DType::kF16 && x.dtype() != DType::kBF16) ||
      x.rank() < 1 || x.dim(-1) % 2 != 0 || x.dim(-1) == 0)
    bad(op, "x must be float32 / float16 / bfloat16 [..., 2H], got " + x.describe());
}

float load_f32(const Tensor& x, int64_t i) {
  switch (x.dtype()) {
    case DType::kF32:
      return x.data<float>()[i];
    case DType::kF16:
      return num::f16_to_f32(x.data<uint16_t>()[i]);
    default:
      return num::bf16_to_f32(x.data<uint16_t>()[i]);
  }
}

}  // namespace

namespace ref {
SwigluStages npu_swiglu(const Tensor& x, const SwigluConfig& cfg) {
  check_swiglu_input("npu_swiglu", x);
  const int64_t h = x.dim(-1) / 2, rows = x.numel() / (2 * h);
  Shape os = x.shape();
  os.back() = h;
  SwigluStages st;
  st.out = Tensor(x.dtype(), os);
  st.exact = Tensor(DType::kF64, os);
  st.bound = Tensor(DType::kF64, os);
  const num::FloatFormat& f = num::float_format_of(x.dtype());
  std::vector<float> row(static_cast<size_t>(2 * h));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < 2 * h; ++j) row[static_cast<size_t>(j)] = load_f32(x, r * 2 * h + j);
    for (int64_t j = 0; j < h; ++j) {
      const auto [a, b] = swiglu_operands(row.data(), h, j, cfg);
      const SwigluEval ev = swiglu_eval(a, b, cfg);
      const int64_t o = r * h + j;
      const uint64_t bits = num::convert(num::kF32, num::f32_bits(ev.value), f);
      if (x.dtype() == DType::kF32)
        st.out.data<uint32_t>()[o] = static_cast<uint32_t>(bits);
      else
        st.out.data<uint16_t>()[o] = static_cast<uint16_t>(bits);
      st.exact.data<double>()[o] = ev.exact;
      double bd = ev.bound;
      if (x.dtype() != DType::kF32 && std::isfinite(bd)) {
        // Any fp32 result in [lo, hi] casts (RNE, monotone) into [cast(lo), cast(hi)].
        const uint64_t lo = num::convert(num::kF32, num::f32_bits(ev.lo), f);
        const uint64_t hi = num::convert(num::kF32, num::f32_bits(ev.hi), f);
        if (num::is_inf(f, lo) || num::is_inf(f, hi)) {
          bd = std::numeric_limits<double>::infinity();
        } else {
          const Exact e(ev.exact);
          const Exact dl = e - num::to_exact(f, lo), dh = num::to_exact(f, hi) - e;
          bd = std::max({bd, num::stored_bound(dl, e), num::stored_bound(dh, e)});
        }
      }
      st.bound.data<double>()[o] = bd;
    }
  }
  return st;
}
}  // namespace ref

// ---- SwiGLU + quant --------------------------------------------------------------------------

int8_t swiglu_code(float s, float q, SwigluQuantRounding r) {
  using num::Round;
  if (r == SwigluQuantRounding::kDoubleFp16) {
    const float y = num::f32_mul(s, num::f32_div(1.0f, q));
    const uint16_t h = num::f32_to_f16(y, Round::kRint);                           // first rounding
    return static_cast<int8_t>(num::float_to_int(num::kF16, h, Round::kRint, 8));  // second
  }
  const float y = num::f32_div(s, q);
  const int64_t i16 = num::float_to_int(num::kF32, num::f32_bits(y), Round::kRint, 16);
  return static_cast<int8_t>(std::clamp<int64_t>(i16, -128, 127));  // fp16 exact, int8 saturates
}

RowQuant swiglu_row_quant(const float* s, int64_t h, SwigluQuantRounding r) {
  float amax = 0;
  for (int64_t j = 0; j < h; ++j) amax = std::max(amax, std::fabs(s[j]));
  RowQuant q;
  q.scale = num::f32_div(amax, 127.0f);
  q.codes.resize(static_cast<size_t>(h));
  for (int64_t j = 0; j < h; ++j) q.codes[static_cast<size_t>(j)] = swiglu_code(s[j], q.scale, r);
  return q;
}

namespace {

// The shared tail of both fused ops: C (fp32 [M, 2H], exact, valid rows only) -> stages and
// (optionally) bounds.
struct RowsSpec {
  int64_t m, h;
  int64_t valid_rows;
};

void swiglu_quant_rows(const Tensor& c, const RowsSpec& rs, const SwigluConfig& cfg,
                       SwigluQuantRounding rnd, SwigluQuantStages* st, SwigluQuantBounds* bd) {
  const int64_t h = rs.h;
  if (st) {
    st->swiglu = Tensor(DType::kF32, {rs.m, h});
    st->y = Tensor(DType::kI8, {rs.m, h});
    st->scale = Tensor(DType::kF32, {rs.m});
    st->valid_rows = rs.valid_rows;
  }
  if (bd) {
    bd->swiglu_exact = Tensor(DType::kF64, {rs.m, h});
    bd->swiglu_bound = Tensor(DType::kF64, {rs.m, h});
    bd->y_offsets = {0};
    bd->scale_offsets = {0};
  }
  std::vector<SwigluEval> ev(static_cast<size_t>(h));
  std::vector<float> s(static_cast<size_t>(h));
  for (int64_t r = 0; r < rs.valid_rows; ++r) {
    const float* row = c.data<float>() + r * 2 * h;
    for (int64_t j = 0; j < h; ++j) {
      const auto [a, b] = swiglu_operands(row, h, j, cfg);
      ev[static_cast<size_t>(j)] = swiglu_eval(a, b, cfg);
      s[static_cast<size_t>(j)] = ev[static_cast<size_t>(j)].value;
    }
    const RowQuant q = swiglu_row_quant(s.data(), h, rnd);
    if (st) {
      std::copy(s.begin(), s.end(), st->swiglu.data<float>() + r * h);
      std::copy(q.codes.begin(), q.codes.end(), st->y.data<int8_t>() + r * h);
      st->scale.data<float>()[r] = q.scale;
    }
    if (!bd) continue;
    // Intervals: amax in [max mig, max mag]; q = fl(amax / 127) monotone.
    float amax_lo = 0, amax_hi = 0;
    bool unbounded = false;
    for (int64_t j = 0; j < h; ++j) {
      const SwigluEval& e = ev[static_cast<size_t>(j)];
      bd->swiglu_exact.data<double>()[r * h + j] = e.exact;
      bd->swiglu_bound.data<double>()[r * h + j] = e.bound;
      if (!std::isfinite(e.bound)) unbounded = true;
      const float mig =
          (e.lo <= 0 && e.hi >= 0) ? 0.0f : std::min(std::fabs(e.lo), std::fabs(e.hi));
      amax_lo = std::max(amax_lo, mig);
      amax_hi = std::max({amax_hi, std::fabs(e.lo), std::fabs(e.hi)});
    }
    if (unbounded) throw std::logic_error("swiglu_quant: an unbounded SwiGLU element (overflow)");
    const float q_lo = num::f32_div(amax_lo, 127.0f), q_hi = num::f32_div(amax_hi, 127.0f);
    if (q_hi != q_lo) {
      const uint32_t b0 = num::f32_bits(q_lo), b1 = num::f32_bits(q_hi);
      if (b1 - b0 > 4096) throw std::logic_error("swiglu_quant: scale interval too wide");
      bd->scale_index.push_back(r);
      for (uint32_t b = b0; b <= b1; ++b) bd->scale_values.push_back(num::f32_from_bits(b));
      bd->scale_offsets.push_back(static_cast<int64_t>(bd->scale_values.size()));
    }
    for (int64_t j = 0; j < h; ++j) {
      const SwigluEval& e = ev[static_cast<size_t>(j)];
      int cmin, cmax;
      if (q_lo == 0 && q_hi != 0) {
        cmin = -128;  // a scale of 0 and tiny ones are both reachable: any code
        cmax = 127;
      } else if (q_hi == 0) {
        cmin = cmax = swiglu_code(e.value, 0.0f, rnd);
      } else {
        // y is monotone in S and (for fixed sign of S) in the scale; codes monotone in y.
        cmin = 127;
        cmax = -128;
        for (float sv : {e.lo, e.hi})
          for (float qv : {q_lo, q_hi}) {
            const int c8 = swiglu_code(sv, qv, rnd);
            cmin = std::min(cmin, c8);
            cmax = std::max(cmax, c8);
          }
      }
      if (cmax > cmin) {
        bd->y_index.push_back(r * h + j);
        for (int c8 = cmin; c8 <= cmax; ++c8) bd->y_values.push_back(static_cast<int8_t>(c8));
        bd->y_offsets.push_back(static_cast<int64_t>(bd->y_values.size()));
      }
    }
  }
}

struct GmmSwigluChecked {
  int64_t m, k, n2, e;
};
GmmSwigluChecked check_gmm_swiglu(const Tensor& x, const Tensor& weight, const Tensor& group_list,
                                  const Tensor& weight_scale, const Tensor& x_scale) {
  const char* op = "npu_grouped_matmul_swiglu_quant";
  if (x.dtype() != DType::kI8 || x.rank() != 2)
    bad(op, "x must be int8 [M, K], got " + x.describe());
  if (weight.dtype() != DType::kI8 || weight.rank() != 3 || weight.dim(1) != x.dim(1) ||
      weight.dim(2) % 2)
    bad(op, "weight must be int8 [E, K, N] with x's K and even N, got " + weight.describe());
  GmmSwigluChecked c{x.dim(0), x.dim(1), weight.dim(2), weight.dim(0)};
  if (group_list.dtype() != DType::kI64 || group_list.shape() != Shape{c.e})
    bad(op, "group_list must be int64 cumsum [E], got " + group_list.describe());
  if (weight_scale.dtype() != DType::kF32 || weight_scale.shape() != Shape{c.e, c.n2})
    bad(op, "weight_scale must be float32 [E, N], got " + weight_scale.describe());
  if (x_scale.dtype() != DType::kF32 || x_scale.shape() != Shape{c.m})
    bad(op, "x_scale must be float32 [M], got " + x_scale.describe());
  return c;
}

// C = (fp32(acc) * x_scale[m]) * w_scale[e, j], the kernel's order; valid rows only.
Tensor gmm_swiglu_dequant(const Tensor& acc, const GroupRows& g, const Tensor& weight_scale,
                          const Tensor& x_scale) {
  const int64_t n2 = acc.dim(1);
  Tensor c(DType::kF32, acc.shape());
  for (size_t i = 0; i < g.expert.size(); ++i)
    for (int64_t r = g.begin[i]; r < g.end[i]; ++r)
      for (int64_t j = 0; j < n2; ++j) {
        const float a = f32_of_int(acc.data<int32_t>()[r * n2 + j]);
        c.data<float>()[r * n2 + j] =
            num::f32_mul(num::f32_mul(a, x_scale.data<float>()[r]),
                         weight_scale.data<float>()[g.expert[i] * n2 + j]);
      }
  return c;
}

}  // namespace

namespace ref {

namespace {
SwigluQuantStages gmm_swiglu_impl(const Tensor& x, const Tensor& weight, const Tensor& group_list,
                                  const Tensor& weight_scale, const Tensor& x_scale,
                                  SwigluQuantBounds* bd) {
  const GmmSwigluChecked c = check_gmm_swiglu(x, weight, group_list, weight_scale, x_scale);
  GroupedMatmulConfig gc;
  gc.group_list_type = GroupListType::kCumsum;
  gc.output_dtype = DType::kI32;
  const GroupedMatmulStages gm =
      npu_grouped_matmul(x, weight, nullptr, nullptr, nullptr, group_list, gc);
  const GroupRows g = group_rows(group_list, GroupListType::kCumsum, c.e, c.m);
  SwigluQuantStages st;
  st.dequant = gmm_swiglu_dequant(gm.acc, g, weight_scale, x_scale);
  SwigluConfig sc;  // swish on the first half
  swiglu_quant_rows(st.dequant, {c.m, c.n2 / 2, g.valid_rows}, sc, SwigluQuantRounding::kDoubleFp16,
                    &st, bd);
  return st;
}
}  // namespace

SwigluQuantStages npu_grouped_matmul_swiglu_quant(const Tensor& x, const Tensor& weight,
                                                  const Tensor& group_list,
                                                  const Tensor& weight_scale,
                                                  const Tensor& x_scale) {
  return gmm_swiglu_impl(x, weight, group_list, weight_scale, x_scale, nullptr);
}

SwigluQuantBounds npu_grouped_matmul_swiglu_quant_bounds(const Tensor& x, const Tensor& weight,
                                                         const Tensor& group_list,
                                                         const Tensor& weight_scale,
                                                         const Tensor& x_scale) {
  SwigluQuantBounds b;
  gmm_swiglu_impl(x, weight, group_list, weight_scale, x_scale, &b);
  return b;
}

}  // namespace ref

// ---- dequant_swiglu_quant ----------------------------------------------------------------------

namespace {
struct DsqChecked {
  int64_t m, n2;
  GroupRows g;
};
DsqChecked check_dequant_swiglu_quant(const Tensor& x, const Tensor& weight_scale,
                                      const Tensor& activation_scale, const Tensor* group_index,
                                      const SwigluConfig& cfg) {
  const char* op = "npu_dequant_swiglu_quant";
  if (x.dtype() != DType::kI32 || x.rank() != 2 || x.dim(1) % 2 || x.dim(1) == 0)
    bad(op, "x must be int32 [M, 2H], got " + x.describe());
  const int64_t m = x.dim(0), n2 = x.dim(1);
  if (cfg.swiglu_mode != 0 && cfg.swiglu_mode != 1)
    bad(op, "swiglu_mode must be 0 or 1, got " + std::to_string(cfg.swiglu_mode));
  const int64_t e = group_index ? group_index->numel() : 1;
  if (weight_scale.dtype() != DType::kF32 || !(weight_scale.shape() == Shape{e, n2} ||
                                               (!group_index && weight_scale.shape() == Shape{n2})))
    bad(op, "weight_scale must be float32 [E, 2H] (or [2H] without group_index), got " +
                weight_scale.describe());
  if (activation_scale.dtype() != DType::kF32 || activation_scale.shape() != Shape{m})
    bad(op, "activation_scale must be float32 [M], got " + activation_scale.describe());
  DsqChecked c{m, n2, {}};
  if (group_index) {
    if (group_index->dtype() != DType::kI64 || group_index->rank() != 1)
      bad(op, "group_index must be int64 counts [E], got " + group_index->describe());
    c.g = group_rows(*group_index, GroupListType::kCount, e, m);
  } else {
    c.g.expert = {0};
    c.g.begin = {0};
    c.g.end = {m};
    c.g.valid_rows = m;
  }
  return c;
}

// C = (fp32(x) * weight_scale[e, j]) * activation_scale[m]: the documented order.
Tensor dsq_dequant(const Tensor& x, const GroupRows& g, const Tensor& ws, const Tensor& as) {
  const int64_t n2 = x.dim(1);
  Tensor c(DType::kF32, x.shape());
  for (size_t i = 0; i < g.expert.size(); ++i)
    for (int64_t r = g.begin[i]; r < g.end[i]; ++r)
      for (int64_t j = 0; j < n2; ++j)
        c.data<float>()[r * n2 + j] = num::f32_mul(
            num::f32_mul(f32_of_int(x.data<int32_t>()[r * n2 + j]),
                         ws.data<float>()[(ws.rank() == 2 ? g.expert[i] * n2 : 0) + j]),
            as.data<float>()[r]);
  return c;
}
}  // namespace

namespace ref {
SwigluQuantStages npu_dequant_swiglu_quant(const Tensor& x, const Tensor& weight_scale,
                                           const Tensor& activation_scale,
                                           const Tensor* group_index, const SwigluConfig& cfg) {
  const DsqChecked c =
      check_dequant_swiglu_quant(x, weight_scale, activation_scale, group_index, cfg);
  SwigluQuantStages st;
  st.dequant = dsq_dequant(x, c.g, weight_scale, activation_scale);
  swiglu_quant_rows(st.dequant, {c.m, c.n2 / 2, c.g.valid_rows}, cfg,
                    SwigluQuantRounding::kSingleInt16, &st, nullptr);
  return st;
}

SwigluQuantBounds npu_dequant_swiglu_quant_bounds(const Tensor& x, const Tensor& weight_scale,
                                                  const Tensor& activation_scale,
                                                  const Tensor* group_index,
                                                  const SwigluConfig& cfg) {
  const DsqChecked c =
      check_dequant_swiglu_quant(x, weight_scale, activation_scale, group_index, cfg);
  SwigluQuantBounds b;
  const Tensor dq = dsq_dequant(x, c.g, weight_scale, activation_scale);
  swiglu_quant_rows(dq, {c.m, c.n2 / 2, c.g.valid_rows}, cfg, SwigluQuantRounding::kSingleInt16,
                    nullptr, &b);
  return b;
}

// ---- W4A8 MSD split ----------------------------------------------------------------------------

W4a8MsdTerms w4a8_msd_split_matmul(const Tensor& x, const Tensor& w) {
  const char* op = "w4a8_msd_split_matmul";
  if (x.dtype() != DType::kI8 || x.rank() != 2) bad(op, "x must be int8 [M, K]");
  if (w.dtype() != DType::kI8 || w.rank() != 2 || w.dim(0) != x.dim(1))
    bad(op, "w must be int8 [K, N] holding int4 values");
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(1);
  for (int64_t i = 0; i < w.numel(); ++i)
    if (w.data<int8_t>()[i] < -8 || w.data<int8_t>()[i] > 7)
      bad(op, "w[" + std::to_string(i) + "] is not an int4 value");
  W4a8MsdTerms t{Tensor(DType::kI32, {m, n}), Tensor(DType::kI32, {m, n}),
                 Tensor(DType::kI32, {m, n})};
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      int64_t hi = 0, lo = 0, cs = 0;
      for (int64_t q = 0; q < k; ++q) {
        const int v = x.data<int8_t>()[r * k + q];
        const int64_t wv = w.data<int8_t>()[q * n + j];
        const int high = v >> 4;        // floor(v / 16), arithmetic shift: [-8, 7]
        const int low = (v & 0xF) - 8;  // unsigned nibble - 8: [-8, 7]
        hi += high * wv;
        lo += low * wv;
        cs += wv;
      }
      t.hi.data<int32_t>()[r * n + j] = static_cast<int32_t>(hi);
      t.lo.data<int32_t>()[r * n + j] = static_cast<int32_t>(lo);
      t.bias8.data<int32_t>()[r * n + j] = static_cast<int32_t>(8 * cs);
    }
  return t;
}
}  // namespace ref

// ---- w4a8_msd_grouped_matmul -------------------------------------------------------------------
// Source: notes/vllm_ascend_quant.md §A "Why the correction is 8·Σ" (the MSD kernel
// grouped_matmul_swiglu_quant_v2 *_a8w4_msd_{pre,post}.h, as the notes describe it; confidence:
// the formula is from the notes, the float orders are variants, docs/divergences.md).

namespace {

void check_msd(const Tensor& x, const Tensor& weight, const Tensor& scale, const Tensor& scale_bias,
               const Tensor& x_scale, const Tensor& group_list) {
  const char* op = "w4a8_msd_grouped_matmul";
  if (x.dtype() != DType::kI8 || x.rank() != 2)
    bad(op, "x must be int8 [M, K], got " + x.describe());
  if (weight.dtype() != DType::kI8 || weight.rank() != 3 || weight.dim(1) != x.dim(1) ||
      weight.dim(2) % 2 || weight.dim(2) == 0)
    bad(op, "weight must be int8 [E, K, 2H] with x's K, got " + weight.describe());
  for (int64_t i = 0; i < weight.numel(); ++i)
    if (weight.data<int8_t>()[i] < -8 || weight.data<int8_t>()[i] > 7)
      bad(op, "weight[" + std::to_string(i) + "] = " + std::to_string(weight.data<int8_t>()[i]) +
                  " is not an int4 value in [-8, 7]");
  const int64_t e = weight.dim(0), n2 = weight.dim(2);
  if (scale.dtype() != DType::kF32 || scale.shape() != Shape{e, n2})
    bad(op, "scale must be float32 [E, 2H], got " + scale.describe());
  for (int64_t i = 0; i < scale.numel(); ++i)
    if (num::f32_bits(scale.data<float>()[i]) & 0x1FFFu)
      bad(op, "scale[" + std::to_string(i) +
                  "] is not an FP19 value (low 13 mantissa bits must be zero: the quant vector "
                  "of npu_trans_quant_param)");
  if (scale_bias.dtype() != DType::kF32 || scale_bias.shape() != Shape{e, n2})
    bad(op, "scale_bias must be float32 [E, 2H], got " + scale_bias.describe());
  if (x_scale.dtype() != DType::kF32 || x_scale.shape() != Shape{x.dim(0)})
    bad(op, "x_scale must be float32 [M], got " + x_scale.describe());
  if (group_list.dtype() != DType::kI64 || group_list.shape() != Shape{e})
    bad(op, "group_list must be int64 cumsum [E], got " + group_list.describe());
}

// The two nibbles of one int8 activation: x = 16 hi + lo' + 8.
int8_t msd_hi(int8_t v) { return static_cast<int8_t>(v >> 4); }         // floor(v / 16) in [-8, 7]
int8_t msd_lo(int8_t v) { return static_cast<int8_t>((v & 0xF) - 8); }  // [-8, 7]

// The fixpipe: A * s -> fp16 (variant fixpipe_precision).
uint16_t fixpipe_f16(int32_t acc, float s, FixpipePrecision p) {
  if (p == FixpipePrecision::kExact)
    return static_cast<uint16_t>(num::encode(
        num::kF16, Exact(acc) * num::to_exact(num::kF32, num::f32_bits(s)), num::Round::kRint));
  return num::f32_to_f16(num::f32_mul(f32_of_int(acc), s), num::Round::kRint);
}

// y = 16 a_hi + a_lo + scale_bias in fp32 (16 a_hi is exact), in the variant's order.
float msd_sum(uint16_t a_hi, uint16_t a_lo, float sb, bool bias_first) {
  const float hi16 = num::f32_mul(16.0f, num::f16_to_f32(a_hi));
  const float lo = num::f16_to_f32(a_lo);
  if (bias_first) return num::f32_add(hi16, num::f32_add(lo, sb));
  return num::f32_add(num::f32_add(hi16, lo), sb);
}

// The optional clamp (exact): gate (first half) <= limit, up (second half) in [-limit, limit].
Tensor msd_clamped(const Tensor& c, int64_t valid_rows, float limit) {
  Tensor t = c;
  if (!(limit > 0) || !std::isfinite(limit)) return t;
  const int64_t n2 = c.dim(1), h = n2 / 2;
  for (int64_t r = 0; r < valid_rows; ++r)
    for (int64_t j = 0; j < n2; ++j) {
      float& v = t.data<float>()[r * n2 + j];
      if (v > limit) v = limit;
      if (j >= h && v < -limit) v = -limit;
    }
  return t;
}

}  // namespace

namespace ref {
uint16_t w4a8_msd_fixpipe_f16(int32_t acc, float s, FixpipePrecision p) {
  return fixpipe_f16(acc, s, p);
}
float w4a8_msd_sum(uint16_t a_hi, uint16_t a_lo, float sb, bool bias_first) {
  return msd_sum(a_hi, a_lo, sb, bias_first);
}
}  // namespace ref

namespace ref {
W4a8MsdStages w4a8_msd_grouped_matmul(const Tensor& x, const Tensor& weight, const Tensor& scale,
                                      const Tensor& scale_bias, const Tensor& x_scale,
                                      const Tensor& group_list, const W4a8MsdConfig& cfg,
                                      SwigluQuantBounds* bounds) {
  check_msd(x, weight, scale, scale_bias, x_scale, group_list);
  const int64_t m = x.dim(0), k = x.dim(1), e = weight.dim(0), n2 = weight.dim(2);
  W4a8MsdStages st;
  st.x_hi = Tensor(DType::kI8, {m, k});
  st.x_lo = Tensor(DType::kI8, {m, k});
  for (int64_t i = 0; i < x.numel(); ++i) {
    st.x_hi.data<int8_t>()[i] = msd_hi(x.data<int8_t>()[i]);
    st.x_lo.data<int8_t>()[i] = msd_lo(x.data<int8_t>()[i]);
  }
  // The two int4 matmuls: the grouped int8 matmul on int4-valued operands (exact).
  GroupedMatmulConfig gc;
  gc.group_list_type = GroupListType::kCumsum;
  gc.output_dtype = DType::kI32;
  st.acc_hi = npu_grouped_matmul(st.x_hi, weight, nullptr, nullptr, nullptr, group_list, gc).acc;
  st.acc_lo = npu_grouped_matmul(st.x_lo, weight, nullptr, nullptr, nullptr, group_list, gc).acc;
  const GroupRows g = group_rows(group_list, GroupListType::kCumsum, e, m);
  st.a_hi = Tensor(DType::kF16, {m, n2});
  st.a_lo = Tensor(DType::kF16, {m, n2});
  st.msd_sum = Tensor(DType::kF32, {m, n2});
  st.q.dequant = Tensor(DType::kF32, {m, n2});
  for (size_t i = 0; i < g.expert.size(); ++i)
    for (int64_t r = g.begin[i]; r < g.end[i]; ++r)
      for (int64_t j = 0; j < n2; ++j) {
        const int64_t o = r * n2 + j, w = g.expert[i] * n2 + j;
        const float s = scale.data<float>()[w];
        const uint16_t ah = fixpipe_f16(st.acc_hi.data<int32_t>()[o], s, cfg.fixpipe);
        const uint16_t al = fixpipe_f16(st.acc_lo.data<int32_t>()[o], s, cfg.fixpipe);
        st.a_hi.data<uint16_t>()[o] = ah;
        st.a_lo.data<uint16_t>()[o] = al;
        const float y = msd_sum(ah, al, scale_bias.data<float>()[w], cfg.bias_first);
        st.msd_sum.data<float>()[o] = y;
        st.q.dequant.data<float>()[o] = num::f32_mul(y, x_scale.data<float>()[r]);
      }
  const Tensor c = msd_clamped(st.q.dequant, g.valid_rows, cfg.clamp_limit);
  SwigluConfig sc;  // swish on the first half
  Tensor dequant = std::move(st.q.dequant);
  swiglu_quant_rows(c, {m, n2 / 2, g.valid_rows}, sc, cfg.rounding, &st.q, bounds);
  st.q.dequant = std::move(dequant);
  return st;
}
}  // namespace ref

}  // namespace qconf
