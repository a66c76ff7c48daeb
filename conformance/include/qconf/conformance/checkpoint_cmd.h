// `qconf checkpoint` and `qconf list schemes`: checkpoint validation reports and conformance
// vectors from real weights (the reader and validation live in reference/, qconf/checkpoint/).
#pragma once

#include <cstdio>
#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/conformance/fixture.h"

namespace qconf::conf {

// Exit codes of `qconf checkpoint`.
inline constexpr int kCkptOk = 0;
inline constexpr int kCkptProblems = 1;        // validation found problems
inline constexpr int kCkptUsage = 2;           // bad usage, unknown layer, unreadable input
inline constexpr int kCkptNotImplemented = 3;  // the layer's pipeline needs ops not yet here

struct CheckpointRunOptions {
  std::string layer;  // a prefix from the report ("" = validate only)
  bool run = false;
  uint64_t seed = 0;
  int64_t tokens = 4;  // M: rows of seeded activations
  std::string out_dir;
  // MoE layers: router_logits ~ N(0, (2^router_sigma_log2)^2) (default N(0, 1)).
  int router_sigma_log2 = 0;
  // Tensor parallelism: the vectors of rank tp_rank of tp_size (checkpoint_cmd.cpp, "tensor
  // parallelism": column-parallel layers split N, row-parallel K with the bias on rank 0, MoE
  // experts their intermediate size).
  int64_t tp_size = 1;
  int64_t tp_rank = 0;
};

// MoE layers: how many seeded router_logits draws `--run` tries before it gives up on a
// token whose top-k expert set is not unique within the router's exp accuracy (draw 0 is the
// case seed's stream 1, draw a > 0 is seeded by "<op>/<case name>/router_draw<a>").
inline constexpr int kCheckpointRouterDraws = 16;

// The fixture of one layer's pipeline on seeded activations: one case per shard (fused layers
// are column blocks of the same computation). Throws on a layer it cannot run.
//
// Inputs of linear pipeline ops: `{prefix}.{name}` for every declared input but `x`; x is seeded
// N(0, 1) [tokens, K] in the params dtype.
// Inputs of MoE pipeline ops (layer type moe, prefix "....experts"), one case per layer:
//   w13_<suffix>  [E, 2*out, ...]: per expert e the rows of {prefix}.{e}.gate_proj.<suffix> then
//                 those of {prefix}.{e}.up_proj.<suffix> (dim 0), stacked over e;
//   w2_<suffix>   [E, ...]: {prefix}.{e}.down_proj.<suffix> stacked over e;
//   w13_weight_shape / w2_weight_shape (compressed-tensors [2] = [rows, cols] per projection):
//                 [E, 2], w13's = [gate rows + up rows, cols] (the fused w13's shape);
//   a w13_* / w2_* input the layer's scheme does not declare for the checkpoint's format (e.g.
//                 scale_bias of an LLM-Compressor W4A8 checkpoint) and the checkpoint lacks is
//                 left out (the op's format param says how it is computed);
//   x             [tokens, H] seeded N(0, 1) in the params dtype (stream 0);
//   router_logits float32 [tokens, E] seeded N(0, 1) (stream 1; N(0, 2^(2 s)) with
//                 router_sigma_log2 = s); redrawn (up to kCheckpointRouterDraws draws, seeded by
//                 "<op>/<case name>/router_draw<a>") while a token's top-k expert set is not
//                 unique within the router's exp accuracy; a redraw a > 0 names the case
//                 "<name>_draw<a>" and says so in its comment; every draw ambiguous: an error;
//   e_score_correction_bias (if the op declares it) float32 [E] from
//                 {parent}.gate.e_score_correction_bias when the checkpoint has it.
// Routing params come from config.json (num_experts_per_tok, n_group, topk_group,
// scoring_func, norm_topk_prob, routed_scaling_factor) when present; W4A8_DYNAMIC layers get
// param format = modelslim | llmcompressor from the checkpoint's format. A missing expert tensor
// the scheme declares is a CheckpointError naming it.
Fixture checkpoint_layer_fixture(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                                 uint64_t seed, int64_t tokens);
// The same with every run option (seed, tokens, router_sigma_log2, tp_size, tp_rank).
Fixture checkpoint_layer_fixture(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                                 const CheckpointRunOptions& opts);

// The whole command; prints to `out` / `err`; returns one of the exit codes above.
int checkpoint_command(const std::string& dir, const ckpt::CheckpointOptions& opts,
                       const CheckpointRunOptions& run, std::FILE* out, std::FILE* err);

// `qconf list schemes`: every registered (quant_type, layer_type); with tensors, the declarations.
void list_schemes(std::FILE* out, bool tensors);

}  // namespace qconf::conf
