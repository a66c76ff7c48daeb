// The scheme registry: every vllm-ascend scheme registered with its layer types; duplicates are
// errors; declarations are well formed; shape formulas evaluate and solve.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qconf/schemes/scheme.h"

namespace {

using namespace qconf::schemes;

TEST(SchemeRegistry, EveryNotesSchemeIsRegisteredWithItsLayerTypes) {
  const std::map<std::string, std::vector<std::string>> want = {
      {"W8A8", {"linear"}},
      {"W8A8_DYNAMIC", {"linear", "moe"}},
      {"W8A8_MIX", {"linear"}},
      {"W8A16", {"linear"}},
      {"W4A8_DYNAMIC", {"moe"}},
      {"W4A16", {"moe"}},
      {"W4A4_DYNAMIC", {"linear"}},
      {"W4A4_FLATQUANT_DYNAMIC", {"linear"}},
      {"W8A8FP8_DYNAMIC", {"linear", "moe"}},
      {"W8A8_MXFP8", {"linear", "moe"}},
      {"W4A4_MXFP4", {"linear", "moe"}},
      {"W4A8_MXFP", {"linear", "moe"}},
      {"W4A16_MXFP4", {"moe"}},
      {"W4A4_MXFP4_FLATQUANT", {"linear"}},
      {"FAKQuant", {"attention"}},
      {"INT8_DYNAMIC", {"attention"}},
      {"C8", {"kv_cache"}},
  };
  for (const auto& [qt, lts] : want)
    EXPECT_EQ(SchemeRegistry::instance().layer_types_of(qt), lts) << qt;
  EXPECT_EQ(SchemeRegistry::instance().all().size(), 22u);
}

TEST(SchemeRegistry, DuplicateRegistrationIsAnError) {
  SchemeDef d;
  d.quant_type = "W8A8_DYNAMIC";
  d.layer_type = "linear";
  EXPECT_THROW(SchemeRegistry::instance().add(d), std::logic_error);
  d.layer_type = "conv";
  EXPECT_THROW(SchemeRegistry::instance().add(d), std::logic_error);
}

TEST(SchemeRegistry, DeclarationsAreWellFormed) {
  for (const SchemeDef* d : SchemeRegistry::instance().all()) {
    EXPECT_FALSE(d->tensors.empty()) << d->quant_type;
    EXPECT_FALSE(d->summary.empty()) << d->quant_type;
    // Either a pipeline op, or the ops it still needs: never neither.
    EXPECT_NE(d->pipeline_op.empty(), d->needs.empty()) << d->quant_type << "/" << d->layer_type;
    for (const TensorDecl& t : d->tensors) {
      EXPECT_FALSE(t.shape.empty()) << d->quant_type << " " << t.suffix;
      EXPECT_FALSE(t.dtype.accepted("BF16").empty()) << d->quant_type << " " << t.suffix;
      if (d->layer_type == "moe") {
        EXPECT_TRUE(t.role == "gate_up" || t.role == "down") << d->quant_type << " " << t.suffix;
      }
    }
  }
}

TEST(SchemeRegistry, DeqScaleDtypeDependsOnTheParamsDtype) {
  const SchemeDef* d = SchemeRegistry::instance().find("W8A8", "linear");
  ASSERT_NE(d, nullptr);
  for (const TensorDecl& t : d->tensors)
    if (t.suffix == "deq_scale") {
      EXPECT_EQ(t.dtype.accepted("BF16"), std::vector<std::string>{"F32"});
      EXPECT_EQ(t.dtype.accepted("F16"), std::vector<std::string>{"I64"});
    }
}

TEST(Formula, EvaluatesAndReportsWhatIsWrong) {
  std::map<std::string, int64_t> s = {{"K", 100}, {"g", 32}, {"N", 8}};
  EXPECT_EQ(eval_formula("K/4", s).value, 25);
  EXPECT_EQ(eval_formula("cdiv(K, 32)", s).value, 4);
  EXPECT_EQ(eval_formula("(N + 2) * 3", s).value, 30);
  EXPECT_THAT(eval_formula("K/8", s).error, ::testing::HasSubstr("not divisible"));
  EXPECT_EQ(eval_formula("I/2", s).unbound, "I");
}

TEST(Formula, SolvesOneUnboundSymbol) {
  std::map<std::string, int64_t> s = {{"K", 64}};
  EXPECT_EQ(solve_formula("I/2", 12, s), std::make_pair(std::string("I"), int64_t{24}));
  EXPECT_EQ(solve_formula("N", 7, s), std::make_pair(std::string("N"), int64_t{7}));
  EXPECT_EQ(solve_formula("2*N", 8, s), std::make_pair(std::string("N"), int64_t{4}));
  EXPECT_FALSE(solve_formula("2*N", 7, s).has_value());
  EXPECT_FALSE(solve_formula("K/8", 8, s).has_value());  // K is bound: nothing to solve
}

}  // namespace
