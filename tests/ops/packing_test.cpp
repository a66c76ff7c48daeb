// Properties of the int4/int8 packings of qconf/ops/packing.h (reference and optimized).
#include "qconf/ops/packing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <utility>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/int4pack.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using ::testing::HasSubstr;

Tensor ints(DType dt, const Shape& s, int64_t lo, int64_t hi, const std::string& name) {
  return gen::int_tensor(dt, s, lo, hi, rng::seed_from_string("packing_test/" + name), 0);
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

uint32_t word(const Tensor& t, int64_t i) { return static_cast<uint32_t>(t.data<int32_t>()[i]); }

Tensor as_int32(const Tensor& t) {
  Tensor o(DType::kI32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) o.data<int32_t>()[i] = static_cast<int32_t>(t.int_at(i));
  return o;
}

// ---- b. vllm_ascend_pack_int4_to_int32 ----------------------------------------------------------

TEST(VllmAscendPack, OptimizedIsBitExactToReferenceOnRandomShapes) {
  for (Shape s : std::vector<Shape>{{8}, {1, 8}, {3, 24}, {5, 200}, {2, 3, 136}, {33, 1032}}) {
    for (DType dt : {DType::kI8, DType::kI32}) {
      const Tensor w = dt == DType::kI8
                           ? ints(dt, s, -128, 127, "vllm" + shape_str(s))
                           : ints(dt, s, INT32_MIN, INT32_MAX, "vllm32" + shape_str(s));
      EXPECT_TRUE(
          ref::vllm_ascend_pack_int4_to_int32(w).bit_equal(opt::vllm_ascend_pack_int4_to_int32(w)))
          << dtype_name(dt) << shape_str(s);
    }
  }
}

TEST(VllmAscendPack, InRangeWordIsTheNpuWordXor0x88888888) {
  // Offset binary u = v + 8 is two's complement with the top bit of each nibble flipped.
  const Tensor w = ints(DType::kI32, {7, 64}, -8, 7, "xor88");
  const Tensor a = opt::vllm_ascend_pack_int4_to_int32(w);
  const Tensor b = ref::npu_convert_weight_to_int4pack(w);
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(word(a, i), word(b, i) ^ 0x88888888u) << i;
}

TEST(VllmAscendPack, OutOfRangeValuesPackAsTheirClampedValues) {
  const Tensor w = ints(DType::kI8, {4, 48}, -128, 127, "clamp");
  std::vector<int8_t> c(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < w.numel(); ++i)
    c[static_cast<size_t>(i)] = static_cast<int8_t>(std::clamp<int>(w.data<int8_t>()[i], -8, 7));
  EXPECT_TRUE(opt::vllm_ascend_pack_int4_to_int32(w).bit_equal(
      opt::vllm_ascend_pack_int4_to_int32(Tensor::from<int8_t>({4, 48}, c))));
}

TEST(VllmAscendPack, LiteralWords) {
  std::vector<int8_t> v;
  for (int i = -8; i < 8; ++i) v.push_back(static_cast<int8_t>(i));
  const Tensor p = ref::vllm_ascend_pack_int4_to_int32(Tensor::from<int8_t>({1, 16}, v));
  EXPECT_EQ(word(p, 0), 0x76543210u);
  EXPECT_EQ(word(p, 1), 0xfedcba98u);
  EXPECT_EQ(word(opt::vllm_ascend_pack_int4_to_int32(Tensor(DType::kI8, {1, 8})), 0), 0x88888888u);
}

TEST(VllmAscendPack, RejectsBadInputsWithClearMessages) {
  EXPECT_THAT(error_of([] {
                opt::vllm_ascend_pack_int4_to_int32(Tensor(DType::kI8, {2, 12}));
              }),
              HasSubstr("multiple of 8"));
  EXPECT_THAT(error_of([] { ref::vllm_ascend_pack_int4_to_int32(Tensor(DType::kF32, {8})); }),
              HasSubstr("vllm_ascend_pack_int4_to_int32: weight must be int8 or int32"));
}

// ---- c. compressed-tensors ----------------------------------------------------------------------

TEST(CtPack, UnpackOfPackIsIdentityInRangeForEveryWidthDimAndShape) {
  for (int bits : {1, 2, 4, 8})
    for (int dim : {0, 1})
      for (Shape s : std::vector<Shape>{{1, 1}, {3, 37}, {33, 9}, {8, 64}, {5, 203}}) {
        const int64_t lo = -(int64_t{1} << (bits - 1)), hi = -lo - 1;
        const Tensor v = ints(DType::kI8, s, lo, hi, "rt" + std::to_string(bits) + shape_str(s));
        const CtShape cs{s[0], s[1]};
        const Tensor p = opt::ct_pack_to_int32(v, bits, dim);
        EXPECT_TRUE(opt::ct_unpack_from_int32(p, bits, cs, dim).bit_equal(v))
            << bits << " bits, dim " << dim << shape_str(s);
        EXPECT_TRUE(ref::ct_unpack_from_int32(p, bits, cs, dim).bit_equal(v));
      }
}

TEST(CtPack, PaddingFieldsAreZeroAndUnpackToMinusOffset) {
  for (int bits : {2, 4, 8})
    for (int dim : {0, 1}) {
      const int64_t pf = 32 / bits;
      const Shape s = dim == 1 ? Shape{3, 2 * pf + 3} : Shape{2 * pf + 3, 3};
      const Tensor v = ints(DType::kI8, s, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, "pad");
      const Tensor p = opt::ct_pack_to_int32(v, bits, dim);
      const Tensor f = ref::ct_unpack_fields(p, bits, dim);
      // The unpacked length along the packed dim is 3 words; elements 2pf+3 .. 3pf-1 are padding.
      for (int64_t o = 0; o < 3; ++o)
        for (int64_t i = 2 * pf + 3; i < 3 * pf; ++i) {
          const int64_t flat = dim == 1 ? o * 3 * pf + i : i * 3 + o;
          EXPECT_EQ(f.data<uint8_t>()[flat], 0) << bits << " " << dim << " " << o << " " << i;
        }
      const Tensor full = opt::ct_unpack_from_int32(
          p, bits, dim == 1 ? CtShape{3, 3 * pf} : CtShape{3 * pf, 3}, dim);
      EXPECT_EQ(full.data<int8_t>()[dim == 1 ? 3 * pf - 1 : (3 * pf - 1) * 3], -(1 << (bits - 1)));
    }
}

TEST(CtPack, OptimizedPackIsBitExactToReferenceIncludingOutOfRangeCarries) {
  for (int bits : {1, 2, 4, 8})
    for (int dim : {0, 1})
      for (Shape s : std::vector<Shape>{{1, 8}, {3, 37}, {33, 9}, {17, 1032}, {64, 130}}) {
        const Tensor v =
            ints(DType::kI8, s, -128, 127, "full" + std::to_string(bits) + shape_str(s));
        EXPECT_TRUE(
            ref::ct_pack_to_int32(v, bits, dim).bit_equal(opt::ct_pack_to_int32(v, bits, dim)))
            << bits << " bits, dim " << dim << shape_str(s);
      }
}

TEST(CtPack, OptimizedUnpackIsBitExactToReferenceWithCrops) {
  for (int bits : {1, 2, 4, 8})
    for (int dim : {0, 1})
      for (Shape s : std::vector<Shape>{{1, 1}, {3, 5}, {9, 33}, {16, 130}}) {
        const Tensor p = ints(DType::kI32, s, INT32_MIN, INT32_MAX,
                              "unpack" + std::to_string(bits) + shape_str(s));
        const int64_t pf = 32 / bits, len = (dim == 1 ? s[1] : s[0]) * pf;
        for (int64_t crop : {len, len - 1, len - pf + 1, std::max<int64_t>(0, len - pf - 3)}) {
          const CtShape cs = dim == 1 ? CtShape{s[0], crop} : CtShape{crop, s[1]};
          EXPECT_TRUE(ref::ct_unpack_from_int32(p, bits, cs, dim)
                          .bit_equal(opt::ct_unpack_from_int32(p, bits, cs, dim)))
              << bits << " bits, dim " << dim << shape_str(s) << " crop " << crop;
        }
      }
}

TEST(CtPack, VllmAscendUnitTestLiterals) {
  // tests/ut/quantization/methods/a2/test_w4a16.py
  const Tensor w = Tensor::from<int32_t>({1, 1}, std::vector<int32_t>{0x76543210});
  const std::vector<int8_t> want = {-8, -7, -6, -5, -4, -3};
  for (auto f : {&ref::ct_unpack_from_int32, &opt::ct_unpack_from_int32}) {
    const Tensor a = f(w, 4, {1, 6}, 1);
    EXPECT_EQ(a.shape(), (Shape{1, 6}));
    EXPECT_EQ(a.to_vector<int8_t>(), want);
    const Tensor b = f(w, 4, {6, 1}, 0);
    EXPECT_EQ(b.shape(), (Shape{6, 1}));
    EXPECT_EQ(b.to_vector<int8_t>(), want);
  }
  // The shape-only tests: [[305419896, -1420531520]] cropped to [1, 8] drops the second word.
  const Tensor two = Tensor::from<int32_t>({1, 2}, std::vector<int32_t>{305419896, -1420531520});
  EXPECT_EQ(opt::ct_unpack_from_int32(two, 4, {1, 8}, 1).to_vector<int8_t>(),
            (std::vector<int8_t>{0, -1, -2, -3, -4, -5, -6, -7}));
}

TEST(CtPack, UpstreamDocstringAndCarryLiterals) {
  // pack_to_int32 docstring: num_bits 8, [1, 2] -> 33409.
  EXPECT_EQ(
      word(ref::ct_pack_to_int32(Tensor::from<int8_t>({1, 2}, std::vector<int8_t>{1, 2}), 8, 1), 0),
      33409u);
  // 8 at field 0: u = 16 carries into field 1; 8 at field 7: the carry leaves the word.
  const Tensor v = Tensor::from<int8_t>(
      {2, 8}, std::vector<int8_t>{8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8});
  for (auto f : {&ref::ct_pack_to_int32, &opt::ct_pack_to_int32}) {
    const Tensor p = f(v, 4, 1);
    EXPECT_EQ(word(p, 0), 0x88888890u);
    EXPECT_EQ(word(p, 1), 0x08888888u);
  }
}

TEST(CtPack, RejectsBadArgumentsWithClearMessages) {
  const Tensor v(DType::kI8, {2, 8});
  EXPECT_THAT(error_of([&] { opt::ct_pack_to_int32(v, 3, 1); }), HasSubstr("num_bits must be"));
  EXPECT_THAT(error_of([&] { opt::ct_pack_to_int32(v, 4, 2); }),
              HasSubstr("packed_dim must be 0 or 1"));
  EXPECT_THAT(error_of([&] {
                opt::ct_pack_to_int32(Tensor(DType::kI32, {2, 8}), 4, 1);
              }),
              HasSubstr("value must be int8"));
  const Tensor p(DType::kI32, {2, 1});
  EXPECT_THAT(error_of([&] {
                opt::ct_unpack_from_int32(p, 4, {2, 9}, 1);
              }),
              HasSubstr("cols must be in [0, 8]"));
  EXPECT_THAT(error_of([&] {
                ref::ct_unpack_from_int32(p, 4, {3, 8}, 1);
              }),
              HasSubstr("rows must equal the packed rows 2"));
  EXPECT_THAT(error_of([] { ct_shape_from_tensor(Tensor(DType::kF32, {2}), "x"); }),
              HasSubstr("weight_shape must be int32 or int64 [2]"));
}

// ---- d. W4A8 ------------------------------------------------------------------------------------

// ModelSlim checkpoint bytes from int4 values w [E, N, K] with output 2j in the low nibble.
Tensor modelslim_bytes(const Tensor& w) {
  const int64_t e = w.dim(0), n = w.dim(1), k = w.dim(2);
  Tensor b(DType::kI8, {e, n / 2, k});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t j = 0; j < n / 2; ++j)
      for (int64_t c = 0; c < k; ++c)
        b.data<int8_t>()[(x * (n / 2) + j) * k + c] =
            static_cast<int8_t>(((w.data<int8_t>()[(x * n + 2 * j + 1) * k + c] & 0xF) << 4) |
                                (w.data<int8_t>()[(x * n + 2 * j) * k + c] & 0xF));
  return b;
}

TEST(W4A8, ModelslimBytesWithLowFirstNibblesGiveTheLlmCompressorWords) {
  for (Shape s : std::vector<Shape>{{1, 8, 3}, {2, 16, 13}, {3, 136, 70}}) {
    const Tensor w = ints(DType::kI8, s, -8, 7, "mirror" + shape_str(s));
    EXPECT_TRUE(
        opt::w4a8_modelslim_pack(modelslim_bytes(w)).bit_equal(opt::w4a8_llmcompressor_pack(w)))
        << shape_str(s);
  }
}

TEST(W4A8, LlmCompressorEqualsNpuInt4packOfTheTransposeForEveryInt8) {
  // Both keep the low nibble of out-of-range values and put the even element low.
  const Tensor w = ints(DType::kI8, {3, 24, 40}, -128, 127, "llmc_npu");
  EXPECT_TRUE(opt::w4a8_llmcompressor_pack(w).bit_equal(
      ref::npu_convert_weight_to_int4pack(as_int32(ref::transpose_last_two(w)))));
}

TEST(W4A8, OptimizedIsBitExactToReferenceOnEdgeTileShapes) {
  // 16x16 tiles, pairs of tiles (32 columns), a single tile left after pairs (48 columns),
  // scalar edges in both dims.
  for (Shape s : std::vector<Shape>{{1, 4, 1},
                                    {1, 4, 8},
                                    {2, 8, 13},
                                    {1, 68, 70},
                                    {3, 132, 129},
                                    {2, 64, 64},
                                    {1, 48, 48},
                                    {2, 16, 16},
                                    {1, 80, 112},
                                    // 64x64 blocks (AVX-512) with row and column edges
                                    {1, 200, 136},
                                    {2, 128, 192},
                                    {1, 64, 65},
                                    {1, 132, 64}}) {
    const Tensor b = ints(DType::kI8, s, -128, 127, "ms" + shape_str(s));
    EXPECT_TRUE(ref::w4a8_modelslim_pack(b).bit_equal(opt::w4a8_modelslim_pack(b))) << shape_str(s);
    const Shape s2{s[0], 2 * s[1], s[2]};
    const Tensor w = ints(DType::kI8, s2, -128, 127, "lc" + shape_str(s2));
    EXPECT_TRUE(ref::w4a8_llmcompressor_pack(w).bit_equal(opt::w4a8_llmcompressor_pack(w)))
        << shape_str(s2);
  }
}

TEST(W4A8, LargeThreadedTransposesMatchReference) {
  // Several parallel_for chunks (64-row bands of 4096-byte rows).
  const Tensor b = ints(DType::kI8, {2, 1024, 1000}, -128, 127, "ms_large");
  EXPECT_TRUE(ref::w4a8_modelslim_pack(b).bit_equal(opt::w4a8_modelslim_pack(b)));
  const Tensor w = ints(DType::kI8, {2, 1024, 1000}, -128, 127, "lc_large");
  EXPECT_TRUE(ref::w4a8_llmcompressor_pack(w).bit_equal(opt::w4a8_llmcompressor_pack(w)));
}

TEST(W4A8, RejectsBadInputsWithClearMessages) {
  EXPECT_THAT(error_of([] {
                opt::w4a8_modelslim_pack(Tensor(DType::kI8, {1, 6, 8}));
              }),
              HasSubstr("divisible by 4"));
  EXPECT_THAT(error_of([] {
                opt::w4a8_llmcompressor_pack(Tensor(DType::kI8, {1, 12, 8}));
              }),
              HasSubstr("multiple of 8"));
  EXPECT_THAT(error_of([] {
                ref::w4a8_llmcompressor_pack(Tensor(DType::kI8, {12, 8}));
              }),
              HasSubstr("must be 3-D"));
}

// ---- d. npu_quantize quint4x2 -------------------------------------------------------------------

Tensor f32(Shape s, const std::vector<float>& v) {
  std::vector<uint32_t> b;
  for (float f : v) b.push_back(std::bit_cast<uint32_t>(f));
  return Tensor::from<uint32_t>(DType::kF32, std::move(s), b);
}

TEST(NpuQuantizeQuint4x2, LegacyW4A8PathOnInRangeIntegersEqualsNpuInt4pack) {
  const Tensor w = ints(DType::kI32, {2, 5, 24}, -8, 7, "legacy");
  Tensor x(DType::kF32, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i)
    x.data<uint32_t>()[i] = std::bit_cast<uint32_t>(static_cast<float>(w.data<int32_t>()[i]));
  const Tensor one = f32({1}, {1.0f});
  EXPECT_TRUE(opt::npu_quantize_quint4x2(x, one, nullptr, {})
                  .bit_equal(ref::npu_convert_weight_to_int4pack(w)));
}

TEST(NpuQuantizeQuint4x2, OptimizedIsBitExactToReferenceOnRandomInputs) {
  struct Cfg {
    DType dt;
    Shape shape;
    int axis;
    bool per_channel, offset;
    Int4Overflow ov;
  };
  const std::vector<Cfg> cfgs = {
      {DType::kF32, {3, 40}, -1, true, true, Int4Overflow::kSaturate},
      {DType::kF32, {2, 7, 1032}, -1, false, true, Int4Overflow::kSaturate},
      {DType::kF32, {9, 136}, -2, true, true, Int4Overflow::kSaturate},
      {DType::kF32, {5, 2056}, -1, true, false, Int4Overflow::kSaturate},
      {DType::kF16, {4, 72}, -1, true, true, Int4Overflow::kSaturate},
      {DType::kBF16, {6, 48}, -2, true, false, Int4Overflow::kSaturate},
      {DType::kF32, {3, 64}, -1, true, true, Int4Overflow::kWrap},
  };
  for (const Cfg& c : cfgs) {
    const std::string id = std::string(dtype_name(c.dt)) + shape_str(c.shape);
    const uint64_t seed = rng::seed_from_string("npu_quantize/" + id);
    const Tensor x = gen::float_tensor(
        c.dt, c.shape, gen::FloatDist::normal(c.ov == Int4Overflow::kWrap ? 5 : 2), seed, 0);
    const int64_t n = c.per_channel ? c.shape[c.shape.size() - (c.axis == -1 ? 1 : 2)] : 1;
    const Tensor s = gen::float_tensor(c.dt, {n}, gen::FloatDist::normal(0), seed, 1);
    const Tensor o = gen::float_tensor(c.dt, {n}, gen::FloatDist::normal(-1), seed, 2);
    const NpuQuantizeArgs a{c.axis, c.ov};
    EXPECT_TRUE(ref::npu_quantize_quint4x2(x, s, c.offset ? &o : nullptr, a)
                    .bit_equal(opt::npu_quantize_quint4x2(x, s, c.offset ? &o : nullptr, a)))
        << id;
  }
}

TEST(NpuQuantizeQuint4x2, KernelRoundsTheProductBeforeAddingTheOffset) {
  // x = 1025, s = 1 + 2^-14: x*s is an fp32 midpoint (rounds down to even); o = 3.5 - x*s.
  const double s = 1.0 + std::ldexp(1.0, -14), o = 3.5 - 1025.0 * s;
  const Tensor x = f32({1, 8}, std::vector<float>(8, 1025.0f));
  const Tensor sv = f32({1}, {static_cast<float>(s)}), ov = f32({1}, {static_cast<float>(o)});
  const Tensor t = ref::npu_quantize_scaled(x, sv, &ov, -1);
  EXPECT_EQ(std::bit_cast<float>(t.data<uint32_t>()[0]), 3.5f - std::ldexp(1.0f, -14));
  EXPECT_EQ(
      std::bit_cast<float>(ref::npu_quantize_scaled(x, sv, &ov, -1, true).data<uint32_t>()[0]),
      3.5f);  // the FMA reading sees the tie
  EXPECT_EQ(word(opt::npu_quantize_quint4x2(x, sv, &ov, {}), 0), 0x33333333u);
}

TEST(NpuQuantizeQuint4x2, OracleAcceptsBothNeighboursOfEveryTieAndNothingElse) {
  const conf::OpDef* d = conf::OpRegistry::instance().find("npu_quantize_quint4x2");
  ASSERT_NE(d, nullptr);
  TensorMap in, out;
  in["x"] = f32({1, 8}, {0.5f, 1.5f, 2.5f, -0.5f, 7.5f, -8.5f, 1.25f, 3.0f});
  in["scales"] = f32({1}, {1.0f});
  d->reference(conf::Params::object(), in, out);
  const auto checks = d->oracle(conf::Params::object(), in, out);
  const conf::Check& c = checks.at("int4_values");
  ASSERT_EQ(c.mode, conf::CheckMode::kExactTies);
  // 1.5 rounds to 2 either way; 7.5 and -8.5 saturate to one code; 1.25 and 3 are no ties.
  EXPECT_EQ(c.accept.index, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(c.accept.values.to_vector<int8_t>(), (std::vector<int8_t>{0, 1, 2, 3, -1, 0}));
  EXPECT_EQ(checks.at("packed").accept.offsets, (std::vector<int64_t>{0, 8}));  // 2^3 words
}

TEST(NpuQuantizeQuint4x2, NaNGivesZeroAndInfinitiesSaturateInBothImplementations) {
  const float inf = std::numeric_limits<float>::infinity();
  // 16 values so that the SIMD path (8 or 16 lanes) and the scalar tail both see specials.
  std::vector<float> xv = {
      std::nanf(""), inf,           -inf, 3, -3, std::nanf(""), 0, 1, inf, -inf, 1e38f,
      -1e38f,        std::nanf(""), 2,    5, -5};
  const Tensor x = f32({1, 16}, xv);
  const Tensor s = f32({16}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 2, 10, 10, 1, 1, 1, 1});
  for (auto f : {&ref::npu_quantize_quint4x2, &opt::npu_quantize_quint4x2}) {
    const Tensor p = f(x, s, nullptr, {});
    EXPECT_EQ(word(p, 0), 0x100d3870u);  // 0, 7, -8, 3, -3, 0, 0, 1
    EXPECT_EQ(word(p, 1), 0xb5208780u);  // Inf*0 = NaN -> 0, -Inf -> -8, 7, -8, 0, 2, 5, -5
  }
}

TEST(NpuQuantizeQuint4x2, RejectsBadArgumentsWithClearMessages) {
  const Tensor one = f32({1}, {1.0f});
  EXPECT_THAT(error_of([&] {
                opt::npu_quantize_quint4x2(f32({1, 4}, {1, 2, 3, 4}), one, nullptr, {});
              }),
              HasSubstr("multiple of 8"));
  EXPECT_THAT(error_of([&] {
                opt::npu_quantize_quint4x2(f32({2, 8}, std::vector<float>(16, 1)),
                                           f32({3}, {1, 1, 1}), nullptr, {});
              }),
              HasSubstr("scales must be 1-D of length 1 or 8"));
  const Tensor big = f32({1, 8}, {3000, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_THAT(error_of([&] {
                opt::npu_quantize_quint4x2(big, one, nullptr, {-1, Int4Overflow::kWrap});
              }),
              HasSubstr("not defined beyond +-2048"));
}

// ---- f. w4a16_ct_repack_chain -------------------------------------------------------------------

TEST(W4A16Chain, EqualsANibbleTransposeWithTheTopBitFlipped) {
  const Tensor w = ints(DType::kI32, {2, 24, 5}, INT32_MIN, INT32_MAX, "chain_xor");
  const Tensor out = opt::w4a16_ct_repack_chain(w);
  auto nib = [](uint32_t x, int64_t i) { return (x >> (4 * i)) & 0xF; };
  for (int64_t e = 0; e < 2; ++e)
    for (int64_t k = 0; k < 40; ++k)
      for (int64_t n = 0; n < 24; ++n)
        ASSERT_EQ(nib(word(out, (e * 40 + k) * 3 + n / 8), n % 8),
                  nib(word(w, (e * 24 + n) * 5 + k / 8), k % 8) ^ 8u)
            << e << " " << k << " " << n;
}

TEST(W4A16Chain, CompressedTensorsPackedWeightsComeOutAsNpuInt4packOfTheTranspose) {
  // pack with compressed-tensors along K, run the chain: the NPU layout of w^T.
  const Tensor w = ints(DType::kI8, {3, 16, 24}, -8, 7, "chain_ct");
  Tensor packed(DType::kI32, {3, 16, 3});
  for (int64_t e = 0; e < 3; ++e) {
    const Tensor one = Tensor::from<int8_t>(
        {16, 24},
        std::vector<int8_t>(w.data<int8_t>() + e * 384, w.data<int8_t>() + (e + 1) * 384));
    const Tensor p = opt::ct_pack_to_int32(one, 4, 1);
    std::copy(p.data<int32_t>(), p.data<int32_t>() + 48, packed.data<int32_t>() + e * 48);
  }
  EXPECT_TRUE(opt::w4a16_ct_repack_chain(packed).bit_equal(
      ref::npu_convert_weight_to_int4pack(as_int32(ref::transpose_last_two(w)))));
}

TEST(W4A16Chain, OptimizedIsBitExactToReferenceOnRandomShapes) {
  for (Shape s : std::vector<Shape>{{1, 8, 1},
                                    {2, 16, 3},
                                    {3, 24, 5},
                                    {1, 72, 2},
                                    {2, 136, 9},
                                    {1, 520, 66},
                                    {1, 32, 12},
                                    {2, 48, 4},
                                    {1, 264, 24},
                                    // 128-row x 64-byte blocks (AVX-512) with edges
                                    {2, 256, 16},
                                    {1, 384, 40},
                                    {1, 136, 17},
                                    // a band of several 128-row groups; 48-byte input rows
                                    {1, 1152, 12},
                                    {1, 640, 33}}) {
    const Tensor w = ints(DType::kI32, s, INT32_MIN, INT32_MAX, "chain" + shape_str(s));
    EXPECT_TRUE(ref::w4a16_ct_repack_chain(w).bit_equal(opt::w4a16_ct_repack_chain(w)))
        << shape_str(s);
  }
}

// n elements of v starting `skew` bytes past a 64-byte boundary (v gets 128 bytes of slack).
template <class T>
T* skewed(std::vector<T>& v, size_t n, int skew) {
  v.assign(n + 128 / sizeof(T), T{0});
  const auto base = (reinterpret_cast<uintptr_t>(v.data()) + 63) / 64 * 64;
  return reinterpret_cast<T*>(base + static_cast<uintptr_t>(skew));
}

TEST(PackingLarge, OutputsOf16MiBAndMoreUseStreamingStoresAndStayExact) {
  // From 16 MiB of output the transposing packers write whole lines with streaming stores when
  // the output starts on a 64-byte boundary (skew 0), and ordinary stores otherwise (skew 16,
  // where a std::vector of this size starts); the reference is too slow at this size, so the
  // check is the defining index formula.
  for (int skew : {0, 16}) {
    const int64_t a = 4096, b = 4096;
    const Tensor v = ints(DType::kI8, {1, a, b}, -128, 127, "stream_i8");
    const uint8_t* in = reinterpret_cast<const uint8_t*>(v.data<int8_t>());
    std::vector<int32_t> out_buf;
    int32_t* out = skewed(out_buf, static_cast<size_t>(a * b / 4), skew);
    opt::w4a8_modelslim_pack(v.data<int8_t>(), 1, a, b, out, 2);
    const auto* o = reinterpret_cast<const uint8_t*>(out);
    int64_t bad = 0;
    for (int64_t r = 0; r < a; ++r)
      for (int64_t c = 0; c < b; ++c) bad += o[c * a + r] != in[r * b + c];
    EXPECT_EQ(bad, 0) << "modelslim skew " << skew;
    // LLM-Compressor: n = 2a int4 rows, k = b/2 -> output [k, a] bytes (8 MiB: not streamed)
    // and n = 2a, k = b -> 16 MiB (streamed).
    for (int64_t k : {b / 2, b}) {
      const Tensor w = ints(DType::kI8, {1, 2 * a, k}, -128, 127, "stream_lc" + std::to_string(k));
      const uint8_t* wi = reinterpret_cast<const uint8_t*>(w.data<int8_t>());
      std::vector<int32_t> lo_buf;
      int32_t* lo = skewed(lo_buf, static_cast<size_t>(a * k / 4), skew);
      opt::w4a8_llmcompressor_pack(w.data<int8_t>(), 1, 2 * a, k, lo, 2);
      const auto* l = reinterpret_cast<const uint8_t*>(lo);
      bad = 0;
      for (int64_t j = 0; j < a; ++j)
        for (int64_t c = 0; c < k; ++c)
          bad += l[c * a + j] !=
                 static_cast<uint8_t>((wi[(2 * j + 1) * k + c] << 4) | (wi[2 * j * k + c] & 0xF));
      EXPECT_EQ(bad, 0) << "llmcompressor k=" << k << " skew " << skew;
    }
    // W4A16 chain: input [n, kw] words, output [8kw, n/8] words; out nibble (k, n) = in nibble
    // (n, k) ^ 8.
    const int64_t n = 4096, kw = 1024;
    const Tensor p = ints(DType::kI32, {1, n, kw}, INT32_MIN, INT32_MAX, "stream_chain");
    std::vector<int32_t> co_buf;
    int32_t* co = skewed(co_buf, static_cast<size_t>(n * kw), skew);
    opt::w4a16_ct_repack_chain(p.data<int32_t>(), 1, n, kw, co, 2);
    const uint8_t* pi = reinterpret_cast<const uint8_t*>(p.data<int32_t>());
    const auto* cb = reinterpret_cast<const uint8_t*>(co);
    bad = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t k = 0; k < 8 * kw; ++k) {
        const int want = ((pi[r * 4 * kw + k / 2] >> (4 * (k & 1))) & 0xF) ^ 8;
        bad += ((cb[k * (n / 2) + r / 2] >> (4 * (r & 1))) & 0xF) != want;
      }
    EXPECT_EQ(bad, 0) << "w4a16 chain skew " << skew;
  }
}

TEST(PackingLarge, CtUnpackOf16MiBAndMoreStreamsFromTheFirstLineBoundaryAndStaysExact) {
  // 4-bit unpack along dim 0 and dim 1 with 16 MiB of output: streaming stores from the first
  // line boundary on (output 64-byte aligned, or 16 bytes off: a head of ordinary stores
  // first), ordinary stores only (output at an odd address), checked against the defining
  // formula out = field - 8, for 1 and 2 threads.
  const int64_t prow = 2048, pcol = 1024;  // 8 MiB of words -> 16 MiB of int8
  const Tensor p = ints(DType::kI32, {prow, pcol}, INT32_MIN, INT32_MAX, "stream_ct_unpack");
  const auto* w = reinterpret_cast<const uint32_t*>(p.data<int32_t>());
  std::vector<int8_t> buf;
  for (int dim : {0, 1})
    for (auto [skew, threads] : {std::pair{0, 2}, std::pair{16, 1}, std::pair{1, 2}}) {
      int8_t* o = skewed(buf, static_cast<size_t>(prow * pcol * 8), skew);
      const CtShape cs = dim == 1 ? CtShape{prow, pcol * 8} : CtShape{prow * 8, pcol};
      opt::ct_unpack_from_int32(p.data<int32_t>(), prow, pcol, 4, cs, dim, o, threads);
      int64_t bad = 0;
      for (int64_t r = 0; r < cs.rows; ++r)
        for (int64_t c = 0; c < cs.cols; ++c) {
          const uint32_t word = dim == 1 ? w[r * pcol + c / 8] : w[(r / 8) * pcol + c];
          const int field = static_cast<int>((word >> (4 * (dim == 1 ? c % 8 : r % 8))) & 0xF);
          bad += o[r * cs.cols + c] != static_cast<int8_t>(field - 8);
        }
      EXPECT_EQ(bad, 0) << "dim " << dim << " skew " << skew << " threads " << threads;
    }
}

TEST(PackingThreads, RawEntryPointsGiveTheSameBytesForOneAndTwoThreads) {
  // Tensors of several parallel_for chunks; the chunking is fixed, so any thread count must
  // give the same bytes.
  const Tensor v = ints(DType::kI8, {640, 4104}, -8, 7, "threads_i8");
  const Tensor p = ints(DType::kI32, {2, 1024, 520}, INT32_MIN, INT32_MAX, "threads_i32");
  auto run = [&](int threads) {
    std::vector<int32_t> a(v.numel() / 8), b(v.numel() / 4), c(v.numel() / 4), d(p.numel());
    std::vector<int8_t> u(static_cast<size_t>(p.numel()) * 8);
    opt::vllm_ascend_pack_int4_to_int32(v.data<int8_t>(), a.data(), v.numel(), threads);
    opt::ct_pack_to_int32(v.data<int8_t>(), 640, 4104, 8, 0, b.data(), threads);
    opt::w4a8_modelslim_pack(v.data<int8_t>(), 2, 320, 4104, c.data(), threads);
    opt::w4a16_ct_repack_chain(p.data<int32_t>(), 2, 1024, 520, d.data(), threads);
    opt::ct_unpack_from_int32(p.data<int32_t>(), 2048, 520, 4, {2048, 4157}, 1, u.data(), threads);
    return std::make_tuple(a, b, c, d, u);
  };
  EXPECT_TRUE(run(1) == run(2));
}

TEST(W4A16Chain, RejectsBadInputsWithClearMessages) {
  EXPECT_THAT(error_of([] {
                opt::w4a16_ct_repack_chain(Tensor(DType::kI32, {1, 12, 2}));
              }),
              HasSubstr("dim 1 (N) must be a multiple of 8"));
  EXPECT_THAT(error_of([] {
                ref::w4a16_ct_repack_chain(Tensor(DType::kI8, {1, 8, 2}));
              }),
              HasSubstr("weight_packed must be int32"));
}

// ---- fixtures
// -----------------------------------------------------------------------------------

TEST(PackingFixtures, EachFixtureStaysUnder150KB) {
  for (const char* op : {"vllm_ascend_pack_int4_to_int32", "ct_pack_to_int32",
                         "ct_unpack_from_int32", "w4a8_modelslim_pack", "w4a8_llmcompressor_pack",
                         "npu_quantize_quint4x2", "w4a16_ct_repack_chain"}) {
    const conf::OpDef* d = conf::OpRegistry::instance().find(op);
    ASSERT_NE(d, nullptr) << op;
    const std::string text = conf::fixture_to_text(conf::generate_fixture(*d));
    EXPECT_LT(text.size(), 150000u) << op;
  }
}

}  // namespace
}  // namespace qconf
