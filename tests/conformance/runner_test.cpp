// The runner: case selection (filters, shards), the built-in implementations on the real
// goldens, deliberately wrong kernels, and the reports.
#include "qconf/conformance/runner.h"

#include <fnmatch.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "qconf/conformance/fixture.h"
#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/core/tensor.h"

namespace qconf::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kOp = "npu_convert_weight_to_int4pack";
const std::string kGoldenDir = QCONF_SOURCE_DIR "/golden";
const std::string kAscending = std::string(kOp) + "/ascending_0_to_7";

const std::vector<Fixture>& goldens() {
  static const std::vector<Fixture> f = load_golden_dir(kGoldenDir);
  return f;
}

std::vector<const Case*> int4pack_cases() {
  RunOptions o;
  o.filter = std::string(kOp) + "/*";
  return select_cases(goldens(), o);
}

bool has_flag(const Case& c, const std::string& flag) {
  return std::find(c.flags.begin(), c.flags.end(), flag) != c.flags.end();
}

// ---- glob_match / filter_match -----------------------------------------------------------------

TEST(GlobMatch, WildcardsAndLiterals) {
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "npu_x/anything"));  // '*' crosses '/'
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_TRUE(glob_match("npu_*/rand*", std::string(kOp) + "/random_1x8"));
  EXPECT_FALSE(glob_match("npu_*/rand*", std::string(kOp) + "/zeros"));
  EXPECT_TRUE(glob_match("*/zeros", std::string(kOp) + "/zeros"));
  EXPECT_FALSE(glob_match("zeros", std::string(kOp) + "/zeros"));  // whole id, not a substring
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("*ab", "aab"));  // needs backtracking
  EXPECT_TRUE(glob_match("*a?", "aab"));
  EXPECT_TRUE(glob_match("**x**", "x"));
  EXPECT_FALSE(glob_match("A", "a"));  // case-sensitive
}

// Property: glob_match agrees with POSIX fnmatch (no flags: '*' and '?' match '/') on random
// patterns over an alphabet without brackets or backslashes.
TEST(GlobMatch, AgreesWithFnmatchOnRandomPatterns) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state](int n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) % static_cast<uint64_t>(n));
  };
  const std::string pat_alpha = "ab/*?", text_alpha = "ab/";
  int matched = 0;
  for (int k = 0; k < 20000; ++k) {
    std::string p, t;
    for (int i = next(7); i > 0; --i) p += pat_alpha[static_cast<size_t>(next(5))];
    for (int i = next(8); i > 0; --i) t += text_alpha[static_cast<size_t>(next(3))];
    bool want = fnmatch(p.c_str(), t.c_str(), 0) == 0;
    ASSERT_EQ(glob_match(p, t), want) << "pattern \"" << p << "\" text \"" << t << "\"";
    matched += want;
  }
  EXPECT_GT(matched, 1000);  // both outcomes were exercised
  EXPECT_LT(matched, 19000);
}

TEST(FilterMatch, CommaListsWildcardsAndNoMatch) {
  EXPECT_TRUE(filter_match("", "x/one"));  // empty filter: everything
  EXPECT_TRUE(filter_match("x/one,y/*", "x/one"));
  EXPECT_TRUE(filter_match("x/one,y/*", "y/two"));
  EXPECT_FALSE(filter_match("x/one,y/*", "x/two"));
  EXPECT_TRUE(filter_match("x/t?o", "x/two"));
  EXPECT_TRUE(filter_match("q/*,*/two", "x/two"));
  EXPECT_FALSE(filter_match("x/on", "x/one"));
  EXPECT_TRUE(filter_match("x/one,", "x/one"));
  EXPECT_FALSE(filter_match(",", "x/one"));
}

TEST(FilterMatch, SelectsGoldenCasesByGlob) {
  RunOptions o;
  o.filter = std::string(kOp) + "/random_*," + kAscending;
  auto cases = select_cases(goldens(), o);
  ASSERT_FALSE(cases.empty());
  bool ascending = false;
  for (const Case* c : cases) {
    EXPECT_TRUE(c->id == kAscending || c->id.find("/random_") != std::string::npos) << c->id;
    ascending = ascending || c->id == kAscending;
  }
  EXPECT_TRUE(ascending);
  o.filter = "no_such_op/*";
  EXPECT_TRUE(select_cases(goldens(), o).empty());
}

// ---- shards ------------------------------------------------------------------------------------

std::vector<std::string> shard_test_ids() {
  std::vector<std::string> ids;
  for (const Fixture& f : goldens())
    for (const Case& c : f.cases) ids.push_back(c.id);
  for (int i = 0; i < 300; ++i) ids.push_back("synthetic_op/case_" + std::to_string(i));
  return ids;
}

TEST(InShard, EveryCaseLandsInExactlyOneShard) {
  auto ids = shard_test_ids();
  for (int n = 1; n <= 7; ++n) {
    std::vector<int> per_shard(static_cast<size_t>(n), 0);
    for (const auto& id : ids) {
      int hits = 0;
      for (int i = 0; i < n; ++i)
        if (in_shard(id, i, n)) {
          ++hits;
          ++per_shard[static_cast<size_t>(i)];
        }
      EXPECT_EQ(hits, 1) << id << " in " << hits << " of " << n << " shards";
    }
    for (int i = 0; i < n; ++i) EXPECT_GT(per_shard[static_cast<size_t>(i)], 0) << i << "/" << n;
  }
}

// The shard is FNV-1a 64 of the id modulo n, as documented: it depends on the id alone.
TEST(InShard, ShardIsFnv1aOfTheIdModuloCount) {
  struct Known {
    const char* id;
    uint64_t fnv;
  };
  for (const Known& k : {Known{"a", 0xaf63dc4c8601ec8cull}, Known{"foobar", 0x85944171f73967e8ull},
                         Known{"", 0xcbf29ce484222325ull}})
    for (int n = 1; n <= 7; ++n)
      EXPECT_TRUE(in_shard(k.id, static_cast<int>(k.fnv % static_cast<uint64_t>(n)), n))
          << k.id << " " << n;
}

TEST(InShard, SplitIsStableWhenOtherCasesAreRemoved) {
  Fixture all;
  all.op = "synthetic_op";
  for (int i = 0; i < 60; ++i) {
    Case c;
    c.id = "synthetic_op/case_" + std::to_string(i);
    c.op = all.op;
    all.cases.push_back(c);
  }
  Fixture half = all;
  half.cases.clear();
  for (size_t i = 0; i < all.cases.size(); i += 2) half.cases.push_back(all.cases[i]);
  // select_cases returns pointers into its argument: keep the fixtures alive.
  const std::vector<Fixture> all_v{all}, half_v{half};
  for (int n = 2; n <= 5; ++n)
    for (int s = 0; s < n; ++s) {
      RunOptions o;
      o.shard_index = s;
      o.shard_count = n;
      std::set<std::string> from_all, from_half;
      for (const Case* c : select_cases(all_v, o)) from_all.insert(c->id);
      for (const Case* c : select_cases(half_v, o)) from_half.insert(c->id);
      for (const Case& c : half.cases)
        EXPECT_EQ(from_all.count(c.id), from_half.count(c.id))
            << c.id << " shard " << s << "/" << n;
    }
}

TEST(ParseShard, AcceptsIndexOverCount) {
  RunOptions o;
  parse_shard("2/3", o);
  EXPECT_EQ(o.shard_index, 2);
  EXPECT_EQ(o.shard_count, 3);
  parse_shard("0/1", o);
  EXPECT_EQ(o.shard_index, 0);
  EXPECT_EQ(o.shard_count, 1);
}

void ExpectBadShard(const std::string& spec) {
  RunOptions o;
  o.shard_index = 1;
  o.shard_count = 4;
  try {
    parse_shard(spec, o);
    ADD_FAILURE() << "\"" << spec << "\" parsed as " << o.shard_index << "/" << o.shard_count;
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("i/n")) << spec;
    EXPECT_THAT(e.what(), HasSubstr(spec)) << spec;
  }
  EXPECT_EQ(o.shard_index, 1) << spec;  // untouched on error
  EXPECT_EQ(o.shard_count, 4) << spec;
}

TEST(ParseShard, RejectsMalformedSpecs) {
  for (const char* spec : {"3/3", "4/3", "x/2", "1/0", "1", "", "1/2x", "-1/2", "1/", "1//2"})
    ExpectBadShard(spec);
}

// An empty index is not 0, and a count beyond int must not wrap (0/4294967296 would become
// 0/0, i.e. "no sharding", and 1/4294967297 would become 1/1).
TEST(ParseShard, RejectsEmptyIndexAndCountsBeyondInt) {
  for (const char* spec : {"/2", "0/4294967296", "1/4294967297", "4294967296/4294967297"})
    ExpectBadShard(spec);
}

// Sets or unsets an environment variable for the scope of a test, restoring the old value.
class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  void set(const char* v) { setenv(name_, v, 1); }
  void unset() { unsetenv(name_); }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ShardFromEnv, ReadsGtestShardVariables) {
  EnvGuard total("GTEST_TOTAL_SHARDS"), index("GTEST_SHARD_INDEX");
  total.set("3");
  index.set("1");
  RunOptions o;
  shard_from_env(o);
  EXPECT_EQ(o.shard_index, 1);
  EXPECT_EQ(o.shard_count, 3);
}

TEST(ShardFromEnv, LeavesOptionsAloneUnlessBothAreSet) {
  EnvGuard total("GTEST_TOTAL_SHARDS"), index("GTEST_SHARD_INDEX");
  total.unset();
  index.unset();
  RunOptions o;
  o.shard_index = 2;
  o.shard_count = 5;
  shard_from_env(o);
  EXPECT_EQ(o.shard_index, 2);
  EXPECT_EQ(o.shard_count, 5);
  total.set("3");
  shard_from_env(o);
  EXPECT_EQ(o.shard_count, 5);
  total.unset();
  index.set("1");
  shard_from_env(o);
  EXPECT_EQ(o.shard_index, 2);
  EXPECT_EQ(o.shard_count, 5);
}

TEST(ShardFromEnv, RejectsInconsistentVariables) {
  EnvGuard total("GTEST_TOTAL_SHARDS"), index("GTEST_SHARD_INDEX");
  total.set("3");
  index.set("3");
  RunOptions o;
  EXPECT_THROW(shard_from_env(o), std::invalid_argument);
  index.set("one");
  EXPECT_THROW(shard_from_env(o), std::invalid_argument);
}

// ---- built-in implementations on the real goldens ---------------------------------------------

TEST(BuiltinImplementation, RejectsUnknownNames) {
  EXPECT_EQ(builtin_implementation("reference").name, "reference");
  EXPECT_EQ(builtin_implementation("optimized").name, "optimized");
  EXPECT_THROW(builtin_implementation("fast"), std::invalid_argument);
  EXPECT_THROW(builtin_implementation(""), std::invalid_argument);
}

TEST(RealGoldens, EveryCasePassesOnReferenceAndOptimized) {
  RunOptions o;
  auto cases = select_cases(goldens(), o);
  ASSERT_GE(cases.size(), int4pack_cases().size());
  ASSERT_FALSE(cases.empty());
  for (const char* name : {"reference", "optimized"}) {
    SCOPED_TRACE(name);
    auto results = run_all(cases, builtin_implementation(name), o);
    ASSERT_EQ(results.size(), cases.size());
    bool reference_only_ops = false;
    for (const CaseResult& r : results) {
      // An op registered without an optimized kernel ("reference only" in `qconf list ops`)
      // is UNIMPLEMENTED in the optimized implementation; every other case passes.
      const OpDef* def = OpRegistry::instance().find(r.c->op);
      ASSERT_NE(def, nullptr) << r.c->op;
      if (std::string(name) == "optimized" && !def->optimized) {
        reference_only_ops = true;
        EXPECT_EQ(r.verdict, Verdict::kUnimplemented) << r.c->id << ": " << r.message;
        continue;
      }
      EXPECT_EQ(r.verdict, Verdict::kPass) << r.c->id << ": " << r.message;
      EXPECT_TRUE(r.failing_stage.empty()) << r.c->id;
    }
    EXPECT_EQ(any_failure(results), reference_only_ops);
    Json report = Json::parse(json_report(results, name));
    EXPECT_EQ(report["result"], reference_only_ops ? "FAIL" : "PASS");
  }
}

// The reference exposes the intermediate int4_values; the optimized kernel does not, and an
// intermediate it does not produce is not checked.
TEST(RealGoldens, IntermediatesAreCheckedOnlyWhenProduced) {
  RunOptions o;
  o.filter = kAscending;
  auto cases = select_cases(goldens(), o);
  ASSERT_EQ(cases.size(), 1u);
  CaseResult ref = run_case(*cases[0], builtin_implementation("reference"), o);
  ASSERT_EQ(ref.stages.size(), 2u);
  EXPECT_EQ(ref.stages[0].stage, "int4_values");
  EXPECT_EQ(ref.stages[1].stage, "packed");
  CaseResult opt = run_case(*cases[0], builtin_implementation("optimized"), o);
  EXPECT_EQ(opt.verdict, Verdict::kPass);
  ASSERT_EQ(opt.stages.size(), 1u);
  EXPECT_EQ(opt.stages[0].stage, "packed");
}

// ---- deliberately wrong kernels ----------------------------------------------------------------

enum class Packing { kCorrect, kSwapNibbles, kOffsetBinary, kClamp };

// A test-local int4 packer with one deliberate bug at a time.
Tensor pack(const Tensor& w, Packing p) {
  Shape s = w.shape();
  s.back() /= 8;
  Tensor out(DType::kI32, s);
  const int32_t* in = w.data<int32_t>();
  int32_t* o = out.data<int32_t>();
  for (int64_t j = 0; j < out.numel(); ++j) {
    uint32_t word = 0;
    for (int t = 0; t < 8; ++t) {
      int64_t v = in[8 * j + t];
      if (p == Packing::kOffsetBinary) v += 8;
      if (p == Packing::kClamp) v = std::clamp<int64_t>(v, -8, 7);
      uint32_t nibble = static_cast<uint32_t>(v) & 15u;
      int pos = p == Packing::kSwapNibbles ? (t ^ 1) : t;
      word |= nibble << (4 * pos);
    }
    o[j] = static_cast<int32_t>(word);
  }
  return out;
}

Kernel packing_kernel(Packing p) {
  return [p](const Params&, const TensorMap& in, TensorMap& out) {
    out["packed"] = pack(in.at("weight"), p);
  };
}

// An implementation that uses `k` for the int4pack op (and the optimized kernels otherwise).
Implementation with_kernel(const std::string& name, Kernel k) {
  return {name, [k](const OpDef& d) -> Kernel { return d.name == kOp ? k : d.optimized; }};
}

std::vector<CaseResult> run_int4pack(const Implementation& impl) {
  return run_all(int4pack_cases(), impl, RunOptions{});
}

const CaseResult* find_result(const std::vector<CaseResult>& rs, const std::string& id) {
  for (const auto& r : rs)
    if (r.c->id == id) return &r;
  return nullptr;
}

std::string quoted_repro(const std::string& impl, const std::string& id) {
  return "qconf run --impl " + impl + " --filter '" + id + "'";
}

// Checks what every FAIL of a wrong output must carry; returns the number of FAILs.
int ExpectInformativeFailures(const std::vector<CaseResult>& results, const std::string& impl) {
  int fails = 0;
  for (const CaseResult& r : results) {
    if (r.verdict != Verdict::kFail) continue;
    ++fails;
    SCOPED_TRACE(r.c->id);
    EXPECT_EQ(r.failing_stage, "packed");
    EXPECT_THAT(r.message, StartsWith("stage packed: "));
    EXPECT_EQ(r.repro, quoted_repro(impl, r.c->id));
    const StageResult* sr = nullptr;
    for (const auto& s : r.stages)
      if (s.stage == "packed") sr = &s;
    if (sr == nullptr) {
      ADD_FAILURE() << "no result for stage packed";
      continue;
    }
    EXPECT_EQ(sr->verdict, Verdict::kFail);
    if (sr->mismatches == 0) continue;  // a dtype/shape mismatch has no element report
    EXPECT_THAT(r.message, HasSubstr("elements differ (exact)"));
    EXPECT_FALSE(sr->first.empty());
    EXPECT_LE(sr->first.size(), kMaxReported);
    for (const Mismatch& m : sr->first) {
      EXPECT_THAT(m.coords, StartsWith("["));
      EXPECT_NE(m.expected, m.got);
      EXPECT_THAT(m.difference, HasSubstr("code"));
    }
  }
  return fails;
}

TEST(WrongKernel, ControlTestPackerPassesEveryCase) {
  auto results = run_int4pack(with_kernel("control", packing_kernel(Packing::kCorrect)));
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) EXPECT_EQ(r.verdict, Verdict::kPass) << r.c->id << r.message;
  EXPECT_FALSE(any_failure(results));
}

TEST(WrongKernel, SwappedNibbleOrderIsCaught) {
  auto results =
      run_int4pack(with_kernel("swapped_nibbles", packing_kernel(Packing::kSwapNibbles)));
  EXPECT_GT(ExpectInformativeFailures(results, "swapped_nibbles"), 0);
  EXPECT_TRUE(any_failure(results));
  for (const auto& r : results)
    if (has_flag(*r.c, "NibbleOrder")) {
      EXPECT_EQ(r.verdict, Verdict::kFail) << r.c->id;
    }
  // The first mismatch of ascending_0_to_7: 0x76543210 expected, 0x67452301 produced.
  const CaseResult* a = find_result(results, kAscending);
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->verdict, Verdict::kFail);
  EXPECT_EQ(a->message, "stage packed: 1 of 1 elements differ (exact)");
  EXPECT_EQ(a->repro, "qconf run --impl swapped_nibbles --filter '" + kAscending + "'");
  const StageResult& sr = a->stages.back();
  ASSERT_EQ(sr.first.size(), 1u);
  EXPECT_EQ(sr.first[0].index, 0);
  EXPECT_EQ(sr.first[0].coords, "[0, 0]");
  EXPECT_EQ(sr.first[0].expected, "1985229328 (0x76543210)");
  EXPECT_EQ(sr.first[0].got, "1732584193 (0x67452301)");
  EXPECT_EQ(sr.first[0].difference, "-252645135 codes");
}

TEST(WrongKernel, OffsetBinaryIsCaught) {
  auto results = run_int4pack(with_kernel("offset_binary", packing_kernel(Packing::kOffsetBinary)));
  EXPECT_GT(ExpectInformativeFailures(results, "offset_binary"), 0);
  EXPECT_TRUE(any_failure(results));
  for (const auto& r : results)
    if (has_flag(*r.c, "TwosComplement")) {
      EXPECT_EQ(r.verdict, Verdict::kFail) << r.c->id;
    }
}

TEST(WrongKernel, ClampingInsteadOfWrappingIsCaughtOnlyByOutOfRangeCases) {
  auto results = run_int4pack(with_kernel("clamping", packing_kernel(Packing::kClamp)));
  EXPECT_GT(ExpectInformativeFailures(results, "clamping"), 0);
  EXPECT_TRUE(any_failure(results));
  for (const auto& r : results) {
    if (has_flag(*r.c, "OutOfRangeWraps")) {
      EXPECT_EQ(r.verdict, Verdict::kFail) << r.c->id;
    } else {
      EXPECT_EQ(r.verdict, Verdict::kPass) << r.c->id << ": " << r.message;
    }
  }
}

TEST(WrongKernel, WrongShapeFailsEveryCaseNamingBothShapes) {
  Kernel flat = [](const Params&, const TensorMap& in, TensorMap& out) {
    Tensor p = pack(in.at("weight"), Packing::kCorrect);
    Tensor f(DType::kI32, {p.numel()});
    std::copy_n(p.data<int32_t>(), p.numel(), f.data<int32_t>());
    out["packed"] = f;
  };
  auto results = run_int4pack(with_kernel("flat", flat));
  EXPECT_EQ(ExpectInformativeFailures(results, "flat"), static_cast<int>(results.size()));
  const CaseResult* a = find_result(results, kAscending);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->message, "stage packed: expected int32[1, 1], got int32[1]");
  EXPECT_TRUE(any_failure(results));
}

TEST(WrongKernel, UnimplementedIsReportedAsUnimplemented) {
  Kernel k = [](const Params&, const TensorMap&, TensorMap&) {
    throw Unimplemented("int4pack: rank-3 weights are not supported");
  };
  auto results = run_int4pack(with_kernel("partial", k));
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kUnimplemented) << r.c->id;
    EXPECT_EQ(r.message, "int4pack: rank-3 weights are not supported");
    EXPECT_TRUE(r.failing_stage.empty());
    EXPECT_EQ(r.repro, quoted_repro("partial", r.c->id));
  }
  EXPECT_TRUE(any_failure(results));
}

TEST(WrongKernel, ThrowingKernelFailsWithItsMessage) {
  Kernel k = [](const Params&, const TensorMap&, TensorMap&) {
    throw std::runtime_error("device lost");
  };
  auto results = run_int4pack(with_kernel("throwing", k));
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kFail) << r.c->id;
    EXPECT_THAT(r.message, HasSubstr("threw"));
    EXPECT_THAT(r.message, HasSubstr("device lost"));
    EXPECT_EQ(r.repro, quoted_repro("throwing", r.c->id));
  }
  EXPECT_TRUE(any_failure(results));
}

TEST(WrongKernel, MissingKernelIsUnimplemented) {
  Implementation none{"none", [](const OpDef&) { return Kernel{}; }};
  auto results = run_int4pack(none);
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kUnimplemented);
    EXPECT_THAT(r.message, HasSubstr(kOp));
  }
  EXPECT_TRUE(any_failure(results));
}

TEST(WrongKernel, MissingOutputStageFails) {
  Kernel only_intermediate = [](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    Tensor v(DType::kI8, w.shape());
    for (int64_t i = 0; i < w.numel(); ++i)
      v.data<int8_t>()[i] =
          static_cast<int8_t>(static_cast<int8_t>(w.data<int32_t>()[i] << 4) >> 4);
    out["int4_values"] = v;
  };
  auto results = run_int4pack(with_kernel("no_output", only_intermediate));
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kFail) << r.c->id;
    EXPECT_EQ(r.failing_stage, "packed");
    EXPECT_THAT(r.message, HasSubstr("no output \"packed\""));
    // The intermediate it did produce was checked, and is right.
    ASSERT_EQ(r.stages.size(), 2u);
    EXPECT_EQ(r.stages[0].verdict, Verdict::kPass) << r.stages[0].message;
  }
  EXPECT_TRUE(any_failure(results));
}

TEST(WrongKernel, MissingIntermediateIsFine) {
  auto results = run_int4pack(with_kernel("no_intermediate", packing_kernel(Packing::kCorrect)));
  for (const auto& r : results) {
    EXPECT_EQ(r.verdict, Verdict::kPass) << r.c->id;
    ASSERT_EQ(r.stages.size(), 1u);
    EXPECT_EQ(r.stages[0].stage, "packed");
  }
}

TEST(WrongKernel, FirstDifferingStageInPipelineOrderIsReported) {
  Kernel k = [](const Params&, const TensorMap& in, TensorMap& out) {
    // Written in reverse order: the report must still follow the pipeline order.
    out["packed"] = pack(in.at("weight"), Packing::kSwapNibbles);
    out["int4_values"] = Tensor(DType::kI8, in.at("weight").shape());  // all zero: wrong
  };
  auto results = run_int4pack(with_kernel("two_wrong", k));
  const CaseResult* a = find_result(results, kAscending);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->verdict, Verdict::kFail);
  EXPECT_EQ(a->failing_stage, "int4_values");
  EXPECT_THAT(a->message, StartsWith("stage int4_values: "));
  ASSERT_EQ(a->stages.size(), 2u);
  EXPECT_EQ(a->stages[0].verdict, Verdict::kFail);
  EXPECT_EQ(a->stages[1].verdict, Verdict::kFail);
}

// ---- repro lines -------------------------------------------------------------------------------

TEST(Repro, QuotesTheGoldenDirAndTheCaseId) {
  RunOptions o;
  o.golden_dir = "/tmp/it's here";
  auto cases = int4pack_cases();
  ASSERT_FALSE(cases.empty());
  CaseResult r = run_case(*cases[0], builtin_implementation("optimized"), o);
  EXPECT_EQ(r.repro, "qconf run --impl optimized --golden-dir '/tmp/it'\\''s here' --filter '" +
                         cases[0]->id + "'");
}

// The repro line is a working command of the real qconf binary.
TEST(Repro, RunsThroughTheQconfBinary) {
  RunOptions o;
  o.golden_dir = kGoldenDir;
  o.filter = kAscending;
  auto cases = select_cases(goldens(), o);
  ASSERT_EQ(cases.size(), 1u);
  for (const char* impl : {"reference", "optimized"}) {
    CaseResult r = run_case(*cases[0], builtin_implementation(impl), o);
    ASSERT_THAT(r.repro, StartsWith("qconf "));
    std::string cmd = std::string("'") + QCONF_EXE + "'" + r.repro.substr(5) + " >/dev/null 2>&1";
    int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << cmd;
    EXPECT_EQ(WEXITSTATUS(status), 0) << cmd;
  }
  // The same command line with an id that selects nothing is an error (exit 2), so exit 0
  // above means the case ran.
  std::string bad = std::string("'") + QCONF_EXE + "' run --impl reference --golden-dir '" +
                    kGoldenDir + "' --filter 'no_such_op/none' >/dev/null 2>&1";
  int status = std::system(bad.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

// ---- MISTRUSTED through the runner -------------------------------------------------------------

Case zero_case(bool degenerate_ok) {
  Case c;
  c.id = std::string(kOp) + "/hand_made_zeros";
  c.op = kOp;
  c.inputs["weight"] = Tensor(DType::kI32, {2, 64});
  Stage s;
  s.name = "packed";
  s.expected = Tensor(DType::kI32, {2, 8});
  s.check.degenerate_ok = degenerate_ok;
  c.stages.push_back(s);
  return c;
}

TEST(RunCase, DegenerateOutputIsMistrustedButNotAFailure) {
  Case c = zero_case(false);
  CaseResult r = run_case(c, builtin_implementation("optimized"), RunOptions{});
  EXPECT_EQ(r.verdict, Verdict::kMistrusted) << r.message;
  EXPECT_FALSE(any_failure({r}));
  Case ok = zero_case(true);
  EXPECT_EQ(run_case(ok, builtin_implementation("optimized"), RunOptions{}).verdict,
            Verdict::kPass);
}

// ---- reports -----------------------------------------------------------------------------------

// A small XML well-formedness check: balanced, properly nested elements; attribute values
// quoted, without a raw '<'; '&' only as a predefined entity or a character reference; no raw
// '<' in text. Returns "" when well-formed, else the first problem.
std::string xml_problem(const std::string& x) {
  auto is_name = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' ||
           c == '.';
  };
  auto entity_ok = [&x](size_t at) {
    size_t semi = x.find(';', at);
    if (semi == std::string::npos || semi - at > 10) return false;
    std::string e = x.substr(at + 1, semi - at - 1);
    return e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" ||
           (e.size() > 1 && e[0] == '#');
  };
  std::vector<std::string> open;
  size_t i = 0;
  int roots = 0;
  if (x.rfind("<?xml", 0) == 0) {
    i = x.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  while (i < x.size()) {
    if (x[i] == '&') {
      if (!entity_ok(i)) return "bad entity at " + std::to_string(i);
      ++i;
      continue;
    }
    if (x[i] != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(x[i])))
        return "text outside the root element at " + std::to_string(i);
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool closing = j < x.size() && x[j] == '/';
    if (closing) ++j;
    size_t name_start = j;
    while (j < x.size() && is_name(x[j])) ++j;
    std::string name = x.substr(name_start, j - name_start);
    if (name.empty()) return "raw '<' or empty tag name at " + std::to_string(i);
    bool self_closing = false;
    for (;;) {
      while (j < x.size() && std::isspace(static_cast<unsigned char>(x[j]))) ++j;
      if (j >= x.size()) return "unterminated tag <" + name;
      if (x[j] == '>') {
        ++j;
        break;
      }
      if (x[j] == '/' && j + 1 < x.size() && x[j + 1] == '>') {
        self_closing = true;
        j += 2;
        break;
      }
      if (closing) return "attributes in </" + name + ">";
      size_t a = j;
      while (j < x.size() && is_name(x[j])) ++j;
      if (a == j || j + 1 >= x.size() || x[j] != '=' || x[j + 1] != '"')
        return "malformed attribute in <" + name + "> at " + std::to_string(a);
      j += 2;
      while (j < x.size() && x[j] != '"') {
        if (x[j] == '<') return "raw '<' in an attribute of <" + name + ">";
        if (x[j] == '&' && !entity_ok(j)) return "bad entity in an attribute of <" + name + ">";
        ++j;
      }
      if (j >= x.size()) return "unterminated attribute in <" + name + ">";
      ++j;
    }
    if (closing) {
      if (open.empty() || open.back() != name) return "unexpected </" + name + ">";
      open.pop_back();
    } else {
      if (open.empty()) ++roots;
      if (!self_closing) open.push_back(name);
    }
    i = j;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (roots != 1) return std::to_string(roots) + " root elements";
  return "";
}

TEST(XmlChecker, DetectsMalformedXml) {  // the checker below must be able to fail
  EXPECT_EQ(xml_problem("<?xml version=\"1.0\"?>\n<a x=\"1\"><b/>t &amp; u</a>\n"), "");
  EXPECT_NE(xml_problem("<a><b></a></b>"), "");
  EXPECT_NE(xml_problem("<a>x < y</a>"), "");
  EXPECT_NE(xml_problem("<a>x & y</a>"), "");
  EXPECT_NE(xml_problem("<a t=\"<\"/>"), "");
  EXPECT_NE(xml_problem("<a>"), "");
  EXPECT_NE(xml_problem("<a/><b/>"), "");
}

// A mixed run: swapped nibbles on every case, plus one UNIMPLEMENTED and one FAIL whose message
// holds XML metacharacters.
struct MixedRun {
  std::vector<CaseResult> results;
  int pass = 0, fail = 0, unimplemented = 0;
};
MixedRun mixed_run() {
  MixedRun m;
  m.results = run_int4pack(with_kernel("swapped", packing_kernel(Packing::kSwapNibbles)));
  auto cases = int4pack_cases();
  Kernel unimpl = [](const Params&, const TensorMap&, TensorMap&) {
    throw Unimplemented("no <int4> & no luck");
  };
  Kernel thrower = [](const Params&, const TensorMap&, TensorMap&) {
    throw std::runtime_error("weight < -8 & > 7 \"quoted\"");
  };
  m.results.push_back(run_case(*cases[0], with_kernel("swapped", unimpl), RunOptions{}));
  m.results.push_back(run_case(*cases[1], with_kernel("swapped", thrower), RunOptions{}));
  for (const auto& r : m.results) {
    m.pass += r.verdict == Verdict::kPass;
    m.fail += r.verdict == Verdict::kFail;
    m.unimplemented += r.verdict == Verdict::kUnimplemented;
  }
  return m;
}

TEST(Summarize, CountsVerdictsPerOp) {
  MixedRun m = mixed_run();
  auto sums = summarize(m.results);
  ASSERT_EQ(sums.size(), 1u);
  EXPECT_EQ(sums[0].op, kOp);
  EXPECT_EQ(sums[0].counts[static_cast<int>(Verdict::kPass)], m.pass);
  EXPECT_EQ(sums[0].counts[static_cast<int>(Verdict::kFail)], m.fail);
  EXPECT_EQ(sums[0].counts[static_cast<int>(Verdict::kUnimplemented)], 1);
  EXPECT_GT(m.pass, 0);
  EXPECT_GT(m.fail, 1);
}

TEST(JsonReport, ParsesWithPerOpCountsAndFailureDetails) {
  MixedRun m = mixed_run();
  Json j = Json::parse(json_report(m.results, "swapped"));
  EXPECT_EQ(j["format"], "qconf-report");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["implementation"], "swapped");
  EXPECT_EQ(j["result"], "FAIL");
  ASSERT_TRUE(j["ops"].contains(kOp));
  const Json& counts = j["ops"][kOp];
  EXPECT_EQ(counts["PASS"], m.pass);
  EXPECT_EQ(counts["FAIL"], m.fail);
  EXPECT_EQ(counts["UNIMPLEMENTED"], 1);
  EXPECT_EQ(counts["MISTRUSTED"], 0);
  EXPECT_EQ(counts["CRASH"], 0);
  ASSERT_EQ(j["cases"].size(), m.results.size());
  const Json* ascending = nullptr;
  for (const Json& c : j["cases"]) {
    if (c["verdict"] == "PASS") {
      EXPECT_FALSE(c.contains("repro")) << c["id"];
    }
    if (c["verdict"] == "FAIL") {
      EXPECT_TRUE(c.contains("repro")) << c["id"];
    }
    if (c["id"] == kAscending && c["verdict"] == "FAIL" && c.contains("failing_stage"))
      ascending = &c;
  }
  ASSERT_NE(ascending, nullptr);
  EXPECT_EQ((*ascending)["failing_stage"], "packed");
  EXPECT_EQ((*ascending)["repro"], quoted_repro("swapped", kAscending));
  const Json& st = (*ascending)["stages"].back();
  EXPECT_EQ(st["stage"], "packed");
  EXPECT_EQ(st["mismatches"], 1);
  ASSERT_EQ(st["first_mismatches"].size(), 1u);
  EXPECT_EQ(st["first_mismatches"][0]["coords"], "[0, 0]");
  EXPECT_EQ(st["first_mismatches"][0]["expected"], "1985229328 (0x76543210)");
}

TEST(JunitReport, IsWellFormedWithAFailurePerFailingCase) {
  MixedRun m = mixed_run();
  std::string x = junit_report(m.results, "swapped");
  EXPECT_EQ(xml_problem(x), "") << x.substr(0, 2000);
  EXPECT_THAT(x, HasSubstr("<testsuites"));
  auto count = [&x](const std::string& s) {
    int n = 0;
    for (size_t p = x.find(s); p != std::string::npos; p = x.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<testcase "), static_cast<int>(m.results.size()));
  EXPECT_EQ(count("<failure "), m.fail);
  EXPECT_EQ(count("<error type=\"UNIMPLEMENTED\""), 1);
  EXPECT_THAT(x, HasSubstr("failures=\"" + std::to_string(m.fail) + "\""));
  EXPECT_THAT(x, HasSubstr("name=\"" + kAscending + "\""));
  EXPECT_THAT(x, HasSubstr("repro: " + quoted_repro("swapped", kAscending)));
}

TEST(JunitReport, EscapesMarkupInMessages) {
  MixedRun m = mixed_run();
  std::string x = junit_report(m.results, "swapped");
  EXPECT_THAT(x, HasSubstr("weight &lt; -8 &amp; &gt; 7 &quot;quoted&quot;"));
  EXPECT_THAT(x, HasSubstr("no &lt;int4&gt; &amp; no luck"));
  EXPECT_THAT(x, Not(HasSubstr("weight < -8")));
  EXPECT_THAT(x, Not(HasSubstr("<int4>")));
  EXPECT_THAT(x, Not(HasSubstr("& no luck")));
}

// JUnit's schema types `time` as xs:decimal: no exponent ("5e-06") even for fast cases.
TEST(JunitReport, TimesAreDecimalNumbers) {
  auto cases = int4pack_cases();
  ASSERT_FALSE(cases.empty());
  CaseResult r;
  r.c = cases[0];
  r.ms = 0.005;
  std::string x = junit_report({r}, "optimized");
  std::regex time_attr("time=\"([^\"]*)\"");
  int n = 0;
  for (auto it = std::sregex_iterator(x.begin(), x.end(), time_attr); it != std::sregex_iterator();
       ++it, ++n)
    EXPECT_TRUE(std::regex_match((*it)[1].str(), std::regex("[0-9]+(\\.[0-9]+)?")))
        << (*it)[0].str();
  EXPECT_GE(n, 2);  // the suite and the case
}

TEST(ConsoleReport, ListsFailuresWithReprosAndASummary) {
  MixedRun m = mixed_run();
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  ASSERT_NE(f, nullptr);
  print_console_report(m.results, "swapped", f);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  EXPECT_THAT(out, HasSubstr("FAIL " + kAscending + ": stage packed:"));
  EXPECT_THAT(out, HasSubstr("at [0, 0] (flat 0): expected 1985229328 (0x76543210), got "));
  EXPECT_THAT(out, HasSubstr("repro: " + quoted_repro("swapped", kAscending)));
  EXPECT_THAT(out, HasSubstr("UNIMPLEMENTED"));
  EXPECT_THAT(out, HasSubstr("RESULT: FAIL"));
  EXPECT_THAT(out, HasSubstr(std::to_string(m.pass) + " PASS"));
}

TEST(AnyFailure, OnlyFailingVerdictsCount) {
  auto cases = int4pack_cases();
  ASSERT_FALSE(cases.empty());
  CaseResult r;
  r.c = cases[0];
  for (Verdict v : {Verdict::kPass, Verdict::kMistrusted, Verdict::kSkipped}) {
    r.verdict = v;
    EXPECT_FALSE(any_failure({r, r})) << verdict_name(v);
  }
  for (Verdict v : {Verdict::kFail, Verdict::kUnimplemented, Verdict::kCrash, Verdict::kTimeout}) {
    CaseResult ok = r;
    ok.verdict = Verdict::kPass;
    r.verdict = v;
    EXPECT_TRUE(any_failure({ok, r})) << verdict_name(v);
  }
  EXPECT_FALSE(any_failure({}));
}

// An isolated child reports each result as JSON: non-finite error statistics (a port whose
// bounded stage overflows to Inf or NaN, found by the mutation catalogue) must survive the trip
// instead of aborting the run with a JSON type error.
TEST(CaseResultJson, NonFiniteStatisticsRoundTrip) {
  CaseResult r;
  r.verdict = Verdict::kFail;
  r.failing_stage = "acc";
  StageResult s;
  s.stage = "acc";
  s.verdict = Verdict::kFail;
  s.stats.max_err_over_bound = std::numeric_limits<double>::infinity();
  s.stats.rms_err_over_bound = std::numeric_limits<double>::quiet_NaN();
  s.stats.mean_err_over_bound = -std::numeric_limits<double>::infinity();
  s.stats.elements = 3;
  r.stages.push_back(s);
  const Json j = Json::parse(case_result_to_json(r).dump());
  const CaseResult back = case_result_from_json(j, nullptr);
  ASSERT_EQ(back.stages.size(), 1u);
  EXPECT_EQ(back.stages[0].stats.max_err_over_bound, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(back.stages[0].stats.rms_err_over_bound));
  EXPECT_EQ(back.stages[0].stats.mean_err_over_bound, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(back.stages[0].stats.elements, 3);
  EXPECT_EQ(back.verdict, Verdict::kFail);
}

// The JSON report writes a non-finite statistic as a string ("inf", "-inf", "nan"): written as
// a number, nlohmann-json would print null, which a reader takes for "not measured".
TEST(JsonReport, NonFiniteStatisticsAreNamedNotNull) {
  auto cases = int4pack_cases();
  ASSERT_FALSE(cases.empty());
  CaseResult r;
  r.c = cases[0];
  r.verdict = Verdict::kFail;
  StageResult s;
  s.stage = "packed";
  s.verdict = Verdict::kFail;
  s.stats.elements = 2;
  s.stats.max_err_over_bound = std::numeric_limits<double>::infinity();
  s.stats.rms_err_over_bound = std::numeric_limits<double>::quiet_NaN();
  s.stats.mean_err_over_bound = 0.5;
  r.stages.push_back(s);
  const Json j = Json::parse(json_report({r}, "x"));
  const Json& st = j["cases"][0]["stages"][0];
  EXPECT_EQ(st["max_err_over_bound"], "inf");
  EXPECT_EQ(st["rms_err_over_bound"], "nan");
  EXPECT_EQ(st["mean_err_over_bound"], 0.5);
}

}  // namespace
}  // namespace qconf::conf
