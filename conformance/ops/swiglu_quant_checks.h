// Shared oracle helper of the SwiGLU + per-token int8 requant op files
// (npu_dequant_swiglu_quant.cpp, npu_grouped_matmul_swiglu_quant.cpp,
// w4a8_msd_grouped_matmul.cpp): the checks of the stages `swiglu` (BOUNDED), `y` and `scale`
// (REACHABLE where the reference lists alternatives, else exact), restricted to the rows the
// kernel writes.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include "qconf/conformance/op.h"
#include "qconf/ops/expert_mlp.h"

namespace qconf::conf::conformance_ops_swiglu_quant_checks {

// Adds the checks of swiglu / y / scale from the reference bounds `b` to `m`. Stages are
// [rows, h] (swiglu, y) and [rows] (scale); when valid < rows, only the first `valid` rows are
// compared in those stages (rows past the group list are unspecified). `op` names the op in
// the error raised for a case with no valid row.
// The stage names (a pipeline op calls them e.g. swiglu / h_q / h_scale).
struct SwigluQuantStageNames {
  std::string swiglu = "swiglu", y = "y", scale = "scale";
};

inline void add_swiglu_quant_checks(std::map<std::string, Check>& m, const SwigluQuantBounds& b,
                                    int64_t rows, int64_t h, int64_t valid, const char* op,
                                    const SwigluQuantStageNames& names = {}) {
  Check sw;
  sw.mode = CheckMode::kBounded;
  sw.exact = b.swiglu_exact;
  sw.bound = b.swiglu_bound;
  m[names.swiglu] = std::move(sw);
  if (!b.y_index.empty()) {
    Check c;
    c.mode = CheckMode::kReachable;
    c.accept.index = b.y_index;
    c.accept.offsets = b.y_offsets;
    c.accept.values = Tensor::from<int8_t>({static_cast<int64_t>(b.y_values.size())}, b.y_values);
    m[names.y] = std::move(c);
  }
  if (!b.scale_index.empty()) {
    Check c;
    c.mode = CheckMode::kReachable;
    c.accept.index = b.scale_index;
    c.accept.offsets = b.scale_offsets;
    c.accept.values =
        Tensor::from<float>({static_cast<int64_t>(b.scale_values.size())}, b.scale_values);
    m[names.scale] = std::move(c);
  }
  if (valid < rows) {
    if (valid == 0) throw std::logic_error(std::string(op) + ": a case with no valid row");
    m[names.swiglu].compared = {0, valid * h};
    m[names.y].compared = {0, valid * h};
    m[names.scale].compared = {0, valid};
  }
}

}  // namespace qconf::conf::conformance_ops_swiglu_quant_checks
