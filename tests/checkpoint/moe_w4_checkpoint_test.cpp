// The int4 MoE layers end to end from checkpoints: a W4A8_DYNAMIC ModelSlim checkpoint, an
// LLM-Compressor (compressed-tensors) W4A8_DYNAMIC one and a compressed-tensors W4A16 one, each
// run by `qconf checkpoint DIR --layer ...experts --run` (scheme_w4a8_dynamic_moe_layer /
// scheme_w4a16_moe_layer) and checked by `qconf run` for both implementations; the format
// param and the inputs a format lacks (LLM-Compressor scale_bias), the fused w13 weight_shape,
// and a missing declared tensor named in the error.
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

const char* kMoe = "model.layers.0.mlp.experts";
constexpr int64_t kE = 3;

Tensor int4_values(const Shape& s, uint64_t seed) {
  return qconf::gen::int_tensor(DType::kI8, s, -8, 7, seed, 6);
}

// ModelSlim W4A8_DYNAMIC: per expert gate/up weight int8 [I/2, H] (two int4 per byte), down
// [H/2, I]; fp32 weight_scale / weight_offset; scale_bias [I, 1] / [H, 16].
ModelSlim w4a8_modelslim(int64_t inter, int64_t h) {
  ModelSlim m;
  for (int64_t e = 0; e < kE; ++e)
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
      const bool down = std::string(proj) == "down_proj";
      const std::string p = std::string(kMoe) + "." + std::to_string(e) + "." + proj;
      const int64_t n = down ? h : inter, k = down ? inter : h;
      m.add(p + ".weight", i8({n / 2, k}, ++m.seed), "W4A8_DYNAMIC");
      m.add(p + ".weight_scale", f32({n, 1}, ++m.seed), "W4A8_DYNAMIC");
      m.add(p + ".weight_offset", f32({n, 1}, ++m.seed), "W4A8_DYNAMIC");
      m.add(p + ".scale_bias", f32({n, down ? 16 : 1}, ++m.seed), "W4A8_DYNAMIC");
    }
  return m;
}

// A compressed-tensors checkpoint of the experts only: tensors + config.json with one group.
void write_ct(const fs::path& dir, const std::vector<qconf::ckpt::StTensor>& t, const json& group) {
  qconf::ckpt::write_safetensors((dir / "model.safetensors").string(), t);
  json qc = {{"quant_method", "compressed-tensors"},
             {"format", "pack-quantized"},
             {"config_groups", {{"group_0", group}}}};
  write_text(
      dir / "config.json",
      json({{"model_type", "qwen3_moe"}, {"torch_dtype", "bfloat16"}, {"quantization_config", qc}})
          .dump());
}

// LLM-Compressor W4A8_DYNAMIC: weight int8 [N, K] holding int4 values, bf16 weight_scale [N, 1];
// no scale_bias (computed at load).
void write_w4a8_llmc(const fs::path& dir, int64_t inter, int64_t h) {
  std::vector<qconf::ckpt::StTensor> t;
  uint64_t seed = 100;
  for (int64_t e = 0; e < kE; ++e)
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
      const bool down = std::string(proj) == "down_proj";
      const std::string p = std::string(kMoe) + "." + std::to_string(e) + "." + proj;
      const int64_t n = down ? h : inter, k = down ? inter : h;
      t.push_back({p + ".weight", int4_values({n, k}, ++seed), ""});
      t.push_back({p + ".weight_scale", f16ish(DType::kBF16, {n, 1}, ++seed), ""});
    }
  write_ct(dir, t,
           {{"targets", {"re:.*experts.*"}},
            {"weights", {{"num_bits", 4}, {"type", "int"}, {"strategy", "channel"}}},
            {"input_activations",
             {{"num_bits", 8}, {"type", "int"}, {"strategy", "token"}, {"dynamic", true}}}});
}

// compressed-tensors W4A16 (pack-quantized, g = 32): weight_packed int32 [N, K/8], bf16
// weight_scale [N, K/32], weight_shape int32 [2].
void write_w4a16(const fs::path& dir, int64_t inter, int64_t h) {
  std::vector<qconf::ckpt::StTensor> t;
  uint64_t seed = 200;
  for (int64_t e = 0; e < kE; ++e)
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
      const bool down = std::string(proj) == "down_proj";
      const std::string p = std::string(kMoe) + "." + std::to_string(e) + "." + proj;
      const int64_t n = down ? h : inter, k = down ? inter : h;
      t.push_back({p + ".weight_packed",
                   qconf::gen::int_tensor(DType::kI32, {n, k / 8}, INT32_MIN, INT32_MAX, ++seed, 7),
                   ""});
      t.push_back({p + ".weight_scale", f16ish(DType::kBF16, {n, k / 32}, ++seed), ""});
      t.push_back({p + ".weight_shape", Tensor::from<int32_t>({2}, {int32_t(n), int32_t(k)}), ""});
    }
  write_ct(
      dir, t,
      {{"targets", {"re:.*experts.*"}},
       {"weights", {{"num_bits", 4}, {"type", "int"}, {"strategy", "group"}, {"group_size", 32}}}});
}

// Runs the layer and checks the written fixture with both implementations; returns it.
qconf::conf::Fixture run_layer(const TempDir& d, const std::string& op) {
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe +
                          " --run --seed 3 --tokens 5 --out " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  qconf::conf::Fixture f = qconf::conf::load_fixture_file(out + "/" + op + ".json");
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult c = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(c.code, 0) << impl << "\n" << c.out;
  }
  return f;
}

TEST(CheckpointMoeW4, W4a8ModelSlimLayerRunsAndBothImplementationsPass) {
  TempDir d("w4a8_ms");
  w4a8_modelslim(16, 32).write(d.path);
  qconf::conf::Fixture f = run_layer(d, "scheme_w4a8_dynamic_moe_layer");
  ASSERT_EQ(f.cases.size(), 1u);
  const auto& c = f.cases[0];
  EXPECT_EQ(c.params.at("format"), "modelslim");
  EXPECT_EQ(c.inputs.at("w13_weight").shape(), (qconf::Shape{kE, 16, 32}));
  EXPECT_EQ(c.inputs.at("w13_scale_bias").shape(), (qconf::Shape{kE, 32, 1}));
  EXPECT_EQ(c.inputs.at("w2_scale_bias").shape(), (qconf::Shape{kE, 32, 16}));
  EXPECT_EQ(c.inputs.at("x").shape(), (qconf::Shape{5, 32}));
}

TEST(CheckpointMoeW4, W4a8LlmCompressorLayerRunsWithoutScaleBias) {
  TempDir d("w4a8_llmc");
  write_w4a8_llmc(d.path, 16, 32);
  qconf::conf::Fixture f = run_layer(d, "scheme_w4a8_dynamic_moe_layer");
  ASSERT_EQ(f.cases.size(), 1u);
  const auto& c = f.cases[0];
  EXPECT_EQ(c.params.at("format"), "llmcompressor");
  EXPECT_EQ(c.inputs.at("w13_weight").shape(), (qconf::Shape{kE, 32, 32}));
  EXPECT_EQ(c.inputs.count("w13_scale_bias"), 0u);
  EXPECT_EQ(c.inputs.count("w2_scale_bias"), 0u);
  // The load computed it (8 * sum W * s): a stage of the fixture.
  EXPECT_TRUE(std::any_of(c.stages.begin(), c.stages.end(),
                          [](const auto& s) { return s.name == "w13_scale_bias"; }));
}

TEST(CheckpointMoeW4, W4a16LayerRunsAndW13WeightShapeIsTheFusedShape) {
  TempDir d("w4a16");
  write_w4a16(d.path, 64, 64);
  qconf::conf::Fixture f = run_layer(d, "scheme_w4a16_moe_layer");
  ASSERT_EQ(f.cases.size(), 1u);
  const auto& in = f.cases[0].inputs;
  const Tensor& s13 = in.at("w13_weight_shape");
  ASSERT_EQ(s13.shape(), (qconf::Shape{kE, 2}));
  const Tensor& s2 = in.at("w2_weight_shape");
  for (int64_t e = 0; e < kE; ++e) {
    EXPECT_EQ(s13.int_at(2 * e), 128);  // gate rows + up rows
    EXPECT_EQ(s13.int_at(2 * e + 1), 64);
    EXPECT_EQ(s2.int_at(2 * e), 64);
    EXPECT_EQ(s2.int_at(2 * e + 1), 64);
  }
  EXPECT_EQ(in.at("w13_weight_packed").shape(), (qconf::Shape{kE, 128, 8}));
}

// scale_bias is declared for ModelSlim W4A8: absent, it is an error naming it (only a format that
// does not declare an input may lack it).
TEST(CheckpointMoeW4, MissingDeclaredScaleBiasIsNamed) {
  TempDir d("w4a8_nosb");
  ModelSlim m = w4a8_modelslim(16, 32);
  const std::string missing = std::string(kMoe) + ".0.gate_proj.scale_bias";
  m.tensors.erase(std::remove_if(m.tensors.begin(), m.tensors.end(),
                                 [&](const auto& t) { return t.name == missing; }),
                  m.tensors.end());
  m.desc.erase(missing);
  m.write(d.path);
  qconf::ckpt::Checkpoint c = qconf::ckpt::open_checkpoint(d.str(), {});
  TempDir good("w4a8_ms_good");
  w4a8_modelslim(16, 32).write(good.path);
  qconf::ckpt::CheckpointReport rep = qconf::ckpt::validate_checkpoint(good.str(), {});
  const qconf::ckpt::LayerReport* l = qconf::ckpt::find_layer(rep, kMoe);
  ASSERT_NE(l, nullptr) << rep.text();
  try {
    qconf::conf::checkpoint_layer_fixture(c, *l, 1, 3);
    ADD_FAILURE() << "no error for the missing " << missing;
  } catch (const qconf::ckpt::CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr(missing));
  }
}

// A float16 W4A8_DYNAMIC model (both formats): `--run` stops with an error citing upstream's
// forced bf16 gmm2 output (vllm-ascend moe_mlp.py quant_apply_mlp) and writes no vectors; the
// same checkpoint in bfloat16 runs.
TEST(CheckpointMoeW4, W4a8Fp16ModelIsRejectedCitingUpstream) {
  for (const bool llmc : {false, true}) {
    TempDir d(llmc ? "w4a8_llmc_fp16" : "w4a8_ms_fp16");
    if (llmc)
      write_w4a8_llmc(d.path, 16, 32);
    else
      w4a8_modelslim(16, 32).write(d.path);
    const std::string out = (d.path / "vectors").string();
    const std::string cmd =
        "checkpoint " + d.str() + " --layer " + kMoe + " --run --seed 3 --tokens 5 --out " + out;
    CmdResult r = run_qconf(cmd + " --params-dtype float16");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_THAT(r.out, HasSubstr("params_dtype float16 is not supported")) << r.out;
    EXPECT_THAT(r.out, HasSubstr("vllm_ascend/ops/fused_moe/moe_mlp.py quant_apply_mlp")) << r.out;
    EXPECT_FALSE(fs::exists(out + "/scheme_w4a8_dynamic_moe_layer.json"));
    CmdResult ok = run_qconf(cmd + " --params-dtype bfloat16");
    EXPECT_EQ(ok.code, 0) << ok.out;
  }
}

// W4A8_DYNAMIC ModelSlim under TP 2 (I 16 -> 8 per rank): w13 bytes split per half, w2's input
// columns split, the down scale_bias whole with params tp / tp_rank so the load takes the rank's
// 8 of 16 columns; gmm1's int32 accumulators (column-parallel: x is whole, the same dispatch) are
// the rank's columns of the tp = 1 ones exactly; the rank's vectors pass both implementations.
TEST(CheckpointMoeW4, W4a8ModelSlimTpRanksSplitTheIntermediateSize) {
  TempDir d("w4a8_ms_tp");
  w4a8_modelslim(16, 32).write(d.path);
  auto run = [&](int64_t tp, int64_t rank) {
    const std::string out = (d.path / ("v" + std::to_string(tp) + std::to_string(rank))).string();
    CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe +
                            " --run --seed 3 --tokens 5 --tp-size " + std::to_string(tp) +
                            " --tp-rank " + std::to_string(rank) + " --out " + out);
    EXPECT_EQ(r.code, 0) << r.out;
    if (tp > 1)
      for (const char* impl : {"reference", "optimized"}) {
        CmdResult c = run_qconf("run --golden-dir " + out + " --impl " + impl);
        EXPECT_EQ(c.code, 0) << impl << "\n" << c.out;
      }
    return qconf::conf::load_fixture_file(out + "/scheme_w4a8_dynamic_moe_layer.json").cases.at(0);
  };
  auto stage = [](const qconf::conf::Case& c, const std::string& n) -> const Tensor& {
    for (const auto& s : c.stages)
      if (s.name == n) return s.expected;
    throw std::runtime_error("no stage " + n);
  };
  const qconf::conf::Case full = run(1, 0);
  for (int64_t r = 0; r < 2; ++r) {
    const qconf::conf::Case c = run(2, r);
    EXPECT_EQ(c.params.at("tp"), 2);
    EXPECT_EQ(c.params.at("tp_rank"), r);
    EXPECT_EQ(c.inputs.at("w13_weight").shape(), (qconf::Shape{kE, 8, 32}));
    EXPECT_EQ(c.inputs.at("w2_weight").shape(), (qconf::Shape{kE, 16, 8}));
    EXPECT_EQ(c.inputs.at("w2_scale_bias").shape(), (qconf::Shape{kE, 32, 16}));
    const Tensor& cols = stage(c, "w2_scale_bias_cols");
    ASSERT_EQ(cols.shape(), (qconf::Shape{kE, 32, 8}));
    const Tensor& sb = c.inputs.at("w2_scale_bias");
    for (int64_t j = 0; j < kE * 32; ++j)
      EXPECT_EQ(std::memcmp(cols.bytes() + j * 8 * 4, sb.bytes() + (j * 16 + 8 * r) * 4, 8 * 4), 0);
    for (const char* acc : {"gmm1_acc_hi", "gmm1_acc_lo"}) {
      const Tensor &a = stage(c, acc), &f = stage(full, acc);
      const int64_t m = f.dim(0), n = f.dim(1), q = n / 4;  // 2I = 32: gate 16, up 16; 8 + 8
      ASSERT_EQ(a.shape(), (qconf::Shape{m, n / 2}));
      for (int64_t t = 0; t < m; ++t)
        for (int64_t j = 0; j < n / 2; ++j) {
          const int64_t src = j < q ? r * q + j : 2 * q + r * q + (j - q);
          EXPECT_EQ(a.data<int32_t>()[t * (n / 2) + j], f.data<int32_t>()[t * n + src])
              << acc << " rank " << r << " row " << t << " col " << j;
        }
    }
  }
}

// LLM-Compressor W4A8 (no scale_bias: computed at load from the rank's weights) and W4A16
// (packed w2 columns I/8 and group scales I/32 split, weight_shape [H, I/tp]) under TP 2: the
// rank's vectors run and pass both implementations.
TEST(CheckpointMoeW4, LlmCompressorAndW4a16TpRankVectorsPass) {
  for (const bool w4a16 : {false, true}) {
    TempDir d(w4a16 ? "w4a16_tp" : "w4a8_llmc_tp");
    if (w4a16)
      write_w4a16(d.path, 128, 64);
    else
      write_w4a8_llmc(d.path, 16, 32);
    const std::string out = (d.path / "v").string();
    CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe +
                            " --run --seed 3 --tokens 5 --tp-size 2 --tp-rank 1 --out " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    const std::string op = w4a16 ? "scheme_w4a16_moe_layer" : "scheme_w4a8_dynamic_moe_layer";
    const qconf::conf::Case c =
        qconf::conf::load_fixture_file(out + "/" + op + ".json").cases.at(0);
    if (w4a16) {
      EXPECT_EQ(c.inputs.at("w2_weight_packed").shape(), (qconf::Shape{kE, 64, 8}));
      EXPECT_EQ(c.inputs.at("w2_weight_shape").int_at(1), 64);
      EXPECT_EQ(c.inputs.at("w13_weight_shape").int_at(0), 128);
    } else {
      EXPECT_EQ(c.inputs.at("w13_weight").shape(), (qconf::Shape{kE, 16, 32}));
    }
    for (const char* impl : {"reference", "optimized"}) {
      CmdResult v = run_qconf("run --golden-dir " + out + " --impl " + impl);
      EXPECT_EQ(v.code, 0) << op << " " << impl << "\n" << v.out;
    }
  }
}

}  // namespace
