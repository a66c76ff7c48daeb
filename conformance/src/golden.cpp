#include "qconf/conformance/golden.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"

namespace qconf::conf {

namespace fs = std::filesystem;

namespace {
std::string fixture_name(const OpDef& d) { return d.name + ".json"; }

// The first element where two tensors differ, or "" when they are bit-identical.
std::string tensor_drift(const Tensor& want, const Tensor& have) {
  if (want.dtype() != have.dtype() || want.shape() != have.shape())
    return "reference gives " + want.describe() + ", file has " + have.describe();
  for (int64_t i = 0; i < want.numel(); ++i)
    if (want.bits_at(i) != have.bits_at(i))
      return "first difference at " + coords_of(want.shape(), i) + ": reference gives " +
             format_element(want, i) + ", file has " + format_element(have, i);
  return "";
}

void compare_case(const Case& want, const Case& have, const std::string& file,
                  std::vector<std::string>& drift) {
  auto report = [&](const std::string& field, const std::string& what) {
    drift.push_back(file + ": case " + want.id + ": " + field + ": " + what);
  };
  if (want.params != have.params)
    report("params", "reference has " + want.params.dump() + ", file has " + have.params.dump());
  if (want.flags != have.flags) report("flags", "differ");
  if (want.comment != have.comment) report("comment", "differs");
  for (const auto& [name, t] : want.inputs) {
    auto it = have.inputs.find(name);
    if (it == have.inputs.end()) {
      report("inputs." + name, "missing in the file");
      continue;
    }
    if (auto d = tensor_drift(t, it->second); !d.empty()) report("inputs." + name, d);
  }
  for (const auto& [name, t] : have.inputs)
    if (!want.inputs.count(name)) report("inputs." + name, "not produced by the case builder");
  if (want.stages.size() != have.stages.size()) {
    report("stages", std::to_string(want.stages.size()) + " stages from the reference, " +
                         std::to_string(have.stages.size()) + " in the file");
    return;
  }
  for (size_t s = 0; s < want.stages.size(); ++s) {
    const Stage& a = want.stages[s];
    const Stage& b = have.stages[s];
    std::string f = "stages." + a.name;
    if (a.name != b.name) report(f, "file has stage " + b.name);
    if (auto d = tensor_drift(a.expected, b.expected); !d.empty()) report(f, d);
    if (a.check.mode != b.check.mode)
      report(f + ".check.mode", std::string(check_mode_name(a.check.mode)) + " vs " +
                                    std::string(check_mode_name(b.check.mode)));
    if (a.check.accept.index != b.check.accept.index ||
        a.check.accept.offsets != b.check.accept.offsets ||
        !a.check.accept.values.bit_equal(b.check.accept.values))
      report(f + ".check.accept", "acceptable sets differ");
    if (a.check.exact.has_value() != b.check.exact.has_value() ||
        (a.check.exact && !a.check.exact->bit_equal(*b.check.exact)))
      report(f + ".check.exact", "exact values differ");
    if (a.check.bound.has_value() != b.check.bound.has_value() ||
        (a.check.bound && !a.check.bound->bit_equal(*b.check.bound)))
      report(f + ".check.bound", "bounds differ");
  }
}
}  // namespace

std::vector<std::string> golden_generate(const std::string& golden_dir) {
  fs::create_directories(golden_dir);
  std::map<std::string, std::string> manifest;
  std::vector<std::string> written;
  // QCONF_GOLDEN_TIMING=1 prints each op's generation time (the reference is slow by design; this
  // shows which op to look at when `make test`'s golden checks grow).
  const bool timing = std::getenv("QCONF_GOLDEN_TIMING") != nullptr;
  for (const OpDef* d : OpRegistry::instance().all()) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string text = fixture_to_text(generate_fixture(*d));
    if (timing)
      std::fprintf(stderr, "golden generate: %-40s %8.2f s\n", d->name.c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::string path = (fs::path(golden_dir) / fixture_name(*d)).string();
    write_file(path, text);
    manifest[fixture_name(*d)] = sha256_hex(text);
    written.push_back(path);
  }
  write_manifest(golden_dir, manifest);
  return written;
}

std::vector<std::string> golden_verify(const std::string& golden_dir) {
  std::vector<std::string> drift;
  std::map<std::string, std::string> manifest;
  try {
    manifest = load_manifest(golden_dir);
  } catch (const std::exception& e) {
    return {e.what()};
  }
  std::set<std::string> expected_files;
  for (const OpDef* d : OpRegistry::instance().all()) {
    std::string name = fixture_name(*d);
    std::string path = (fs::path(golden_dir) / name).string();
    expected_files.insert(name);
    Fixture want = generate_fixture(*d);
    std::string want_text = fixture_to_text(want);
    if (!fs::exists(path)) {
      drift.push_back(path + ": missing (run `qconf golden generate`)");
      continue;
    }
    std::string have_text = read_file(path);
    if (!manifest.count(name))
      drift.push_back(path + ": not listed in MANIFEST.json");
    else if (manifest[name] != sha256_hex(have_text))
      drift.push_back(path + ": sha256 does not match MANIFEST.json");
    if (have_text == want_text) continue;
    Fixture have;
    try {
      have = fixture_from_text(have_text, path);
    } catch (const std::exception& e) {
      drift.push_back(e.what());
      continue;
    }
    std::map<std::string, const Case*> by_id;
    for (const Case& c : have.cases) by_id[c.id] = &c;
    size_t before = drift.size();
    for (const Case& c : want.cases) {
      auto it = by_id.find(c.id);
      if (it == by_id.end()) {
        drift.push_back(path + ": case " + c.id + ": produced by the reference, missing in file");
        continue;
      }
      compare_case(c, *it->second, path, drift);
      by_id.erase(it);
    }
    for (const auto& [id, c] : by_id)
      drift.push_back(path + ": case " + id + ": in the file, not produced by the reference");
    if (drift.size() == before)
      drift.push_back(path +
                      ": same cases and values, but the text differs from the canonical "
                      "form (notes, description or formatting)");
  }
  for (const auto& [name, sha] : manifest)
    if (!expected_files.count(name))
      drift.push_back((fs::path(golden_dir) / name).string() +
                      ": listed in MANIFEST.json but no registered op produces it");
  return drift;
}

}  // namespace qconf::conf
