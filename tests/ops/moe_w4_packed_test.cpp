// Properties of the W4A8_DYNAMIC MoE expert MLP on weights packed once at load
// (qconf/opt/moe_w4_packed.h): on seeded layers of both checkpoint formats, with experts of 0
// rows, rows not a multiple of the GEMM's row block, H and 2I not multiples of its 64-column
// panel and every W4A8 MSD variant, the packed path gives the same bf16 output as the per-call
// optimized op and the reference, whatever the thread count; a planted expert mix-up in the
// packed weights is caught by the same comparison. The W4A16 expert MLP on weights prepared at
// load gives the per-call optimized op's bits (its reference check is bounded, not exact).
#include "qconf/opt/moe_w4_packed.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "../../conformance/ops/moe_w4_ckpt.h"
#include "qconf/ops/moe_w4.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

namespace ck = conf::moe_w4_ckpt;

struct Layer {
  TensorMap t;  // checkpoint tensors
  W4a8MoeLoaded loaded;
  Tensor x, counts;
};

// A seeded W4A8 layer: int4 values, fp32 scales (grid 2^-2..1), LLM-Compressor or ModelSlim
// (ModelSlim needs I % 16 == 0 for its 16 down scale_bias columns).
Layer make_layer(const std::string& id, bool modelslim, int64_t e, int64_t h, int64_t i,
                 std::vector<int64_t> counts) {
  const uint64_t seed = rng::seed_from_string("moe_w4_packed_test/" + id);
  const Tensor v13 = gen::int_tensor(DType::kI8, {e, 2 * i, h}, -8, 7, seed, 1);
  const Tensor v2 = gen::int_tensor(DType::kI8, {e, h, i}, -8, 7, seed, 2);
  const auto scale = [&](Shape s, uint64_t stream) {
    return gen::float_tensor(DType::kF32, s, gen::FloatDist::grid(4096, 16383, -14), seed, stream);
  };
  Layer l;
  l.t["s13"] = scale({e, 2 * i, 1}, 3);
  l.t["s2"] = scale({e, h, 1}, 4);
  W4a8MoeCheckpoint c;
  W4a8MoeLoadConfig cfg;
  if (modelslim) {
    l.t["w13"] = ck::modelslim_bytes(v13);
    l.t["w2"] = ck::modelslim_bytes(v2);
    l.t["sb13"] = ck::modelslim_scale_bias(v13, l.t["s13"], 1);
    l.t["sb2"] = ck::modelslim_scale_bias(v2, l.t["s2"], 16);
    c.w13_scale_bias = &l.t["sb13"];
    c.w2_scale_bias = &l.t["sb2"];
  } else {
    cfg.format = W4a8MoeFormat::kLlmCompressor;
    l.t["w13"] = v13;
    l.t["w2"] = v2;
  }
  c.w13_weight = &l.t["w13"];
  c.w13_weight_scale = &l.t["s13"];
  c.w2_weight = &l.t["w2"];
  c.w2_weight_scale = &l.t["s2"];
  l.loaded = opt::w4a8_moe_load(c, cfg);
  int64_t m = 0;
  for (int64_t n : counts) m += n;
  l.x = gen::float_tensor(DType::kBF16, {m, h}, gen::FloatDist::normal(0), seed, 5);
  l.counts = Tensor::from<int64_t>({e}, counts);
  return l;
}

struct Shape_ {
  const char* id;
  bool modelslim;
  int64_t e, h, i;
  std::vector<int64_t> counts;
};

const std::vector<Shape_>& shapes() {
  static const std::vector<Shape_> s = {
      // H = 72, 2I = 80: tail panels in both GEMMs; 0, 1, 7 and 13 rows (row block 6).
      {"llmc_tails", false, 4, 72, 40, {0, 7, 1, 13}},
      // ModelSlim, I = 48 (2I = 96 = 64 + 32), H = 136 (2 panels + 8); empty experts at the end.
      {"modelslim_tails", true, 3, 136, 48, {5, 0, 0}},
      // Empty experts between busy ones, H = 200, I = 24 (K of gmm2 not a multiple of 8 x 4).
      {"llmc_gaps", false, 5, 200, 24, {2, 0, 9, 0, 6}},
      // Every expert empty but one, ModelSlim, H = 64 exactly, one row.
      {"modelslim_one_row", true, 4, 64, 32, {0, 0, 1, 0}},
  };
  return s;
}

std::vector<std::pair<const char*, W4a8MsdConfig>> variants() {
  std::vector<std::pair<const char*, W4a8MsdConfig>> v;
  v.emplace_back("default", W4a8MsdConfig{});
  W4a8MsdConfig c;
  c.fixpipe = FixpipePrecision::kExact;
  c.bias_first = true;
  v.emplace_back("exact_fixpipe_bias_first", c);
  c = W4a8MsdConfig{};
  c.rounding = SwigluQuantRounding::kSingleInt16;
  c.clamp_limit = 7.0f;
  v.emplace_back("single_rounding_clamp7", c);
  return v;
}

TEST(MoeW4a8Packed, SameOutputAsThePerCallOpAndTheReferenceOnEverySeededLayer) {
  for (const Shape_& s : shapes()) {
    const Layer l = make_layer(s.id, s.modelslim, s.e, s.h, s.i, s.counts);
    const opt::W4a8MoePacked p = opt::w4a8_moe_pack(l.loaded);
    for (const auto& [name, cfg] : variants()) {
      SCOPED_TRACE(std::string(s.id) + "/" + name);
      const Tensor per_call = opt::w4a8_moe_expert_mlp(l.x, l.counts, l.loaded, cfg).y;
      const Tensor ref = ref::w4a8_moe_expert_mlp(l.x, l.counts, l.loaded, cfg).y;
      ASSERT_TRUE(per_call.bit_equal(ref));  // the per-call op is the reference's (known)
      for (int threads : {1, 2}) {
        const Tensor y = opt::w4a8_moe_expert_mlp_packed(l.x, l.counts, p, cfg, threads);
        EXPECT_TRUE(y.bit_equal(ref)) << "threads " << threads;
      }
      // Not a vacuous comparison: the output has many distinct non-zero values.
      std::set<uint16_t> distinct(ref.data<uint16_t>(), ref.data<uint16_t>() + ref.numel());
      EXPECT_GT(distinct.size(), static_cast<size_t>(ref.numel() / 4));
    }
  }
}

TEST(MoeW4a8Packed, PackingFromTheReferenceLoadGivesTheSameOutput) {
  const Shape_& s = shapes()[1];
  const Layer l = make_layer(s.id, s.modelslim, s.e, s.h, s.i, s.counts);
  W4a8MoeCheckpoint c;
  c.w13_weight = &l.t.at("w13");
  c.w13_weight_scale = &l.t.at("s13");
  c.w13_scale_bias = &l.t.at("sb13");
  c.w2_weight = &l.t.at("w2");
  c.w2_weight_scale = &l.t.at("s2");
  c.w2_scale_bias = &l.t.at("sb2");
  const W4a8MoeLoaded r = ref::w4a8_moe_load(c, W4a8MoeLoadConfig{});
  EXPECT_TRUE(opt::w4a8_moe_expert_mlp_packed(l.x, l.counts, opt::w4a8_moe_pack(r), {})
                  .bit_equal(ref::w4a8_moe_expert_mlp(l.x, l.counts, r, {}).y));
}

TEST(MoeW4a8Packed, SwappedExpertWeightsInThePackedLayerAreCaught) {
  // Planted bug: the packed weights of experts 1 and 3 exchanged (an off-by-one in a per-expert
  // pack loop looks like this); the same comparison as above fails.
  const Shape_& s = shapes()[0];
  const Layer l = make_layer(s.id, s.modelslim, s.e, s.h, s.i, s.counts);
  opt::W4a8MoePacked p = opt::w4a8_moe_pack(l.loaded);
  const Tensor ref = ref::w4a8_moe_expert_mlp(l.x, l.counts, l.loaded, {}).y;
  ASSERT_TRUE(opt::w4a8_moe_expert_mlp_packed(l.x, l.counts, p, {}).bit_equal(ref));
  std::swap(p.w13[1], p.w13[3]);
  EXPECT_FALSE(opt::w4a8_moe_expert_mlp_packed(l.x, l.counts, p, {}).bit_equal(ref));
}

TEST(MoeW4a8Packed, BadInputsGetClearErrors) {
  const Shape_& s = shapes()[0];
  const Layer l = make_layer(s.id, s.modelslim, s.e, s.h, s.i, s.counts);
  const opt::W4a8MoePacked p = opt::w4a8_moe_pack(l.loaded);
  const Tensor wrong_counts = Tensor::from<int64_t>({4}, {1, 1, 1, 1});  // sum != rows
  EXPECT_THROW(opt::w4a8_moe_expert_mlp_packed(l.x, wrong_counts, p, {}), std::invalid_argument);
  const Tensor x32(DType::kF32, {3, s.h});
  EXPECT_THROW(opt::w4a8_moe_expert_mlp_packed(x32, l.counts, p, {}), std::invalid_argument);
  W4a8MoeLoaded bad = l.loaded;
  bad.w2_scale_bias = Tensor(DType::kF32, {1});
  EXPECT_THROW(opt::w4a8_moe_pack(bad), std::invalid_argument);
}

// ---- W4A16 -----------------------------------------------------------------------------------

struct W4a16Layer {
  TensorMap t;
  W4a16MoeLoaded loaded;
  Tensor x, counts;
};

W4a16Layer make_w4a16(const std::string& id, DType pdt, int64_t e, int64_t h, int64_t i, int64_t g,
                      std::vector<int64_t> counts) {
  const uint64_t seed = rng::seed_from_string("moe_w4_packed_test/w4a16/" + id);
  W4a16Layer l;
  const Tensor v13 = gen::int_tensor(DType::kI8, {e, 2 * i, h}, -8, 7, seed, 1);
  const Tensor v2 = gen::int_tensor(DType::kI8, {e, h, i}, -8, 7, seed, 2);
  l.t["w13"] = ck::ct_packed(v13);
  l.t["w2"] = ck::ct_packed(v2);
  l.t["s13"] =
      gen::float_tensor(DType::kF32, {e, 2 * i, h / g}, gen::FloatDist::grid(64, 127, -9), seed, 3);
  l.t["s2"] =
      gen::float_tensor(DType::kF32, {e, h, i / g}, gen::FloatDist::grid(64, 127, -9), seed, 4);
  l.t["shape13"] = ck::weight_shape(e, 2 * i, h);
  l.t["shape2"] = ck::weight_shape(e, h, i);
  W4a16MoeCheckpoint c;
  c.w13_weight_packed = &l.t["w13"];
  c.w13_weight_scale = &l.t["s13"];
  c.w13_weight_shape = &l.t["shape13"];
  c.w2_weight_packed = &l.t["w2"];
  c.w2_weight_scale = &l.t["s2"];
  c.w2_weight_shape = &l.t["shape2"];
  l.loaded = opt::w4a16_moe_load(c, pdt, g);
  int64_t m = 0;
  for (int64_t n : counts) m += n;
  l.x = gen::float_tensor(pdt, {m, h}, gen::FloatDist::normal(0), seed, 5);
  l.counts = Tensor::from<int64_t>({e}, counts);
  return l;
}

TEST(MoeW4a16Packed, SameOutputAsThePerCallOpOnSeededLayers) {
  // bf16 and fp16; H = 96 and 160 (not multiples of 64), I = 64 / 96; experts with 0 rows.
  struct S {
    const char* id;
    DType pdt;
    int64_t e, h, i;
    std::vector<int64_t> counts;
  };
  for (const S& s : {S{"bf16", DType::kBF16, 3, 96, 64, {0, 5, 9}},
                     S{"fp16", DType::kF16, 4, 160, 96, {3, 0, 1, 7}}}) {
    SCOPED_TRACE(s.id);
    const W4a16Layer l = make_w4a16(s.id, s.pdt, s.e, s.h, s.i, 32, s.counts);
    const opt::W4a16MoePacked p = opt::w4a16_moe_pack(l.loaded, 32);
    const Tensor per_call = opt::w4a16_moe_expert_mlp(l.x, l.counts, l.loaded, 32).y;
    for (int threads : {1, 2})
      EXPECT_TRUE(opt::w4a16_moe_expert_mlp_packed(l.x, l.counts, p, threads).bit_equal(per_call))
          << "threads " << threads;
    std::set<uint16_t> distinct(per_call.data<uint16_t>(),
                                per_call.data<uint16_t>() + per_call.numel());
    EXPECT_GT(distinct.size(), static_cast<size_t>(per_call.numel() / 4));
  }
}

TEST(MoeW4a16Packed, SwappedExpertWeightsAreCaughtAndBadInputsNamed) {
  const W4a16Layer l = make_w4a16("swap", DType::kBF16, 3, 96, 64, 32, {4, 0, 6});
  opt::W4a16MoePacked p = opt::w4a16_moe_pack(l.loaded, 32);
  const Tensor per_call = opt::w4a16_moe_expert_mlp(l.x, l.counts, l.loaded, 32).y;
  ASSERT_TRUE(opt::w4a16_moe_expert_mlp_packed(l.x, l.counts, p).bit_equal(per_call));
  std::swap(p.w2[0], p.w2[2]);  // planted: expert 0's rows through expert 2's down projection
  EXPECT_FALSE(opt::w4a16_moe_expert_mlp_packed(l.x, l.counts, p).bit_equal(per_call));
  const Tensor xf16(DType::kF16, {10, 96});
  EXPECT_THROW(opt::w4a16_moe_expert_mlp_packed(xf16, l.counts, p), std::invalid_argument);
}

}  // namespace
}  // namespace qconf
