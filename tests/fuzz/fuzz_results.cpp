// libFuzzer target: the results-file parser of `qconf check` (results_from_text) on arbitrary
// bytes. The only acceptable outcomes are a parsed ResultsFile or a FixtureError naming what is
// wrong; any other exception, a crash, a sanitizer report or a leak is a finding.
// Built and run by tests/scripts/fuzz_test.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_common.h"
#include "qconf/conformance/exchange.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qconf::conf;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ResultsFile r = results_from_text(text, "fuzz-results.json");
    // What `qconf check` does next with a parsed file: look the ids up, answer a case.
    (void)unknown_result_ids(r, {});
    for (const auto& [id, e] : r.entries)
      for (const auto& [stage, t] : e.outputs) (void)t.describe();
  } catch (const FixtureError& e) {
    if (std::string(e.what()).rfind("fuzz-results.json", 0) != 0) std::abort();
  }
  return 0;
}
