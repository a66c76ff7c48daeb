// Golden fixtures: the in-memory model of golden/<op>.json and its strict reader/writer.
// The file format is specified in docs/golden-format.md and golden/schema/golden.schema.json.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf::conf {

using Json = nlohmann::ordered_json;

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "qconf-golden";

// Every loading error names the file, the case, the field, and what was expected.
class FixtureError : public std::runtime_error {
 public:
  FixtureError(std::string file, std::string case_id, std::string field, std::string what);
  const std::string& file() const { return file_; }
  const std::string& case_id() const { return case_id_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_, case_id_, field_;
};

// How one stage is checked (see docs/golden-format.md, "check").
enum class CheckMode {
  kExact,      // bit-identical, NaN payload included
  kExactTies,  // exact, except where the exact pre-rounding value sits on a tie: `accept` lists
               // codes
  kReachable,  // exact within the set of values reachable through inexact float steps: `accept`
  kBounded,    // |got - exact| <= bound, per element, plus tensor-level statistics
  kSpecial,    // float specials: NaN, +-Inf, signed zero (finite values exact)
  kRowSet,     // per row (last dim): the row as a multiset equals the expected row's or one of
               // the alternative rows in `accept` (index = row numbers, values = whole rows);
               // with Check::ordered, as a sequence (order within the row is specified)
};
std::string_view check_mode_name(CheckMode m);
CheckMode parse_check_mode(std::string_view s);  // throws std::invalid_argument

// A sparse set of acceptable values per element (CSR): element index[j] may take any of
// values[offsets[j] .. offsets[j+1]). Elements not listed must equal the expected tensor.
struct AcceptSet {
  std::vector<int64_t> index;
  std::vector<int64_t> offsets;  // size index.size() + 1
  Tensor values;                 // same dtype as the stage
  bool empty() const { return index.empty(); }
  // Values acceptable at flat element i (empty when i is not listed).
  std::vector<uint64_t> bits_for(int64_t i) const;
};

struct Check {
  CheckMode mode = CheckMode::kExact;
  AcceptSet accept;             // kExactTies, kReachable
  std::optional<Tensor> exact;  // kBounded: exact value (float64, rounded to nearest)
  std::optional<Tensor> bound;  // kBounded: per-element absolute bound (float64)
  bool signed_zero = true;      // kSpecial/kExact: -0 and +0 differ
  bool degenerate_ok = false;   // an intentionally degenerate output: never MISTRUSTED
  // kRowSet only: rows are sequences, not multisets. A row passes when it equals the expected
  // row or one of the alternative rows element by element (the alternatives list every
  // acceptable order, e.g. both orders of tied or near-tied top-k ids).
  bool ordered = false;
  // Optional "compared" element ranges (flat [begin, end) pairs, sorted, disjoint, non-empty).
  // Absent (empty): every element is compared. Present: elements outside every range are
  // unspecified (e.g. rows a kernel never writes) and are never compared, in any mode.
  std::vector<int64_t> compared;
  bool is_compared(int64_t i) const;
};

struct Stage {
  std::string name;
  bool output = true;  // false: an intermediate stage an implementation may not expose
  Tensor expected;
  Check check;
};

// One Wycheproof-style flag explanation (golden file "notes").
struct Note {
  std::string bug_type;  // BASIC, EDGE_CASE, FUNCTIONALITY, LEGACY, DIVERGENCE, ...
  std::string description;
  std::string effect;
};

struct Case {
  std::string id;  // "<op>/<name>", unique across all fixtures
  std::string op;
  std::string comment;
  std::vector<std::string> flags;
  Json params = Json::object();  // variant parameters
  TensorMap inputs;
  std::vector<Stage> stages;  // pipeline order: the first differing stage is reported
  std::string file;           // where it was loaded from (for messages)
};

struct Fixture {
  std::string op;
  std::string description;
  std::vector<std::string> sources;
  std::map<std::string, Note> notes;
  std::vector<Case> cases;
};

// Tensor <-> JSON ({"dtype", "shape", "hex"}): little-endian element bytes as lowercase hex.
Json tensor_to_json(const Tensor& t);
// `where` is prepended to error messages' field (e.g. "inputs.weight").
Tensor tensor_from_json(const Json& j, const std::string& file, const std::string& case_id,
                        const std::string& where);

Json fixture_to_json(const Fixture& f);
std::string fixture_to_text(const Fixture& f);  // canonical text, as written to golden/
// Strict parse. `known_op` says whether an op name is registered (unknown ops are errors).
// Any malformed input gives a FixtureError (tests/fuzz/fuzz_fixture.cpp holds it to that).
Fixture fixture_from_text(const std::string& text, const std::string& file);
// JSON parse that also rejects duplicate keys in any object; throws FixtureError.
Json parse_json_strict(const std::string& text, const std::string& file);
Fixture load_fixture_file(const std::string& path);

// golden/MANIFEST.json: {"format": "qconf-manifest", "version": 1, "files": {name: sha256}}
std::string sha256_hex(const std::string& bytes);
std::map<std::string, std::string> load_manifest(const std::string& golden_dir);
void write_manifest(const std::string& golden_dir, const std::map<std::string, std::string>& m);

// Loads every *.json fixture named in the manifest, checking each hash, every op name
// against the registry, and case-id uniqueness across files.
std::vector<Fixture> load_golden_dir(const std::string& golden_dir);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

}  // namespace qconf::conf
