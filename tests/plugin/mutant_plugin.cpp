// A plugin (conformance/include/qconf/iut.h) that is qconf's optimized implementation with one
// mutant of tests/mutants/catalogue.cpp planted: the environment variable QCONF_MUTANT=<id>
// selects it (read at every call). The mutant replaces its op; every other op is the optimized
// kernel. So a mutant can be run end to end through the C ABI and the isolated runner:
//   QCONF_MUTANT=int4pack.offset_binary qconf run --impl
//   plugin:build/tests/libqconf_mutant_plugin.so --filter 'npu_convert_*'
// Without QCONF_MUTANT the plugin is the optimized implementation; an unknown id is an error.
#include <cstdlib>
#include <cstring>
#include <string>

#include "mutants/catalogue.h"
#include "qconf/conformance/op.h"
#include "qconf/iut.h"

namespace {

using namespace qconf;
using namespace qconf::conf;

void set_error(char* err, size_t n, const std::string& msg) {
  if (n) {
    std::strncpy(err, msg.c_str(), n - 1);
    err[n - 1] = 0;
  }
}

qconf_status run(const qconf_call* call, char* err, size_t n) {
  const OpDef* def = OpRegistry::instance().find(call->op);
  if (!def || !def->optimized) return QCONF_UNIMPLEMENTED;
  Kernel kernel = def->optimized;
  if (const char* id = std::getenv("QCONF_MUTANT"); id && *id) {
    const mutants::Mutant* m = nullptr;
    for (const mutants::Mutant& x : mutants::catalogue())
      if (x.id == id) m = &x;
    if (!m) {
      set_error(err, n, std::string("QCONF_MUTANT: no mutant \"") + id + "\" in the catalogue");
      return QCONF_ERROR;
    }
    if (m->op == call->op) kernel = m->kernel;
  }
  TensorMap in, out;
  for (int32_t i = 0; i < call->n_inputs; ++i) {
    const qconf_tensor& t = call->inputs[i];
    Tensor x(static_cast<DType>(t.dtype), Shape(t.shape, t.shape + t.rank));
    if (x.nbytes() != t.nbytes) {
      set_error(err, n, std::string("input ") + t.name + ": size mismatch");
      return QCONF_ERROR;
    }
    if (t.nbytes) std::memcpy(x.bytes(), t.data, t.nbytes);
    in[t.name] = std::move(x);
  }
  try {
    kernel(Json::parse(call->params_json), in, out);
  } catch (const Unimplemented& e) {
    set_error(err, n, e.what());
    return QCONF_UNIMPLEMENTED;
  } catch (const std::exception& e) {
    set_error(err, n, e.what());
    return QCONF_ERROR;
  }
  for (int32_t i = 0; i < call->n_outputs; ++i) {
    qconf_tensor& t = call->outputs[i];
    auto it = out.find(t.name);
    if (it == out.end()) continue;
    if (it->second.nbytes() != t.nbytes || static_cast<int32_t>(it->second.dtype()) != t.dtype) {
      set_error(err, n, std::string("stage ") + t.name + ": got " + it->second.describe());
      return QCONF_ERROR;
    }
    if (t.nbytes) std::memcpy(t.data, it->second.bytes(), t.nbytes);
    t.written = 1;
  }
  return QCONF_OK;
}

const qconf_iut kIut{QCONF_IUT_ABI_VERSION, "qconf optimized with a planted mutant (QCONF_MUTANT)",
                     nullptr, run};

}  // namespace

extern "C" const qconf_iut* qconf_iut_get(void) { return &kIut; }
