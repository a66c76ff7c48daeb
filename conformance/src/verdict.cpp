#include "qconf/conformance/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "qconf/numeric/float_format.h"

namespace qconf::conf {

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "PASS";
    case Verdict::kFail:
      return "FAIL";
    case Verdict::kMistrusted:
      return "MISTRUSTED";
    case Verdict::kUnimplemented:
      return "UNIMPLEMENTED";
    case Verdict::kSkipped:
      return "SKIPPED";
    case Verdict::kCrash:
      return "CRASH";
    case Verdict::kTimeout:
      return "TIMEOUT";
  }
  return "?";
}

bool verdict_is_failure(Verdict v) {
  return v == Verdict::kFail || v == Verdict::kUnimplemented || v == Verdict::kCrash ||
         v == Verdict::kTimeout;
}

namespace {

const num::FloatFormat* float_format(DType t) {
  switch (t) {
    case DType::kF16:
      return &num::kF16;
    case DType::kBF16:
      return &num::kBF16;
    case DType::kF32:
      return &num::kF32;
    case DType::kF64:
      return &num::kF64;
    default:
      return nullptr;
  }
}

double as_double(const Tensor& t, int64_t i) {
  return num::to_double(*float_format(t.dtype()), t.bits_at(i));
}

bool is_nan_bits(DType t, uint64_t b) {
  const num::FloatFormat* f = float_format(t);
  return f && num::decode(*f, b).cls == num::FClass::kNaN;
}

bool is_zero_bits(DType t, uint64_t b) {
  const num::FloatFormat* f = float_format(t);
  if (!f) return b == 0;
  uint64_t sign = uint64_t{1} << (f->exp_bits + f->mant_bits);
  return (b & ~sign) == 0;
}

std::string difference(const Tensor& exp, int64_t i, const Tensor& got) {
  if (const num::FloatFormat* f = float_format(exp.dtype())) {
    const uint64_t e = exp.bits_at(i), g = got.bits_at(i);
    const bool ne = num::is_nan(*f, e), ng = num::is_nan(*f, g);
    if (ne && ng) return "NaN payload or sign differs";
    if (ne || ng) return ne ? "expected NaN" : "unexpected NaN";
    if (is_zero_bits(exp.dtype(), e) && is_zero_bits(exp.dtype(), g)) return "sign of zero differs";
    return std::to_string(num::ulp_distance(*f, e, g)) + " ulp";
  }
  // Integer codes: the exact signed difference (BigInt: no overflow at int64/uint64 extremes).
  auto value = [&](const Tensor& t) {
    return t.dtype() == DType::kU64 ? num::BigInt(t.bits_at(i)) : num::BigInt(t.int_at(i));
  };
  const num::BigInt d = value(got) - value(exp);
  const bool neg = d < 0;
  const std::string digits = (neg ? num::BigInt(-d) : d).str();
  return (neg ? "-" : "+") + digits + (digits == "1" ? " code" : " codes");
}

// Element equality under the stage's rules (before any accept set is consulted).
bool element_matches(const Stage& s, const Tensor& got, int64_t i) {
  uint64_t e = s.expected.bits_at(i), g = got.bits_at(i);
  if (e == g) return true;
  DType dt = s.expected.dtype();
  if (!dtype_is_float(dt)) return false;
  if (s.check.mode == CheckMode::kSpecial) {
    // NaN payloads are not portable; any NaN matches any NaN.
    if (is_nan_bits(dt, e) && is_nan_bits(dt, g)) return true;
  }
  if (!s.check.signed_zero && is_zero_bits(dt, e) && is_zero_bits(dt, g)) return true;
  return false;
}

void note_mismatch(StageResult& r, const Tensor& exp, const Tensor& got, int64_t i,
                   std::string diff) {
  ++r.mismatches;
  if (r.first.size() < kMaxReported)
    r.first.push_back(Mismatch{i, coords_of(exp.shape(), i), format_element(exp, i),
                               format_element(got, i), std::move(diff)});
}

StageResult verify_bounded(const Stage& s, const Tensor& got) {
  StageResult r;
  r.stage = s.name;
  if (!float_format(got.dtype()) || !s.check.exact || !s.check.bound) {
    r.verdict = Verdict::kFail;
    r.message = "a bounded check needs a float stage with exact and bound tensors";
    r.mismatches = 1;
    return r;
  }
  const Tensor& ex = *s.check.exact;
  const Tensor& bd = *s.check.bound;
  double sum_sq = 0, sum = 0;
  int64_t counted = 0;
  // Chart samples: every stride-th element, the failing ones (capped) and the worst one.
  const int64_t n = got.numel();
  const int64_t cap = static_cast<int64_t>(kMaxBoundSamples);
  r.sample_stride = std::max<int64_t>(1, (n + cap - 1) / cap);
  size_t failing_samples = 0;
  int64_t worst = -1;
  double worst_q = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!s.check.is_compared(i)) continue;  // unspecified element
    double e = ex.data<double>()[i], b = bd.data<double>()[i], g = as_double(got, i);
    bool ok;
    std::string diff;
    if (std::isnan(e)) {
      ok = std::isnan(g);
      diff = "expected NaN";
    } else if (std::isinf(b)) {
      ok = true;  // the bound overflowed: anything is reachable (TOSA's rule)
    } else if (std::isnan(g) || std::isinf(g)) {
      ok = std::isinf(e) && g == e;
      diff = "non-finite result";
    } else {
      double err = std::fabs(g - e);
      ok = err <= b;
      if (b > 0) {
        double q = (g - e) / b;
        sum += q;
        sum_sq += q * q;
        ++counted;
        r.stats.max_err_over_bound = std::max(r.stats.max_err_over_bound, std::fabs(q));
        if (std::fabs(q) > worst_q) {
          worst_q = std::fabs(q);
          worst = i;
        }
        const bool failing = !(err <= b);
        if (i % r.sample_stride == 0 || (failing && failing_samples < kMaxFailingSamples)) {
          failing_samples += failing && i % r.sample_stride != 0;
          r.samples.push_back(BoundSample{i, err, b});
        }
      } else if (err > 0) {
        r.stats.max_err_over_bound = std::numeric_limits<double>::infinity();
      }
      char buf[96];
      std::snprintf(buf, sizeof buf, "err %.9g > bound %.9g", err, b);
      diff = buf;
    }
    if (!ok) note_mismatch(r, s.expected, got, i, diff);
  }
  if (worst >= 0 && worst % r.sample_stride != 0) {
    bool present = false;
    for (const BoundSample& x : r.samples) present = present || x.index == worst;
    if (!present) {
      const double e = ex.data<double>()[worst];
      r.samples.push_back(
          BoundSample{worst, std::fabs(as_double(got, worst) - e), bd.data<double>()[worst]});
    }
  }
  r.stats.elements = counted;
  if (counted) {
    r.stats.rms_err_over_bound = std::sqrt(sum_sq / static_cast<double>(counted));
    r.stats.mean_err_over_bound = sum / static_cast<double>(counted);
  }
  return r;
}

int64_t compared_count(const Check& c, int64_t numel) {
  if (c.compared.empty()) return numel;
  int64_t n = 0;
  for (size_t k = 0; k + 1 < c.compared.size(); k += 2) n += c.compared[k + 1] - c.compared[k];
  return n;
}

// row_set: each row (last dim) is a multiset; it must equal the expected row's multiset or one
// of the listed alternative rows'. Ordered: each row is a sequence, compared element by element
// with the expected row and the alternatives. Bits are compared (integer id stages).
StageResult verify_row_set(const Stage& s, const Tensor& got) {
  StageResult r;
  r.stage = s.name;
  const int64_t len = got.rank() ? got.dim(-1) : 1;
  const int64_t rows = len ? got.numel() / len : 0;
  const AcceptSet& a = s.check.accept;
  const bool ordered = s.check.ordered;
  auto row_bits = [len, ordered](const Tensor& t, int64_t first) {
    std::vector<uint64_t> v(static_cast<size_t>(len));
    for (int64_t j = 0; j < len; ++j) v[j] = t.bits_at(first + j);
    if (!ordered) std::sort(v.begin(), v.end());
    return v;
  };
  for (int64_t row = 0; row < rows; ++row) {
    if (!s.check.is_compared(row * len)) continue;  // an unspecified row
    const std::vector<uint64_t> g = row_bits(got, row * len);
    if (g == row_bits(s.expected, row * len)) continue;
    bool ok = false;
    auto it = std::lower_bound(a.index.begin(), a.index.end(), row);
    if (it != a.index.end() && *it == row) {
      const size_t k = static_cast<size_t>(it - a.index.begin());
      for (int64_t o = a.offsets[k]; !ok && o + len <= a.offsets[k + 1]; o += len)
        ok = g == row_bits(a.values, o);
    }
    if (ok) {
      r.used_accept_set = true;
      continue;
    }
    if (ordered) {
      // Report the first position that differs from the expected sequence.
      int64_t at = row * len;
      while (at + 1 < (row + 1) * len && got.bits_at(at) == s.expected.bits_at(at)) ++at;
      note_mismatch(r, s.expected, got, at,
                    "row " + std::to_string(row) + " is not an acceptable sequence");
      continue;
    }
    // Report the first element of the row that is not in the expected multiset.
    std::vector<uint64_t> e = row_bits(s.expected, row * len);
    int64_t at = row * len;
    for (int64_t j = 0; j < len; ++j) {
      auto f = std::find(e.begin(), e.end(), got.bits_at(row * len + j));
      if (f == e.end()) {
        at = row * len + j;
        break;
      }
      e.erase(f);
    }
    note_mismatch(r, s.expected, got, at,
                  "row " + std::to_string(row) + " is not an acceptable set");
  }
  return r;
}

}  // namespace

StageResult verify_stage(const Stage& s, const Tensor& got) {
  StageResult r;
  r.stage = s.name;
  if (got.dtype() != s.expected.dtype() || got.shape() != s.expected.shape()) {
    r.verdict = Verdict::kFail;
    r.message = "expected " + s.expected.describe() + ", got " + got.describe();
    return r;
  }
  if (s.check.mode == CheckMode::kBounded) {
    r = verify_bounded(s, got);
  } else if (s.check.mode == CheckMode::kRowSet) {
    r = verify_row_set(s, got);
  } else {
    const bool with_accept =
        s.check.mode == CheckMode::kExactTies || s.check.mode == CheckMode::kReachable;
    for (int64_t i = 0; i < got.numel(); ++i) {
      if (!s.check.is_compared(i)) continue;  // unspecified element
      if (element_matches(s, got, i)) continue;
      if (with_accept) {
        bool ok = false;
        for (uint64_t b : s.check.accept.bits_for(i)) ok = ok || b == got.bits_at(i);
        if (ok) {
          r.used_accept_set = true;
          continue;
        }
      }
      note_mismatch(r, s.expected, got, i, difference(s.expected, i, got));
    }
  }
  if (r.mismatches) {
    r.verdict = Verdict::kFail;
    r.message = std::to_string(r.mismatches) + " of " +
                std::to_string(compared_count(s.check, got.numel())) + " elements differ (" +
                std::string(check_mode_name(s.check.mode)) + (s.check.ordered ? ", ordered" : "") +
                ")";
  } else if (s.output && !s.check.degenerate_ok && is_degenerate(s.expected, s.check)) {
    r.verdict = Verdict::kMistrusted;
    r.message = "more than 90% of the expected output is zero: the case cannot detect errors";
  }
  return r;
}

bool is_degenerate(const Tensor& expected) { return is_degenerate(expected, Check{}); }

bool is_degenerate(const Tensor& expected, const Check& check) {
  int64_t n = 0, zeros = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    if (!check.is_compared(i)) continue;  // unspecified elements detect nothing either way
    ++n;
    zeros += is_zero_bits(expected.dtype(), expected.bits_at(i));
  }
  if (n < 8) return false;  // tiny hand-picked vectors are judged by their author
  return static_cast<double>(zeros) > kMistrustZeroFraction * static_cast<double>(n);
}

std::string format_element(const Tensor& t, int64_t i) {
  if (i < 0 || i >= t.numel()) return "<out of range>";
  if (float_format(t.dtype())) {
    char buf[64];
    int hex_digits = static_cast<int>(dtype_size(t.dtype()) * 2);
    std::snprintf(buf, sizeof buf, "0x%0*llx (%.9g)", hex_digits,
                  static_cast<unsigned long long>(t.bits_at(i)), as_double(t, i));
    return buf;
  }
  if (t.dtype() == DType::kU64) return std::to_string(t.bits_at(i));
  int64_t v = t.int_at(i);
  if (t.dtype() == DType::kI32 || t.dtype() == DType::kU32 || t.dtype() == DType::kI64) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%lld (0x%0*llx)", static_cast<long long>(v),
                  static_cast<int>(dtype_size(t.dtype()) * 2),
                  static_cast<unsigned long long>(t.bits_at(i)));
    return buf;
  }
  return std::to_string(v);
}

std::string coords_of(const Shape& s, int64_t flat) {
  Shape c(s.size());
  for (size_t k = s.size(); k-- > 0;) {
    int64_t d = s[k] ? s[k] : 1;
    c[k] = flat % d;
    flat /= d;
  }
  return shape_str(c);
}

}  // namespace qconf::conf
