// quant_model_description.json, the layer lookup and the compressed-tensors detection
// (qconf/schemes/description.h).
#include "qconf/schemes/description.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "qconf/schemes/scheme.h"

namespace qconf::schemes {

namespace fs = std::filesystem;
using nlohmann::json;

std::string desc_error_kind_name(DescErrorKind k) {
  switch (k) {
    case DescErrorKind::kMissingFile:
      return "missing_file";
    case DescErrorKind::kBadValue:
      return "bad_value";
    case DescErrorKind::kMixedShards:
      return "mixed_shards";
    case DescErrorKind::kPartialFloat:
      return "partial_float";
    case DescErrorKind::kMissingKey:
      return "missing_key";
    case DescErrorKind::kUnregistered:
      return "unregistered";
    case DescErrorKind::kUnsupportedCt:
      return "unsupported_compressed_tensors";
  }
  return "?";
}
std::string desc_error_upstream(DescErrorKind k) {
  switch (k) {
    case DescErrorKind::kMissingFile:
    case DescErrorKind::kMixedShards:
    case DescErrorKind::kPartialFloat:
      return "ValueError";
    case DescErrorKind::kMissingKey:
      return "KeyError";
    case DescErrorKind::kUnregistered:
    case DescErrorKind::kUnsupportedCt:
      return "NotImplementedError";
    case DescErrorKind::kBadValue:
      return "(later TypeError, or silently used)";
  }
  return "?";
}

DescriptionError::DescriptionError(DescErrorKind kind, std::string file, std::string key,
                                   std::string field, const std::string& what)
    : std::runtime_error(file + (key.empty() ? "" : ": key \"" + key + "\"") +
                         (field.empty() ? "" : ": " + field) + ": " + what + " [" +
                         desc_error_kind_name(kind) + "; vllm-ascend raises " +
                         desc_error_upstream(kind) + "]"),
      kind_(kind),
      file_(std::move(file)),
      key_(std::move(key)),
      field_(std::move(field)) {}

std::map<std::string, std::string> QuantDescription::globals() const {
  std::map<std::string, std::string> g;
  if (group_size) g["group_size"] = std::to_string(*group_size);
  if (fa_quant_type) g["fa_quant_type"] = *fa_quant_type;
  if (indexer_quant_type) g["indexer_quant_type"] = *indexer_quant_type;
  if (kv_cache_type) g["kv_cache_type"] = *kv_cache_type;
  if (is_rot_used) g["is_rot_used"] = *is_rot_used ? "true" : "false";
  if (max_supported_tp) g["max_supported_tp"] = std::to_string(*max_supported_tp);
  if (version) g["version"] = *version;
  if (ascend_quant_method) g["ascend_quant_method"] = *ascend_quant_method;
  if (weight_strategy) g["weight_strategy"] = *weight_strategy;
  return g;
}

namespace {
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}
std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> v;
  std::string cur;
  for (char x : s) {
    if (x == c) {
      v.push_back(cur);
      cur.clear();
    } else {
      cur += x;
    }
  }
  v.push_back(cur);
  return v;
}
std::string join(const std::vector<std::string>& v, char c) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(1, c) : "") + v[i];
  return s;
}
bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
bool starts_with(const std::string& s, const std::string& t) { return s.rfind(t, 0) == 0; }

// DeepSeek-V4 renames (present when the key "hc_head_fn" exists): whole components [inf: the
// notes list the renames, not whether they match components or substrings].
std::string deepseek_v4_rename(const std::string& k) {
  static const std::map<std::string, std::string> comp = {
      {"attn", "self_attn"}, {"ffn", "mlp"},      {"w1", "gate_proj"},      {"w2", "down_proj"},
      {"w3", "up_proj"},     {"head", "lm_head"}, {"embed", "embed_tokens"}};
  auto parts = split(k, '.');
  for (auto& p : parts)
    if (auto it = comp.find(p); it != comp.end()) p = it->second;
  return "model." + join(parts, '.');
}

template <typename T>
std::optional<T> get_typed(const json& j, const std::string& key, const std::string& file,
                           const char* expected) {
  if (!j.contains(key)) return std::nullopt;
  const json& v = j[key];
  if (v.is_null()) return std::nullopt;
  bool ok = false;
  if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
  if constexpr (std::is_same_v<T, int64_t>) ok = v.is_number_integer();
  if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
  if (!ok)
    throw DescriptionError(DescErrorKind::kBadValue, file, key, "value",
                           std::string("expected ") + expected + ", got " + v.dump());
  return v.get<T>();
}

const std::set<std::string>& global_keys() {
  static const std::set<std::string> k = {
      "group_size",      "fa_quant_type",       "indexer_quant_type",
      "kv_cache_type",   "is_rot_used",         "max_supported_tp",
      "version",         "ascend_quant_method", "weight_strategy",
      "model_quant_type"};
  return k;
}
}  // namespace

QuantDescription parse_description(const json& j, const std::string& file,
                                   const std::string& model_type) {
  if (!j.is_object())
    throw DescriptionError(DescErrorKind::kBadValue, file, "", "top level",
                           "expected a JSON object {tensor name: quant type, global keys...}");
  QuantDescription d;
  d.file = file;
  d.model_type = model_type;
  d.group_size = get_typed<int64_t>(j, "group_size", file, "an integer");
  d.fa_quant_type = get_typed<std::string>(j, "fa_quant_type", file, "a string");
  d.indexer_quant_type = get_typed<std::string>(j, "indexer_quant_type", file, "a string");
  d.kv_cache_type = get_typed<std::string>(j, "kv_cache_type", file, "a string");
  d.is_rot_used = get_typed<bool>(j, "is_rot_used", file, "true or false");
  d.max_supported_tp = get_typed<int64_t>(j, "max_supported_tp", file, "an integer");
  d.version = get_typed<std::string>(j, "version", file, "a string");
  d.ascend_quant_method = get_typed<std::string>(j, "ascend_quant_method", file, "a string");
  d.weight_strategy = get_typed<std::string>(j, "weight_strategy", file, "a string");
  if (d.kv_cache_type && *d.kv_cache_type != "C8")
    throw DescriptionError(DescErrorKind::kBadValue, file, "kv_cache_type", "value",
                           "expected \"C8\" (the only KV cache type vllm-ascend builds), got \"" +
                               *d.kv_cache_type + "\"");
  if (d.group_size && *d.group_size < 0)
    throw DescriptionError(DescErrorKind::kBadValue, file, "group_size", "value",
                           "expected >= 0, got " + std::to_string(*d.group_size));
  std::map<std::string, std::string> types;
  for (const auto& [k, v] : j.items()) {
    if (global_keys().count(k)) continue;
    if (ends_with(k, ".indexer.quant_type")) {
      if (!v.is_string())
        throw DescriptionError(DescErrorKind::kBadValue, file, k, "value",
                               "expected a quant type string, got " + v.dump());
      d.indexer_layers[k] = v.get<std::string>();
      continue;
    }
    if (!v.is_string()) {
      d.other_keys.push_back(k);
      continue;
    }
    types[k] = v.get<std::string>();
  }
  // DeepSeek-V4: every key renamed (hc_head_fn marks the format).
  if (types.count("hc_head_fn")) {
    std::map<std::string, std::string> renamed;
    for (const auto& [k, v] : types) renamed[deepseek_v4_rename(k)] = v;
    types = std::move(renamed);
  }
  // _apply_extra_quant_adaptations: the rewritten keys are added next to the originals.
  std::map<std::string, std::string> extra;
  for (const auto& [k, v] : types) {
    if (k.find("transformer.shared_head.output.") != std::string::npos)
      extra.emplace(replace_all(k, "transformer.shared_head.output.", "shared_head.head."), k);
    if (k.find("shared_head") != std::string::npos)
      extra.emplace(replace_all(k, ".shared_head.", "."), k);
    if (k.find("weight_packed") != std::string::npos)
      extra.emplace(replace_all(k, "weight_packed", "weight"), k);
  }
  for (const auto& [nk, ok] : extra) {
    if (nk == ok) continue;
    if (!types.count(nk)) d.added[nk] = ok;
    types[nk] = types.at(ok);  // dict.update: the rewritten key wins
  }
  d.types = std::move(types);
  return d;
}

QuantDescription load_description(const std::string& dir, const std::string& model_type) {
  const fs::path p = fs::path(dir) / "quant_model_description.json";
  if (!fs::is_regular_file(p)) {
    std::vector<std::string> names;
    std::error_code ec;
    if (fs::is_directory(dir, ec))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".json") names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw DescriptionError(DescErrorKind::kMissingFile, p.string(), "", "",
                           "no ModelSlim quant_model_description.json (JSON files present: " +
                               (list.empty() ? std::string("none") : list) +
                               "); a float model needs no --quantization ascend");
  }
  std::ifstream in(p);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw DescriptionError(DescErrorKind::kBadValue, p.string(), "", "JSON",
                           std::string("not valid JSON: ") + e.what());
  }
  return parse_description(j, p.string(), model_type);
}

// ---- lookup ---------------------------------------------------------------------------------
PackedMapping full_packed_mapping() {
  return {{"qkv_proj", {"q_proj", "k_proj", "v_proj"}},
          {"gate_up_proj", {"gate_proj", "up_proj"}},
          {"fused_qkv_a_proj", {"q_a_proj", "kv_a_proj_with_mqa"}},
          {"experts", {"experts.0.gate_proj", "experts.0.up_proj", "experts.0.down_proj"}}};
}

PackedMapping packed_mapping_for(const std::string& model_type) {
  const PackedMapping qkv = {{"qkv_proj", {"q_proj", "k_proj", "v_proj"}}};
  const std::vector<std::string> ex = {"experts.0.gate_proj", "experts.0.up_proj",
                                       "experts.0.down_proj"};
  static const std::set<std::string> mla = {
      "deepseek_v2",   "deepseek_v3",     "deepseek_v32",
      "kimi_k2",       "pangu_ultra_moe", "glm_moe_dsa",
      "glm4_moe_lite", "longcat_flash",   "pangu_ultra_moe_mtp"};
  static const std::set<std::string> qkv_moe = {"qwen3_moe", "qwen3_vl_moe", "glm4_moe",
                                                "qwen3_omni_moe_text", "qwen3_next"};
  if (mla.count(model_type))
    return {{"gate_up_proj", {"gate_proj", "up_proj"}},
            {"experts", ex},
            {"fused_qkv_a_proj", {"q_a_proj", "kv_a_proj_with_mqa"}}};
  if (model_type == "deepseek_mtp")
    return {{"gate_up_proj", {"gate_proj", "up_proj"}}, {"experts", ex}};
  if (qkv_moe.count(model_type))
    return {{"qkv_proj", {"q_proj", "k_proj", "v_proj"}},
            {"gate_up_proj", {"gate_proj", "up_proj"}},
            {"experts", ex}};
  if (model_type == "minimax_m2")
    return {{"qkv_proj", {"q_proj", "k_proj", "v_proj"}},
            {"experts", {"experts.0.w1", "experts.0.w2", "experts.0.w3"}}};
  // vLLM's llama-like model classes declare these two [inf].
  PackedMapping m = qkv;
  m["gate_up_proj"] = {"gate_proj", "up_proj"};
  return m;
}

std::string skip_rule_name(SkipRule r) {
  return r == SkipRule::kVllmAscendPrefix ? "vllm_ascend_prefix" : "exact_component";
}
SkipRule parse_skip_rule(const std::string& s) {
  if (s == "vllm_ascend_prefix") return SkipRule::kVllmAscendPrefix;
  if (s == "exact_component") return SkipRule::kExactComponent;
  throw std::invalid_argument("skip_rule: expected vllm_ascend_prefix or exact_component, got \"" +
                              s + "\"");
}

namespace {
// The first key that makes the non-fused layer FLOAT under `rule` ("" when none).
std::string float_key(const QuantDescription& d, const std::string& prefix, SkipRule rule) {
  for (const auto& [k, v] : d.types) {
    if (v != "FLOAT" || !ends_with(k, ".weight")) continue;
    if (rule == SkipRule::kVllmAscendPrefix
            ? starts_with(k, prefix)
            : (k == prefix + ".weight" || starts_with(k, prefix + ".")))
      return k;
  }
  return "";
}
const std::string& at_key(const QuantDescription& d, const std::string& key,
                          const std::string& prefix) {
  auto it = d.types.find(key);
  if (it == d.types.end())
    throw DescriptionError(DescErrorKind::kMissingKey, d.file, key, "layer " + prefix,
                           "the description has no entry for this tensor, and vllm-ascend looks "
                           "it up to choose the scheme of layer " +
                               prefix);
  return it->second;
}
}  // namespace

LayerLookup lookup_layer(const QuantDescription& d, const std::string& prefix,
                         const std::string& layer_type, const PackedMapping& mapping,
                         SkipRule rule) {
  LayerLookup r;
  r.prefix = prefix;
  r.layer_type = layer_type;
  const std::string proj = split(prefix, '.').back();
  auto fused = mapping.find(proj);
  std::vector<std::string> shard_keys;
  if (fused != mapping.end()) {
    r.fused = true;
    // prefix.replace(proj, shard): Python's str.replace replaces every occurrence.
    for (const auto& s : fused->second)
      shard_keys.push_back(replace_all(prefix, proj, s) + ".weight");
  }
  if (layer_type != "attention" && layer_type != "kv_cache") {
    if (r.fused) {
      std::optional<bool> skipped;
      std::string first;
      for (const auto& k : shard_keys) {
        r.keys.push_back(k);
        const bool s = at_key(d, k, prefix) == "FLOAT";
        if (!skipped) {
          skipped = s;
          first = k;
        } else if (*skipped != s) {
          throw DescriptionError(
              DescErrorKind::kPartialFloat, d.file, k, "layer " + prefix,
              "fused layer " + prefix + " has some shards FLOAT and some quantized (" + first +
                  " is " + d.types.at(first) + ", " + k + " is " + d.types.at(k) +
                  "); all shards of a fused layer must have the same precision");
        }
      }
      r.skipped = *skipped;
    } else {
      const std::string a = float_key(d, prefix, SkipRule::kVllmAscendPrefix);
      const std::string b = float_key(d, prefix, SkipRule::kExactComponent);
      r.prefix_gotcha = a.empty() != b.empty();
      r.gotcha_key = r.prefix_gotcha ? (a.empty() ? b : a) : "";
      r.skipped = !(rule == SkipRule::kVllmAscendPrefix ? a : b).empty();
      if (r.skipped) r.keys.push_back(rule == SkipRule::kVllmAscendPrefix ? a : b);
    }
    if (r.skipped) return r;
  }
  if (layer_type == "attention" && d.fa_quant_type) {
    r.quant_type = *d.fa_quant_type;
    r.keys.push_back("fa_quant_type");
  } else if (layer_type == "kv_cache") {
    if (!d.kv_cache_type)
      throw DescriptionError(DescErrorKind::kMissingKey, d.file, "kv_cache_type", "layer " + prefix,
                             "layer has kv_cache_scale tensors but the description has no "
                             "kv_cache_type");
    r.quant_type = *d.kv_cache_type;
    r.keys.push_back("kv_cache_type");
  } else if (r.fused) {
    std::string first;
    for (const auto& k : shard_keys) {
      const std::string& t = at_key(d, k, prefix);
      if (r.quant_type.empty()) {
        r.quant_type = t;
        first = k;
      } else if (t != r.quant_type) {
        throw DescriptionError(DescErrorKind::kMixedShards, d.file, k, "layer " + prefix,
                               "shards of fused layer " + prefix + " disagree: " + first + " is " +
                                   r.quant_type + ", " + k + " is " + t +
                                   " (all shards need the same quant type)");
      }
    }
  } else {
    r.keys.push_back(prefix + ".weight");
    r.quant_type = at_key(d, prefix + ".weight", prefix);
  }
  if (!SchemeRegistry::instance().find(r.quant_type, layer_type)) {
    auto lts = SchemeRegistry::instance().layer_types_of(r.quant_type);
    std::string have;
    for (const auto& l : lts) have += (have.empty() ? "" : ", ") + l;
    throw DescriptionError(
        DescErrorKind::kUnregistered, d.file, r.keys.empty() ? "" : r.keys[0], "layer " + prefix,
        "no scheme is registered for (" + r.quant_type + ", " + layer_type + ")" +
            (lts.empty() ? std::string(": unknown quant type")
                         : ": " + r.quant_type + " exists for " + have) +
            " (see `qconf list schemes`)");
  }
  return r;
}

// ---- compressed-tensors ---------------------------------------------------------------------
namespace {
struct Args {
  bool present = false;
  int64_t bits = 0;
  std::string type = "int", strategy;
  bool symmetric = true, dynamic = false;
  std::optional<int64_t> group_size;
};
Args read_args(const json& g, const std::string& key, const std::string& file,
               const std::string& group) {
  Args a;
  if (!g.contains(key) || g[key].is_null()) return a;
  const json& v = g[key];
  const std::string where = "config_groups." + group + "." + key;
  if (!v.is_object())
    throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config", where,
                           "expected an object, got " + v.dump());
  a.present = true;
  auto need = [&](const char* f) -> const json& {
    if (!v.contains(f))
      throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config", where + "." + f,
                             "missing");
    return v[f];
  };
  if (!need("num_bits").is_number_integer())
    throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config",
                           where + ".num_bits", "expected an integer");
  a.bits = v["num_bits"].get<int64_t>();
  if (v.contains("type") && v["type"].is_string()) a.type = v["type"].get<std::string>();
  if (!need("strategy").is_string())
    throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config",
                           where + ".strategy", "expected a string");
  a.strategy = v["strategy"].get<std::string>();
  if (v.contains("symmetric") && v["symmetric"].is_boolean())
    a.symmetric = v["symmetric"].get<bool>();
  if (v.contains("dynamic") && v["dynamic"].is_boolean()) a.dynamic = v["dynamic"].get<bool>();
  if (v.contains("group_size") && v["group_size"].is_number_integer())
    a.group_size = v["group_size"].get<int64_t>();
  return a;
}
}  // namespace

CtConfig parse_ct_config(const json& qc, const std::string& file) {
  CtConfig c;
  c.file = file;
  if (!qc.is_object())
    throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config", "",
                           "expected an object");
  if (qc.contains("format") && qc["format"].is_string()) c.format = qc["format"].get<std::string>();
  if (qc.contains("ignore")) {
    if (!qc["ignore"].is_array())
      throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config", "ignore",
                             "expected an array of names / \"re:\" patterns");
    for (const auto& x : qc["ignore"]) c.ignore.push_back(x.get<std::string>());
  }
  if (!qc.contains("config_groups") || !qc["config_groups"].is_object())
    throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config", "config_groups",
                           "missing (expected {group: {targets, weights, input_activations}})");
  for (const auto& [name, g] : qc["config_groups"].items()) {
    CtGroup grp;
    grp.name = name;
    if (!g.is_object() || !g.contains("targets") || !g["targets"].is_array())
      throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config",
                             "config_groups." + name + ".targets", "expected an array");
    for (const auto& t : g["targets"]) grp.targets.push_back(t.get<std::string>());
    const Args w = read_args(g, "weights", file, name);
    const Args a = read_args(g, "input_activations", file, name);
    if (!w.present)
      throw DescriptionError(DescErrorKind::kBadValue, file, "quantization_config",
                             "config_groups." + name + ".weights", "missing");
    grp.weight_bits = w.bits;
    grp.weight_type = w.type;
    grp.weight_strategy = w.strategy;
    grp.group_size = w.group_size;
    grp.weight_symmetric = w.symmetric;
    grp.has_activations = a.present;
    // Detection order (notes §D, compressed_tensors_config.py).
    if (a.present && !a.dynamic && a.strategy == "tensor" && a.symmetric && a.bits == 8 &&
        w.bits == 8 && w.strategy == "channel") {
      grp.quant_type = "W8A8";
      grp.why = "static per-tensor symmetric 8-bit activations, per-channel 8-bit weights";
    } else if (a.present && a.dynamic && a.strategy == "token" && w.strategy == "channel" &&
               a.bits == 8 && w.bits == 8) {
      const bool fp = w.type == "float" && a.type == "float";
      grp.quant_type = fp ? "W8A8FP8_DYNAMIC" : "W8A8_DYNAMIC";
      grp.why = std::string("dynamic per-token activations, per-channel weights") +
                (fp ? ", both float" : "");
    } else if (a.present && a.dynamic && a.strategy == "token" && a.bits == 8 && w.bits == 4 &&
               (w.strategy == "channel" || w.strategy == "group")) {
      grp.quant_type = "W4A8_DYNAMIC";
      grp.why = "4-bit weights (" + w.strategy + "), 8-bit dynamic per-token activations";
      c.description_side_effects["group_size"] = std::to_string(w.group_size.value_or(0));
      c.description_side_effects["version"] = "0";
      c.description_side_effects["ascend_quant_method"] = "compressed-tensors";
      c.description_side_effects["weight_strategy"] = w.strategy;
    } else if (!a.present && w.bits == 4 && w.type == "int" && w.strategy == "group" &&
               !w.dynamic) {
      grp.quant_type = "W4A16";
      grp.why = "4-bit int group weights, static, no activation quantization";
    } else {
      throw DescriptionError(
          DescErrorKind::kUnsupportedCt, file, "quantization_config", "config_groups." + name,
          "no Ascend scheme matches weights {num_bits " + std::to_string(w.bits) + ", type " +
              w.type + ", strategy " + w.strategy + "}" +
              (a.present
                   ? ", input_activations {num_bits " + std::to_string(a.bits) + ", strategy " +
                         a.strategy + ", dynamic " + (a.dynamic ? "true" : "false") + "}"
                   : std::string(", no activation quantization")) +
              " (supported: W8A8, W8A8_DYNAMIC, W8A8FP8_DYNAMIC, W4A8_DYNAMIC, W4A16)");
    }
    c.groups.push_back(std::move(grp));
  }
  return c;
}

namespace {
bool ct_match(const std::string& target, const std::string& name, const std::string& layer_type) {
  if (starts_with(target, "re:")) {
    try {
      return std::regex_search(name, std::regex(target.substr(3)),
                               std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      return false;
    }
  }
  if (target == "Linear") return layer_type == "linear" || layer_type == "moe";
  return target == name;
}
}  // namespace

std::optional<std::string> ct_scheme_for_layer(const CtConfig& c, const std::string& prefix,
                                               const std::string& layer_type,
                                               std::string* matched_group) {
  const std::string name = layer_type == "moe" ? prefix + ".0.gate_proj" : prefix;
  for (const auto& ig : c.ignore)
    if (ct_match(ig, name, "") || ct_match(ig, prefix, "")) return std::nullopt;
  for (const auto& g : c.groups)
    for (const auto& t : g.targets)
      if (ct_match(t, name, layer_type)) {
        if (matched_group) *matched_group = g.name;
        return g.quant_type;
      }
  return std::nullopt;
}

}  // namespace qconf::schemes
