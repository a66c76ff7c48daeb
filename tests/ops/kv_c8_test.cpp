// C8 KV cache quantize / dequantize (qconf/ops/kv_c8.h) and its scheme pipeline
// (conformance/ops/scheme_c8_kv_cache.cpp): the formula's literal oracle from vllm-ascend's unit
// test, ties to even, saturation, the round trip bound, optimized == reference, and the named
// vectors catching the bugs they are built for.
#include "qconf/ops/kv_c8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>

#include "qconf/conformance/op.h"
#include "qconf/conformance/runner.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"

namespace {

using qconf::DType;
using qconf::Tensor;
using qconf::TensorMap;
namespace num = qconf::num;
namespace ref = qconf::ref;
namespace opt = qconf::opt;
using namespace qconf::conf;  // NOLINT

Tensor bf16s(const qconf::Shape& s, const std::vector<float>& v) {
  Tensor t(DType::kBF16, s);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<uint16_t>()[i] = num::f32_to_bf16(v[static_cast<size_t>(i) % v.size()]);
  return t;
}
float f(const Tensor& t, int64_t i) {
  return static_cast<float>(
      num::to_double(t.dtype() == DType::kBF16 ? num::kBF16 : num::kF16, t.data<uint16_t>()[i]));
}

TEST(C8Quantize, VllmAscendUnitTestLiteral_Scale2Offset0X4GivesCode2) {
  // tests/ut/quantization/methods/test_kv_c8.py::test_quantize_kv_to_int8_formula.
  const Tensor scale = ref::c8_load_param(bf16s({1}, {2.0f}), DType::kBF16);
  const Tensor inv = ref::c8_inv_scale(scale);
  const auto s = ref::c8_quantize(bf16s({1, 1, 32}, {4.0f}), inv, bf16s({1}, {0.0f}));
  EXPECT_EQ(s.q.data<int8_t>()[0], 2);
}

TEST(C8Quantize, TiesRoundHalfToEvenAndOutOfRangeSaturates) {
  const std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 127.5f, -128.5f, 300.0f};
  const std::vector<int> want = {0, 2, 2, 0, -2, 127, -128, 127};
  const auto s = ref::c8_quantize(bf16s({1, 1, 32}, x), bf16s({1}, {1.0f}), bf16s({1}, {0.0f}));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(s.q.data<int8_t>()[i], want[i]) << x[i];
}

TEST(C8Quantize, InverseScaleIsRoundedToTheModelDtype) {
  // 1 / bf16(1/3) = 2.994.. in fp32, 3 in bf16: the quantizer multiplies by 3.
  const Tensor scale = ref::c8_load_param(
      Tensor::from<uint32_t>(DType::kF32, {1}, {num::f32_bits(1.0f / 3.0f)}), DType::kBF16);
  EXPECT_EQ(f(ref::c8_inv_scale(scale), 0), 3.0f);
}

TEST(C8Quantize, OptimizedIsBitExactToReferenceOnRandomInputsAndThreadCounts) {
  for (DType dt : {DType::kBF16, DType::kF16}) {
    const Tensor x =
        qconf::gen::float_tensor(dt, {37, 3, 64}, qconf::gen::FloatDist::normal(2), 11, 0);
    const Tensor s =
        qconf::gen::float_tensor(dt, {192}, qconf::gen::FloatDist::grid(1, 255, -8), 11, 1);
    const Tensor o =
        qconf::gen::float_tensor(dt, {192}, qconf::gen::FloatDist::grid(-9, 9, -1), 11, 2);
    const Tensor inv = ref::c8_inv_scale(s);
    const auto r = ref::c8_quantize(x, inv, o);
    for (int th : {1, 2, 3}) {
      const auto p = opt::c8_quantize(x, inv, o, true, th);
      EXPECT_TRUE(p.q.bit_equal(r.q));
      EXPECT_TRUE(p.scaled.bit_equal(r.scaled));
      EXPECT_TRUE(p.shifted.bit_equal(r.shifted));
      for (auto m : {qconf::C8Antiquant::kSubOffset, qconf::C8Antiquant::kScaleOnly,
                     qconf::C8Antiquant::kAddOffset})
        EXPECT_TRUE(opt::c8_dequantize(r.q, s, o, dt, m, th)
                        .bit_equal(ref::c8_dequantize(r.q, s, o, dt, m)));
    }
  }
}

TEST(C8RoundTrip, DequantIsWithinHalfAScaleWhereNotSaturatedAndOffsetIsAnInteger) {
  // |(q - off) * s - x| <= s/2 + the model-dtype roundings (x*inv, +off, the dequant ops);
  // bounded here by s/2 + 4 ulp(|x| + s) -- and the bound is not vacuous: a dequant that
  // ignores the offset breaks it.
  const Tensor x =
      qconf::gen::float_tensor(DType::kBF16, {20, 1, 32}, qconf::gen::FloatDist::normal(0), 5, 0);
  const Tensor s = bf16s({32}, {0.03125f, 0.0625f, 0.015625f, 0.046875f});
  const Tensor o = bf16s({32}, {0.0f, 3.0f, -5.0f, 1.0f});
  const auto q = ref::c8_quantize(x, ref::c8_inv_scale(s), o);
  auto worst = [&](qconf::C8Antiquant m) {
    const Tensor d = ref::c8_dequantize(q.q, s, o, DType::kBF16, m);
    double w = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int8_t c = q.q.data<int8_t>()[i];
      if (c == 127 || c == -128) continue;
      const double sc = f(s, i % 32), xv = f(x, i);
      const double lim = sc / 2 + 4 * std::ldexp(1.0, std::ilogb(std::fabs(xv) + sc) - 7);
      w = std::max(w, std::fabs(f(d, i) - xv) / lim);
    }
    return w;
  };
  EXPECT_LE(worst(qconf::C8Antiquant::kSubOffset), 1.0);
  EXPECT_GT(worst(qconf::C8Antiquant::kScaleOnly), 1.0);
  EXPECT_GT(worst(qconf::C8Antiquant::kAddOffset), 1.0);
}

TEST(C8Shard, RankTakesItsKvHeadsAndBadShapesAreRejected) {
  Tensor q(DType::kBF16, {128});
  for (int i = 0; i < 128; ++i) q.data<uint16_t>()[i] = num::f32_to_bf16(static_cast<float>(i));
  const Tensor r1 = ref::c8_shard(q, 2, 32, 1, 2);
  EXPECT_EQ(f(r1, 0), 64.0f);  // head 2 starts at channel 64
  EXPECT_TRUE(ref::c8_shard(q, 4, 32, 0, 1).bit_equal(q));
  EXPECT_THROW(ref::c8_shard(bf16s({100}, {1.0f}), 2, 32, 0, 2), std::invalid_argument);
  EXPECT_THROW(ref::c8_shard(q, 2, 32, 2, 2), std::invalid_argument);
}

TEST(C8Quantize, NanAndBadDtypesAreRejectedNamingTheProblem) {
  Tensor x = bf16s({1, 1, 32}, {1.0f});
  x.data<uint16_t>()[5] = 0x7FC0;
  try {
    ref::c8_quantize(x, bf16s({1}, {1.0f}), bf16s({1}, {0.0f}));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("element 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ref::c8_quantize(bf16s({1, 1, 32}, {1.0f}), bf16s({3}, {1.0f}), bf16s({1}, {0.0f})),
               std::invalid_argument);
}

// ---- the pipeline op and its vectors -----------------------------------------------------------

const OpDef& c8op() { return *OpRegistry::instance().find("scheme_c8_kv_cache"); }

std::vector<std::string> failing(const Fixture& fx, Kernel k, const std::string& filter = "") {
  Implementation impl;
  impl.name = "mutant";
  impl.kernel_for = [k](const OpDef&) { return k; };
  std::vector<std::string> bad;
  for (const Case& c : fx.cases) {
    if (!filter.empty() && c.id.find(filter) == std::string::npos) continue;
    if (run_case(c, impl, {}).verdict != Verdict::kPass) bad.push_back(c.id);
  }
  return bad;
}

TEST(C8Pipeline, ReferenceAndOptimizedPassEveryGoldenCaseWithEveryStage) {
  const Fixture fx = generate_fixture(c8op());
  EXPECT_TRUE(failing(fx, c8op().reference).empty());
  EXPECT_TRUE(failing(fx, c8op().optimized).empty());
  TensorMap out;
  c8op().optimized(fx.cases[0].params, fx.cases[0].inputs, out);
  for (const Stage& s : fx.cases[0].stages) EXPECT_TRUE(out.count(s.name)) << s.name;
}

// Mutant: replace every code of K by the rounding of `alt(shifted-in-fp32)`.
Kernel code_mutant(std::function<int8_t(double)> rounding, bool fp32_intermediate) {
  return [rounding, fp32_intermediate](const Params& p, const TensorMap& in, TensorMap& out) {
    c8op().reference(p, in, out);
    const Tensor& x = in.at("key");
    const Tensor& inv = out.at("k_inv_scale");
    const Tensor& off = out.at("k_offset_param");
    Tensor& q = out.at("k_q");
    const int64_t c = x.dim(1) * x.dim(2);
    for (int64_t i = 0; i < x.numel(); ++i) {
      double v = fp32_intermediate ? static_cast<double>(f(x, i) * f(inv, i % c) + f(off, i % c))
                                   : static_cast<double>(f(out.at("k_shifted"), i));
      q.data<int8_t>()[i] = rounding(v);
    }
  };
}

TEST(C8Pipeline, HalfAwayFromZeroRoundingIsCaughtByTheTieVectors) {
  const Fixture fx = generate_fixture(c8op());
  auto away = [](double v) {
    return static_cast<int8_t>(std::clamp(std::round(v), -128.0, 127.0));
  };
  const auto bad = failing(fx, code_mutant(away, false), "ties_saturation");
  EXPECT_EQ(bad.size(), 2u);
}

TEST(C8Pipeline, WrappingInsteadOfSaturatingIsCaught) {
  const Fixture fx = generate_fixture(c8op());
  auto wrap = [](double v) {
    return static_cast<int8_t>(static_cast<int64_t>(std::nearbyint(v)) & 0xFF);
  };
  EXPECT_EQ(failing(fx, code_mutant(wrap, false), "ties_saturation").size(), 2u);
}

TEST(C8Pipeline, KeepingTheProductInFp32IsCaughtByTheSearchedVector) {
  const Fixture fx = generate_fixture(c8op());
  auto rne = [](double v) {
    return static_cast<int8_t>(std::clamp(std::nearbyint(v), -128.0, 127.0));
  };
  EXPECT_EQ(failing(fx, code_mutant(rne, true), "pdt_intermediate_rounding").size(), 1u);
}

TEST(C8Pipeline, AntiquantReadingsDisagreeOnTheSameInputs) {
  const Fixture fx = generate_fixture(c8op());
  std::map<std::string, Tensor> deq;
  for (const Case& c : fx.cases)
    if (c.id.find("random_bf16_") != std::string::npos)
      for (const Stage& s : c.stages)
        if (s.name == "k_dequant") deq[c.id] = s.expected;
  ASSERT_EQ(deq.size(), 3u);
  for (auto a = deq.begin(); a != deq.end(); ++a)
    for (auto b = std::next(a); b != deq.end(); ++b)
      EXPECT_FALSE(a->second.bit_equal(b->second)) << a->first << " vs " << b->first;
}

TEST(C8Pipeline, UsingTheFirstHeadsOnEveryRankIsCaughtByTheTpVector) {
  const Fixture fx = generate_fixture(c8op());
  Kernel k = [](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    q["tp_rank"] = 0;
    c8op().reference(q, in, out);
  };
  EXPECT_EQ(failing(fx, k, "tp_shard").size(), 1u);
}

}  // namespace
