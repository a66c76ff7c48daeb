// The qconf program end to end: exit codes, messages, reports, sharding, drift detection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "qconf/conformance/fixture.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

struct CmdResult {
  int code;
  std::string out;  // stdout and stderr together
};

CmdResult qconf(const std::string& args, const std::string& env = "") {
  std::string cmd = env + (env.empty() ? "" : " ") + QCONF_EXE + std::string(" ") + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

const std::string kGolden = std::string(QCONF_SOURCE_DIR) + "/golden";
const std::string kOp = "npu_convert_weight_to_int4pack";

// A private copy of golden/ that a test may damage.
class GoldenCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qconf_cli_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(kGolden))
      if (e.is_regular_file()) fs::copy_file(e.path(), dir_ / e.path().filename());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  std::string fixture() const { return (dir_ / (kOp + ".json")).string(); }
  fs::path dir_;
};

std::set<std::string> case_ids_in_report(const std::string& path) {
  auto j = nlohmann::json::parse(qconf::conf::read_file(path));
  std::set<std::string> ids;
  for (const auto& c : j["cases"]) ids.insert(c["id"].get<std::string>());
  return ids;
}

TEST(Cli, ListOpsNamesTheInt4PackOp) {
  CmdResult r = qconf("list ops");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr(kOp));
}

TEST(Cli, ListCasesShowsIdsAndFlags) {
  CmdResult r = qconf("list cases --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr(kOp + "/wraps_out_of_range"));
  EXPECT_THAT(r.out, HasSubstr("OutOfRangeWraps"));
}

TEST(Cli, ListVariantsPrintsEveryOp) {
  CmdResult r = qconf("list variants");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr(kOp));
}

TEST(Cli, DescribePrintsFlagsWithBugTypeAndValues) {
  CmdResult r = qconf("describe " + kOp + "/ascending_0_to_7 --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("NibbleOrder [FUNCTIONALITY]"));
  EXPECT_THAT(r.out, HasSubstr("0x76543210"));
}

TEST(Cli, DescribeUnknownCaseExitsTwoNamingIt) {
  CmdResult r = qconf("describe nope/nothing --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("no case \"nope/nothing\""));
}

TEST(Cli, RunReferenceAndOptimizedPassEveryGolden) {
  for (const char* impl : {"reference", "optimized"}) {
    CmdResult r = qconf(std::string("run --impl ") + impl + " --golden-dir " + kGolden);
    EXPECT_EQ(r.code, 0) << impl << "\n" << r.out;
    EXPECT_THAT(r.out, HasSubstr("RESULT: PASS"));
    EXPECT_THAT(r.out, Not(HasSubstr("FAIL ")));
  }
}

TEST(Cli, RunUnknownImplementationIsAUsageError) {
  CmdResult r = qconf("run --impl bogus --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("unknown implementation \"bogus\""));
}

TEST(Cli, FilterMatchingNothingIsAUsageError) {
  CmdResult r = qconf("run --impl reference --filter 'no_such_op/*' --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("no case matches"));
}

TEST(Cli, FilterSelectsOnlyMatchingCases) {
  std::string json = (fs::temp_directory_path() / "qconf_cli_filter.json").string();
  CmdResult r = qconf("run --impl reference --filter '" + kOp + "/random_*," + kOp +
                      "/zeros' --json " + json + " --golden-dir " + kGolden);
  ASSERT_EQ(r.code, 0) << r.out;
  auto ids = case_ids_in_report(json);
  EXPECT_EQ(ids.size(), 9u);
  for (const auto& id : ids)
    EXPECT_THAT(id, ::testing::AnyOf(HasSubstr("random_"), HasSubstr("zeros")));
  fs::remove(json);
}

TEST(Cli, WritesJsonAndJunitReports) {
  auto tmp = fs::temp_directory_path();
  std::string json = (tmp / "qconf_cli_r.json").string(),
              junit = (tmp / "qconf_cli_r.xml").string();
  CmdResult r = qconf("run --impl optimized --json " + json + " --junit " + junit +
                      " --golden-dir " + kGolden);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(qconf::conf::read_file(json));
  EXPECT_EQ(j["result"], "PASS");
  EXPECT_EQ(j["implementation"], "optimized");
  EXPECT_GT(j["ops"][kOp]["PASS"].get<int>(), 10);
  std::string x = qconf::conf::read_file(junit);
  EXPECT_THAT(x, HasSubstr("<testsuites name=\"qconf optimized\""));
  EXPECT_THAT(x, HasSubstr("<testcase classname=\"" + kOp + "\""));
  fs::remove(json);
  fs::remove(junit);
}

TEST(Cli, ShardsPartitionTheCasesExactly) {
  auto tmp = fs::temp_directory_path();
  std::string all_json = (tmp / "qconf_cli_all.json").string();
  ASSERT_EQ(qconf("run --impl reference --json " + all_json + " --golden-dir " + kGolden).code, 0);
  auto all = case_ids_in_report(all_json);
  for (int n : {2, 3}) {
    std::set<std::string> seen;
    size_t total = 0;
    for (int i = 0; i < n; ++i) {
      std::string js = (tmp / ("qconf_cli_shard" + std::to_string(i) + ".json")).string();
      // Shard through the flag for i even and through GoogleTest's variables for i odd.
      CmdResult r = i % 2 == 0
                        ? qconf("run --impl reference --shard " + std::to_string(i) + "/" +
                                std::to_string(n) + " --json " + js + " --golden-dir " + kGolden)
                        : qconf("run --impl reference --json " + js + " --golden-dir " + kGolden,
                                "GTEST_TOTAL_SHARDS=" + std::to_string(n) +
                                    " GTEST_SHARD_INDEX=" + std::to_string(i));
      ASSERT_EQ(r.code, 0) << r.out;
      auto ids = case_ids_in_report(js);
      total += ids.size();
      seen.insert(ids.begin(), ids.end());
      fs::remove(js);
    }
    EXPECT_EQ(total, all.size()) << "a case ran in two shards (n=" << n << ")";
    EXPECT_EQ(seen, all) << "a case ran in no shard (n=" << n << ")";
  }
  fs::remove(all_json);
}

TEST(Cli, BadShardSpecIsAUsageError) {
  CmdResult r = qconf("run --impl reference --shard 2/2 --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("--shard"));
}

TEST(Cli, GoldenVerifyPassesOnTheCommittedGoldens) {
  CmdResult r = qconf("golden verify --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("golden verify: OK"));
}

TEST_F(GoldenCopy, GenerateIntoACopyReproducesTheCommittedBytes) {
  fs::remove(fixture());
  CmdResult r = qconf("golden generate --golden-dir " + dir());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(qconf::conf::read_file(fixture()),
            qconf::conf::read_file(kGolden + "/" + kOp + ".json"));
  EXPECT_EQ(qconf::conf::read_file(dir() + "/MANIFEST.json"),
            qconf::conf::read_file(kGolden + "/MANIFEST.json"));
}

// Flips one hex digit of the expected "packed" stage of one case.
std::string corrupt_packed(const std::string& text, const std::string& case_name) {
  auto j = qconf::conf::Json::parse(text);
  for (auto& c : j["cases"])
    if (c["id"] == kOp + "/" + case_name)
      for (auto& s : c["stages"])
        if (s["name"] == "packed") {
          std::string hex = s["tensor"]["hex"];
          hex[0] = hex[0] == '0' ? '1' : '0';
          s["tensor"]["hex"] = hex;
        }
  return j.dump(1) + "\n";
}

TEST_F(GoldenCopy, CorruptedFixtureFailsTheRunWithAHashError) {
  qconf::conf::write_file(fixture(),
                          corrupt_packed(qconf::conf::read_file(fixture()), "ascending_0_to_7"));
  CmdResult r = qconf("run --impl optimized --golden-dir " + dir());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("does not match MANIFEST.json"));
  EXPECT_THAT(r.out, HasSubstr(kOp + ".json"));
}

TEST_F(GoldenCopy, DriftWithARehashedManifestIsCaughtByVerifyAndByRun) {
  // Someone edits a stored output and "fixes" the manifest: verify names the case and the
  // first differing element, and the run fails that case with a repro line.
  std::string text = corrupt_packed(qconf::conf::read_file(fixture()), "ascending_0_to_7");
  qconf::conf::write_file(fixture(), text);
  auto m = qconf::conf::load_manifest(dir());
  m[kOp + ".json"] = qconf::conf::sha256_hex(text);
  qconf::conf::write_manifest(dir(), m);

  CmdResult v = qconf("golden verify --golden-dir " + dir());
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_THAT(v.out, HasSubstr("case " + kOp + "/ascending_0_to_7: stages.packed"));
  EXPECT_THAT(v.out, HasSubstr("first difference at [0, 0]"));

  CmdResult r = qconf("run --impl optimized --golden-dir " + dir());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("FAIL " + kOp + "/ascending_0_to_7: stage packed"));
  EXPECT_THAT(r.out, HasSubstr("repro: qconf run --impl optimized --golden-dir '" + dir() +
                               "' --filter '" + kOp + "/ascending_0_to_7'"));
  EXPECT_THAT(r.out, HasSubstr("RESULT: FAIL"));
}

TEST_F(GoldenCopy, UnknownFormatVersionIsRejectedNamingFileAndField) {
  auto j = qconf::conf::Json::parse(qconf::conf::read_file(fixture()));
  j["version"] = 2;
  std::string text = j.dump(1) + "\n";
  qconf::conf::write_file(fixture(), text);
  auto m = qconf::conf::load_manifest(dir());
  m[kOp + ".json"] = qconf::conf::sha256_hex(text);
  qconf::conf::write_manifest(dir(), m);
  CmdResult r = qconf("run --impl reference --golden-dir " + dir());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("field version: unknown format version 2"));
}

TEST_F(GoldenCopy, UnlistedFixtureFileIsRejected) {
  fs::copy_file(fixture(), dir_ / "extra.json");
  CmdResult r = qconf("list cases --golden-dir " + dir());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("extra.json"));
  EXPECT_THAT(r.out, HasSubstr("not listed in MANIFEST.json"));
}

}  // namespace

namespace {

// A results file built from the goldens themselves (what a perfect harness would write).
std::string perfect_results(const std::string& filter_op, bool corrupt_one) {
  auto fixtures = qconf::conf::load_golden_dir(kGolden);
  qconf::conf::Json j = {{"format", "qconf-results"}, {"version", 1}, {"implementation", "test"}};
  qconf::conf::Json list = qconf::conf::Json::array();
  bool corrupted = false;
  for (const auto& f : fixtures) {
    if (f.op != filter_op) continue;
    for (const auto& c : f.cases) {
      qconf::conf::Json outs = qconf::conf::Json::object();
      for (const auto& s : c.stages) {
        qconf::Tensor t = s.expected;
        if (corrupt_one && !corrupted && s.output && t.nbytes()) {
          reinterpret_cast<unsigned char*>(t.bytes())[0] ^= 1;
          corrupted = true;
        }
        outs[s.name] = qconf::conf::tensor_to_json(t);
      }
      list.push_back({{"id", c.id}, {"status", "ok"}, {"outputs", outs}});
    }
  }
  j["results"] = list;
  std::string path = (fs::temp_directory_path() / ("qconf_results_" + std::to_string(getpid()) +
                                                   (corrupt_one ? "_bad" : "") + ".json"))
                         .string();
  qconf::conf::write_file(path, j.dump());
  return path;
}

TEST(Cli, ExportWritesInputsAndStageShapesWithoutExpectedValues) {
  std::string dir = (fs::temp_directory_path() / "qconf_export_test").string();
  CmdResult r =
      qconf("export --filter '" + kOp + "/ascending_0_to_7' " + dir + " --golden-dir " + kGolden);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(qconf::conf::read_file(dir + "/cases.json"));
  ASSERT_EQ(j["cases"].size(), 1u);
  EXPECT_EQ(j["cases"][0]["inputs"]["weight"]["dtype"], "int32");
  EXPECT_EQ(j["cases"][0]["stages"][1]["name"], "packed");
  EXPECT_FALSE(j["cases"][0]["stages"][1].contains("hex")) << "expected values must not leak";
  fs::remove_all(dir);
}

TEST(Cli, CheckPassesPerfectResultsAndFailsACorruptedOne) {
  std::string good = perfect_results(kOp, false), bad = perfect_results(kOp, true);
  CmdResult g = qconf("check " + good + " --golden-dir " + kGolden);
  EXPECT_EQ(g.code, 0) << g.out;
  EXPECT_THAT(g.out, HasSubstr("RESULT: PASS"));
  CmdResult b = qconf("check " + bad + " --golden-dir " + kGolden);
  EXPECT_EQ(b.code, 1) << b.out;
  EXPECT_THAT(b.out, HasSubstr("FAIL " + kOp + "/"));
  fs::remove(good);
  fs::remove(bad);
}

// A failing case of a results file prints a repro line that is a working `qconf check` command
// selecting just that case (it used to print `qconf run --impl results:PATH`, which no CLI
// accepts).
TEST(Cli, CheckReproLineRerunsExactlyTheFailingCase) {
  std::string bad = perfect_results(kOp, true);
  CmdResult b = qconf("check " + bad + " --golden-dir " + kGolden);
  ASSERT_EQ(b.code, 1) << b.out;
  const size_t at = b.out.find("repro: qconf check ");
  ASSERT_NE(at, std::string::npos) << b.out;
  const size_t eol = b.out.find('\n', at);
  const std::string repro = b.out.substr(at + 7, eol - at - 7);  // "qconf check ..."
  EXPECT_THAT(repro, HasSubstr(" --filter '" + kOp + "/"));
  CmdResult again = qconf(repro.substr(6));
  EXPECT_EQ(again.code, 1) << repro << "\n" << again.out;
  EXPECT_THAT(again.out, HasSubstr("FAIL " + kOp + "/"));
  EXPECT_THAT(again.out, HasSubstr(", 1 cases")) << again.out;
  fs::remove(bad);
}

TEST(Cli, CheckRejectsResultsForUnknownCases) {
  std::string path = (fs::temp_directory_path() / "qconf_results_unknown.json").string();
  qconf::conf::write_file(path, R"({"format": "qconf-results", "version": 1,
    "results": [{"id": "npu_convert_weight_to_int4pack/no_such_case", "outputs": {}}]})");
  CmdResult r = qconf("check " + path + " --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.out, HasSubstr("unknown case \"npu_convert_weight_to_int4pack/no_such_case\""));
  fs::remove(path);
}

TEST(Cli, CheckRequireAllTurnsMissingResultsIntoUnimplemented) {
  std::string path = (fs::temp_directory_path() / "qconf_results_partial.json").string();
  qconf::conf::write_file(path, R"({"format": "qconf-results", "version": 1, "results": []})");
  CmdResult r = qconf("check " + path + " --require-all --filter '" + kOp +
                      "/zeros' --golden-dir " + kGolden);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("UNIMPLEMENTED " + kOp + "/zeros"));
  fs::remove(path);
}

}  // namespace
