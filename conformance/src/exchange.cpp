// Out-of-process checking: `qconf export` writes the inputs a harness in any language needs,
// and `qconf check RESULTS.json` judges the outputs it wrote (e.g. Python + torch_npu on an NPU).
// Formats: docs/golden-format.md, "Export and results files".
#include "qconf/conformance/exchange.h"

#include <filesystem>
#include <set>

namespace qconf::conf {

namespace fs = std::filesystem;

std::string export_cases(const std::vector<const Case*>& cases, const std::string& dir) {
  fs::create_directories(dir);
  Json j = Json::object();
  j["format"] = "qconf-export";
  j["version"] = 1;
  Json list = Json::array();
  for (const Case* c : cases) {
    Json jc = Json::object();
    jc["id"] = c->id;
    jc["op"] = c->op;
    jc["params"] = c->params;
    Json in = Json::object();
    for (const auto& [name, t] : c->inputs) in[name] = tensor_to_json(t);
    jc["inputs"] = std::move(in);
    // What to produce: every recorded stage with its dtype and shape (no expected values).
    Json st = Json::array();
    for (const Stage& s : c->stages)
      st.push_back(Json{{"name", s.name},
                        {"output", s.output},
                        {"dtype", dtype_name(s.expected.dtype())},
                        {"shape", s.expected.shape()}});
    jc["stages"] = std::move(st);
    list.push_back(std::move(jc));
  }
  j["cases"] = std::move(list);
  std::string path = (fs::path(dir) / "cases.json").string();
  write_file(path, j.dump(1) + "\n");
  return path;
}

ResultsFile load_results(const std::string& path) {
  return results_from_text(read_file(path), path);
}

ResultsFile results_from_text(const std::string& text, const std::string& path) {
  const Json j = parse_json_strict(text, path);
  auto need = [&](const Json& o, const char* key, const std::string& id, const std::string& w) {
    if (!o.is_object() || !o.contains(key))
      throw FixtureError(path, id, w.empty() ? key : w + "." + key, "missing required field");
    return o.at(key);
  };
  if (need(j, "format", "", "") != "qconf-results")
    throw FixtureError(path, "", "format", "expected \"qconf-results\"");
  if (need(j, "version", "", "") != 1)
    throw FixtureError(path, "", "version", "unknown results version (this qconf reads 1)");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "format" && it.key() != "version" && it.key() != "implementation" &&
        it.key() != "results")
      throw FixtureError(path, "", it.key(),
                         "unknown field (expected format, version, implementation, results)");
  ResultsFile r;
  r.path = path;
  auto string_field = [&](const Json& o, const char* key, const std::string& id,
                          const std::string& dflt) {
    auto it = o.find(key);
    if (it == o.end()) return dflt;
    if (!it->is_string())
      throw FixtureError(path, id, key, "expected a string, got " + std::string(it->type_name()));
    return it->get<std::string>();
  };
  r.implementation = string_field(j, "implementation", "", "");
  const Json& results = need(j, "results", "", "");
  if (!results.is_array()) throw FixtureError(path, "", "results", "expected an array");
  for (size_t i = 0; i < results.size(); ++i) {
    const Json& e = results[i];
    const std::string w = "results[" + std::to_string(i) + "]";
    Json idj = need(e, "id", "", w);
    if (!idj.is_string()) throw FixtureError(path, "", w + ".id", "expected a string");
    const std::string id = idj.get<std::string>();
    for (auto it = e.begin(); it != e.end(); ++it)
      if (it.key() != "id" && it.key() != "status" && it.key() != "message" &&
          it.key() != "outputs")
        throw FixtureError(path, id, it.key(),
                           "unknown field (expected id, status, message, outputs)");
    ResultEntry re;
    re.status = string_field(e, "status", id, "ok");
    if (re.status != "ok" && re.status != "unimplemented" && re.status != "error")
      throw FixtureError(path, id, "status", "expected ok, unimplemented or error");
    re.message = string_field(e, "message", id, "");
    if (e.contains("outputs")) {
      if (!e["outputs"].is_object()) throw FixtureError(path, id, "outputs", "expected an object");
      for (auto it = e["outputs"].begin(); it != e["outputs"].end(); ++it)
        re.outputs[it.key()] = tensor_from_json(*it, path, id, "outputs." + it.key());
    }
    if (!r.entries.emplace(id, std::move(re)).second)
      throw FixtureError(path, id, "id", "duplicate result for this case");
  }
  return r;
}

Implementation results_implementation(std::shared_ptr<const ResultsFile> results) {
  Implementation impl;
  impl.name = "results:" + results->path;
  impl.repro_command = "qconf check " + shell_quote(results->path);
  impl.kernel_for = [](const OpDef&) { return Kernel{}; };
  impl.call = [results](const Case& c) {
    CallOutcome oc;
    auto it = results->entries.find(c.id);
    if (it == results->entries.end()) {
      oc.verdict = Verdict::kSkipped;
      oc.message = "no result for this case in " + results->path;
      return oc;
    }
    const ResultEntry& e = it->second;
    if (e.status == "unimplemented") {
      oc.verdict = Verdict::kUnimplemented;
      oc.message = e.message.empty() ? "the harness reports: unimplemented" : e.message;
    } else if (e.status == "error") {
      oc.verdict = Verdict::kFail;
      oc.message = "the harness reports an error: " + e.message;
    } else {
      oc.out = e.outputs;
    }
    return oc;
  };
  return impl;
}

std::vector<std::string> unknown_result_ids(const ResultsFile& r,
                                            const std::vector<Fixture>& fixtures) {
  std::set<std::string> ids;
  for (const Fixture& f : fixtures)
    for (const Case& c : f.cases) ids.insert(c.id);
  std::vector<std::string> unknown;
  for (const auto& [id, e] : r.entries)
    if (!ids.count(id)) unknown.push_back(id);
  return unknown;
}

}  // namespace qconf::conf
