// MoE checkpoints end to end: the MoE input convention of `qconf checkpoint --run`
// (checkpoint_cmd.h: w13_* = gate rows then up rows per expert, stacked; w2_* = down_proj
// stacked; x and router_logits seeded), the W8A8_DYNAMIC MoE pipeline on real weights checked
// by `qconf run` for both implementations, and a missing expert tensor named in the error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "ckpt_builder.h"
#include "qconf/checkpoint/checkpoint.h"
#include "qconf/conformance/checkpoint_cmd.h"
#include "qconf/conformance/op.h"

namespace {

using namespace ckpt_test;
using ::testing::HasSubstr;

const char* kMoe = "model.layers.1.mlp.experts";

const qconf::ckpt::LayerReport& layer(const qconf::ckpt::CheckpointReport& r,
                                      const std::string& p) {
  const qconf::ckpt::LayerReport* l = qconf::ckpt::find_layer(r, p);
  if (!l) throw std::runtime_error("no layer " + p + " in\n" + r.text());
  return *l;
}

const Tensor& builder_tensor(const ModelSlim& m, const std::string& name) {
  for (const auto& t : m.tensors)
    if (t.name == name) return t.t;
  throw std::runtime_error("builder has no tensor " + name);
}

// Row r of expert e of a stacked [E, R, C] tensor equals row q of the 2-D tensor `src`.
bool row_equal(const Tensor& stacked, int64_t e, int64_t r, const Tensor& src, int64_t q) {
  const int64_t rows = stacked.dim(1), cols = stacked.numel() / (stacked.dim(0) * rows);
  const size_t es = qconf::dtype_size(stacked.dtype());
  return std::memcmp(stacked.bytes() + ((e * rows + r) * cols) * es, src.bytes() + q * cols * es,
                     cols * es) == 0;
}

TEST(CheckpointMoe, W8a8DynamicMoeLayerRunsAndBothImplementationsPass) {
  TempDir d("moe_run");
  ModelSlim m = small_modelslim();  // layers.1.mlp.experts: 2 experts, I 8, H 16, W8A8_DYNAMIC
  m.write(d.path);
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe +
                          " --run --seed 3 --tokens 6 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  qconf::conf::Fixture f = qconf::conf::load_fixture_file(out + "/scheme_w8a8_dynamic_moe.json");
  ASSERT_EQ(f.cases.size(), 1u);
  const auto& in = f.cases[0].inputs;
  EXPECT_EQ(in.at("w13_weight").shape(), (qconf::Shape{2, 16, 16}));
  EXPECT_EQ(in.at("w2_weight").shape(), (qconf::Shape{2, 16, 8}));
  EXPECT_EQ(in.at("x").shape(), (qconf::Shape{6, 16}));
  EXPECT_EQ(in.at("router_logits").shape(), (qconf::Shape{6, 2}));
  EXPECT_EQ(in.at("router_logits").dtype(), DType::kF32);
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult c = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(c.code, 0) << impl << "\n" << c.out;
  }
}

// The convention, element by element: w13 rows [0, I) of expert e are gate_proj, rows [I, 2I)
// up_proj; w2 is down_proj; the scales likewise. A loader that stacked up before gate (or
// experts out of order) fails here.
TEST(CheckpointMoe, StackingPutsGateRowsThenUpRowsPerExpert) {
  TempDir d("moe_stack");
  ModelSlim m = small_modelslim();
  m.write(d.path);
  qconf::ckpt::Checkpoint c = qconf::ckpt::open_checkpoint(d.str(), {});
  qconf::ckpt::CheckpointReport rep = qconf::ckpt::validate_checkpoint(c, {});
  qconf::conf::Fixture f = qconf::conf::checkpoint_layer_fixture(c, layer(rep, kMoe), 1, 3);
  const auto& in = f.cases.at(0).inputs;
  for (int64_t e = 0; e < 2; ++e) {
    const std::string p = std::string(kMoe) + "." + std::to_string(e) + ".";
    for (const char* s : {"weight", "weight_scale"}) {
      const Tensor& g = builder_tensor(m, p + "gate_proj." + s);
      const Tensor& u = builder_tensor(m, p + "up_proj." + s);
      const Tensor& dn = builder_tensor(m, p + "down_proj." + s);
      const Tensor& w13 = in.at(std::string("w13_") + s);
      const Tensor& w2 = in.at(std::string("w2_") + s);
      for (int64_t q = 0; q < 8; ++q) {
        EXPECT_TRUE(row_equal(w13, e, q, g, q)) << s << " expert " << e << " gate row " << q;
        EXPECT_TRUE(row_equal(w13, e, 8 + q, u, q)) << s << " expert " << e << " up row " << q;
      }
      for (int64_t q = 0; q < 16; ++q)
        EXPECT_TRUE(row_equal(w2, e, q, dn, q)) << s << " expert " << e << " down row " << q;
    }
  }
  // Negative control: the up rows are not the gate rows (the check above can fail).
  EXPECT_FALSE(row_equal(in.at("w13_weight"), 0, 8,
                         builder_tensor(m, std::string(kMoe) + ".0.gate_proj.weight"), 0));
}

TEST(CheckpointMoe, RoutingParamsComeFromConfigJson) {
  TempDir d("moe_cfg");
  ModelSlim m;
  m.config = {{"model_type", "deepseek_v3"},
              {"torch_dtype", "float16"},
              {"num_experts_per_tok", 2},
              {"n_group", 2},
              {"topk_group", 1},
              {"scoring_func", "sigmoid"},
              {"norm_topk_prob", true},
              {"routed_scaling_factor", 2.5}};
  m.moe_w8a8_dynamic(kMoe, 4, 8, 16);
  m.write(d.path);
  qconf::ckpt::Checkpoint c = qconf::ckpt::open_checkpoint(d.str(), {});
  qconf::ckpt::CheckpointReport rep = qconf::ckpt::validate_checkpoint(c, {});
  qconf::conf::Fixture f = qconf::conf::checkpoint_layer_fixture(c, layer(rep, kMoe), 2, 5);
  const auto& p = f.cases.at(0).params;
  EXPECT_EQ(p.at("params_dtype"), "float16");
  EXPECT_EQ(p.at("top_k"), 2);
  EXPECT_EQ(p.at("n_group"), 2);
  EXPECT_EQ(p.at("k_group"), 1);
  EXPECT_EQ(p.at("scoring"), "sigmoid");
  EXPECT_EQ(p.at("routed_scaling_factor"), 2.5);
  EXPECT_EQ(f.cases.at(0).inputs.at("x").dtype(), DType::kF16);
}

// A missing expert tensor: the validator names it, and the fixture builder (given a layer
// report of a complete checkpoint) fails naming it rather than crashing.
TEST(CheckpointMoe, MissingExpertTensorIsNamed) {
  const std::string missing = std::string(kMoe) + ".1.up_proj.weight_scale";
  TempDir good("moe_good"), bad("moe_bad");
  ModelSlim m = small_modelslim();
  m.write(good.path);
  ModelSlim b = m;
  b.tensors.erase(std::remove_if(b.tensors.begin(), b.tensors.end(),
                                 [&](const auto& t) { return t.name == missing; }),
                  b.tensors.end());
  b.desc.erase(missing);
  b.write(bad.path);
  CmdResult r = run_qconf("checkpoint " + bad.str() + " --layer " + kMoe + " --run --out " +
                          (bad.path / "out").string());
  EXPECT_EQ(r.code, qconf::conf::kCkptProblems) << r.out;
  EXPECT_THAT(r.out, HasSubstr(missing));

  qconf::ckpt::Checkpoint cg = qconf::ckpt::open_checkpoint(good.str(), {});
  qconf::ckpt::CheckpointReport rep = qconf::ckpt::validate_checkpoint(cg, {});
  qconf::ckpt::Checkpoint cb = qconf::ckpt::open_checkpoint(bad.str(), {});
  try {
    qconf::conf::checkpoint_layer_fixture(cb, layer(rep, kMoe), 1, 3);
    ADD_FAILURE() << "no error for the missing " << missing;
  } catch (const qconf::ckpt::CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing));
    EXPECT_THAT(e.what(), HasSubstr("w13_weight_scale of expert 1"));
  }
}

}  // namespace
