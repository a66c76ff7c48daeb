// Properties of npu_quant_matmul, the int8 GEMM and the W8A8_DYNAMIC linear.
#include "qconf/ops/quant_matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/scales.h"
#include "qconf/opt/cpu.h"
#include "qconf/opt/dynamic_quant_row.h"
#include "qconf/opt/gemm_s8.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

// Bit equality, except that any NaN matches any NaN (payloads are not portable).
bool same(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (!dtype_is_float(a.dtype())) return a.bit_equal(b);
  const num::FloatFormat& f = a.dtype() == DType::kF16    ? num::kF16
                              : a.dtype() == DType::kBF16 ? num::kBF16
                                                          : num::kF32;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const bool na = num::is_nan(f, a.bits_at(i)), nb = num::is_nan(f, b.bits_at(i));
    if (na != nb || (!na && a.bits_at(i) != b.bits_at(i))) return false;
  }
  return true;
}

bool same(const std::optional<Tensor>& a, const std::optional<Tensor>& b) {
  return a.has_value() == b.has_value() && (!a || same(*a, *b));
}

// Every stage of the optimized kernel (with intermediates) equals the reference's.
void expect_same_stages(const QuantMatmulStages& r, const QuantMatmulStages& o,
                        const std::string& what) {
  EXPECT_TRUE(same(r.acc, o.acc)) << what << " (acc)";
  EXPECT_TRUE(same(r.acc_bias, o.acc_bias)) << what << " (acc_bias)";
  EXPECT_TRUE(same(r.dequant, o.dequant)) << what << " (dequant)";
  EXPECT_TRUE(same(r.pertoken, o.pertoken)) << what << " (pertoken)";
  EXPECT_TRUE(same(r.biased, o.biased)) << what << " (biased)";
  EXPECT_TRUE(same(r.requant, o.requant)) << what << " (requant)";
  EXPECT_TRUE(same(r.out, o.out)) << what << " (out)";
}

uint64_t seed(const std::string& s) { return rng::seed_from_string("qmm_test/" + s); }

Tensor rand_i8(Shape s, const std::string& name, uint64_t stream, int64_t lo = -128,
               int64_t hi = 127) {
  return gen::int_tensor(DType::kI8, s, lo, hi, seed(name), stream);
}
Tensor rand_scale(int64_t n, int e, const std::string& name, uint64_t stream) {
  return gen::float_tensor(DType::kF32, {n}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, e - 23),
                           seed(name), stream);
}

// One input combination of npu_quant_matmul.
struct Combo {
  std::string name;
  DType out;
  DType scale;  // kF32, kBF16, kI64
  DType bias;   // kBool = none
  bool pertoken;
  bool offset;
};

const std::vector<Combo>& combos() {
  static const std::vector<Combo> c = {
      {"int64_fp16", DType::kF16, DType::kI64, DType::kBool, false, false},
      {"int64_fp16_bias", DType::kF16, DType::kI64, DType::kI32, false, false},
      {"int64_int8_offset_bias", DType::kI8, DType::kI64, DType::kI32, false, true},
      {"int64_bf16", DType::kBF16, DType::kI64, DType::kI32, false, false},
      {"int64_fp32", DType::kF32, DType::kI64, DType::kBool, false, false},
      {"fp32_fp16", DType::kF16, DType::kF32, DType::kBool, false, false},
      {"fp32_fp16_bias", DType::kF16, DType::kF32, DType::kI32, false, false},
      {"fp32_int8_offset", DType::kI8, DType::kF32, DType::kBool, false, true},
      {"fp32_int8_bias", DType::kI8, DType::kF32, DType::kI32, false, false},
      {"fp32_bf16", DType::kBF16, DType::kF32, DType::kBool, false, false},
      {"fp32_bf16_bias_i32", DType::kBF16, DType::kF32, DType::kI32, false, false},
      {"fp32_bf16_bias_bf16", DType::kBF16, DType::kF32, DType::kBF16, false, false},
      {"bf16_bf16_bias_f32", DType::kBF16, DType::kBF16, DType::kF32, false, false},
      {"fp32_fp32_out", DType::kF32, DType::kF32, DType::kF32, false, false},
      {"pt_bf16", DType::kBF16, DType::kF32, DType::kBool, true, false},
      {"pt_bf16_bias_bf16", DType::kBF16, DType::kF32, DType::kBF16, true, false},
      {"pt_bf16_bias_i32", DType::kBF16, DType::kBF16, DType::kI32, true, false},
      {"pt_fp16", DType::kF16, DType::kF32, DType::kBool, true, false},
      {"pt_fp16_bias_f16", DType::kF16, DType::kF32, DType::kF16, true, false},
      {"pt_fp16_bias_f32", DType::kF16, DType::kF32, DType::kF32, true, false},
      {"pt_fp32_out", DType::kF32, DType::kF32, DType::kI32, true, false},
      {"int32_out", DType::kI32, DType::kF32, DType::kBool, false, false},
      {"int32_out_bias", DType::kI32, DType::kBF16, DType::kI32, false, false},
  };
  return c;
}

// Inputs of one combination for x1 [.., m, k] and x2 [.., k, n] (given).
struct Inputs {
  Tensor x1, x2, scale;
  std::optional<Tensor> offset, pertoken, bias;
  const Tensor* off() const { return offset ? &*offset : nullptr; }
  const Tensor* pt() const { return pertoken ? &*pertoken : nullptr; }
  const Tensor* b() const { return bias ? &*bias : nullptr; }
};

Inputs make_inputs(const Combo& c, Tensor x1, Tensor x2, int64_t m, int64_t n,
                   const std::string& name) {
  Inputs in{std::move(x1), std::move(x2), Tensor(), std::nullopt, std::nullopt, std::nullopt};
  const Tensor s = rand_scale(n, -11, name, 10);
  const Tensor o =
      gen::float_tensor(DType::kF32, {n}, gen::FloatDist::grid(-600, 600, -1), seed(name), 11);
  if (c.scale == DType::kF32) in.scale = s;
  if (c.scale == DType::kBF16)
    in.scale =
        gen::float_tensor(DType::kBF16, {n}, gen::FloatDist::grid(128, 255, -18), seed(name), 12);
  if (c.scale == DType::kI64)
    in.scale =
        ref::npu_trans_quant_param(s, c.offset ? &o : nullptr, TransQuantEncoding::kFp19Trunc)
            .quant_param;
  if (c.offset && c.scale != DType::kI64) in.offset = o;
  if (c.pertoken)
    in.pertoken = gen::float_tensor(
        DType::kF32, {m}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -23), seed(name), 13);
  if (c.bias == DType::kI32)
    in.bias = gen::int_tensor(DType::kI32, {n}, -50000, 50000, seed(name), 14);
  if (c.bias == DType::kF32 || c.bias == DType::kBF16 || c.bias == DType::kF16)
    in.bias = gen::float_tensor(c.bias, {n}, gen::FloatDist::normal(4), seed(name), 15);
  return in;
}

QuantMatmulConfig cfg_of(DType out, bool fp19, FixpipePrecision fx) {
  QuantMatmulConfig c;
  c.output_dtype = out;
  c.opplugin_fp19 = fp19;
  c.fixpipe = fx;
  return c;
}

struct Dims {
  int64_t m, k, n;
};
const Dims kShapes[] = {{1, 1, 1}, {5, 67, 19}, {7, 130, 70}, {13, 33, 129}, {2, 300, 64}};

// ---- optimized == reference -------------------------------------------------------------------

// Whether torch_npu accepts this input combination (the reference throws otherwise).
bool valid(const Inputs& in, const QuantMatmulConfig& cfg) {
  try {
    plan_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg);
    return true;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

TEST(QuantMatmul, OptimizedIsBitExactToReferenceForEveryCombinationAndVariant) {
  int checked = 0, rejected = 0;
  for (const Dims& d : kShapes)
    for (const Combo& c : combos()) {
      const std::string name = c.name + "_" + std::to_string(d.m) + "x" + std::to_string(d.k) +
                               "x" + std::to_string(d.n);
      Inputs in = make_inputs(c, rand_i8({d.m, d.k}, name, 0), rand_i8({d.k, d.n}, name, 1), d.m,
                              d.n, name);
      for (bool fp19 : {true, false})
        for (auto fx : {FixpipePrecision::kFp32, FixpipePrecision::kExact}) {
          const QuantMatmulConfig cfg = cfg_of(c.out, fp19, fx);
          const std::string what =
              name + (fp19 ? " fp19" : " direct") + " " + std::string(fixpipe_precision_name(fx));
          if (!valid(in, cfg)) {  // a combination torch_npu rejects: both implementations do
            EXPECT_THROW(
                opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg),
                std::invalid_argument)
                << what;
            ++rejected;
            continue;
          }
          const QuantMatmulStages r =
              ref::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg);
          expect_same_stages(
              r,
              opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg, true),
              what);
          EXPECT_TRUE(same(r.out, opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(),
                                                        in.b(), cfg, false)
                                      .out))
              << what << " (out, no intermediates)";
          ++checked;
        }
    }
  EXPECT_EQ(checked + rejected, 5 * static_cast<int>(combos().size()) * 4);
  EXPECT_EQ(rejected, 5 * 2);  // fp32 scale + fp32 bias + no pertoken with op-plugin's int64
}

TEST(QuantMatmul, ScalarFallbackAndPrepackedPathEqualTheReference) {
  for (const Dims& d : kShapes)
    for (const Combo& c : combos()) {
      const std::string name = "scalar_" + c.name + std::to_string(d.k);
      Inputs in = make_inputs(c, rand_i8({d.m, d.k}, name, 0), rand_i8({d.k, d.n}, name, 1), d.m,
                              d.n, name);
      const opt::PackedWeightsS8 w = opt::PackedWeightsS8::pack(in.x2);
      for (auto fx : {FixpipePrecision::kFp32, FixpipePrecision::kExact}) {
        const QuantMatmulConfig cfg = cfg_of(c.out, c.bias != DType::kF32, fx);
        const Tensor r =
            ref::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg).out;
        for (bool scalar : {false, true}) {
          opt::GemmS8Options o;
          o.force_scalar = scalar;
          EXPECT_TRUE(same(r, opt::npu_quant_matmul_packed(in.x1, w, in.scale, in.off(), in.pt(),
                                                           in.b(), cfg, o)))
              << name << (scalar ? " scalar" : " simd") << " " << fixpipe_precision_name(fx);
        }
      }
    }
}

TEST(QuantMatmul, SpecialOffsetsAndScalesAreBitExactToReference) {
  // Offsets: NaN -> 0, +-Inf and 1e10 saturate to the int9 range, ties to even, -0; scales:
  // +-Inf, NaN, 0, subnormal, max (int8 and fp16, every path).
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  const Tensor offset = Tensor::from<float>(
      {16}, {nan, inf, -inf, 0.5f, 1.5f, -2.5f, 1e10f, -0.0f, 255.5f, -256.5f, 3, -3, 0, 1, 2, 3});
  const Tensor scale = Tensor::from<float>({16}, {inf, -inf, nan, 0.0f, -0.0f, 0x1p-140f, 3.4e38f,
                                                  1, 0.5f, 0.25f, 0.01f, 0.3f, 2, 3, 0.125f, 7});
  const Tensor x1 = rand_i8({3, 10}, "special", 0), x2 = rand_i8({10, 16}, "special", 1);
  for (DType out : {DType::kI8, DType::kF16, DType::kBF16})
    for (bool fp19 : {true, false})
      for (auto fx : {FixpipePrecision::kFp32, FixpipePrecision::kExact}) {
        const QuantMatmulConfig cfg = cfg_of(out, fp19, fx);
        const Tensor* off = out == DType::kI8 ? &offset : nullptr;
        const std::string what = std::string(dtype_name(out)) + (fp19 ? " fp19 " : " direct ") +
                                 std::string(fixpipe_precision_name(fx));
        expect_same_stages(ref::npu_quant_matmul(x1, x2, scale, off, nullptr, nullptr, cfg),
                           opt::npu_quant_matmul(x1, x2, scale, off, nullptr, nullptr, cfg, true),
                           what);
        const Tensor q =
            ref::npu_trans_quant_param(scale, off, TransQuantEncoding::kFp19Trunc).quant_param;
        if (out != DType::kBF16)
          expect_same_stages(ref::npu_quant_matmul(x1, x2, q, nullptr, nullptr, nullptr, cfg),
                             opt::npu_quant_matmul(x1, x2, q, nullptr, nullptr, nullptr, cfg, true),
                             what + " int64");
      }
}

// Without intermediates the float outputs take the fast epilogue, which on a CPU with
// AVX512_BF16 rounds to bf16 with vcvtneps2bf16 except in a vector holding a subnormal (that
// instruction flushes them). Scales and pertoken scales that make the values Inf, NaN, zeros of
// both signs, the largest finite values and subnormals, alone in a vector or mixed with normal
// values, and bf16 ties to even (acc 257 and 259, +-): the same bits as the reference for every
// float output, bias kind and scale dtype, in whole and partial vectors (n = 40), with the
// pertoken index wrapping inside a tile (x1 [2, 13, 40]); with vcvtneps2bf16 where the CPU
// has it, and with the integer rounding of CPUs without it.
TEST(QuantMatmul, FastEpilogueRoundsSpecialValuesAndTiesLikeTheReference) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf(""), big = 3.4e38f;
  const std::vector<float> scales = {
      1,         1,         1,         1,          inf,       -inf,       nan,       0,
      -0.0f,     big,       -big,      0.5f,       2,         0x1p100f,   0.75f,     1,
      0x1p-140f, 1,         0x1p-133f, 0x1p-127f,  0x1p-149f, -0x1p-140f, 0.25f,     0x1p-120f,
      0x1p-110f, 0x1p-126f, 3,         -0x1p-130f, 0x1p-112f, 1,          0x1p-118f, 0.125f,
      inf,       nan,       0x1p-140f, 1,          -0.0f,     0x1p-121f,  big,       1};
  const std::vector<float> pertoken = {1,     0x1p-20f, 0x1p100f,  -1,  nan,  inf,    0,
                                       -0.0f, 1,        0x1p-126f, big, 0.5f, 0x1p-8f};
  const int64_t k = 40, n = 40;
  Tensor x2 = rand_i8({k, n}, "fast_epilogue", 1);
  // Columns 0-3: acc of row 0 = 2 x2[0] + x2[1] = 257, 259, -257, -259, which fp32 holds
  // exactly and which lie halfway between two bf16 values (the even one is 256, 260, ...).
  const int8_t tie[4][2] = {{127, 3}, {127, 5}, {-128, -1}, {-128, -3}};
  for (int j = 0; j < 4; ++j) {
    x2.data<int8_t>()[j] = tie[j][0];
    x2.data<int8_t>()[n + j] = tie[j][1];
  }
  for (const Shape& xs : {Shape{13, k}, Shape{2, 13, k}}) {
    Tensor x1 = rand_i8(xs, "fast_epilogue", 0);
    for (int64_t b = 0; b < (xs.size() == 3 ? xs[0] : 1); ++b) {
      int8_t* row0 = x1.data<int8_t>() + b * 13 * k;
      std::fill(row0, row0 + k, int8_t{0});
      row0[0] = 2;
      row0[1] = 1;
    }
    const Tensor pt = Tensor::from<float>({13}, pertoken);
    for (const Combo& c : combos()) {
      if (c.scale == DType::kI64 || c.offset || !dtype_is_float(c.out)) continue;
      Inputs in = make_inputs(c, x1, x2, 13, n, "fast_epilogue_" + c.name);
      Tensor s(c.scale, {n});
      for (int64_t j = 0; j < n; ++j) {
        // bf16 scales: the fp32 value's top half (0x1p-140 and below become zeros there).
        uint32_t bits;
        std::memcpy(&bits, &scales[static_cast<size_t>(j)], 4);
        if (c.scale == DType::kBF16)
          s.data<uint16_t>()[j] = static_cast<uint16_t>(bits >> 16);
        else
          s.data<uint32_t>()[j] = bits;
      }
      in.scale = s;
      if (c.pertoken) in.pertoken = pt;
      for (bool fp19 : {true, false}) {
        const QuantMatmulConfig cfg = cfg_of(c.out, fp19, FixpipePrecision::kFp32);
        const std::string what =
            c.name + shape_str(xs) + (fp19 ? " fp19" : " direct") + " (out, no intermediates)";
        if (!valid(in, cfg)) continue;
        const Tensor r =
            ref::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg).out;
        const opt::PackedWeightsS8 w = opt::PackedWeightsS8::pack(in.x2);
        for (bool integer_rounding : {false, true}) {
          opt::quant_matmul_disable_bf16_cvt(integer_rounding);
          const std::string how = integer_rounding ? " integer rounding" : "";
          EXPECT_TRUE(same(r, opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(),
                                                    in.b(), cfg, false)
                                  .out))
              << what << how;
          EXPECT_TRUE(same(
              r, opt::npu_quant_matmul_packed(in.x1, w, in.scale, in.off(), in.pt(), in.b(), cfg)))
              << what << how << " prepacked";
        }
        opt::quant_matmul_disable_bf16_cvt(false);
      }
    }
  }
}

TEST(QuantMatmul, BatchedOperandsAreBitExactToReference) {
  struct B {
    Shape x1, x2;
  };
  const Combo pt = combos()[14], i64 = combos()[2];
  for (const B& b :
       {B{{2, 3, 40}, {40, 24}}, B{{2, 3, 40}, {2, 40, 24}}, B{{1, 3, 40}, {3, 40, 24}},
        B{{3, 40}, {2, 40, 24}}, B{{4, 5, 40}, {1, 40, 24}}})
    for (const Combo& c : {pt, i64}) {
      const std::string name = "batch_" + c.name + shape_str(b.x1) + shape_str(b.x2);
      Inputs in = make_inputs(c, rand_i8(b.x1, name, 0), rand_i8(b.x2, name, 1),
                              b.x1[b.x1.size() - 2], 24, name);
      const QuantMatmulConfig cfg = cfg_of(c.out, true, FixpipePrecision::kFp32);
      expect_same_stages(
          ref::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg),
          opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg, true),
          name);
    }
}

TEST(QuantMatmul, ResultsDoNotDependOnThreadCount) {
  const Combo& c = combos()[14];  // pertoken bf16
  Inputs in = make_inputs(c, rand_i8({100, 200}, "threads", 0), rand_i8({200, 300}, "threads", 1),
                          100, 300, "threads");
  const QuantMatmulConfig cfg = cfg_of(c.out, true, FixpipePrecision::kFp32);
  const QuantMatmulStages one =
      opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg, true, 1);
  for (int t : {2, 3, 5}) {
    const QuantMatmulStages many =
        opt::npu_quant_matmul(in.x1, in.x2, in.scale, in.off(), in.pt(), in.b(), cfg, true, t);
    EXPECT_TRUE(one.acc.bit_equal(many.acc)) << t;
    EXPECT_TRUE(one.out.bit_equal(many.out)) << t;
  }
}

// ---- the integer accumulator ------------------------------------------------------------------

// int64 dot products of int8 rows, summed in the given k order.
std::vector<int64_t> dots(const Tensor& a, const Tensor& w, const std::vector<int64_t>& order) {
  const int64_t m = a.dim(0), k = a.dim(1), n = w.dim(1);
  std::vector<int64_t> c(static_cast<size_t>(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t : order)
        c[static_cast<size_t>(i * n + j)] +=
            int64_t{a.data<int8_t>()[i * k + t]} * w.data<int8_t>()[t * n + j];
  return c;
}

TEST(GemmS8, AccumulatorIsExactInAnyOrderForSafeRanges) {
  // With benchdnn safe ranges for 31 bits every partial sum of every order fits int32, so the
  // GEMM (any blocking, kernel or thread count) equals the int64 sum in every order; for 24
  // bits the sum is also exact in fp32 (the dequant's int32 -> fp32 conversion is exact).
  for (int digits : {24, 31})
    for (const Dims& d : {Dims{9, 2000, 70}, Dims{3, 77, 130}, Dims{14, 4100, 17}}) {
      const gen::IntRange r = gen::safe_int_range(digits, d.k, DType::kI8);
      const std::string name = "safe" + std::to_string(digits) + "_" + std::to_string(d.k);
      const Tensor a = rand_i8({d.m, d.k}, name, 0, r.lo, r.hi);
      const Tensor w = rand_i8({d.k, d.n}, name, 1, r.lo, r.hi);
      std::vector<int64_t> fwd(static_cast<size_t>(d.k)), rev;
      for (int64_t t = 0; t < d.k; ++t) fwd[static_cast<size_t>(t)] = t;
      rev.assign(fwd.rbegin(), fwd.rend());
      const std::vector<int64_t> exact = dots(a, w, fwd);
      EXPECT_EQ(exact, dots(a, w, rev));
      const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
      opt::PackedActivationsS8 pa;
      pa.pack_s8(a.data<int8_t>(), d.m, d.k, d.k, pw.k_padded());
      for (bool scalar : {false, true})
        for (int threads : {1, 2}) {
          std::vector<int32_t> c(static_cast<size_t>(d.m * d.n));
          opt::GemmS8Options o;
          o.force_scalar = scalar;
          o.threads = threads;
          opt::gemm_s8_s32(pa, pw, c.data(), d.n, o);
          for (size_t i = 0; i < c.size(); ++i) {
            ASSERT_EQ(c[i], exact[i]) << name << " element " << i;
            if (digits == 24) {
              ASSERT_EQ(static_cast<int64_t>(static_cast<float>(c[i])), exact[i]);
            }
          }
        }
    }
}

TEST(GemmS8, EveryRowCountAndTailMatchesTheScalarKernelAndInt64) {
  // m = 1..20 covers the 6-row kernels (1..6 rows per block, several blocks) and the small-M
  // kernel (7..16 rows in one pass); n = 70 and k = 37 leave tails in both.
  const int64_t k = 37, n = 70;
  for (int64_t m = 1; m <= 20; ++m) {
    const std::string name = "rows" + std::to_string(m);
    const Tensor a = rand_i8({m, k}, name, 0), w = rand_i8({k, n}, name, 1);
    std::vector<int64_t> order(static_cast<size_t>(k));
    for (int64_t t = 0; t < k; ++t) order[static_cast<size_t>(t)] = t;
    const std::vector<int64_t> exact = dots(a, w, order);
    const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
    opt::PackedActivationsS8 pa;
    pa.pack_s8(a.data<int8_t>(), m, k, k, pw.k_padded());
    for (bool scalar : {false, true}) {
      std::vector<int32_t> c(static_cast<size_t>(m * n));
      opt::GemmS8Options o;
      o.force_scalar = scalar;
      opt::gemm_s8_s32(pa, pw, c.data(), n, o);
      for (size_t i = 0; i < c.size(); ++i)
        ASSERT_EQ(c[i], exact[i]) << name << (scalar ? " scalar" : " simd") << " element " << i;
    }
  }
}

TEST(GemmS8, SmallMPanelRunsAndEmptyKGiveTheExactSums) {
  // Small M (one row chunk) walks the panels in contiguous runs and prefetches the next panel
  // while 2-3 row blocks compute: several panels (n = 200, a tail), 1 and 2 threads, int8 and
  // int4 weights. k = 0 has no k-steps at all (every sum is 0, nothing to prefetch over).
  // m = 200 (34 row blocks) is past the small-M limit: three row chunks per panel, one item at
  // a time; m = 150 is the largest kind of small M (25 blocks in one item).
  for (const Dims& d : {Dims{16, 300, 200}, Dims{13, 64, 136}, Dims{12, 0, 130}, Dims{200, 40, 130},
                        Dims{150, 24, 200}}) {
    const std::string name = "runs" + std::to_string(d.k) + "_" + std::to_string(d.m);
    const Tensor a = rand_i8({d.m, d.k}, name, 0), w = rand_i8({d.k, d.n}, name, 1, -8, 7);
    std::vector<int64_t> order(static_cast<size_t>(d.k));
    for (int64_t t = 0; t < d.k; ++t) order[static_cast<size_t>(t)] = t;
    const std::vector<int64_t> exact = dots(a, w, order);
    std::vector<opt::PackedWeightsS8> packs;
    packs.push_back(opt::PackedWeightsS8::pack(w));
    if (d.k % 8 == 0 && d.n % 8 == 0) {
      Tensor w32(DType::kI32, {d.k, d.n});
      for (int64_t i = 0; i < w32.numel(); ++i) w32.data<int32_t>()[i] = w.data<int8_t>()[i];
      packs.push_back(opt::PackedWeightsS8::pack(ref::npu_convert_weight_to_int4pack(w32)));
    }
    for (const opt::PackedWeightsS8& pw : packs) {
      opt::PackedActivationsS8 pa;
      pa.pack_s8(a.data<int8_t>(), d.m, d.k, d.k, pw.k_padded());
      for (int threads : {1, 2}) {
        std::vector<int32_t> c(static_cast<size_t>(d.m * d.n), -1);
        opt::GemmS8Options o;
        o.threads = threads;
        opt::gemm_s8_s32(pa, pw, c.data(), d.n, o);
        for (size_t i = 0; i < c.size(); ++i)
          ASSERT_EQ(c[i], exact[i]) << name << (pw.int4() ? " int4" : " int8") << " threads "
                                    << threads << " element " << i;
      }
    }
  }
}

// A replicated prologue (GemmS8Prologue::own) whose worker slots hold different activations,
// so that each tile shows which copy it was computed from.
struct OwnCopies {
  std::vector<Tensor> a;  // slot w's rows
  std::vector<opt::PackedActivationsS8> packed;
  std::vector<int> calls;
  int64_t k_padded = 0;
  int64_t bad_rows = -1;  // >= 0: return activations of this many rows instead
};
const opt::PackedActivationsS8* pack_own_copy(void* ctx, int worker) {
  auto& o = *static_cast<OwnCopies*>(ctx);
  const Tensor& a = o.a[static_cast<size_t>(worker)];
  const int64_t m = o.bad_rows >= 0 ? o.bad_rows : a.dim(0);
  o.packed[static_cast<size_t>(worker)].pack_s8(a.data<int8_t>(), m, a.dim(1), a.dim(1),
                                                o.k_padded);
  ++o.calls[static_cast<size_t>(worker)];  // each slot runs on one thread at a time
  return &o.packed[static_cast<size_t>(worker)];
}
struct TilesByWorker {
  std::vector<int32_t> c;
  std::vector<int> worker;  // per element: the S8Tile::worker of its tile
  int64_t n;
  bool wait_for_another = false;
  std::atomic<unsigned> slots_with_tiles{0};
};
void store_tile_and_worker(void* ctx, const opt::S8Tile& t) {
  auto& s = *static_cast<TilesByWorker*>(ctx);
  for (int r = 0; r < t.rows; ++r)
    for (int col = 0; col < t.cols; ++col) {
      const size_t i = static_cast<size_t>((t.row0 + r) * s.n + t.col0 + col);
      s.c[i] = t.acc[r * opt::kGemmS8Nr + col];
      s.worker[i] = t.worker;
    }
  // A slot's first tile holds it back until another slot has stored one (or 2 s have passed):
  // a claim never takes every remaining panel, so the slot that starts later always finds
  // tiles left, however fast the first one would have been alone.
  const unsigned bit = 1u << t.worker;
  if (!s.wait_for_another || (s.slots_with_tiles.fetch_or(bit) & bit)) return;
  for (auto t0 = std::chrono::steady_clock::now();
       (s.slots_with_tiles.load() & ~bit) == 0 &&
       std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2);)
    std::this_thread::yield();
}

TEST(GemmS8, ReplicatedPrologueTilesUseTheirOwnWorkersActivations) {
  // With GemmS8Prologue::own every worker slot quantizes into its own copy and computes its
  // tiles from it, without waiting for the others (the fused linear at small M). Here slot w's
  // copy holds other rows than slot v's: every tile must equal the exact product of the rows of
  // the slot it names, every slot that named a tile must have been prepared exactly once, and
  // no slot may reach max_workers. m = 13 (a partial block), 9 panels, 1-4 threads, max_workers
  // 4 and 2 (a cap below the thread count).
  const Dims d{13, 72, 520};
  const std::string name = "own";
  const Tensor w = rand_i8({d.k, d.n}, name, 100);
  const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
  std::vector<int64_t> order(static_cast<size_t>(d.k));
  for (int64_t t = 0; t < d.k; ++t) order[static_cast<size_t>(t)] = t;
  OwnCopies own;
  std::vector<std::vector<int64_t>> exact;
  for (int s = 0; s < 4; ++s) {
    own.a.push_back(rand_i8({d.m, d.k}, name, static_cast<uint64_t>(s)));
    exact.push_back(dots(own.a.back(), w, order));
  }
  own.packed.resize(4);
  own.k_padded = pw.k_padded();
  opt::PackedActivationsS8 shape;
  shape.reset(d.m, pw.k_padded());
  for (int max_workers : {4, 2})
    for (int threads : {1, 2, 3, 4}) {
      own.calls.assign(4, 0);
      opt::GemmS8Prologue pro;
      pro.ctx = &own;
      pro.own = pack_own_copy;
      pro.max_workers = max_workers;
      opt::GemmS8Options o;
      o.threads = threads;
      o.prologue = &pro;
      TilesByWorker out{std::vector<int32_t>(static_cast<size_t>(d.m * d.n), -1),
                        std::vector<int>(static_cast<size_t>(d.m * d.n), -1), d.n};
      out.wait_for_another = std::min(threads, max_workers) >= 2;
      opt::gemm_s8(shape, pw, store_tile_and_worker, &out, o);
      const std::string what =
          "threads " + std::to_string(threads) + " max_workers " + std::to_string(max_workers);
      std::vector<int> tiles_of(4, 0);
      for (size_t i = 0; i < out.c.size(); ++i) {
        const int s = out.worker[i];
        ASSERT_TRUE(s >= 0 && s < std::min(threads, max_workers)) << what << " element " << i;
        ASSERT_EQ(own.calls[static_cast<size_t>(s)], 1) << what << " slot " << s;
        ASSERT_EQ(out.c[i], exact[static_cast<size_t>(s)][i]) << what << " element " << i;
        ++tiles_of[static_cast<size_t>(s)];
      }
      int slots_used = 0;
      for (int n : tiles_of) slots_used += n > 0;
      if (out.wait_for_another) {
        EXPECT_GE(slots_used, 2) << what;
      }
    }
  // A copy of another shape is a bug in the caller: an error, not a wrong product.
  own.bad_rows = 7;
  own.calls.assign(4, 0);
  opt::GemmS8Prologue pro;
  pro.ctx = &own;
  pro.own = pack_own_copy;
  pro.max_workers = 2;
  opt::GemmS8Options o;
  o.threads = 2;
  o.prologue = &pro;
  TilesByWorker out{std::vector<int32_t>(static_cast<size_t>(d.m * d.n)),
                    std::vector<int>(static_cast<size_t>(d.m * d.n)), d.n};
  EXPECT_THROW(opt::gemm_s8(shape, pw, store_tile_and_worker, &out, o), std::logic_error);
}

TEST(GemmS8, OnePackedActivationsObjectReusedAcrossPacksAndResetsGivesTheExactSums) {
  // pack_s8 and reset share the object's storage and reuse it when it is large enough: a reset
  // to 40 rows, a pack of 7, a reset to 30 (its row sums must fit: pack_s8 once replaced them
  // with an array of its own m while reset's recorded capacity stayed 40, so this reset wrote
  // past 7 rows; `make sanitize` reports it), a smaller pack, and a larger one again.
  opt::PackedActivationsS8 pa;
  const int64_t n = 70;
  int step = 0;
  for (const Dims& d :
       {Dims{40, 64, n}, Dims{7, 37, n}, Dims{30, 64, n}, Dims{3, 64, n}, Dims{25, 101, n}}) {
    const std::string name = "reuse" + std::to_string(step);
    const Tensor a = rand_i8({d.m, d.k}, name, 0), w = rand_i8({d.k, d.n}, name, 1);
    std::vector<int64_t> order(static_cast<size_t>(d.k));
    for (int64_t t = 0; t < d.k; ++t) order[static_cast<size_t>(t)] = t;
    const std::vector<int64_t> exact = dots(a, w, order);
    const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
    if (step == 0 || step == 2) {  // reset + set_row
      pa.reset(d.m, pw.k_padded());
      for (int64_t r = 0; r < d.m; ++r) pa.set_row(r, a.data<int8_t>() + r * d.k, d.k);
    } else {
      pa.pack_s8(a.data<int8_t>(), d.m, d.k, d.k, pw.k_padded());
    }
    std::vector<int32_t> c(static_cast<size_t>(d.m * d.n), -1);
    opt::gemm_s8_s32(pa, pw, c.data(), d.n, opt::GemmS8Options{});
    for (size_t i = 0; i < c.size(); ++i) ASSERT_EQ(c[i], exact[i]) << name << " element " << i;
    ++step;
  }
}

TEST(GemmS8, AShortLastBlockIsPackedDenselyWithAQuadStrideOfFourBytesPerRow) {
  // gemm_s8.h: a block of r rows stores per k-quad its r rows' 4 bytes (quad stride 4r); only
  // the last block can be short. m = 1 (one 1-row block), 8 (6 + 2), 12 (6 + 6); k = 10 pads the
  // last quad with zeros. pack_s8 and reset + set_row give the same bytes.
  const int64_t k = 10, kp = 12;
  for (int64_t m : {1, 8, 12}) {
    const std::string name = "dense" + std::to_string(m);
    const Tensor a = rand_i8({m, k}, name, 0);
    opt::PackedActivationsS8 packed, by_rows;
    packed.pack_s8(a.data<int8_t>(), m, k, k, kp);
    by_rows.reset(m, kp);
    for (int64_t r = 0; r < m; ++r) by_rows.set_row(r, a.data<int8_t>() + r * k, k);
    for (int64_t row = 0; row < m; ++row) {
      const int64_t b = row / opt::kGemmS8Mr, r = row % opt::kGemmS8Mr;
      const int rows = static_cast<int>(std::min<int64_t>(opt::kGemmS8Mr, m - b * opt::kGemmS8Mr));
      ASSERT_EQ(packed.block_rows(b), rows) << name;
      ASSERT_EQ(packed.quad_stride(row), 4 * rows) << name << " row " << row;
      for (int64_t kk = 0; kk < kp; ++kk) {
        const int8_t want = kk < k ? a.data<int8_t>()[row * k + kk] : 0;
        const int64_t at = (kk / 4) * 4 * rows + 4 * r + kk % 4;
        ASSERT_EQ(packed.block(b)[at], want) << name << " row " << row << " k " << kk;
        ASSERT_EQ(by_rows.block(b)[at], want) << name << " set_row, row " << row << " k " << kk;
      }
    }
  }
}

TEST(GemmS8, VnniKernelIsUsedWhenTheCpuHasIt) {
  const auto& f = opt::cpu_features();
  EXPECT_EQ(opt::gemm_s8_kernel(),
            (f.avx512f && f.avx512bw && f.avx512vnni) ? "avx512_vnni" : "scalar");
}

TEST(GemmS8, PackedInt4WeightsEqualTheirInt8Unpacking) {
  for (const Dims& d : {Dims{7, 21, 24}, Dims{6, 64, 136}, Dims{1, 9, 8}}) {
    const std::string name = "w4_" + std::to_string(d.k);
    const Tensor w32 = gen::int_tensor(DType::kI32, {d.k, d.n}, -8, 7, seed(name), 0);
    Tensor w8(DType::kI8, {d.k, d.n});
    for (int64_t i = 0; i < w8.numel(); ++i)
      w8.data<int8_t>()[i] = static_cast<int8_t>(w32.data<int32_t>()[i]);
    const Tensor a = rand_i8({d.m, d.k}, name, 1);
    const opt::PackedWeightsS8 p4 =
        opt::PackedWeightsS8::pack(ref::npu_convert_weight_to_int4pack(w32));
    const opt::PackedWeightsS8 p8 = opt::PackedWeightsS8::pack(w8);
    for (bool scalar : {false, true}) {
      opt::GemmS8Options o;
      o.force_scalar = scalar;
      std::vector<int32_t> c4(static_cast<size_t>(d.m * d.n)), c8 = c4;
      opt::PackedActivationsS8 a4, a8;
      a4.pack_s8(a.data<int8_t>(), d.m, d.k, d.k, p4.k_padded());
      a8.pack_s8(a.data<int8_t>(), d.m, d.k, d.k, p8.k_padded());
      opt::gemm_s8_s32(a4, p4, c4.data(), d.n, o);
      opt::gemm_s8_s32(a8, p8, c8.data(), d.n, o);
      EXPECT_EQ(c4, c8) << name << (scalar ? " scalar" : " simd");
    }
  }
}

// ---- int4 operands --------------------------------------------------------------------------

TEST(QuantMatmul, Int4OperandsEqualUnpackThenInt8) {
  const int64_t m = 5, k = 48, n = 40;
  const Tensor a32 = gen::int_tensor(DType::kI32, {m, k}, -8, 7, seed("i4"), 0);
  const Tensor w32 = gen::int_tensor(DType::kI32, {k, n}, -8, 7, seed("i4"), 1);
  auto to_i8 = [](const Tensor& t) {
    Tensor r(DType::kI8, t.shape());
    for (int64_t i = 0; i < t.numel(); ++i)
      r.data<int8_t>()[i] = static_cast<int8_t>(t.data<int32_t>()[i]);
    return r;
  };
  const Tensor a4 = ref::npu_convert_weight_to_int4pack(a32);
  const Tensor w4 = ref::npu_convert_weight_to_int4pack(w32);
  for (const Combo& c : {combos()[1], combos()[15], combos()[22]}) {
    Inputs in4 = make_inputs(c, a4, w4, m, n, "i4_" + c.name);
    const QuantMatmulConfig cfg = cfg_of(c.out, true, FixpipePrecision::kFp32);
    const QuantMatmulStages r8 =
        ref::npu_quant_matmul(to_i8(a32), to_i8(w32), in4.scale, in4.off(), in4.pt(), in4.b(), cfg);
    const QuantMatmulStages r4 =
        ref::npu_quant_matmul(in4.x1, in4.x2, in4.scale, in4.off(), in4.pt(), in4.b(), cfg);
    expect_same_stages(r8, r4, "ref int4 vs int8 " + c.name);
    expect_same_stages(
        r8,
        opt::npu_quant_matmul(in4.x1, in4.x2, in4.scale, in4.off(), in4.pt(), in4.b(), cfg, true),
        "opt int4 vs ref int8 " + c.name);
  }
}

// ---- variants ---------------------------------------------------------------------------------

TEST(QuantMatmul, OpPluginFp19EqualsPassingNpuTransQuantParamsInt64Scale) {
  const int64_t m = 6, k = 90, n = 33;
  const Tensor x1 = rand_i8({m, k}, "fp19eq", 0), x2 = rand_i8({k, n}, "fp19eq", 1);
  const Tensor s = rand_scale(n, -11, "fp19eq", 2);  // outputs ~ 40: int8 codes rarely clip
  const Tensor o =
      gen::float_tensor(DType::kF32, {n}, gen::FloatDist::grid(-40, 40, -1), seed("fp19eq"), 3);
  const Tensor bias = gen::int_tensor(DType::kI32, {n}, -999, 999, seed("fp19eq"), 4);
  for (DType out : {DType::kF16, DType::kI8})
    for (auto fx : {FixpipePrecision::kFp32, FixpipePrecision::kExact}) {
      const Tensor* off = out == DType::kI8 ? &o : nullptr;
      const Tensor q =
          ref::npu_trans_quant_param(s, off, TransQuantEncoding::kFp19Trunc).quant_param;
      const Tensor via_opplugin =
          ref::npu_quant_matmul(x1, x2, s, off, nullptr, &bias, cfg_of(out, true, fx)).out;
      const Tensor explicit_int64 =
          ref::npu_quant_matmul(x1, x2, q, nullptr, nullptr, &bias, cfg_of(out, false, fx)).out;
      EXPECT_TRUE(same(via_opplugin, explicit_int64)) << dtype_name(out);
      // And without op-plugin, the full fp32 scale gives other numbers on this input.
      EXPECT_FALSE(
          same(via_opplugin,
               ref::npu_quant_matmul(x1, x2, s, off, nullptr, &bias, cfg_of(out, false, fx)).out))
          << dtype_name(out);
    }
}

TEST(QuantMatmul, OpPluginConversionOnlyAppliesWithoutPertokenToFp16AndInt8) {
  const int64_t m = 3, k = 20, n = 16;
  const Tensor x1 = rand_i8({m, k}, "fp19scope", 0), x2 = rand_i8({k, n}, "fp19scope", 1);
  const Tensor s = rand_scale(n, -10, "fp19scope", 2);
  const Tensor pt = rand_scale(m, 0, "fp19scope", 3);
  // bf16 output, and any pertoken call, keep the fp32 scale: the variant cannot matter.
  for (DType out : {DType::kBF16, DType::kF16})
    EXPECT_TRUE(
        same(ref::npu_quant_matmul(x1, x2, s, nullptr, &pt, nullptr, cfg_of(out, true, {})).out,
             ref::npu_quant_matmul(x1, x2, s, nullptr, &pt, nullptr, cfg_of(out, false, {})).out));
  EXPECT_TRUE(same(
      ref::npu_quant_matmul(x1, x2, s, nullptr, nullptr, nullptr, cfg_of(DType::kBF16, true, {}))
          .out,
      ref::npu_quant_matmul(x1, x2, s, nullptr, nullptr, nullptr, cfg_of(DType::kBF16, false, {}))
          .out));
}

const conf::OpDef& op() {
  const conf::OpDef* d = conf::OpRegistry::instance().find("npu_quant_matmul");
  if (!d) throw std::logic_error("npu_quant_matmul is not registered");
  return *d;
}

// Runs a golden case's inputs under the given params.
Tensor run_case(const conf::CaseSpec& c, const conf::Params& p) {
  TensorMap out;
  op().reference(p, c.inputs, out);
  return out.at("out");
}

bool flagged(const conf::CaseSpec& c, const std::string& flag) {
  return std::find(c.flags.begin(), c.flags.end(), flag) != c.flags.end();
}

TEST(QuantMatmul, Fp19SeparatorsReallySeparateTheTwoReadings) {
  int separated = 0;
  for (const conf::CaseSpec& c : op().cases()) {
    if (!flagged(c, "Fp19Truncation") || c.name.find("fp19_truncation") != 0) continue;
    conf::Params t = c.params, f = c.params;
    t["opplugin_fp19"] = "true";
    f["opplugin_fp19"] = "false";
    EXPECT_FALSE(same(run_case(c, t), run_case(c, f))) << c.name;
    ++separated;
  }
  EXPECT_EQ(separated, 4);  // fp16 and int8, each as a true and a false case
}

TEST(QuantMatmul, FixpipeSeparatorsReallySeparateTheTwoReadings) {
  int separated = 0;
  for (const conf::CaseSpec& c : op().cases()) {
    if (!flagged(c, "FixpipeDoubleRounding")) continue;
    conf::Params a = c.params, b = c.params;
    a["fixpipe_precision"] = "fp32";
    b["fixpipe_precision"] = "exact";
    EXPECT_FALSE(same(run_case(c, a), run_case(c, b))) << c.name;
    ++separated;
  }
  EXPECT_EQ(separated, 4);
}

TEST(QuantMatmul, EveryVariantPairIsSeparatedByAGoldenCase) {
  // For each axis, some case of the fixture changes its output when only that param flips.
  for (const char* axis : {"opplugin_fp19", "fixpipe_precision"}) {
    const conf::VariantAxis* ax = nullptr;
    for (const auto& a : op().variants)
      if (a.param == axis) ax = &a;
    ASSERT_NE(ax, nullptr);
    bool found = false;
    for (const conf::CaseSpec& c : op().cases()) {
      if (!c.params.contains(axis)) continue;
      conf::Params a = c.params, b = c.params;
      a[axis] = ax->values[0];
      b[axis] = ax->values[1];
      if (!same(run_case(c, a), run_case(c, b))) found = true;
    }
    EXPECT_TRUE(found) << axis;
  }
}

TEST(QuantMatmul, Int32OverflowVectorsReallyWrap) {
  int n = 0;
  for (const conf::CaseSpec& c : op().cases()) {
    if (!flagged(c, "Int32Overflow")) continue;
    const QuantMatmulStages st =
        ref::npu_quant_matmul(c.inputs.at("x1"), c.inputs.at("x2"), c.inputs.at("scale"), nullptr,
                              nullptr, &c.inputs.at("bias"),
                              cfg_of(parse_dtype(c.params["output_dtype"].get<std::string>()), true,
                                     FixpipePrecision::kFp32));
    EXPECT_EQ(st.int32_overflows, 3) << c.name;
    for (int64_t j = 0; j < 3; ++j) {
      const int64_t exact =
          int64_t{st.acc.data<int32_t>()[j]} + c.inputs.at("bias").data<int32_t>()[j];
      EXPECT_EQ(st.acc_bias->data<int32_t>()[j],
                static_cast<int32_t>(static_cast<uint32_t>(exact)));
      EXPECT_NE(st.acc_bias->data<int32_t>()[j], exact);
    }
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(QuantMatmul, AccBeyond2p24IsRoundedToEvenByTheFp32Conversion) {
  for (const conf::CaseSpec& c : op().cases()) {
    if (!flagged(c, "AccBeyond2p24")) continue;
    TensorMap out;
    op().reference(c.params, c.inputs, out);
    const Tensor& acc = out.at("acc");
    const Tensor& o = out.at("out");
    const std::vector<int64_t> want_acc = {16777217, 16777219, -16777221};
    const std::vector<float> want_out = {16777216.0f, 16777220.0f, -16777220.0f};
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(acc.data<int32_t>()[j], want_acc[static_cast<size_t>(j)]);
      EXPECT_EQ(o.data<float>()[j], want_out[static_cast<size_t>(j)]);
    }
    return;
  }
  FAIL() << "no AccBeyond2p24 case";
}

TEST(QuantMatmul, RequantSaturationMatchesTheHandComputedCodes) {
  const std::vector<int> want = {55, -56, 127, -128, 55, 0, 2, 4, -2, 123, 127, -127};
  int n = 0;
  for (const conf::CaseSpec& c : op().cases()) {
    if (c.name.rfind("requant_saturation", 0) != 0) continue;
    const Tensor o = run_case(c, c.params);
    ASSERT_EQ(o.numel(), 12);
    for (int j = 0; j < 12; ++j)
      EXPECT_EQ(o.data<int8_t>()[j], want[static_cast<size_t>(j)]) << c.name << " " << j;
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(QuantMatmul, GoldenFixtureStaysUnder200KB) {
  const std::string text = conf::fixture_to_text(conf::generate_fixture(op()));
  EXPECT_LT(text.size(), 200u * 1024u);
  EXPECT_GT(text.size(), 10u * 1024u);  // the fixture was generated at all
}

// ---- W8A8_DYNAMIC linear ----------------------------------------------------------------------

TEST(W8A8DynamicLinear, EqualsDynamicQuantThenQuantMatmulOfTheReference) {
  // The sizes go up and down and every other case has no bias (the fused path reuses its
  // packed-activation buffer and its per-column scale and bias buffers from call to call: stale
  // rows, columns or a bias of an earlier call must not leak into the next), and k = 42 is not
  // a multiple of 4 (padded k-quad).
  int index = 0;
  for (DType dt : {DType::kBF16, DType::kF16})
    for (const Dims& d : {Dims{1, 64, 16}, Dims{9, 136, 72}, Dims{17, 40, 200}, Dims{13, 42, 70},
                          Dims{3, 42, 70}, Dims{20, 136, 72}, Dims{197, 20, 70}}) {
      const bool with_bias = index++ % 2 == 0;
      const std::string name = "lin_" + std::to_string(d.m) + std::string(dtype_name(dt));
      const Tensor x = gen::float_tensor(dt, {d.m, d.k}, gen::FloatDist::normal(1), seed(name), 0);
      const Tensor w = rand_i8({d.k, d.n}, name, 1);
      const Tensor ws = dt == DType::kBF16
                            ? gen::float_tensor(DType::kBF16, {d.n},
                                                gen::FloatDist::grid(128, 255, -15), seed(name), 2)
                            : rand_scale(d.n, -8, name, 2);
      const Tensor bias = gen::float_tensor(dt, {d.n}, gen::FloatDist::normal(0), seed(name), 3);
      const DynQuantStages q = ref::npu_dynamic_quant(x, nullptr, nullptr, DynQuantConfig{});
      QuantMatmulConfig cfg;
      cfg.output_dtype = dt;
      const Tensor* b = with_bias ? &bias : nullptr;
      const Tensor want = ref::npu_quant_matmul(q.y, w, ws, nullptr, &q.scale, b, cfg).out;
      const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
      for (int threads : {1, 2, 3})
        for (bool scalar : {false, true}) {
          opt::GemmS8Options o;
          o.threads = threads;
          o.force_scalar = scalar;
          EXPECT_TRUE(same(want, opt::w8a8_dynamic_linear(x, pw, ws, b, o)))
              << name << (with_bias ? " bias" : " no bias");
        }
      EXPECT_TRUE(same(want, opt::w8a8_dynamic_linear(x, pw, ws, b)));
    }
}

TEST(W8A8DynamicLinear, SmallMRowsQuantizedByEachWorkerGiveTheReferenceOnEveryCall) {
  // Up to one block (6 rows) on more than one thread, every GEMM worker quantizes all rows into
  // its own buffer and pertoken copy (kReplicatedQuantRows); 7 and 16 rows share the quant.
  // Two different x of the same shape alternate, on 2-4 threads: a worker that read the shared
  // buffer or the shared pertoken scales (filled by an earlier call), or a copy of an earlier
  // call, would give the other x's numbers. Each call is compared with the reference.
  for (int64_t m : {1, 5, 6, 7, 16}) {
    const std::string name = "lin_own_" + std::to_string(m);
    const int64_t k = 200, n = 300;
    const Tensor w = rand_i8({k, n}, name, 1);
    const Tensor ws =
        gen::float_tensor(DType::kBF16, {n}, gen::FloatDist::grid(128, 255, -15), seed(name), 2);
    const opt::PackedWeightsS8 pw = opt::PackedWeightsS8::pack(w);
    QuantMatmulConfig cfg;
    cfg.output_dtype = DType::kBF16;
    std::vector<Tensor> xs, want;
    for (uint64_t v = 0; v < 2; ++v) {
      xs.push_back(gen::float_tensor(DType::kBF16, {m, k}, gen::FloatDist::normal(v == 0 ? 1 : 6),
                                     seed(name), 10 + v));
      const DynQuantStages q = ref::npu_dynamic_quant(xs.back(), nullptr, nullptr, {});
      want.push_back(ref::npu_quant_matmul(q.y, w, ws, nullptr, &q.scale, nullptr, cfg).out);
    }
    for (int threads : {2, 3, 4, 1, 2})
      for (size_t v = 0; v < 2; ++v) {
        opt::GemmS8Options o;
        o.threads = threads;
        EXPECT_TRUE(same(want[v], opt::w8a8_dynamic_linear(xs[v], pw, ws, nullptr, o)))
            << name << " threads " << threads << " x " << v;
      }
  }
}

// The rows of packed-quant tests: random, all zero (amax 0: m = Inf, every code 0), one NaN
// with a payload, one -Inf, subnormals only, +-max bf16, ties at .5 after scaling (kind 0..6).
void fill_special_row(uint16_t* v, int64_t h, int kind) {
  for (int64_t i = 0; i < h; ++i) {
    if (kind == 1) v[i] = (i % 2) ? 0x8000 : 0x0000;                 // +-0
    if (kind == 4) v[i] = static_cast<uint16_t>(0x0001 + i % 0x7F);  // subnormals
    if (kind == 5) v[i] = (i % 3) ? 0x7F7F : 0xFF7F;                 // +-max
    if (kind == 6) v[i] = static_cast<uint16_t>(0x3F80 + (i % 64));  // [1, 2): .5 ties
  }
  if (kind == 2) v[h / 2] = 0x7FC1;  // a NaN with a payload
  if (kind == 3) v[h - 1] = 0xFF80;  // -Inf
}

TEST(W8A8DynamicLinear, BlockQuantOfOneToSixRowsEqualsTheRowQuantOnSpecialsAndTails) {
  // The fused linear quantizes each block of 1..6 bf16 rows straight into the packed layout
  // (dynamic_quant_block_packed: 32 values per row and step, the codes interleaved in
  // registers). Every row must get the bits of dynamic_quant_row_default + set_row: codes, zero
  // padding up to the padded k, the scale (NaN payload included) and the row sum. Each block
  // mixes the special rows (fill_special_row, rotated so that every row position meets every
  // kind); lengths leave tails of 1..31 values of a group of 32, a partial quad, and padded
  // quads (0, 1 or 9 more), so that the last step stores part of its dwords.
  const std::vector<int64_t> lengths = {1, 3, 4, 15, 16, 17, 31, 32, 33, 42, 64, 95, 130, 4095};
  int checked = 0;
  for (int rows = 1; rows <= 6; ++rows)
    for (int64_t h : lengths)
      for (int pad : {0, 4, 36}) {
        const std::string name =
            "blockq_" + std::to_string(rows) + "_" + std::to_string(h) + "_" + std::to_string(pad);
        Tensor x =
            gen::float_tensor(DType::kBF16, {rows, h}, gen::FloatDist::normal(2), seed(name), 0);
        uint16_t* v = x.data<uint16_t>();
        for (int r = 0; r < rows; ++r) fill_special_row(v + r * h, h, (r + pad + h) % 7);
        const int64_t hp = (h + 3) / 4 * 4 + pad;
        opt::PackedActivationsS8 want, got;
        want.reset(rows, hp);
        got.reset(rows, hp);
        float want_scale[6], got_scale[6];
        int32_t got_sum[6];
        std::vector<int8_t> dirty(static_cast<size_t>(hp), 0x55);
        for (int r = 0; r < rows; ++r) got.set_row(r, dirty.data(), hp);  // stale bytes
        if (!opt::dynamic_quant_block_packed(v, h, rows, false, h, hp, got.row_codes(0), got_scale,
                                             got_sum))
          continue;  // no AVX-512: the linear quantizes row by row
        std::vector<float> xf(static_cast<size_t>(h));
        std::vector<int8_t> codes(static_cast<size_t>(h));
        for (int r = 0; r < rows; ++r) {
          opt::dynamic_quant_row_default(v + r * h, false, h, xf.data(), codes.data(),
                                         &want_scale[r]);
          want.set_row(r, codes.data(), h);
        }
        ++checked;
        for (int r = 0; r < rows; ++r) {
          EXPECT_EQ(num::f32_bits(want_scale[r]), num::f32_bits(got_scale[r]))
              << name << " row " << r;
          EXPECT_EQ(want.row_sums()[r], got_sum[r]) << name << " row " << r;
        }
        for (int64_t byte = 0; byte < rows * hp; ++byte)
          ASSERT_EQ(want.block(0)[byte], got.block(0)[byte])
              << name << " byte " << byte << " (row " << byte % (4 * rows) / 4 << ", k "
              << byte / (4 * rows) * 4 + byte % 4 << ")";
      }
  const auto& f = opt::cpu_features();
  if (f.avx512f && f.avx512bw) {
    EXPECT_EQ(checked, 6 * static_cast<int>(lengths.size()) * 3);
  }
}

TEST(W8A8DynamicLinear, BlockQuantRejectsRowCountsOutsideOneToSix) {
  const uint16_t x[8] = {};
  int8_t dst[64];
  float scale[8];
  int32_t sum[8];
  for (int rows : {0, 7, -1})
    EXPECT_THROW(opt::dynamic_quant_block_packed(x, 1, rows, false, 1, 4, dst, scale, sum),
                 std::invalid_argument)
        << rows;
}

// ---- input validation ---------------------------------------------------------------------

TEST(QuantMatmul, BadInputsThrowInvalidArgumentNamingTheOp) {
  const Tensor x1 = rand_i8({2, 8}, "bad", 0), x2 = rand_i8({8, 8}, "bad", 1);
  const Tensor s = rand_scale(8, -8, "bad", 2), pt = rand_scale(2, 0, "bad", 3);
  const Tensor q =
      ref::npu_trans_quant_param(s, nullptr, TransQuantEncoding::kFp19Trunc).quant_param;
  const Tensor fbias = gen::float_tensor(DType::kF32, {8}, gen::FloatDist::normal(0), 1, 1);
  auto throws = [&](const std::function<void()>& f, const char* what) {
    try {
      f();
      ADD_FAILURE() << "no exception: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("npu_quant_matmul"), std::string::npos) << e.what();
    }
  };
  const QuantMatmulConfig f16 = cfg_of(DType::kF16, true, FixpipePrecision::kFp32);
  const QuantMatmulConfig i8 = cfg_of(DType::kI8, true, FixpipePrecision::kFp32);
  throws(
      [&] {
        ref::npu_quant_matmul(x1, rand_i8({7, 8}, "bad", 4), s, nullptr, nullptr, nullptr, f16);
      },
      "k mismatch");
  throws([&] { ref::npu_quant_matmul(x1, x2, q, nullptr, &pt, nullptr, f16); }, "pertoken + int64");
  throws([&] { ref::npu_quant_matmul(x1, x2, s, &s, nullptr, nullptr, f16); }, "offset + fp16");
  throws([&] { ref::npu_quant_matmul(x1, x2, q, &s, nullptr, nullptr, i8); }, "offset + int64");
  throws([&] { ref::npu_quant_matmul(x1, x2, s, nullptr, nullptr, &fbias, f16); },
         "float bias on the fixpipe path");
  throws([&] { ref::npu_quant_matmul(x1, x2, s, nullptr, nullptr, &fbias, i8); },
         "float bias + int8");
  throws(
      [&] {
        opt::npu_quant_matmul(x1, x2, rand_scale(3, 0, "bad", 5), nullptr, nullptr, nullptr, f16);
      },
      "scale shape");
  throws(
      [&] {
        ref::npu_quant_matmul(
            x1,
            ref::npu_convert_weight_to_int4pack(gen::int_tensor(DType::kI32, {8, 8}, -8, 7, 1, 2)),
            s, nullptr, nullptr, nullptr, f16);
      },
      "int8 with int4");
}

}  // namespace
}  // namespace qconf
