// Checkpoint directories: format detection, layer enumeration, validation against the scheme
// declarations (qconf/checkpoint/checkpoint.h).
#include "qconf/checkpoint/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "qconf/numeric/float_format.h"
#include "qconf/ops/scales.h"

namespace qconf::ckpt {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace schemes;

namespace {
bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
std::string strip(const std::string& s, const std::string& suffix) {
  return s.substr(0, s.size() - suffix.size());
}
std::string last_component(const std::string& p) {
  auto pos = p.rfind('.');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}
std::string join_shape(const std::vector<std::string>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + s[i];
  return r + "]";
}
json read_json(const fs::path& p) {
  std::ifstream in(p);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw CheckpointError(p.string(), "", "", std::string("not valid JSON: ") + e.what());
  }
}
}  // namespace

DType params_dtype_of(const std::string& s) { return s == "F16" ? DType::kF16 : DType::kBF16; }

Tensor to_params_dtype(const Tensor& t, DType pdt) {
  if (t.dtype() == pdt) return t;
  if (t.dtype() == DType::kF32) return ref::load_scale_to_params_dtype(t, pdt);
  if (t.dtype() == DType::kF16 || t.dtype() == DType::kBF16) {
    // Widen exactly to fp32, then one RNE rounding to pdt.
    Tensor w(DType::kF32, t.shape());
    auto* o = w.data<uint32_t>();
    const auto* in = t.data<uint16_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
      o[i] = num::f32_bits(t.dtype() == DType::kF16 ? num::f16_to_f32(in[i])
                                                    : num::bf16_to_f32(in[i]));
    return ref::load_scale_to_params_dtype(w, pdt);
  }
  throw std::invalid_argument("to_params_dtype: " + t.describe() + " is not a float tensor");
}

Checkpoint open_checkpoint(const std::string& dir, const CheckpointOptions& opts) {
  Checkpoint c;
  c.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw CheckpointError(dir, "", "", "not a directory");
  json config = json::object();
  const fs::path cfg = fs::path(dir) / "config.json";
  if (fs::exists(cfg)) config = read_json(cfg);
  c.model_type = !opts.model_type.empty() ? opts.model_type
                 : (config.contains("model_type") && config["model_type"].is_string())
                     ? config["model_type"].get<std::string>()
                     : "";
  c.params_dtype = "BF16";
  c.params_dtype_source = "default (no config.json torch_dtype)";
  for (const char* key : {"torch_dtype", "dtype"})
    if (config.contains(key) && config[key].is_string()) {
      const std::string v = config[key].get<std::string>();
      if (v == "float16" || v == "bfloat16") {
        c.params_dtype = v == "float16" ? "F16" : "BF16";
        c.params_dtype_source = std::string("config.json ") + key;
        break;
      }
    }
  if (!opts.params_dtype.empty()) {
    c.params_dtype = opts.params_dtype;
    c.params_dtype_source = "--params-dtype";
  }
  const bool has_desc = fs::exists(fs::path(dir) / "quant_model_description.json");
  const bool ct = config.contains("quantization_config") &&
                  config["quantization_config"].is_object() &&
                  config["quantization_config"].value("quant_method", "") == "compressed-tensors";
  // utils.detect_quantization_method: the ModelSlim file first, then compressed-tensors.
  if (has_desc) {
    c.format = Format::kModelSlim;
    c.description = load_description(dir, c.model_type);
  } else if (ct) {
    c.format = Format::kCompressedTensors;
    c.ct = parse_ct_config(config["quantization_config"], cfg.string());
    c.description.file = cfg.string();
    for (const auto& [k, v] : c.ct->description_side_effects) {
      if (k == "group_size") c.description.group_size = std::stoll(v);
      if (k == "version") c.description.version = v;
      if (k == "ascend_quant_method") c.description.ascend_quant_method = v;
      if (k == "weight_strategy") c.description.weight_strategy = v;
    }
  } else {
    load_description(dir, c.model_type);  // throws kMissingFile with the JSON files present
  }
  c.tensors = CheckpointTensors::open(dir);
  return c;
}

bool CheckpointReport::ok() const {
  if (!problems.empty()) return false;
  for (const auto& l : layers)
    if (!l.ok()) return false;
  return true;
}

const LayerReport* find_layer(const CheckpointReport& r, const std::string& prefix) {
  for (const auto& l : r.layers)
    if (l.prefix == prefix) return &l;
  return nullptr;
}

std::string CheckpointReport::text() const {
  std::ostringstream o;
  o << "checkpoint " << dir << "\n  format " << format;
  if (!model_type.empty()) o << ", model_type " << model_type;
  o << ", params dtype " << params_dtype << " (" << params_dtype_source << "), skip rule "
    << skip_rule << "\n";
  for (const auto& p : problems) o << "  PROBLEM " << p << "\n";
  size_t bad = 0;
  for (const auto& l : layers) {
    bad += !l.ok();
    o << "  " << (l.ok() ? "ok      " : "PROBLEM ") << l.prefix << "  " << l.layer_type << "  "
      << l.quant_type;
    if (l.experts) o << "  (" << l.experts << " experts)";
    if (!l.shards.empty()) o << "  (fused: " << l.shards.size() << " shards)";
    if (l.quant_type != "FLOAT")
      o << "  pipeline: " << (l.pipeline_op.empty() ? "not implemented yet" : l.pipeline_op);
    o << "\n";
    for (const auto& p : l.problems) o << "      problem: " << p << "\n";
    for (const auto& n : l.notes) o << "      note: " << n << "\n";
  }
  o << "  " << layers.size() << " layers, " << bad << " with problems, " << problems.size()
    << " checkpoint problems: " << (ok() ? "OK" : "FAIL") << "\n";
  return o.str();
}

namespace {
struct Binder {
  std::map<std::string, int64_t> syms;
  std::map<std::string, std::string> bound_by;
};

// Validates the declared tensors of one (sub)prefix. `role` selects MoE projection decls.
void check_tensors(const Checkpoint& c, const SchemeDef& s, const std::string& prefix,
                   const std::string& role, Binder& b, LayerReport& rep,
                   std::set<std::string>& used) {
  for (const TensorDecl& d : s.tensors) {
    if (d.role != role) continue;
    bool fmt = false;
    for (Format f : d.formats) fmt |= f == c.format;
    if (!fmt) continue;
    const std::string name = prefix + "." + d.suffix;
    const auto accepted = d.dtype.accepted(c.params_dtype);
    TensorCheck tc;
    tc.name = name;
    tc.declared = d.dtype.describe() + " " + join_shape(d.shape);
    const TensorInfo* t = c.tensors.find(name);
    if (!t) {
      tc.found = "missing";
      tc.ok = d.optional;
      if (!d.optional)
        rep.problems.push_back("tensor " + name + " is missing: scheme " + s.quant_type + "/" +
                               s.layer_type + " declares " + d.suffix + " as " + tc.declared);
      rep.tensors.push_back(tc);
      continue;
    }
    used.insert(name);
    tc.found = t->st_dtype + " " + shape_str(t->shape);
    bool dt_ok = false;
    for (const auto& a : accepted) dt_ok |= a == t->st_dtype;
    if (!dt_ok) {
      tc.ok = false;
      rep.problems.push_back(
          t->file + ": tensor " + name + ": dtype is " + t->st_dtype + ", scheme " + s.quant_type +
          " declares " + d.suffix + " as " + d.dtype.describe() +
          (d.dtype.kind == DTypeRule::Kind::kByParams ? " (params dtype " + c.params_dtype + ")"
                                                      : ""));
    }
    if (t->shape.size() != d.shape.size()) {
      tc.ok = false;
      rep.problems.push_back(t->file + ": tensor " + name + ": shape " + shape_str(t->shape) +
                             " has rank " + std::to_string(t->shape.size()) + ", expected " +
                             join_shape(d.shape));
      rep.tensors.push_back(tc);
      continue;
    }
    for (size_t i = 0; i < d.shape.size(); ++i) {
      const std::string& f = d.shape[i];
      const int64_t actual = t->shape[i];
      FormulaResult r = eval_formula(f, b.syms);
      if (!r.value && !r.unbound.empty()) {
        if (auto sol = solve_formula(f, actual, b.syms)) {
          b.syms[sol->first] = sol->second;
          b.bound_by[sol->first] = name + " dim " + std::to_string(i);
          r = eval_formula(f, b.syms);
        }
      }
      if (!r.value) {
        tc.ok = false;
        rep.problems.push_back(t->file + ": tensor " + name + ": shape dim " + std::to_string(i) +
                               " (" + f +
                               "): " + (r.error.empty() ? "cannot infer " + r.unbound : r.error));
        continue;
      }
      if (*r.value != actual) {
        tc.ok = false;
        std::string why;
        for (const auto& [sym, v] : b.syms)
          if (f.find(sym) != std::string::npos && b.bound_by.count(sym))
            why += (why.empty() ? "; " : ", ") + sym + " = " + std::to_string(v) + " from " +
                   b.bound_by[sym];
        rep.problems.push_back(t->file + ": tensor " + name + ": shape " + shape_str(t->shape) +
                               " dim " + std::to_string(i) + " is " + std::to_string(actual) +
                               ", scheme " + s.quant_type + " declares " + f + " = " +
                               std::to_string(*r.value) + why);
      }
    }
    rep.tensors.push_back(tc);
  }
}

void finish_layer(const Checkpoint& c, const SchemeDef& s, Binder& b, LayerReport& rep) {
  LayerContext ctx;
  ctx.prefix = rep.prefix;
  ctx.layer_type = rep.layer_type;
  ctx.format = c.format;
  ctx.params_dtype = c.params_dtype;
  ctx.symbols = b.syms;
  ctx.description = c.description.globals();
  for (const auto& chk : s.checks)
    for (auto& p : chk(ctx)) rep.problems.push_back(p);
  for (const auto& [k, v] : b.syms)
    if (k != "tp" && k != "g") rep.symbols[k] = v;
  rep.pipeline_op = s.pipeline_op;
  rep.needs = s.needs;
}

struct LayerPlan {
  std::string prefix, layer_type;
  std::vector<std::string> shards;                                // fused linear shards
  std::map<int64_t, std::map<std::string, std::string>> experts;  // e -> proj -> type
  std::string fixed_type;  // indexer layers: the per-layer key's value
};
}  // namespace

CheckpointReport validate_checkpoint(const std::string& dir, const CheckpointOptions& opts) {
  try {
    Checkpoint c = open_checkpoint(dir, opts);
    return validate_checkpoint(c, opts);
  } catch (const std::exception& e) {
    CheckpointReport r;
    r.dir = dir;
    r.format = "unknown";
    r.skip_rule = skip_rule_name(opts.skip_rule);
    r.problems.push_back(e.what());
    return r;
  }
}

CheckpointReport validate_checkpoint(const Checkpoint& c, const CheckpointOptions& opts) {
  CheckpointReport r;
  r.dir = c.dir;
  r.format = format_name(c.format);
  r.model_type = c.model_type;
  r.params_dtype = c.params_dtype;
  r.params_dtype_source = c.params_dtype_source;
  r.skip_rule = skip_rule_name(opts.skip_rule);
  const PackedMapping mapping = packed_mapping_for(c.model_type);
  const std::regex expert_re(R"(^(.*\.experts)\.(\d+)\.([A-Za-z0-9_]+)$)");
  std::map<std::string, LayerPlan> plans;  // by "prefix#kind": a prefix may hold two layers
  std::map<std::string, std::string> shard_to_fused;
  for (const auto& [fused, shards] : mapping) {
    if (fused == "experts") continue;
    for (const auto& s : shards) shard_to_fused[s] = fused;
  }
  // The layers: ModelSlim from the description keys, compressed-tensors from the tensors that
  // only quantized layers have.
  std::vector<std::string> weight_prefixes;
  if (c.format == Format::kModelSlim) {
    for (const auto& [k, v] : c.description.types) {
      if (c.description.added.count(k)) continue;
      if (ends_with(k, ".weight")) weight_prefixes.push_back(strip(k, ".weight"));
      if (ends_with(k, ".fa_k.scale") && c.description.fa_quant_type) {
        auto& p = plans[strip(k, ".fa_k.scale") + "#attention"];
        p.prefix = strip(k, ".fa_k.scale");
        p.layer_type = "attention";
      }
      if (ends_with(k, ".k_proj.kv_cache_scale")) {
        auto& p = plans[strip(k, ".k_proj.kv_cache_scale") + "#kv_cache"];
        p.prefix = strip(k, ".k_proj.kv_cache_scale");
        p.layer_type = "kv_cache";
      }
    }
    for (const auto& [k, v] : c.description.indexer_layers) {
      auto& p = plans[strip(k, ".indexer.quant_type") + "#indexer"];
      p.prefix = strip(k, ".indexer.quant_type");
      p.layer_type = "attention";
      p.fixed_type = v;
    }
  } else {
    for (const auto& [name, info] : c.tensors.tensors()) {
      if (ends_with(name, ".weight_scale"))
        weight_prefixes.push_back(strip(name, ".weight_scale"));
      else if (ends_with(name, ".weight_packed"))
        weight_prefixes.push_back(strip(name, ".weight_packed"));
    }
  }
  std::set<std::string> seen;
  for (const auto& p : weight_prefixes) {
    if (!seen.insert(p).second) continue;
    std::smatch m;
    if (std::regex_match(p, m, expert_re)) {
      auto& plan = plans[m[1].str() + "#moe"];
      plan.prefix = m[1].str();
      plan.layer_type = "moe";
      const std::string key = p + ".weight";
      plan.experts[std::stoll(m[2].str())][m[3].str()] =
          c.format == Format::kModelSlim && c.description.types.count(key)
              ? c.description.types.at(key)
              : "";
      continue;
    }
    const std::string comp = last_component(p);
    if (c.format == Format::kModelSlim && shard_to_fused.count(comp)) {
      const std::string fused_name = shard_to_fused[comp];
      const std::string fused = p.substr(0, p.size() - comp.size()) + fused_name;
      // Only when every shard of the fused module exists (a model without the fused module,
      // e.g. DeepSeek-V2-Lite without q_a_proj, keeps the shards as separate layers).
      bool all = true;
      for (const auto& s : mapping.at(fused_name))
        all &= c.description.types.count(p.substr(0, p.size() - comp.size()) + s + ".weight") > 0;
      if (all) {
        auto& plan = plans[fused + "#linear"];
        plan.prefix = fused;
        plan.layer_type = "linear";
        plan.shards.push_back(p);
        continue;
      }
    }
    auto& plan = plans[p + "#linear"];
    plan.prefix = p;
    plan.layer_type = "linear";
  }

  std::set<std::string> used;
  for (auto& [key, plan] : plans) {
    const std::string& prefix = plan.prefix;
    LayerReport rep;
    rep.prefix = prefix;
    rep.layer_type = plan.layer_type;
    rep.shards = plan.shards;
    rep.experts = static_cast<int64_t>(plan.experts.size());
    std::string qt;
    bool skipped = false;
    if (c.format == Format::kModelSlim) {
      try {
        if (!plan.fixed_type.empty()) {
          qt = plan.fixed_type;
          if (!SchemeRegistry::instance().find(qt, "attention"))
            throw DescriptionError(DescErrorKind::kUnregistered, c.description.file,
                                   prefix + ".indexer.quant_type", "layer " + prefix,
                                   "no scheme is registered for (" + qt + ", attention)");
        } else {
          PackedMapping mp = mapping;
          if (plan.layer_type == "moe") mp["experts"] = full_packed_mapping().at("experts");
          LayerLookup lk = lookup_layer(c.description, prefix, plan.layer_type, mp, opts.skip_rule);
          skipped = lk.skipped;
          qt = lk.skipped ? "FLOAT" : lk.quant_type;
          if (lk.prefix_gotcha)
            rep.problems.push_back(
                "prefix-match gotcha: key " + lk.gotcha_key + " makes vllm-ascend's skip test (" +
                "startswith(\"" + prefix + "\")) decide " +
                (opts.skip_rule == SkipRule::kVllmAscendPrefix
                     ? (lk.skipped ? "FLOAT" : "quantized")
                     : (lk.skipped ? "quantized" : "FLOAT")) +
                ", the exact-component reading decides the opposite (skip_rule variant "
                "vllm_ascend_prefix vs exact_component)");
        }
      } catch (const DescriptionError& e) {
        rep.quant_type = "?";
        rep.problems.push_back(e.what());
        r.layers.push_back(std::move(rep));
        continue;
      }
    } else {
      std::string group;
      auto t = ct_scheme_for_layer(*c.ct, prefix, plan.layer_type, &group);
      if (!t) {
        rep.quant_type = "?";
        rep.problems.push_back(c.ct->file + ": layer " + prefix +
                               " has quantization tensors, but quantization_config ignores it "
                               "or no config group targets it");
        r.layers.push_back(std::move(rep));
        continue;
      }
      qt = *t;
      rep.notes.push_back("compressed-tensors group " + group);
      if (!SchemeRegistry::instance().find(qt, plan.layer_type)) {
        rep.quant_type = qt;
        auto lts = SchemeRegistry::instance().layer_types_of(qt);
        std::string have;
        for (const auto& l : lts) have += (have.empty() ? "" : ", ") + l;
        rep.problems.push_back(c.ct->file + ": layer " + prefix +
                               ": no scheme is registered for (" + qt + ", " + plan.layer_type +
                               ")" + (have.empty() ? "" : ": " + qt + " exists for " + have) +
                               " [unregistered; vllm-ascend raises NotImplementedError]");
        r.layers.push_back(std::move(rep));
        continue;
      }
    }
    rep.quant_type = qt;
    if (skipped) {
      r.layers.push_back(std::move(rep));
      continue;
    }
    const SchemeDef& s = *SchemeRegistry::instance().find(qt, plan.layer_type);
    Binder b;
    b.syms["tp"] = opts.tp;
    b.syms["g"] = c.description.group_size.value_or(32);
    if (plan.layer_type == "moe") {
      // Expert 0 alone decides the type of every expert; report experts that disagree.
      const int64_t e_count = static_cast<int64_t>(plan.experts.size());
      int64_t expect = 0;
      for (const auto& [e, projs] : plan.experts) {
        if (e != expect) {
          rep.problems.push_back("experts are not numbered 0.." + std::to_string(e_count - 1) +
                                 ": expert " + std::to_string(expect) + " is missing");
          break;
        }
        ++expect;
      }
      b.syms["E"] = e_count;
      for (const auto& [e, projs] : plan.experts) {
        for (const auto& [proj, t] : projs)
          if (c.format == Format::kModelSlim && !t.empty() && t != qt)
            rep.problems.push_back("expert " + std::to_string(e) + " " + proj + " is " + t +
                                   ", but expert 0 decides the type of every expert (" + qt +
                                   "): vllm-ascend would load it as " + qt);
        const std::string ep = prefix + "." + std::to_string(e) + ".";
        check_tensors(c, s, ep + "gate_proj", "gate_up", b, rep, used);
        check_tensors(c, s, ep + "up_proj", "gate_up", b, rep, used);
        check_tensors(c, s, ep + "down_proj", "down", b, rep, used);
      }
    } else if (!plan.shards.empty()) {
      for (const auto& sh : plan.shards) {
        Binder sb = b;  // each shard has its own N
        check_tensors(c, s, sh, "", sb, rep, used);
        finish_layer(c, s, sb, rep);
      }
    } else {
      check_tensors(c, s, prefix, "", b, rep, used);
    }
    if (plan.shards.empty()) finish_layer(c, s, b, rep);
    r.layers.push_back(std::move(rep));
  }
  if (c.description.max_supported_tp && opts.tp > *c.description.max_supported_tp)
    r.problems.push_back(c.description.file + ": key \"max_supported_tp\" is " +
                         std::to_string(*c.description.max_supported_tp) + ", --tp is " +
                         std::to_string(opts.tp));
  // Every tensor the description names must exist; every safetensors tensor must be described.
  if (c.format == Format::kModelSlim) {
    for (const auto& [k, v] : c.description.types) {
      if (c.description.added.count(k) || k == "hc_head_fn") continue;
      if (!c.tensors.find(k))
        r.problems.push_back(c.description.file + ": key \"" + k + "\" (" + v +
                             ") names a tensor that no safetensors file holds");
    }
    for (const auto& [name, info] : c.tensors.tensors())
      if (!c.description.types.count(name))
        r.problems.push_back(info.file + ": tensor \"" + name + "\" has no entry in " +
                             c.description.file +
                             " [missing_key; vllm-ascend raises KeyError when it looks up this "
                             "layer]");
  }
  return r;
}

}  // namespace qconf::ckpt
