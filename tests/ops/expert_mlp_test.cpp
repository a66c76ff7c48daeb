// Properties of the expert MLP ops: group-list formats, unspecified tail rows, the W4A8 MSD
// identity, SwiGLU bounds against perturbed exp implementations, the requant roundings, and the
// optimized kernels against every golden case. Every property test shows a planted bug failing.
#include "qconf/ops/expert_mlp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/opt/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using conf::Verdict;

// One case of an op: inputs, reference stages and the oracle's checks.
struct Case {
  const conf::OpDef* def;
  conf::Params p;
  TensorMap in, ref;
  std::map<std::string, conf::Check> checks;
  std::string name;
  Verdict verdict(const std::string& stage, const Tensor& got) const {
    conf::Stage s;
    s.name = stage;
    s.expected = ref.at(stage);
    auto it = checks.find(stage);
    if (it != checks.end()) s.check = it->second;
    return conf::verify_stage(s, got).verdict;
  }
};
// One case with its reference stages and checks, built once per process (the ops' cases() are
// themselves built once; ctest runs each test in its own process, so a test builds only the
// reference and checks of the cases it uses).
Case make_case(const conf::OpDef* def, const conf::CaseSpec& c) {
  Case k{def, c.params, c.inputs, {}, {}, c.name};
  def->reference(k.p, k.in, k.ref);
  k.checks = def->oracle(k.p, k.in, k.ref);
  return k;
}
const conf::OpDef* op_def(const std::string& op) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(op);
  if (def == nullptr) throw std::logic_error("no op " + op);
  return def;
}
const std::vector<Case>& golden_cases(const std::string& op) {
  static std::map<std::string, std::vector<Case>> cache;
  auto it = cache.find(op);
  if (it != cache.end()) return it->second;
  std::vector<Case>& v = cache[op];
  const conf::OpDef* def = op_def(op);
  for (const conf::CaseSpec& c : def->cases()) v.push_back(make_case(def, c));
  return v;
}
Case golden_case(const std::string& op, const std::string& name) {
  static std::map<std::string, Case> cache;
  const std::string id = op + "/" + name;
  auto it = cache.find(id);
  if (it != cache.end()) return it->second;
  const conf::OpDef* def = op_def(op);
  for (const conf::CaseSpec& c : def->cases())
    if (c.name == name) return cache[id] = make_case(def, c);
  ADD_FAILURE() << "no case " << id;
  return {};
}

Tensor i64(std::vector<int64_t> v, Shape s) { return Tensor::from<int64_t>(std::move(s), v); }

// ---- grouped matmul
// ------------------------------------------------------------------------------

TEST(GroupedMatmul, TheThreeGroupListFormatsOfTheSameCountsGiveTheSameResult) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/formats");
  const Tensor x = gen::int_tensor(DType::kI8, {9, 20}, -128, 127, seed, 0);
  const Tensor w = gen::int_tensor(DType::kI8, {4, 20, 8}, -128, 127, seed, 1);
  const Tensor s = gen::float_tensor(DType::kF32, {4, 8}, gen::FloatDist::normal(-10), seed, 2);
  GroupedMatmulConfig c;
  c.output_dtype = DType::kF32;
  c.group_list_type = GroupListType::kCount;
  const Tensor counts = i64({2, 0, 4, 1}, {4});
  const auto a = ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, counts, c);
  c.group_list_type = GroupListType::kCumsum;
  const auto b = ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, i64({2, 2, 6, 7}, {4}), c);
  c.group_list_type = GroupListType::kKeyValue;
  const auto k =
      ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, i64({0, 2, 2, 4, 3, 1, 0, 0}, {4, 2}), c);
  EXPECT_EQ(a.valid_rows, 7);
  EXPECT_TRUE(a.out.bit_equal(b.out));
  EXPECT_TRUE(a.out.bit_equal(k.out));
  // Planted bugs: a cumsum read as counts sums past M, counts read as a cumsum decrease (both
  // rejected); key_value pairs taken by position (pair i -> expert i) run other experts.
  c.group_list_type = GroupListType::kCount;
  EXPECT_THROW(ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, i64({2, 2, 6, 7}, {4}), c),
               std::invalid_argument);
  c.group_list_type = GroupListType::kCumsum;
  EXPECT_THROW(ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, counts, c),
               std::invalid_argument);
  c.group_list_type = GroupListType::kCount;
  const auto by_position =
      ref::npu_grouped_matmul(x, w, &s, nullptr, nullptr, i64({2, 4, 1, 0}, {4}), c);
  EXPECT_FALSE(by_position.out.bit_equal(a.out));
}

TEST(GroupedMatmul, TailRowsAreUnspecifiedButValidRowsAreStillChecked) {
  Case k = golden_case("npu_grouped_matmul", "group_list_cumsum");
  const Tensor& exp = k.ref.at("out");
  const int64_t n = exp.dim(1), valid = 9;
  ASSERT_EQ(k.checks.at("out").compared, (std::vector<int64_t>{0, valid * n}));
  Tensor garbage = exp;
  for (int64_t i = valid * n; i < garbage.numel(); ++i) garbage.data<uint16_t>()[i] = 0x7fc0;
  EXPECT_EQ(k.verdict("out", garbage), Verdict::kPass);
  // Planted bug: the verdict comparing tail rows (no compared ranges) fails a correct port.
  conf::Stage s;
  s.expected = exp;
  EXPECT_EQ(conf::verify_stage(s, garbage).verdict, Verdict::kFail);
  // A port that writes a valid row wrongly still fails.
  Tensor bad = exp;
  bad.data<uint16_t>()[(valid - 1) * n] ^= 1;
  EXPECT_EQ(k.verdict("out", bad), Verdict::kFail);
}

TEST(GroupedMatmul, OptimizedIsBitExactWithTheReferenceAtEveryThreadCount) {
  for (const char* name :
       {"random_8exp_37x72x48", "bias_fp16_no_tail", "int32_output_mc2", "bf16_scale_w8a8"}) {
    SCOPED_TRACE(name);
    Case k = golden_case("npu_grouped_matmul", name);
    auto opt_in = [&](const char* n) -> const Tensor* {
      auto it = k.in.find(n);
      return it == k.in.end() ? nullptr : &it->second;
    };
    GroupedMatmulConfig c;
    c.group_list_type = parse_group_list_type(conf::param_str(k.p, "group_list_type", "cumsum"));
    c.output_dtype = parse_dtype(conf::param_str(k.p, "output_dtype", "bfloat16"));
    for (int threads : {1, 2}) {
      const auto o = opt::npu_grouped_matmul(k.in.at("x"), k.in.at("weight"), opt_in("scale"),
                                             opt_in("per_token_scale"), opt_in("bias"),
                                             k.in.at("group_list"), c, threads);
      EXPECT_EQ(k.verdict("out", o.out), Verdict::kPass) << threads;
    }
  }
}

// ---- W4A8 MSD decomposition
// -----------------------------------------------------------------------

TEST(W4a8Msd, SixteenHiPlusLoPlusEightColsumEqualsTheDirectInt8ByInt4Product) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/msd");
  Tensor x = gen::int_tensor(DType::kI8, {7, 33}, -128, 127, seed, 0);
  x.data<int8_t>()[0] = -128;  // the extremes: hi = -8, lo' = -8 and hi = 7, lo' = 7
  x.data<int8_t>()[1] = 127;
  const Tensor w = gen::int_tensor(DType::kI8, {33, 5}, -8, 7, seed, 1);
  const W4a8MsdTerms t = ref::w4a8_msd_split_matmul(x, w);
  int64_t checked = 0;
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t j = 0; j < 5; ++j) {
      int64_t direct = 0, unsigned_lo = 0, hi_logical = 0;
      for (int64_t q = 0; q < 33; ++q) {
        const int v = x.data<int8_t>()[r * 33 + q], wv = w.data<int8_t>()[q * 5 + j];
        direct += v * wv;
        unsigned_lo += (v & 0xF) * wv;  // the brief's reading: lo unsigned, no bias term
        // Planted bug: the high nibble by a logical shift (unsigned: 0..15).
        hi_logical += ((static_cast<uint8_t>(v) >> 4) & 0xF) * wv;
      }
      const int64_t i = r * 5 + j;
      const int64_t hi = t.hi.data<int32_t>()[i], lo = t.lo.data<int32_t>()[i];
      EXPECT_EQ(16 * hi + lo + t.bias8.data<int32_t>()[i], direct);
      EXPECT_EQ(16 * hi + unsigned_lo, direct);  // the same identity with an unsigned low nibble
      if (16 * hi_logical + unsigned_lo != direct) ++checked;
    }
  EXPECT_GT(checked, 0) << "the planted logical shift was never caught";
}

// ---- SwiGLU: the bound against exp implementations within the stated accuracy -------------------

// A port's SwiGLU with exp replaced by exp * (1 + k 2^-23) rounded to fp32, and either
// evaluation order.
float port_swiglu(float a, float b, int k_ulps, bool sigmoid_form) {
  const float e0 = std::exp(-a);
  const float e = num::f32_mul(e0, static_cast<float>(1.0 + k_ulps * std::ldexp(1.0, -23)));
  const float d = num::f32_add(1.0f, e);
  if (sigmoid_form) return num::f32_mul(num::f32_mul(a, num::f32_div(1.0f, d)), b);
  return num::f32_mul(num::f32_div(a, d), b);
}

TEST(Swiglu, ExpWithinTheStatedAccuracyStaysInTheBoundAndAWorseOneLeavesIt) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/swiglu_bound");
  const Tensor a = gen::float_tensor(DType::kF32, {4000}, gen::FloatDist::normal(2), seed, 0);
  const Tensor b = gen::float_tensor(DType::kF32, {4000}, gen::FloatDist::normal(1), seed, 1);
  SwigluConfig cfg;
  int64_t outside = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float av = a.data<float>()[i], bv = b.data<float>()[i];
    const SwigluEval ev = swiglu_eval(av, bv, cfg);
    for (int k : {-3, -1, 0, 1, 3})  // within 4 ulp (kExpRelErrorLog2 = -21) incl. std::exp's 1
      for (bool form : {false, true}) {
        const float g = port_swiglu(av, bv, k, form);
        ASSERT_LE(std::fabs(static_cast<double>(g) - ev.exact), ev.bound)
            << av << " " << bv << " k=" << k;
        ASSERT_TRUE(g >= ev.lo && g <= ev.hi);
      }
    // Planted bug: an exp off by 256 ulp (e.g. a bf16-precision exp) leaves the bound.
    const float g = port_swiglu(av, bv, 256, false);
    outside += std::fabs(static_cast<double>(g) - ev.exact) > ev.bound;
  }
  EXPECT_GT(outside, 100);
}

TEST(Swiglu, SimdKernelIsIdenticalAtOneTwoAndSevenThreadsAndInsideTheBound) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/swiglu_simd");
  const int64_t rows = 37, h = 29;  // odd row length: every row has a vector tail
  Tensor x = gen::float_tensor(DType::kF32, {rows, 2 * h}, gen::FloatDist::normal(3), seed, 0);
  x.data<float>()[0] = -120.0f;  // exp argument past Highway's range (clamped: +Inf either way)
  x.data<float>()[1] = 95.0f;
  x.data<float>()[2] = -0.0f;
  const SwigluConfig cfg;
  std::vector<Tensor> got;
  for (const char* t : {"1", "2", "7"}) {
    setenv("QCONF_THREADS", t, 1);
    got.push_back(opt::npu_swiglu(x, cfg));
  }
  unsetenv("QCONF_THREADS");
  EXPECT_TRUE(got[0].bit_equal(got[1]));
  EXPECT_TRUE(got[0].bit_equal(got[2]));
  int64_t outside_swapped = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < h; ++j) {
      const float* row = x.data<float>() + r * 2 * h;
      const SwigluEval ev = swiglu_eval(row[j], row[h + j], cfg);
      const float g = got[0].data<float>()[r * h + j];
      ASSERT_TRUE(g >= ev.lo && g <= ev.hi) << r << " " << j << " " << g << " " << ev.exact;
      // Planted bug: the halves swapped leave the interval.
      const SwigluEval sw = swiglu_eval(row[h + j], row[j], cfg);
      outside_swapped += !(sw.value >= ev.lo && sw.value <= ev.hi);
    }
  EXPECT_GT(outside_swapped, rows * h / 2);
}

TEST(Swiglu, OaiSimdKernelIsIdenticalAtOneTwoAndSevenThreadsInsideTheBoundAndKeepsNaN) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/swiglu_oai_simd");
  const int64_t rows = 37, h = 29;  // odd row length: every row has a vector tail
  Tensor x = gen::float_tensor(DType::kF32, {rows, 2 * h}, gen::FloatDist::normal(3), seed, 0);
  x.data<float>()[0] = -120.0f;  // exp argument past Highway's range (clamped: +Inf either way)
  x.data<float>()[3] = -95.0f;   // up below -limit
  x.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();  // gate NaN: stays NaN
  x.data<float>()[2 * h - 1] = 1e30f;                            // last up of row 0 (tail)
  SwigluConfig cfg;
  cfg.swiglu_mode = 1;
  std::vector<Tensor> got;
  for (const char* t : {"1", "2", "7"}) {
    setenv("QCONF_THREADS", t, 1);
    got.push_back(opt::npu_swiglu(x, cfg));
  }
  unsetenv("QCONF_THREADS");
  EXPECT_TRUE(got[0].bit_equal(got[1]));
  EXPECT_TRUE(got[0].bit_equal(got[2]));
  EXPECT_TRUE(std::isnan(got[0].data<float>()[2]));
  SwigluConfig unclamped = cfg;
  unclamped.clamp_limit = std::numeric_limits<float>::infinity();
  int64_t outside_unclamped = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < h; ++j) {
      if (r == 0 && j == 2) continue;  // the NaN
      const float* row = x.data<float>() + r * 2 * h;
      const auto [a, b] = swiglu_operands(row, h, j, cfg);
      const SwigluEval ev = swiglu_eval(a, b, cfg);
      const float g = got[0].data<float>()[r * h + j];
      ASSERT_TRUE(g >= ev.lo && g <= ev.hi) << r << " " << j << " " << g << " " << ev.exact;
      // Planted bug: no clamp leaves the interval wherever a clamp applies.
      const auto [ua, ub] = swiglu_operands(row, h, j, unclamped);
      const float u = swiglu_eval(ua, ub, unclamped).value;
      outside_unclamped += !(u >= ev.lo && u <= ev.hi);
    }
  EXPECT_GT(outside_unclamped, rows * h / 4);
}

TEST(Swiglu, SecondHalfActivatedFailsTheNpuSwigluBound) {
  Case k = golden_case("npu_swiglu", "plain_fp32");
  EXPECT_EQ(k.verdict("out", opt::npu_swiglu(k.in.at("x"), SwigluConfig{})), Verdict::kPass);
  SwigluConfig swapped;
  swapped.activate_left = false;  // planted bug
  EXPECT_EQ(k.verdict("out", ref::npu_swiglu(k.in.at("x"), swapped).out), Verdict::kFail);
}

TEST(Swiglu, OaiWithoutTheClampFailsTheBound) {
  Case k = golden_case("npu_swiglu", "oai_clamp_fp32");
  SwigluConfig cfg;
  cfg.swiglu_mode = 1;
  EXPECT_EQ(k.verdict("out", opt::npu_swiglu(k.in.at("x"), cfg)), Verdict::kPass);
  SwigluConfig no_clamp = cfg;
  no_clamp.clamp_limit = 1e30f;  // planted bug
  EXPECT_EQ(k.verdict("out", ref::npu_swiglu(k.in.at("x"), no_clamp).out), Verdict::kFail);
}

// ---- the requant roundings
// ------------------------------------------------------------------------

TEST(SwigluQuant, DoubleRoundingGoesThroughFp16AndSingleRoundingDoesNot) {
  // y = S * (1/q) with q = 1: y = 2.5 + 2^-12 -> fp16 2.5 -> int8 2 (double); int16 RINT: 3.
  const float s = 2.5f + std::ldexp(1.0f, -12);
  EXPECT_EQ(swiglu_code(s, 1.0f, SwigluQuantRounding::kDoubleFp16), 2);
  EXPECT_EQ(swiglu_code(s, 1.0f, SwigluQuantRounding::kSingleInt16), 3);
  EXPECT_EQ(swiglu_code(-s, 1.0f, SwigluQuantRounding::kDoubleFp16), -2);
  // amax = 0: scale 0, NaN -> 0.
  const float zeros[3] = {0.0f, -0.0f, 0.0f};
  const RowQuant q = swiglu_row_quant(zeros, 3, SwigluQuantRounding::kDoubleFp16);
  EXPECT_EQ(q.scale, 0.0f);
  EXPECT_EQ(q.codes, (std::vector<int8_t>{0, 0, 0}));
}

TEST(SwigluQuant, SingleRoundingPortFailsTheDoubleRoundingCase) {
  Case k = golden_case("npu_grouped_matmul_swiglu_quant", "double_rounding_search");
  const Tensor& s = k.ref.at("swiglu");
  const Tensor& sc = k.ref.at("scale");
  const int64_t h = s.dim(1);
  Tensor y(DType::kI8, s.shape());
  for (int64_t i = 0; i < s.numel(); ++i)
    y.data<int8_t>()[i] = swiglu_code(s.data<float>()[i], sc.data<float>()[i / h],
                                      SwigluQuantRounding::kSingleInt16);  // planted bug
  EXPECT_EQ(k.verdict("y", y), Verdict::kFail);
  EXPECT_EQ(k.verdict("y", k.ref.at("y")), Verdict::kPass);
}

TEST(SwigluQuant, DoubleRoundingPortFailsTheDequantSwigluQuantSingleRoundingCase) {
  Case k = golden_case("npu_dequant_swiglu_quant", "single_rounding_search");
  const Tensor& s = k.ref.at("swiglu");
  const Tensor& sc = k.ref.at("scale");
  const int64_t h = s.dim(1);
  Tensor y(DType::kI8, s.shape());
  for (int64_t i = 0; i < s.numel(); ++i)
    y.data<int8_t>()[i] = swiglu_code(s.data<float>()[i], sc.data<float>()[i / h],
                                      SwigluQuantRounding::kDoubleFp16);  // planted bug
  EXPECT_EQ(k.verdict("y", y), Verdict::kFail);
}

TEST(SwigluQuant, SwappedScaleOrderChangesTheDequantStage) {
  Case k = golden_case("npu_grouped_matmul_swiglu_quant", "groups_tail_amax_zero");
  const Tensor& c = k.ref.at("dequant");
  // Planted bug: recompute C with w_scale first, from the reference's int32 accumulators.
  GroupedMatmulConfig gc;
  gc.output_dtype = DType::kI32;
  const auto acc = ref::npu_grouped_matmul(k.in.at("x"), k.in.at("weight"), nullptr, nullptr,
                                           nullptr, k.in.at("group_list"), gc)
                       .acc;
  const GroupRows g = group_rows(k.in.at("group_list"), GroupListType::kCumsum,
                                 k.in.at("weight").dim(0), acc.dim(0));
  Tensor swapped = c;
  const int64_t n2 = c.dim(1);
  for (size_t i = 0; i < g.expert.size(); ++i)
    for (int64_t r = g.begin[i]; r < g.end[i]; ++r)
      for (int64_t j = 0; j < n2; ++j)
        swapped.data<float>()[r * n2 + j] =
            num::f32_mul(num::f32_mul(static_cast<float>(acc.data<int32_t>()[r * n2 + j]),
                                      k.in.at("weight_scale").data<float>()[g.expert[i] * n2 + j]),
                         k.in.at("x_scale").data<float>()[r]);
  EXPECT_EQ(k.verdict("dequant", swapped), Verdict::kFail);
  EXPECT_EQ(k.verdict("dequant", c), Verdict::kPass);
}

TEST(SwigluQuant, ActivateLeftSwappedFailsTheCodes) {
  Case k = golden_case("npu_dequant_swiglu_quant", "activate_left_true");
  SwigluConfig cfg;
  cfg.activate_left = false;  // planted bug
  const auto* gi = &k.in.at("group_index");
  const auto st = ref::npu_dequant_swiglu_quant(k.in.at("x"), k.in.at("weight_scale"),
                                                k.in.at("activation_scale"), gi, cfg);
  EXPECT_EQ(k.verdict("y", st.y), Verdict::kFail);
}

TEST(SwigluQuant, OaiWithoutClampFailsTheCodes) {
  Case k = golden_case("npu_dequant_swiglu_quant", "swiglu_oai_clamp");
  SwigluConfig cfg;
  cfg.activate_left = true;
  cfg.swiglu_mode = 1;
  cfg.clamp_limit = 1e30f;  // planted bug
  const auto st = ref::npu_dequant_swiglu_quant(k.in.at("x"), k.in.at("weight_scale"),
                                                k.in.at("activation_scale"), nullptr, cfg);
  EXPECT_EQ(k.verdict("y", st.y), Verdict::kFail);
}

TEST(SwigluQuant, TailRowsComparedWouldFailACorrectPort) {
  Case k = golden_case("npu_grouped_matmul_swiglu_quant", "groups_tail_amax_zero");
  Tensor y = k.ref.at("y");
  const int64_t h = y.dim(1);
  for (int64_t i = 8 * h; i < y.numel(); ++i) y.data<int8_t>()[i] = 99;  // NPU garbage
  EXPECT_EQ(k.verdict("y", y), Verdict::kPass);
  conf::Stage s;
  s.expected = k.ref.at("y");  // planted bug: no compared ranges
  EXPECT_EQ(conf::verify_stage(s, y).verdict, Verdict::kFail);
}

// ---- the fused W8A8 expert MLP (benchmarked) ---------------------------------------------------

TEST(ExpertMlpFused, EqualsGroupedMatmulSwigluQuantThenGroupedMatmulAtEveryThreadCount) {
  const uint64_t seed = rng::seed_from_string("expert_mlp_test/fused");
  const int64_t e = 5, m = 23, h = 40, i = 24;
  const Tensor x = gen::int_tensor(DType::kI8, {m, h}, -128, 127, seed, 0);
  const Tensor xs = gen::float_tensor(DType::kF32, {m},
                                      gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -29), seed, 1);
  const Tensor w13 = gen::int_tensor(DType::kI8, {e, h, 2 * i}, -128, 127, seed, 2);
  const Tensor s13 = gen::float_tensor(DType::kF32, {e, 2 * i},
                                       gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -31), seed, 3);
  const Tensor w2 = gen::int_tensor(DType::kI8, {e, i, h}, -128, 127, seed, 4);
  const Tensor s2 =
      gen::float_tensor(DType::kBF16, {e, h}, gen::FloatDist::grid(64, 255, -14), seed, 5);
  const Tensor gl = i64({4, 4, 11, 19, 23}, {e});
  const SwigluQuantStages a = opt::npu_grouped_matmul_swiglu_quant(x, w13, gl, s13, xs);
  GroupedMatmulConfig c;
  c.group_list_type = GroupListType::kCumsum;
  c.output_dtype = DType::kBF16;
  const Tensor want = opt::npu_grouped_matmul(a.y, w2, &s2, &a.scale, nullptr, gl, c).out;
  const auto p13 = opt::PackedExpertsS8::pack(w13), p2 = opt::PackedExpertsS8::pack(w2);
  for (int threads : {1, 2}) {
    Tensor y(DType::kBF16, {m, h});
    opt::w8a8_expert_mlp(x, xs, p13, s13, p2, s2, gl, y, threads);
    EXPECT_TRUE(y.bit_equal(want)) << threads;
  }
  // Planted bug: the down projection without the per-token scale of the SwiGLU quant.
  const Tensor no_pertoken = opt::npu_grouped_matmul(a.y, w2, &s2, nullptr, nullptr, gl, c).out;
  EXPECT_FALSE(no_pertoken.bit_equal(want));
}

// ---- the optimized kernels pass every golden case
// --------------------------------------------------

TEST(ExpertMlpOptimized, PassesEveryCaseOfEveryExpertMlpOp) {
  for (const char* op : {"npu_grouped_matmul", "npu_grouped_matmul_swiglu_quant",
                         "npu_dequant_swiglu_quant", "npu_swiglu", "w4a8_msd_grouped_matmul"}) {
    for (const Case& k : golden_cases(op)) {
      const conf::OpDef* def = k.def;
      SCOPED_TRACE(std::string(op) + "/" + k.name);
      TensorMap got;
      def->optimized(k.p, k.in, got);
      for (const auto& [stage, t] : got) EXPECT_EQ(k.verdict(stage, t), Verdict::kPass) << stage;
      EXPECT_EQ(got.count(def->stages.back().name), 1u);
    }
  }
}

// ---- w4a8_msd_grouped_matmul -------------------------------------------------------------------

W4a8MsdStages msd_run(const Case& k, const W4a8MsdConfig& cfg) {
  return ref::w4a8_msd_grouped_matmul(k.in.at("x"), k.in.at("weight"), k.in.at("scale"),
                                      k.in.at("scale_bias"), k.in.at("x_scale"),
                                      k.in.at("group_list"), cfg);
}

TEST(W4a8MsdOp, NibblesAndAccumulatorsRecombineToTheDirectProductOnTheValidRows) {
  Case k = golden_case("w4a8_msd_grouped_matmul", "nibble_edges_groups_tail");
  const Tensor& x = k.in.at("x");
  const Tensor& w = k.in.at("weight");
  const int64_t kk = x.dim(1), n2 = w.dim(2);
  const GroupRows g = group_rows(k.in.at("group_list"), GroupListType::kCumsum, w.dim(0), x.dim(0));
  for (int64_t i = 0; i < g.valid_rows * kk; ++i)
    ASSERT_EQ(16 * k.ref.at("x_hi").data<int8_t>()[i] + k.ref.at("x_lo").data<int8_t>()[i] + 8,
              x.data<int8_t>()[i]);
  for (size_t gi = 0; gi < g.expert.size(); ++gi)
    for (int64_t r = g.begin[gi]; r < g.end[gi]; ++r)
      for (int64_t j = 0; j < n2; ++j) {
        int64_t direct = 0, cs = 0;
        for (int64_t q = 0; q < kk; ++q) {
          const int64_t wv = w.data<int8_t>()[(g.expert[gi] * kk + q) * n2 + j];
          direct += x.data<int8_t>()[r * kk + q] * wv;
          cs += wv;
        }
        const int64_t o = r * n2 + j;
        ASSERT_EQ(16 * k.ref.at("acc_hi").data<int32_t>()[o] +
                      k.ref.at("acc_lo").data<int32_t>()[o] + 8 * cs,
                  direct);
      }
  // Planted bugs: a truncating high nibble and a signed low nibble fail the nibble stages.
  Tensor trunc_hi = k.ref.at("x_hi"), signed_lo = k.ref.at("x_lo");
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int v = x.data<int8_t>()[i];
    trunc_hi.data<int8_t>()[i] = static_cast<int8_t>(v / 16);
    signed_lo.data<int8_t>()[i] = static_cast<int8_t>(static_cast<int8_t>((v & 0xF) << 4) >> 4);
  }
  EXPECT_EQ(k.verdict("x_hi", trunc_hi), Verdict::kFail);
  EXPECT_EQ(k.verdict("x_lo", signed_lo), Verdict::kFail);
  EXPECT_EQ(k.verdict("x_hi", k.ref.at("x_hi")), Verdict::kPass);
}

TEST(W4a8MsdOp, TheOtherSumOrderFailsEachSumOrderCase) {
  Case a = golden_case("w4a8_msd_grouped_matmul", "sum_order_hi_lo_first");
  Case b = golden_case("w4a8_msd_grouped_matmul", "sum_order_bias_first");
  W4a8MsdConfig hi_lo, bias;
  bias.bias_first = true;
  EXPECT_EQ(a.verdict("msd_sum", msd_run(a, hi_lo).msd_sum), Verdict::kPass);
  EXPECT_EQ(a.verdict("msd_sum", msd_run(a, bias).msd_sum), Verdict::kFail);
  EXPECT_EQ(b.verdict("msd_sum", msd_run(b, bias).msd_sum), Verdict::kPass);
  EXPECT_EQ(b.verdict("msd_sum", msd_run(b, hi_lo).msd_sum), Verdict::kFail);
}

TEST(W4a8MsdOp, TheOtherRequantRoundingFailsEachRoundingCase) {
  Case a = golden_case("w4a8_msd_grouped_matmul", "requant_double_fp16");
  Case b = golden_case("w4a8_msd_grouped_matmul", "requant_single_int16");
  W4a8MsdConfig dbl, sgl;
  sgl.rounding = SwigluQuantRounding::kSingleInt16;
  EXPECT_EQ(a.verdict("y", msd_run(a, sgl).q.y), Verdict::kFail);
  EXPECT_EQ(b.verdict("y", msd_run(b, dbl).q.y), Verdict::kFail);
  EXPECT_EQ(b.verdict("y", msd_run(b, sgl).q.y), Verdict::kPass);
}

TEST(W4a8MsdOp, MissingClampFailsTheClampCase) {
  Case k = golden_case("w4a8_msd_grouped_matmul", "clamp_limit_1_5");
  W4a8MsdConfig no_clamp;  // planted bug
  const W4a8MsdStages st = msd_run(k, no_clamp);
  EXPECT_EQ(k.verdict("dequant", st.q.dequant), Verdict::kPass);  // the clamp comes after
  EXPECT_EQ(k.verdict("y", st.q.y), Verdict::kFail);
}

TEST(W4a8MsdOp, OptimizedExactFixpipeRoundsOnceLikeTheReference) {
  // x = 127 (x_hi = 7) and w[:, 0] = 7 over K = 209: A_hi = 10241 (14 bits); s = 2047 / 1024 (11
  // bits): A_hi * s = 20471.9990234375 needs 25 bits, fp32 rounds it to 20472, an fp16 midpoint
  // (ulp 16 there) that RNE sends to 20480, while the exact product rounds once to 20464.
  const int64_t kk = 209;
  Tensor x(DType::kI8, {1, kk}), w(DType::kI8, {1, kk, 2});
  for (int64_t q = 0; q < kk; ++q) {
    x.data<int8_t>()[q] = 127;
    w.data<int8_t>()[q * 2] = 7;
  }
  const Tensor s = Tensor::from<float>({1, 2}, {2047.0f / 1024.0f, 1.0f});
  const Tensor sb(DType::kF32, {1, 2});
  const Tensor xs = Tensor::from<float>({1}, {std::ldexp(1.0f, -18)});
  const Tensor gl = i64({1}, {1});
  W4a8MsdConfig exact;
  exact.fixpipe = FixpipePrecision::kExact;
  const auto r32 = ref::w4a8_msd_grouped_matmul(x, w, s, sb, xs, gl, W4a8MsdConfig{});
  const auto rex = ref::w4a8_msd_grouped_matmul(x, w, s, sb, xs, gl, exact);
  const auto oex = opt::w4a8_msd_grouped_matmul(x, w, s, sb, xs, gl, exact);
  const auto o32 = opt::w4a8_msd_grouped_matmul(x, w, s, sb, xs, gl, W4a8MsdConfig{});
  EXPECT_EQ(rex.acc_hi.data<int32_t>()[0], 10241);
  EXPECT_EQ(num::f16_to_f32(r32.a_hi.data<uint16_t>()[0]), 20480.0f);
  EXPECT_EQ(num::f16_to_f32(rex.a_hi.data<uint16_t>()[0]), 20464.0f);
  EXPECT_TRUE(oex.a_hi.bit_equal(rex.a_hi));
  EXPECT_TRUE(o32.a_hi.bit_equal(r32.a_hi));
  EXPECT_TRUE(oex.q.y.bit_equal(rex.q.y));
}

}  // namespace
}  // namespace qconf
