// Properties of npu_weight_quant_batchmatmul: the exact antiquant, the bounds of the fp32
// accumulation (legitimate summation orders pass, real bugs fail), the reachable int8 codes,
// the optimized kernel (within the bound, bit-identical across thread counts and kernels).
#include "qconf/ops/weight_quant_bmm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using conf::CheckMode;
using conf::Verdict;

constexpr const char* kOp = "npu_weight_quant_batchmatmul";

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}
uint32_t b_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float value(DType t, uint64_t bits) { return static_cast<float>(num::to_double(fmt(t), bits)); }

// Bit equality of float tensors, any NaN matching any NaN.
bool same_floats(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const bool na = num::is_nan(fmt(a.dtype()), a.bits_at(i));
    const bool nb = num::is_nan(fmt(b.dtype()), b.bits_at(i));
    if (na != nb || (!na && a.bits_at(i) != b.bits_at(i))) return false;
  }
  return true;
}

WqbmmArgs args_of(const TensorMap& in) {
  auto opt = [&](const char* n) -> const Tensor* {
    auto it = in.find(n);
    return it == in.end() ? nullptr : &it->second;
  };
  WqbmmArgs a;
  a.x = &in.at("x");
  a.weight = &in.at("weight");
  a.antiquant_scale = &in.at("antiquant_scale");
  a.antiquant_offset = opt("antiquant_offset");
  a.quant_scale = opt("quant_scale");
  a.quant_offset = opt("quant_offset");
  a.bias = opt("bias");
  return a;
}

Tensor pack_int4(const Tensor& codes) {
  Tensor out(DType::kI32, {codes.dim(0), codes.dim(1) / 8});
  for (int64_t j = 0; j < out.numel(); ++j) {
    uint32_t w = 0;
    for (int t = 0; t < 8; ++t)
      w |= static_cast<uint32_t>(codes.data<int8_t>()[8 * j + t] & 0xF) << (4 * t);
    out.data<int32_t>()[j] = static_cast<int32_t>(w);
  }
  return out;
}

struct Spec {
  DType xdt = DType::kF16;
  int64_t m = 2, k = 96, n = 16;
  bool int4 = false;
  int64_t group = 0;  // 0: per channel
  bool offset = true, bias = true, quant = false;
};

TensorMap make_inputs(const Spec& s, const std::string& name) {
  const uint64_t seed = rng::seed_from_string(name);
  TensorMap in;
  in["x"] = gen::float_tensor(s.xdt, {s.m, s.k}, gen::FloatDist::normal(0), seed, 0);
  Tensor codes =
      gen::int_tensor(DType::kI8, {s.k, s.n}, s.int4 ? -8 : -128, s.int4 ? 7 : 127, seed, 1);
  in["weight"] = s.int4 ? pack_int4(codes) : codes;
  Shape ps = s.group ? Shape{(s.k + s.group - 1) / s.group, s.n} : Shape{s.n};
  in["antiquant_scale"] =
      gen::float_tensor(s.xdt, ps, gen::FloatDist::grid(1, 255, s.int4 ? -8 : -12), seed, 2);
  if (s.offset)
    in["antiquant_offset"] =
        s.xdt == DType::kF16
            ? gen::float_tensor(s.xdt, ps, gen::FloatDist::grid(-2047, 2047, -7), seed, 3)
            : gen::float_tensor(s.xdt, ps, gen::FloatDist::grid(-255, 255, -3), seed, 3);
  if (s.bias)
    in["bias"] = gen::float_tensor(s.xdt == DType::kF16 ? DType::kF16 : DType::kF32, {s.n},
                                   gen::FloatDist::normal(0), seed, 4);
  if (s.quant) {
    in["quant_scale"] =
        gen::float_tensor(DType::kF32, {s.n}, gen::FloatDist::grid(1000, 4000, -11), seed, 5);
    in["quant_offset"] =
        gen::float_tensor(DType::kF32, {s.n}, gen::FloatDist::grid(-40, 40, -2), seed, 6);
  }
  return in;
}

conf::Params params_of(int64_t group, const std::string& requant = "fixpipe",
                       const std::string& antiquant = "x_dtype") {
  return conf::Params{{"group_size", group}, {"requant", requant}, {"antiquant", antiquant}};
}

// A case as the conformance layer sees it: the reference outputs and the oracle's checks.
struct Case {
  conf::Params p;
  TensorMap in, ref;
  std::map<std::string, conf::Check> checks;
  Verdict verdict(const std::string& stage, const Tensor& got) const {
    conf::Stage s;
    s.name = stage;
    s.expected = ref.at(stage);
    auto it = checks.find(stage);
    if (it != checks.end()) s.check = it->second;
    return conf::verify_stage(s, got).verdict;
  }
};
Case make_case(TensorMap in, conf::Params p) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(kOp);
  Case c;
  c.p = std::move(p);
  c.in = std::move(in);
  def->reference(c.p, c.in, c.ref);
  c.checks = def->oracle(c.p, c.in, c.ref);
  return c;
}

// ---- accumulations in the orders a correct port may use -----------------------------------------

using Order = std::function<float(const std::vector<float>& terms)>;

float forward(const std::vector<float>& t) {
  float s = 0;
  for (float v : t) s = s + v;
  return s;
}
float backward(const std::vector<float>& t) {
  float s = 0;
  for (size_t i = t.size(); i-- > 0;) s = s + t[i];
  return s;
}
float pairwise(const float* t, size_t n) {
  if (n == 1) return t[0];
  return pairwise(t, n / 2) + pairwise(t + n / 2, n - n / 2);
}
float blocked(const std::vector<float>& t, size_t b) {
  float total = 0;
  for (size_t i = 0; i < t.size(); i += b) {
    float part = 0;
    for (size_t j = i; j < std::min(t.size(), i + b); ++j) part = part + t[j];
    total = total + part;
  }
  return total;
}
float in_double(const std::vector<float>& t) {
  double s = 0;
  for (float v : t) s += v;
  return static_cast<float>(s);
}

// The fp32 accumulator of a port: `order` over the terms x[m, k] * W[k, n] (exact in fp32) and
// the bias (first term when bias_first, else last).
Tensor port_acc(const TensorMap& in, const Tensor& w, const Order& order, bool bias_first,
                const std::function<float(float, float)>& add = nullptr) {
  const Tensor& x = in.at("x");
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(1);
  const auto bit = in.find("bias");
  Tensor acc(DType::kF32, {m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      std::vector<float> terms;
      float bias = 0;
      if (bit != in.end()) bias = value(bit->second.dtype(), bit->second.bits_at(j));
      if (bit != in.end() && bias_first) terms.push_back(bias);
      for (int64_t kk = 0; kk < k; ++kk)
        terms.push_back(value(x.dtype(), x.bits_at(i * k + kk)) *
                        value(w.dtype(), w.bits_at(kk * n + j)));
      if (bit != in.end() && !bias_first) terms.push_back(bias);
      float s;
      if (add) {
        s = 0;
        for (float t : terms) s = add(s, t);
      } else {
        s = order(terms);
      }
      acc.data<float>()[i * n + j] = s;
    }
  return acc;
}

Tensor output_of(const TensorMap& in, const Tensor& acc, const conf::Params& p) {
  const Tensor& x = in.at("x");
  const int64_t m = acc.dim(0), n = acc.dim(1);
  auto qs = in.find("quant_scale");
  if (qs == in.end()) {
    Tensor y(x.dtype(), {m, n});
    for (int64_t i = 0; i < m * n; ++i)
      y.data<uint16_t>()[i] =
          static_cast<uint16_t>(num::convert(num::kF32, acc.bits_at(i), fmt(x.dtype())));
    return y;
  }
  auto qo = in.find("quant_offset");
  const WqbmmRequant r = parse_wqbmm_requant(p.at("requant").get<std::string>());
  Tensor y(DType::kI8, {m, n});
  for (int64_t i = 0; i < m * n; ++i) {
    const int64_t j = i % n;
    const uint32_t s = qs->second.data<uint32_t>()[qs->second.numel() == 1 ? 0 : j];
    const uint32_t o =
        qo == in.end() ? 0 : qo->second.data<uint32_t>()[qo->second.numel() == 1 ? 0 : j];
    y.data<int8_t>()[i] = ref::wqbmm_requant(static_cast<uint32_t>(acc.bits_at(i)), s,
                                             qo == in.end() ? nullptr : &o, r);
  }
  return y;
}

std::vector<std::pair<std::string, Order>> legit_orders() {
  return {{"forward", forward},
          {"backward", backward},
          {"pairwise", [](const std::vector<float>& t) { return pairwise(t.data(), t.size()); }},
          {"blocked16", [](const std::vector<float>& t) { return blocked(t, 16); }},
          {"blocked64", [](const std::vector<float>& t) { return blocked(t, 64); }},
          {"double", in_double}};
}

std::vector<std::pair<std::string, Spec>> variation_specs() {
  std::vector<std::pair<std::string, Spec>> v;
  v.push_back({"fp16_int8_perchannel", Spec{DType::kF16, 3, 256, 16, false, 0, true, true, false}});
  v.push_back({"bf16_int8_pergroup", Spec{DType::kBF16, 2, 320, 16, false, 64, true, true, false}});
  v.push_back({"fp16_int4_pergroup", Spec{DType::kF16, 2, 256, 16, true, 32, true, true, false}});
  v.push_back({"bf16_int4_perchannel", Spec{DType::kBF16, 2, 200, 8, true, 0, false, true, false}});
  v.push_back({"fp16_int8_quant", Spec{DType::kF16, 4, 256, 16, false, 64, true, true, true}});
  v.push_back({"bf16_int4_quant", Spec{DType::kBF16, 4, 192, 16, true, 32, true, false, true}});
  return v;
}

TEST(WeightQuantBmm, EveryLegitimateSummationOrderIsWithinTheBoundAndItsCodesAreReachable) {
  int reach_used = 0;
  for (const auto& [name, spec] : variation_specs())
    for (const char* requant : {"fixpipe", "fp32"}) {
      if (!spec.quant && std::string(requant) == "fp32") continue;
      const Case c =
          make_case(make_inputs(spec, "wqbmm_var/" + name), params_of(spec.group, requant));
      const Tensor& w = c.ref.at("antiquant_weight");
      for (const auto& [oname, order] : legit_orders())
        for (bool bias_first : {false, true}) {
          const Tensor acc = port_acc(c.in, w, order, bias_first);
          EXPECT_EQ(c.verdict("acc", acc), Verdict::kPass) << name << " " << oname;
          EXPECT_EQ(c.verdict("y", output_of(c.in, acc, c.p)), Verdict::kPass)
              << name << " " << oname << " " << requant;
        }
      // (A fused multiply-add order is one of these: the products are exact in fp32.)
      auto yc = c.checks.find("y");
      if (spec.quant && yc != c.checks.end() && yc->second.mode == CheckMode::kReachable)
        ++reach_used;
    }
  EXPECT_GT(reach_used, 0);  // some int8 case lists reachable codes
}

TEST(WeightQuantBmm, ForwardSummationErrorUsesAMeasurablePartOfTheBound) {
  // The bound is not vacuous: on random data the forward order's error reaches a visible
  // fraction of it (and never exceeds it).
  const Case c = make_case(
      make_inputs({DType::kF16, 4, 1024, 16, false, 0, true, false, false}, "wqbmm_tight"),
      params_of(0));
  const Tensor acc = port_acc(c.in, c.ref.at("antiquant_weight"), forward, false);
  conf::Stage s;
  s.name = "acc";
  s.expected = c.ref.at("acc");
  s.check = c.checks.at("acc");
  const conf::StageResult r = conf::verify_stage(s, acc);
  EXPECT_EQ(r.verdict, Verdict::kPass);
  EXPECT_GT(r.stats.max_err_over_bound, 1e-3);
  EXPECT_LE(r.stats.max_err_over_bound, 1.0);
}

TEST(WeightQuantBmm, RealBugsFailTheBoundOrTheReachableSets) {
  struct Bug {
    std::string name;
    std::function<Tensor(const Case&)> acc;
  };
  auto w_with = [](const Case& c, const std::function<uint16_t(int8_t, uint16_t, const uint16_t*,
                                                               DType, int64_t, int64_t)>& aq) {
    const WqbmmArgs a = args_of(c.in);
    const WqbmmShape s = check_wqbmm_inputs(a, WqbmmConfig{c.p.at("group_size").get<int64_t>()});
    const Tensor wv = ref::wqbmm_weight_values(*a.weight);
    Tensor w(s.xdt, {s.k, s.n});
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t n = 0; n < s.n; ++n) {
        const int64_t i = s.param_index(k, n);
        const uint16_t* off =
            a.antiquant_offset ? a.antiquant_offset->data<uint16_t>() + i : nullptr;
        w.data<uint16_t>()[k * s.n + n] =
            aq(wv.data<int8_t>()[k * s.n + n], a.antiquant_scale->data<uint16_t>()[i], off, s.xdt,
               k, n);
      }
    return w;
  };
  const std::vector<Bug> bugs = {
      {"offset subtracted",
       [&](const Case& c) {
         return port_acc(
             c.in,
             w_with(c,
                    [](int8_t w, uint16_t s, const uint16_t* off, DType dt, int64_t, int64_t) {
                      const uint16_t neg = off ? static_cast<uint16_t>(*off ^ 0x8000) : 0;
                      return ref::wqbmm_antiquant(dt, w, s, off ? &neg : nullptr,
                                                  WqbmmAntiquant::kXDtype);
                    }),
             forward, false);
       }},
      {"scale of the next group",
       [&](const Case& c) {
         const WqbmmArgs a = args_of(c.in);
         const int64_t g = c.p.at("group_size").get<int64_t>();
         const int64_t groups = a.antiquant_scale->dim(0), n = a.antiquant_scale->dim(1);
         return port_acc(
             c.in,
             w_with(c,
                    [&](int8_t w, uint16_t, const uint16_t*, DType dt, int64_t k, int64_t j) {
                      const int64_t i = ((k / g + 1) % groups) * n + j;
                      return ref::wqbmm_antiquant(dt, w, a.antiquant_scale->data<uint16_t>()[i],
                                                  a.antiquant_offset->data<uint16_t>() + i,
                                                  WqbmmAntiquant::kXDtype);
                    }),
             forward, false);
       }},
      {"scale then offset: w * s + off",
       [&](const Case& c) {
         return port_acc(
             c.in,
             w_with(c,
                    [](int8_t w, uint16_t s, const uint16_t* off, DType dt, int64_t, int64_t) {
                      const float v =
                          static_cast<float>(w) * value(dt, s) + (off ? value(dt, *off) : 0.0f);
                      return static_cast<uint16_t>(num::convert(num::kF32, b_of(v), fmt(dt)));
                    }),
             forward, false);
       }},
      {"fp16 accumulation",
       [](const Case& c) {
         return port_acc(c.in, c.ref.at("antiquant_weight"), forward, false,
                         [](float s, float t) { return num::f16_to_f32(num::f32_to_f16(s + t)); });
       }},
      {"bias dropped",
       [](const Case& c) {
         TensorMap in = c.in;
         in.erase("bias");
         return port_acc(in, c.ref.at("antiquant_weight"), forward, false);
       }},
  };
  for (const Bug& bug : bugs)
    for (const char* requant : {"none", "fixpipe", "fp32"}) {
      const bool quant = std::string(requant) != "none";
      const Case c = make_case(
          make_inputs({DType::kF16, 3, 256, 16, false, 64, true, true, quant}, "wqbmm_bugs"),
          params_of(64, quant ? requant : "fixpipe"));
      const Tensor acc = bug.acc(c);
      EXPECT_EQ(c.verdict("acc", acc), Verdict::kFail) << bug.name;
      EXPECT_EQ(c.verdict("y", output_of(c.in, acc, c.p)), Verdict::kFail)
          << bug.name << " " << requant;
    }
}

TEST(WeightQuantBmm, Fp16AccumulationFailsTheDetectorVectorWhereTheBoundIsZero) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(kOp);
  for (const conf::CaseSpec& spec : def->cases()) {
    if (spec.name != "fp16_accumulation_detector") continue;
    const Case c = make_case(spec.inputs, spec.params);
    for (int64_t i = 0; i < c.checks.at("acc").bound->numel(); ++i)
      EXPECT_EQ(c.checks.at("acc").bound->data<double>()[i], 0.0);
    const Tensor fp16acc =
        port_acc(c.in, c.ref.at("antiquant_weight"), forward, false,
                 [](float s, float t) { return num::f16_to_f32(num::f32_to_f16(s + t)); });
    EXPECT_EQ(c.verdict("y", output_of(c.in, fp16acc, c.p)), Verdict::kFail);
    for (const auto& [name, order] : legit_orders())
      EXPECT_EQ(
          c.verdict("y", output_of(c.in, port_acc(c.in, c.ref.at("antiquant_weight"), order, false),
                                   c.p)),
          Verdict::kPass)
          << name;
    return;
  }
  FAIL() << "no fp16_accumulation_detector case";
}

TEST(WeightQuantBmm, OffsetIsAddedBeforeTheScale) {
  // W = fl16(fl16(w + off) * s), independently of the reference code path: host fp32 arithmetic
  // with the fp16 rounding of each step (exact through fp32 for these operands).
  const TensorMap in =
      make_inputs({DType::kF16, 1, 64, 8, false, 0, true, false, false}, "wqbmm_plus");
  const WqbmmStages st = ref::npu_weight_quant_batchmatmul(args_of(in), WqbmmConfig{});
  int differs_from_minus = 0;
  for (int64_t k = 0; k < 64; ++k)
    for (int64_t n = 0; n < 8; ++n) {
      const float w = static_cast<float>(in.at("weight").data<int8_t>()[k * 8 + n]);
      const float s = num::f16_to_f32(in.at("antiquant_scale").data<uint16_t>()[n]);
      const float off = num::f16_to_f32(in.at("antiquant_offset").data<uint16_t>()[n]);
      const float plus =
          num::f16_to_f32(num::f32_to_f16(num::f16_to_f32(num::f32_to_f16(w + off)) * s));
      const float minus =
          num::f16_to_f32(num::f32_to_f16(num::f16_to_f32(num::f32_to_f16(w - off)) * s));
      EXPECT_EQ(st.antiquant_weight.data<uint16_t>()[k * 8 + n], num::f32_to_f16(plus));
      differs_from_minus += plus != minus;
    }
  EXPECT_GT(differs_from_minus, 400);
}

TEST(WeightQuantBmm, RowKUsesTheScaleOfGroupKDividedByG) {
  Spec s{DType::kBF16, 1, 100, 8, false, 32, false, false, false};
  const TensorMap in = make_inputs(s, "wqbmm_groups");
  const WqbmmStages st = ref::npu_weight_quant_batchmatmul(args_of(in), WqbmmConfig{32});
  ASSERT_EQ(in.at("antiquant_scale").dim(0), 4);  // ceil(100 / 32)
  for (int64_t k = 0; k < 100; ++k)
    for (int64_t n = 0; n < 8; ++n) {
      const float w = static_cast<float>(in.at("weight").data<int8_t>()[k * 8 + n]);
      const float sc =
          num::bf16_to_f32(in.at("antiquant_scale").data<uint16_t>()[(k / 32) * 8 + n]);
      EXPECT_EQ(st.antiquant_weight.data<uint16_t>()[k * 8 + n], num::f32_to_bf16(w * sc))
          << k << "," << n;
    }
}

TEST(WeightQuantBmm, AntiquantReadingsDifferOnlyForFp16Activations) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const TensorMap in = make_inputs({dt, 1, 128, 16, false, 32, true, false, false}, "wqbmm_aq");
    WqbmmConfig a{32, WqbmmRequant::kFixpipe, WqbmmAntiquant::kXDtype};
    WqbmmConfig b{32, WqbmmRequant::kFixpipe, WqbmmAntiquant::kFp32};
    const bool same = ref::npu_weight_quant_batchmatmul(args_of(in), a)
                          .antiquant_weight.bit_equal(
                              ref::npu_weight_quant_batchmatmul(args_of(in), b).antiquant_weight);
    EXPECT_EQ(same, dt == DType::kBF16);
  }
}

TEST(WeightQuantBmm, GoldensSeparateTheRequantAndAntiquantReadings) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(kOp);
  bool requant = false, antiquant = false;
  for (const conf::CaseSpec& c : def->cases()) {
    const WqbmmArgs a = args_of(c.inputs);
    const int64_t g = c.params.at("group_size").get<int64_t>();
    if (a.quant_scale) {
      const Tensor y1 =
          ref::npu_weight_quant_batchmatmul(a, {g, WqbmmRequant::kFixpipe, WqbmmAntiquant::kXDtype})
              .y;
      const Tensor y2 =
          ref::npu_weight_quant_batchmatmul(a, {g, WqbmmRequant::kFp32, WqbmmAntiquant::kXDtype}).y;
      requant |= !y1.bit_equal(y2);
    }
    const Tensor w1 =
        ref::npu_weight_quant_batchmatmul(a, {g, WqbmmRequant::kFixpipe, WqbmmAntiquant::kXDtype})
            .antiquant_weight;
    const Tensor w2 =
        ref::npu_weight_quant_batchmatmul(a, {g, WqbmmRequant::kFixpipe, WqbmmAntiquant::kFp32})
            .antiquant_weight;
    antiquant |= !w1.bit_equal(w2);
  }
  EXPECT_TRUE(requant);
  EXPECT_TRUE(antiquant);
}

// ---- the optimized kernel
// ------------------------------------------------------------------------

std::vector<std::pair<std::string, Spec>> opt_specs() {
  std::vector<std::pair<std::string, Spec>> v;
  int i = 0;
  for (DType dt : {DType::kF16, DType::kBF16})
    for (bool int4 : {false, true})
      for (int64_t group : {int64_t{0}, int64_t{32}, int64_t{64}})
        for (bool offset : {false, true}) {
          const int64_t k = 33 + 37 * (i % 5);  // 33 .. 181: partial blocks and groups
          const int64_t m = 1 + i % 3;
          if (group >= k) continue;
          v.push_back({"opt" + std::to_string(i), Spec{dt, m, k, 8 * (1 + i % 3), int4, group,
                                                       offset, i % 2 == 0, i % 4 == 1}});
          ++i;
        }
  return v;
}

TEST(WeightQuantBmm, OptimizedWeightStagesAreBitExactAndItsOutputIsWithinTheBound) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(kOp);
  for (const auto& [name, spec] : opt_specs())
    for (const char* aq : {"x_dtype", "fp32"}) {
      const Case c =
          make_case(make_inputs(spec, "wqbmm_opt/" + name), params_of(spec.group, "fixpipe", aq));
      TensorMap out;
      def->optimized(c.p, c.in, out);
      if (spec.int4) {
        EXPECT_TRUE(out.at("weight_values").bit_equal(c.ref.at("weight_values"))) << name;
      }
      EXPECT_TRUE(same_floats(out.at("antiquant_weight"), c.ref.at("antiquant_weight")))
          << name << " " << aq;
      EXPECT_EQ(c.verdict("acc", out.at("acc")), Verdict::kPass) << name << " " << aq;
      EXPECT_EQ(c.verdict("y", out.at("y")), Verdict::kPass) << name << " " << aq;
    }
}

TEST(WeightQuantBmm, AvxAndPortableKernelsAreBitIdentical) {
  if (opt::wqbmm_kernel_name() != "avx512") GTEST_SKIP() << "no AVX-512 on this CPU";
  for (const auto& [name, spec] : opt_specs())
    for (WqbmmAntiquant aq : {WqbmmAntiquant::kXDtype, WqbmmAntiquant::kFp32}) {
      const TensorMap in = make_inputs(spec, "wqbmm_kern/" + name);
      const WqbmmConfig cfg{spec.group, WqbmmRequant::kFixpipe, aq};
      const WqbmmStages a = opt::npu_weight_quant_batchmatmul(args_of(in), cfg);
      opt::wqbmm_force_portable_kernel(true);
      const WqbmmStages b = opt::npu_weight_quant_batchmatmul(args_of(in), cfg);
      opt::wqbmm_force_portable_kernel(false);
      EXPECT_TRUE(a.acc.bit_equal(b.acc)) << name;
      EXPECT_TRUE(a.y.bit_equal(b.y)) << name;
    }
}

TEST(WeightQuantBmm, IdentityActivationsReturnEveryAntiquantFormulaExactly) {
  // x = I (K x K): acc[m, n] = W[m, n] exactly (the other products are zeros), so the fused
  // kernels' on-the-fly antiquant (every per-column formula: plain product, fused offset, fp16
  // or fp32 add, subnormal-safe bf16 paths) is compared value by value with the reference W.
  struct Col {
    float s, off;
  };
  const std::vector<Col> f16cols = {{0.01f, 0.0f},    {0.02f, 3.0f},       {0.003f, 0.3f},
                                    {0.5f, 6.1e-5f},  {1.5f, -100.5f},     {6e-8f, 7.0f},
                                    {100.0f, 0.125f}, {0.0625f, -5.96e-8f}};
  const std::vector<Col> bf16cols = {{0.01f, 3.0f},    {0.02f, 1.0078125f * 9.5367431640625e-07f},
                                     {0.5f, 0.0f},     {1.5f, -57.5f},
                                     {7.3e-40f, 2.0f}, {7.5e-37f, 0.01f},
                                     {3.0e38f, 0.5f},  {0.25f, 7.3e-40f}};
  for (DType dt : {DType::kF16, DType::kBF16})
    for (bool int4 : {false, true})
      for (bool offset : {false, true})
        for (WqbmmAntiquant aq : {WqbmmAntiquant::kXDtype, WqbmmAntiquant::kFp32}) {
          const std::vector<Col>& cols = dt == DType::kF16 ? f16cols : bf16cols;
          const int64_t k = int4 ? 40 : 72, n = static_cast<int64_t>(cols.size());
          TensorMap in =
              make_inputs({dt, 1, k, n, int4, 0, offset, false, false}, "wqbmm_identity");
          Tensor x(dt, {k, k});
          const uint16_t one = dt == DType::kF16 ? 0x3C00 : 0x3F80;
          for (int64_t i = 0; i < k; ++i) x.data<uint16_t>()[i * k + i] = one;
          in["x"] = x;
          std::vector<float> sv, ov;
          for (const Col& c : cols) sv.push_back(c.s), ov.push_back(c.off);
          auto to_dt = [&](const std::vector<float>& v) {
            Tensor t(dt, {n});
            for (int64_t i = 0; i < n; ++i)
              t.data<uint16_t>()[i] = static_cast<uint16_t>(
                  num::convert(num::kF32, b_of(v[static_cast<size_t>(i)]), fmt(dt)));
            return t;
          };
          in["antiquant_scale"] = to_dt(sv);
          if (offset) in["antiquant_offset"] = to_dt(ov);
          const WqbmmConfig cfg{0, WqbmmRequant::kFixpipe, aq};
          const WqbmmStages r = ref::npu_weight_quant_batchmatmul(args_of(in), cfg);
          for (bool portable : {false, true}) {
            opt::wqbmm_force_portable_kernel(portable);
            const WqbmmStages o = opt::npu_weight_quant_batchmatmul(args_of(in), cfg);
            opt::wqbmm_force_portable_kernel(false);
            std::vector<bool> finite_col(static_cast<size_t>(n), true);
            for (int64_t i = 0; i < k * n; ++i)
              if (!std::isfinite(value(dt, r.antiquant_weight.bits_at(i))))
                finite_col[static_cast<size_t>(i % n)] = false;
            for (int64_t i = 0; i < k * n; ++i) {
              const float want = value(dt, r.antiquant_weight.bits_at(i));
              // (x = I turns 0 * Inf into NaN in a column holding an infinite W)
              if (!finite_col[static_cast<size_t>(i % n)]) continue;
              EXPECT_EQ(o.acc.data<float>()[i], want)
                  << dtype_name(dt) << (int4 ? " int4" : " int8") << (offset ? " offset" : "")
                  << " " << wqbmm_antiquant_name(aq) << (portable ? " portable" : " avx512")
                  << " k " << i / n << " column " << i % n;
            }
          }
        }
}

TEST(WeightQuantBmm, NonFiniteParametersGiveTheReferenceSpecials) {
  for (DType dt : {DType::kF16, DType::kBF16})
    for (bool int4 : {false, true}) {
      TensorMap in = make_inputs({dt, 2, 64, 16, int4, 0, true, false, false}, "wqbmm_special");
      Tensor& s = in.at("antiquant_scale");
      const uint16_t inf = dt == DType::kF16 ? 0x7C00 : 0x7F80,
                     nan = dt == DType::kF16 ? 0x7E00 : 0x7FC0;
      s.data<uint16_t>()[1] = inf;
      s.data<uint16_t>()[5] = nan;
      in.at("antiquant_offset").data<uint16_t>()[9] = inf;
      const WqbmmStages r = ref::npu_weight_quant_batchmatmul(args_of(in), {});
      const WqbmmStages o = opt::npu_weight_quant_batchmatmul(args_of(in), {});
      EXPECT_TRUE(same_floats(r.antiquant_weight, o.antiquant_weight));
      for (int64_t i = 0; i < r.acc.numel(); ++i) {
        const int64_t n = i % 16;
        const bool special = n == 1 || n == 5 || n == 9;
        const bool rn = std::isnan(r.acc.data<float>()[i]), on = std::isnan(o.acc.data<float>()[i]);
        EXPECT_EQ(rn, on) << i;
        if (special && !rn) {
          EXPECT_EQ(r.acc.data<float>()[i], o.acc.data<float>()[i]) << i;
        }
        if (!special) {
          EXPECT_TRUE(std::isfinite(o.acc.data<float>()[i])) << i;
        }
      }
      opt::wqbmm_force_portable_kernel(true);
      const WqbmmStages p = opt::npu_weight_quant_batchmatmul(args_of(in), {});
      opt::wqbmm_force_portable_kernel(false);
      EXPECT_TRUE(same_floats(p.acc, o.acc));
    }
}

TEST(WeightQuantBmm, ResultsDoNotDependOnThreadCount) {
  // (group 0, int8: per-channel, the VBMI lookup where the CPU has it)
  for (bool int4 : {false, true})
    for (int64_t m : {1, 3})
      for (int64_t group : {int64_t{128}, int64_t{0}}) {
        const TensorMap in = make_inputs(
            {DType::kBF16, m, 512, 2048, int4, group, true, true, false}, "wqbmm_threads");
        const WqbmmArgs a = args_of(in);
        const opt::WqbmmWeights w = opt::wqbmm_prepare_weights(a, WqbmmConfig{group});
        std::vector<float> bias(2048);
        for (int64_t n = 0; n < 2048; ++n)
          bias[static_cast<size_t>(n)] = in.at("bias").data<float>()[n];
        std::vector<float> one(static_cast<size_t>(m * 2048)), two(one.size()), many(one.size());
        opt::wqbmm_gemm_acc(w, a.x->data<uint16_t>(), m, bias.data(), one.data(), 1);
        opt::wqbmm_gemm_acc(w, a.x->data<uint16_t>(), m, bias.data(), two.data(), 2);
        opt::wqbmm_gemm_acc(w, a.x->data<uint16_t>(), m, bias.data(), many.data(), 7);
        EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0)
            << int4 << " m " << m << " group " << group;
        EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * 4), 0)
            << int4 << " m " << m << " group " << group;
      }
}

TEST(WeightQuantBmm, SubnormalActivationsTakeTheExactPathNotTheFlushingDotProduct) {
  // vdpbf16ps treats subnormal inputs as zero, so wqbmm_gemm_acc must leave the bf16 dot path
  // when any x is subnormal. One subnormal x (2^-133) times W = 100 * 2^20 (or 7 * 2^20, int4)
  // is a normal fp32 product, the only nonzero one: every summation order gives it exactly,
  // while the flushing dot product gives 0. The subnormal sits at positions spread over a
  // 128-k block in turn (the scan that detects it, and the int4 superblock rearrangement).
  for (bool int4 : {false, true})
    for (int64_t at : {0, 5, 31, 32, 63, 64 + 17, 126, 127}) {
      const int64_t k = 128, n = 16;
      Tensor x(DType::kBF16, {1, k});
      for (int64_t i = 0; i < k; ++i) x.data<uint16_t>()[i] = 0;
      x.data<uint16_t>()[at] = 0x0001;  // 2^-133
      Tensor w8(DType::kI8, {k, n});
      for (int64_t i = 0; i < k * n; ++i) w8.data<int8_t>()[i] = 0;
      for (int64_t j = 0; j < n; ++j) w8.data<int8_t>()[at * n + j] = int4 ? 7 : 100;
      const Tensor w = int4 ? pack_int4(w8) : w8;
      const int64_t group = int4 ? 64 : 0;
      Tensor scale(DType::kBF16, int4 ? Shape{k / 64, n} : Shape{n});
      for (int64_t j = 0; j < scale.numel(); ++j) scale.data<uint16_t>()[j] = 0x4980;  // 2^20
      WqbmmArgs a;
      a.x = &x;
      a.weight = &w;
      a.antiquant_scale = &scale;
      const opt::WqbmmWeights pw = opt::wqbmm_prepare_weights(a, WqbmmConfig{group});
      std::vector<float> acc(static_cast<size_t>(n), -1.0f);
      opt::wqbmm_gemm_acc(pw, x.data<uint16_t>(), 1, nullptr, acc.data(), 1);
      const float want = std::ldexp(int4 ? 7.0f : 100.0f, 20 - 133);
      for (int64_t j = 0; j < n; ++j)
        ASSERT_EQ(acc[static_cast<size_t>(j)], want)
            << (int4 ? "int4" : "int8") << " subnormal at k " << at << " column " << j;
    }
}

// x = I (K x K, bf16) through the prepared weights: acc[k, n] must be the reference's
// antiquantized W[k, n] exactly (every other product is a zero).
void ExpectIdentityRowsGiveTheReferenceWeights(const opt::WqbmmWeights& w, const WqbmmStages& r,
                                               const std::string& what) {
  const int64_t k = w.shape.k, n = w.shape.n;
  Tensor eye(DType::kBF16, {k, k});
  for (int64_t i = 0; i < k; ++i) eye.data<uint16_t>()[i * k + i] = 0x3F80;
  std::vector<float> acc(static_cast<size_t>(k * n));
  opt::wqbmm_gemm_acc(w, eye.data<uint16_t>(), k, nullptr, acc.data());
  for (int64_t i = 0; i < k * n; ++i)
    ASSERT_EQ(acc[static_cast<size_t>(i)], value(DType::kBF16, r.antiquant_weight.bits_at(i)))
        << what << ", k " << i / n << " column " << i % n;
}

TEST(WeightQuantBmm, VbmiLookupGivesTheConvertedWeightsOfEveryByteBitForBit) {
  // The int8 bf16 dot path looks the weights up in a 256-word table per column when the CPU has
  // AVX-512 VBMI and a group spans >= 512 k. Every column here holds every byte value (K = 608
  // > 256, w[k, n] = int8(37 k + n)), K is not a multiple of the 64-k block (the last block is
  // half padding), and both formulas are used: the plain product (no offset) and the fused
  // offset. Per channel (one group: the lookup throughout) and groups of 512 (the lookup for the
  // first group, the conversion for the 96 k of the second, in the same column). x = I: acc = W
  // exactly, compared with the reference; x random, M = 1 (the 4-column tile) and M = 3, 5: the
  // lookup, the conversion and the portable kernel give the same bits. (Without VBMI both
  // optimized runs take the conversion path.)
  const int64_t k = 608, n = 12;
  for (int64_t group : {int64_t{0}, int64_t{512}})
    for (bool offset : {false, true}) {
      TensorMap in = make_inputs({DType::kBF16, 1, k, n, false, group, offset, false, false},
                                 "wqbmm_vbmi_lut");
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t c = 0; c < n; ++c)
          in.at("weight").data<int8_t>()[kk * n + c] = static_cast<int8_t>((37 * kk + c) & 0xFF);
      const WqbmmConfig cfg{group};
      const opt::WqbmmWeights w = opt::wqbmm_prepare_weights(args_of(in), cfg);
      ASSERT_TRUE(w.dot_ok) << "the case must take the bf16 dot path";
      const WqbmmStages r = ref::npu_weight_quant_batchmatmul(args_of(in), cfg);
      for (bool lut_off : {false, true}) {
        opt::wqbmm_disable_vbmi_lookup(lut_off);
        ExpectIdentityRowsGiveTheReferenceWeights(w, r,
                                                  "group " + std::to_string(group) +
                                                      (offset ? " offset" : " no offset") +
                                                      (lut_off ? " conversion" : " lookup"));
        opt::wqbmm_disable_vbmi_lookup(false);
      }
      // Random x (m = 1: the 4-column tile; 3, 5: the 2-, 4- and 1-row column tiles).
      for (int64_t m : {1, 3, 5}) {
        const Tensor x = gen::float_tensor(DType::kBF16, {m, k}, gen::FloatDist::normal(0),
                                           rng::seed_from_string("wqbmm_vbmi_lut_x"), m);
        std::vector<float> lut(static_cast<size_t>(m * n)), conv(lut.size()), port(lut.size());
        opt::wqbmm_gemm_acc(w, x.data<uint16_t>(), m, nullptr, lut.data());
        opt::wqbmm_disable_vbmi_lookup(true);
        opt::wqbmm_gemm_acc(w, x.data<uint16_t>(), m, nullptr, conv.data());
        opt::wqbmm_disable_vbmi_lookup(false);
        opt::wqbmm_force_portable_kernel(true);
        opt::wqbmm_gemm_acc(w, x.data<uint16_t>(), m, nullptr, port.data());
        opt::wqbmm_force_portable_kernel(false);
        EXPECT_EQ(std::memcmp(lut.data(), conv.data(), lut.size() * 4), 0)
            << "group " << group << " offset " << offset << " m " << m;
        EXPECT_EQ(std::memcmp(lut.data(), port.data(), lut.size() * 4), 0)
            << "group " << group << " offset " << offset << " m " << m;
      }
    }
}

TEST(WeightQuantBmm, Int4DotPathGivesTheReferenceWeightsAndThePortableOrderForEveryGroupSplit) {
  // The int4 bf16 dot path reads 128 k per column at a time as 32 16-bit words (four codes each)
  // and looks each code up in a per-(column, group) table. Group sizes that are a multiple of 64
  // but not of 128 split a superblock between two tables (64, 192); groups of 128 have one
  // superblock per table, 256 two, and per-channel scales one table (their own loops); K not a
  // multiple of 128 leaves a partial superblock. With and without an offset (the table adds the
  // offset, or zero, then multiplies by the scale). x = I: acc = W exactly, compared with the
  // reference (K rows: the 4-, 2- and 1-row column tiles); random x, M = 1 (the column pairs) and
  // M = 3, 6: the AVX-512 and the portable kernels give the same bits.
  for (bool offset : {false, true})
    for (int64_t group : {int64_t{0}, int64_t{64}, int64_t{128}, int64_t{192}, int64_t{256}})
      for (int64_t k : {int64_t{200}, int64_t{256}, int64_t{456}, int64_t{1000}}) {
        if (group >= k) continue;  // the op requires a group size below K
        const int64_t n = 16;
        const TensorMap in = make_inputs({DType::kBF16, 1, k, n, true, group, offset, false, false},
                                         "wqbmm_int4_dot");
        const std::string name = std::string(offset ? "offset" : "no offset") + ", group " +
                                 std::to_string(group) + ", K " + std::to_string(k);
        const WqbmmConfig cfg{group};
        const opt::WqbmmWeights w = opt::wqbmm_prepare_weights(args_of(in), cfg);
        ASSERT_TRUE(w.dot_ok) << name << ": the case must take the bf16 dot path";
        const WqbmmStages r = ref::npu_weight_quant_batchmatmul(args_of(in), cfg);
        for (bool portable : {false, true}) {
          opt::wqbmm_force_portable_kernel(portable);
          ExpectIdentityRowsGiveTheReferenceWeights(w, r,
                                                    name + (portable ? " portable" : " avx512"));
          opt::wqbmm_force_portable_kernel(false);
        }
        for (int64_t m : {1, 3, 6}) {
          const Tensor x = gen::float_tensor(DType::kBF16, {m, k}, gen::FloatDist::normal(0),
                                             rng::seed_from_string("wqbmm_int4_dot_x"), m);
          std::vector<float> avx(static_cast<size_t>(m * n)), port(avx.size());
          opt::wqbmm_gemm_acc(w, x.data<uint16_t>(), m, nullptr, avx.data());
          opt::wqbmm_force_portable_kernel(true);
          opt::wqbmm_gemm_acc(w, x.data<uint16_t>(), m, nullptr, port.data());
          opt::wqbmm_force_portable_kernel(false);
          EXPECT_EQ(std::memcmp(avx.data(), port.data(), avx.size() * 4), 0) << name << " m " << m;
        }
      }
}

TEST(WeightQuantBmm, RowsOfAGemmEqualTheGemvOfEachRow) {
  const TensorMap in =
      make_inputs({DType::kF16, 11, 160, 24, true, 32, true, false, false}, "wqbmm_rows");
  const WqbmmArgs a = args_of(in);
  const opt::WqbmmWeights w = opt::wqbmm_prepare_weights(a, WqbmmConfig{32});
  std::vector<float> all(11 * 24), row(24);
  opt::wqbmm_gemm_acc(w, a.x->data<uint16_t>(), 11, nullptr, all.data());
  for (int64_t m = 0; m < 11; ++m) {
    opt::wqbmm_gemm_acc(w, a.x->data<uint16_t>() + m * 160, 1, nullptr, row.data());
    EXPECT_EQ(std::memcmp(row.data(), all.data() + m * 24, 24 * 4), 0) << m;
  }
}

TEST(WeightQuantBmm, RejectsBadInputsWithClearMessages) {
  auto msg = [](TensorMap in, WqbmmConfig cfg) {
    try {
      ref::npu_weight_quant_batchmatmul(args_of(in), cfg);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const TensorMap ok =
      make_inputs({DType::kF16, 2, 64, 8, false, 0, true, true, false}, "wqbmm_bad");
  EXPECT_EQ(msg(ok, {}), "no error");
  TensorMap t = ok;
  t["x"] = Tensor(DType::kF32, {2, 64});
  EXPECT_NE(msg(t, {}).find("x must be float16 or bfloat16"), std::string::npos);
  t = ok;
  t["weight"] = Tensor(DType::kI8, {63, 8});
  EXPECT_NE(msg(t, {}).find("weight must have K = 64 rows"), std::string::npos);
  EXPECT_NE(msg(ok, {48}).find("antiquant_group_size must be 0 or a multiple of 32"),
            std::string::npos);
  EXPECT_NE(msg(ok, {32}).find("per-group antiquant_scale must be (ceil(K/G), N) = (2, 8)"),
            std::string::npos);
  t = ok;
  t["antiquant_offset"] = Tensor(DType::kBF16, {8});
  EXPECT_NE(msg(t, {}).find("antiquant_offset must have the dtype and shape"), std::string::npos);
  t = ok;
  t["bias"] = Tensor(DType::kF32, {8});
  EXPECT_NE(msg(t, {}).find("bias must be float16 for float16 x"), std::string::npos);
  t = ok;
  t["quant_offset"] = Tensor(DType::kF32, {8});
  EXPECT_NE(msg(t, {}).find("quant_offset needs quant_scale"), std::string::npos);
}

}  // namespace
}  // namespace qconf
