// The mutation catalogue (issue 7 §6): realistic kernel bugs planted in qconf's optimized
// implementation, each of which the golden vectors must catch.
//
// A mutant is an ordinary Kernel (the signature every implementation is called through), so the
// test runs it through the real runner and verdict engine exactly like `--impl optimized`. Each
// mutant re-implements the one buggy step of the op (or calls the optimized kernel with the
// wrong reading a real port hard-codes, or with the wrong index a real port computes) rather
// than flipping output bits after the fact. Adding a mutant for a new op is one entry in
// catalogue.cpp: {id, op, bug, catching case, kernel}.
#pragma once

#include <string>
#include <vector>

#include "qconf/conformance/op.h"

namespace qconf::mutants {

struct Mutant {
  std::string id;       // "<short op>.<bug>", unique
  std::string op;       // the registered op it replaces
  std::string bug;      // the realistic bug, one sentence
  std::string catches;  // the case name (without "<op>/") built to catch it
  conf::Kernel kernel;
};

// Every mutant, in catalogue order.
const std::vector<Mutant>& catalogue();

// A correct implementation that differs from the optimized one only in ways the spec allows
// (summation order, thread count, a re-implementation the mutants are derived from). None of
// these may be flagged.
struct Variation {
  std::string id;
  std::string op;
  std::string what;
  conf::Kernel kernel;
};
const std::vector<Variation>& legitimate_variations();

}  // namespace qconf::mutants
