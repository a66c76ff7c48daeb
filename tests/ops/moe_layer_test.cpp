// Properties of the MoE layer skeleton (qconf/ops/moe_layer.h) and of the W8A8_DYNAMIC MoE
// layer on it: the combine of an identity expert, token-order invariance, tokens routed to no
// local expert, and the optimized skeleton against the reference.
#include "qconf/ops/moe_layer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/moe_w8a8.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using namespace qconf;

struct Layer {
  Tensor x, logits;
  TensorMap w;  // post-load W8A8 weights
};

Layer make_layer(const std::string& name, int64_t t, int64_t e, int64_t h, int64_t inter) {
  const uint64_t s = rng::seed_from_string("moe_layer_test/" + name);
  Layer l;
  l.x = gen::float_tensor(DType::kBF16, {t, h}, gen::FloatDist::normal(0), s, 0);
  l.logits = gen::float_tensor(DType::kF32, {t, e}, gen::FloatDist::normal(0), s, 1);
  const Tensor w13 = gen::int_tensor(DType::kI8, {e, 2 * inter, h}, -128, 127, s, 2);
  const Tensor w2 = gen::int_tensor(DType::kI8, {e, h, inter}, -128, 127, s, 3);
  const auto scale = [&](int64_t n, uint64_t st) {
    return gen::float_tensor(DType::kF32, {e, n, 1}, gen::FloatDist::grid(4096, 16383, -20), s, st);
  };
  l.w = w8a8_dynamic_moe_load(w13, scale(2 * inter, 4), w2, scale(h, 5), DType::kBF16);
  return l;
}

ExpertMlpFn w8a8_ref() {
  return [](const ExpertMlpInput& i, const TensorMap& w, TensorMap& s) {
    return ref::w8a8_dynamic_expert_mlp(i, w, s, W8a8MoeMlpPath::kFused);
  };
}

// An identity expert: returns the expanded (unquantized) rows unchanged.
Tensor identity_expert(const ExpertMlpInput& i, const TensorMap&, TensorMap&) { return *i.x; }
// A broken expert: the rows in reverse order (a port that loses the row order).
Tensor reversed_expert(const ExpertMlpInput& i, const TensorMap&, TensorMap&) {
  Tensor o = *i.x;
  const int64_t r = o.dim(0), h = o.dim(1);
  for (int64_t a = 0; a < r; ++a)
    std::memcpy(o.data<uint16_t>() + a * h, i.x->data<uint16_t>() + (r - 1 - a) * h, 2 * h);
  return o;
}

// y[t] = RN_bf16(sum_j w[t, j] * x[t]) (exact sum): the combine of identity experts.
Tensor identity_combine(const MoeLayerStages& st, const Tensor& x) {
  const int64_t t_count = x.dim(0), h = x.dim(1), k = st.topk_weights.dim(1);
  Tensor y(DType::kBF16, {t_count, h});
  for (int64_t t = 0; t < t_count; ++t)
    for (int64_t c = 0; c < h; ++c) {
      num::Exact s = 0;
      for (int64_t j = 0; j < k; ++j)
        s += num::to_exact(num::kBF16, st.topk_weights.bits_at(t * k + j)) *
             num::to_exact(num::kBF16, x.bits_at(t * h + c));
      y.data<uint16_t>()[t * h + c] =
          static_cast<uint16_t>(num::encode(num::kBF16, s, num::Round::kRint));
    }
  return y;
}

TEST(MoeLayerSkeleton, IdentityExpertsCombineToTheWeightSumTimesTheToken) {
  Layer l = make_layer("identity", 9, 6, 24, 8);
  MoeLayerConfig cfg;
  cfg.routing.top_k = 3;
  cfg.dispatch_quant_mode = -1;
  MoeLayerArgs a{&l.x, &l.logits, nullptr, nullptr};
  const MoeLayerStages st = ref::moe_layer(a, cfg, identity_expert);
  EXPECT_TRUE(st.combine.out.bit_equal(identity_combine(st, l.x)));
  // Negative control: an expert that loses the row order is caught by the same comparison.
  const MoeLayerStages bad = ref::moe_layer(a, cfg, reversed_expert);
  EXPECT_FALSE(bad.combine.out.bit_equal(identity_combine(bad, l.x)));
}

// Every per-token step (dispatch quant, gmm rows, requant rows, combine) is row-local, so
// permuting the tokens permutes the output rows, bit for bit.
TEST(MoeLayerSkeleton, PermutingTokensPermutesOutputRows) {
  Layer l = make_layer("perm", 10, 4, 32, 16);
  MoeLayerConfig cfg;
  cfg.routing.top_k = 2;
  MoeLayerArgs a{&l.x, &l.logits, nullptr, &l.w};
  const MoeLayerStages st = ref::moe_layer(a, cfg, w8a8_ref());
  std::vector<int64_t> perm(10);
  std::iota(perm.begin(), perm.end(), 0);
  std::reverse(perm.begin(), perm.end());
  std::swap(perm[2], perm[7]);
  Tensor px(l.x.dtype(), l.x.shape()), pl(l.logits.dtype(), l.logits.shape());
  for (int64_t i = 0; i < 10; ++i) {
    std::memcpy(px.data<uint16_t>() + i * 32, l.x.data<uint16_t>() + perm[i] * 32, 64);
    std::memcpy(pl.data<float>() + i * 4, l.logits.data<float>() + perm[i] * 4, 16);
  }
  MoeLayerArgs pa{&px, &pl, nullptr, &l.w};
  const MoeLayerStages pst = ref::moe_layer(pa, cfg, w8a8_ref());
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_EQ(std::memcmp(pst.combine.out.data<uint16_t>() + i * 32,
                          st.combine.out.data<uint16_t>() + perm[i] * 32, 64),
              0)
        << "row " << i;
  // Negative control: permuting x alone (not the logits) changes the output.
  MoeLayerArgs xa{&px, &l.logits, nullptr, &l.w};
  const MoeLayerStages xst = ref::moe_layer(xa, cfg, w8a8_ref());
  bool all_same = true;
  for (int64_t i = 0; i < 10; ++i)
    all_same &= std::memcmp(xst.combine.out.data<uint16_t>() + i * 32,
                            st.combine.out.data<uint16_t>() + perm[i] * 32, 64) == 0;
  EXPECT_FALSE(all_same);
}

// An EP rank with experts [2, 4): a token whose experts are 0 and 1 gets a zero output row;
// the other tokens get exactly their local experts' weighted rows.
TEST(MoeLayerSkeleton, TokensRoutedToNoLocalExpertGiveZeroRows) {
  Layer l = make_layer("ep", 6, 4, 16, 8);
  for (int64_t t : {1, 4}) {
    l.logits.data<float>()[t * 4 + 0] = 4.0f;
    l.logits.data<float>()[t * 4 + 1] = 3.5f;
  }
  MoeLayerConfig cfg;
  cfg.routing.top_k = 2;
  cfg.local_start = 2;
  cfg.local_count = 2;
  cfg.dispatch_quant_mode = -1;
  MoeLayerArgs a{&l.x, &l.logits, nullptr, nullptr};
  const MoeLayerStages st = ref::moe_layer(a, cfg, identity_expert);
  ASSERT_TRUE(st.ep_combine);
  EXPECT_EQ(st.dispatch.expert_tokens.numel(), 2);
  for (int64_t t : {1, 4})
    for (int64_t c = 0; c < 16; ++c)
      EXPECT_EQ(num::bf16_to_f32(st.combine.out.data<uint16_t>()[t * 16 + c]), 0.0f);
  // The weights of non-local experts are 0, so the identity combine still holds row by row.
  EXPECT_TRUE(st.combine.out.bit_equal(identity_combine(st, l.x)));
  // vllm-ascend's index |-1| = 1 is what the combine would read without the EP path: row 1 of
  // the expert output is not zero, so a port reading it with the unmasked weight differs.
  bool row1_nonzero = false;
  for (int64_t c = 0; c < 16; ++c)
    row1_nonzero |= num::bf16_to_f32(st.expert_out.data<uint16_t>()[16 + c]) != 0.0f;
  EXPECT_TRUE(row1_nonzero);
}

// The optimized skeleton with the optimized W8A8 expert MLP: identical routing ids, dispatch and
// gmm1 stages (deterministic), and for this seeded layer identical codes and outputs (no
// element sits where exp accuracy matters).
TEST(MoeLayerSkeleton, OptimizedMatchesReferenceOnDeterministicStages) {
  Layer l = make_layer("opt", 12, 8, 32, 16);
  MoeLayerConfig cfg;
  cfg.routing.top_k = 3;
  MoeLayerArgs a{&l.x, &l.logits, nullptr, &l.w};
  const MoeLayerStages r = ref::moe_layer(a, cfg, w8a8_ref());
  const MoeLayerStages o =
      opt::moe_layer(a, cfg, [](const ExpertMlpInput& i, const TensorMap& w, TensorMap& s) {
        return opt::w8a8_dynamic_expert_mlp(i, w, s, W8a8MoeMlpPath::kFused);
      });
  EXPECT_TRUE(o.dispatch.expanded_x.bit_equal(r.dispatch.expanded_x));
  EXPECT_TRUE(o.dispatch.expanded_scale.bit_equal(r.dispatch.expanded_scale));
  EXPECT_TRUE(o.dispatch.expert_tokens.bit_equal(r.dispatch.expert_tokens));
  EXPECT_TRUE(o.expanded_token.bit_equal(r.expanded_token));
  EXPECT_TRUE(o.mlp.at("gmm1_dequant").bit_equal(r.mlp.at("gmm1_dequant")));
}

TEST(MoeLayerSkeleton, BadArgumentsAreNamed) {
  Layer l = make_layer("bad", 4, 4, 16, 8);
  MoeLayerConfig cfg;
  cfg.local_start = 3;
  cfg.local_count = 2;
  MoeLayerArgs a{&l.x, &l.logits, nullptr, &l.w};
  try {
    ref::moe_layer(a, cfg, w8a8_ref());
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("local expert range [3, 5)"), std::string::npos)
        << e.what();
  }
}

// ---- the scheme_w8a8_dynamic_moe op: its checks pass a correct port and catch planted bugs ----

struct OpCase {
  conf::Params p;
  TensorMap in, ref;
  std::map<std::string, conf::Check> checks;
  conf::Verdict verdict(const std::string& stage, const Tensor& got) const {
    conf::Stage s;
    s.name = stage;
    s.expected = ref.at(stage);
    auto it = checks.find(stage);
    if (it != checks.end()) s.check = it->second;
    return conf::verify_stage(s, got).verdict;
  }
};
const conf::OpDef& moe_op() {
  return *conf::OpRegistry::instance().find("scheme_w8a8_dynamic_moe");
}
OpCase op_case(const std::string& name) {
  for (const conf::CaseSpec& c : moe_op().cases())
    if (c.name == name) {
      OpCase k{c.params, c.inputs, {}, {}};
      moe_op().reference(k.p, k.in, k.ref);
      k.checks = moe_op().oracle(k.p, k.in, k.ref);
      return k;
    }
  throw std::logic_error("no case " + name);
}

TEST(MoeW8a8Op, OptimizedPassesEveryStageOfEveryCase) {
  for (const conf::CaseSpec& c : moe_op().cases()) {
    const OpCase k = op_case(c.name);
    TensorMap got;
    moe_op().optimized(k.p, k.in, got);
    for (const auto& [stage, t] : k.ref)
      EXPECT_EQ(k.verdict(stage, got.at(stage)), conf::Verdict::kPass) << c.name << " " << stage;
  }
}

// A loader that truncates the fp32 checkpoint scales to bf16 (instead of RNE) fails the load
// stage on the midpoint vector.
TEST(MoeW8a8Op, TruncatingTheLoadRoundingIsCaught) {
  const OpCase k = op_case("load_rounding_ties");
  const Tensor& s = k.in.at("w13_weight_scale");
  Tensor trunc(DType::kBF16, k.ref.at("w13_scale_param").shape());
  for (int64_t i = 0; i < s.numel(); ++i)
    trunc.data<uint16_t>()[i] = static_cast<uint16_t>(s.data<uint32_t>()[i] >> 16);
  EXPECT_EQ(k.verdict("w13_scale_param", trunc), conf::Verdict::kFail);
  EXPECT_EQ(k.verdict("w13_scale_param", k.ref.at("w13_scale_param")), conf::Verdict::kPass);
}

// A loader that stacks up_proj rows before gate_proj rows: the layer output fails.
TEST(MoeW8a8Op, UpBeforeGateStackingIsCaught) {
  const OpCase k = op_case("bf16_softmax_e4_top2");
  TensorMap in = k.in, got;
  for (const char* name : {"w13_weight", "w13_weight_scale"}) {
    Tensor& t = in.at(name);
    const int64_t e = t.dim(0), rows = t.dim(1), row_bytes = t.nbytes() / (e * rows);
    Tensor sw = t;
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(sw.bytes() + (x * rows + r) * row_bytes,
                    t.bytes() + (x * rows + (r + rows / 2) % rows) * row_bytes, row_bytes);
    t = sw;
  }
  moe_op().reference(k.p, in, got);
  EXPECT_EQ(k.verdict("y", got.at("y")), conf::Verdict::kFail);
}

// The other quant_apply_mlp path (int32 gmm1 + dequant_swiglu_quant: scales in the other order,
// single rounding) fails a fused-path case: the variant is separated.
TEST(MoeW8a8Op, TheTwoMlpPathsAreSeparated) {
  const OpCase k = op_case("bf16_softmax_e4_top2");
  conf::Params p = k.p;
  p["mlp_path"] = "dequant_swiglu";
  TensorMap got;
  moe_op().reference(p, k.in, got);
  bool any_fail = false;
  for (const char* st : {"gmm1_dequant", "act_q", "act_scale", "expert_out", "y"})
    any_fail |= k.verdict(st, got.at(st)) == conf::Verdict::kFail;
  EXPECT_TRUE(any_fail);
}

// Ties broken by the higher expert id (token 3: {3, 5} instead of {2, 3}) fail topk_ids.
TEST(MoeW8a8Op, HigherIndexTieBreakIsCaught) {
  const OpCase k = op_case("routing_ties_lower_index");
  Tensor ids = k.ref.at("topk_ids");
  int32_t* row = ids.data<int32_t>() + 3 * 2;
  ASSERT_EQ(std::min(row[0], row[1]), 2);
  ASSERT_EQ(std::max(row[0], row[1]), 3);
  row[0] = 3, row[1] = 5;
  EXPECT_EQ(k.verdict("topk_ids", ids), conf::Verdict::kFail);
}

// An EP port that reads |-1| = 1 with the router's (unmasked) weight adds expert row 1 to
// tokens routed to no local expert: y fails there.
TEST(MoeW8a8Op, NonLocalTokenReadingRowOneIsCaught) {
  const OpCase k = op_case("ep_rank_tokens_to_no_local_expert");
  Tensor y = k.ref.at("y");
  const Tensor& eo = k.ref.at("expert_out");
  const int64_t h = y.dim(1);
  for (int64_t c = 0; c < h; ++c) {
    const float v = num::bf16_to_f32(y.data<uint16_t>()[0 * h + c]) +
                    0.25f * num::bf16_to_f32(eo.data<uint16_t>()[1 * h + c]);
    y.data<uint16_t>()[c] = num::f32_to_bf16(v);
  }
  EXPECT_EQ(k.verdict("y", y), conf::Verdict::kFail);
}

}  // namespace
