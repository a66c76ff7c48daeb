// The inputs the fuzz targets (tests/fuzz/, run by tests/scripts/fuzz_test.sh under clang) found
// or were hardened against, replayed through the parsers of this build: each one must be rejected
// with a FixtureError carrying the message its .expect file states, never a crash or another
// exception.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "qconf/conformance/exchange.h"
#include "qconf/conformance/fixture.h"

namespace {

namespace fs = std::filesystem;
using namespace qconf::conf;

struct Vector {
  std::string path, expect;
};

std::vector<Vector> vectors(const std::string& target) {
  std::vector<Vector> v;
  const fs::path dir = fs::path(QCONF_SOURCE_DIR) / "tests/fuzz/regressions" / target;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    fs::path expect = e.path();
    expect.replace_extension(".expect");
    std::string text = fs::exists(expect) ? read_file(expect.string()) : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    v.push_back({e.path().string(), text});
  }
  std::sort(v.begin(), v.end(), [](const Vector& a, const Vector& b) { return a.path < b.path; });
  return v;
}

template <class Parse>
void expect_clear_error(const Vector& v, Parse parse) {
  SCOPED_TRACE(v.path);
  ASSERT_FALSE(v.expect.empty()) << "every regression vector needs a .expect file";
  try {
    parse(read_file(v.path), v.path);
    ADD_FAILURE() << "accepted";
  } catch (const FixtureError& e) {
    EXPECT_THAT(e.what(), ::testing::StartsWith(v.path));
    EXPECT_THAT(e.what(), ::testing::HasSubstr(v.expect));
  }
}

TEST(FuzzRegressions, FixtureVectorsGiveTheirStatedError) {
  auto vs = vectors("fixture");
  EXPECT_GE(vs.size(), 2u);
  for (const Vector& v : vs) expect_clear_error(v, fixture_from_text);
}

TEST(FuzzRegressions, ResultsVectorsGiveTheirStatedError) {
  auto vs = vectors("results");
  EXPECT_GE(vs.size(), 2u);
  for (const Vector& v : vs) expect_clear_error(v, results_from_text);
}

// The depth limit must not reject what the goldens need, and must reject one level past it.
TEST(FuzzRegressions, NestingUpToTheLimitParsesAndOnePastItIsRejected) {
  auto doc = [](int depth) {
    // The document object is level 1, "params"-like value nests the rest.
    return "{\"x\": " + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
  };
  EXPECT_NO_THROW(parse_json_strict(doc(64), "ok.json"));
  EXPECT_THROW(parse_json_strict(doc(65), "deep.json"), FixtureError);
}

}  // namespace
