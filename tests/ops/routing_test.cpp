// Properties of moe_gating_top_k (reference, optimized, conformance checks).
#include "qconf/ops/routing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using conf::Check;
using conf::CheckMode;
using conf::Stage;
using conf::Verdict;

const conf::OpDef& op() {
  const conf::OpDef* d = conf::OpRegistry::instance().find("moe_gating_top_k");
  if (!d) throw std::logic_error("moe_gating_top_k not registered");
  return *d;
}

const conf::CaseSpec& case_named(const std::string& name) {
  static const std::vector<conf::CaseSpec> all = op().cases();
  for (const conf::CaseSpec& c : all)
    if (c.name == name) return c;
  throw std::logic_error("no case " + name);
}

// The fixture's stages for a case (reference outputs + oracle checks).
std::map<std::string, Stage> stages_of(const conf::CaseSpec& c) {
  TensorMap out;
  op().reference(c.params, c.inputs, out);
  const std::map<std::string, Check> checks = op().oracle(c.params, c.inputs, out);
  std::map<std::string, Stage> s;
  for (auto& [name, t] : out) {
    Stage st;
    st.name = name;
    st.expected = t;
    st.check = checks.at(name);
    s[name] = st;
  }
  return s;
}

// Verdict of all output stages of `got` against the case's fixture.
bool passes(const conf::CaseSpec& c, const TensorMap& got, std::string* why = nullptr) {
  for (auto& [name, st] : stages_of(c)) {
    const conf::StageResult r = conf::verify_stage(st, got.at(name));
    if (conf::verdict_is_failure(r.verdict)) {
      if (why) {
        *why = name + ": " + r.message;
        if (!r.first.empty())
          *why += " first at " + r.first[0].coords + " expected " + r.first[0].expected + " got " +
                  r.first[0].got + " " + r.first[0].difference;
      }
      return false;
    }
  }
  return true;
}

// Swaps two fp32 weights (row 0) as a planted bug or a legitimate alternative would.
void swap_weights(Tensor& w, int64_t a, int64_t b) {
  std::swap(w.data<float>()[a], w.data<float>()[b]);
}

TensorMap run(const conf::CaseSpec& c, const std::string& router_override = "",
              bool optimized = false) {
  conf::Params p = c.params;
  if (!router_override.empty()) p["router"] = router_override;
  TensorMap out;
  (optimized ? op().optimized : op().reference)(p, c.inputs, out);
  return out;
}

TEST(Routing, EveryGoldenCaseOptimizedPassesTheReferenceChecks) {
  for (const conf::CaseSpec& c : op().cases()) {
    std::string why;
    EXPECT_TRUE(passes(c, run(c, "", true), &why)) << c.name << ": " << why;
  }
}

TEST(Routing, IdsAreInRangeAndDistinctForEveryRouterAndScoring) {
  const uint64_t seed = rng::seed_from_string("routing_ids_distinct");
  Tensor x = gen::float_tensor(DType::kF32, {16, 24}, gen::FloatDist::normal(1), seed, 0);
  for (Router r : {Router::kFusedAscend, Router::kNativeVllmAscend, Router::kVllmGroupedTopk,
                   Router::kOldSelectExperts}) {
    for (Scoring s : {Scoring::kSoftmax, Scoring::kSigmoid}) {
      RoutingConfig c;
      c.router = r;
      c.scoring = s;
      c.top_k = 5;
      c.n_group = 4;
      c.k_group = 2;
      RoutingArgs a;
      a.logits = &x;
      for (const RoutingStages& st : {ref::moe_gating_top_k(a, c), opt::moe_gating_top_k(a, c)}) {
        for (int64_t t = 0; t < 16; ++t) {
          std::set<int32_t> ids;
          for (int64_t j = 0; j < 5; ++j) {
            const int32_t id = st.topk_ids.data<int32_t>()[t * 5 + j];
            EXPECT_GE(id, 0);
            EXPECT_LT(id, 24);
            ids.insert(id);
          }
          EXPECT_EQ(ids.size(), 5u) << router_name(r) << " token " << t;
        }
      }
    }
  }
}

TEST(Routing, FusedExactTieKeepsTheLowerIdAndHigherIdFails) {
  const conf::CaseSpec& c = case_named("exact_tie_fused_ascend");
  TensorMap out = run(c);
  const int32_t* ids = out.at("topk_ids").data<int32_t>();
  std::set<int32_t> row0(ids, ids + 2);
  EXPECT_EQ(row0, (std::set<int32_t>{6, 2}));
  ASSERT_TRUE(passes(c, out));
  // Planted bug: the tie goes to the higher id (5 instead of 2), weight moved with it.
  TensorMap bad = out;
  int32_t* b = bad.at("topk_ids").data<int32_t>();
  for (int j = 0; j < 2; ++j)
    if (b[j] == 2) b[j] = 5;
  swap_weights(bad.at("expert_weights"), 2, 5);
  EXPECT_FALSE(passes(c, bad));
}

TEST(Routing, TorchTopkTieAcceptsEitherIdButNotAThird) {
  const conf::CaseSpec& c = case_named("exact_tie_native_vllm_ascend");
  TensorMap out = run(c);
  TensorMap other = out;
  int32_t* b = other.at("topk_ids").data<int32_t>();
  for (int j = 0; j < 2; ++j)
    if (b[j] == 2) b[j] = 5;
  swap_weights(other.at("expert_weights"), 2, 5);
  EXPECT_TRUE(passes(c, other));
  for (int j = 0; j < 2; ++j)
    if (b[j] == 5) b[j] = 4;
  EXPECT_FALSE(passes(c, other));
}

TEST(Routing, NearTieListsBothIdSets) {
  const conf::CaseSpec& c = case_named("near_tie_fused_ascend");
  std::map<std::string, Stage> s = stages_of(c);
  EXPECT_EQ(s.at("topk_ids").check.accept.index.size(), 1u);
  // Choosing expert 0 instead of 3 (within 1 ulp) passes, expert 5 does not.
  TensorMap out = run(c);
  int32_t* ids = out.at("topk_ids").data<int32_t>();
  for (int j = 0; j < 2; ++j)
    if (ids[j] == 3) ids[j] = 0;
  swap_weights(out.at("expert_weights"), 0, 3);
  EXPECT_TRUE(passes(c, out));
  for (int j = 0; j < 2; ++j)
    if (ids[j] == 0) ids[j] = 5;
  EXPECT_FALSE(passes(c, out));
}

// Every pair of (case, other router) where the case is a separator: the other router's output
// must fail the case's checks.
TEST(Routing, PlantedVariantBugsFailTheirSeparators) {
  struct P {
    const char* case_name;
    const char* wrong_router;  // the planted bug: this router's semantics
  };
  for (const P& p : {
           P{"mask_zero_vs_neginf_fused_ascend", "native_vllm_ascend"},     // 0.0 mask
           P{"mask_zero_vs_neginf_native_vllm_ascend", "fused_ascend"},     // -inf mask
           P{"renorm_eps_fused_ascend", "vllm_grouped_topk"},               // no eps
           P{"renorm_eps_vllm_grouped_topk", "fused_ascend"},               // eps added
           P{"scaling_twice_native_vllm_ascend", "old_select_experts"},     // rsf twice
           P{"scaling_twice_old_select_experts", "native_vllm_ascend"},     // rsf once
           P{"group_score_mode_vllm_grouped_topk", "fused_ascend"},         // top-2 sum
           P{"group_score_mode_fused_ascend", "vllm_grouped_topk"},         // max
           P{"group_score_bias_native_vllm_ascend", "vllm_grouped_topk"},   // top-2 with bias
           P{"weight_dtype_bf16_fused_ascend", "vllm_fused_topk_softmax"},  // fp32 weights
           // non-grouped native: biased weights, cast first; the grouped path: unbiased
           P{"native_topk_bf16_native_vllm_ascend_topk", "native_vllm_ascend"},
           P{"native_topk_fp32_native_vllm_ascend_topk", "native_vllm_ascend"},
           P{"native_topk_bf16_native_vllm_ascend", "native_vllm_ascend_topk"},
           P{"native_topk_bf16_fused_ascend", "native_vllm_ascend_topk"},
           // sqrtsoftplus readings: ln(1 + exp) (kernel), no eps (native), clamp (upstream)
           P{"sqrtsoftplus_tiny_native_vllm_ascend_topk", "vllm_fused_topk_bias"},
           P{"sqrtsoftplus_tiny_native_vllm_ascend_topk", "fused_ascend"},
           P{"sqrtsoftplus_tiny_vllm_fused_topk_bias", "native_vllm_ascend_topk"},
           P{"sqrtsoftplus_tiny_vllm_fused_topk_bias", "fused_ascend"},
           P{"sqrtsoftplus_tiny_fused_ascend", "native_vllm_ascend"},
       }) {
    const conf::CaseSpec& c = case_named(p.case_name);
    ASSERT_TRUE(passes(c, run(c))) << p.case_name;
    EXPECT_FALSE(passes(c, run(c, p.wrong_router))) << p.case_name << " vs " << p.wrong_router;
  }
}

// For every pair of router variants some golden case separates them: the output of one fails
// the other's checks. Exception: upstream grouped_topk and upstream fused_topk softmax compute
// the same numbers on the inputs both accept (no groups, no bias, softmax); they differ only in
// the order/tie specification, which the fixture does not constrain for grouped_topk.
TEST(Routing, EveryPairOfRoutersIsSeparatedByANamedCase) {
  const std::vector<std::string> routers = {"fused_ascend",        "native_vllm_ascend",
                                            "vllm_grouped_topk",   "vllm_fused_topk_softmax",
                                            "old_select_experts",  "native_vllm_ascend_topk",
                                            "vllm_fused_topk_bias"};
  std::set<std::pair<std::string, std::string>> separated;
  for (const conf::CaseSpec& c : op().cases()) {
    const std::string mine = c.params.at("router").get<std::string>();
    for (const std::string& other : routers) {
      if (other == mine) continue;
      TensorMap out;
      try {
        out = run(c, other);
      } catch (const std::invalid_argument&) {
        continue;  // the other router does not take this configuration
      }
      if (!passes(c, out)) separated.insert(std::minmax(mine, other));
    }
  }
  for (size_t a = 0; a < routers.size(); ++a)
    for (size_t b = a + 1; b < routers.size(); ++b) {
      const auto pair = std::minmax(routers[a], routers[b]);
      if (pair ==
          std::minmax(std::string("vllm_grouped_topk"), std::string("vllm_fused_topk_softmax")))
        continue;
      // No configuration both accept: fused_topk_bias takes sqrtsoftplus only, the upstream
      // grouped_topk and topk_softmax never do.
      if (pair ==
              std::minmax(std::string("vllm_fused_topk_bias"), std::string("vllm_grouped_topk")) ||
          pair == std::minmax(std::string("vllm_fused_topk_bias"),
                              std::string("vllm_fused_topk_softmax")))
        continue;
      EXPECT_TRUE(separated.count(pair)) << pair.first << " vs " << pair.second;
    }
}

TEST(Routing, RenormalizedWeightsSumToScalingFactorWithinTheirBounds) {
  const conf::CaseSpec& c = case_named("deepseek_v3_fused_ascend");
  std::map<std::string, Stage> s = stages_of(c);
  const Tensor& w = s.at("expert_weights").expected;
  const Tensor& bd = *s.at("expert_weights").check.bound;
  const int64_t e = w.dim(1);
  for (int64_t t = 0; t < w.dim(0); ++t) {
    double sum = 0, slack = 0;
    for (int64_t i = 0; i < e; ++i) {
      sum += num::to_double(num::kBF16, w.bits_at(t * e + i));
      slack += bd.data<double>()[t * e + i];
    }
    EXPECT_NEAR(sum, 2.5, slack + 1e-6) << "token " << t;
    EXPECT_GT(slack, 0.0);
    EXPECT_LT(slack, 0.1);  // the bound is informative, not vacuous
  }
}

// A legitimate alternative implementation of the transcendental steps: exp computed in double
// and rounded once to fp32. Its scores must pass the scores bound.
TEST(Routing, DoubleRoundedExpSigmoidScoresPassTheBound) {
  const conf::CaseSpec& c = case_named("deepseek_v3_native_vllm_ascend");
  std::map<std::string, Stage> s = stages_of(c);
  const Tensor& x = c.inputs.at("logits");
  Tensor got(DType::kF32, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float xi = num::bf16_to_f32(static_cast<uint16_t>(x.bits_at(i)));
    const float en = static_cast<float>(std::exp(-static_cast<double>(xi)));
    got.data<float>()[i] = 1.0f / (1.0f + en);
  }
  EXPECT_EQ(conf::verify_stage(s.at("scores"), got).verdict, Verdict::kPass);
  // ... while a sigmoid off by 2^-12 relative (a low-precision approximation) fails.
  for (int64_t i = 0; i < got.numel(); ++i) got.data<float>()[i] *= 1.0f + 1.0f / 4096;
  EXPECT_EQ(conf::verify_stage(s.at("scores"), got).verdict, Verdict::kFail);
}

TEST(Routing, OptimizedResultsDoNotDependOnTheThreadCount) {
  const uint64_t seed = rng::seed_from_string("routing_threads");
  Tensor x = gen::float_tensor(DType::kBF16, {300, 256}, gen::FloatDist::normal(0), seed, 0);
  Tensor bias = gen::float_tensor(DType::kF32, {256}, gen::FloatDist::grid(-64, 64, -9), seed, 1);
  RoutingConfig c;
  c.scoring = Scoring::kSigmoid;
  c.top_k = 8;
  c.n_group = 8;
  c.k_group = 4;
  c.routed_scaling_factor = 2.5f;
  RoutingArgs a;
  a.logits = &x;
  a.bias = &bias;
  RoutingStages one = opt::moe_gating_top_k(a, c, 1), two = opt::moe_gating_top_k(a, c, 2);
  EXPECT_TRUE(one.topk_ids.bit_equal(two.topk_ids));
  EXPECT_TRUE(one.expert_weights.bit_equal(two.expert_weights));
}

TEST(Routing, ForceLoadBalanceIsDeterministicDistinctAndSeedDependent) {
  Tensor a = force_load_balance_ids(32, 16, 4, 7), b = force_load_balance_ids(32, 16, 4, 7);
  Tensor c = force_load_balance_ids(32, 16, 4, 8);
  EXPECT_TRUE(a.bit_equal(b));
  EXPECT_FALSE(a.bit_equal(c));
  std::vector<int64_t> hits(16, 0);
  for (int64_t t = 0; t < 32; ++t) {
    std::set<int32_t> s;
    for (int j = 0; j < 4; ++j) {
      const int32_t id = a.data<int32_t>()[t * 4 + j];
      ASSERT_GE(id, 0);
      ASSERT_LT(id, 16);
      s.insert(id);
      ++hits[id];
    }
    EXPECT_EQ(s.size(), 4u);
  }
  for (int64_t h : hits) EXPECT_GT(h, 0);  // 128 draws over 16 ids: every id is hit
}

TEST(Routing, BadInputsAreRejectedWithTheProblemNamed) {
  Tensor x(DType::kF32, {2, 10});
  RoutingConfig c;
  c.n_group = 3;
  RoutingArgs a;
  a.logits = &x;
  try {
    ref::moe_gating_top_k(a, c);
    FAIL() << "accepted 10 experts in 3 groups";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by n_group"), std::string::npos);
  }
}

TEST(RowSetVerdict, RowsCompareAsMultisetsWithListedAlternatives) {
  Stage s;
  s.name = "ids";
  s.expected = Tensor::from<int32_t>({2, 2}, {3, 1, 0, 2});
  s.check.mode = CheckMode::kRowSet;
  s.check.accept.index = {1};
  s.check.accept.offsets = {0, 2};
  s.check.accept.values = Tensor::from<int32_t>({2}, {0, 5});
  EXPECT_EQ(conf::verify_stage(s, Tensor::from<int32_t>({2, 2}, {1, 3, 2, 0})).verdict,
            Verdict::kPass);
  const conf::StageResult alt = conf::verify_stage(s, Tensor::from<int32_t>({2, 2}, {1, 3, 5, 0}));
  EXPECT_EQ(alt.verdict, Verdict::kPass);
  EXPECT_TRUE(alt.used_accept_set);
  EXPECT_EQ(conf::verify_stage(s, Tensor::from<int32_t>({2, 2}, {1, 1, 0, 2})).verdict,
            Verdict::kFail);  // duplicate id
  EXPECT_EQ(conf::verify_stage(s, Tensor::from<int32_t>({2, 2}, {1, 3, 5, 2})).verdict,
            Verdict::kFail);  // alternative for another row's set
}

TEST(RowSetVerdict, FixtureRoundTripKeepsAlternativesAndRejectsPartialRows) {
  conf::Fixture f = conf::generate_fixture(op());
  const std::string text = conf::fixture_to_text(f);
  conf::Fixture g = conf::fixture_from_text(text, "moe_gating_top_k.json");
  ASSERT_EQ(g.cases.size(), f.cases.size());
  EXPECT_EQ(conf::fixture_to_text(g), text);
  // Corrupt one row_set accept: offsets not a multiple of the row length.
  conf::Json j = conf::Json::parse(text);
  bool corrupted = false;
  for (auto& c : j["cases"]) {
    for (auto& st : c["stages"]) {
      if (st["check"]["mode"] == "row_set" && !corrupted &&
          st["check"]["accept"]["index"]["shape"][0] > 0) {
        st["check"]["accept"]["offsets"] = conf::tensor_to_json(Tensor::from<int64_t>({2}, {0, 1}));
        corrupted = true;
      }
    }
  }
  ASSERT_TRUE(corrupted);
  EXPECT_THROW(conf::fixture_from_text(j.dump(), "bad.json"), conf::FixtureError);
}

// ---- output order within a token ----------------------------------------------------------

bool ordered_router(const std::string& r) {
  return r == "fused_ascend" || r == "vllm_fused_topk_softmax" || r == "native_vllm_ascend_topk" ||
         r == "vllm_fused_topk_bias";
}

// The right ids in ascending instead of descending order: fails every sorting variant, passes
// the torch.topk(sorted=False) ones.
TEST(RoutingOrder, AscendingPortFailsTheOrderedVariantsAndPassesTheUnorderedOnes) {
  int ordered = 0, unordered = 0;
  for (const char* r :
       {"fused_ascend", "native_vllm_ascend", "vllm_grouped_topk", "vllm_fused_topk_softmax",
        "old_select_experts", "native_vllm_ascend_topk"}) {
    const conf::CaseSpec& c = case_named(std::string("output_order_") + r);
    TensorMap out = run(c, "", true);
    ASSERT_TRUE(passes(c, out)) << r;
    Tensor& ids = out.at("topk_ids");
    const int64_t k = ids.dim(1);
    for (int64_t t = 0; t < ids.dim(0); ++t)
      std::reverse(ids.data<int32_t>() + t * k, ids.data<int32_t>() + (t + 1) * k);
    std::string why;
    if (ordered_router(r)) {
      EXPECT_FALSE(passes(c, out, &why)) << r;
      EXPECT_NE(why.find("topk_ids"), std::string::npos) << why;
      ++ordered;
    } else {
      EXPECT_TRUE(passes(c, out, &why)) << r << ": " << why;
      ++unordered;
    }
  }
  EXPECT_EQ(ordered, 3);
  EXPECT_EQ(unordered, 3);
}

// The canonical outputs of the sorting variants are descending by selection score.
TEST(RoutingOrder, OrderedVariantsEmitDescendingScores) {
  for (const conf::CaseSpec& c : op().cases()) {
    const std::string r = c.params.at("router").get<std::string>();
    if (!ordered_router(r) || c.inputs.count("bias") || c.params.value("zero_experts", 0) ||
        c.inputs.count("log2phy"))
      continue;
    for (bool optimized : {false, true}) {
      TensorMap out = run(c, "", optimized);
      const Tensor& ids = out.at("topk_ids");
      const Tensor& sc = out.at("scores");
      const int64_t k = ids.dim(1), e = sc.dim(1);
      for (int64_t t = 0; t < ids.dim(0); ++t)
        for (int64_t j = 0; j + 1 < k; ++j) {
          const float a = sc.data<float>()[t * e + ids.data<int32_t>()[t * k + j]];
          const float b = sc.data<float>()[t * e + ids.data<int32_t>()[t * k + j + 1]];
          EXPECT_GE(a, b) << c.name << " token " << t << " place " << j;
        }
    }
  }
}

// Inside the top-k: an exact tie comes out lower id first in the fused kernel (either order
// from torch.topk); a 1-ulp near tie may come out either way in every sorting variant.
TEST(RoutingOrder, TieOrderInsideTheTopKFollowsEachVariantsRule) {
  auto swapped = [](const conf::CaseSpec& c, int64_t row) {
    TensorMap out = run(c);
    Tensor& ids = out.at("topk_ids");
    std::swap(ids.data<int32_t>()[row * 3 + 1], ids.data<int32_t>()[row * 3 + 2]);
    return out;
  };
  const conf::CaseSpec& fused = case_named("order_tie_fused_ascend");
  const conf::CaseSpec& topk = case_named("order_tie_native_vllm_ascend_topk");
  ASSERT_EQ(run(fused).at("topk_ids").to_vector<int32_t>(),
            (std::vector<int32_t>{2, 0, 3, 2, 3, 0}));
  EXPECT_FALSE(passes(fused, swapped(fused, 0)));  // exact tie: lower id first
  EXPECT_TRUE(passes(fused, swapped(fused, 1)));   // near tie: either order
  EXPECT_TRUE(passes(topk, swapped(topk, 0)));     // torch.topk: tie order unspecified
  EXPECT_TRUE(passes(topk, swapped(topk, 1)));
  // Planted bug: a non-tied pair swapped fails even there.
  TensorMap out = run(topk);
  std::swap(out.at("topk_ids").data<int32_t>()[0], out.at("topk_ids").data<int32_t>()[1]);
  EXPECT_FALSE(passes(topk, out));
}

// ---- sqrtsoftplus readings ------------------------------------------------------------------

TEST(RoutingSqrtSoftplus, TinyScoresGiveZeroUnitAndClampedWeightSums) {
  auto weight_sum = [](const char* r) {
    const conf::CaseSpec& c = case_named(std::string("sqrtsoftplus_tiny_") + r);
    const TensorMap out = run(c);
    const Tensor& w = out.at("expert_weights");
    double s = 0;
    for (int64_t i = 0; i < w.numel(); ++i) s += num::to_double(num::kF32, w.bits_at(i));
    return s;
  };
  EXPECT_EQ(weight_sum("fused_ascend"), 0.0);  // 1 + exp(x) == 1: ln 1 = 0 everywhere
  EXPECT_NEAR(weight_sum("native_vllm_ascend_topk"), 1.0, 1e-6);  // w / sum, no eps
  const double clamped = weight_sum("vllm_fused_topk_bias");      // w / max(sum, 1e-20)
  EXPECT_GT(clamped, 0.3);
  EXPECT_LT(clamped, 0.6);
}

// The non-grouped native path weights with the biased values (cast to the logits dtype first).
TEST(RoutingNativeTopk, WeightsAreTheRenormalizedBiasedScores) {
  const conf::CaseSpec& c = case_named("native_topk_fp32_native_vllm_ascend_topk");
  TensorMap out = run(c);
  const Tensor& sc = out.at("scores");
  const Tensor& ids = out.at("topk_ids");
  const Tensor& w = out.at("expert_weights");
  const Tensor& bias = c.inputs.at("bias");
  const int64_t e = sc.dim(1), k = ids.dim(1);
  for (int64_t t = 0; t < ids.dim(0); ++t) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t i = ids.data<int32_t>()[t * k + j];
      sum += sc.data<float>()[t * e + i] + bias.data<float>()[i];
    }
    for (int64_t j = 0; j < k; ++j) {
      const int32_t i = ids.data<int32_t>()[t * k + j];
      const double want = (sc.data<float>()[t * e + i] + bias.data<float>()[i]) / sum * 1.5;
      EXPECT_NEAR(w.data<float>()[t * e + i], want, 1e-6) << t << " " << i;
    }
  }
}

}  // namespace
}  // namespace qconf
