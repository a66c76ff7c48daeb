// Properties of the int4 MoE scheme pipelines (scheme_w4a8_dynamic_moe, scheme_w4a16_moe): the
// optimized pipelines pass every golden case; ModelSlim and LLM-Compressor checkpoints of the same
// int4 weights give the same layer where the math says they must; the W4A16 repack chain round
// trips; planted load-time and apply bugs fail their stage. Every property shows a bug failing.
#include "qconf/ops/moe_w4.h"

#include <gtest/gtest.h>

#include <cstring>

#include "../../conformance/ops/moe_w4_ckpt.h"
#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using conf::Verdict;
namespace ck = conf::moe_w4_ckpt;

struct Case {
  const conf::OpDef* def;
  conf::Params p;
  TensorMap in, ref;
  std::map<std::string, conf::Check> checks;
  Verdict verdict(const std::string& stage, const Tensor& got) const {
    conf::Stage s;
    s.name = stage;
    s.expected = ref.at(stage);
    s.output = false;
    auto it = checks.find(stage);
    if (it != checks.end()) s.check = it->second;
    return conf::verify_stage(s, got).verdict;
  }
};

Case golden_case(const std::string& op, const std::string& name) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(op);
  if (!def) throw std::logic_error("no op " + op);
  for (const conf::CaseSpec& c : def->cases())
    if (c.name == name) {
      Case k{def, c.params, c.inputs, {}, {}};
      def->reference(k.p, k.in, k.ref);
      k.checks = def->oracle(k.p, k.in, k.ref);
      return k;
    }
  throw std::logic_error("no case " + op + "/" + name);
}

std::vector<std::string> case_names(const std::string& op) {
  std::vector<std::string> v;
  for (const conf::CaseSpec& c : conf::OpRegistry::instance().find(op)->cases())
    v.push_back(c.name);
  return v;
}

TEST(MoeW4Optimized, PassesEveryStageOfEveryCaseOfBothSchemeOps) {
  for (const char* op : {"scheme_w4a8_dynamic_moe", "scheme_w4a16_moe"})
    for (const std::string& name : case_names(op)) {
      SCOPED_TRACE(std::string(op) + "/" + name);
      const Case k = golden_case(op, name);
      TensorMap got;
      k.def->optimized(k.p, k.in, got);
      EXPECT_EQ(got.size(), k.ref.size());
      for (const auto& [stage, t] : got) EXPECT_EQ(k.verdict(stage, t), Verdict::kPass) << stage;
      // Not vacuous: a one-ulp change of one y element fails (y is exact there or its bound is
      // below an ulp of some element).
      Tensor y = got.at("y");
      bool caught = false;
      for (int64_t i = 0; i < y.numel() && !caught; ++i) {
        Tensor z = y;
        z.data<uint16_t>()[i] ^= 1;
        caught = k.verdict("y", z) == Verdict::kFail;
      }
      EXPECT_TRUE(caught);
    }
}

// One W4A8 layer whose scales are bf16 values (so the LLM-Compressor bf16 scale and the
// ModelSlim fp32 scale carry the same bits, and both are FP19 values) and whose scale_bias sums
// are exact: then the two formats must give bit-identical packed weights, scales, scale_bias and
// layer output.
struct SameLayer {
  TensorMap ms, llmc;
};
SameLayer same_layer(uint64_t seed) {
  const int64_t e = 2, h = 32, i = 16;
  Tensor v13 = gen::int_tensor(DType::kI8, {e, 2 * i, h}, -8, 7, seed, 1);
  Tensor v2 = gen::int_tensor(DType::kI8, {e, h, i}, -8, 7, seed, 2);
  Tensor s13 =
      gen::float_tensor(DType::kF32, {e, 2 * i, 1}, gen::FloatDist::grid(128, 255, -14), seed, 3);
  Tensor s2 =
      gen::float_tensor(DType::kF32, {e, h, 1}, gen::FloatDist::grid(128, 255, -14), seed, 4);
  SameLayer l;
  l.ms["w13_weight"] = ck::modelslim_bytes(v13);
  l.ms["w13_weight_scale"] = s13;
  l.ms["w13_scale_bias"] = ck::modelslim_scale_bias(v13, s13, 1);
  l.ms["w2_weight"] = ck::modelslim_bytes(v2);
  l.ms["w2_weight_scale"] = s2;
  l.ms["w2_scale_bias"] = ck::modelslim_scale_bias(v2, s2, 16);
  l.llmc["w13_weight"] = v13;
  l.llmc["w13_weight_scale"] = ck::to_bf16(s13);
  l.llmc["w2_weight"] = v2;
  l.llmc["w2_weight_scale"] = ck::to_bf16(s2);
  const Tensor x = gen::float_tensor(DType::kBF16, {7, h}, gen::FloatDist::normal(0), seed, 5);
  for (TensorMap* m : {&l.ms, &l.llmc}) {
    (*m)["x"] = x;
    (*m)["group_list"] = Tensor::from<int64_t>({e}, {3, 4});
  }
  return l;
}

TensorMap run_op(const std::string& format, const TensorMap& in, bool opt) {
  const conf::OpDef* def = conf::OpRegistry::instance().find("scheme_w4a8_dynamic_moe");
  conf::Params p = conf::Params::object();
  p["format"] = format;
  p["params_dtype"] = "bfloat16";
  TensorMap out;
  (opt ? def->optimized : def->reference)(p, in, out);
  return out;
}

TEST(MoeW4a8, ModelSlimAndLlmCompressorOfTheSameInt4WeightsGiveTheSameLayer) {
  const SameLayer l = same_layer(rng::seed_from_string("moe_w4_test/same_layer"));
  for (bool opt : {false, true}) {
    const TensorMap a = run_op("modelslim", l.ms, opt), b = run_op("llmcompressor", l.llmc, opt);
    for (const char* s : {"w13_weight_packed", "w2_weight_packed", "w13_scale_int64",
                          "w2_scale_int64", "w13_scale_bias", "w2_scale_bias", "h_q", "y"})
      EXPECT_TRUE(a.at(s).bit_equal(b.at(s))) << s << (opt ? " (optimized)" : "");
  }
  // Planted bug: ModelSlim bytes with the nibbles swapped (odd output in the low nibble) change
  // the packed weight and the layer output.
  SameLayer bad = l;
  Tensor& w = bad.ms["w13_weight"];
  for (int64_t j = 0; j < w.numel(); ++j) {
    const uint8_t u = static_cast<uint8_t>(w.data<int8_t>()[j]);
    w.data<int8_t>()[j] = static_cast<int8_t>(static_cast<uint8_t>((u << 4) | (u >> 4)));
  }
  const TensorMap a = run_op("modelslim", bad.ms, false),
                  b = run_op("llmcompressor", l.llmc, false);
  EXPECT_FALSE(a.at("w13_weight_packed").bit_equal(b.at("w13_weight_packed")));
  EXPECT_FALSE(a.at("y").bit_equal(b.at("y")));
}

TEST(MoeW4a8, Fp32ScaleInsteadOfTheFp19QuantVectorFailsTheFixpipeStage) {
  const Case k = golden_case("scheme_w4a8_dynamic_moe", "modelslim_tp1");
  // The checkpoint scales have low mantissa bits: the FP19 reading drops them.
  const Tensor& s = k.in.at("w13_weight_scale");
  Tensor full(DType::kF32, k.ref.at("w13_scale_fp19").shape());
  std::memcpy(full.bytes(), s.bytes(), s.nbytes());
  EXPECT_EQ(k.verdict("w13_scale_fp19", full), Verdict::kFail);
  EXPECT_EQ(k.verdict("w13_scale_fp19", k.ref.at("w13_scale_fp19")), Verdict::kPass);
}

TEST(MoeW4a8, TheFirstColumnsInsteadOfTheRanksColumnsFailTheScaleBias) {
  for (const char* name : {"modelslim_tp2_rank1", "modelslim_tp4_rank3"}) {
    SCOPED_TRACE(name);
    const Case k = golden_case("scheme_w4a8_dynamic_moe", name);
    const int64_t tp = k.p.at("tp").get<int64_t>(), cols = 16 / tp;
    const Tensor& sb = k.in.at("w2_scale_bias");
    Tensor first(DType::kF32, k.ref.at("w2_scale_bias_cols").shape());
    for (int64_t r = 0; r < sb.dim(0) * sb.dim(1); ++r)
      std::memcpy(first.data<float>() + r * cols, sb.data<float>() + r * 16, cols * 4);
    EXPECT_EQ(k.verdict("w2_scale_bias_cols", first), Verdict::kFail);
    EXPECT_EQ(
        k.verdict("w2_scale_bias", ref::w4a8_scale_bias_rank_sum(first, tp, W4a8BiasProj::kDown)),
        Verdict::kFail);
  }
}

// Divergence row 89: a port computing gmm2 as the direct int8 x int4 product (no fp16 fixpipe,
// scale_bias unused) fails y; the MSD identity 16 A_hi + A_lo + 8 colsum = h @ w2 holds.
TEST(MoeW4a8, ADirectInt8ByInt4PortFailsTheMsdGmm2Output) {
  const Case k = golden_case("scheme_w4a8_dynamic_moe", "modelslim_tp1");
  const Tensor& h = k.ref.at("h_q");
  const Tensor& w2 = k.ref.at("w2_values");
  const Tensor& s2 = k.ref.at("w2_scale_fp19");
  const Tensor& ts = k.ref.at("h_scale");
  const Tensor& gl = k.in.at("group_list");
  const int64_t m = h.dim(0), i = h.dim(1), hh = w2.dim(2);
  Tensor y(DType::kBF16, {m, hh});
  int64_t r = 0;
  for (int64_t g = 0; g < gl.numel(); ++g)
    for (int64_t end = r + gl.data<int64_t>()[g]; r < end; ++r)
      for (int64_t n = 0; n < hh; ++n) {
        int64_t acc = 0, cs = 0;
        for (int64_t q = 0; q < i; ++q) {
          const int wv = w2.data<int8_t>()[(g * i + q) * hh + n];
          acc += h.data<int8_t>()[r * i + q] * wv;
          cs += wv;
        }
        ASSERT_EQ(16 * int64_t{k.ref.at("gmm2_acc_hi").data<int32_t>()[r * hh + n]} +
                      k.ref.at("gmm2_acc_lo").data<int32_t>()[r * hh + n] + 8 * cs,
                  acc);
        const float v =
            (static_cast<float>(acc) * s2.data<float>()[g * hh + n]) * ts.data<float>()[r];
        y.data<uint16_t>()[r * hh + n] = num::f32_to_bf16(v);
      }
  EXPECT_EQ(k.verdict("y", y), Verdict::kFail);
}

TEST(MoeW4a8, ScaleBiasWithoutTheFactorEightFailsTheLlmCompressorLoad) {
  const Case k = golden_case("scheme_w4a8_dynamic_moe", "llmcompressor_same_weights");
  Tensor sb = k.ref.at("w13_scale_bias");
  for (int64_t j = 0; j < sb.numel(); ++j) sb.data<float>()[j] /= 8.0f;
  EXPECT_EQ(k.verdict("w13_scale_bias", sb), Verdict::kFail);
}

TEST(MoeW4a8, ExpertTwoComputedWithExpertOnesWeightsFailsTheOutput) {
  // Planted bug: an empty expert advancing the weights (rows of expert 2 use expert 1).
  const Case k = golden_case("scheme_w4a8_dynamic_moe", "modelslim_tp1");
  TensorMap in = k.in;
  Tensor gl = in.at("group_list");
  gl.data<int64_t>()[1] = gl.data<int64_t>()[2];  // (2, 0, 4) -> (2, 4, 0)
  gl.data<int64_t>()[2] = 0;
  in["group_list"] = gl;
  TensorMap got;
  k.def->reference(k.p, in, got);
  EXPECT_EQ(k.verdict("y", got.at("y")), Verdict::kFail);
}

TEST(MoeW4a16, RepackChainRoundTripsTheInt4Values) {
  const uint64_t seed = rng::seed_from_string("moe_w4_test/w4a16_round_trip");
  const int64_t e = 2, n = 16, k = 64;
  Tensor v = gen::int_tensor(DType::kI8, {e, n, k}, -8, 7, seed, 1);
  v.data<int8_t>()[0] = -8;
  v.data<int8_t>()[1] = 7;
  const Tensor packed = ck::ct_packed(v);
  for (bool opt : {false, true}) {
    SCOPED_TRACE(opt ? "optimized" : "reference");
    W4a16MoeCheckpoint c;
    const Tensor s13 = Tensor(DType::kF32, {e, n, k / 8}), shape13 = ck::weight_shape(e, n, k);
    // A layer with 2I = n, H = k; w2 [E, H, I]: built from the same generator.
    const Tensor v2 = gen::int_tensor(DType::kI8, {e, k, n / 2}, -8, 7, seed, 2);
    const Tensor p2 = ck::ct_packed(v2), s2 = Tensor(DType::kF32, {e, k, 1}),
                 shape2 = ck::weight_shape(e, k, n / 2);
    c.w13_weight_packed = &packed;
    c.w13_weight_scale = &s13;
    c.w13_weight_shape = &shape13;
    c.w2_weight_packed = &p2;
    c.w2_weight_scale = &s2;
    c.w2_weight_shape = &shape2;
    // I = 8 is a multiple of 8 but not of 32: use g = 8 for this load-only check.
    const W4a16MoeLoaded w =
        opt ? opt::w4a16_moe_load(c, DType::kBF16, 8) : ref::w4a16_moe_load(c, DType::kBF16, 8);
    EXPECT_TRUE(w.w13_unpacked.bit_equal(v));
    const Tensor back = moe_w4_int4_values(w.w13_weight);  // [E, K, N]
    bool ok = true;
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t q = 0; q < k; ++q)
          ok = ok &&
               back.data<int8_t>()[(x * k + q) * n + r] == v.data<int8_t>()[(x * n + r) * k + q];
    EXPECT_TRUE(ok);
  }
  // Planted bug: reading the offset-binary nibble as two's complement (no -8) is not the values.
  const Tensor fields =
      ref::ct_unpack_fields(Tensor::from<int32_t>({1, 1}, {packed.data<int32_t>()[0]}), 4, 1);
  bool differs = false;
  for (int t = 0; t < 8; ++t) {
    const int nib = fields.data<uint8_t>()[t];
    differs = differs || (nib >= 8 ? nib - 16 : nib) != v.data<int8_t>()[t];
  }
  EXPECT_TRUE(differs);
}

TEST(MoeW4a16, WrongGroupAtTheBoundaryFailsGmm1) {
  const Case k = golden_case("scheme_w4a16_moe", "bf16_g32");
  // Planted bug: group 0's scale used for every k (per-channel reading).
  TensorMap in = k.in;
  Tensor s = in.at("w13_weight_scale");
  for (int64_t j = 1; j < s.numel(); j += 2) s.data<float>()[j] = s.data<float>()[j - 1];
  in["w13_weight_scale"] = s;
  TensorMap got;
  k.def->reference(k.p, in, got);
  EXPECT_EQ(k.verdict("gmm1", got.at("gmm1")), Verdict::kFail);
  EXPECT_EQ(k.verdict("gmm1", k.ref.at("gmm1")), Verdict::kPass);
}

TEST(MoeW4a16, SwigluOfTheSecondHalfFailsTheSwigluRange) {
  const Case k = golden_case("scheme_w4a16_moe", "fp16_g32");
  SwigluConfig right;
  right.activate_left = false;
  const Tensor bad = opt::npu_swiglu(k.ref.at("gmm1"), right);
  EXPECT_EQ(k.verdict("swiglu", bad), Verdict::kFail);
  EXPECT_EQ(k.verdict("swiglu", opt::npu_swiglu(k.ref.at("gmm1"), SwigluConfig{})), Verdict::kPass);
}

TEST(MoeW4, BadCheckpointTensorsGetClearErrors) {
  const Case k = golden_case("scheme_w4a8_dynamic_moe", "modelslim_tp1");
  TensorMap in = k.in;
  in.erase("w2_scale_bias");
  TensorMap out;
  try {
    k.def->reference(k.p, in, out);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("w2_scale_bias is missing"), std::string::npos)
        << e.what();
  }
  in = k.in;
  Tensor gl = in.at("group_list");
  gl.data<int64_t>()[0] += 1;
  in["group_list"] = gl;
  try {
    k.def->reference(k.p, in, out);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("group_list sums to 7"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qconf
