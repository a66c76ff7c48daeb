// The mutation catalogue (issue 7 §6): every planted kernel bug in tests/mutants/catalogue.cpp
// is caught by the golden vectors, through the same runner and verdict engine as any
// implementation, and by the case built to catch it; legitimate variation (summation order,
// thread count, independent re-implementations) is never flagged. Prints the mutation score.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "catalogue.h"
#include "qconf/conformance/fixture.h"
#include "qconf/conformance/runner.h"

namespace qconf::mutants {
namespace {

using conf::CaseResult;
using conf::Implementation;
using conf::Kernel;
using conf::RunOptions;
using conf::Verdict;

const std::vector<conf::Fixture>& goldens() {
  static const std::vector<conf::Fixture> f = conf::load_golden_dir(QCONF_SOURCE_DIR "/golden");
  return f;
}

std::vector<const conf::Case*> cases_of(const std::string& op) {
  RunOptions o;
  o.filter = op + "/*";
  return conf::select_cases(goldens(), o);
}

// `kernel` as an implementation of `op` only, run over every golden case of `op`.
std::vector<CaseResult> run_as_impl(const std::string& name, const std::string& op,
                                    const Kernel& kernel) {
  Implementation impl{
      name, [op, kernel](const conf::OpDef& d) { return d.name == op ? kernel : Kernel{}; }};
  RunOptions o;
  return conf::run_all(cases_of(op), impl, o);
}

// Cases the mutant fails on a stage comparison (a kernel that throws or omits an output does not
// count: a real bug computes wrong numbers, and the catch must come from the verdict engine).
struct Outcome {
  std::vector<std::string> catching;  // case names (without "<op>/"), golden order
  std::string first_message;
  int cases = 0;
};
Outcome run_mutant(const Mutant& m) {
  Outcome out;
  const auto results = run_as_impl("mutant:" + m.id, m.op, m.kernel);
  out.cases = static_cast<int>(results.size());
  for (const CaseResult& r : results) {
    if (r.verdict != Verdict::kFail || r.failing_stage.empty() || r.failing_stage[0] == '(')
      continue;
    if (r.message.find("produced no output") != std::string::npos) continue;
    out.catching.push_back(r.c->id.substr(m.op.size() + 1));
    if (out.first_message.empty()) out.first_message = r.c->id + ": " + r.message;
  }
  return out;
}

bool op_has_case(const std::string& op, const std::string& name) {
  for (const conf::Case* c : cases_of(op))
    if (c->id == op + "/" + name) return true;
  return false;
}

std::string join(const std::vector<std::string>& v, size_t max) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

// ---- the catalogue itself ----------------------------------------------------------------------

TEST(MutationCatalogue, HasAtLeastThirtyMutantsEachNamingARegisteredOpAndAnExistingCase) {
  const auto& cat = catalogue();
  EXPECT_GE(cat.size(), 30u);
  std::set<std::string> ids, ops;
  for (const Mutant& m : cat) {
    EXPECT_TRUE(ids.insert(m.id).second) << "duplicate mutant id " << m.id;
    ASSERT_NE(conf::OpRegistry::instance().find(m.op), nullptr) << m.id << ": op " << m.op;
    EXPECT_TRUE(op_has_case(m.op, m.catches))
        << m.id << ": no golden case " << m.op << "/" << m.catches;
    EXPECT_FALSE(m.bug.empty()) << m.id;
    EXPECT_TRUE(static_cast<bool>(m.kernel)) << m.id;
    ops.insert(m.op);
  }
  EXPECT_GE(ops.size(), 20u);  // spread over the ops, not concentrated on one
}

// ---- each mutant is caught, by the case built for it -------------------------------------------

class MutantIsCaught : public ::testing::TestWithParam<size_t> {};

TEST_P(MutantIsCaught, ByAtLeastOneFailIncludingTheNamedCase) {
  const Mutant& m = catalogue()[GetParam()];
  const Outcome o = run_mutant(m);
  std::cout << "[mutant] " << m.id << " (" << m.op << "): " << m.bug << "\n"
            << "         caught by " << o.catching.size() << " of " << o.cases
            << " cases: " << join(o.catching, 8) << "\n";
  ASSERT_GT(o.cases, 0) << m.op << " has no golden cases";
  ASSERT_FALSE(o.catching.empty())
      << "SURVIVOR: mutant " << m.id << " passed every case of " << m.op;
  EXPECT_NE(std::find(o.catching.begin(), o.catching.end(), m.catches), o.catching.end())
      << m.id << ": the named case " << m.catches << " did not catch it; caught by "
      << join(o.catching, 20);
}

std::string mutant_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string s = catalogue()[info.param].id;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}
INSTANTIATE_TEST_SUITE_P(Catalogue, MutantIsCaught, ::testing::Range<size_t>(0, catalogue().size()),
                         mutant_name);

// The score over the whole catalogue, as the closing note reports it.
TEST(MutationScore, EveryMutantIsCaughtAndTheScoreIsPrinted) {
  size_t caught = 0, by_named = 0;
  std::vector<std::string> survivors;
  std::printf("%-44s %-32s %s\n", "mutant", "op", "catching cases (named case first)");
  for (const Mutant& m : catalogue()) {
    const Outcome o = run_mutant(m);
    const bool named =
        std::find(o.catching.begin(), o.catching.end(), m.catches) != o.catching.end();
    caught += !o.catching.empty();
    by_named += named;
    if (o.catching.empty()) survivors.push_back(m.id);
    std::printf("%-44s %-32s %s%s (%zu/%d)\n", m.id.c_str(), m.op.c_str(),
                named ? m.catches.c_str() : "NOT BY NAMED CASE ",
                o.catching.empty() ? " SURVIVED" : "", o.catching.size(), o.cases);
  }
  std::printf("mutation score: %zu/%zu caught (%zu by the named case)\n", caught,
              catalogue().size(), by_named);
  EXPECT_EQ(caught, catalogue().size()) << "survivors: " << join(survivors, 100);
  EXPECT_EQ(by_named, catalogue().size());
}

// A mutant that changes nothing would be a test that cannot fail: the runner must flag the
// planted bug and pass the same kernel without it. (The first entry of legitimate_variations()
// of each mutated op is its unmutated base.)
TEST(MutationScore, TheHarnessFlagsABugAndPassesTheOptimizedKernel) {
  const std::string op = "npu_convert_weight_to_int4pack";
  const auto good = run_as_impl("optimized", op, conf::OpRegistry::instance().find(op)->optimized);
  for (const CaseResult& r : good) EXPECT_FALSE(conf::verdict_is_failure(r.verdict)) << r.c->id;
  const Mutant& m = catalogue().front();
  ASSERT_EQ(m.op, op);
  EXPECT_FALSE(run_mutant(m).catching.empty());
}

// ---- legitimate variation is not flagged -------------------------------------------------------

class LegitimateVariation : public ::testing::TestWithParam<size_t> {};

TEST_P(LegitimateVariation, PassesEveryCaseOfItsOp) {
  const Variation& v = legitimate_variations()[GetParam()];
  const auto results = run_as_impl("variation:" + v.id, v.op, v.kernel);
  ASSERT_FALSE(results.empty());
  int pass = 0;
  for (const CaseResult& r : results) {
    EXPECT_FALSE(conf::verdict_is_failure(r.verdict))
        << v.id << " (" << v.what << ") flagged on " << r.c->id << ": " << r.message;
    pass += r.verdict == Verdict::kPass;
  }
  EXPECT_GT(pass, 0);
}

std::string variation_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string s = legitimate_variations()[info.param].id;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}
INSTANTIATE_TEST_SUITE_P(Ports, LegitimateVariation,
                         ::testing::Range<size_t>(0, legitimate_variations().size()),
                         variation_name);

// The summation-order variations must really differ from the optimized kernel somewhere, or the
// "not flagged" claim above would be empty: the bounded stages are reached with other bits.
TEST(LegitimateVariationOrders, ReallyChangeTheBitsOfBoundedOutputs) {
  for (const std::string id : {"wqbmm.backward_bias_first", "scale_bias.backward"}) {
    const Variation* v = nullptr;
    for (const Variation& x : legitimate_variations())
      if (x.id == id) v = &x;
    ASSERT_NE(v, nullptr) << id;
    const conf::OpDef* def = conf::OpRegistry::instance().find(v->op);
    int differ = 0;
    for (const conf::Case* c : cases_of(v->op)) {
      TensorMap a, b;
      v->kernel(c->params, c->inputs, a);
      def->optimized(c->params, c->inputs, b);
      const std::string stage = v->op == "w4a8_scale_bias" ? "scale_bias" : "acc";
      if (!b.count(stage)) continue;
      differ += !a.at(stage).bit_equal(b.at(stage));
    }
    EXPECT_GT(differ, 0) << id << " computes the optimized kernel's bits on every case";
  }
}

// The optimized implementation at 1, 2 and 7 threads (static partition: results never depend
// on the count) over every golden case: no failure verdict.
TEST(LegitimateVariationThreads, OptimizedAtOneTwoAndSevenThreadsIsNotFlagged) {
  const char* saved = std::getenv("QCONF_THREADS");
  const std::string restore = saved ? saved : "";
  RunOptions o;
  const auto all = conf::select_cases(goldens(), o);
  EXPECT_GT(all.size(), 500u);  // every golden case, not a filtered subset
  for (const char* threads : {"1", "2", "7"}) {
    setenv("QCONF_THREADS", threads, 1);
    const auto results = conf::run_all(all, conf::builtin_implementation("optimized"), o);
    int failures = 0;
    for (const CaseResult& r : results)
      if (conf::verdict_is_failure(r.verdict) && r.verdict != Verdict::kUnimplemented) {
        ++failures;
        ADD_FAILURE() << "QCONF_THREADS=" << threads << ": " << r.c->id << ": " << r.message;
      }
    EXPECT_EQ(failures, 0);
  }
  if (saved)
    setenv("QCONF_THREADS", restore.c_str(), 1);
  else
    unsetenv("QCONF_THREADS");
}

// ---- the same mutants through the C ABI --------------------------------------------------------

// The mutant plugin (tests/plugin/mutant_plugin.cpp) plants the mutant QCONF_MUTANT names in the
// optimized implementation; the plugin runner (isolated child processes, guarded buffers) must
// fail exactly the cases the in-process runner fails.
TEST(MutantPlugin, ThroughTheCAbiFailsExactlyTheCasesTheInProcessRunnerFails) {
  const char* saved = std::getenv("QCONF_MUTANT");
  const std::string restore = saved ? saved : "";
  for (const std::string id :
       {"int4pack.offset_binary", "dynamic_quant.half_away", "wqbmm.fp16_accumulation"}) {
    const Mutant* m = nullptr;
    for (const Mutant& x : catalogue())
      if (x.id == id) m = &x;
    ASSERT_NE(m, nullptr) << id;
    setenv("QCONF_MUTANT", id.c_str(), 1);
    const Implementation plugin = conf::load_plugin(QCONF_MUTANT_PLUGIN);
    ASSERT_TRUE(plugin.isolate);
    RunOptions o;
    o.filter = m->op + "/*";
    std::vector<std::string> via_abi;
    for (const CaseResult& r : conf::run_all(cases_of(m->op), plugin, o)) {
      EXPECT_TRUE(r.verdict == Verdict::kPass || r.verdict == Verdict::kFail ||
                  r.verdict == Verdict::kMistrusted)
          << id << " " << r.c->id << ": " << conf::verdict_name(r.verdict) << " " << r.message;
      if (r.verdict == Verdict::kFail) via_abi.push_back(r.c->id.substr(m->op.size() + 1));
    }
    EXPECT_EQ(via_abi, run_mutant(*m).catching) << id;
    EXPECT_FALSE(via_abi.empty()) << id;
  }
  // Without a mutant the plugin is the optimized implementation: nothing fails.
  unsetenv("QCONF_MUTANT");
  RunOptions o;
  o.filter = "npu_convert_weight_to_int4pack/*";
  for (const CaseResult& r : conf::run_all(cases_of("npu_convert_weight_to_int4pack"),
                                           conf::load_plugin(QCONF_MUTANT_PLUGIN), o))
    EXPECT_FALSE(conf::verdict_is_failure(r.verdict)) << r.c->id << ": " << r.message;
  // An unknown id is an error the report names, not a silent pass.
  setenv("QCONF_MUTANT", "no.such_mutant", 1);
  const auto bad = conf::run_all(cases_of("npu_convert_weight_to_int4pack"),
                                 conf::load_plugin(QCONF_MUTANT_PLUGIN), o);
  ASSERT_FALSE(bad.empty());
  EXPECT_EQ(bad.front().verdict, Verdict::kFail);
  EXPECT_NE(bad.front().message.find("no.such_mutant"), std::string::npos) << bad.front().message;
  if (saved)
    setenv("QCONF_MUTANT", restore.c_str(), 1);
  else
    unsetenv("QCONF_MUTANT");
}

}  // namespace
}  // namespace qconf::mutants
