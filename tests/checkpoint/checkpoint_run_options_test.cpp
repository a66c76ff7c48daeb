// `qconf checkpoint --run` options: the seeded router_logits redraw when a token's top-k expert
// set is not unique within the router's exp accuracy (draws recorded in the case, reproducible;
// every draw ambiguous: a clear error).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ckpt_builder.h"
#include "qconf/checkpoint/checkpoint.h"
#include "qconf/conformance/checkpoint_cmd.h"
#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/moe_layer.h"
#include "qconf/ops/routing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using namespace ckpt_test;
using ::testing::HasSubstr;

const char* kMoe4 = "model.layers.1.mlp.experts";

// small_modelslim plus a second MoE layer: 4 W8A8_DYNAMIC experts (I 8, H 16), top-2 softmax.
ModelSlim four_expert_model() {
  ModelSlim m = small_modelslim();
  m.tensors.erase(std::remove_if(m.tensors.begin(), m.tensors.end(),
                                 [](const auto& t) { return t.name.rfind(kMoe4, 0) == 0; }),
                  m.tensors.end());
  for (auto it = m.desc.begin(); it != m.desc.end();)
    it = it.key().rfind(kMoe4, 0) == 0 ? m.desc.erase(it) : std::next(it);
  m.moe_w8a8_dynamic(kMoe4, 4, 8, 16);
  m.config["num_experts_per_tok"] = 2;
  return m;
}

[[maybe_unused]] qconf::conf::Fixture fixture(const TempDir& d, const std::string& layer,
                                              const qconf::conf::CheckpointRunOptions& o) {
  qconf::ckpt::CheckpointOptions co;
  qconf::ckpt::Checkpoint c = qconf::ckpt::open_checkpoint(d.str(), co);
  qconf::ckpt::CheckpointReport rep = qconf::ckpt::validate_checkpoint(c, co);
  const qconf::ckpt::LayerReport* l = qconf::ckpt::find_layer(rep, layer);
  if (!l) throw std::runtime_error("no layer " + layer + "\n" + rep.text());
  return qconf::conf::checkpoint_layer_fixture(c, *l, o);
}

// Index of the first token with alternative expert sets (softmax, top-2, renormalized: the
// config of four_expert_model), or -1: the same reachable-set check the MoE layer oracles run.
int64_t first_ambiguous(const Tensor& logits) {
  qconf::RoutingArgs ra;
  ra.logits = &logits;
  qconf::RoutingConfig rc;
  rc.top_k = 2;
  const qconf::RoutingBounds b = qconf::ref::moe_gating_top_k_bounds(ra, rc);
  return b.alt_rows.empty() ? -1 : b.alt_rows[0];
}

Tensor draw(const std::string& key_or_empty, uint64_t case_seed, int sigma_log2) {
  const uint64_t seed =
      key_or_empty.empty() ? case_seed : qconf::rng::seed_from_string(key_or_empty);
  return qconf::gen::float_tensor(DType::kF32, {4, 4}, qconf::gen::FloatDist::normal(sigma_log2),
                                  seed, 1);
}

// Logits with sigma 2^-10 (variance 2^-20) and seed 0: draw 0 has a token whose top-2 set is not
// unique within the exp accuracy; the run redraws, names the case ..._draw1, records the draw's
// seed string in the comment, and the recorded logits are exactly that draw (reproducible); both
// implementations pass the vectors. Without the redraw (draw 0 kept) the oracle would refuse the
// case.
TEST(CheckpointRunOptions, AmbiguousFirstRouterDrawIsRedrawnAndRecorded) {
  TempDir d("redraw");
  four_expert_model().write(d.path);
  const std::string op = "scheme_w8a8_dynamic_moe";
  const std::string base = "ckpt_model_layers_1_mlp_experts_seed0";
  // Draw 0 (stream 1 of the case seed, as before this option existed) is ambiguous.
  const Tensor d0 = draw("", qconf::rng::seed_from_string(op + "/" + base), -10);
  ASSERT_GE(first_ambiguous(d0), 0);
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe4 +
                          " --run --seed 0 --tokens 4 --router-sigma-log2 -10 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  qconf::conf::Fixture f = qconf::conf::load_fixture_file(out + "/" + op + ".json");
  ASSERT_EQ(f.cases.size(), 1u);
  const qconf::conf::Case& c = f.cases[0];
  EXPECT_EQ(c.id, op + "/" + base + "_draw1");
  const std::string key = op + "/" + base + "/router_draw1";
  EXPECT_THAT(c.comment, HasSubstr("draw 1: stream 1 of \"" + key + "\""));
  const Tensor d1 = draw(key, 0, -10);
  EXPECT_EQ(first_ambiguous(d1), -1);
  const Tensor& got = c.inputs.at("router_logits");
  ASSERT_EQ(got.shape(), d1.shape());
  EXPECT_EQ(std::memcmp(got.bytes(), d1.bytes(), d1.nbytes()), 0);
  // x is drawn from the undecorated case name: the same as any other draw would give.
  const Tensor x = qconf::gen::float_tensor(DType::kBF16, {4, 16}, qconf::gen::FloatDist::normal(0),
                                            qconf::rng::seed_from_string(op + "/" + base), 0);
  EXPECT_EQ(std::memcmp(c.inputs.at("x").bytes(), x.bytes(), x.nbytes()), 0);
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult v = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(v.code, 0) << impl << "\n" << v.out;
  }
  // The default scale keeps draw 0 and the old case name (no redraw needed).
  qconf::conf::CheckpointRunOptions o;
  o.tokens = 4;
  EXPECT_EQ(fixture(d, kMoe4, o).cases.at(0).id, op + "/" + base);
}

// Logits N(0, 2^-60): every logit rounds exp to within its accuracy of 1, so every draw leaves an
// ambiguous token: after kCheckpointRouterDraws draws, a clear error and no vectors.
TEST(CheckpointRunOptions, EveryRouterDrawAmbiguousIsAClearError) {
  TempDir d("redraw_fail");
  four_expert_model().write(d.path);
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe4 +
                          " --run --seed 0 --tokens 4 --router-sigma-log2 -60 --out " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out,
              HasSubstr("layer " + std::string(kMoe4) + ": router_logits: every one of the " +
                        std::to_string(qconf::conf::kCheckpointRouterDraws) + " seeded draws"));
  EXPECT_THAT(r.out, HasSubstr("router_draw<a>"));
  EXPECT_THAT(r.out, HasSubstr("is not unique within the router's exp accuracy"));
  EXPECT_FALSE(fs::exists(out + "/scheme_w8a8_dynamic_moe.json"));
}

}  // namespace
