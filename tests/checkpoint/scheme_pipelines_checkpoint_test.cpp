// `qconf checkpoint DIR --layer P --run` for the W8A8_MIX, W4A4_DYNAMIC,
// W4A4_FLATQUANT_DYNAMIC linear layers and the C8 KV cache: small ModelSlim checkpoints built
// here, the fixture written from their tensors, and `qconf run` passing with the reference and
// the optimized implementation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ckpt_builder.h"
#include "qconf/checkpoint/checkpoint.h"
#include "qconf/conformance/checkpoint_cmd.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"
#include "qconf/ops/kronecker_quant.h"

namespace {

using namespace ckpt_test;  // NOLINT
using ::testing::HasSubstr;

Tensor int4_values(const qconf::Shape& s, uint64_t seed) {
  return qconf::gen::int_tensor(DType::kI8, s, -8, 7, seed, 7);
}
Tensor w4_scale(int64_t n, uint64_t seed) {
  return qconf::gen::float_tensor(DType::kF32, {n, 1}, qconf::gen::FloatDist::grid(16, 255, -12),
                                  seed, 8);
}

void w4a4_dynamic(ModelSlim& m, const std::string& p, int64_t n, int64_t k, bool bias) {
  m.add(p + ".weight", int4_values({n, k}, ++m.seed), "W4A4_DYNAMIC");
  m.add(p + ".weight_scale", w4_scale(n, ++m.seed), "W4A4_DYNAMIC");
  m.add(p + ".weight_offset", f32({n, 1}, ++m.seed), "W4A4_DYNAMIC");
  if (bias) m.add(p + ".bias", f16ish(DType::kBF16, {n}, ++m.seed), "FLOAT");
}

void w4a4_flatquant(ModelSlim& m, const std::string& p, int64_t n, int64_t k) {
  const qconf::DecomposeDims dd = qconf::ref::get_decompose_dim(k);
  const std::string t = "W4A4_FLATQUANT_DYNAMIC";
  m.add(p + ".weight", int4_values({n, k}, ++m.seed), t);
  m.add(p + ".left_trans",
        qconf::ref::householder_orthogonal(DType::kBF16, dd.left, 3, ++m.seed, 1), t);
  m.add(p + ".right_trans",
        qconf::ref::householder_orthogonal(DType::kBF16, dd.right, 3, ++m.seed, 2), t);
  m.add(p + ".clip_ratio", Tensor::from<uint32_t>(DType::kF32, {1}, {qconf::num::f32_bits(0.9f)}),
        t);
  m.add(p + ".weight_scale", w4_scale(n, ++m.seed), t);
  m.add(p + ".weight_offset", f32({n, 1}, ++m.seed), t);
}

void w8a8_mix(ModelSlim& m, const std::string& p, int64_t n, int64_t k) {
  m.w8a8_static(p, n, k, false);
  for (auto& st : m.tensors)
    if (st.name.rfind(p + ".", 0) == 0) m.desc[st.name] = "W8A8_MIX";
}

void c8(ModelSlim& m, const std::string& attn, int64_t channels) {
  m.desc["kv_cache_type"] = "C8";
  for (const char* proj : {"k_proj", "v_proj"}) {
    m.add(attn + "." + proj + ".kv_cache_scale",
          qconf::gen::float_tensor(DType::kF32, {channels},
                                   qconf::gen::FloatDist::grid(1 << 14, 40000, -20), ++m.seed, 9),
          "C8");
    m.add(attn + "." + proj + ".kv_cache_offset",
          qconf::gen::float_tensor(DType::kF32, {channels}, qconf::gen::FloatDist::grid(-4, 4, 0),
                                   ++m.seed, 10),
          "C8");
  }
}

ModelSlim small_model() {
  ModelSlim m;
  m.flt("model.embed_tokens.weight", {32, 64});
  w8a8_mix(m, "model.layers.0.self_attn.o_proj", 24, 40);
  w4a4_dynamic(m, "model.layers.0.mlp.down_proj", 16, 64, true);
  w4a4_dynamic(m, "model.layers.0.mlp.gate_proj", 8, 64, false);
  w4a4_dynamic(m, "model.layers.0.mlp.up_proj", 8, 64, false);
  w4a4_flatquant(m, "model.layers.1.self_attn.o_proj", 16, 128);
  c8(m, "model.layers.0.self_attn", 64);
  return m;
}

// Runs `qconf checkpoint --run` on one layer, then `qconf run` with both implementations.
qconf::conf::Fixture run_and_check(const TempDir& d, const std::string& layer,
                                   const std::string& op, size_t want_cases) {
  const std::string out = (d.path / ("vectors_" + op)).string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + layer +
                          " --run --seed 3 --tokens 3 --out " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  qconf::conf::Fixture f = qconf::conf::load_fixture_file(out + "/" + op + ".json");
  EXPECT_EQ(f.cases.size(), want_cases);
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult c = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(c.code, 0) << impl << "\n" << c.out;
  }
  return f;
}

class SchemeCheckpoints : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("scheme_pipes");
    small_model().write(dir_->path);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* SchemeCheckpoints::dir_ = nullptr;

TEST_F(SchemeCheckpoints, ValidationNamesEveryNewPipelineOp) {
  qconf::ckpt::CheckpointReport r = qconf::ckpt::validate_checkpoint(dir_->str(), {});
  EXPECT_TRUE(r.ok()) << r.text();
  std::map<std::string, std::string> ops;
  for (const auto& l : r.layers) ops[l.prefix] = l.pipeline_op;
  EXPECT_EQ(ops["model.layers.0.self_attn.o_proj"], "scheme_w8a8_mix_linear");
  EXPECT_EQ(ops["model.layers.0.mlp.down_proj"], "scheme_w4a4_dynamic_linear");
  EXPECT_EQ(ops["model.layers.0.mlp.gate_up_proj"], "scheme_w4a4_dynamic_linear");
  EXPECT_EQ(ops["model.layers.1.self_attn.o_proj"], "scheme_w4a4_flatquant_linear");
  EXPECT_EQ(ops["model.layers.0.self_attn"], "scheme_c8_kv_cache");
}

TEST_F(SchemeCheckpoints, W8a8MixLayerRunsAndImplementationsPass) {
  const auto f =
      run_and_check(*dir_, "model.layers.0.self_attn.o_proj", "scheme_w8a8_mix_linear", 1);
  ASSERT_EQ(f.cases.size(), 1u);
  EXPECT_EQ(f.cases[0].inputs.at("weight").shape(), (qconf::Shape{24, 40}));
}

TEST_F(SchemeCheckpoints, W4a4DynamicLayerWithBiasRunsAndTheBiasIsRead) {
  const auto f =
      run_and_check(*dir_, "model.layers.0.mlp.down_proj", "scheme_w4a4_dynamic_linear", 1);
  ASSERT_EQ(f.cases.size(), 1u);
  EXPECT_TRUE(f.cases[0].inputs.count("bias"));
}

TEST_F(SchemeCheckpoints, W4a4DynamicFusedGateUpGivesOneCasePerShardWithoutBias) {
  const auto f =
      run_and_check(*dir_, "model.layers.0.mlp.gate_up_proj", "scheme_w4a4_dynamic_linear", 2);
  for (const auto& c : f.cases) EXPECT_FALSE(c.inputs.count("bias")) << c.id;
}

TEST_F(SchemeCheckpoints, W4a4FlatQuantLayerRunsAndImplementationsPass) {
  const auto f =
      run_and_check(*dir_, "model.layers.1.self_attn.o_proj", "scheme_w4a4_flatquant_linear", 1);
  ASSERT_EQ(f.cases.size(), 1u);
  EXPECT_EQ(f.cases[0].inputs.at("left_trans").shape(), (qconf::Shape{8, 8}));
  EXPECT_EQ(f.cases[0].inputs.at("right_trans").shape(), (qconf::Shape{16, 16}));
}

TEST_F(SchemeCheckpoints, C8KvCacheRunsWithSeededKeysAndValues) {
  const auto f = run_and_check(*dir_, "model.layers.0.self_attn", "scheme_c8_kv_cache", 1);
  ASSERT_EQ(f.cases.size(), 1u);
  // C = 64 channels: head_size 64, one kv head; 3 tokens.
  EXPECT_EQ(f.cases[0].inputs.at("key").shape(), (qconf::Shape{3, 1, 64}));
  EXPECT_EQ(f.cases[0].inputs.at("k_proj.kv_cache_scale").shape(), (qconf::Shape{64}));
}

TEST(SchemeCheckpointErrors, C8ChannelsNotAMultipleOf32AreRejectedNamingTheLayer) {
  TempDir d("c8_bad");
  ModelSlim m;
  c8(m, "model.layers.0.self_attn", 40);
  m.write(d.path);
  CmdResult r =
      run_qconf("checkpoint " + d.str() + " --layer model.layers.0.self_attn --run --out " +
                (d.path / "o").string());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("not a multiple of 32"));
  EXPECT_THAT(r.out, HasSubstr("model.layers.0.self_attn"));
}

}  // namespace
