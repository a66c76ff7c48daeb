// The runner: sends golden cases through an implementation and collects verdicts.
// Reference, optimized and plugin implementations are all driven through the same Kernel.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"

namespace qconf::conf {

// What running one case through an implementation produced, before verification.
struct CallOutcome {
  Verdict verdict = Verdict::kPass;  // kPass: compare `out`; otherwise the case's verdict
  std::string message;
  TensorMap out;
};

struct Implementation {
  std::string name;  // "reference", "optimized", "plugin:/path/lib.so", ...
  // The kernel for an op, or an empty function when the implementation lacks it.
  std::function<Kernel(const OpDef&)> kernel_for;
  // Optional: runs a whole case (plugins need the expected stage shapes to allocate outputs).
  // When set, it is used instead of kernel_for.
  std::function<CallOutcome(const Case&)> call = nullptr;
  // Run batches of cases in child processes (crash and hang isolation). Default for plugins.
  bool isolate = false;
  // The command a failure's repro line starts with; the runner appends the golden dir and
  // `--filter 'ID'`. Empty: "qconf run --impl NAME" (results files: "qconf check PATH").
  std::string repro_command = "";
};

// "reference", "optimized" or "plugin:PATH"; throws std::invalid_argument for anything else.
Implementation builtin_implementation(const std::string& name);
// Loads a shared library exporting qconf_iut_get() (conformance/include/qconf/iut.h).
// Throws std::runtime_error naming the path and what is wrong.
Implementation load_plugin(const std::string& path);

struct CaseResult {
  const Case* c = nullptr;
  Verdict verdict = Verdict::kPass;
  std::string failing_stage;  // the first stage that differs
  std::string message;        // one line
  std::vector<StageResult> stages;
  double ms = 0;
  std::string repro;  // a one-line command reproducing this case
};

struct RunOptions {
  std::string filter;  // comma-separated globs over case ids ('*', '?'); empty = all
  int shard_index = 0;
  int shard_count = 1;
  bool progress = false;   // progress line on stderr
  std::string golden_dir;  // for repro lines
  double timeout_s = 60;   // per case, when isolated
};

bool glob_match(std::string_view pattern, std::string_view text);
bool filter_match(const std::string& filter, const std::string& id);
// Deterministic shard of a case: FNV-1a 64 of its id modulo the shard count, so adding a
// case never moves the others between shards.
bool in_shard(const std::string& id, int index, int count);
// Reads GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX into `o` when set (and "--shard i/n" wins).
void shard_from_env(RunOptions& o);
void parse_shard(const std::string& spec, RunOptions& o);  // "i/n"; throws on bad input

std::vector<const Case*> select_cases(const std::vector<Fixture>& fixtures, const RunOptions& o);
CaseResult run_case(const Case& c, const Implementation& impl, const RunOptions& o);
// `s` in single quotes for a POSIX shell (inline: the fuzz build links exchange.cpp without
// runner.cpp).
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}
// The one-line command that reproduces case `c` of `impl` (Implementation::repro_command).
std::string repro_line(const Implementation& impl, const RunOptions& o, const Case& c);
// Runs every case; isolated in child processes when impl.isolate is set.
std::vector<CaseResult> run_all(const std::vector<const Case*>& cases, const Implementation& impl,
                                const RunOptions& o);
std::vector<CaseResult> run_all_isolated(const std::vector<const Case*>& cases,
                                         const Implementation& impl, const RunOptions& o);
// One result as a JSON object, and back (the child -> parent protocol of isolated runs).
Json case_result_to_json(const CaseResult& r);
// An error statistic as JSON: a number when finite, else "inf", "-inf" or "nan" (nlohmann-json
// would write null); and back (std::runtime_error on any other string). Reports use it too.
Json stat_to_json(double v);
double stat_from_json(const Json& j);
CaseResult case_result_from_json(const Json& j, const Case* c);

// Reports.
struct OpSummary {
  std::string op;
  int counts[7] = {0, 0, 0, 0, 0, 0, 0};  // indexed by Verdict
};
std::vector<OpSummary> summarize(const std::vector<CaseResult>& results);
void print_console_report(const std::vector<CaseResult>& results, const std::string& impl,
                          std::FILE* out);
std::string json_report(const std::vector<CaseResult>& results, const std::string& impl);
std::string junit_report(const std::vector<CaseResult>& results, const std::string& impl);
bool any_failure(const std::vector<CaseResult>& results);

// A self-contained HTML page (inline CSS, JS and SVG; nothing fetched): run header, the op x
// verdict matrix, failure details with repro lines, and charts of |got - exact| against the
// bound for BOUNDED stages. Written by `qconf run|check --html FILE`.
struct HtmlReportInfo {
  std::string implementation;
  std::string golden_dir;
  std::string golden_set;  // sha256 of golden/MANIFEST.json, naming the fixture set
  std::string command;     // the command line that produced the results
};
std::string html_report(const std::vector<CaseResult>& results, const HtmlReportInfo& info);
std::string html_escape(const std::string& s);

}  // namespace qconf::conf
