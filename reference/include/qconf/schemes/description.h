// What decides the scheme of every layer: ModelSlim's quant_model_description.json (every key
// vllm-ascend reads, its key rewriting, the layer lookup with packed-module mapping and the
// expert-0 rule, its errors, the prefix-match skip rule) and compressed-tensors'
// config.json quantization_config (the detection rules).
//
// Sources: notes/vllm_ascend_quant.md §B (modelslim_config.py), §D (compressed_tensors_config.py);
// vllm-ascend modelslim_config.py get_linear_quant_type / is_layer_skipped_ascend [code].
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qconf::schemes {

// The errors vllm-ascend raises while choosing schemes, with the same meaning.
enum class DescErrorKind {
  kMissingFile,    // ValueError: quant_model_description.json not found
  kBadValue,       // a key whose value has the wrong JSON type (vllm-ascend fails later, or not)
  kMixedShards,    // ValueError: "Not all shards of {prefix} are quantized with same quant type"
  kPartialFloat,   // ValueError: "Detected some but not all shards of {prefix} are quantized"
  kMissingKey,     // KeyError: quant_description[prefix + ".weight"]
  kUnregistered,   // NotImplementedError: no scheme for (quant_type, layer_type)
  kUnsupportedCt,  // NotImplementedError: compressed-tensors scheme not detected
};
std::string desc_error_kind_name(DescErrorKind k);  // "mixed_shards", ...
std::string desc_error_upstream(DescErrorKind k);   // "ValueError", "KeyError", ...

class DescriptionError : public std::runtime_error {
 public:
  DescriptionError(DescErrorKind kind, std::string file, std::string key, std::string field,
                   const std::string& what);
  DescErrorKind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::string& key() const { return key_; }
  const std::string& field() const { return field_; }

 private:
  DescErrorKind kind_;
  std::string file_, key_, field_;
};

// quant_model_description.json, parsed.
struct QuantDescription {
  std::string file;
  std::string model_type;
  // Tensor name -> quant type string ("W8A8_DYNAMIC", "FLOAT", ...), after rewriting. Keys added
  // by the rewriting are listed in `added` (new key -> the original key).
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> added;
  // The global keys vllm-ascend reads (absent: nullopt).
  std::optional<int64_t> group_size;              // W4A8: 0 or absent; MX: default 32; W4A16: 32
  std::optional<std::string> fa_quant_type;       // "FAKQuant" (attention scheme)
  std::optional<std::string> indexer_quant_type;  // "INT8_DYNAMIC" (DSA indexer)
  std::optional<std::string> kv_cache_type;       // "C8"
  std::optional<bool> is_rot_used;
  std::optional<int64_t> max_supported_tp;
  std::optional<std::string> version;  // no longer read (before efda0446: "1.0.0" = new W4A8)
  std::optional<std::string> ascend_quant_method;     // "compressed-tensors" (set by that path)
  std::optional<std::string> weight_strategy;         // set by the compressed-tensors W4A8 path
  std::map<std::string, std::string> indexer_layers;  // "{prefix}.indexer.quant_type" -> value
  std::vector<std::string> other_keys;  // non-string values nobody reads (kept, reported)
  // The global keys as strings (for listings and scheme checks).
  std::map<std::string, std::string> globals() const;
};

// Parses the JSON object; `model_type` selects the DeepSeek-V4 / per-model renames.
QuantDescription parse_description(const nlohmann::json& j, const std::string& file,
                                   const std::string& model_type = "");
// Loads DIR/quant_model_description.json; a missing file is kMissingFile listing the JSON files
// present, as vllm-ascend's message does.
QuantDescription load_description(const std::string& dir, const std::string& model_type = "");

// ---- layer lookup -----------------------------------------------------------------------------
// packed_modules_model_mapping: fused module -> its shards.
using PackedMapping = std::map<std::string, std::vector<std::string>>;
// The table vllm-ascend keeps per model_type; unknown model types get the mapping vLLM's
// llama-like model classes declare (qkv_proj, gate_up_proj) [inf: vLLM's own per-model mapping].
PackedMapping packed_mapping_for(const std::string& model_type);
// qkv_proj, gate_up_proj, fused_qkv_a_proj and experts (expert 0 decides).
PackedMapping full_packed_mapping();

// How a non-fused layer is found to be FLOAT (skipped).
enum class SkipRule {
  // "vllm_ascend_prefix": any key that startswith(prefix), endswith(".weight") and is FLOAT;
  // reproduces vllm-ascend, including the gotcha (prefix "layers.1" also matches "layers.10",
  // "mlp.gate" matches "mlp.gate_proj").
  kVllmAscendPrefix,
  // "exact_component": the key prefix + ".weight", or a key below prefix + ".", is FLOAT.
  kExactComponent,
};
std::string skip_rule_name(SkipRule r);
SkipRule parse_skip_rule(const std::string& s);

struct LayerLookup {
  std::string prefix, layer_type;
  bool skipped = false;           // FLOAT: unquantized method
  std::string quant_type;         // when not skipped
  std::vector<std::string> keys;  // the description keys consulted
  bool fused = false;
  // The two skip rules disagree for this layer: the key that makes the prefix rule differ.
  bool prefix_gotcha = false;
  std::string gotcha_key;
};
// get_quant_method for one layer: skip test, then the quant type (fa_quant_type for attention;
// shards of a fused layer must agree; prefix + ".weight" otherwise), then the registry.
// Throws DescriptionError (kMixedShards, kPartialFloat, kMissingKey, kUnregistered).
LayerLookup lookup_layer(const QuantDescription& d, const std::string& prefix,
                         const std::string& layer_type, const PackedMapping& mapping,
                         SkipRule rule = SkipRule::kVllmAscendPrefix);

// ---- compressed-tensors (config.json "quantization_config") -------------------------------------
struct CtGroup {
  std::string name;  // "group_0"
  std::vector<std::string> targets;
  std::string quant_type;  // detected scheme
  int64_t weight_bits = 0;
  std::string weight_type, weight_strategy;  // "int"/"float", "channel"/"group"/"tensor"
  std::optional<int64_t> group_size;
  bool weight_symmetric = true;
  bool has_activations = false;
  std::string why;  // which detection rule matched
};
struct CtConfig {
  std::string file;
  std::string format;
  std::vector<CtGroup> groups;
  std::vector<std::string> ignore;
  // What the W4A8 detection writes into the description dict (group_size, version="0",
  // ascend_quant_method, weight_strategy).
  std::map<std::string, std::string> description_side_effects;
};
// Detects the scheme of every config group (notes §D order); an unsupported group is
// kUnsupportedCt naming the group and field.
CtConfig parse_ct_config(const nlohmann::json& quantization_config, const std::string& file);
// The detected scheme of one layer, or nullopt when it is ignored / matches no target. MoE
// layers are looked up as prefix + ".0.gate_proj" (compressed_tensors_config.py).
// Target matching: exact name, "re:" regex (re.match, anchored at the start), or the class name
// "Linear" (which Ascend also maps to the routed experts).
std::optional<std::string> ct_scheme_for_layer(const CtConfig& c, const std::string& prefix,
                                               const std::string& layer_type,
                                               std::string* matched_group = nullptr);

}  // namespace qconf::schemes
