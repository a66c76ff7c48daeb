// Shared by the libFuzzer targets (tests/fuzz/fuzz_*.cpp, built by tests/scripts/fuzz_test.sh).
// The fuzz build links only the parsers (fixture.cpp, exchange.cpp, op.cpp, tensor.cpp), not the
// op table, so the fixture parser would reject every input at "unknown op". Instead, each op of
// the committed goldens is registered as a stub carrying the op's name, inputs and stages as the
// golden files list them; the parser then checks inputs and stage names as it does in qconf.
// Both targets also use the JSON-aware mutator below.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "qconf/conformance/op.h"

#ifndef QCONF_FUZZ_GOLDEN_DIR
#error "build with -DQCONF_FUZZ_GOLDEN_DIR=\"<source>/golden\""
#endif

namespace qconf_fuzz {

inline void register_golden_ops() {
  namespace fs = std::filesystem;
  using qconf::conf::Json;
  for (const auto& e : fs::directory_iterator(QCONF_FUZZ_GOLDEN_DIR)) {
    if (e.path().extension() != ".json" || e.path().filename() == "MANIFEST.json") continue;
    std::ifstream in(e.path());
    std::stringstream text;
    text << in.rdbuf();
    const Json j = Json::parse(text.str());
    qconf::conf::OpDef def;
    def.name = j.at("op").get<std::string>();
    std::set<std::string> inputs, stages;
    for (const Json& c : j.at("cases")) {
      for (auto it = c.at("inputs").begin(); it != c.at("inputs").end(); ++it)
        inputs.insert(it.key());
      for (const Json& s : c.at("stages"))
        if (stages.insert(s.at("name").get<std::string>()).second)
          def.stages.push_back({s.at("name").get<std::string>(), true, ""});
    }
    def.inputs.assign(inputs.begin(), inputs.end());
    def.reference = [](const qconf::conf::Params&, const qconf::TensorMap&, qconf::TensorMap&) {};
    def.cases = [] { return std::vector<qconf::conf::CaseSpec>{}; };
    qconf::conf::OpRegistry::instance().add(std::move(def));
  }
}

// A JSON-aware mutation: byte-level mutations rarely turn a valid document into another valid
// document with one field of the wrong type, missing or duplicated, which is what a strict schema
// reader must reject clearly. Parses the input, changes one node, writes it back; inputs that are
// not JSON (and one mutation in four) get libFuzzer's byte mutations.
inline size_t mutate_json(uint8_t* data, size_t size, size_t max_size, unsigned seed,
                          size_t (*byte_mutate)(uint8_t*, size_t, size_t)) {
  using Json = nlohmann::json;
  std::minstd_rand rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  Json j = Json::parse(data, data + size, nullptr, false);
  if (j.is_discarded() || pick(4) == 0) return byte_mutate(data, size, max_size);
  std::vector<Json*> nodes;
  std::vector<Json*> todo{&j};
  while (!todo.empty()) {
    Json* n = todo.back();
    todo.pop_back();
    nodes.push_back(n);
    if (n->is_structured())
      for (auto& c : *n) todo.push_back(&c);
  }
  Json& n = *nodes[pick(nodes.size())];
  static const char* kStrings[] = {
      "",          "float16",    "bfloat16", "float32",      "float64",      "int4",
      "int8",      "int64",      "uint64",   "bool",         "exact",        "bounded",
      "reachable", "exact_ties", "special",  "ok",           "error",        "unimplemented",
      "0g",        "00",         "ff",       "qconf-golden", "qconf-results"};
  const Json kValues[] = {nullptr,
                          true,
                          false,
                          0,
                          -1,
                          1,
                          2,
                          3,
                          7,
                          8,
                          9007199254740993LL,
                          -9223372036854775807LL - 1,
                          18446744073709551615ULL,
                          0.5,
                          -0.0,
                          1e308,
                          Json::array(),
                          Json::object()};
  switch (pick(7)) {
    case 0:  // replace with a value of another type
      n = kValues[pick(std::size(kValues))];
      break;
    case 1:
      n = kStrings[pick(std::size(kStrings))];
      break;
    case 2:  // drop a member or an element
      if (n.is_object() && !n.empty()) {
        auto it = n.begin();
        std::advance(it, static_cast<long>(pick(n.size())));
        n.erase(it);
      } else if (n.is_array() && !n.empty()) {
        n.erase(n.begin() + static_cast<long>(pick(n.size())));
      }
      break;
    case 3:  // duplicate an element, or append one
      if (n.is_array() && !n.empty())
        n.push_back(n[pick(n.size())]);
      else if (n.is_array())
        n.push_back(kValues[pick(std::size(kValues))]);
      break;
    case 4:  // integers: small changes and extremes
      // wraps around (in uint64) rather than overflowing at the int64 extremes
      if (n.is_number_integer())
        n = static_cast<int64_t>(static_cast<uint64_t>(n.get<int64_t>()) + pick(5) - 2);
      break;
    case 5:  // strings: cut or extend (hex strings lose or gain digits)
      if (n.is_string()) {
        std::string s = n.get<std::string>();
        if (!s.empty() && pick(2))
          s.resize(pick(s.size()));
        else
          s += kStrings[pick(std::size(kStrings))];
        n = s;
      }
      break;
    default:  // an unknown member
      if (n.is_object()) n["unexpected"] = 1;
      break;
  }
  const std::string out = j.dump();
  if (out.size() > max_size) return byte_mutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace qconf_fuzz

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  return qconf_fuzz::mutate_json(data, size, max_size, seed, LLVMFuzzerMutate);
}
