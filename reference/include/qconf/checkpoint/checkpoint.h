// A quantized checkpoint directory: its format (ModelSlim quant_model_description.json, or
// compressed-tensors config.json quantization_config), its tensors, the scheme of every layer and
// the validation of every tensor against the scheme's declarations (qconf/schemes/scheme.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qconf/checkpoint/safetensors.h"
#include "qconf/schemes/description.h"
#include "qconf/schemes/scheme.h"

namespace qconf::ckpt {

struct CheckpointOptions {
  schemes::SkipRule skip_rule = schemes::SkipRule::kVllmAscendPrefix;
  std::string params_dtype;  // "BF16" | "F16"; empty: config.json torch_dtype, else BF16
  int64_t tp = 1;
  std::string model_type;  // empty: config.json model_type
};

struct Checkpoint {
  std::string dir;
  schemes::Format format = schemes::Format::kModelSlim;
  std::string model_type;
  std::string params_dtype = "BF16";
  std::string params_dtype_source;        // "config.json torch_dtype", "--params-dtype", "default"
  schemes::QuantDescription description;  // ModelSlim (for compressed-tensors: side effects only)
  std::optional<schemes::CtConfig> ct;
  CheckpointTensors tensors;
};
// Opens the directory: detects the format, parses the description / config and every
// safetensors header. Throws CheckpointError / schemes::DescriptionError.
Checkpoint open_checkpoint(const std::string& dir, const CheckpointOptions& opts);

// One validated tensor of a layer.
struct TensorCheck {
  std::string name;
  std::string declared;  // "I8 [N, K]"
  std::string found;     // "I8 [256, 512]" or "missing"
  bool ok = true;
};

struct LayerReport {
  std::string prefix;
  std::string layer_type;           // linear | moe | attention | kv_cache
  std::string quant_type;           // "FLOAT" when skipped
  std::vector<std::string> shards;  // fused layers: the shard prefixes
  int64_t experts = 0;              // MoE
  std::vector<TensorCheck> tensors;
  std::map<std::string, int64_t> symbols;  // N, K, ... as inferred from the tensors
  std::vector<std::string> problems;
  std::vector<std::string> notes;
  std::string pipeline_op;  // the conformance op that runs it ("" when not implemented)
  std::vector<std::string> needs;
  bool ok() const { return problems.empty(); }
};

struct CheckpointReport {
  std::string dir;
  std::string format;
  std::string model_type, params_dtype, params_dtype_source;
  std::string skip_rule;
  std::vector<std::string> problems;  // not tied to one layer (malformed files, orphan keys)
  std::vector<LayerReport> layers;
  bool ok() const;
  std::string text() const;  // the human-readable report
};

// Opens and validates; a malformed file becomes a report problem (never an exception).
CheckpointReport validate_checkpoint(const std::string& dir, const CheckpointOptions& opts);
CheckpointReport validate_checkpoint(const Checkpoint& c, const CheckpointOptions& opts);

// The layer report of one prefix (nullptr when the checkpoint has no such layer).
const LayerReport* find_layer(const CheckpointReport& r, const std::string& prefix);

// The tensor a params-dtype parameter holds after loading: the checkpoint float (F32, BF16 or
// F16) rounded once to `pdt` (RNE), as param.data.copy_ does.
Tensor to_params_dtype(const Tensor& t, DType pdt);
DType params_dtype_of(const std::string& st_pdt);  // "BF16" -> kBF16, "F16" -> kF16

}  // namespace qconf::ckpt
