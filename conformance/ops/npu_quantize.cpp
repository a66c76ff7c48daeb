// Op: npu_quantize (torch_npu), element-wise quantization with scales/zero points along an axis.
//
// Params (the op's arguments): dtype = qint8 | quint8 | int32 | quint4x2, axis (int),
// div_mode = "true" | "false". Variant axis: div_rounding = rint | round (the rounding of the
// div_mode=True cast; the A2/A3 kernel is not public [inf]).
// Every step is one fp32 instruction and a saturating cast: deterministic, checked EXACT (the fp32
// `value` stage in SPECIAL mode: NaN payloads are not portable). Named vectors put values on
// rounding ties, on saturation edges, on the fused-multiply-add boundary, and reproduce the
// vllm-ascend W8A8-static apply path. Math: reference/ops/quantize.cpp, optimized/ops/quantize.cpp.
#include <cstring>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/quantize.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_quantize {

constexpr const char* kOp = "npu_quantize";

std::map<std::string, Note> notes() {
  return {
      {"DocExample",
       {"BASIC",
        "The examples of the aclnnQuantize doc (x [4, 2] fp32, scales [1, -3], zero points "
        "int32 [2, 10], axis 1, int32 output) and of the torch_npu doc (bf16 x [1, 1, 12], "
        "scale 0.1, qint8, axis -1, div_mode=False).",
        "Any port must run the documented calls."}},
      {"RoundingTie",
       {"FUNCTIONALITY",
        "The fp32 value before the cast is exactly k + 1/2. div_mode=False casts with CAST_RINT "
        "(half to even, kernel code); a port rounding half away from zero (std::round, "
        "torch.round-free CPU code) or truncating is off by one code on every tie.",
        "Off-by-one codes on ties."}},
      {"DivRounding",
       {"DIVERGENCE",
        "div_mode=True: the A2/A3 aclnnQuantize kernel is not in the open repositories [inf]. "
        "The Ascend 950 kernel rounds half to even (variant div_rounding=rint, the default); "
        "div_rounding=round (half away from zero) is the other reading. The tie vectors give "
        "different codes under the two.",
        "Tells which rounding a div_mode=True port implements."}},
      {"Saturation",
       {"EDGE_CASE",
        "Values around the ends of the output range (E - 1, E - 1/2, pred(E), E, succ(E), "
        "E + 1/2, E + 1 for E = min, max): the casts saturate (notes §0). int32: fp32 values "
        "around +-2^31 (2^31 - 1 is not an fp32 value: 2^31 saturates to 2147483647).",
        "Wrapping instead of saturating, or an off-by-one clamp, changes the edge codes."}},
      {"NonFinite",
       {"EDGE_CASE",
        "NaN -> 0, +Inf -> max, -Inf -> min (AscendC scalar cast rule, notes §0; assumed for the "
        "vector casts [inf]).",
        "A port that propagates NaN as INT_MIN (x86 cvtps2dq) or wraps Inf differs."}},
      {"FmaSeparator",
       {"FUNCTIONALITY",
        "Searched x, scale and zero point where fp32(fp32(x*s) + zp) lands exactly on a tie but "
        "fp32(x*s + zp) (one fused rounding) does not: the kernel issues Mul and Add as two "
        "vector instructions, so a port using FMA gives another code.",
        "A compiler contracting x*s + zp into an FMA (-ffp-contract=fast, the GCC default) "
        "changes codes."}},
      {"AxisBroadcast",
       {"FUNCTIONALITY",
        "Scales and zero points broadcast along the other axes: div_mode=False axis -2 (second "
        "to last) and -1, with 1-D and multi-dimensional scales; div_mode=True any axis "
        "(default 1).",
        "Indexing the scale by the wrong axis applies the wrong scale to most elements."}},
      {"ZeroPointDtypes",
       {"FUNCTIONALITY",
        "div_mode=True zero points of dtype int8, uint8, int32 and bfloat16, converted to fp32 "
        "before the Add; an int32 zero point above 2^24 is rounded to fp32 first (16777217 -> "
        "16777216).",
        "A port adding the integer zero point after rounding, or in int32, differs."}},
      {"NoZeroPoints",
       {"FUNCTIONALITY", "zero_points=None: no Add (the sign of a zero product is kept).",
        "Treating a missing zero point as an error, or adding garbage."}},
      {"Int4Output",
       {"FUNCTIONALITY",
        "dtype quint4x2 (div_mode=False): codes in [-8, 7], 8 per int32, element 8j+t in bits "
        "[4t, 4t+3] of word j (notes §0).",
        "Packing order and int4 saturation."}},
      {"W8A8StaticApply",
       {"FUNCTIONALITY",
        "vllm-ascend W8A8 static apply (notes/vllm_ascend_quant.md §A): "
        "npu_quantize(x, 1/input_scale, input_offset, qint8, -1, div_mode=False), where the "
        "reciprocal and the offset are params-dtype tensors of length K (1/x computed in "
        "params dtype, so it is bf16/fp16-rounded).",
        "The real call of the W8A8 static linear layer."}},
      {"ReciprocalVsDivision",
       {"DIVERGENCE",
        "The same activations quantized as div_mode=True with the input scale (x / s) and as "
        "the W8A8 static apply (x * pdt(1/s), div_mode=False): searched so that some codes "
        "differ.",
        "A port that divides by input_scale instead of multiplying by the params-dtype "
        "reciprocal quantizes some activations one code off."}},
      {"Random",
       {"BASIC", "Seeded activations over assorted shapes (odd sizes: SIMD tails), dtypes, axes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

uint32_t f32b(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

Tensor f32_vals(Shape s, const std::vector<float>& v) {
  std::vector<uint32_t> b;
  for (float f : v) b.push_back(f32b(f));
  return Tensor::from<uint32_t>(DType::kF32, std::move(s), b);
}

// fp32 literals rounded to fp16/bf16 (RNE), or kept as fp32.
Tensor vals(DType t, Shape s, const std::vector<float>& v) {
  if (t == DType::kF32) return f32_vals(std::move(s), v);
  std::vector<uint16_t> b;
  for (float f : v)
    b.push_back(static_cast<uint16_t>(
        num::convert(num::kF32, f32b(f), t == DType::kF16 ? num::kF16 : num::kBF16)));
  return Tensor::from<uint16_t>(t, std::move(s), b);
}

Params params(const std::string& dtype, int64_t axis, bool div_mode,
              const std::string& rounding = "rint") {
  Params p{{"dtype", dtype}, {"axis", axis}, {"div_mode", div_mode ? "true" : "false"}};
  if (div_mode) p["div_rounding"] = rounding;
  return p;
}

QuantizeConfig config_of(const Params& p) {
  QuantizeConfig c;
  c.dtype = parse_quantize_out_type(param_str(p, "dtype", "qint8"));
  c.axis = param_int(p, "axis", 1);
  const std::string dm = param_str(p, "div_mode", "true");
  if (dm != "true" && dm != "false")
    throw std::invalid_argument("npu_quantize: param div_mode must be \"true\" or \"false\", got " +
                                dm);
  c.div_mode = dm == "true";
  const std::string r = param_str(p, "div_rounding", "rint");
  if (r != "rint" && r != "round")
    throw std::invalid_argument("npu_quantize: div_rounding must be rint or round, got " + r);
  c.div_rounding = num::parse_round(r);
  return c;
}

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}

// FmaSeparator search: x (fp16), s (fp32), zp (fp32, an integer) with fp32(fp32(x*s) + zp) on a
// tie k + 1/2 with k odd, while the fused fp32(x*s + zp) is below it (so RINT gives k+1 vs k).
struct FmaTriple {
  uint16_t x;
  uint32_t s, zp;
};
FmaTriple search_fma_separator(int64_t kmax) {
  const uint64_t seed =
      rng::seed_from_string(std::string(kOp) + "/fma_separator/" + std::to_string(kmax));
  for (uint64_t i = 0; i < 1000000; ++i) {
    // x in [1, 2) on the fp16 grid; target t = 2.5 or 4.5, ..., zp = -1, -3, ...
    const uint16_t xb = static_cast<uint16_t>(0x3C00 + rng::int_in_range_at(seed, 0, i, 1, 1023));
    const int64_t k = 2 * rng::int_in_range_at(seed, 1, i, 0, (kmax - 1) / 2) + 1;  // odd
    const int64_t zp = -rng::int_in_range_at(seed, 2, i, 1, 4);
    const num::Exact xv = num::to_exact(num::kF16, xb);
    const num::Exact target = num::Exact(2 * (k - zp) + 1, 2);  // x*s ~ k - zp + 1/2
    const uint32_t s =
        static_cast<uint32_t>(num::encode(num::kF32, target / xv, num::Round::kRint));
    const num::Exact prod = xv * num::to_exact(num::kF32, s);
    const uint64_t p = num::encode(num::kF32, prod, num::Round::kRint);
    const uint64_t sep =
        num::encode(num::kF32, num::to_exact(num::kF32, p) + num::Exact(zp), num::Round::kRint);
    const uint64_t fused = num::encode(num::kF32, prod + num::Exact(zp), num::Round::kRint);
    const num::Exact tie = num::Exact(2 * k + 1, 2);
    if (num::to_exact(num::kF32, sep) == tie && num::to_exact(num::kF32, fused) < tie)
      return {xb, s,
              static_cast<uint32_t>(num::encode(num::kF32, num::Exact(zp), num::Round::kRint))};
  }
  throw std::logic_error("npu_quantize: no FMA separator found");
}

// 1/x in the params dtype: the W8A8 static reciprocal (vllm-ascend computes it in pdt).
uint16_t pdt_reciprocal(DType pdt, float input_scale) {
  const num::FloatFormat& f = fmt(pdt);
  const uint64_t s = num::convert(num::kF32, f32b(input_scale), f);
  return static_cast<uint16_t>(num::fp_div(f, num::convert(num::kF32, f32b(1.0f), f), s));
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, Params p,
                 TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  const uint64_t seed = rng::seed_from_string(kOp);
  // ---- documented examples ----
  add("aclnn_doc_example_int32",
      "aclnnQuantize doc: x [4, 2] fp32, scales [1, -3], zero points int32 [2, 10], axis 1, "
      "int32 output",
      {"DocExample"}, params("int32", 1, true),
      {{"x", f32_vals({4, 2},
                      {0.3382f, -0.0919f, 0.7564f, 0.0234f, 3.1024f, 1.0761f, 0.4228f, 1.4621f})},
       {"scales", f32_vals({2}, {1.0f, -3.0f})},
       {"zero_points", Tensor::from<int32_t>({2}, {2, 10})}});
  add("torch_npu_doc_example_bf16",
      "torch_npu doc: bf16 x [1, 1, 12], scale bf16 [0.1] * 12, no zero points, qint8, axis -1, "
      "div_mode=False",
      {"DocExample"}, params("qint8", -1, false),
      {{"x", gen::float_tensor(DType::kBF16, {1, 1, 12}, gen::FloatDist::normal(0), seed, 1)},
       {"scales", vals(DType::kBF16, {12}, std::vector<float>(12, 0.1f))}});
  // ---- ties ----
  const std::vector<float> ties = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -126.5f};
  add("ties_mul_int8", "x*1 = k + 1/2 exactly: CAST_RINT gives the even neighbour", {"RoundingTie"},
      params("qint8", -1, false),
      {{"x", vals(DType::kF16, {1, 8}, ties)}, {"scales", vals(DType::kF16, {1}, {1.0f})}});
  add("ties_mul_with_offset_int8",
      "x*0.5 + 0.25 = k + 1/2 exactly (x*0.5 exact, then the Add lands on the tie)",
      {"RoundingTie"}, params("qint8", -1, false),
      {{"x", vals(DType::kF32, {1, 8}, {0.5f, 2.5f, 4.5f, -1.5f, -3.5f, 6.5f, 8.5f, -5.5f})},
       {"scales", vals(DType::kF32, {1}, {0.5f})},
       {"zero_points", vals(DType::kF32, {1}, {0.25f})}});
  add("ties_mul_int4", "ties in quint4x2: x*1 = k + 1/2", {"RoundingTie", "Int4Output"},
      params("quint4x2", -1, false),
      {{"x", vals(DType::kBF16, {2, 8},
                  {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 6.5f, -7.5f, 3.5f, -3.5f, 4.5f, -4.5f,
                   5.5f, -5.5f, 7.5f, -8.5f})},
       {"scales", vals(DType::kBF16, {1}, {1.0f})}});
  for (const char* r : {"rint", "round"}) {
    for (const char* dt : {"qint8", "quint8", "int32"}) {
      const bool u8 = std::string(dt) == "quint8";
      std::vector<float> t =
          u8 ? std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 100.5f, 101.5f, 254.5f, 253.5f} : ties;
      add(std::string("ties_div_") + dt + "_" + r,
          "x / 2 + zp = k + 1/2 exactly (x = 2k + 1, zp = 0): the div_mode=True rounding",
          {"RoundingTie", "DivRounding"}, params(dt, -1, true, r),
          {{"x",
            [&] {
              std::vector<float> tx;
              for (float f : t) tx.push_back(2 * f);
              return vals(DType::kF32, {1, 8}, tx);
            }()},
           {"scales", vals(DType::kF32, {1}, {2.0f})},
           {"zero_points", Tensor::from<int32_t>({1}, {0})}});
    }
  }
  // ---- saturation ----
  add("saturation_int8_mul", "around -128 and 127, scale 1", {"Saturation"},
      params("qint8", -1, false),
      {{"x", gen::saturation_tensor(DType::kF32, {2, 14}, -128, 127, 0)},
       {"scales", vals(DType::kF32, {1}, {1.0f})}});
  add("saturation_int4_mul", "around -8 and 7, scale 2^-3 (x = code * 8)",
      {"Saturation", "Int4Output"}, params("quint4x2", -1, false),
      {{"x", gen::saturation_tensor(DType::kF16, {2, 16}, -8, 7, 3)},
       {"scales", vals(DType::kF16, {1}, {0.125f})}});
  add("saturation_uint8_div", "around 0 and 255 (quint8), x / 1", {"Saturation"},
      params("quint8", -1, true),
      {{"x", gen::saturation_tensor(DType::kF32, {1, 14}, 0, 255, 0)},
       {"scales", vals(DType::kF32, {1}, {1.0f})}});
  add("saturation_int8_div", "around -128 and 127, x / 4", {"Saturation"},
      params("qint8", -1, true),
      {{"x", gen::saturation_tensor(DType::kBF16, {1, 14}, -128, 127, 2)},
       {"scales", vals(DType::kBF16, {1}, {4.0f})}});
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  add("saturation_int32_div",
      "fp32 around +-2^31: 2147483520 (largest below 2^31), 2^31 -> 2147483647, -2^31 exact, "
      "-2147483904 -> -2^31, 1e10, -1e10, and 1234.5 (a tie)",
      {"Saturation"}, params("int32", -1, true),
      {{"x", f32_vals({1, 8}, {2147483520.0f, 2147483648.0f, -2147483648.0f, -2147483904.0f, 1e10f,
                               -1e10f, 1234.5f, -1234.5f})},
       {"scales", vals(DType::kF32, {1}, {1.0f})}});
  add("nonfinite_mul_int8", "NaN, +-Inf, and finite neighbours", {"NonFinite"},
      params("qint8", -1, false),
      {{"x", vals(DType::kF16, {1, 8}, {nan, inf, -inf, 1.0f, -nan, 3.0f, 65504.0f, -65504.0f})},
       {"scales", vals(DType::kF16, {1}, {1.0f})}});
  add("nonfinite_div_int32", "NaN, +-Inf, x / 0 = Inf", {"NonFinite"}, params("int32", -1, true),
      {{"x", f32_vals({2, 4}, {nan, inf, -inf, 1.0f, 5.0f, -5.0f, 0.0f, 2.0f})},
       {"scales", f32_vals({4}, {1.0f, 1.0f, 1.0f, 0.0f})}});
  // ---- FMA separator ----
  {
    for (const char* dt : {"qint8", "quint4x2"}) {
      // k odd, below the saturation of the output type.
      const FmaTriple t = search_fma_separator(std::string(dt) == "qint8" ? 41 : 5);
      std::vector<uint16_t> xb(8, t.x);
      add(std::string("fma_separator_") + dt,
          "searched: fp32(fp32(x*s) + zp) is a tie k + 1/2 (k odd), fp32(x*s + zp) is below it",
          {"FmaSeparator"}, params(dt, -1, false),
          {{"x", Tensor::from<uint16_t>(DType::kF16, {1, 8}, xb)},
           {"scales", Tensor::from<uint32_t>(DType::kF32, {1}, {t.s})},
           {"zero_points", Tensor::from<uint32_t>(DType::kF32, {1}, {t.zp})}});
    }
  }
  // ---- axes and broadcasting ----
  {
    Tensor x = gen::float_tensor(DType::kF16, {2, 3, 16}, gen::FloatDist::normal(2), seed, 10);
    Tensor s3 = gen::float_tensor(DType::kF16, {3}, gen::FloatDist::grid(1, 64, -2), seed, 11);
    Tensor z3 = gen::float_tensor(DType::kF16, {3}, gen::FloatDist::grid(-20, 20, 0), seed, 12);
    Tensor s3m = Tensor::from<uint16_t>(DType::kF16, {1, 3, 1}, s3.to_vector<uint16_t>());
    Tensor z3m = Tensor::from<uint16_t>(DType::kF16, {1, 3, 1}, z3.to_vector<uint16_t>());
    add("axis_m2_mul_1d", "div_mode=False axis -2, scales [3] broadcast over dims 0 and 2",
        {"AxisBroadcast"}, params("qint8", -2, false),
        {{"x", x}, {"scales", s3}, {"zero_points", z3}});
    add("axis_m2_mul_multidim", "div_mode=False axis -2, scales [1, 3, 1]", {"AxisBroadcast"},
        params("qint8", -2, false), {{"x", x}, {"scales", s3m}, {"zero_points", z3m}});
    Tensor s16 =
        gen::float_tensor(DType::kF16, {1, 1, 16}, gen::FloatDist::grid(1, 64, -2), seed, 13);
    add("axis_last_mul_multidim", "div_mode=False axis 1 (> -2: the last axis), scales [1, 1, 16]",
        {"AxisBroadcast"}, params("qint8", 1, false), {{"x", x}, {"scales", s16}});
    Tensor sf3 = gen::float_tensor(DType::kF32, {3}, gen::FloatDist::grid(1, 64, -8), seed, 14);
    add("axis1_div_3d", "div_mode=True default axis 1 on [2, 3, 16]: per-dim-1 scales",
        {"AxisBroadcast"}, params("qint8", 1, true),
        {{"x", x}, {"scales", sf3}, {"zero_points", Tensor::from<int8_t>({3}, {-3, 0, 5})}});
    add("axis0_div_3d_uint8", "div_mode=True axis 0 (negative form -3), uint8 zero points",
        {"AxisBroadcast", "ZeroPointDtypes"}, params("quint8", -3, true),
        {{"x", x},
         {"scales", f32_vals({2}, {0.0625f, 0.03125f})},
         {"zero_points", Tensor::from<uint8_t>({2}, {128, 100})}});
  }
  // ---- zero points ----
  add("zero_point_int32_rounding",
      "int32 zero point 16777217 is 16777216 in fp32; x / 1 + zp, int32 output",
      {"ZeroPointDtypes"}, params("int32", -1, true),
      {{"x", f32_vals({1, 4}, {1.0f, 2.0f, 3.0f, -1.0f})},
       {"scales", f32_vals({1}, {1.0f})},
       {"zero_points", Tensor::from<int32_t>({1}, {16777217})}});
  add("zero_point_bf16", "div_mode=True with bfloat16 input, scales and zero points",
      {"ZeroPointDtypes"}, params("qint8", -1, true),
      {{"x", gen::float_tensor(DType::kBF16, {3, 8}, gen::FloatDist::normal(1), seed, 20)},
       {"scales", vals(DType::kBF16, {8}, {0.1f, 0.2f, 0.05f, 1.0f, 0.3f, 0.07f, 0.5f, 0.01f})},
       {"zero_points",
        vals(DType::kBF16, {8}, {1.0f, -2.0f, 0.5f, 3.25f, 0.0f, -7.0f, 12.0f, 2.5f})}});
  add("no_zero_points_div", "div_mode=True, zero_points=None", {"NoZeroPoints"},
      params("qint8", -1, true),
      {{"x", gen::float_tensor(DType::kF16, {2, 24}, gen::FloatDist::normal(1), seed, 21)},
       {"scales", vals(DType::kF32, {1}, {0.037f})}});
  // ---- int4 packing ----
  {
    std::vector<float> codes;
    for (int i = 0; i < 16; ++i) codes.push_back(static_cast<float>((i * 5) % 16 - 8));
    add("int4_pack_order", "every int4 code, distinct in each nibble position (x*1 exact)",
        {"Int4Output"}, params("quint4x2", -1, false),
        {{"x", vals(DType::kF32, {2, 8}, codes)}, {"scales", vals(DType::kF32, {1}, {1.0f})}});
  }
  // ---- W8A8 static apply ----
  for (DType pdt : {DType::kBF16, DType::kF16}) {
    const std::string pn = pdt == DType::kBF16 ? "bf16" : "fp16";
    const int64_t k = 64;
    const float input_scale = pdt == DType::kBF16 ? 0.0234f : 0.0117f;
    const uint16_t recip = pdt_reciprocal(pdt, input_scale);
    Tensor recips = Tensor::from<uint16_t>(pdt, {k}, std::vector<uint16_t>(k, recip));
    Tensor offs = vals(pdt, {k}, std::vector<float>(k, 3.0f));
    // Activations where x * pdt(1/s) and x / s differ in some code (searched by stream).
    Tensor x;
    const uint64_t s2 = rng::seed_from_string(std::string(kOp) + "/w8a8_" + pn);
    const uint32_t s_loaded = static_cast<uint32_t>(
        num::convert(fmt(pdt), num::convert(num::kF32, f32b(input_scale), fmt(pdt)), num::kF32));
    Tensor sdiv = Tensor::from<uint32_t>(DType::kF32, {1}, {s_loaded});
    Tensor zdiv = Tensor::from<int8_t>({1}, {3});
    for (uint64_t stream = 0;; ++stream) {
      x = gen::float_tensor(pdt, {2, k}, gen::FloatDist::normal(0), s2, stream);
      QuantizeConfig a;
      a.div_mode = false;
      a.axis = -1;
      QuantizeConfig b;
      b.div_mode = true;
      b.axis = -1;
      if (!ref::npu_quantize(x, recips, &offs, a)
               .y.bit_equal(ref::npu_quantize(x, sdiv, &zdiv, b).y))
        break;
      if (stream > 10000) throw std::logic_error("npu_quantize: no W8A8 separator found");
    }
    add("w8a8_static_apply_" + pn,
        "vllm-ascend W8A8 static: npu_quantize(x, pdt(1/" + std::to_string(input_scale) +
            ") * K, pdt(3) * K, qint8, -1, False), K = 64",
        {"W8A8StaticApply"}, params("qint8", -1, false),
        {{"x", x}, {"scales", recips}, {"zero_points", offs}});
    add("w8a8_static_as_division_" + pn,
        "the same x quantized as x / s + 3 (div_mode=True, s = the pdt input_scale as fp32, "
        "int8 zero point): some codes differ from the apply path",
        {"ReciprocalVsDivision"}, params("qint8", -1, true),
        {{"x", x}, {"scales", sdiv}, {"zero_points", zdiv}});
  }
  // ---- random ----
  struct R {
    const char* name;
    DType dt;
    Shape shape;
    const char* dtype;
    int64_t axis;
    bool div;
    bool per_tensor;
    bool zp;
  };
  for (const R& r :
       {R{"random_f16_3x40_mul_int8", DType::kF16, {3, 40}, "qint8", -1, false, false, true},
        R{"random_bf16_2x5x24_mul_int4_axis_m2",
          DType::kBF16,
          {2, 5, 24},
          "quint4x2",
          -2,
          false,
          false,
          true},
        R{"random_f32_4x72_div_uint8_tensor", DType::kF32, {4, 72}, "quint8", -1, true, true, true},
        R{"random_f16_2x3x17_div_int32_axis1",
          DType::kF16,
          {2, 3, 17},
          "int32",
          1,
          true,
          false,
          true},
        R{"random_bf16_5x136_div_int8", DType::kBF16, {5, 136}, "qint8", -1, true, false, false},
        R{"random_f32_7x33_mul_int8_tensor",
          DType::kF32,
          {7, 33},
          "qint8",
          -1,
          false,
          true,
          true}}) {
    const uint64_t cs = rng::seed_from_string(std::string(kOp) + "/" + r.name);
    const int64_t ax_len =
        r.per_tensor
            ? 1
            : (r.div ? r.shape[static_cast<size_t>(
                           r.axis < 0 ? r.axis + static_cast<int64_t>(r.shape.size()) : r.axis)]
                     : r.shape[r.axis == -2 ? r.shape.size() - 2 : r.shape.size() - 1]);
    TensorMap in;
    in["x"] = gen::float_tensor(r.dt, r.shape, gen::FloatDist::normal(3), cs, 0);
    const DType sdt = r.div ? (r.dt == DType::kBF16 && r.zp ? DType::kBF16 : DType::kF32) : r.dt;
    in["scales"] =
        gen::float_tensor(sdt, {ax_len}, gen::FloatDist::grid(1, 255, r.div ? 0 : -6), cs, 1);
    if (r.zp) {
      if (r.div)
        in["zero_points"] = sdt == DType::kBF16
                                ? gen::float_tensor(DType::kBF16, {ax_len},
                                                    gen::FloatDist::grid(-16, 16, -1), cs, 2)
                                : gen::int_tensor(DType::kI32, {ax_len}, -20, 20, cs, 2);
      else
        in["zero_points"] =
            gen::float_tensor(sdt, {ax_len}, gen::FloatDist::grid(-64, 64, -2), cs, 2);
    }
    add(r.name, "seeded activations, scales on a grid", {"Random"}, params(r.dtype, r.axis, r.div),
        std::move(in));
  }
  return v;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    QuantizeStages s = fn(in.at("x"), in.at("scales"), opt_input(in, "zero_points"), config_of(p));
    out["value"] = std::move(s.value);
    if (s.codes.numel()) out["codes"] = std::move(s.codes);
    out["y"] = std::move(s.y);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  m["value"].mode = CheckMode::kSpecial;
  // Tie and saturation vectors are small; zero codes are legitimate results there.
  if (is_degenerate(out.at("y")))
    for (const auto& [name, t] : out) m[name].degenerate_ok = true;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_quantize(input, scales, zero_points, dtype, axis, div_mode): div_mode=True "
      "(aclnnQuantize): y = round(fp32(fp32(x / s) + zp)) to qint8/quint8/int32; div_mode=False "
      "(aclnnAscendQuantV3): y = RINT(fp32(fp32(x * s) + zp)) to qint8 or quint4x2 (8 int4 per "
      "int32), axis -2 or last. Saturating casts, NaN -> 0. Variant: div_rounding (rint | round).";
  d.sources = {"notes/torch_npu_semantics.md §6, §0",
               "hicann/ops-nn quant/ascend_quant_v2/op_kernel/ascend_quant_v2_fp16.h Compute, "
               "ascend_quant_v2_kernel.h CastOut [code]",
               "hicann/ops-nn quant/quantize/docs/aclnnQuantize.md, op_api/aclnn_quantize.cpp "
               "[doc, code]",
               "hicann/ops-nn quant/quantize/op_kernel/arch35/quantize_per_channel_regbase.h "
               "(Ascend 950) [code]",
               "op-plugin op_plugin/ops/opapi/QuantizeKernelNpuOpApi.cpp [code]",
               "notes/vllm_ascend_quant.md §A W8A8 static apply"};
  d.inputs = {"x", "scales", "zero_points"};
  d.stages = {{"value", false, "float32: x/s + zp (div_mode) or x*s + zp, two fp32 roundings"},
              {"codes", false, "int8 int4 codes before packing (quint4x2 only)"},
              {"y", true, "int8 | uint8 | int32, or int32 words of 8 int4 codes"}};
  d.variants = {{"div_rounding",
                 {"rint", "round"},
                 "rounding of the div_mode=True cast: half to even (Ascend 950 kernel) or half "
                 "away from zero (the A2/A3 kernel is not public)"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_quantize);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::npu_quantize);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_quantize
}  // namespace qconf::conf
