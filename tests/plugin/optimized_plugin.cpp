// A plugin that exposes qconf's own optimized implementation through the C ABI
// (conformance/include/qconf/iut.h). `qconf run --impl plugin:libqconf_optimized_plugin.so` must
// give the same verdicts as `--impl optimized`: this proves the ABI path end to end.
//
// Built twice: as-is, and with QCONF_BAD_PLUGIN defined as a misbehaving port whose behaviour is
// chosen by the environment variable QCONF_BAD_PLUGIN_MODE (crash, hang, oob, input_write,
// error, unimplemented, claims, fixed_variant, wrong_values), to test the runner's isolation and
// guards, and the reports.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

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

[[maybe_unused]] std::string mode() {
  const char* m = std::getenv("QCONF_BAD_PLUGIN_MODE");
  return m ? m : "";
}

qconf_status run(const qconf_call* call, char* err, size_t n) {
  const OpDef* def = OpRegistry::instance().find(call->op);
  if (!def || !def->optimized) return QCONF_UNIMPLEMENTED;
#ifdef QCONF_BAD_PLUGIN
  const bool victim = std::strstr(call->case_id, "/ascending_0_to_7") != nullptr;
  const std::string m = mode();
  if (victim && m == "crash") {
    volatile int* p = nullptr;
    *p = 1;
  }
  if (victim && m == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
  if (victim && m == "input_write") static_cast<char*>(call->inputs[0].data)[0] = 1;
  if (victim && m == "error") {
    set_error(err, n, "deliberate error");
    return QCONF_ERROR;
  }
  if (m == "unimplemented") return QCONF_UNIMPLEMENTED;
#endif
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
  Json params = Json::parse(call->params_json);
#ifdef QCONF_BAD_PLUGIN
  // A port that follows one reading whatever the params say: the documented formula with
  // half-away rounding.
  if (mode() == "fixed_variant" && params.contains("formula")) {
    params["formula"] = "div_scale";
    params["rounding"] = "round";
  }
#endif
  try {
    def->optimized(params, in, out);
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
#ifdef QCONF_BAD_PLUGIN
    if (std::strstr(call->case_id, "/ascending_0_to_7") && mode() == "oob")
      static_cast<char*>(t.data)[t.nbytes] = 0x11;  // one byte past the end
    // Wrong numbers, for the reports: one bit of an exact stage, and a bounded stage whose
    // elements are off by 1 to 2^19 ulp (some within the bound, some not).
    if (mode() == "wrong_values" && t.nbytes) {
      if (std::strstr(call->case_id, "/ascending_0_to_7")) static_cast<char*>(t.data)[0] ^= 1;
      if (std::strstr(call->case_id, "npu_weight_quant_batchmatmul/random_fp16_int4_per_tensor") &&
          std::string(t.name) == "acc" && t.dtype == static_cast<int32_t>(DType::kF32)) {
        auto* w = static_cast<uint32_t*>(t.data);
        for (size_t k = 0; k < t.nbytes / 4; ++k) w[k] ^= uint32_t{1} << (k % 20);
      }
    }
#endif
  }
  return QCONF_OK;
}

#ifdef QCONF_BAD_PLUGIN
const std::string kClaims =
    mode() == "claims" ? R"({"npu_dynamic_quant": {"formula": "mul_reciprocal"}})" : "{}";
const qconf_iut kIut{QCONF_IUT_ABI_VERSION, "bad test plugin", kClaims.c_str(), run};
#else
const qconf_iut kIut{QCONF_IUT_ABI_VERSION, "qconf optimized (via the C ABI)", nullptr, run};
#endif

}  // namespace

extern "C" const qconf_iut* qconf_iut_get(void) { return &kIut; }
