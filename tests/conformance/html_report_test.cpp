// The HTML report's structure and escaping, without a browser (the browser test is
// tests/scripts/html_report_test.py, label browser): hostile case ids and messages stay text,
// the matrix has one row per op with the right counts, and chart data is embedded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qconf/conformance/runner.h"

namespace qconf::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

struct Fixture2 {
  Case hostile, plain, bounded;
  std::vector<CaseResult> results;
  Fixture2() {
    hostile.id = "evil<op>/<b>&\"x'</script>";
    hostile.op = "evil<op>";
    plain.id = "plain/a";
    plain.op = "plain";
    bounded.id = "plain/b";
    bounded.op = "plain";
    CaseResult f;
    f.c = &hostile;
    f.verdict = Verdict::kFail;
    f.failing_stage = "y<1>";
    f.message = "</script><script>alert(1)</script>";
    f.repro = "qconf run --filter '<x>'";
    StageResult s;
    s.stage = "y<1>";
    s.verdict = Verdict::kFail;
    s.message = "1 of 1 elements differ (exact)";
    s.mismatches = 1;
    s.first.push_back({0, "[0]", "1 & 2", "<3>", "+2 codes"});
    f.stages.push_back(s);
    results.push_back(f);
    CaseResult p;
    p.c = &plain;
    results.push_back(p);
    CaseResult b;
    b.c = &bounded;
    b.verdict = Verdict::kMistrusted;
    StageResult bs;
    bs.stage = "acc";
    bs.sample_stride = 1;
    bs.stats.elements = 2;
    bs.samples = {{0, 0.5, 1.0}, {1, 0.0, 0.25}};
    b.stages.push_back(bs);
    results.push_back(b);
  }
};

TEST(HtmlReport, HostileTextIsEscapedEverywhere) {
  Fixture2 f;
  const std::string h = html_report(f.results, {"impl<&>", "golden", "abc", "qconf run"});
  EXPECT_THAT(h, Not(HasSubstr("<b>&")));
  EXPECT_THAT(h, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(h, Not(HasSubstr("<op>")));
  EXPECT_THAT(h, Not(HasSubstr("impl<&>")));
  EXPECT_EQ(count(h, "<script"), 2u) << "the chart data and the page's own script only";
  EXPECT_EQ(count(h, "</script"), 2u);
  EXPECT_THAT(h, HasSubstr("evil&lt;op&gt;/&lt;b&gt;&amp;&quot;x&#39;&lt;/script&gt;"));
  EXPECT_THAT(h, HasSubstr("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(h, HasSubstr("<td>1 &amp; 2</td><td>&lt;3&gt;</td>"));
  EXPECT_THAT(h, HasSubstr("qconf run --filter &#39;&lt;x&gt;&#39;"));
}

TEST(HtmlReport, MatrixHasOneRowPerOpWithItsCounts) {
  Fixture2 f;
  const std::string h = html_report(f.results, {"impl", "golden", "", ""});
  EXPECT_EQ(count(h, "<tr data-op="), 2u);
  EXPECT_THAT(h, HasSubstr("<tr data-op=\"evil&lt;op&gt;\">"));
  // plain: 1 PASS, 1 MISTRUSTED; evil: 1 FAIL.
  EXPECT_THAT(h, HasSubstr("data-verdict=\"MISTRUSTED\">1</a>"));
  EXPECT_THAT(h, HasSubstr("data-verdict=\"FAIL\">1</a>"));
  EXPECT_THAT(h, HasSubstr("id=\"qconf-result\">FAIL<"));
  EXPECT_THAT(h, HasSubstr("first differing stage: <b><code>y&lt;1&gt;</code>"));
}

TEST(HtmlReport, BoundedStagesGetAChartWithTheirSamples) {
  Fixture2 f;
  const std::string h = html_report(f.results, {"impl", "golden", "", ""});
  EXPECT_EQ(count(h, "<div class=\"plot\""), 1u);
  EXPECT_THAT(h, HasSubstr("[[0.5,1,0],[0,0.25,1]]"));
  EXPECT_THAT(h, HasSubstr("2 of 2 elements shown"));
}

TEST(HtmlReport, NoExternalResourceAndAPolicyForbiddingThem) {
  Fixture2 f;
  const std::string h = html_report(f.results, {"impl", "golden", "", ""});
  EXPECT_THAT(h, HasSubstr("default-src 'none'"));
  EXPECT_THAT(h, Not(HasSubstr("src=")));
  EXPECT_THAT(h, Not(HasSubstr("href=\"http")));
  EXPECT_THAT(h, Not(HasSubstr("url(")));
  EXPECT_THAT(h, Not(HasSubstr("@import")));
}

}  // namespace
}  // namespace qconf::conf
