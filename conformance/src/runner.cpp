#include "qconf/conformance/runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

namespace qconf::conf {

Implementation builtin_implementation(const std::string& name) {
  if (name == "reference") return {name, [](const OpDef& d) { return d.reference; }};
  if (name == "optimized") return {name, [](const OpDef& d) { return d.optimized; }};
  if (name.rfind("plugin:", 0) == 0) return load_plugin(name.substr(7));
  throw std::invalid_argument("unknown implementation \"" + name +
                              "\" (expected reference, optimized or plugin:PATH)");
}

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative wildcard match with backtracking on the last '*'.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool filter_match(const std::string& filter, const std::string& id) {
  if (filter.empty()) return true;
  size_t start = 0;
  while (start <= filter.size()) {
    size_t end = filter.find(',', start);
    if (end == std::string::npos) end = filter.size();
    if (glob_match(std::string_view(filter).substr(start, end - start), id)) return true;
    start = end + 1;
  }
  return false;
}

bool in_shard(const std::string& id, int index, int count) {
  if (count <= 1) return true;
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (unsigned char ch : id) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return static_cast<int>(h % static_cast<uint64_t>(count)) == index;
}

void parse_shard(const std::string& spec, RunOptions& o) {
  // Strict "i/n": decimal digits only, 0 <= i < n <= 1,000,000.
  const std::string bad =
      "--shard: expected i/n with digits only and 0 <= i < n <= 1000000, got \"" + spec + "\"";
  auto slash = spec.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == spec.size())
    throw std::invalid_argument(bad);
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 7) throw std::invalid_argument(bad);
    long v = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9') throw std::invalid_argument(bad);
      v = v * 10 + (ch - '0');
    }
    return v;
  };
  long i = number(spec.substr(0, slash)), n = number(spec.substr(slash + 1));
  if (n < 1 || n > 1000000 || i >= n) throw std::invalid_argument(bad);
  o.shard_index = static_cast<int>(i);
  o.shard_count = static_cast<int>(n);
}

void shard_from_env(RunOptions& o) {
  const char* total = std::getenv("GTEST_TOTAL_SHARDS");
  const char* index = std::getenv("GTEST_SHARD_INDEX");
  if (total && index) parse_shard(std::string(index) + "/" + total, o);
}

std::vector<const Case*> select_cases(const std::vector<Fixture>& fixtures, const RunOptions& o) {
  std::vector<const Case*> v;
  for (const Fixture& f : fixtures)
    for (const Case& c : f.cases)
      if (filter_match(o.filter, c.id) && in_shard(c.id, o.shard_index, o.shard_count))
        v.push_back(&c);
  return v;
}

std::string repro_line(const Implementation& impl, const RunOptions& o, const Case& c) {
  const std::string head =
      impl.repro_command.empty() ? "qconf run --impl " + impl.name : impl.repro_command;
  return head + (o.golden_dir.empty() ? "" : " --golden-dir " + shell_quote(o.golden_dir)) +
         " --filter " + shell_quote(c.id);
}

CaseResult run_case(const Case& c, const Implementation& impl, const RunOptions& o) {
  CaseResult r;
  r.c = &c;
  r.repro = repro_line(impl, o, c);
  auto t0 = std::chrono::steady_clock::now();
  TensorMap out;
  if (impl.call) {
    CallOutcome oc = impl.call(c);
    if (oc.verdict != Verdict::kPass) {
      r.verdict = oc.verdict;
      r.message = oc.message;
      if (oc.verdict == Verdict::kFail) r.failing_stage = "(call)";
      return r;
    }
    out = std::move(oc.out);
  } else {
    const OpDef* def = OpRegistry::instance().find(c.op);
    Kernel k = def ? impl.kernel_for(*def) : Kernel{};
    if (!k) {
      r.verdict = Verdict::kUnimplemented;
      r.message = impl.name + " does not implement " + c.op;
      return r;
    }
    try {
      k(c.params, c.inputs, out);
    } catch (const Unimplemented& e) {
      r.verdict = Verdict::kUnimplemented;
      r.message = e.what();
      return r;
    } catch (const std::exception& e) {
      r.verdict = Verdict::kFail;
      r.failing_stage = "(kernel)";
      r.message = std::string("the kernel threw: ") + e.what();
      r.ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      return r;
    }
  }
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  bool mistrusted = false;
  for (const Stage& s : c.stages) {
    auto it = out.find(s.name);
    if (it == out.end()) {
      if (!s.output) continue;  // intermediates are optional
      StageResult sr;
      sr.stage = s.name;
      sr.verdict = Verdict::kFail;
      sr.message = "the implementation produced no output \"" + s.name + "\"";
      r.stages.push_back(sr);
    } else {
      r.stages.push_back(verify_stage(s, it->second));
    }
    const StageResult& sr = r.stages.back();
    if (sr.verdict == Verdict::kFail && r.verdict != Verdict::kFail) {
      r.verdict = Verdict::kFail;
      r.failing_stage = s.name;
      r.message = "stage " + s.name + ": " + sr.message;
    }
    mistrusted = mistrusted || sr.verdict == Verdict::kMistrusted;
  }
  if (r.verdict == Verdict::kPass && mistrusted) {
    r.verdict = Verdict::kMistrusted;
    r.message = "expected output is degenerate (mostly zero)";
  }
  return r;
}

std::vector<CaseResult> run_all(const std::vector<const Case*>& cases, const Implementation& impl,
                                const RunOptions& o) {
  if (impl.isolate) return run_all_isolated(cases, impl, o);
  std::vector<CaseResult> results;
  results.reserve(cases.size());
  const bool tty = o.progress && isatty(STDERR_FILENO);
  for (size_t i = 0; i < cases.size(); ++i) {
    if (tty)
      std::fprintf(stderr, "\r[%zu/%zu] %-70.70s", i + 1, cases.size(), cases[i]->id.c_str());
    results.push_back(run_case(*cases[i], impl, o));
  }
  if (tty) std::fprintf(stderr, "\r%*s\r", 90, "");
  return results;
}

bool any_failure(const std::vector<CaseResult>& results) {
  for (const auto& r : results)
    if (verdict_is_failure(r.verdict)) return true;
  return false;
}

}  // namespace qconf::conf
