// The verdict engine: compares an implementation's stage against a fixture's expectation.
// In the spirit of TOSA's verify API: one entry point per stage, every rejection names the
// element's coordinates.
#pragma once

#include <string>
#include <vector>

#include "qconf/conformance/fixture.h"

namespace qconf::conf {

enum class Verdict {
  kPass,
  kFail,
  kMistrusted,     // passed, but the case could not have detected an error
  kUnimplemented,  // the implementation does not provide this op/variant (counts as failure)
  kSkipped,
  kCrash,
  kTimeout,
};
std::string_view verdict_name(Verdict v);  // "PASS", "FAIL", ...
bool verdict_is_failure(Verdict v);        // FAIL, UNIMPLEMENTED, CRASH, TIMEOUT

struct Mismatch {
  int64_t index;         // flat index
  std::string coords;    // "[1, 3]"
  std::string expected;  // printed value (and bits)
  std::string got;
  std::string difference;  // "3 ulp", "2 codes", "err 1.2e-3 > bound 4.0e-4"
};

struct StageStats {               // for BOUNDED stages (TOSA dot-product style)
  double max_err_over_bound = 0;  // max |err|/bound
  double rms_err_over_bound = 0;
  double mean_err_over_bound = 0;  // signed: bias
  int64_t elements = 0;
};

// One element of a BOUNDED stage, for the HTML report's error-against-bound chart.
struct BoundSample {
  int64_t index;  // flat element index
  double err;     // |got - exact|
  double bound;   // the element's derived bound (> 0)
};
// At most this many samples per stage (plus the failing elements, up to kMaxFailingSamples,
// and the element with the largest |err|/bound): every k-th element, k = ceil(n / max).
inline constexpr size_t kMaxBoundSamples = 1000;
inline constexpr size_t kMaxFailingSamples = 200;

struct StageResult {
  std::string stage;
  Verdict verdict = Verdict::kPass;
  std::string message;  // one line
  int64_t mismatches = 0;
  std::vector<Mismatch> first;  // at most kMaxReported
  StageStats stats;
  bool used_accept_set = false;      // a listed tie/reachable alternative was taken
  std::vector<BoundSample> samples;  // BOUNDED stages only: elements with a finite bound > 0
  int64_t sample_stride = 0;         // every sample_stride-th element is in `samples`
};
inline constexpr size_t kMaxReported = 10;

// Checks one stage. Dtype and shape must match exactly.
StageResult verify_stage(const Stage& stage, const Tensor& got);

// The fraction of zero elements above which an output cannot detect errors (benchdnn's
// MISTRUSTED; benchdnn uses 30% by default and 90% for matmul). Intermediates are ignored.
inline constexpr double kMistrustZeroFraction = 0.9;
bool is_degenerate(const Tensor& expected);
// The same over the compared elements of a check only (Check::compared).
bool is_degenerate(const Tensor& expected, const Check& check);

// Formats element i of t for humans: "-3", "0x3c00 (1.0)", ...
std::string format_element(const Tensor& t, int64_t i);
std::string coords_of(const Shape& s, int64_t flat);

}  // namespace qconf::conf
