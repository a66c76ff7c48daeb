// Reference: npu_weight_quant_batchmatmul.
//
// Sources:
//   notes/torch_npu_semantics.md §3 [doc: op-plugin torch_npu-npu_weight_quant_batchmatmul.md,
//     hicann/ops-nn aclnnWeightQuantBatchMatmulV2.md: ANTIQUANT(w) = (w + antiquantOffset) *
//     antiquantScale, y = x @ ANTIQUANT(w) + bias, int8 output y = (x @ W + bias) * quantScale
//     + quantOffset; code: weight_quant_batch_matmul_v2_common.h: AntiQuantCalType<half> = half
//     (fp16 x: the antiquant Add and Mul in fp16), otherwise float (bf16 x: int8/int4 -> half ->
//     fp32, Add, Mul in fp32, Cast CAST_RINT to bf16); the matmul (cube unit) accumulates in
//     fp32 with the bias loaded into the accumulator]. Confidence: high for the antiquant
//     (kernel code); the accumulation order is unspecified, hence the bounds below.
//   notes/vllm_ascend_quant.md §A W8A16 (the offset is ADDED; passed unchanged).
//   int4 layout: notes §0 (8 codes per int32 along N, element 8j+t in bits [4t, 4t+3]).
//   int8 output: op-plugin WeightQuantBatchMatmulKernelNpuOpApi.cpp converts an fp32
//     quant_scale with aclnnTransQuantParamV2 (notes §2: FP19 truncation, int9 offset); the
//     requant formula is a variant (WqbmmRequant), see weight_quant_bmm.h.
//
// The accumulation is computed EXACTLY (every product of two fp16/bf16 values and every fp32
// bias is a dyadic rational; their sum is kept as an integer scaled by 2^kScale), then:
//   acc (nominal) = the exact sum rounded once to fp32;
//   the bound of any fp32 summation order, and of the final rounding, is derived in
//   docs/bounds.md ("npu_weight_quant_batchmatmul") and implemented in bounds_of() below.
#include "qconf/ops/weight_quant_bmm.h"

#include <climits>
#include <stdexcept>
#include <string>

#include "qconf/numeric/bounds.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/int4pack.h"

namespace qconf {

namespace {

constexpr const char* kOp = "npu_weight_quant_batchmatmul";

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(std::string(kOp) + ": " + what);
}

}  // namespace

std::string_view wqbmm_requant_name(WqbmmRequant r) {
  return r == WqbmmRequant::kFixpipe ? "fixpipe" : "fp32";
}
WqbmmRequant parse_wqbmm_requant(std::string_view s) {
  if (s == "fixpipe") return WqbmmRequant::kFixpipe;
  if (s == "fp32") return WqbmmRequant::kFp32;
  bad("requant must be fixpipe or fp32, got \"" + std::string(s) + "\"");
}
std::string_view wqbmm_antiquant_name(WqbmmAntiquant a) {
  return a == WqbmmAntiquant::kXDtype ? "x_dtype" : "fp32";
}
WqbmmAntiquant parse_wqbmm_antiquant(std::string_view s) {
  if (s == "x_dtype") return WqbmmAntiquant::kXDtype;
  if (s == "fp32") return WqbmmAntiquant::kFp32;
  bad("antiquant must be x_dtype or fp32, got \"" + std::string(s) + "\"");
}

WqbmmShape check_wqbmm_inputs(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  if (!a.x || !a.weight || !a.antiquant_scale) bad("x, weight and antiquant_scale are required");
  const Tensor& x = *a.x;
  const Tensor& w = *a.weight;
  WqbmmShape s;
  if ((x.dtype() != DType::kF16 && x.dtype() != DType::kBF16) || x.rank() != 2)
    bad("x must be float16 or bfloat16 [M, K], got " + x.describe());
  s.xdt = x.dtype();
  s.m = x.dim(0);
  s.k = x.dim(1);
  if (s.m < 1 || s.k < 1) bad("x must not be empty, got " + x.describe());
  if (w.rank() != 2 || (w.dtype() != DType::kI8 && w.dtype() != DType::kI32))
    bad("weight must be int8 [K, N] or int32 [K, N/8] (8 int4 per int32), got " + w.describe());
  if (w.dim(0) != s.k)
    bad("weight must have K = " + std::to_string(s.k) + " rows (x's last dim), got " +
        w.describe());
  s.int4 = w.dtype() == DType::kI32;
  s.n = s.int4 ? w.dim(1) * kInt4PerInt32 : w.dim(1);
  if (s.n < 1) bad("weight must have N >= 1 columns, got " + w.describe());
  const Tensor& sc = *a.antiquant_scale;
  if (sc.dtype() != s.xdt)
    bad("antiquant_scale must have x's dtype " + std::string(dtype_name(s.xdt)) + ", got " +
        sc.describe());
  const std::string nstr = std::to_string(s.n);
  if (cfg.group_size != 0) {
    const int64_t g = cfg.group_size;
    if (g < 32 || g % 32 != 0 || g > s.k - 1)
      bad("antiquant_group_size must be 0 or a multiple of 32 in [32, K - 1 = " +
          std::to_string(s.k - 1) + "], got " + std::to_string(g));
    s.mode = WqbmmScaleMode::kPerGroup;
    s.group_size = g;
    s.groups = (s.k + g - 1) / g;
    if (sc.rank() != 2 || sc.dim(0) != s.groups || sc.dim(1) != s.n)
      bad("per-group antiquant_scale must be (ceil(K/G), N) = (" + std::to_string(s.groups) + ", " +
          nstr + "), got " + sc.describe());
  } else if (sc.numel() == 1 && (sc.shape() == Shape{1} || sc.shape() == Shape{1, 1})) {
    s.mode = s.n == 1 ? WqbmmScaleMode::kPerChannel : WqbmmScaleMode::kPerTensor;
  } else if (sc.shape() == Shape{s.n} || sc.shape() == Shape{1, s.n}) {
    s.mode = WqbmmScaleMode::kPerChannel;
  } else {
    bad("antiquant_scale must be (1,) per tensor, (N,) or (1, N) per channel with N = " + nstr +
        ", or (ceil(K/G), N) with antiquant_group_size G, got " + sc.describe());
  }
  if (a.antiquant_offset &&
      (a.antiquant_offset->dtype() != sc.dtype() || a.antiquant_offset->shape() != sc.shape()))
    bad("antiquant_offset must have the dtype and shape of antiquant_scale (" + sc.describe() +
        "), got " + a.antiquant_offset->describe());
  if (a.bias) {
    const DType want = s.xdt == DType::kF16 ? DType::kF16 : DType::kF32;
    if (a.bias->dtype() != want)
      bad("bias must be " + std::string(dtype_name(want)) + " for " +
          std::string(dtype_name(s.xdt)) + " x, got " + a.bias->describe());
    if (a.bias->shape() != Shape{s.n} && a.bias->shape() != Shape{1, s.n})
      bad("bias must be (N,) or (1, N) with N = " + nstr + ", got " + a.bias->describe());
  }
  if (a.quant_offset && !a.quant_scale) bad("quant_offset needs quant_scale");
  if (a.quant_scale) {
    const Tensor& q = *a.quant_scale;
    if (q.dtype() != DType::kF32 ||
        !(q.shape() == Shape{1} || q.shape() == Shape{s.n} || q.shape() == Shape{1, s.n}))
      bad("quant_scale must be float32 (1,), (N,) or (1, N) with N = " + nstr + ", got " +
          q.describe());
    if (a.quant_offset &&
        (a.quant_offset->dtype() != DType::kF32 || a.quant_offset->shape() != q.shape()))
      bad("quant_offset must be float32 of the shape of quant_scale (" + q.describe() + "), got " +
          a.quant_offset->describe());
    s.quant_out = true;
    s.per_channel_quant = q.numel() != 1;
  }
  return s;
}

namespace ref {
namespace {

using num::BigInt;
using num::Exact;
using num::kF32;
using num::Round;
// Bound helpers (qconf/numeric/bounds.h, docs/bounds.md).
using num::gamma;
using num::half_ulp;
using num::overflow_threshold;
using num::pow2;
using num::stored_bound;
using num::to_double_nearest;

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}

// ---- the exact dot product ---------------------------------------------------------------------

// A finite float as m * 2^e (m signed, |m| < 2^24 for the formats used here).
struct Dyadic {
  int64_t m = 0;
  int e = 0;
};
Dyadic dyadic(const num::FloatFormat& f, uint64_t bits) {
  const bool neg = (bits & num::sign_mask(f)) != 0;
  const uint64_t ef = (bits >> f.mant_bits) & num::exp_field_max(f);
  uint64_t mant = bits & num::mant_mask(f);
  int e = num::min_exponent(f) - f.mant_bits;  // subnormal quantum
  if (ef != 0) {
    mant |= uint64_t{1} << f.mant_bits;
    e = static_cast<int>(ef) - num::exponent_bias(f) - f.mant_bits;
  }
  const int64_t m = static_cast<int64_t>(mant);
  return {neg ? -m : m, e};
}

int msb(uint64_t v) { return 63 - __builtin_clzll(v); }

// Every term is a multiple of 2^-kScale: products of two bf16 values are multiples of 2^-266,
// fp16 products of 2^-48, an fp32 bias of 2^-149.
constexpr int kScale = 320;

// The exact sum of the terms x_k * W_k (and the bias), kept as integers scaled by 2^kScale,
// with what the bound needs: sum |t|, sum |t| over products that underflow fp32, the largest
// power of two dividing every term, the number of terms; and IEEE special results.
struct ExactDot {
  BigInt sum, abs_sum, underflow_abs;
  int pow2_all = INT_MAX;  // every nonzero term is a multiple of 2^pow2_all
  int64_t terms = 0;
  bool nan = false, pos_inf = false, neg_inf = false;

  void add_scaled(int64_t m, int e, bool is_product) {
    ++terms;
    if (m == 0) return;
    const uint64_t am = static_cast<uint64_t>(m < 0 ? -m : m);
    const BigInt scaled = BigInt(am) << (e + kScale);
    sum += m < 0 ? BigInt(-scaled) : scaled;
    abs_sum += scaled;
    // |t| < 2^-126: an fp32 product would be subnormal (or flushed to zero).
    if (is_product && msb(am) + e < -126) underflow_abs += scaled;
    pow2_all = std::min(pow2_all, __builtin_ctzll(am) + e);
  }
  void add_special(bool neg) { (neg ? neg_inf : pos_inf) = true; }

  // t = x * w, both of format f (fp16 or bf16): the product is exact (computed here exactly).
  void add_product(const num::FloatFormat& f, uint64_t xb, uint64_t wb) {
    const bool xs = num::is_inf(f, xb), ws = num::is_inf(f, wb);
    if (num::is_nan(f, xb) || num::is_nan(f, wb)) {
      nan = true;
      ++terms;
      return;
    }
    const bool neg = ((xb ^ wb) & num::sign_mask(f)) != 0;
    if (xs || ws) {
      const uint64_t other = xs ? wb : xb;
      if (!num::is_inf(f, other) && (other & ~num::sign_mask(f)) == 0)
        nan = true;  // Inf * 0
      else
        add_special(neg);
      ++terms;
      return;
    }
    const Dyadic a = dyadic(f, xb), b = dyadic(f, wb);
    add_scaled(a.m * b.m, a.e + b.e, true);
  }
  void add_value(const num::FloatFormat& f, uint64_t bits) {
    if (num::is_nan(f, bits)) {
      nan = true;
      ++terms;
    } else if (num::is_inf(f, bits)) {
      add_special((bits & num::sign_mask(f)) != 0);
      ++terms;
    } else {
      const Dyadic d = dyadic(f, bits);
      add_scaled(d.m, d.e, false);
    }
  }
  bool special() const { return nan || pos_inf || neg_inf; }
  // The IEEE result when an operand is NaN or Inf (every order gives it): NaN, or the infinity.
  uint32_t special_bits() const {
    if (nan || (pos_inf && neg_inf)) return static_cast<uint32_t>(num::quiet_nan_bits(kF32));
    return static_cast<uint32_t>(num::inf_bits(kF32, neg_inf));
  }
  Exact exact() const { return Exact(sum, BigInt(1) << kScale); }
  Exact abs() const { return Exact(abs_sum, BigInt(1) << kScale); }
  Exact underflow() const { return Exact(underflow_abs, BigInt(1) << kScale); }
};

// Step 4: the accumulator of one output element, exactly: sum_k x[m,k] * W[k,n] (+ bias[n]).
ExactDot exact_dot(const Tensor& x, const Tensor& wq, const Tensor* bias, int64_t m, int64_t n,
                   const WqbmmShape& s) {
  ExactDot d;
  const num::FloatFormat& f = fmt(s.xdt);
  const uint16_t* xr = x.data<uint16_t>() + m * s.k;
  const uint16_t* w = wq.data<uint16_t>();
  for (int64_t k = 0; k < s.k; ++k) d.add_product(f, xr[k], w[k * s.n + n]);
  if (bias) d.add_value(fmt(bias->dtype()), bias->bits_at(n));
  return d;
}

// Step 4 result (nominal): the exact accumulator rounded once to fp32 (the result of an
// accumulation with no intermediate rounding; every fp32 order is within the bound of it).
uint32_t nominal_acc(const ExactDot& d) {
  if (d.special()) return d.special_bits();
  return static_cast<uint32_t>(num::encode(kF32, d.exact(), Round::kRint));
}

// ---- bounds (docs/bounds.md) -------------------------------------------------------------------

struct AccBound {
  bool infinite = false;  // an overflow is reachable: anything goes
  bool provably_exact = false;
  Exact e;  // |computed fp32 accumulator - exact| <= e
};

// The bound of the fp32 accumulation (docs/bounds.md, "the accumulator"):
//   provably exact when every nonzero term is >= 2^-126, every term is a multiple of 2^q with
//   q >= -126, and sum |t| < 2^(24 + q) (every partial sum of every order is then an fp32
//   number, never subnormal): e = 0;
//   otherwise, with n = terms - 1 additions, A = sum |t|, E = sum of |t| over products below
//   2^-126 (a subnormal or flushed product is off by at most |t|):
//     e = E + gamma_n (A + E) + n 2^-126 (1 + gamma_n)
//   (the last term: an addition whose result is below 2^-126 may be flushed to zero);
//   infinite when (A + E)(1 + gamma_n) + n 2^-126 (1 + gamma_n) can reach the fp32 overflow
//   threshold.
AccBound acc_bound(const ExactDot& d) {
  AccBound b;
  const Exact a = d.abs(), under = d.underflow();
  if (d.underflow_abs == 0 &&
      (d.pow2_all == INT_MAX ||
       (d.pow2_all >= -126 && a < pow2(24 + d.pow2_all) && a < pow2(127)))) {
    b.provably_exact = true;
    b.e = 0;
    return b;
  }
  const int64_t n = d.terms - 1;
  const Exact g = gamma(n);
  const Exact ftz = Exact(n) * pow2(-126) * (Exact(1) + g);
  if ((a + under) * (Exact(1) + g) + ftz >= overflow_threshold(kF32)) {
    b.infinite = true;
    return b;
  }
  b.e = under + g * (a + under) + ftz;
  return b;
}

// ---- the int8 epilogue on intervals ------------------------------------------------------------

// fp32 bits of v rounded down / up (outward), possibly +-Inf or the largest finite value.
uint32_t round_down(const Exact& v) {
  return static_cast<uint32_t>(num::encode(kF32, v, Round::kFloor));
}
uint32_t round_up(const Exact& v) {
  return static_cast<uint32_t>(num::encode(kF32, v, Round::kCeil));
}

// [lo, hi] (fp32 bits, lo <= hi, possibly infinite) times the finite fp32 value s, rounded
// outward: contains fl(a * s) for every a in [lo, hi], at any precision of the multiply.
std::pair<uint32_t, uint32_t> mul_outward(uint32_t lo, uint32_t hi, uint32_t s) {
  const Exact sv = num::to_exact(kF32, s);
  if (sv == 0) return {0, 0};
  auto times = [&](uint32_t v, bool up) -> uint32_t {
    if (num::is_inf(kF32, v)) {
      const bool neg = ((v >> 31) != 0) != (sv < 0);
      return static_cast<uint32_t>(num::inf_bits(kF32, neg));
    }
    const Exact p = num::to_exact(kF32, v) * sv;
    return up ? round_up(p) : round_down(p);
  };
  if (sv > 0) return {times(lo, false), times(hi, true)};
  return {times(hi, false), times(lo, true)};
}

// [lo, hi] + the finite fp32 value o, rounded outward.
std::pair<uint32_t, uint32_t> add_outward(uint32_t lo, uint32_t hi, uint32_t o) {
  const Exact ov = num::to_exact(kF32, o);
  auto plus = [&](uint32_t v, bool up) -> uint32_t {
    if (num::is_inf(kF32, v)) return v;
    const Exact s = num::to_exact(kF32, v) + ov;
    return up ? round_up(s) : round_down(s);
  };
  return {plus(lo, false), plus(hi, true)};
}

int64_t clamp_to(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The fixpipe code of the value after the multiply (monotone non-decreasing in v).
int64_t fixpipe_code(uint32_t v, int64_t off9) {
  return clamp_to(num::float_to_int(kF32, v, Round::kRint, 9) + off9, -128, 127);
}

// The reachable codes [first, last] of the requant epilogue for accumulators in [lo, hi].
std::pair<int64_t, int64_t> reachable_codes(uint32_t lo, uint32_t hi, uint32_t qs,
                                            const uint32_t* qo, WqbmmRequant mode) {
  if (mode == WqbmmRequant::kFixpipe) {
    const uint32_t s19 = num::fp32_bits_truncate_to_fp19(qs);
    const int64_t off9 = qo ? num::float_to_int(kF32, *qo, Round::kRint, 9) : 0;
    const auto [a, b] = mul_outward(lo, hi, s19);
    return {fixpipe_code(a, off9), fixpipe_code(b, off9)};
  }
  auto [a, b] = mul_outward(lo, hi, qs);
  if (qo) std::tie(a, b) = add_outward(a, b, *qo);
  return {num::float_to_int(kF32, a, Round::kRint, 8), num::float_to_int(kF32, b, Round::kRint, 8)};
}

bool finite_f32(uint32_t b) { return !num::is_nan(kF32, b) && !num::is_inf(kF32, b); }

// ---- inputs ------------------------------------------------------------------------------------

struct Prepared {
  WqbmmShape s;
  Tensor values;  // int8 [K, N]
  Tensor wq;      // x dtype [K, N]
};

Prepared prepare(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  Prepared p;
  p.s = check_wqbmm_inputs(a, cfg);
  p.values = wqbmm_weight_values(*a.weight);
  p.wq = Tensor(p.s.xdt, {p.s.k, p.s.n});
  const uint16_t* sc = a.antiquant_scale->data<uint16_t>();
  const uint16_t* off = a.antiquant_offset ? a.antiquant_offset->data<uint16_t>() : nullptr;
  for (int64_t k = 0; k < p.s.k; ++k)
    for (int64_t n = 0; n < p.s.n; ++n) {
      const int64_t i = p.s.param_index(k, n);
      p.wq.data<uint16_t>()[k * p.s.n + n] =
          wqbmm_antiquant(p.s.xdt, p.values.data<int8_t>()[k * p.s.n + n], sc[i],
                          off ? off + i : nullptr, cfg.antiquant);
    }
  return p;
}

uint32_t quant_param(const Tensor* t, int64_t n) {
  return t->data<uint32_t>()[t->numel() == 1 ? 0 : n];
}

}  // namespace

// Step 1: int8 weights as they are; int4: nibble t of word j is column 8j + t, two's complement.
Tensor wqbmm_weight_values(const Tensor& weight) {
  if (weight.dtype() == DType::kI8) return weight;
  Tensor out(DType::kI8, {weight.dim(0), weight.dim(1) * kInt4PerInt32});
  for (int64_t j = 0; j < weight.numel(); ++j) {
    const uint32_t word = static_cast<uint32_t>(weight.data<int32_t>()[j]);
    for (int t = 0; t < kInt4PerInt32; ++t) {
      const int nib = static_cast<int>((word >> (4 * t)) & 0xF);
      out.data<int8_t>()[j * kInt4PerInt32 + t] = static_cast<int8_t>(nib >= 8 ? nib - 16 : nib);
    }
  }
  return out;
}

// Step 2: W = (w + offset) * scale.
//   fp16 x, x_dtype (the A2 kernel): w -> fp16 (exact), Add in fp16, Mul in fp16 (two fp16
//   roundings, AntiQuantCalType<half>).
//   bf16 x, or fp16 x with antiquant "fp32": w -> fp16 -> fp32 (exact), Add in fp32, Mul in fp32,
//   Cast to the x dtype with CAST_RINT.
// Without an offset the Add is skipped.
uint16_t wqbmm_antiquant(DType xdt, int8_t w, uint16_t scale, const uint16_t* offset,
                         WqbmmAntiquant mode) {
  const uint64_t w16 = num::encode(num::kF16, Exact(w), Round::kRint);  // exact
  if (xdt == DType::kF16 && mode == WqbmmAntiquant::kXDtype) {
    uint64_t v = w16;
    if (offset) v = num::fp_add(num::kF16, v, *offset);
    return static_cast<uint16_t>(num::fp_mul(num::kF16, v, scale));
  }
  const num::FloatFormat& xf = fmt(xdt);
  uint64_t v = num::convert(num::kF16, w16, kF32);
  if (offset) v = num::fp_add(kF32, v, num::convert(xf, *offset, kF32));
  v = num::fp_mul(kF32, v, num::convert(xf, scale, kF32));
  return static_cast<uint16_t>(num::convert(kF32, v, xf, Round::kRint));
}

// Step 5 (int8 output) on one fp32 accumulator. fixpipe: scale truncated to FP19, offset to a
// saturated 9-bit integer, v = fp32(acc * scale19) (the fixpipe multiply's internal precision is
// not documented [inf]: the reachable sets cover any precision >= fp32), y = clip(s9(RINT(v)) +
// off9, -128, 127). fp32: y = sat8(RINT(fp32(fp32(acc * qs) + qo))).
int8_t wqbmm_requant(uint32_t acc, uint32_t qs, const uint32_t* qo, WqbmmRequant mode) {
  if (mode == WqbmmRequant::kFixpipe) {
    const uint32_t s19 = num::fp32_bits_truncate_to_fp19(qs);
    const int64_t off9 = qo ? num::float_to_int(kF32, *qo, Round::kRint, 9) : 0;
    return static_cast<int8_t>(
        fixpipe_code(static_cast<uint32_t>(num::fp_mul(kF32, acc, s19)), off9));
  }
  uint64_t v = num::fp_mul(kF32, acc, qs);
  if (qo) v = num::fp_add(kF32, v, *qo);
  return static_cast<int8_t>(num::float_to_int(kF32, v, Round::kRint, 8));
}

WqbmmStages npu_weight_quant_batchmatmul(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  Prepared p = prepare(a, cfg);
  const WqbmmShape& s = p.s;
  WqbmmStages st;
  st.acc = Tensor(DType::kF32, {s.m, s.n});
  for (int64_t m = 0; m < s.m; ++m)
    for (int64_t n = 0; n < s.n; ++n)
      st.acc.data<uint32_t>()[m * s.n + n] = nominal_acc(exact_dot(*a.x, p.wq, a.bias, m, n, s));
  if (s.quant_out) {
    st.y = Tensor(DType::kI8, {s.m, s.n});
    for (int64_t m = 0; m < s.m; ++m)
      for (int64_t n = 0; n < s.n; ++n) {
        const uint32_t qo = a.quant_offset ? quant_param(a.quant_offset, n) : 0;
        st.y.data<int8_t>()[m * s.n + n] =
            wqbmm_requant(st.acc.data<uint32_t>()[m * s.n + n], quant_param(a.quant_scale, n),
                          a.quant_offset ? &qo : nullptr, cfg.requant);
      }
  } else {
    // Step 5 (float output): the fp32 accumulator cast to the x dtype, round to nearest even.
    st.y = Tensor(s.xdt, {s.m, s.n});
    for (int64_t i = 0; i < s.m * s.n; ++i)
      st.y.data<uint16_t>()[i] =
          static_cast<uint16_t>(num::convert(kF32, st.acc.data<uint32_t>()[i], fmt(s.xdt)));
  }
  // The int8 weights are an input already: the weight_values stage exists for int4 only.
  if (s.int4) st.weight_values = std::move(p.values);
  st.antiquant_weight = std::move(p.wq);
  return st;
}

WqbmmBounds npu_weight_quant_batchmatmul_bounds(const WqbmmArgs& a, const WqbmmConfig& cfg) {
  Prepared p = prepare(a, cfg);
  const WqbmmShape& s = p.s;
  WqbmmBounds b;
  b.acc_exact = Tensor(DType::kF64, {s.m, s.n});
  b.acc_bound = Tensor(DType::kF64, {s.m, s.n});
  if (!s.quant_out) {
    b.y_exact = Tensor(DType::kF64, {s.m, s.n});
    b.y_bound = Tensor(DType::kF64, {s.m, s.n});
  }
  b.reach_offsets.push_back(0);
  const num::FloatFormat& out = fmt(s.xdt);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t m = 0; m < s.m; ++m)
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t i = m * s.n + n;
      const ExactDot d = exact_dot(*a.x, p.wq, a.bias, m, n, s);
      double& ae = b.acc_exact.data<double>()[i];
      double& ab = b.acc_bound.data<double>()[i];
      if (d.special()) {
        // NaN or Inf operands: every order gives the same special value.
        ae = num::to_double(kF32, d.special_bits());
        ab = 0;
        b.acc_provably_exact.push_back(true);
        if (!s.quant_out) {
          b.y_exact.data<double>()[i] = ae;
          b.y_bound.data<double>()[i] = 0;
        }
        continue;
      }
      const Exact ex = d.exact();
      const AccBound bound = acc_bound(d);
      b.acc_provably_exact.push_back(bound.provably_exact);
      ae = to_double_nearest(ex);
      ab = bound.infinite ? inf : stored_bound(bound.e, ex);
      if (!s.quant_out) {
        // y = fl_out(acc): |y - exact| <= e + half an ulp of the output at |exact| + e
        // (docs/bounds.md, "the output rounding").
        b.y_exact.data<double>()[i] = ae;
        double& yb = b.y_bound.data<double>()[i];
        if (bound.infinite) {
          yb = inf;
        } else {
          const Exact mag = (ex < 0 ? Exact(-ex) : ex) + bound.e;
          yb =
              mag >= overflow_threshold(out) ? inf : stored_bound(bound.e + half_ulp(out, mag), ex);
        }
        continue;
      }
      // int8 output: the accumulator lies in [exact - e, exact + e] (and the nominal fp32
      // accumulator is in it); carry the interval through the epilogue, rounding outward.
      const uint32_t qs = quant_param(a.quant_scale, n);
      const uint32_t qo = a.quant_offset ? quant_param(a.quant_offset, n) : 0;
      const uint32_t* qop = a.quant_offset ? &qo : nullptr;
      if (!finite_f32(qs) || (qop && !finite_f32(qo))) continue;  // deterministic: one code
      const uint32_t nominal = nominal_acc(d);
      uint32_t lo, hi;
      if (bound.infinite) {
        lo = static_cast<uint32_t>(num::inf_bits(kF32, true));
        hi = static_cast<uint32_t>(num::inf_bits(kF32, false));
      } else {
        lo = round_down(ex - bound.e);
        hi = round_up(ex + bound.e);
        if (num::to_exact(kF32, nominal) < num::to_exact(kF32, lo)) lo = nominal;
        if (num::to_exact(kF32, nominal) > num::to_exact(kF32, hi)) hi = nominal;
      }
      const auto [first, last] = reachable_codes(lo, hi, qs, qop, cfg.requant);
      if (last > first) {
        b.reach_index.push_back(i);
        for (int64_t c = first; c <= last; ++c) b.reach_codes.push_back(static_cast<int8_t>(c));
        b.reach_offsets.push_back(static_cast<int64_t>(b.reach_codes.size()));
      }
    }
  return b;
}

}  // namespace ref
}  // namespace qconf
