// Out-of-process checking: export the inputs, check a results file written in any language.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qconf/conformance/runner.h"

namespace qconf::conf {

// Writes DIR/cases.json ({"format": "qconf-export", "version": 1, "cases": [{id, op, params,
// inputs, stages: [{name, output, dtype, shape}]}]}) and returns its path.
std::string export_cases(const std::vector<const Case*>& cases, const std::string& dir);

struct ResultEntry {
  std::string status;  // ok | unimplemented | error
  std::string message;
  TensorMap outputs;  // stage name -> tensor (same encoding as fixtures)
};

// {"format": "qconf-results", "version": 1, "implementation": "...",
//  "results": [{"id", "status", "message", "outputs": {stage: tensor}}]}
struct ResultsFile {
  std::string path;
  std::string implementation;
  std::map<std::string, ResultEntry> entries;
};
ResultsFile load_results(const std::string& path);  // strict; throws FixtureError
// The same from text already read; `path` names the source in errors. Any malformed input gives
// a FixtureError (tests/fuzz/fuzz_results.cpp holds it to that).
ResultsFile results_from_text(const std::string& text, const std::string& path);

// An implementation that answers each case from a results file (missing cases: SKIPPED).
Implementation results_implementation(std::shared_ptr<const ResultsFile> results);
// Result ids that name no golden case (a typo in a harness must not pass silently).
std::vector<std::string> unknown_result_ids(const ResultsFile& r,
                                            const std::vector<Fixture>& fixtures);

}  // namespace qconf::conf
