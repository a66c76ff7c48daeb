// Checkpoint directories end to end: validation of ModelSlim and compressed-tensors checkpoints
// built here, one broken directory per error, `qconf checkpoint` and `qconf list schemes`, and
// layer pipelines run on real weights and checked by `qconf run`.
#include "qconf/checkpoint/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ckpt_builder.h"
#include "qconf/conformance/checkpoint_cmd.h"
#include "qconf/conformance/op.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/quant_matmul.h"

namespace {

using namespace ckpt_test;
using qconf::ckpt::CheckpointOptions;
using qconf::ckpt::CheckpointReport;
using qconf::ckpt::LayerReport;
using qconf::ckpt::validate_checkpoint;
using ::testing::HasSubstr;

const LayerReport& layer(const CheckpointReport& r, const std::string& p) {
  const LayerReport* l = qconf::ckpt::find_layer(r, p);
  if (!l) throw std::runtime_error("no layer " + p + " in\n" + r.text());
  return *l;
}
std::string all_problems(const CheckpointReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += p + "\n";
  for (const auto& l : r.layers)
    for (const auto& p : l.problems) s += p + "\n";
  return s;
}

// Every op a scheme names (its layer pipeline, or the ops checking parts of it) is a registered
// conformance op: a renamed op must not leave `qconf checkpoint --run` or `list schemes` dangling.
TEST(SchemeRegistry, EveryNamedOpIsRegistered) {
  int named = 0;
  for (const qconf::schemes::SchemeDef* d : qconf::schemes::SchemeRegistry::instance().all()) {
    std::vector<std::string> ops = d->part_ops;
    if (!d->pipeline_op.empty()) ops.push_back(d->pipeline_op);
    for (const auto& op : ops) {
      ++named;
      EXPECT_NE(qconf::conf::OpRegistry::instance().find(op), nullptr)
          << d->quant_type << "/" << d->layer_type << " names " << op;
    }
  }
  EXPECT_GE(named, 10);  // 8 layer pipelines and 2 part ops when written
}

TEST(CheckpointModelSlim, ValidCheckpointListsTheSchemeOfEveryLayer) {
  TempDir d("ms_ok");
  small_modelslim().write(d.path);
  CheckpointReport r = validate_checkpoint(d.str(), {});
  EXPECT_TRUE(r.ok()) << r.text();
  EXPECT_EQ(r.format, "modelslim");
  EXPECT_EQ(r.params_dtype, "BF16");
  const LayerReport& qkv = layer(r, "model.layers.0.self_attn.qkv_proj");
  EXPECT_EQ(qkv.quant_type, "W8A8_DYNAMIC");
  EXPECT_EQ(qkv.shards.size(), 3u);
  EXPECT_EQ(qkv.pipeline_op, "scheme_w8a8_dynamic_linear");
  EXPECT_EQ(layer(r, "model.layers.0.self_attn.o_proj").quant_type, "W8A8");
  EXPECT_EQ(layer(r, "model.layers.0.mlp.gate_up_proj").quant_type, "W8A16");
  EXPECT_EQ(layer(r, "model.layers.0.mlp.down_proj").symbols.at("K"), 24);
  const LayerReport& moe = layer(r, "model.layers.1.mlp.experts");
  EXPECT_EQ(moe.quant_type, "W8A8_DYNAMIC");
  EXPECT_EQ(moe.experts, 2);
  EXPECT_EQ(moe.symbols.at("I"), 8);
  EXPECT_EQ(moe.symbols.at("H"), 16);
  EXPECT_EQ(moe.pipeline_op, "scheme_w8a8_dynamic_moe");
  EXPECT_EQ(layer(r, "lm_head").quant_type, "FLOAT");
}

TEST(CheckpointCompressedTensors, ValidCheckpointDetectsSchemesFromConfig) {
  TempDir d("ct_ok");
  std::vector<qconf::ckpt::StTensor> t;
  const int64_t h = 64, inter = 32;
  for (const char* p : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.o_proj"}) {
    t.push_back({std::string(p) + ".weight", i8({h, h}, 1), ""});
    t.push_back({std::string(p) + ".weight_scale", f16ish(DType::kBF16, {h, 1}, 2), ""});
  }
  for (int e = 0; e < 2; ++e)
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
      const bool down = std::string(proj) == "down_proj";
      const std::string p = "model.layers.0.mlp.experts." + std::to_string(e) + "." + proj;
      const int64_t n = down ? h : inter, k = down ? inter : h;
      t.push_back({p + ".weight_packed", i32({n, k / 8}, 3), ""});
      t.push_back({p + ".weight_scale", f16ish(DType::kBF16, {n, k / 32}, 4), ""});
      t.push_back({p + ".weight_shape", Tensor::from<int32_t>({2}, {int32_t(n), int32_t(k)}), ""});
    }
  t.push_back({"lm_head.weight", f16ish(DType::kBF16, {8, h}, 5), ""});
  qconf::ckpt::write_safetensors((d.path / "model.safetensors").string(), t);
  json qc = {
      {"quant_method", "compressed-tensors"},
      {"format", "pack-quantized"},
      {"ignore", {"lm_head"}},
      {"config_groups",
       {{"group_0",
         {{"targets", {"re:.*self_attn.*"}},
          {"weights", {{"num_bits", 8}, {"type", "int"}, {"strategy", "channel"}}},
          {"input_activations",
           {{"num_bits", 8}, {"type", "int"}, {"strategy", "token"}, {"dynamic", true}}}}},
        {"group_1",
         {{"targets", {"re:.*experts.*"}},
          {"weights",
           {{"num_bits", 4}, {"type", "int"}, {"strategy", "group"}, {"group_size", 32}}}}}}}};
  write_text(
      d.path / "config.json",
      json({{"model_type", "qwen3_moe"}, {"torch_dtype", "bfloat16"}, {"quantization_config", qc}})
          .dump());
  CheckpointReport r = validate_checkpoint(d.str(), {});
  EXPECT_TRUE(r.ok()) << r.text();
  EXPECT_EQ(r.format, "compressed-tensors");
  EXPECT_EQ(layer(r, "model.layers.0.self_attn.q_proj").quant_type, "W8A8_DYNAMIC");
  const LayerReport& moe = layer(r, "model.layers.0.mlp.experts");
  EXPECT_EQ(moe.quant_type, "W4A16");
  EXPECT_EQ(moe.symbols.at("I"), inter);
}

TEST(CheckpointModelSlim, AttentionAndKvCacheLayersAreValidated) {
  TempDir d("attn");
  ModelSlim m;
  const std::string a = "model.layers.0.self_attn";
  m.desc["fa_quant_type"] = "FAKQuant";
  m.desc["kv_cache_type"] = "C8";
  for (const char* t : {"fa_q", "fa_k", "fa_v"}) {
    const int64_t heads = std::string(t) == "fa_q" ? 8 : 2;
    m.add(a + "." + t + ".scale", f32({heads, 1}, 1), "FAKQuant");
    m.add(a + "." + t + ".offset", Tensor::from<int8_t>({heads, 1}, std::vector<int8_t>(heads, 0)),
          "FAKQuant");
  }
  for (const char* t : {"k_proj", "v_proj"})
    for (const char* f : {"kv_cache_scale", "kv_cache_offset"})
      m.add(a + "." + t + "." + f, f32({64}, 2), "C8");
  m.write(d.path);
  CheckpointReport r = validate_checkpoint(d.str(), {});
  EXPECT_TRUE(r.ok()) << r.text();
  EXPECT_EQ(r.layers.size(), 2u);
  for (const auto& l : r.layers) {
    if (l.layer_type == "attention") {
      EXPECT_EQ(l.quant_type, "FAKQuant");
      EXPECT_EQ(l.symbols.at("Hq"), 8);
      EXPECT_EQ(l.symbols.at("Hkv"), 2);
    } else {
      EXPECT_EQ(l.layer_type, "kv_cache");
      EXPECT_EQ(l.quant_type, "C8");
      EXPECT_EQ(l.symbols.at("C"), 64);
    }
  }
  // fa_v with 3 heads while fa_k has 2: a shape problem naming Hkv.
  for (auto& t : m.tensors)
    if (t.name == a + ".fa_v.scale") t.t = f32({3, 1}, 3);
  m.write(d.path);
  EXPECT_THAT(all_problems(validate_checkpoint(d.str(), {})), HasSubstr("declares Hkv = 2"));
}

// Divergence 91: vllm-ascend sizes W4A16 scales with g = 32 whatever the checkpoint's group size.
TEST(CheckpointCompressedTensors, W4a16GroupSize128DoesNotFitTheGroup32Parameter) {
  TempDir d("ct_g128");
  std::vector<qconf::ckpt::StTensor> t;
  const int64_t h = 256, inter = 128;
  for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
    const bool down = std::string(proj) == "down_proj";
    const std::string p = std::string("model.layers.0.mlp.experts.0.") + proj;
    const int64_t n = down ? h : inter, k = down ? inter : h;
    t.push_back({p + ".weight_packed", i32({n, k / 8}, 3), ""});
    t.push_back({p + ".weight_scale", f16ish(DType::kBF16, {n, k / 128}, 4), ""});
    t.push_back({p + ".weight_shape", Tensor::from<int32_t>({2}, {int32_t(n), int32_t(k)}), ""});
  }
  qconf::ckpt::write_safetensors((d.path / "model.safetensors").string(), t);
  json qc = {
      {"quant_method", "compressed-tensors"},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}},
          {"weights",
           {{"num_bits", 4}, {"type", "int"}, {"strategy", "group"}, {"group_size", 128}}}}}}}};
  write_text(d.path / "config.json", json({{"quantization_config", qc}}).dump());
  CheckpointReport r = validate_checkpoint(d.str(), {});
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(all_problems(r), HasSubstr("declares H/g = 8"));
}

TEST(CheckpointCompressedTensors, W4a16LinearIsUnregistered) {
  TempDir d("ct_w4a16_linear");
  qconf::ckpt::write_safetensors(
      (d.path / "model.safetensors").string(),
      {{"model.layers.0.self_attn.o_proj.weight_packed", i32({16, 4}, 1), ""},
       {"model.layers.0.self_attn.o_proj.weight_scale", f16ish(DType::kBF16, {16, 1}, 2), ""}});
  json qc = {
      {"quant_method", "compressed-tensors"},
      {"config_groups",
       {{"group_0",
         {{"targets", {"Linear"}},
          {"weights",
           {{"num_bits", 4}, {"type", "int"}, {"strategy", "group"}, {"group_size", 32}}}}}}}};
  write_text(d.path / "config.json", json({{"quantization_config", qc}}).dump());
  CheckpointReport r = validate_checkpoint(d.str(), {});
  EXPECT_THAT(all_problems(r), HasSubstr("(W4A16, linear): W4A16 exists for moe"));
}

// ---- one broken directory per error ---------------------------------------------------------
CheckpointReport broken(const std::string& name, const std::function<void(ModelSlim&)>& damage,
                        CheckpointOptions o = {}) {
  TempDir d(name);
  ModelSlim m = small_modelslim();
  damage(m);
  m.write(d.path);
  CheckpointReport r = validate_checkpoint(d.str(), o);
  EXPECT_FALSE(r.ok()) << name << " passed:\n" << r.text();
  return r;
}

TEST(CheckpointErrors, MissingTensorNamesTensorAndScheme) {
  CheckpointReport r = broken("missing_tensor", [](ModelSlim& m) {
    for (auto it = m.tensors.begin(); it != m.tensors.end(); ++it)
      if (it->name == "model.layers.0.self_attn.o_proj.deq_scale") {
        m.tensors.erase(it);
        break;
      }
  });
  const std::string p = all_problems(r);
  EXPECT_THAT(p, HasSubstr("tensor model.layers.0.self_attn.o_proj.deq_scale is missing"));
  EXPECT_THAT(p, HasSubstr("W8A8/linear"));
  EXPECT_THAT(p, HasSubstr("no safetensors file holds"));
}

TEST(CheckpointErrors, DtypeMismatchNamesFileTensorAndDeclaration) {
  // deq_scale int64 in a bf16 model (int64 belongs to fp16 models).
  CheckpointReport r = broken("dtype", [](ModelSlim& m) {
    for (auto& t : m.tensors)
      if (t.name == "model.layers.0.self_attn.o_proj.deq_scale")
        t.t = Tensor::from<int64_t>({16}, std::vector<int64_t>(16, 1));
  });
  const std::string p = all_problems(r);
  EXPECT_THAT(p, HasSubstr("model.safetensors: tensor model.layers.0.self_attn.o_proj.deq_scale: "
                           "dtype is I64"));
  EXPECT_THAT(p, HasSubstr("params dtype BF16"));
}

TEST(CheckpointErrors, ShapeMismatchNamesTheSymbolAndWhereItCameFrom) {
  CheckpointReport r = broken("shape", [](ModelSlim& m) {
    for (auto& t : m.tensors)
      if (t.name == "model.layers.0.mlp.down_proj.weight_scale") t.t = f32({17, 1}, 3);
  });
  const std::string p = all_problems(r);
  EXPECT_THAT(p, HasSubstr("tensor model.layers.0.mlp.down_proj.weight_scale: shape [17, 1] dim 0 "
                           "is 17, scheme W8A16 declares N = 16"));
  EXPECT_THAT(p, HasSubstr("from model.layers.0.mlp.down_proj.weight dim 0"));
}

TEST(CheckpointErrors, ShardsThatDisagree) {
  CheckpointReport r = broken(
      "mixed", [](ModelSlim& m) { m.desc["model.layers.0.self_attn.k_proj.weight"] = "W8A16"; });
  EXPECT_THAT(layer(r, "model.layers.0.self_attn.qkv_proj").problems.at(0),
              HasSubstr("mixed_shards"));
}

TEST(CheckpointErrors, PartialFloat) {
  CheckpointReport r = broken(
      "partial", [](ModelSlim& m) { m.desc["model.layers.0.mlp.up_proj.weight"] = "FLOAT"; });
  EXPECT_THAT(layer(r, "model.layers.0.mlp.gate_up_proj").problems.at(0),
              HasSubstr("partial_float"));
}

TEST(CheckpointErrors, MissingKey) {
  CheckpointReport r = broken("missing_key", [](ModelSlim& m) {
    m.desc.erase("model.layers.0.self_attn.o_proj.weight_offset");
  });
  EXPECT_THAT(all_problems(r),
              HasSubstr("tensor \"model.layers.0.self_attn.o_proj.weight_offset\" has no entry"));
  EXPECT_THAT(all_problems(r), HasSubstr("missing_key"));
}

TEST(CheckpointErrors, UnregisteredPair) {
  CheckpointReport r = broken("unregistered", [](ModelSlim& m) {
    m.desc["model.layers.0.self_attn.o_proj.weight"] = "W4A16";
  });
  const std::string p = layer(r, "model.layers.0.self_attn.o_proj").problems.at(0);
  EXPECT_THAT(p, HasSubstr("(W4A16, linear)"));
  EXPECT_THAT(p, HasSubstr("NotImplementedError"));
}

TEST(CheckpointErrors, ExpertsThatDisagreeWithExpertZero) {
  CheckpointReport r = broken("experts", [](ModelSlim& m) {
    m.desc["model.layers.1.mlp.experts.1.down_proj.weight"] = "W8A16";
  });
  EXPECT_THAT(all_problems(r), HasSubstr("expert 0 decides"));
}

TEST(CheckpointErrors, PrefixGotchaIsFlagged) {
  CheckpointReport r = broken("gotcha", [](ModelSlim& m) {
    m.w8a8_dynamic("model.layers.0.mlp.gate", 4, 16);  // a router that prefixes gate_proj
    m.desc["model.layers.0.mlp.gate_proj.weight"] = "FLOAT";
    m.desc["model.layers.0.mlp.up_proj.weight"] = "FLOAT";
  });
  const LayerReport& g = layer(r, "model.layers.0.mlp.gate");
  EXPECT_EQ(g.quant_type, "FLOAT");  // what vllm-ascend does
  EXPECT_THAT(g.problems.at(0), HasSubstr("prefix-match gotcha"));
}

TEST(CheckpointErrors, MalformedSafetensorsBecomeAReportProblem) {
  TempDir d("malformed");
  small_modelslim().write(d.path);
  const fs::path f = d.path / "model.safetensors";
  const auto size = fs::file_size(f);
  fs::resize_file(f, size - 3);
  CheckpointReport r = validate_checkpoint(d.str(), {});
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0], HasSubstr(f.string()));
  EXPECT_THAT(r.problems[0], HasSubstr("truncated"));
}

TEST(CheckpointErrors, W4a8GroupSizeIsRejected) {
  TempDir d("w4a8");
  ModelSlim m;
  const int64_t h = 16, inter = 8;
  for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
    const bool down = std::string(proj) == "down_proj";
    const std::string p = std::string("model.layers.0.mlp.experts.0.") + proj;
    m.add(p + ".weight", i8({down ? h / 2 : inter / 2, down ? inter : h}, 1), "W4A8_DYNAMIC");
    m.add(p + ".weight_scale", f32({down ? h : inter, 1}, 2), "W4A8_DYNAMIC");
    m.add(p + ".weight_offset", f32({down ? h : inter, 1}, 3), "W4A8_DYNAMIC");
    m.add(p + ".scale_bias", f32({down ? h : inter, down ? 16 : 1}, 4), "W4A8_DYNAMIC");
  }
  m.write(d.path);
  CheckpointReport ok = validate_checkpoint(d.str(), {});
  EXPECT_TRUE(ok.ok()) << ok.text();
  m.desc["group_size"] = 64;
  m.write(d.path);
  EXPECT_THAT(all_problems(validate_checkpoint(d.str(), {})), HasSubstr("per-channel only"));
}

// ---- the command line -----------------------------------------------------------------------
TEST(CheckpointCli, ListSchemesShowsEverySchemeAndItsLayerTypes) {
  CmdResult r = run_qconf("list schemes --tensors");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("W8A8_DYNAMIC"));
  EXPECT_THAT(r.out, HasSubstr("linear, moe"));
  EXPECT_THAT(r.out, HasSubstr("deq_scale"));
  EXPECT_THAT(r.out, HasSubstr("not in vllm-ascend's registry"));
}

TEST(CheckpointCli, ReportExitsNonZeroOnAnyProblem) {
  TempDir d("cli");
  ModelSlim m = small_modelslim();
  m.write(d.path);
  CmdResult ok = run_qconf("checkpoint " + d.str());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("model.layers.0.self_attn.qkv_proj  linear  W8A8_DYNAMIC"));
  m.desc["model.layers.0.self_attn.k_proj.weight"] = "W8A16";
  m.write(d.path);
  CmdResult bad = run_qconf("checkpoint " + d.str());
  EXPECT_EQ(bad.code, qconf::conf::kCkptProblems) << bad.out;
  EXPECT_THAT(bad.out, HasSubstr("mixed_shards"));
}

TEST(CheckpointCli, NotImplementedPipelineHasItsOwnExitCode) {
  // W8A8_MXFP8 (A5) linear: registered and validated, its pipeline not implemented.
  TempDir d("notimpl");
  ModelSlim m;
  m.add("model.layers.0.mlp.down_proj.weight",
        qconf::gen::int_tensor(DType::kU8, {8, 64}, 0, 126, 5, 1), "W8A8_MXFP8", "F8_E4M3");
  m.add("model.layers.0.mlp.down_proj.weight_scale",
        qconf::gen::int_tensor(DType::kU8, {8, 2}, 120, 130, 5, 2), "W8A8_MXFP8");
  m.write(d.path);
  CmdResult r =
      run_qconf("checkpoint " + d.str() + " --layer model.layers.0.mlp.down_proj --run --out " +
                (d.path / "out").string());
  EXPECT_EQ(r.code, qconf::conf::kCkptNotImplemented) << r.out;
  EXPECT_THAT(r.out, HasSubstr("pipeline for W8A8_MXFP8/linear not implemented yet (needs"));
}

// Runs a layer's pipeline from the checkpoint and checks implementations on the fixture.
void run_layer_and_check(const std::string& name, const std::string& layer_prefix,
                         const std::string& op, size_t want_cases, bool fp16 = false) {
  TempDir d(name);
  ModelSlim m = small_modelslim();
  if (fp16) {
    m = ModelSlim();
    m.config["torch_dtype"] = "float16";
    m.w8a8_static("model.layers.0.self_attn.o_proj", 12, 20, true);
  }
  m.write(d.path);
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + layer_prefix +
                          " --run --seed 7 --tokens 3 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  qconf::conf::Fixture f = qconf::conf::load_fixture_file(out + "/" + op + ".json");
  ASSERT_EQ(f.cases.size(), want_cases);
  // The fixture carries the checkpoint's own bytes.
  qconf::ckpt::CheckpointTensors t = qconf::ckpt::CheckpointTensors::open(d.str());
  const std::string first = f.cases[0].id.substr(op.size() + 1);
  bool found = false;
  for (const auto& st : m.tensors)
    if (st.name.find(".weight") != std::string::npos &&
        st.t.bit_equal(f.cases[0].inputs.at("weight")))
      found = true;
  EXPECT_TRUE(found) << first;
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult c = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(c.code, 0) << impl << "\n" << c.out;
  }
}

TEST(CheckpointRun, W8a8DynamicFusedLayerGivesOneCasePerShardAndImplementationsPass) {
  run_layer_and_check("run_dyn", "model.layers.0.self_attn.qkv_proj", "scheme_w8a8_dynamic_linear",
                      3);
}
TEST(CheckpointRun, W8a16LayerRunsAndImplementationsPass) {
  run_layer_and_check("run_w8a16", "model.layers.0.mlp.down_proj", "scheme_w8a16_linear", 1);
}
TEST(CheckpointRun, W8a8StaticBf16AndFp16LayersRunAndImplementationsPass) {
  run_layer_and_check("run_static", "model.layers.0.self_attn.o_proj", "scheme_w8a8_static_linear",
                      1);
  run_layer_and_check("run_static16", "model.layers.0.self_attn.o_proj",
                      "scheme_w8a8_static_linear", 1, true);
}

// A port that skips the load-time rounding of weight_scale is caught by the checkpoint vectors.
TEST(CheckpointRun, SkippingTheLoadRoundingIsCaught) {
  TempDir d("planted");
  ModelSlim m;
  m.w8a8_dynamic("model.layers.0.self_attn.o_proj", 24, 40);
  m.write(d.path);
  qconf::ckpt::Checkpoint c = qconf::ckpt::open_checkpoint(d.str(), {});
  CheckpointReport r = qconf::ckpt::validate_checkpoint(c, {});
  qconf::conf::Fixture f =
      qconf::conf::checkpoint_layer_fixture(c, layer(r, "model.layers.0.self_attn.o_proj"), 1, 4);
  const qconf::conf::Case& cs = f.cases.at(0);
  const qconf::conf::OpDef* def = qconf::conf::OpRegistry::instance().find(f.op);
  qconf::TensorMap in = cs.inputs, out;
  def->reference(cs.params, in, out);
  const qconf::Tensor& want = cs.stages.back().expected;
  EXPECT_TRUE(out.at("y").bit_equal(want));
  // Planted bug: a port that feeds the fp32 checkpoint scale to the matmul unrounded.
  qconf::Tensor wt(DType::kI8, {40, 24});
  const qconf::Tensor& w = in.at("weight");
  for (int64_t n = 0; n < 24; ++n)
    for (int64_t k = 0; k < 40; ++k) wt.data<int8_t>()[k * 24 + n] = w.data<int8_t>()[n * 40 + k];
  qconf::Tensor s32(DType::kF32, {24});
  std::memcpy(s32.bytes(), in.at("weight_scale").bytes(), s32.nbytes());
  qconf::DynQuantStages q = qconf::ref::npu_dynamic_quant(in.at("x"), nullptr, nullptr, {});
  qconf::QuantMatmulConfig mc;
  mc.output_dtype = DType::kBF16;
  qconf::QuantMatmulStages bad =
      qconf::ref::npu_quant_matmul(q.y, wt, s32, nullptr, &q.scale, nullptr, mc);
  EXPECT_FALSE(bad.out.bit_equal(want));
  // The same port with the load rounding agrees.
  qconf::Tensor s16 = qconf::ckpt::to_params_dtype(s32, DType::kBF16);
  qconf::QuantMatmulStages good =
      qconf::ref::npu_quant_matmul(q.y, wt, s16, nullptr, &q.scale, nullptr, mc);
  EXPECT_TRUE(good.out.bit_equal(want));
}

}  // namespace
