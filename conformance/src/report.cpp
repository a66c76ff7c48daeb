// Console, JSON and JUnit reports of a run.
#include <cstdio>
#include <map>
#include <sstream>

#include "qconf/conformance/runner.h"

namespace qconf::conf {

namespace {
constexpr Verdict kAllVerdicts[] = {
    Verdict::kPass,    Verdict::kFail,  Verdict::kMistrusted, Verdict::kUnimplemented,
    Verdict::kSkipped, Verdict::kCrash, Verdict::kTimeout};

// XML escaping keeps ' as is (JUnit repro lines stay readable shell commands).
std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')
          o += ' ';
        else
          o += c;
    }
  }
  return o;
}

// JUnit's time attribute is an xs:decimal: seconds in fixed notation.
std::string seconds(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", ms / 1000);
  return buf;
}

std::string mismatch_lines(const CaseResult& r) {
  std::ostringstream o;
  for (const auto& s : r.stages) {
    if (s.verdict != Verdict::kFail) continue;
    o << "  stage " << s.stage << ": " << s.message << "\n";
    for (const auto& m : s.first)
      o << "    at " << m.coords << " (flat " << m.index << "): expected " << m.expected << ", got "
        << m.got << " [" << m.difference << "]\n";
    if (s.mismatches > static_cast<int64_t>(s.first.size()))
      o << "    ... and " << (s.mismatches - static_cast<int64_t>(s.first.size())) << " more\n";
  }
  return o.str();
}
}  // namespace

std::vector<OpSummary> summarize(const std::vector<CaseResult>& results) {
  std::map<std::string, OpSummary> m;
  for (const auto& r : results) {
    auto& s = m[r.c->op];
    s.op = r.c->op;
    ++s.counts[static_cast<int>(r.verdict)];
  }
  std::vector<OpSummary> v;
  for (auto& [k, s] : m) v.push_back(s);
  return v;
}

void print_console_report(const std::vector<CaseResult>& results, const std::string& impl,
                          std::FILE* out) {
  for (const auto& r : results) {
    if (!verdict_is_failure(r.verdict)) continue;
    std::fprintf(out, "%s %s: %s\n%s  repro: %s\n", std::string(verdict_name(r.verdict)).c_str(),
                 r.c->id.c_str(), r.message.c_str(), mismatch_lines(r).c_str(), r.repro.c_str());
  }
  auto sums = summarize(results);
  std::fprintf(out, "\nqconf conformance: implementation %s, %zu cases\n", impl.c_str(),
               results.size());
  std::fprintf(out, "  %-44s %6s %6s %10s %6s\n", "op", "pass", "fail", "mistrusted", "other");
  int total[7] = {0, 0, 0, 0, 0, 0, 0};
  for (const auto& s : sums) {
    int other = s.counts[3] + s.counts[4] + s.counts[5] + s.counts[6];
    std::fprintf(out, "  %-44s %6d %6d %10d %6d\n", s.op.c_str(), s.counts[0], s.counts[1],
                 s.counts[2], other);
    for (int i = 0; i < 7; ++i) total[i] += s.counts[i];
  }
  std::string line;
  for (Verdict v : kAllVerdicts) {
    int n = total[static_cast<int>(v)];
    if (n || v == Verdict::kPass || v == Verdict::kFail)
      line += (line.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(verdict_name(v));
  }
  std::fprintf(out, "RESULT: %s (%s)\n", any_failure(results) ? "FAIL" : "PASS", line.c_str());
}

std::string json_report(const std::vector<CaseResult>& results, const std::string& impl) {
  Json j = Json::object();
  j["format"] = "qconf-report";
  j["version"] = 1;
  j["implementation"] = impl;
  j["result"] = any_failure(results) ? "FAIL" : "PASS";
  Json ops = Json::object();
  for (const auto& s : summarize(results)) {
    Json c = Json::object();
    for (Verdict v : kAllVerdicts) c[std::string(verdict_name(v))] = s.counts[static_cast<int>(v)];
    ops[s.op] = std::move(c);
  }
  j["ops"] = std::move(ops);
  Json cases = Json::array();
  for (const auto& r : results) {
    Json c = Json::object();
    c["id"] = r.c->id;
    c["op"] = r.c->op;
    c["verdict"] = verdict_name(r.verdict);
    c["ms"] = stat_to_json(r.ms);
    if (!r.message.empty()) c["message"] = r.message;
    if (!r.failing_stage.empty()) c["failing_stage"] = r.failing_stage;
    Json st = Json::array();
    for (const auto& s : r.stages) {
      Json js = Json::object();
      js["stage"] = s.stage;
      js["verdict"] = verdict_name(s.verdict);
      js["mismatches"] = s.mismatches;
      if (s.used_accept_set) js["used_accept_set"] = true;
      if (s.stats.elements) {
        js["max_err_over_bound"] = stat_to_json(s.stats.max_err_over_bound);
        js["rms_err_over_bound"] = stat_to_json(s.stats.rms_err_over_bound);
        js["mean_err_over_bound"] = stat_to_json(s.stats.mean_err_over_bound);
      }
      Json first = Json::array();
      for (const auto& m : s.first)
        first.push_back(Json{{"index", m.index},
                             {"coords", m.coords},
                             {"expected", m.expected},
                             {"got", m.got},
                             {"difference", m.difference}});
      if (!first.empty()) js["first_mismatches"] = std::move(first);
      st.push_back(std::move(js));
    }
    c["stages"] = std::move(st);
    if (verdict_is_failure(r.verdict)) c["repro"] = r.repro;
    cases.push_back(std::move(c));
  }
  j["cases"] = std::move(cases);
  return j.dump(1) + "\n";
}

std::string junit_report(const std::vector<CaseResult>& results, const std::string& impl) {
  std::map<std::string, std::vector<const CaseResult*>> by_op;
  for (const auto& r : results) by_op[r.c->op].push_back(&r);
  std::ostringstream o;
  int failures = 0, errors = 0, skipped = 0;
  for (const auto& r : results) {
    failures += r.verdict == Verdict::kFail;
    errors += r.verdict == Verdict::kCrash || r.verdict == Verdict::kTimeout ||
              r.verdict == Verdict::kUnimplemented;
    skipped += r.verdict == Verdict::kSkipped;
  }
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o << "<testsuites name=\"qconf " << xml_escape(impl) << "\" tests=\"" << results.size()
    << "\" failures=\"" << failures << "\" errors=\"" << errors << "\" skipped=\"" << skipped
    << "\">\n";
  for (const auto& [op, rs] : by_op) {
    int f = 0, e = 0, s = 0;
    double ms = 0;
    for (const auto* r : rs) {
      f += r->verdict == Verdict::kFail;
      e += r->verdict == Verdict::kCrash || r->verdict == Verdict::kTimeout ||
           r->verdict == Verdict::kUnimplemented;
      s += r->verdict == Verdict::kSkipped;
      ms += r->ms;
    }
    o << " <testsuite name=\"" << xml_escape(op) << "\" tests=\"" << rs.size() << "\" failures=\""
      << f << "\" errors=\"" << e << "\" skipped=\"" << s << "\" time=\"" << seconds(ms) << "\">\n";
    for (const auto* r : rs) {
      o << "  <testcase classname=\"" << xml_escape(op) << "\" name=\"" << xml_escape(r->c->id)
        << "\" time=\"" << seconds(r->ms) << "\"";
      std::string detail =
          xml_escape(r->message + "\n" + mismatch_lines(*r) + "repro: " + r->repro);
      switch (r->verdict) {
        case Verdict::kPass:
          o << "/>\n";
          break;
        case Verdict::kMistrusted:
          o << ">\n   <system-out>MISTRUSTED: " << xml_escape(r->message)
            << "</system-out>\n  </testcase>\n";
          break;
        case Verdict::kSkipped:
          o << ">\n   <skipped message=\"" << xml_escape(r->message) << "\"/>\n  </testcase>\n";
          break;
        case Verdict::kFail:
          o << ">\n   <failure message=\"" << xml_escape(r->message) << "\">" << detail
            << "</failure>\n  </testcase>\n";
          break;
        default:
          o << ">\n   <error type=\"" << verdict_name(r->verdict) << "\" message=\""
            << xml_escape(r->message) << "\">" << detail << "</error>\n  </testcase>\n";
      }
    }
    o << " </testsuite>\n";
  }
  o << "</testsuites>\n";
  return o.str();
}

}  // namespace qconf::conf
