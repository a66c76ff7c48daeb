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
};

// The fixture of one layer's pipeline on seeded activations: one case per shard (fused layers
// are column blocks of the same computation). Throws on a layer it cannot run.
Fixture checkpoint_layer_fixture(const ckpt::Checkpoint& c, const ckpt::LayerReport& layer,
                                 uint64_t seed, int64_t tokens);

// The whole command; prints to `out` / `err`; returns one of the exit codes above.
int checkpoint_command(const std::string& dir, const ckpt::CheckpointOptions& opts,
                       const CheckpointRunOptions& run, std::FILE* out, std::FILE* err);

// `qconf list schemes`: every registered (quant_type, layer_type); with tensors, the declarations.
void list_schemes(std::FILE* out, bool tensors);

}  // namespace qconf::conf
