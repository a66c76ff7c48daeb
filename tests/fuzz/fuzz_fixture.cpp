// libFuzzer target: the golden fixture parser (fixture_from_text) on arbitrary bytes.
// The only acceptable outcomes are a parsed Fixture or a FixtureError naming what is wrong; any
// other exception, a crash, a sanitizer report (ASan, UBSan) or a leak is a finding.
// A parsed fixture must also survive a round trip: written back, it parses to the same text.
// Built and run by tests/scripts/fuzz_test.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_common.h"
#include "qconf/conformance/fixture.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  qconf_fuzz::register_golden_ops();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qconf::conf;
  const std::string text(reinterpret_cast<const char*>(data), size);
  Fixture f;
  try {
    f = fixture_from_text(text, "fuzz.json");
  } catch (const FixtureError& e) {
    if (std::string(e.what()).rfind("fuzz.json", 0) != 0) std::abort();  // must name the file
    return 0;
  }
  const std::string written = fixture_to_text(f);
  if (fixture_to_text(fixture_from_text(written, "roundtrip.json")) != written) std::abort();
  return 0;
}
