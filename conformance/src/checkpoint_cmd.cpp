// `qconf checkpoint` and `qconf list schemes` (qconf/conformance/checkpoint_cmd.h).
#include "qconf/conformance/checkpoint_cmd.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "../ops/moe_layer_wrap.h"
#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {

namespace fs = std::filesystem;
using namespace qconf::schemes;

void list_schemes(std::FILE* out, bool tensors) {
  std::map<std::string, std::vector<const SchemeDef*>> by_type;
  for (const SchemeDef* d : SchemeRegistry::instance().all()) by_type[d->quant_type].push_back(d);
  std::fprintf(out, "%-24s %-22s %-6s %s\n", "quant_type", "layer types", "hw", "pipeline");
  for (const auto& [qt, defs] : by_type) {
    std::string lts, pipes;
    for (const SchemeDef* d : defs) {
      lts += (lts.empty() ? "" : ", ") + d->layer_type;
      pipes += (pipes.empty() ? "" : "; ") + d->layer_type + ": " +
               (d->pipeline_op.empty() ? "not implemented yet" : d->pipeline_op);
    }
    std::fprintf(out, "%-24s %-22s %-6s %s%s\n", qt.c_str(), lts.c_str(), defs[0]->hardware.c_str(),
                 pipes.c_str(),
                 defs[0]->in_vllm_registry ? "" : "  (not in vllm-ascend's registry)");
    if (!tensors) continue;
    for (const SchemeDef* d : defs) {
      std::fprintf(out, "    [%s] %s\n      upstream: %s\n", d->layer_type.c_str(),
                   d->summary.c_str(), d->upstream.c_str());
      for (const TensorDecl& t : d->tensors) {
        std::string shape = "[";
        for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + t.shape[i];
        shape += "]";
        std::string fmts;
        for (Format f : t.formats) fmts += (fmts.empty() ? "" : ",") + format_name(f);
        std::fprintf(out, "      %-8s %-24s %-14s %-44s %s%s\n",
                     t.role.empty() ? "" : t.role.c_str(), t.suffix.c_str(), shape.c_str(),
                     t.dtype.describe().c_str(), fmts.c_str(), t.optional ? " (optional)" : "");
      }
      if (!d->part_ops.empty()) {
        std::string n;
        for (const auto& x : d->part_ops) n += (n.empty() ? "" : ", ") + x;
        std::fprintf(out, "      parts checked by: %s\n", n.c_str());
      }
      if (!d->needs.empty()) {
        std::string n;
        for (const auto& x : d->needs) n += (n.empty() ? "" : "; ") + x;
        std::fprintf(out, "      pipeline needs: %s\n", n.c_str());
      }
    }
  }
}

namespace {
// Exact widening of a bf16/fp16 tensor to fp32.
Tensor scheme_widen_f32(const Tensor& t) {
  if (t.dtype() != DType::kBF16 && t.dtype() != DType::kF16)
    throw std::invalid_argument("expected a float tensor, got " + t.describe());
  Tensor w(DType::kF32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint16_t b = t.data<uint16_t>()[i];
    w.data<float>()[i] = t.dtype() == DType::kF16 ? num::f16_to_f32(b) : num::bf16_to_f32(b);
  }
  return w;
}

std::string sanitize(const std::string& s) {
  std::string r;
  for (char c : s) r += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return r;
}
}  // namespace

namespace {
// kv_cache layers (C8): the op's inputs are the attention module's four scale/offset tensors
// plus seeded key and value [tokens, kv_heads, head_size]. The checkpoint only fixes
// C = kv_heads * head_size, so head_size is the largest of 128, 64, 32 dividing C (the C8 NZ
// cache needs a multiple of 32), kv_heads = C / head_size; one TP rank, block_size 128.
CaseSpec kv_cache_layer_case(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                             const OpDef& def, DType pdt, uint64_t seed, int64_t tokens) {
  CaseSpec s;
  s.name = "ckpt_" + sanitize(layer.prefix) + "_seed" + std::to_string(seed);
  s.flags = {"Random"};
  s.params = {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}};
  for (const auto& in : def.inputs) {
    if (in == "key" || in == "value") continue;
    if (!c.tensors.find(layer.prefix + "." + in))
      throw ckpt::CheckpointError(c.dir, layer.prefix + "." + in, "",
                                  "missing: the pipeline needs it");
    s.inputs[in] = c.tensors.read(layer.prefix + "." + in);
  }
  const int64_t ch = s.inputs.begin()->second.numel();
  int64_t d = 0;
  for (int64_t h : {128, 64, 32})
    if (ch % h == 0) {
      d = h;
      break;
    }
  if (d == 0)
    throw ckpt::CheckpointError(c.dir, layer.prefix, "",
                                "C = " + std::to_string(ch) +
                                    " channels is not a multiple of 32 (head_size of the C8 "
                                    "NZ cache)");
  s.comment = "checkpoint " + c.dir + ", kv cache of " + layer.prefix + " (" + layer.quant_type +
              "), key/value N(0, 1) [" + std::to_string(tokens) + ", " + std::to_string(ch / d) +
              ", " + std::to_string(d) + "] seeded by \"" + s.name + "\"";
  const uint64_t sd = rng::seed_from_string(layer.pipeline_op + "/" + s.name);
  s.inputs["key"] = gen::float_tensor(pdt, {tokens, ch / d, d}, gen::FloatDist::normal(0), sd, 0);
  s.inputs["value"] = gen::float_tensor(pdt, {tokens, ch / d, d}, gen::FloatDist::normal(0), sd, 1);
  return s;
}

// Reads one checkpoint tensor the pipeline needs, or fails naming it.
Tensor need(const ckpt::Checkpoint& c, const std::string& name, const std::string& why) {
  if (!c.tensors.find(name))
    throw ckpt::CheckpointError(c.dir, name, "", "missing: the pipeline needs it (" + why + ")");
  return c.tensors.read(name);
}

// Rows of `parts` concatenated on dim 0 (all with the same dtype and trailing dims).
Tensor concat0(const std::vector<Tensor>& parts, const std::vector<std::string>& names,
               const std::string& dir) {
  Shape s = parts.at(0).shape();
  int64_t rows = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    Shape tail = parts[i].shape(), want = s;
    if (tail.empty() || parts[i].dtype() != parts[0].dtype() ||
        !std::equal(tail.begin() + 1, tail.end(), want.begin() + 1, want.end()))
      throw ckpt::CheckpointError(dir, names[i], "shape",
                                  "cannot be stacked with " + names[0] + ": " +
                                      parts[i].describe() + " vs " + parts[0].describe());
    rows += parts[i].dim(0);
  }
  s[0] = rows;
  Tensor o(parts[0].dtype(), s);
  size_t off = 0;
  for (const Tensor& t : parts) {
    std::memcpy(o.bytes() + off, t.bytes(), t.nbytes());
    off += t.nbytes();
  }
  return o;
}

// The fused w13's [rows, cols] from gate's and up's compressed-tensors weight_shape [2]:
// [gate rows + up rows, cols] (cols must agree), in the gate tensor's dtype.
Tensor fused_weight_shape(const Tensor& g, const Tensor& u, const std::string& gn,
                          const std::string& un, const std::string& dir) {
  for (const auto& [t, n] : {std::pair{&g, &gn}, std::pair{&u, &un}})
    if (t->numel() != 2 || (t->dtype() != DType::kI32 && t->dtype() != DType::kI64))
      throw ckpt::CheckpointError(dir, *n, "shape",
                                  "expected int32|int64 [2], got " + t->describe());
  if (g.int_at(1) != u.int_at(1))
    throw ckpt::CheckpointError(dir, un, "value",
                                "columns " + std::to_string(u.int_at(1)) + " differ from " + gn +
                                    "'s " + std::to_string(g.int_at(1)));
  Tensor o(g.dtype(), {2});
  const int64_t v[2] = {g.int_at(0) + u.int_at(0), g.int_at(1)};
  for (int i = 0; i < 2; ++i) {
    if (g.dtype() == DType::kI32)
      o.data<int32_t>()[i] = static_cast<int32_t>(v[i]);
    else
      o.data<int64_t>()[i] = v[i];
  }
  return o;
}

// The MoE input convention (see checkpoint_cmd.h): `w13_<suffix>` = for each expert e, the rows
// of {prefix}.{e}.gate_proj.<suffix> then those of {prefix}.{e}.up_proj.<suffix> (dim 0),
// stacked over e: [E, 2*out, ...] (vllm-ascend's FusedMoE weight loader puts gate in shard w1
// = rows [0, I) and up in w3 = rows [I, 2I) of w13); `w2_<suffix>` = {prefix}.{e}.down_proj.
// <suffix> stacked: [E, ...]. Names as the validator checks them (checkpoint.cpp: the
// "{prefix}.{e}.{proj}" sub-prefixes of an `experts` layer).
Tensor moe_input(const ckpt::Checkpoint& c, const std::string& prefix, int64_t experts,
                 const std::string& in) {
  const bool w13 = in.rfind("w13_", 0) == 0;
  const std::string suffix = in.substr(w13 ? 4 : 3);
  std::vector<Tensor> per_expert;
  std::vector<std::string> names;
  for (int64_t e = 0; e < experts; ++e) {
    const std::string ep = prefix + "." + std::to_string(e) + ".";
    if (w13) {
      const std::string g = ep + "gate_proj." + suffix, u = ep + "up_proj." + suffix;
      std::vector<Tensor> gu = {need(c, g, in + " of expert " + std::to_string(e)),
                                need(c, u, in + " of expert " + std::to_string(e))};
      if (suffix == "weight_shape")
        per_expert.push_back(fused_weight_shape(gu[0], gu[1], g, u, c.dir));
      else
        per_expert.push_back(concat0(gu, {g, u}, c.dir));
      names.push_back(g);
    } else {
      names.push_back(ep + "down_proj." + suffix);
      per_expert.push_back(need(c, names.back(), in + " of expert " + std::to_string(e)));
    }
  }
  // Stack: a leading expert dim over the per-expert tensors.
  for (auto& t : per_expert) {
    Shape s = t.shape();
    s.insert(s.begin(), 1);
    Tensor v(t.dtype(), s);
    std::memcpy(v.bytes(), t.bytes(), t.nbytes());
    t = std::move(v);
  }
  return concat0(per_expert, names, c.dir);
}

// Whether the layer's scheme declares the checkpoint tensor behind MoE input `in` (w13_* from
// the gate_up role, w2_* from down) for the checkpoint's format. Unknown scheme: declared.
bool moe_input_declared(const ckpt::Checkpoint& c, const ckpt::LayerReport& l,
                        const std::string& in) {
  const SchemeDef* d = SchemeRegistry::instance().find(l.quant_type, l.layer_type);
  if (!d) return true;
  const bool w13 = in.rfind("w13_", 0) == 0;
  const std::string suffix = in.substr(w13 ? 4 : 3), role = w13 ? "gate_up" : "down";
  for (const TensorDecl& t : d->tensors)
    if (t.suffix == suffix && (t.role.empty() || t.role == role) &&
        std::find(t.formats.begin(), t.formats.end(), c.format) != t.formats.end())
      return true;
  return false;
}

// The routing params of a MoE case from the model's config.json (HF keys), when present:
// num_experts_per_tok, n_group, topk_group, scoring_func, norm_topk_prob,
// routed_scaling_factor. Absent keys keep the op's defaults.
void moe_params_from_config(const std::string& dir, int64_t experts, Params& p) {
  Json cfg = Json::object();
  const fs::path f = fs::path(dir) / "config.json";
  if (fs::exists(f)) {
    std::ifstream in(f);
    cfg = Json::parse(in, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) cfg = Json::object();
  }
  const int64_t k = cfg.value("num_experts_per_tok", int64_t{2});
  p["top_k"] = std::min<int64_t>(k, experts);
  if (cfg.contains("n_group") && cfg["n_group"].is_number_integer()) p["n_group"] = cfg["n_group"];
  if (cfg.contains("topk_group") && cfg["topk_group"].is_number_integer())
    p["k_group"] = cfg["topk_group"];
  if (cfg.contains("scoring_func") && cfg["scoring_func"].is_string())
    p["scoring"] = cfg["scoring_func"];
  if (cfg.contains("norm_topk_prob") && cfg["norm_topk_prob"].is_boolean())
    p["renormalize"] = cfg["norm_topk_prob"].get<bool>() ? 1 : 0;
  if (cfg.contains("routed_scaling_factor") && cfg["routed_scaling_factor"].is_number())
    p["routed_scaling_factor"] =
        static_cast<double>(static_cast<float>(cfg["routed_scaling_factor"].get<double>()));
}
// ---- tensor parallelism (`--tp-size N --tp-rank R`) ---------------------------------------
// One TP rank's tensors as vLLM's parallel layers shard them at load (vllm
// model_executor/layers/linear.py weight_loader: narrow(output_dim | input_dim, rank * shard,
// shard); vllm-ascend inherits them):
//   column-parallel (ColumnParallelLinear / QKVParallelLinear / MergedColumnParallelLinear):
//     the output dim N is split: weight rows and every per-output-channel tensor (scales,
//     offsets, deq_scale, quant_bias, bias); x is the whole activation;
//   row-parallel (RowParallelLinear): the input dim K is split: weight columns, per-group scales
//     and offsets along their group dim, x's columns (the rank's slice of the activation, as the
//     column-parallel layer before it leaves it); per-channel scales whole; the bias only on rank
//     0 (RowParallelLinear.forward: `bias_ = None if self.tp_rank > 0`; w8a8_static.py apply:
//     `quant_bias = layer.quant_bias if tp_rank == 0 else None`); the partial outputs are summed
//     by the all-reduce (reduce_results), not modelled here.
// Which class a module is: by its name, the Llama / Qwen / DeepSeek modules (tp_kind_of).
enum class TpKind { kColumn, kRow };

std::optional<TpKind> tp_kind_of(const std::string& prefix) {
  const std::string leaf = prefix.substr(prefix.rfind('.') + 1);
  for (const char* c : {"q_proj", "k_proj", "v_proj", "qkv_proj", "gate_proj", "up_proj",
                        "gate_up_proj", "q_b_proj", "kv_b_proj"})
    if (leaf == c) return TpKind::kColumn;
  for (const char* r : {"o_proj", "down_proj"})
    if (leaf == r) return TpKind::kRow;
  return std::nullopt;
}

// Elements [lo, lo + len) of dim d.
Tensor slice_dim(const Tensor& t, int d, int64_t lo, int64_t len) {
  Shape sh = t.shape();
  const size_t es = dtype_size(t.dtype());
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= sh[i];
  for (size_t i = d + 1; i < sh.size(); ++i) inner *= sh[i];
  const int64_t full = sh[d];
  sh[d] = len;
  Tensor o(t.dtype(), sh);
  for (int64_t a = 0; a < outer; ++a)
    std::memcpy(o.bytes() + a * len * inner * es, t.bytes() + (a * full + lo) * inner * es,
                len * inner * es);
  return o;
}

// Tensor `name`'s dim d split into tp equal parts: the rank's part, or an error naming the
// layer, tensor and dim.
Tensor tp_part(const std::string& dir, const std::string& layer, const std::string& name,
               const Tensor& t, int d, int64_t tp, int64_t rank) {
  if (d >= t.rank() || t.dim(d) % tp != 0)
    throw ckpt::CheckpointError(
        dir, name, "shape",
        "layer " + layer + ": dim " + std::to_string(d) + " of " + t.describe() +
            " is not divisible by --tp-size " + std::to_string(tp) +
            " (this tensor is split along that dim under tensor parallelism)");
  const int64_t len = t.dim(d) / tp;
  return slice_dim(t, d, rank * len, len);
}

// [E, 2R, ...]: the rank's part of each half (gate rows, then up rows) along dim 1, stacked again
// (MergedColumnParallel w13: the loader narrows gate and up separately).
Tensor tp_halves(const std::string& dir, const std::string& layer, const std::string& name,
                 const Tensor& t, int64_t tp, int64_t rank) {
  if (t.rank() < 2 || t.dim(1) % (2 * tp) != 0)
    throw ckpt::CheckpointError(dir, name, "shape",
                                "layer " + layer + ": dim 1 of " + t.describe() +
                                    " (gate rows then up rows) is not divisible by 2 * --tp-size " +
                                    std::to_string(tp));
  const int64_t half = t.dim(1) / 2, len = half / tp;
  const Tensor g = slice_dim(t, 1, rank * len, len), u = slice_dim(t, 1, half + rank * len, len);
  Shape sh = t.shape();
  sh[1] = 2 * len;
  Tensor o(t.dtype(), sh);
  const int64_t e = t.dim(0), part = g.nbytes() / e;
  for (int64_t x = 0; x < e; ++x) {
    std::memcpy(o.bytes() + 2 * x * part, g.bytes() + x * part, part);
    std::memcpy(o.bytes() + (2 * x + 1) * part, u.bytes() + x * part, part);
  }
  return o;
}

// A linear case's inputs (x drawn as for tp = 1) -> the rank's; returns the layer's kind.
TpKind shard_linear_case(const std::string& dir, const std::string& layer, const OpDef& def,
                         int64_t tp, int64_t rank, CaseSpec& s) {
  const std::optional<TpKind> kind = tp_kind_of(layer);
  if (!kind)
    throw ckpt::CheckpointError(
        dir, layer, "",
        "--tp-size " + std::to_string(tp) +
            ": no tensor-parallel rule for this module (column-parallel: q/k/v/qkv/gate/up/"
            "gate_up/q_b/kv_b_proj; row-parallel: o_proj, down_proj; others, e.g. the replicated "
            "q_a_proj / kv_a_proj_with_mqa, run with --tp-size 1)");
  const bool col = *kind == TpKind::kColumn;
  for (auto& [in, t] : s.inputs) {
    const std::string name = layer + "." + in;
    if (in == "weight") {
      t = tp_part(dir, layer, name, t, col ? 0 : 1, tp, rank);
    } else if (in == "x") {
      if (!col) t = tp_part(dir, layer, layer + " (x)", t, 1, tp, rank);  // the rank's columns
    } else if (in == "weight_scale" || in == "weight_offset") {
      // Per channel [N, 1] / [N]: split with N (column) or whole (row); per group [N, K/g]:
      // split along the group dim under row parallelism.
      if (col)
        t = tp_part(dir, layer, name, t, 0, tp, rank);
      else if (t.rank() >= 2 && t.dim(1) > 1)
        t = tp_part(dir, layer, name, t, 1, tp, rank);
    } else if (in == "deq_scale") {
      if (col) t = tp_part(dir, layer, name, t, 0, tp, rank);
    } else if (in == "quant_bias" || in == "bias") {
      if (col) {
        t = tp_part(dir, layer, name, t, 0, tp, rank);
      } else if (rank > 0) {
        // Rank > 0 adds no bias: quant_bias (a declared int32 input) becomes zeros, the same
        // arithmetic as None (an exact int32 + 0); an optional bias is dropped below.
        std::memset(t.bytes(), 0, t.nbytes());
      }
    } else if (in != "input_scale" && in != "input_offset") {
      throw std::invalid_argument(
          "--tp-size " + std::to_string(tp) + ": " + def.name + " input \"" + in + "\" of layer " +
          layer +
          " has no tensor-parallel rule (modelled: weight, weight_scale, weight_offset, "
          "deq_scale, quant_bias, bias, input_scale, input_offset): run it with --tp-size 1");
    }
  }
  if (!col && rank > 0) s.inputs.erase("bias");
  return *kind;
}

// A MoE case's stacked w13_* / w2_* inputs -> the rank's (FusedMoE under TP without expert
// parallelism: every rank holds every expert with intermediate_size / tp; vllm FusedMoE
// weight_loader narrows w13 (gate and up separately) along the output dim and w2 along its
// input dim). Per tensor:
//   w13_weight_shape [E, 2]: [2I/tp, H]; other w13_*: each half of dim 1 split;
//   w2_weight_shape [E, 2]: [H, I/tp]; w2_weight / w2_weight_packed: the last dim split (ModelSlim
//   W4A8 bytes pack along the output dim H, so the input dim I stays the last); w2 scales /
//   offsets: per channel [E, H, 1] whole, per group [E, H, I/g] split along the last dim;
//   w2_scale_bias (W4A8 ModelSlim [E, H, 16]): whole, the op's params tp / tp_rank select the
//   rank's 16/tp columns at load (w4a8.py: the param is [E, H, 16 // tp]).
void shard_moe_case(const std::string& dir, const std::string& layer, int64_t tp, int64_t rank,
                    CaseSpec& s) {
  for (auto& [in, t] : s.inputs) {
    const std::string name = layer + "." + in;
    if (in == "w13_weight_shape" || in == "w2_weight_shape") {
      const int col = in == "w13_weight_shape" ? 0 : 1;
      for (int64_t e = 0; e < t.dim(0); ++e) {
        const int64_t v = t.int_at(2 * e + col);
        if (v % (col == 0 ? 2 * tp : tp) != 0)
          throw ckpt::CheckpointError(dir, name, "value",
                                      "layer " + layer + ": " + std::to_string(v) +
                                          " is not divisible by --tp-size " + std::to_string(tp));
        if (t.dtype() == DType::kI32)
          t.data<int32_t>()[2 * e + col] = static_cast<int32_t>(v / tp);
        else
          t.data<int64_t>()[2 * e + col] = v / tp;
      }
    } else if (in.rfind("w13_", 0) == 0) {
      t = tp_halves(dir, layer, name, t, tp, rank);
    } else if (in == "w2_scale_bias") {
      s.params["tp"] = tp;
      s.params["tp_rank"] = rank;
    } else if (in.rfind("w2_", 0) == 0) {
      const bool per_channel = (in != "w2_weight" && in != "w2_weight_packed") && t.dim(-1) == 1;
      if (!per_channel) t = tp_part(dir, layer, name, t, t.rank() - 1, tp, rank);
    }
  }
}

// The case of one TP rank: name suffix _tp<N>r<R> (after every seed is drawn from the tp = 1
// name, so all ranks and tp = 1 share x and router_logits) and the rule in the comment.
void tp_label(CaseSpec& s, const CheckpointRunOptions& o, const std::string& rule) {
  s.name += "_tp" + std::to_string(o.tp_size) + "r" + std::to_string(o.tp_rank);
  s.comment += "; tensor parallel rank " + std::to_string(o.tp_rank) + " of " +
               std::to_string(o.tp_size) + ": " + rule;
}

// The first token whose top-k expert set is not unique under the router's stated exp accuracy
// (moe_gating_top_k_bounds lists alternatives, as the MoE layer oracles do before they refuse
// the case), or -1. Routing params as every MoE layer op reads them (moe_layer_wrap::config_of).
int64_t ambiguous_token(const CaseSpec& s, const std::string& op) {
  moe_layer_wrap::Spec spec;
  spec.op = op.c_str();
  return moe_layer_wrap::RouterBounds(moe_layer_wrap::config_of(spec, s.params), s.inputs)
      .ambiguous_token();
}

// router_logits float32 [tokens, E] ~ N(0, (2^sigma_log2)^2). Draw 0 is stream 1 of the case seed
// `sd` (the vectors of every earlier release); when a token's expert set is not unique within
// the exp accuracy (the layer oracles need one expert set per token), draw a = 1, 2, ... is
// stream 1 of seed_from_string("<op>/<case name>/router_draw<a>"), up to kCheckpointRouterDraws
// draws in all. The draw used is recorded in the case name (suffix _draw<a>) and comment;
// every draw failing is an error naming the last ambiguous token.
void draw_router_logits(CaseSpec& s, const std::string& op, uint64_t sd, int64_t tokens,
                        int64_t experts, int sigma_log2) {
  const std::string base = s.name;
  int64_t bad = -1;
  for (int a = 0; a < kCheckpointRouterDraws; ++a) {
    const std::string key = op + "/" + base + "/router_draw" + std::to_string(a);
    const uint64_t seed = a == 0 ? sd : rng::seed_from_string(key);
    s.inputs["router_logits"] = gen::float_tensor(DType::kF32, {tokens, experts},
                                                  gen::FloatDist::normal(sigma_log2), seed, 1);
    bad = ambiguous_token(s, op);
    if (bad >= 0) continue;
    const std::string sigma =
        sigma_log2 == 0 ? "N(0, 1)" : "N(0, 2^" + std::to_string(2 * sigma_log2) + ")";
    if (a == 0) {
      if (sigma_log2 != 0) s.comment += "; router_logits " + sigma;
    } else {
      s.name = base + "_draw" + std::to_string(a);
      s.comment += "; router_logits " + sigma + ", draw " + std::to_string(a) + ": stream 1 of \"" +
                   key + "\" (" +
                   (a == 1 ? std::string("draw 0") : "draws 0 to " + std::to_string(a - 1)) +
                   " left a token whose expert set is not unique within the exp accuracy)";
    }
    return;
  }
  throw std::runtime_error(
      "router_logits: every one of the " + std::to_string(kCheckpointRouterDraws) +
      " seeded draws (draw 0 = the case seed, then \"" + op + "/" + base +
      "/router_draw<a>\") leaves a token whose top-k expert set is not unique within the router's "
      "exp accuracy (last draw: token " +
      std::to_string(bad) +
      "); the layer's checks need one expert set per token: use another --seed, fewer --tokens "
      "or a larger --router-sigma-log2");
}
}  // namespace

Fixture checkpoint_layer_fixture(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                                 uint64_t seed, int64_t tokens) {
  CheckpointRunOptions o;
  o.seed = seed;
  o.tokens = tokens;
  return checkpoint_layer_fixture(c, layer, o);
}

Fixture checkpoint_layer_fixture(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                                 const CheckpointRunOptions& opts) {
  const uint64_t seed = opts.seed;
  const int64_t tokens = opts.tokens;
  if (opts.tp_size < 1 || opts.tp_rank < 0 || opts.tp_rank >= opts.tp_size)
    throw std::invalid_argument("--tp-size must be >= 1 and --tp-rank in [0, tp-size), got " +
                                std::to_string(opts.tp_size) + " / " +
                                std::to_string(opts.tp_rank));
  if (opts.tp_size > 1 && layer.layer_type == "kv_cache")
    throw std::invalid_argument("--tp-size > 1: the C8 kv-cache layer " + layer.prefix +
                                " has no tensor-parallel rule here (run it with --tp-size 1)");
  if (layer.pipeline_op.empty())
    throw std::logic_error("layer " + layer.prefix + " has no pipeline op");
  const OpDef* def = OpRegistry::instance().find(layer.pipeline_op);
  if (!def) throw std::logic_error("pipeline op " + layer.pipeline_op + " is not registered");
  const DType pdt = ckpt::params_dtype_of(c.params_dtype);
  if (layer.layer_type == "kv_cache") {
    OpDef copy = *def;
    const CaseSpec one = kv_cache_layer_case(c, layer, *def, pdt, seed, tokens);
    copy.cases = [one] { return std::vector<CaseSpec>{one}; };
    return generate_fixture(copy);
  }
  const bool moe = layer.layer_type == "moe";
  std::vector<std::string> prefixes = layer.shards;
  if (prefixes.empty()) prefixes.push_back(layer.prefix);
  std::vector<CaseSpec> specs;
  for (const auto& p : prefixes) {
    CaseSpec s;
    s.name = "ckpt_" + sanitize(p) + "_seed" + std::to_string(seed);
    s.comment = "checkpoint " + c.dir + ", layer " + p + " (" + layer.quant_type +
                "), activations N(0, 1) seeded by \"" + s.name + "\"";
    s.flags = {"Pipeline"};
    s.params = {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}};
    const uint64_t sd = rng::seed_from_string(layer.pipeline_op + "/" + s.name);
    if (moe) {
      // MoE pipeline ops: w13_* / w2_* stacked from the per-expert tensors; x [tokens, H] and
      // router_logits float32 [tokens, E] seeded; e_score_correction_bias from the model's gate
      // ({parent}.gate.e_score_correction_bias) when the op declares it and the tensor exists.
      const int64_t experts = layer.experts;
      if (experts <= 0) throw std::logic_error("MoE layer " + p + " has no experts");
      moe_params_from_config(c.dir, experts, s.params);
      // W4A8_DYNAMIC: the op's format param from the checkpoint's (w4a8.py reads
      // ascend_quant_method == "compressed-tensors" for LLM-Compressor checkpoints).
      if (layer.quant_type == "W4A8_DYNAMIC")
        s.params["format"] = c.format == Format::kCompressedTensors ? "llmcompressor" : "modelslim";
      for (const auto& in : def->inputs) {
        if (in.rfind("w13_", 0) == 0 || in.rfind("w2_", 0) == 0) {
          // An input this format does not have (not declared, absent for expert 0): left out.
          const std::string first = p + ".0." +
                                    (in.rfind("w13_", 0) == 0 ? "gate_proj." + in.substr(4)
                                                              : "down_proj." + in.substr(3));
          if (!moe_input_declared(c, layer, in) && !c.tensors.find(first)) continue;
          s.inputs[in] = moe_input(c, p, experts, in);
        } else if (in == "e_score_correction_bias") {
          const std::string parent = p.substr(0, p.rfind('.'));
          const std::string bn = parent + ".gate.e_score_correction_bias";
          if (c.tensors.find(bn)) {
            Tensor b = c.tensors.read(bn);
            if (b.dtype() != DType::kF32) b = scheme_widen_f32(b);
            s.inputs[in] = std::move(b);
            s.comment += "; e_score_correction_bias from " + bn;
          }
        } else if (in != "x" && in != "router_logits") {
          throw std::logic_error("MoE pipeline op " + def->name + " declares input \"" + in +
                                 "\": not w13_*, w2_*, x, router_logits or "
                                 "e_score_correction_bias (checkpoint_cmd.cpp convention)");
        }
      }
      // H: the validator's symbol (every MoE scheme declares it), else w13_weight's last dim.
      const int64_t h =
          layer.symbols.count("H") ? layer.symbols.at("H") : s.inputs.at("w13_weight").dim(2);
      s.inputs["x"] = gen::float_tensor(pdt, {tokens, h}, gen::FloatDist::normal(0), sd, 0);
      draw_router_logits(s, layer.pipeline_op, sd, tokens, experts, opts.router_sigma_log2);
      if (opts.tp_size > 1) {
        shard_moe_case(c.dir, p, opts.tp_size, opts.tp_rank, s);
        tp_label(s, opts, "experts with intermediate_size / tp (w13 output rows, w2 input cols)");
      }
      specs.push_back(std::move(s));
      continue;
    }
    for (const auto& in : def->inputs) {
      if (in == "x") continue;
      if (in == "bias" && !c.tensors.find(p + ".bias")) continue;  // an optional input
      if (!c.tensors.find(p + "." + in))
        throw ckpt::CheckpointError(c.dir, p + "." + in, "", "missing: the pipeline needs it");
      s.inputs[in] = c.tensors.read(p + "." + in);
    }
    const int64_t k = s.inputs.at("weight").dim(1);
    s.inputs["x"] = gen::float_tensor(pdt, {tokens, k}, gen::FloatDist::normal(0), sd, 0);
    if (opts.tp_size > 1) {
      // x: the tp = 1 activation (same seed); row-parallel: the rank's columns of it.
      const TpKind kind = shard_linear_case(c.dir, p, *def, opts.tp_size, opts.tp_rank, s);
      tp_label(s, opts,
               kind == TpKind::kColumn
                   ? "column-parallel: output channels split, x whole"
                   : "row-parallel: input channels split (x's columns too), bias on rank 0 "
                     "only, partial output (the all-reduce sums the ranks)");
    }
    specs.push_back(std::move(s));
  }
  OpDef copy = *def;
  copy.cases = [specs] { return specs; };
  return generate_fixture(copy);
}

int checkpoint_command(const std::string& dir, const ckpt::CheckpointOptions& opts,
                       const CheckpointRunOptions& run, std::FILE* out, std::FILE* err) {
  if (run.run && (run.layer.empty() || run.out_dir.empty())) {
    std::fprintf(err, "qconf checkpoint: --run needs --layer PREFIX and --out DIR\n");
    return kCkptUsage;
  }
  std::optional<ckpt::Checkpoint> c;
  ckpt::CheckpointReport rep;
  try {
    c = ckpt::open_checkpoint(dir, opts);
    rep = ckpt::validate_checkpoint(*c, opts);
  } catch (const std::exception& e) {
    rep = ckpt::validate_checkpoint(dir, opts);  // the same failure, as a report problem
  }
  if (run.layer.empty()) {
    std::fputs(rep.text().c_str(), out);
    return rep.ok() ? kCkptOk : kCkptProblems;
  }
  const ckpt::LayerReport* l = ckpt::find_layer(rep, run.layer);
  if (!l) {
    std::fputs(rep.text().c_str(), out);
    std::fprintf(err, "qconf checkpoint: no layer \"%s\" in %s (the report lists the layers)\n",
                 run.layer.c_str(), dir.c_str());
    return rep.ok() ? kCkptUsage : kCkptProblems;
  }
  ckpt::CheckpointReport one = rep;
  one.layers = {*l};
  std::fputs(one.text().c_str(), out);
  if (!l->ok() || !c) return kCkptProblems;
  if (!run.run) return kCkptOk;
  if (l->quant_type == "FLOAT") {
    std::fprintf(err, "qconf checkpoint: layer %s is FLOAT (not quantized): no pipeline to run\n",
                 l->prefix.c_str());
    return kCkptUsage;
  }
  if (l->pipeline_op.empty()) {
    std::string needs;
    for (const auto& n : l->needs) needs += (needs.empty() ? "" : "; ") + n;
    std::fprintf(err, "qconf checkpoint: pipeline for %s/%s not implemented yet (needs %s)\n",
                 l->quant_type.c_str(), l->layer_type.c_str(), needs.c_str());
    return kCkptNotImplemented;
  }
  try {
    Fixture f = checkpoint_layer_fixture(*c, *l, run);
    fs::create_directories(run.out_dir);
    const std::string text = fixture_to_text(f);
    const std::string name = f.op + ".json";
    write_file((fs::path(run.out_dir) / name).string(), text);
    write_manifest(run.out_dir, {{name, sha256_hex(text)}});
    std::fprintf(out,
                 "wrote %zu case%s of %s to %s (check an implementation with: qconf run "
                 "--golden-dir %s --impl ...)\n",
                 f.cases.size(), f.cases.size() == 1 ? "" : "s", f.op.c_str(),
                 (fs::path(run.out_dir) / name).string().c_str(), run.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(err, "qconf checkpoint: layer %s: %s\n", l->prefix.c_str(), e.what());
    return kCkptProblems;
  }
  return kCkptOk;
}

}  // namespace qconf::conf
