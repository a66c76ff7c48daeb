// Reference: zero experts after routing (reference/include/qconf/ops/zero_experts.h).
//
// Sources (confidence in brackets): vllm-ascend ops/fused_moe/experts_selector.py
// zero_experts_compute and its caller in the W8A8 dynamic MoE scheme (seed 000:
// `final_hidden_states += zero_expert_result`) [code]; notes/vllm_ascend_quant.md §C "After
// routing" [code]; torch type promotion and half-type opmath (fp32 compute, one rounding) [doc];
// the order of torch's sum over the k slots is not specified [inf].
//
// Canonical result: products rounded once to P, the sum over the slots in index order in fp32,
// rounded once to P; final = RN_x(RN_fp32(routed + zero_out)). Bounds: any summation order of
// the products (gamma_{n-1} over the n zero-expert slots, docs/bounds.md "zero experts"),
// propagated through the monotone roundings.
#include "qconf/ops/zero_experts.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"

namespace qconf {

namespace {

constexpr const char* kOp = "zero_experts_compute";

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument(std::string(kOp) + ": " + what);
}

bool is_half_or_f32(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}

}  // namespace

std::string_view zero_expert_type_name(ZeroExpertType t) {
  return t == ZeroExpertType::kIdentity ? "identity" : "zero";
}

ZeroExpertType parse_zero_expert_type(std::string_view s) {
  if (s == "identity") return ZeroExpertType::kIdentity;
  if (s == "zero") return ZeroExpertType::kZero;
  throw std::invalid_argument("unknown zero_expert_type \"" + std::string(s) +
                              "\" (expected identity or zero)");
}

DType check_zero_experts_args(const ZeroExpertsArgs& a) {
  if (!a.hidden || !a.ids || !a.weights)
    fail("missing input (hidden_states, topk_ids, topk_weights)");
  const Tensor& x = *a.hidden;
  if (!is_half_or_f32(x.dtype()) || x.rank() != 2)
    fail("hidden_states must be float32/float16/bfloat16 [T, H], got " + x.describe());
  const int64_t t = x.dim(0);
  if (a.ids->dtype() != DType::kI32 || a.ids->rank() != 2 || a.ids->dim(0) != t)
    fail("topk_ids must be int32 [" + std::to_string(t) + ", k], got " + a.ids->describe());
  const Tensor& w = *a.weights;
  if ((w.dtype() != DType::kF32 && w.dtype() != x.dtype()) || w.shape() != a.ids->shape())
    fail("topk_weights must be float32 or hidden_states' dtype, shaped like topk_ids, got " +
         w.describe());
  if (a.routed && (a.routed->dtype() != x.dtype() || a.routed->shape() != x.shape()))
    fail("routed must be " + std::string(dtype_name(x.dtype())) + " like hidden_states, got " +
         a.routed->describe());
  if (a.num_experts < 1) fail("num_experts must be >= 1");
  for (int64_t i = 0; i < a.ids->numel(); ++i)
    if (a.ids->data<int32_t>()[i] < 0)
      fail("topk_ids must be >= 0 (element " + std::to_string(i) + ")");
  for (const Tensor* f : {a.hidden, a.weights, a.routed}) {
    if (!f) continue;
    for (int64_t i = 0; i < f->numel(); ++i)
      if (!std::isfinite(num::to_double(fmt(f->dtype()), f->bits_at(i))))
        fail("float inputs must be finite (" + f->describe() + " element " + std::to_string(i) +
             ")");
  }
  return w.dtype() == DType::kF32 ? DType::kF32 : x.dtype();
}

namespace ref {
namespace {

float value(const Tensor& t, int64_t i) {
  return static_cast<float>(num::to_double(fmt(t.dtype()), t.bits_at(i)));  // exact widening
}
// Round an fp32 value to dtype d (RINT), as an fp32 value (exact).
float round_to(float v, DType d) {
  if (d == DType::kF32) return v;
  return static_cast<float>(
      num::to_double(fmt(d), num::convert(num::kF32, num::f32_bits(v), fmt(d))));
}
void store(Tensor& t, int64_t i, float v) {  // v already a value of t's dtype
  const uint64_t b = num::convert(num::kF32, num::f32_bits(v), fmt(t.dtype()));
  if (t.dtype() == DType::kF32)
    t.data<uint32_t>()[i] = static_cast<uint32_t>(b);
  else
    t.data<uint16_t>()[i] = static_cast<uint16_t>(b);
}

// Step 1: the zero-expert scales of token t (0 for real experts).
std::vector<float> zero_scales(const ZeroExpertsArgs& a, int64_t t) {
  const int64_t k = a.ids->dim(1);
  std::vector<float> zs(static_cast<size_t>(k), 0.0f);
  for (int64_t j = 0; j < k; ++j)
    if (a.ids->data<int32_t>()[t * k + j] >= a.num_experts) zs[j] = value(*a.weights, t * k + j);
  return zs;
}

}  // namespace

ZeroExpertsStages zero_experts_compute(const ZeroExpertsArgs& a) {
  const DType p = check_zero_experts_args(a);
  const Tensor& x = *a.hidden;
  const int64_t tn = x.dim(0), h = x.dim(1), k = a.ids->dim(1);
  ZeroExpertsStages s;
  s.zero_out = Tensor(p, {tn, h});
  s.ids = Tensor(DType::kI32, {tn, k});
  s.weights = Tensor(a.weights->dtype(), {tn, k});
  if (a.routed) s.final = Tensor(x.dtype(), {tn, h});
  for (int64_t t = 0; t < tn; ++t) {
    const std::vector<float> zs = zero_scales(a, t);
    for (int64_t c = 0; c < h; ++c) {
      float z = 0.0f;
      if (a.type == ZeroExpertType::kIdentity) {
        // Steps 2-3: products rounded to P, summed in slot order in fp32, rounded to P.
        float acc = 0.0f;
        for (int64_t j = 0; j < k; ++j)
          acc = num::f32_add(acc, round_to(num::f32_mul(value(x, t * h + c), zs[j]), p));
        z = round_to(acc, p);
      }
      store(s.zero_out, t * h + c, z);
      // Step 5: the in-place add in x's dtype.
      if (a.routed)
        store(s.final, t * h + c,
              round_to(num::f32_add(value(*a.routed, t * h + c), z), x.dtype()));
    }
    // Step 4: zero experts leave the routed path.
    for (int64_t j = 0; j < k; ++j) {
      const bool zero = a.ids->data<int32_t>()[t * k + j] >= a.num_experts;
      s.ids.data<int32_t>()[t * k + j] = zero ? 0 : a.ids->data<int32_t>()[t * k + j];
      store(s.weights, t * k + j, zero ? 0.0f : value(*a.weights, t * k + j));
    }
  }
  return s;
}

namespace {

num::Exact ex(float v) { return num::to_exact(num::kF32, num::f32_bits(v)); }
num::Exact ex(double v) {
  uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return num::to_exact(num::kF64, b);
}

// Rounds an exact value to fp32 with `mode`, as an fp32 value.
float f32_of(const num::Exact& v, num::Round mode) {
  return num::f32_from_bits(static_cast<uint32_t>(num::encode(num::kF32, v, mode)));
}
// max(|hi - e|, |e - lo|) rounded up to a double, e = the exact value as stored (a double).
double bound_of(float lo, float hi, const num::Exact& exact) {
  const num::Exact e = ex(exact.convert_to<double>());
  const num::Exact d = std::max(abs(ex(hi) - e), abs(e - ex(lo)));
  double r = d.convert_to<double>();
  while (ex(r) < d) r = std::nextafter(r, std::numeric_limits<double>::infinity());
  return r;
}

}  // namespace

ZeroExpertsBounds zero_experts_compute_bounds(const ZeroExpertsArgs& a) {
  const DType p = check_zero_experts_args(a);
  const Tensor& x = *a.hidden;
  const int64_t tn = x.dim(0), h = x.dim(1), k = a.ids->dim(1);
  ZeroExpertsBounds b;
  b.zero_exact = Tensor(DType::kF64, {tn, h});
  b.zero_bound = Tensor(DType::kF64, {tn, h});
  if (a.routed) {
    b.final_exact = Tensor(DType::kF64, {tn, h});
    b.final_bound = Tensor(DType::kF64, {tn, h});
  }
  const num::Exact u = num::Exact(1) / num::Exact(1 << 24);  // fp32 unit roundoff
  for (int64_t t = 0; t < tn; ++t) {
    const std::vector<float> zs = zero_scales(a, t);
    int64_t n = 0;
    for (float v : zs) n += v != 0.0f;
    // gamma_{n-1} = (n-1) u / (1 - (n-1) u): any order of the n nonzero products (Higham 3.5).
    const num::Exact nm1(std::max<int64_t>(n - 1, 0));
    const num::Exact gamma = nm1 * u / (1 - nm1 * u);
    for (int64_t c = 0; c < h; ++c) {
      const int64_t i = t * h + c;
      num::Exact exact = 0, rounded_sum = 0, mag = 0;
      float lo = 0.0f, hi = 0.0f;
      if (a.type == ZeroExpertType::kIdentity) {
        const num::Exact xv = ex(value(x, i));
        for (int64_t j = 0; j < k; ++j) {
          if (zs[j] == 0.0f) continue;
          exact += xv * ex(zs[j]);
          const float pj = round_to(num::f32_mul(value(x, i), zs[j]), p);
          rounded_sum += ex(pj);
          mag += abs(ex(pj));
        }
        lo = round_to(f32_of(rounded_sum - gamma * mag, num::Round::kFloor), p);
        hi = round_to(f32_of(rounded_sum + gamma * mag, num::Round::kCeil), p);
      }
      b.zero_exact.data<double>()[i] = exact.convert_to<double>();
      b.zero_bound.data<double>()[i] = bound_of(lo, hi, exact);
      if (a.routed) {
        const float r = value(*a.routed, i);
        const num::Exact fe = ex(r) + exact;
        const float flo = round_to(num::f32_add(r, lo), x.dtype());
        const float fhi = round_to(num::f32_add(r, hi), x.dtype());
        b.final_exact.data<double>()[i] = fe.convert_to<double>();
        b.final_bound.data<double>()[i] = bound_of(flo, fhi, fe);
      }
    }
  }
  return b;
}

}  // namespace ref
}  // namespace qconf
