// The W8A8_MIX, W4A4_DYNAMIC and W4A4_FLATQUANT_DYNAMIC linear scheme pipelines
// (conformance/ops/scheme_w8a8_mix_linear.cpp, scheme_w4a4_dynamic_linear.cpp,
// scheme_w4a4_flatquant_linear.cpp): reference and optimized pass every golden case with every
// stage checked, and the named vectors catch the port bugs they are built for (each property is
// shown to fail on a planted mutant).
#include <gtest/gtest.h>

#include <functional>

#include "qconf/conformance/op.h"
#include "qconf/conformance/runner.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/kronecker_quant.h"
#include "qconf/ops/quant_matmul.h"

namespace {

using qconf::DType;
using qconf::Tensor;
using qconf::TensorMap;
using namespace qconf::conf;  // NOLINT

const OpDef& op(const std::string& name) {
  const OpDef* d = OpRegistry::instance().find(name);
  if (!d) throw std::runtime_error("op " + name + " is not registered");
  return *d;
}

// Runs `impl` on every case of the op's fixture; returns the ids of failing cases.
std::vector<std::string> failing(const Fixture& f, const Implementation& impl,
                                 const std::string& filter = "") {
  std::vector<std::string> bad;
  for (const Case& c : f.cases) {
    if (!filter.empty() && c.id.find(filter) == std::string::npos) continue;
    const CaseResult r = run_case(c, impl, {});
    if (r.verdict != Verdict::kPass) bad.push_back(c.id + " [" + r.failing_stage + "]");
  }
  return bad;
}

// An implementation whose kernel for `name` is `k` (the mutant); other ops: none.
Implementation with_kernel(const std::string& name, Kernel k) {
  Implementation i;
  i.name = "mutant";
  i.kernel_for = [name, k](const OpDef& d) { return d.name == name ? k : Kernel{}; };
  return i;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

class SchemeOps : public ::testing::TestWithParam<std::string> {};

TEST_P(SchemeOps, ReferenceAndOptimizedPassEveryGoldenCaseWithEveryStage) {
  const Fixture f = generate_fixture(op(GetParam()));
  ASSERT_FALSE(f.cases.empty());
  for (const char* impl : {"reference", "optimized"}) {
    EXPECT_EQ(joined(failing(f, builtin_implementation(impl))), "") << impl;
  }
  // Every stage the op declares is in the optimized output of at least one case (the
  // optimized pipelines publish their intermediates: nothing is skipped).
  const Case& c = f.cases.front();
  TensorMap out;
  op(GetParam()).optimized(c.params, c.inputs, out);
  for (const Stage& s : c.stages) EXPECT_TRUE(out.count(s.name)) << GetParam() << " " << s.name;
}

TEST_P(SchemeOps, AWrongFinalOutputFailsEveryCase) {
  // The checks can fail: y off by one ulp (or one code) fails every case.
  const Fixture f = generate_fixture(op(GetParam()));
  const OpDef& d = op(GetParam());
  Kernel k = [&d](const Params& p, const TensorMap& in, TensorMap& out) {
    d.reference(p, in, out);
    Tensor& y = out.at("y");
    for (int64_t i = 0; i < y.numel(); ++i)
      if ((y.data<uint16_t>()[i] & 0x7F80) != 0x7F80 && (y.data<uint16_t>()[i] & 0x7C00) != 0x7C00)
        y.data<uint16_t>()[i] = static_cast<uint16_t>(y.data<uint16_t>()[i] ^ 0x0010);
  };
  EXPECT_EQ(failing(f, with_kernel(GetParam(), k)).size(), f.cases.size());
}

INSTANTIATE_TEST_SUITE_P(All, SchemeOps,
                         ::testing::Values("scheme_w8a8_mix_linear", "scheme_w4a4_dynamic_linear",
                                           "scheme_w4a4_flatquant_linear"));

// ---- W8A8_MIX -----------------------------------------------------------------------------------

TEST(W8a8Mix, KvConsumerAndKvBothGiveTheStaticLayerTheOthersTheDynamicLayer) {
  for (const CaseSpec& c : op("scheme_w8a8_mix_linear").cases()) {
    TensorMap mix, st, dy;
    op("scheme_w8a8_mix_linear").reference(c.params, c.inputs, mix);
    Params sp = {{"params_dtype", c.params.at("params_dtype")}};
    op("scheme_w8a8_static_linear").reference(sp, c.inputs, st);
    op("scheme_w8a8_dynamic_linear").reference(sp, c.inputs, dy);
    const std::string role = c.params.at("kv_role");
    const bool consumer = role == "kv_consumer" || role == "kv_both";
    EXPECT_TRUE(mix.at("y").bit_equal(consumer ? st.at("y") : dy.at("y"))) << c.name;
    // The two paths disagree on the same tokens (the vectors show the switch matters).
    EXPECT_FALSE(st.at("y").bit_equal(dy.at("y"))) << c.name;
    EXPECT_EQ(mix.at("is_kv_consumer").int_at(0), consumer ? 1 : 0) << c.name;
  }
}

TEST(W8a8Mix, SelectingByBatchPhaseInsteadOfKvRoleIsCaught) {
  // Mutant: "decode static, prefill dynamic" by the batch (here: M == 1 is decode), whatever
  // the instance's role. The kv_both and none cases (M > 1) catch it.
  const OpDef& mixd = op("scheme_w8a8_mix_linear");
  Kernel k = [](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    q["kv_role"] = in.at("x").dim(0) == 1 ? "kv_consumer" : "none";
    op("scheme_w8a8_mix_linear").reference(q, in, out);
  };
  const auto bad = failing(generate_fixture(mixd), with_kernel(mixd.name, k));
  EXPECT_FALSE(bad.empty());
  EXPECT_NE(joined(bad).find("kv_both"), std::string::npos) << joined(bad);
}

TEST(W8a8Mix, TreatingOnlyKvConsumerAsDecodeIsCaught) {
  const OpDef& mixd = op("scheme_w8a8_mix_linear");
  Kernel k = [](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    if (q.at("kv_role") == "kv_both") q["kv_role"] = "kv_producer";
    op("scheme_w8a8_mix_linear").reference(q, in, out);
  };
  const auto bad = failing(generate_fixture(mixd), with_kernel(mixd.name, k));
  ASSERT_EQ(bad.size(), 2u) << joined(bad);
  for (const auto& b : bad) EXPECT_NE(b.find("kv_both"), std::string::npos) << b;
}

TEST(W8a8Mix, UnknownKvRoleIsRejectedNamingIt) {
  const CaseSpec c = op("scheme_w8a8_mix_linear").cases().front();
  Params p = c.params;
  p["kv_role"] = "decode";
  TensorMap out;
  try {
    op("scheme_w8a8_mix_linear").reference(p, c.inputs, out);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kv_role"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("decode"), std::string::npos) << e.what();
  }
}

// ---- W4A4_DYNAMIC
// ---------------------------------------------------------------------------------

TEST(W4a4Dynamic, Fp16OutputVectorRoundsTwiceAndOverflowsInBf16Models) {
  const Fixture f = generate_fixture(op("scheme_w4a4_dynamic_linear"));
  const Case* c = nullptr;
  for (const Case& x : f.cases)
    if (x.id.find("fp16_output_bf16_model") != std::string::npos) c = &x;
  ASSERT_NE(c, nullptr);
  TensorMap out;
  op("scheme_w4a4_dynamic_linear").reference(c->params, c->inputs, out);
  const Tensor& y = out.at("y");
  EXPECT_EQ(y.data<uint16_t>()[0], qconf::num::f32_to_bf16(1.0f));  // not 1 + 2^-7
  EXPECT_EQ(y.data<uint16_t>()[1], 0x7F80);                         // +Inf
  // Mutant: the matmul asked for the model dtype directly (no fp16 step).
  Kernel k = [](const Params& p, const TensorMap& in, TensorMap& o) {
    op("scheme_w4a4_dynamic_linear").reference(p, in, o);
    const Tensor& x = in.at("x");
    if (x.dtype() != DType::kBF16) return;
    qconf::DynQuantConfig dq;
    dq.int4 = true;
    const auto q = qconf::ref::npu_dynamic_quant(x, nullptr, nullptr, dq);
    Tensor w32(DType::kI32, in.at("weight").shape());
    for (int64_t i = 0; i < w32.numel(); ++i)
      w32.data<int32_t>()[i] = in.at("weight").data<int8_t>()[i];
    const int64_t nn = w32.dim(0), kk = w32.dim(1);
    Tensor x2(DType::kI32, {kk, nn / 8});
    for (int64_t a = 0; a < kk; ++a)
      for (int64_t j = 0; j < nn / 8; ++j) {
        int32_t v[8];
        for (int t = 0; t < 8; ++t) v[t] = w32.data<int32_t>()[(j * 8 + t) * kk + a];
        x2.data<int32_t>()[a * (nn / 8) + j] = qconf::ref::pack_int4_word(v);
      }
    Tensor ws(DType::kF32, {nn});
    std::memcpy(ws.bytes(), in.at("weight_scale").bytes(), ws.nbytes());
    qconf::QuantMatmulConfig mc;
    mc.output_dtype = DType::kBF16;
    o["y"] = qconf::ref::npu_quant_matmul(q.y, x2, ws, nullptr, &q.scale, nullptr, mc).out;
  };
  const auto bad = failing(f, with_kernel("scheme_w4a4_dynamic_linear", k), "fp16_output_bf16");
  EXPECT_EQ(bad.size(), 1u);
}

TEST(W4a4Dynamic, PackingAlongNInsteadOfKIsCaughtAtWeightPacked) {
  const OpDef& d = op("scheme_w4a4_dynamic_linear");
  Kernel k = [&d](const Params& p, const TensorMap& in, TensorMap& out) {
    d.reference(p, in, out);
    // [N, K] transposed to [K, N] then packed: another word layout (same numel when N % 8 == 0).
    const Tensor& w = in.at("weight");
    Tensor t(DType::kI32, {w.dim(1), w.dim(0)});
    for (int64_t i = 0; i < w.dim(0); ++i)
      for (int64_t j = 0; j < w.dim(1); ++j)
        t.data<int32_t>()[j * w.dim(0) + i] = w.data<int8_t>()[i * w.dim(1) + j];
    out["weight_packed"] = qconf::ref::npu_convert_weight_to_int4pack(t);
  };
  const auto bad = failing(generate_fixture(d), with_kernel(d.name, k));
  EXPECT_EQ(bad.size(), generate_fixture(d).cases.size()) << joined(bad);
}

// ---- W4A4_FLATQUANT_DYNAMIC ---------------------------------------------------------------------

TEST(W4a4FlatQuant, EqualsTheFlatQuantLinearOpOnTheCheckpointTensors) {
  // The scheme's apply stages are w4a4_flatquant_linear's, fed the checkpoint left_trans
  // (the op transposes it itself) and the int8 weight.
  for (const CaseSpec& c : op("scheme_w4a4_flatquant_linear").cases()) {
    TensorMap a, b;
    op("scheme_w4a4_flatquant_linear").reference(c.params, c.inputs, a);
    Params p = {{"formula", c.params.at("formula")}, {"chunk_tokens", 32768}};
    op("w4a4_flatquant_linear").reference(p, c.inputs, b);
    for (const char* s : {"kq_out", "kq_scale", "acc", "mm_out", "y"})
      EXPECT_TRUE(a.at(s).bit_equal(b.at(s))) << c.name << " " << s;
    // weight_packed is the NPU packing of the weight along K.
    const Tensor& w = c.inputs.at("weight");
    Tensor w32(DType::kI32, w.shape());
    for (int64_t i = 0; i < w.numel(); ++i) w32.data<int32_t>()[i] = w.data<int8_t>()[i];
    EXPECT_TRUE(a.at("weight_packed").bit_equal(qconf::ref::npu_convert_weight_to_int4pack(w32)));
  }
}

TEST(W4a4FlatQuant, KeepingLeftTransUntransposedIsCaught) {
  const OpDef& d = op("scheme_w4a4_flatquant_linear");
  Kernel k = [&d](const Params& p, const TensorMap& in, TensorMap& out) {
    TensorMap m = in;
    const Tensor& l = in.at("left_trans");
    Tensor t(l.dtype(), l.shape());
    const int64_t n = l.dim(0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) t.data<uint16_t>()[j * n + i] = l.data<uint16_t>()[i * n + j];
    m["left_trans"] = t;  // the layer would then pass left_trans itself as P1
    d.reference(p, m, out);
  };
  const auto bad = failing(generate_fixture(d), with_kernel(d.name, k), "bf16_k64_n16_bias");
  EXPECT_EQ(bad.size(), 1u);
}

TEST(W4a4FlatQuant, TheFallbackPackerIsCaughtAtWeightPackedAndY) {
  // vllm-ascend's fallback pack_int4_to_int32 stores offset binary (docs/divergences.md row 20);
  // read by the NPU matmul every code becomes w ^ 8.
  const OpDef& d = op("scheme_w4a4_flatquant_linear");
  Kernel k = [&d](const Params& p, const TensorMap& in, TensorMap& out) {
    TensorMap m = in;
    Tensor w = in.at("weight");
    for (int64_t i = 0; i < w.numel(); ++i) {
      const int u = (w.data<int8_t>()[i] + 8) & 0xF;
      w.data<int8_t>()[i] = static_cast<int8_t>(u >= 8 ? u - 16 : u);
    }
    m["weight"] = w;
    d.reference(p, m, out);
  };
  const Fixture f = generate_fixture(d);
  EXPECT_EQ(failing(f, with_kernel(d.name, k)).size(), f.cases.size());
}

TEST(W4a4FlatQuant, FormulaVariantsDifferOnTheSameInputs) {
  const Fixture f = generate_fixture(op("scheme_w4a4_flatquant_linear"));
  const Case *a = nullptr, *b = nullptr;
  for (const Case& c : f.cases) {
    if (c.id.ends_with("formula_kernel")) a = &c;
    if (c.id.ends_with("formula_opplugin_golden")) b = &c;
  }
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(a->stages.back().expected.bit_equal(b->stages.back().expected));
}

}  // namespace
