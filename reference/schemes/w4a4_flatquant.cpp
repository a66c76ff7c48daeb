// W4A4_FLATQUANT_DYNAMIC linear: vllm-ascend quantization/methods/w4a4_flatquant.py.
// Source: notes/vllm_ascend_quant.md §A "W4A4_FLATQUANT_DYNAMIC"; seed FlatQuant
// (get_decompose_dim).
#include "qconf/ops/index.h"
#include "qconf/schemes/scheme.h"

namespace qconf::schemes::scheme_w4a4_flatquant {

std::vector<std::string> flatquant_dims(const LayerContext& c) {
  std::vector<std::string> p;
  auto k = c.symbols.find("K");
  if (k == c.symbols.end()) return p;
  if (k->second % 8 != 0)
    p.push_back("K = " + std::to_string(k->second) + " is not a multiple of 8");
  if (k->second % 4 == 2) {
    p.push_back("K = " + std::to_string(k->second) +
                ": get_decompose_dim never ends for K % 4 == 2 (upstream hangs)");
    return p;
  }
  const DecomposeDims want = ref::get_decompose_dim(k->second);
  auto l = c.symbols.find("L"), r = c.symbols.find("R");
  if (l != c.symbols.end() && r != c.symbols.end() &&
      (l->second != want.left || r->second != want.right))
    p.push_back("left_trans/right_trans are [" + std::to_string(l->second) + "]^2 / [" +
                std::to_string(r->second) +
                "]^2, get_decompose_dim(K=" + std::to_string(k->second) + ") gives (" +
                std::to_string(want.left) + ", " + std::to_string(want.right) + ")");
  return p;
}

std::vector<SchemeDef> make() {
  SchemeDef d;
  d.quant_type = "W4A4_FLATQUANT_DYNAMIC";
  d.layer_type = "linear";
  d.summary =
      "Kronecker-rotated activations (npu_kronecker_quant with left^T, right, clip_ratio) "
      "quantized to int4; int4 weights packed at load; npu_quant_matmul + bias";
  d.upstream = "quantization/methods/w4a4_flatquant.py";
  d.sources = {"notes/vllm_ascend_quant.md §A W4A4_FLATQUANT_DYNAMIC", "seed FlatQuant"};
  d.tensors = {
      decl("weight", {"N", "K"}, exact({"I8"}), "int4 values; packed with inner_k_tiles=1"),
      decl("left_trans", {"L", "L"}, params_dtype(), "replaced by its transpose at load"),
      decl("right_trans", {"R", "R"}, params_dtype(), ""),
      decl("clip_ratio", {"1"}, exact({"F32"}), "scale = max|x''| / (7/clip) [inf: doc versions]"),
      decl("weight_scale", {"N", "1"}, exact({"F32"}), ""),
      decl("weight_offset", {"N", "1"}, exact({"F32"}), "unused"),
  };
  d.checks = {flatquant_dims};
  d.pipeline_op = "scheme_w4a4_flatquant_linear";
  return {d};
}
QCONF_REGISTER_SCHEME(make);

}  // namespace qconf::schemes::scheme_w4a4_flatquant
