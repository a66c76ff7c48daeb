// `qconf checkpoint --run` options: the seeded router_logits redraw when a token's top-k expert
// set is not unique within the router's exp accuracy (draws recorded in the case, reproducible;
// every draw ambiguous: a clear error), and tensor parallelism (`--tp-size N --tp-rank R`): a
// column-parallel layer's rank outputs concatenate exactly to the tp = 1 output, a row-parallel
// layer's int32 accumulators add up exactly and its outputs within their rounding bound, MoE
// experts split along the intermediate size, and shapes that do not divide are named.
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
  co.tp = o.tp_size;
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

// ---- tensor parallelism -------------------------------------------------------------------

const Tensor& stage(const qconf::conf::Case& c, const std::string& name) {
  for (const auto& st : c.stages)
    if (st.name == name) return st.expected;
  throw std::runtime_error(c.id + " has no stage " + name);
}

qconf::conf::CheckpointRunOptions tp_opts(int64_t size, int64_t rank) {
  qconf::conf::CheckpointRunOptions o;
  o.seed = 2;
  o.tokens = 4;
  o.tp_size = size;
  o.tp_rank = rank;
  return o;
}

// Column-parallel (the fused qkv_proj's q/k/v shards, W8A8_DYNAMIC): the ranks' outputs, side by
// side, are the tp = 1 output bit for bit (x is whole on every rank, so its per-token quant is
// the same; every output channel is computed from the same inputs).
TEST(CheckpointTp, ColumnParallelRanksConcatenateToTheTp1Output) {
  TempDir d("tp_col");
  small_modelslim().write(d.path);
  const std::string qkv = "model.layers.0.self_attn.qkv_proj";
  const qconf::conf::Fixture f1 = fixture(d, qkv, tp_opts(1, 0));
  const qconf::conf::Fixture r0 = fixture(d, qkv, tp_opts(2, 0)),
                             r1 = fixture(d, qkv, tp_opts(2, 1));
  ASSERT_EQ(f1.cases.size(), 3u);
  ASSERT_EQ(r0.cases.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(r1.cases[i].id, f1.cases[i].id + "_tp2r1");
    const Tensor &y = stage(f1.cases[i], "y"), &a = stage(r0.cases[i], "y"),
                 &b = stage(r1.cases[i], "y");
    const int64_t m = y.dim(0), n = y.dim(1), h = n / 2;
    ASSERT_EQ(a.shape(), (qconf::Shape{m, h}));
    ASSERT_EQ(b.shape(), (qconf::Shape{m, h}));
    int64_t differ = 0;
    for (int64_t t = 0; t < m; ++t)
      for (int64_t j = 0; j < n; ++j) {
        const uint16_t want = y.data<uint16_t>()[t * n + j];
        const uint16_t got =
            j < h ? a.data<uint16_t>()[t * h + j] : b.data<uint16_t>()[t * h + j - h];
        differ += want != got;
      }
    EXPECT_EQ(differ, 0) << f1.cases[i].id;
    // The ranks share the tp = 1 activation and its quantization.
    EXPECT_EQ(std::memcmp(stage(r1.cases[i], "x_q").bytes(), stage(f1.cases[i], "x_q").bytes(),
                          stage(f1.cases[i], "x_q").nbytes()),
              0);
  }
}

// One unit in the last place of bf16 at |v| (normal range).
double ulp_bf16(double v) {
  if (v == 0) return std::ldexp(1.0, -133);
  int e = 0;
  std::frexp(std::fabs(v), &e);
  return std::ldexp(1.0, e - 1 - 7);
}

// Row-parallel (o_proj, W8A8 static, bf16): rank r gets input channels [8r, 8r + 8) of the
// weight and of x, quant_bias on rank 0 only. The int32 accumulators add up exactly; the outputs
// within the bound derived from the npu_quant_matmul arithmetic, y = bf16(fp32(A) * d) with A =
// acc (+ quant_bias on rank 0), exact in fp32 here (|A| < 2^24): per output
// |y - A d| <= 2^-24 |A d| + ulp_bf16(y) / 2, so |y0 + y1 - y| <= sum over y0, y1, y of
// (2^-23 |A d| + ulp_bf16 / 2) (2^-23: the fp32 rounding with margin for the double
// arithmetic). A port adding quant_bias on both ranks exceeds it (shown below).
TEST(CheckpointTp, RowParallelRanksAddUpToTheTp1Output) {
  TempDir d("tp_row");
  small_modelslim().write(d.path);
  const std::string o = "model.layers.0.self_attn.o_proj";
  const qconf::conf::Case c1 = fixture(d, o, tp_opts(1, 0)).cases.at(0);
  const qconf::conf::Case c0 = fixture(d, o, tp_opts(2, 0)).cases.at(0);
  const qconf::conf::Case cr1 = fixture(d, o, tp_opts(2, 1)).cases.at(0);
  EXPECT_EQ(c0.inputs.at("weight").shape(), (qconf::Shape{16, 8}));
  EXPECT_EQ(c0.inputs.at("x").shape(), (qconf::Shape{4, 8}));
  const Tensor& qb = c1.inputs.at("quant_bias");
  EXPECT_EQ(std::memcmp(c0.inputs.at("quant_bias").bytes(), qb.bytes(), qb.nbytes()), 0);
  for (int64_t n = 0; n < 16; ++n) EXPECT_EQ(cr1.inputs.at("quant_bias").data<int32_t>()[n], 0);
  const Tensor &acc = stage(c1, "acc"), &a0 = stage(c0, "acc"), &a1 = stage(cr1, "acc");
  for (int64_t i = 0; i < acc.numel(); ++i)
    ASSERT_EQ(acc.data<int32_t>()[i], a0.data<int32_t>()[i] + a1.data<int32_t>()[i]) << i;
  const Tensor& deq = c1.inputs.at("deq_scale");  // float32 [N] (bf16 model)
  ASSERT_EQ(deq.dtype(), DType::kF32);
  auto bf = [](const Tensor& t, int64_t i) {
    return static_cast<double>(qconf::num::bf16_to_f32(t.data<uint16_t>()[i]));
  };
  // Rank 1 computed with the bias too (the planted bug): its y, by the op's reference.
  const qconf::conf::OpDef* def = qconf::conf::OpRegistry::instance().find(c1.op);
  ASSERT_NE(def, nullptr);
  qconf::TensorMap bug_in = cr1.inputs, bug_out;
  bug_in["quant_bias"] = qb;
  def->reference(cr1.params, bug_in, bug_out);
  const Tensor &y = stage(c1, "y"), &y0 = stage(c0, "y"), &y1 = stage(cr1, "y");
  int64_t bug_caught = 0;
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t n = 0; n < 16; ++n) {
      const int64_t i = t * 16 + n;
      const double dd = deq.data<float>()[n];
      const double ad = std::fabs((acc.data<int32_t>()[i] + double(qb.data<int32_t>()[n])) * dd);
      const double a0d = std::fabs((a0.data<int32_t>()[i] + double(qb.data<int32_t>()[n])) * dd);
      const double a1d = std::fabs(a1.data<int32_t>()[i] * dd);
      const double bound = std::ldexp(ad + a0d + a1d, -23) +
                           (ulp_bf16(bf(y, i)) + ulp_bf16(bf(y0, i)) + ulp_bf16(bf(y1, i))) / 2;
      EXPECT_LE(std::fabs(bf(y0, i) + bf(y1, i) - bf(y, i)), bound) << t << "," << n;
      bug_caught += std::fabs(bf(y0, i) + bf(bug_out.at("y"), i) - bf(y, i)) > bound;
    }
  EXPECT_GT(bug_caught, 0);
}

// Shapes that do not divide: the error names the layer's tensor and the dim; a module with no
// TP rule is named too.
TEST(CheckpointTp, NonDividingShapeAndUnknownModuleAreNamed) {
  TempDir d("tp_bad");
  ModelSlim m = small_modelslim();
  m.w8a8_dynamic("model.layers.0.self_attn.q_a_proj", 16, 16);  // DeepSeek: ReplicatedLinear
  m.write(d.path);
  try {
    fixture(d, "model.layers.0.self_attn.q_a_proj", tp_opts(2, 0));
    ADD_FAILURE() << "q_a_proj sharded";
  } catch (const qconf::ckpt::CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "model.layers.0.self_attn.q_a_proj");
    EXPECT_THAT(e.what(), HasSubstr("no tensor-parallel rule for this module"));
  }
  try {
    fixture(d, "model.layers.0.self_attn.qkv_proj", tp_opts(3, 1));
    ADD_FAILURE() << "tp 3 accepted";
  } catch (const qconf::ckpt::CheckpointError& e) {
    // k_proj: N = 8 (its shard is drawn before q_proj's N = 16, which would fail alike).
    EXPECT_EQ(e.tensor(), "model.layers.0.self_attn.k_proj.weight");
    EXPECT_THAT(e.what(), HasSubstr("dim 0 of"));
    EXPECT_THAT(e.what(), HasSubstr("not divisible by --tp-size 3"));
  }
  CmdResult r = run_qconf("checkpoint " + d.str() +
                          " --layer model.layers.0.mlp.down_proj --run --tp-size 5 --tp-rank 0 "
                          "--out " +
                          (d.path / "v").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("model.layers.0.mlp.down_proj.weight"));
  EXPECT_THAT(r.out, HasSubstr("dim 1 of"));
  CmdResult bad = run_qconf("checkpoint " + d.str() +
                            " --layer model.layers.0.mlp.down_proj --run --tp-size 2 --tp-rank 2 "
                            "--out " +
                            (d.path / "v").string());
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_THAT(bad.out, HasSubstr("--tp-rank in [0, tp-size)"));
}

// MoE under TP (W8A8_DYNAMIC, 2 experts, I 8 -> 4 per rank): w13 = each expert's gate rows
// [4r, 4r + 4) then up rows [8 + 4r, ...) of the tp = 1 stacking, w2 = its input columns
// [4r, 4r + 4); the per-channel w2 scale whole. The rank's fixture passes both implementations.
TEST(CheckpointTp, MoeRanksSplitTheIntermediateSize) {
  TempDir d("tp_moe");
  small_modelslim().write(d.path);
  const qconf::conf::Case c1 = fixture(d, kMoe4, tp_opts(1, 0)).cases.at(0);
  for (int64_t r = 0; r < 2; ++r) {
    const qconf::conf::Case c = fixture(d, kMoe4, tp_opts(2, r)).cases.at(0);
    const Tensor &w13 = c.inputs.at("w13_weight"), &f13 = c1.inputs.at("w13_weight");
    const Tensor &w2 = c.inputs.at("w2_weight"), &f2 = c1.inputs.at("w2_weight");
    ASSERT_EQ(w13.shape(), (qconf::Shape{2, 8, 16}));
    ASSERT_EQ(w2.shape(), (qconf::Shape{2, 16, 4}));
    for (int64_t e = 0; e < 2; ++e) {
      for (int64_t j = 0; j < 8; ++j) {
        const int64_t src = j < 4 ? 4 * r + j : 8 + 4 * r + (j - 4);
        EXPECT_EQ(
            std::memcmp(w13.bytes() + (e * 8 + j) * 16, f13.bytes() + (e * 16 + src) * 16, 16), 0);
      }
      for (int64_t h = 0; h < 16; ++h)
        for (int64_t k = 0; k < 4; ++k)
          EXPECT_EQ(w2.data<int8_t>()[(e * 16 + h) * 4 + k],
                    f2.data<int8_t>()[(e * 16 + h) * 8 + 4 * r + k]);
    }
    EXPECT_EQ(c.inputs.at("w2_weight_scale").shape(), c1.inputs.at("w2_weight_scale").shape());
    EXPECT_EQ(std::memcmp(c.inputs.at("x").bytes(), c1.inputs.at("x").bytes(),
                          c1.inputs.at("x").nbytes()),
              0);
  }
  const std::string out = (d.path / "vectors").string();
  CmdResult r = run_qconf("checkpoint " + d.str() + " --layer " + kMoe4 +
                          " --run --seed 2 --tokens 4 --tp-size 2 --tp-rank 1 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult v = run_qconf("run --golden-dir " + out + " --impl " + impl);
    EXPECT_EQ(v.code, 0) << impl << "\n" << v.out;
  }
}

}  // namespace
