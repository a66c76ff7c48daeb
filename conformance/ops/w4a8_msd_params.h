// The MSD variant params shared by the ops that run the W4A8 MSD grouped matmul
// (w4a8_msd_grouped_matmul.cpp, scheme_w4a8_dynamic_moe.cpp and, through it, the W4A8 MoE layer):
// msd_sum_order (hi_lo_first | bias_first), requant_rounding (double_fp16 | single_int16),
// fixpipe_precision (fp32 | exact) -> W4a8MsdConfig. One parser, so the ops cannot drift apart;
// each op's own params (clamp_limit, format, tp) stay in its file.
// Source: docs/divergences.md rows of w4a8_msd_grouped_matmul (sum order, requant rounding,
// fixpipe precision).
#pragma once

#include <stdexcept>
#include <string>

#include "qconf/conformance/op.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/ops/quant_matmul.h"

namespace qconf::conf::w4a8_msd_params {

// `op` names the op in the error of an unknown value.
inline W4a8MsdConfig parse(const Params& p, const std::string& op) {
  W4a8MsdConfig c;
  const std::string order = param_str(p, "msd_sum_order", "hi_lo_first");
  if (order != "hi_lo_first" && order != "bias_first")
    throw std::invalid_argument(
        op + ": param msd_sum_order must be hi_lo_first or bias_first, got " + order);
  c.bias_first = order == "bias_first";
  const std::string rnd = param_str(p, "requant_rounding", "double_fp16");
  if (rnd != "double_fp16" && rnd != "single_int16")
    throw std::invalid_argument(
        op + ": param requant_rounding must be double_fp16 or single_int16, got " + rnd);
  c.rounding =
      rnd == "double_fp16" ? SwigluQuantRounding::kDoubleFp16 : SwigluQuantRounding::kSingleInt16;
  c.fixpipe = parse_fixpipe_precision(param_str(p, "fixpipe_precision", "fp32"));
  return c;
}

}  // namespace qconf::conf::w4a8_msd_params
