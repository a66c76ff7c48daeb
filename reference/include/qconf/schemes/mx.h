// The MX schemes of Ascend 950 (A5): fp4/fp8 weights with e8m0 scales per 32 along K
// (W4A4_MXFP4, W4A8_MXFP, W4A16_MXFP4, W8A8_MXFP8). Their checkpoint declarations differ only in
// the weight element (fp4 two per byte, or fp8) and in the layer types; one builder serves all.
// Source: notes/vllm_ascend_quant.md §A "MX schemes".
#pragma once

#include <string>
#include <vector>

#include "qconf/schemes/scheme.h"

namespace qconf::schemes {

struct MxSchemeSpec {
  std::string quant_type, summary, upstream;
  std::vector<std::string> layer_types;  // "linear", "moe"
  bool fp4_weight = true;                // fp4 e2m1 two per byte (U8 [rows, cols/2]) or F8_E4M3
};

inline std::vector<SchemeDef> mx_scheme_defs(const MxSchemeSpec& s) {
  std::vector<SchemeDef> out;
  for (const std::string& lt : s.layer_types) {
    SchemeDef d;
    d.quant_type = s.quant_type;
    d.layer_type = lt;
    d.hardware = "A5";
    d.summary = s.summary;
    d.upstream = s.upstream;
    d.sources = {"notes/vllm_ascend_quant.md §A MX schemes"};
    // One projection: weight [rows, cols] (fp4: two per byte), e8m0 scale per 32 columns.
    auto add = [&](const std::string& rows, const std::string& cols, const std::string& role) {
      d.tensors.push_back(decl("weight", {rows, s.fp4_weight ? cols + "/2" : cols},
                               exact({s.fp4_weight ? "U8" : "F8_E4M3"}), "[K, N] after load", kMs,
                               role));
      d.tensors.push_back(
          decl("weight_scale", {rows, "cdiv(" + cols + ", 32)"}, exact({"U8", "F8_E8M0"}),
               "e8m0 (2^(u-127)); padded to even columns, [K/64, N, 2]", kMs, role));
    };
    if (lt == "moe") {
      add("I", "H", "gate_up");
      add("H", "I", "down");
    } else {
      add("N", "K", "");
    }
    d.needs = {"npu_dynamic_mx_quant", "npu_quant_matmul with e8m0 group scales"};
    if (lt == "moe") d.needs.push_back("MoE routing/dispatch ops");
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace qconf::schemes
