// Properties of zero_experts_compute (reference, optimized, conformance checks).
#include "qconf/ops/zero_experts.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"

namespace qconf {
namespace {

using conf::Check;
using conf::Stage;

const conf::OpDef& op() {
  const conf::OpDef* d = conf::OpRegistry::instance().find("zero_experts_compute");
  if (!d) throw std::logic_error("zero_experts_compute not registered");
  return *d;
}

const conf::CaseSpec& case_named(const std::string& name) {
  static const std::vector<conf::CaseSpec> all = op().cases();
  for (const conf::CaseSpec& c : all)
    if (c.name == name) return c;
  throw std::logic_error("no case " + name);
}

TensorMap run(const conf::CaseSpec& c, bool optimized = false, const char* type = nullptr) {
  conf::Params p = c.params;
  if (type) p["zero_expert_type"] = type;
  TensorMap out;
  (optimized ? op().optimized : op().reference)(p, c.inputs, out);
  return out;
}

bool passes(const conf::CaseSpec& c, const TensorMap& got) {
  TensorMap ref = run(c);
  const std::map<std::string, Check> checks = op().oracle(c.params, c.inputs, ref);
  for (auto& [name, t] : ref) {
    Stage st;
    st.name = name;
    st.expected = t;
    st.check = checks.count(name) ? checks.at(name) : Check{};
    if (conf::verdict_is_failure(conf::verify_stage(st, got.at(name)).verdict)) return false;
  }
  return true;
}

TEST(ZeroExperts, OptimizedIsBitIdenticalToTheReferenceAtOneTwoAndSevenThreads) {
  for (const conf::CaseSpec& c : op().cases()) {
    const TensorMap want = run(c);
    for (const char* t : {"1", "2", "7"}) {
      setenv("QCONF_THREADS", t, 1);
      const TensorMap got = run(c, true);
      for (auto& [name, w] : want)
        EXPECT_TRUE(got.at(name).bit_equal(w)) << c.name << " " << name << " threads " << t;
    }
    unsetenv("QCONF_THREADS");
  }
}

TEST(ZeroExperts, IdentityAndZeroTypesFailEachOthersCase) {
  const conf::CaseSpec& id = case_named("identity_vs_zero_identity");
  const conf::CaseSpec& zero = case_named("identity_vs_zero_zero");
  EXPECT_TRUE(passes(id, run(id)));
  EXPECT_TRUE(passes(zero, run(zero)));
  EXPECT_FALSE(passes(id, run(id, false, "zero")));
  EXPECT_FALSE(passes(zero, run(zero, false, "identity")));
}

TEST(ZeroExperts, IdentityAddsTheTokenScaledByItsZeroExpertWeight) {
  const conf::CaseSpec& c = case_named("identity_vs_zero_identity");
  const TensorMap out = run(c);
  const Tensor& x = c.inputs.at("hidden_states");
  const Tensor& z = out.at("zero_out");
  // token 0: zero expert weight 0.3125, token 1: 0.625 (exact in bf16 with these x).
  for (int64_t i = 0; i < 16; ++i) {
    const double xv = num::to_double(num::kBF16, x.bits_at(i));
    EXPECT_EQ(num::to_double(num::kBF16, z.bits_at(i)), xv * (i < 8 ? 0.3125 : 0.625)) << i;
  }
  EXPECT_EQ(out.at("topk_ids").to_vector<int32_t>(), (std::vector<int32_t>{2, 0, 4, 0, 0, 5}));
  const Tensor& w = out.at("topk_weights");
  EXPECT_EQ(w.bits_at(1), 0u);
  EXPECT_EQ(w.bits_at(3), 0u);
  EXPECT_NE(w.bits_at(0), 0u);
}

// Another summation order over the slots is legitimate; a dropped slot is not.
TEST(ZeroExperts, ReversedSlotOrderPassesAndADroppedSlotFails) {
  const conf::CaseSpec& c = case_named("two_slots_fp32");
  const Tensor& x = c.inputs.at("hidden_states");
  const Tensor& ids = c.inputs.at("topk_ids");
  const Tensor& w = c.inputs.at("topk_weights");
  const int64_t h = x.dim(1), k = ids.dim(1);
  for (bool drop : {false, true}) {
    TensorMap out = run(c);
    Tensor& z = out.at("zero_out");
    Tensor& fin = out.at("final");
    for (int64_t t = 0; t < x.dim(0); ++t)
      for (int64_t col = 0; col < h; ++col) {
        float acc = 0.0f;
        for (int64_t j = k - 1; j >= 0; --j) {  // reversed order
          if (ids.data<int32_t>()[t * k + j] < 4) continue;
          if (drop && j == k - 1) continue;  // planted bug: the last slot dropped
          acc += x.data<float>()[t * h + col] * w.data<float>()[t * k + j];
        }
        z.data<float>()[t * h + col] = acc;
        fin.data<float>()[t * h + col] = c.inputs.at("routed").data<float>()[t * h + col] + acc;
      }
    EXPECT_EQ(passes(c, out), !drop) << (drop ? "dropped slot" : "reversed order");
  }
}

TEST(ZeroExperts, BadInputsAreRejectedNamingTheArgument) {
  const conf::CaseSpec& c = case_named("no_zero_expert_fp16");
  TensorMap in = c.inputs;
  in["topk_ids"].data<int32_t>()[1] = -1;
  TensorMap out;
  try {
    op().reference(c.params, in, out);
    ADD_FAILURE() << "a negative id was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("topk_ids"), std::string::npos) << e.what();
  }
  in = c.inputs;
  in["topk_weights"] = Tensor(DType::kBF16, {2, 2});  // neither fp32 nor x's dtype (fp16)
  EXPECT_THROW(op().optimized(c.params, in, out), std::invalid_argument);
}

}  // namespace
}  // namespace qconf
