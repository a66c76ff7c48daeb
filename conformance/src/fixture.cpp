#include "qconf/conformance/fixture.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "qconf/conformance/op.h"

namespace qconf::conf {

namespace fs = std::filesystem;

FixtureError::FixtureError(std::string file, std::string case_id, std::string field,
                           std::string what)
    : std::runtime_error(file + (case_id.empty() ? "" : ": case " + case_id) +
                         (field.empty() ? "" : ": field " + field) + ": " + what),
      file_(std::move(file)),
      case_id_(std::move(case_id)),
      field_(std::move(field)) {}

std::string_view check_mode_name(CheckMode m) {
  switch (m) {
    case CheckMode::kExact:
      return "exact";
    case CheckMode::kExactTies:
      return "exact_ties";
    case CheckMode::kReachable:
      return "reachable";
    case CheckMode::kBounded:
      return "bounded";
    case CheckMode::kSpecial:
      return "special";
    case CheckMode::kRowSet:
      return "row_set";
  }
  return "?";
}

CheckMode parse_check_mode(std::string_view s) {
  for (CheckMode m : {CheckMode::kExact, CheckMode::kExactTies, CheckMode::kReachable,
                      CheckMode::kBounded, CheckMode::kSpecial, CheckMode::kRowSet})
    if (check_mode_name(m) == s) return m;
  throw std::invalid_argument(
      "unknown check mode \"" + std::string(s) +
      "\" (expected exact, exact_ties, reachable, bounded, special or row_set)");
}

bool Check::is_compared(int64_t i) const {
  if (compared.empty()) return true;
  // The last range whose begin is <= i.
  auto it = std::upper_bound(compared.begin(), compared.end(), i);
  const size_t pos = static_cast<size_t>(it - compared.begin());
  return pos % 2 == 1 && i < compared[pos];
}

std::vector<uint64_t> AcceptSet::bits_for(int64_t i) const {
  auto it = std::lower_bound(index.begin(), index.end(), i);
  if (it == index.end() || *it != i) return {};
  size_t j = static_cast<size_t>(it - index.begin());
  std::vector<uint64_t> out;
  for (int64_t k = offsets[j]; k < offsets[j + 1]; ++k) out.push_back(values.bits_at(k));
  return out;
}

// ---- tensors ----------------------------------------------------------------------------------

namespace {
constexpr char kHex[] = "0123456789abcdef";

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is rejected: the canonical form is lowercase
}

// Rejects any key not in `allowed`.
void check_keys(const Json& j, std::initializer_list<const char*> allowed, const std::string& file,
                const std::string& case_id, const std::string& where) {
  if (!j.is_object())
    throw FixtureError(file, case_id, where,
                       "expected a JSON object, got " + std::string(j.type_name()));
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw FixtureError(file, case_id, where.empty() ? it.key() : where + "." + it.key(),
                         "unknown field (expected one of: " + list + ")");
    }
  }
}

const Json& require(const Json& j, const char* key, const std::string& file,
                    const std::string& case_id, const std::string& where) {
  auto it = j.find(key);
  std::string f = where.empty() ? key : where + "." + key;
  if (it == j.end()) throw FixtureError(file, case_id, f, "missing required field");
  return *it;
}

std::string require_string(const Json& j, const char* key, const std::string& file,
                           const std::string& case_id, const std::string& where) {
  const Json& v = require(j, key, file, case_id, where);
  if (!v.is_string())
    throw FixtureError(file, case_id, where.empty() ? key : where + "." + key,
                       "expected a string, got " + std::string(v.type_name()));
  return v.get<std::string>();
}

std::vector<std::string> string_list(const Json& j, const std::string& file,
                                     const std::string& case_id, const std::string& where) {
  if (!j.is_array()) throw FixtureError(file, case_id, where, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string())
      throw FixtureError(file, case_id, where,
                         "expected an array of strings, found " + std::string(e.type_name()));
    out.push_back(e.get<std::string>());
  }
  return out;
}

bool optional_bool(const Json& j, const char* key, bool dflt, const std::string& file,
                   const std::string& case_id, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return dflt;
  if (!it->is_boolean())
    throw FixtureError(file, case_id, where + "." + key, "expected true or false");
  return it->get<bool>();
}
}  // namespace

Json tensor_to_json(const Tensor& t) {
  std::string hex;
  hex.resize(t.nbytes() * 2);
  const auto* b = reinterpret_cast<const unsigned char*>(t.bytes());
  for (size_t i = 0; i < t.nbytes(); ++i) {
    hex[2 * i] = kHex[b[i] >> 4];
    hex[2 * i + 1] = kHex[b[i] & 15];
  }
  Json j = Json::object();
  j["dtype"] = dtype_name(t.dtype());
  j["shape"] = t.shape();
  j["hex"] = std::move(hex);
  return j;
}

Tensor tensor_from_json(const Json& j, const std::string& file, const std::string& case_id,
                        const std::string& where) {
  check_keys(j, {"dtype", "shape", "hex"}, file, case_id, where);
  DType dt;
  try {
    dt = parse_dtype(require_string(j, "dtype", file, case_id, where));
  } catch (const std::invalid_argument& e) {
    throw FixtureError(file, case_id, where + ".dtype", e.what());
  }
  const Json& js = require(j, "shape", file, case_id, where);
  if (!js.is_array())
    throw FixtureError(file, case_id, where + ".shape", "expected an array of integers");
  Shape shape;
  for (const auto& d : js) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      throw FixtureError(file, case_id, where + ".shape",
                         "expected non-negative integers, found " + d.dump());
    shape.push_back(d.get<int64_t>());
  }
  std::string hex = require_string(j, "hex", file, case_id, where);
  // Size the tensor before allocating it: a hostile shape must not exhaust memory or overflow.
  const uint64_t kMaxBytes = uint64_t{1} << 40;
  uint64_t nbytes = dtype_size(dt);
  for (int64_t d : shape) {
    if (d != 0 && nbytes > kMaxBytes / static_cast<uint64_t>(d))
      throw FixtureError(file, case_id, where + ".shape",
                         "shape " + shape_str(shape) + " is too large (over 2^40 bytes)");
    nbytes *= static_cast<uint64_t>(d);
  }
  if (hex.size() != nbytes * 2)
    throw FixtureError(file, case_id, where + ".hex",
                       "length " + std::to_string(hex.size()) + " hex digits, expected " +
                           std::to_string(nbytes * 2) + " for " + std::string(dtype_name(dt)) +
                           shape_str(shape));
  Tensor t(dt, shape);
  auto* b = reinterpret_cast<unsigned char*>(t.bytes());
  for (size_t i = 0; i < t.nbytes(); ++i) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      throw FixtureError(file, case_id, where + ".hex",
                         "malformed hex at offset " + std::to_string(hi < 0 ? 2 * i : 2 * i + 1) +
                             " (expected lowercase 0-9a-f)");
    b[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return t;
}

// ---- checks and stages ------------------------------------------------------------------------

namespace {
Json check_to_json(const Check& c) {
  Json j = Json::object();
  j["mode"] = check_mode_name(c.mode);
  // row_set without alternatives: no accept set (the reader accepts its absence).
  if (c.mode == CheckMode::kExactTies || c.mode == CheckMode::kReachable ||
      (c.mode == CheckMode::kRowSet && !c.accept.index.empty())) {
    Json a = Json::object();
    a["index"] = tensor_to_json(
        Tensor::from<int64_t>({static_cast<int64_t>(c.accept.index.size())}, c.accept.index));
    a["offsets"] = tensor_to_json(
        Tensor::from<int64_t>({static_cast<int64_t>(c.accept.offsets.size())}, c.accept.offsets));
    a["values"] = tensor_to_json(c.accept.values);
    j["accept"] = std::move(a);
  }
  if (c.mode == CheckMode::kBounded) {
    j["exact"] = tensor_to_json(*c.exact);
    j["bound"] = tensor_to_json(*c.bound);
  }
  if (!c.signed_zero) j["signed_zero"] = false;
  if (c.degenerate_ok) j["degenerate_ok"] = true;
  if (c.ordered) j["ordered"] = true;
  if (!c.compared.empty())
    j["compared"] = tensor_to_json(
        Tensor::from<int64_t>({static_cast<int64_t>(c.compared.size())}, c.compared));
  return j;
}

Check check_from_json(const Json& j, const Tensor& expected, const std::string& file,
                      const std::string& cid, const std::string& where) {
  check_keys(
      j,
      {"mode", "accept", "exact", "bound", "signed_zero", "degenerate_ok", "ordered", "compared"},
      file, cid, where);
  Check c;
  try {
    c.mode = parse_check_mode(require_string(j, "mode", file, cid, where));
  } catch (const std::invalid_argument& e) {
    throw FixtureError(file, cid, where + ".mode", e.what());
  }
  c.signed_zero = optional_bool(j, "signed_zero", true, file, cid, where);
  c.degenerate_ok = optional_bool(j, "degenerate_ok", false, file, cid, where);
  const bool row_set = c.mode == CheckMode::kRowSet;
  c.ordered = optional_bool(j, "ordered", false, file, cid, where);
  if (c.ordered && !row_set)
    throw FixtureError(file, cid, where + ".ordered", "only row_set checks can be ordered");
  const bool wants_accept =
      c.mode == CheckMode::kExactTies || c.mode == CheckMode::kReachable || row_set;
  if (row_set && expected.rank() < 1)
    throw FixtureError(file, cid, where + ".mode", "row_set checks need a stage of rank >= 1");
  if (row_set && !j.contains("accept")) {
    // No alternatives: rows compared as multisets with the expected rows only.
  } else if (wants_accept) {
    const Json& a = require(j, "accept", file, cid, where);
    std::string w = where + ".accept";
    check_keys(a, {"index", "offsets", "values"}, file, cid, w);
    Tensor idx = tensor_from_json(require(a, "index", file, cid, w), file, cid, w + ".index");
    Tensor off = tensor_from_json(require(a, "offsets", file, cid, w), file, cid, w + ".offsets");
    c.accept.values =
        tensor_from_json(require(a, "values", file, cid, w), file, cid, w + ".values");
    if (idx.dtype() != DType::kI64 || off.dtype() != DType::kI64 || idx.rank() != 1 ||
        off.rank() != 1)
      throw FixtureError(file, cid, w, "index and offsets must be 1-D int64 tensors");
    if (c.accept.values.dtype() != expected.dtype() || c.accept.values.rank() != 1)
      throw FixtureError(file, cid, w + ".values",
                         "expected a 1-D " + std::string(dtype_name(expected.dtype())) +
                             " tensor (the stage's dtype)");
    c.accept.index = idx.to_vector<int64_t>();
    c.accept.offsets = off.to_vector<int64_t>();
    const auto& ix = c.accept.index;
    const auto& of = c.accept.offsets;
    if (of.size() != ix.size() + 1 || of.front() != 0 || of.back() != c.accept.values.numel())
      throw FixtureError(file, cid, w + ".offsets",
                         "expected index.size+1 offsets from 0 to values.size");
    const int64_t row_len = row_set ? expected.dim(-1) : 1;
    const int64_t limit = row_set ? (row_len ? expected.numel() / row_len : 0) : expected.numel();
    for (size_t k = 0; k < ix.size(); ++k) {
      if (row_set) {
        if (ix[k] < 0 || ix[k] >= limit || (k && ix[k] <= ix[k - 1]))
          throw FixtureError(
              file, cid, w + ".index",
              "expected strictly increasing row numbers in [0, " + std::to_string(limit) + ")");
        if (of[k + 1] - of[k] < row_len || (of[k + 1] - of[k]) % row_len != 0)
          throw FixtureError(file, cid, w + ".offsets",
                             "each listed row needs one or more whole alternative rows of " +
                                 std::to_string(row_len) + " values");
        continue;
      }
      if (ix[k] < 0 || ix[k] >= expected.numel() || (k && ix[k] <= ix[k - 1]))
        throw FixtureError(file, cid, w + ".index",
                           "expected strictly increasing element indices in [0, " +
                               std::to_string(expected.numel()) + ")");
      if (of[k + 1] < of[k] + 2)
        throw FixtureError(file, cid, w + ".offsets",
                           "each listed element needs at least two acceptable values");
    }
  } else if (j.contains("accept")) {
    throw FixtureError(file, cid, where + ".accept",
                       "only exact_ties, reachable and row_set checks carry an accept set");
  }
  if ((c.mode == CheckMode::kBounded || c.mode == CheckMode::kSpecial) &&
      !dtype_is_float(expected.dtype()))
    throw FixtureError(file, cid, where + ".mode",
                       std::string(check_mode_name(c.mode)) +
                           " checks apply to float stages only, this stage is " +
                           std::string(dtype_name(expected.dtype())));
  if (c.mode == CheckMode::kBounded) {
    c.exact = tensor_from_json(require(j, "exact", file, cid, where), file, cid, where + ".exact");
    c.bound = tensor_from_json(require(j, "bound", file, cid, where), file, cid, where + ".bound");
    for (const Tensor* t : {&*c.exact, &*c.bound})
      if (t->dtype() != DType::kF64 || t->shape() != expected.shape())
        throw FixtureError(
            file, cid, where + (t == &*c.exact ? ".exact" : ".bound"),
            "expected float64" + shape_str(expected.shape()) + ", got " + t->describe());
  } else if (j.contains("exact") || j.contains("bound")) {
    throw FixtureError(file, cid, where, "only bounded checks carry exact and bound");
  }
  if (j.contains("compared")) {
    const std::string w = where + ".compared";
    Tensor r = tensor_from_json(j.at("compared"), file, cid, w);
    if (r.dtype() != DType::kI64 || r.rank() != 1 || r.numel() == 0 || r.numel() % 2)
      throw FixtureError(
          file, cid, w,
          "expected a non-empty 1-D int64 tensor of [begin, end) pairs, got " + r.describe());
    c.compared = r.to_vector<int64_t>();
    for (size_t k = 0; k < c.compared.size(); k += 2) {
      const int64_t b = c.compared[k], e = c.compared[k + 1];
      if (b < 0 || e <= b || e > expected.numel() || (k && b <= c.compared[k - 1]))
        throw FixtureError(
            file, cid, w,
            "expected sorted, disjoint, non-adjacent, non-empty [begin, end) ranges within [0, " +
                std::to_string(expected.numel()) + "]");
    }
    for (int64_t i : c.accept.index)
      if (!c.is_compared(i))
        throw FixtureError(file, cid, where + ".accept.index",
                           "element " + std::to_string(i) + " is listed but not compared");
  }
  return c;
}
}  // namespace

// ---- fixtures -----------------------------------------------------------------------------------

// Parses JSON, rejecting duplicate keys in any object (nlohmann would keep the last one
// silently, and a reader in another language might keep the first).
// Deeper nesting is rejected (and not built: the parser discards it): copying or comparing a
// very deep document recurses once per level and overflows the stack (found by the fuzz
// target's regression vector tests/fuzz/regressions/fixture/deep_nesting.json).
constexpr int kMaxJsonDepth = 64;

Json parse_json_strict(const std::string& text, const std::string& file) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  bool too_deep = false;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, Json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((ev == E::object_start || ev == E::array_start) && depth >= kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    if (ev == E::object_start) keys.emplace_back();
    if (ev == E::object_end && !keys.empty()) keys.pop_back();
    if (ev == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  Json j;
  try {
    j = Json::parse(text, cb);
  } catch (const nlohmann::json::exception& e) {
    // parse_error for syntax, out_of_range for a number beyond double (found by the fuzzer).
    throw FixtureError(file, "", "", std::string("not valid JSON: ") + e.what());
  }
  if (too_deep)
    throw FixtureError(file, "", "",
                       "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  if (!duplicate.empty()) throw FixtureError(file, "", duplicate, "duplicate key in a JSON object");
  return j;
}

Json fixture_to_json(const Fixture& f) {
  Json j = Json::object();
  j["format"] = kFormatName;
  j["version"] = kFormatVersion;
  j["op"] = f.op;
  j["description"] = f.description;
  j["sources"] = f.sources;
  Json notes = Json::object();
  for (const auto& [flag, n] : f.notes)
    notes[flag] =
        Json{{"bug_type", n.bug_type}, {"description", n.description}, {"effect", n.effect}};
  j["notes"] = std::move(notes);
  Json cases = Json::array();
  for (const Case& c : f.cases) {
    Json jc = Json::object();
    jc["id"] = c.id;
    jc["comment"] = c.comment;
    jc["flags"] = c.flags;
    jc["params"] = c.params;
    Json in = Json::object();
    for (const auto& [name, t] : c.inputs) in[name] = tensor_to_json(t);
    jc["inputs"] = std::move(in);
    Json st = Json::array();
    for (const Stage& s : c.stages) {
      Json js = Json::object();
      js["name"] = s.name;
      js["output"] = s.output;
      js["tensor"] = tensor_to_json(s.expected);
      js["check"] = check_to_json(s.check);
      st.push_back(std::move(js));
    }
    jc["stages"] = std::move(st);
    cases.push_back(std::move(jc));
  }
  j["cases"] = std::move(cases);
  return j;
}

std::string fixture_to_text(const Fixture& f) { return fixture_to_json(f).dump(1) + "\n"; }

Fixture fixture_from_text(const std::string& text, const std::string& file) {
  Json j = parse_json_strict(text, file);
  check_keys(j, {"format", "version", "op", "description", "sources", "notes", "cases"}, file, "",
             "");
  if (require_string(j, "format", file, "", "") != kFormatName)
    throw FixtureError(file, "", "format", std::string("expected \"") + kFormatName + "\"");
  const Json& v = require(j, "version", file, "", "");
  if (!v.is_number_integer() || v.get<int64_t>() != kFormatVersion)
    throw FixtureError(file, "", "version",
                       "unknown format version " + v.dump() + " (this qconf reads version " +
                           std::to_string(kFormatVersion) + ")");
  Fixture f;
  f.op = require_string(j, "op", file, "", "");
  const OpDef* def = OpRegistry::instance().find(f.op);
  if (!def)
    throw FixtureError(file, "", "op", "unknown op \"" + f.op + "\" (see `qconf list ops`)");
  auto listed = [](const std::vector<std::string>& names) {
    std::string l;
    for (const auto& n : names) l += (l.empty() ? "" : ", ") + n;
    return l;
  };
  std::vector<std::string> stage_names;
  for (const auto& sd : def->stages) stage_names.push_back(sd.name);
  if (j.contains("description")) f.description = require_string(j, "description", file, "", "");
  if (j.contains("sources")) f.sources = string_list(j["sources"], file, "", "sources");
  if (j.contains("notes")) {
    const Json& jn = j["notes"];
    if (!jn.is_object()) throw FixtureError(file, "", "notes", "expected an object");
    for (auto it = jn.begin(); it != jn.end(); ++it) {
      std::string w = "notes." + it.key();
      check_keys(*it, {"bug_type", "description", "effect"}, file, "", w);
      Note n;
      n.bug_type = require_string(*it, "bug_type", file, "", w);
      n.description = require_string(*it, "description", file, "", w);
      if (it->contains("effect")) n.effect = require_string(*it, "effect", file, "", w);
      f.notes[it.key()] = n;
    }
  }
  const Json& jcs = require(j, "cases", file, "", "");
  if (!jcs.is_array()) throw FixtureError(file, "", "cases", "expected an array");
  std::set<std::string> ids;
  for (size_t ci = 0; ci < jcs.size(); ++ci) {
    const Json& jc = jcs[ci];
    std::string where = "cases[" + std::to_string(ci) + "]";
    // Name the case in errors as early as possible, even before its fields are checked.
    std::string early_id = jc.is_object() && jc.contains("id") && jc["id"].is_string()
                               ? jc["id"].get<std::string>()
                               : "";
    check_keys(jc, {"id", "comment", "flags", "params", "inputs", "stages"}, file, early_id,
               early_id.empty() ? where : "");
    Case c;
    c.file = file;
    c.op = f.op;
    c.id = require_string(jc, "id", file, "", where);
    const std::string& id = c.id;
    if (id.rfind(f.op + "/", 0) != 0 || id.size() == f.op.size() + 1)
      throw FixtureError(file, id, "id", "expected \"" + f.op + "/<name>\"");
    if (!ids.insert(id).second) throw FixtureError(file, id, "id", "duplicate case id");
    if (jc.contains("comment")) c.comment = require_string(jc, "comment", file, id, "");
    if (jc.contains("flags")) c.flags = string_list(jc["flags"], file, id, "flags");
    for (const auto& fl : c.flags)
      if (!f.notes.count(fl))
        throw FixtureError(file, id, "flags",
                           "flag \"" + fl + "\" is not explained in the file's notes");
    if (jc.contains("params")) {
      if (!jc["params"].is_object()) throw FixtureError(file, id, "params", "expected an object");
      c.params = jc["params"];
    }
    const Json& jin = require(jc, "inputs", file, id, "");
    if (!jin.is_object()) throw FixtureError(file, id, "inputs", "expected an object");
    for (auto it = jin.begin(); it != jin.end(); ++it) {
      if (std::find(def->inputs.begin(), def->inputs.end(), it.key()) == def->inputs.end())
        throw FixtureError(
            file, id, "inputs." + it.key(),
            "not an input of " + f.op + " (expected one of: " + listed(def->inputs) + ")");
      c.inputs[it.key()] = tensor_from_json(*it, file, id, "inputs." + it.key());
    }
    const Json& jst = require(jc, "stages", file, id, "");
    if (!jst.is_array() || jst.empty())
      throw FixtureError(file, id, "stages", "expected a non-empty array");
    std::set<std::string> names;
    for (size_t si = 0; si < jst.size(); ++si) {
      std::string w = "stages[" + std::to_string(si) + "]";
      const Json& js = jst[si];
      check_keys(js, {"name", "output", "tensor", "check"}, file, id, w);
      Stage s;
      s.name = require_string(js, "name", file, id, w);
      if (std::find(stage_names.begin(), stage_names.end(), s.name) == stage_names.end())
        throw FixtureError(file, id, w + ".name",
                           "\"" + s.name + "\" is not a stage of " + f.op +
                               " (expected one of: " + listed(stage_names) + ")");
      if (!names.insert(s.name).second)
        throw FixtureError(file, id, w + ".name", "duplicate stage \"" + s.name + "\"");
      s.output = optional_bool(js, "output", true, file, id, w);
      s.expected = tensor_from_json(require(js, "tensor", file, id, w), file, id, w + ".tensor");
      s.check =
          check_from_json(require(js, "check", file, id, w), s.expected, file, id, w + ".check");
      c.stages.push_back(std::move(s));
    }
    f.cases.push_back(std::move(c));
  }
  return f;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FixtureError(path, "", "", "cannot open file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot write file");
  out << text;
  if (!out) throw std::runtime_error(path + ": write failed");
}

Fixture load_fixture_file(const std::string& path) {
  return fixture_from_text(read_file(path), path);
}

// ---- manifest -----------------------------------------------------------------------------------

std::string sha256_hex(const std::string& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL EVP_Digest(sha256) failed");
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

std::map<std::string, std::string> load_manifest(const std::string& golden_dir) {
  std::string path = (fs::path(golden_dir) / "MANIFEST.json").string();
  Json j = parse_json_strict(read_file(path), path);
  check_keys(j, {"format", "version", "files"}, path, "", "");
  if (require_string(j, "format", path, "", "") != "qconf-manifest")
    throw FixtureError(path, "", "format", "expected \"qconf-manifest\"");
  const Json& v = require(j, "version", path, "", "");
  if (!v.is_number_integer() || v.get<int64_t>() != 1)
    throw FixtureError(path, "", "version", "unknown manifest version " + v.dump());
  const Json& files = require(j, "files", path, "", "");
  if (!files.is_object()) throw FixtureError(path, "", "files", "expected an object");
  std::map<std::string, std::string> m;
  for (auto it = files.begin(); it != files.end(); ++it) {
    bool ok = it->is_string() && it->get<std::string>().size() == 64;
    if (ok)
      for (char ch : it->get<std::string>()) ok = ok && hex_digit(ch) >= 0;
    if (!ok)
      throw FixtureError(path, "", "files." + it.key(),
                         "expected a 64-digit lowercase hex sha256 string");
    m[it.key()] = it->get<std::string>();
  }
  return m;
}

void write_manifest(const std::string& golden_dir, const std::map<std::string, std::string>& m) {
  Json j = Json::object();
  j["format"] = "qconf-manifest";
  j["version"] = 1;
  Json files = Json::object();
  for (const auto& [k, v] : m) files[k] = v;
  j["files"] = std::move(files);
  write_file((fs::path(golden_dir) / "MANIFEST.json").string(), j.dump(1) + "\n");
}

std::vector<Fixture> load_golden_dir(const std::string& golden_dir) {
  auto manifest = load_manifest(golden_dir);
  std::string mpath = (fs::path(golden_dir) / "MANIFEST.json").string();
  // Every fixture on disk must be in the manifest: a file nobody hashes is a file nobody checks.
  for (const auto& e : fs::directory_iterator(golden_dir)) {
    std::string name = e.path().filename().string();
    if (e.path().extension() == ".json" && name != "MANIFEST.json" && !manifest.count(name))
      throw FixtureError(e.path().string(), "", "",
                         "fixture not listed in MANIFEST.json (run `qconf golden generate`)");
  }
  std::vector<Fixture> all;
  std::set<std::string> ids;
  for (const auto& [name, sha] : manifest) {
    std::string path = (fs::path(golden_dir) / name).string();
    std::string text = read_file(path);
    std::string got = sha256_hex(text);
    if (got != sha)
      throw FixtureError(path, "", "",
                         "sha256 " + got + " does not match MANIFEST.json (" + sha +
                             "): the fixture was modified; restore it or regenerate with "
                             "`qconf golden generate`");
    Fixture f = fixture_from_text(text, path);
    if (name != f.op + ".json")
      throw FixtureError(path, "", "op",
                         "fixture of op \"" + f.op + "\" must be named " + f.op + ".json");
    for (const Case& c : f.cases)
      if (!ids.insert(c.id).second)
        throw FixtureError(path, c.id, "id", "duplicate case id across fixture files");
    all.push_back(std::move(f));
  }
  (void)mpath;
  return all;
}

}  // namespace qconf::conf
