// The scheme registry: every vllm-ascend quantization scheme, keyed by (quant_type, layer_type),
// with the checkpoint tensors it declares per layer (name suffix, dtype, shape formula) and the
// conformance op that runs its layer pipeline (when the ops it needs exist).
//
// Source: notes/vllm_ascend_quant.md §A (create_weights / method_adapters.py), the registry
// refactor seed (@register_scheme: a dict keyed by (quant_type, layer_type), a duplicate key is a
// ValueError). One file per scheme in reference/schemes/, registered statically with
// QCONF_REGISTER_SCHEME (the reference library is shared, so every registrar is kept).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf::schemes {

// Layer types of the registry (method_adapters.py); kv_cache is the C8 method vllm-ascend builds
// directly (not through the registry).
inline const std::vector<std::string> kLayerTypes = {"linear", "moe", "attention", "kv_cache"};

// The checkpoint formats a tensor declaration belongs to.
enum class Format { kModelSlim, kCompressedTensors };
std::string format_name(Format f);  // "modelslim", "compressed-tensors"

// Which checkpoint dtypes a tensor may have (safetensors names: "F32", "BF16", "I8", ...).
struct DTypeRule {
  enum class Kind {
    kExact,     // one of `allowed`
    kParams,    // a float the loader copies into a params-dtype parameter (rounded at load)
    kByParams,  // depends on params_dtype: `bf16` when bf16, `fp16` when fp16
  } kind = Kind::kExact;
  std::vector<std::string> allowed;
  std::string bf16, fp16;
  // The dtypes a checkpoint may hold for this rule under params dtype `pdt` ("BF16" | "F16").
  std::vector<std::string> accepted(const std::string& pdt) const;
  std::string describe() const;  // "I8", "pdt (F32|BF16|F16 -> params dtype)", ...
};
DTypeRule exact(std::vector<std::string> allowed);
DTypeRule params_dtype();
DTypeRule by_params(std::string bf16, std::string fp16);

// One checkpoint tensor of a layer. Linear layers: "{prefix}.{suffix}". MoE layers (per expert,
// as ModelSlim and LLM-Compressor store them): "{prefix}.{e}.{proj}.{suffix}" for proj in
// gate_proj/up_proj (role "gate_up") or down_proj (role "down"). Attention / kv_cache:
// "{prefix}.{suffix}" with the prefix of the attention module.
struct TensorDecl {
  std::string suffix;              // "weight", "weight_scale", "fa_k.scale", ...
  std::string role;                // "" | "gate_up" | "down" (MoE projections)
  std::vector<std::string> shape;  // formulas over N K E I H D L R g tp kvh (see shape_formula.h)
  DTypeRule dtype;
  std::vector<Format> formats = {Format::kModelSlim};
  bool optional = false;  // may be absent (e.g. a bias)
  std::string note;       // how the loader uses it (post-load transform)
};

// The checkpoint shape and dtype facts a layer's validation found (symbols bound, params dtype).
struct LayerContext {
  std::string prefix;
  std::string layer_type;
  Format format = Format::kModelSlim;
  std::string params_dtype = "BF16";               // "BF16" | "F16"
  std::map<std::string, int64_t> symbols;          // N, K, E, ..., g, tp
  std::map<std::string, std::string> description;  // global description keys (group_size, ...)
};

// A scheme's extra rule (beyond per-tensor dtype/shape): returns problems (empty when fine).
using SchemeCheck = std::function<std::vector<std::string>(const LayerContext&)>;

struct SchemeDef {
  std::string quant_type;  // "W8A8_DYNAMIC", ...
  std::string layer_type;  // "linear" | "moe" | "attention" | "kv_cache"
  std::string summary;
  std::string upstream;  // vllm-ascend file and class
  std::vector<std::string> sources;
  std::string hardware = "A2/A3";  // "A2/A3", "A5", "any"
  bool in_vllm_registry = true;    // false: built directly (C8)
  std::vector<TensorDecl> tensors;
  std::vector<SchemeCheck> checks;
  // The conformance op that runs one layer end to end on real weights; empty when the ops it
  // needs are not in the project yet (then `needs` names them).
  std::string pipeline_op;
  std::vector<std::string> needs;
  // Conformance ops that check a part of the scheme on their own (e.g. the expert MLP on already
  // dispatched rows) while no whole-layer pipeline exists: `qconf list schemes` names them.
  std::vector<std::string> part_ops;
};

class SchemeRegistry {
 public:
  static SchemeRegistry& instance();
  // Throws std::logic_error on a duplicate (quant_type, layer_type), as vllm-ascend's registry
  // raises ValueError.
  void add(SchemeDef def);
  const SchemeDef* find(const std::string& quant_type, const std::string& layer_type) const;
  std::vector<const SchemeDef*> all() const;  // sorted by (quant_type, layer_type)
  // Every layer type registered for a quant type (empty when the quant type is unknown).
  std::vector<std::string> layer_types_of(const std::string& quant_type) const;

 private:
  std::map<std::pair<std::string, std::string>, SchemeDef> schemes_;
};

struct SchemeRegistrar {
  explicit SchemeRegistrar(std::vector<SchemeDef> (*make)()) {
    for (auto& d : make()) SchemeRegistry::instance().add(std::move(d));
  }
};
#define QCONF_SCHEME_CONCAT_(a, b) a##b
#define QCONF_SCHEME_CONCAT(a, b) QCONF_SCHEME_CONCAT_(a, b)
// One call per scheme file: make_fn returns the SchemeDefs of one quant type (one per layer type).
#define QCONF_REGISTER_SCHEME(make_fn)                                                        \
  static const ::qconf::schemes::SchemeRegistrar QCONF_SCHEME_CONCAT(qconf_scheme_registrar_, \
                                                                     __LINE__)(make_fn)

// ---- shape formulas --------------------------------------------------------------------------
// A dimension formula: integers, symbols (letters/digits/_ starting with a letter), + - * /,
// parentheses, and cdiv(a, b) (ceiling division). "/" must divide exactly.
struct FormulaResult {
  std::optional<int64_t> value;  // nullopt: an unbound symbol (named in `unbound`) or an error
  std::string unbound;
  std::string error;  // "K/8: 100 is not divisible by 8", ...
};
FormulaResult eval_formula(const std::string& formula, const std::map<std::string, int64_t>& syms);
// When `formula` is SYM, SYM*c, c*SYM or SYM/c with SYM unbound, the value of SYM that makes the
// formula equal `actual` (nullopt when the form is different or the value is not an integer).
std::optional<std::pair<std::string, int64_t>> solve_formula(
    const std::string& formula, int64_t actual, const std::map<std::string, int64_t>& syms);

}  // namespace qconf::schemes

namespace qconf::schemes {
// A declaration in one line: decl("weight_scale", {"N", "1"}, params_dtype(), "flattened").
inline TensorDecl decl(std::string suffix, std::vector<std::string> shape, DTypeRule dtype,
                       std::string note = "", std::vector<Format> formats = {Format::kModelSlim},
                       std::string role = "", bool optional = false) {
  TensorDecl t;
  t.suffix = std::move(suffix);
  t.shape = std::move(shape);
  t.dtype = std::move(dtype);
  t.note = std::move(note);
  t.formats = std::move(formats);
  t.role = std::move(role);
  t.optional = optional;
  return t;
}
inline const std::vector<Format> kBoth = {Format::kModelSlim, Format::kCompressedTensors};
inline const std::vector<Format> kMs = {Format::kModelSlim};
inline const std::vector<Format> kCt = {Format::kCompressedTensors};
}  // namespace qconf::schemes
