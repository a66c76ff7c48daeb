// Op: npu_quantize_quint4x2, torch_npu.npu_quantize(x, scales, zero_points, torch.quint4x2, axis,
// div_mode=False) (aclnnAscendQuantV3): fp32 Mul, fp32 Add, CAST_RINT, int4, packed 8 per int32
// in the NPU layout. vllm-ascend's pre-1.0.0 W4A8 MoE path packs its weights with it (seed 001:
// scale [1.], no zero_points, axis -1). The math lives in reference/ops/packing.cpp and
// optimized/ops/packing.cpp; ties get an exact_ties accept set from the oracle below.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/rounding.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_quantize_quint4x2 {

constexpr const char* kOp = "npu_quantize_quint4x2";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"LegacyW4A8",
       {"LEGACY",
        "The pre-1.0.0 W4A8 MoE weight path (seed 001 pack_to_int32): npu_quantize(w.float(), "
        "tensor([1.]), None, quint4x2, -1, False) on the transposed int8 weight [E, K, N]: "
        "integers, scale 1, no offset, so no rounding happens and the op is a saturating int4 "
        "pack.",
        "A port of the old path that wraps (as npu_convert_weight_to_int4pack does) "
        "differs on out-of-range weights."}},
      {"SaturatesNotWraps",
       {"DIVERGENCE",
        "Values outside [-8.5, 7.5]: int4_overflow=saturate (default, [inf] from the AscendC "
        "Cast rule 'overflow saturates by default') gives -8 / 7; the wrap reading keeps the low "
        "nibble of the rounded integer (9 -> -7). The vector's params name the reading.",
        "A port with the other overflow rule differs on every out-of-range element."}},
      {"RoundHalfEven",
       {"FUNCTIONALITY",
        "x*scale + offset exactly k + 1/2: the kernel rounds with CAST_RINT (half to even). The "
        "API calls the mode \"round\", so half away from zero is accepted too (exact_ties lists "
        "both codes).",
        "A port that truncates or floors fails even on ties."}},
      {"SeparateMulAdd",
       {"FUNCTIONALITY",
        "The kernel rounds twice in fp32: Mul(x, scale), then Add(offset). Per-channel x, scale "
        "and offset are chosen so that x*scale is an exact midpoint of the fp32 grid and the "
        "exact x*scale + offset is a tie 2.5 or 3.5: the kernel's fp32 value is 2.5 +- 2^-14 "
        "(no tie), while a fused multiply-add or a float64 evaluation sees the tie and, "
        "rounding it to even, gives the other code.",
        "A port that uses FMA (or -ffp-contract=fast) or computes in double differs by one "
        "code on such inputs."}},
      {"PerChannel",
       {"FUNCTIONALITY",
        "scales / zero_points of length x.dim(axis), broadcast along the other dims (axis -1: "
        "along rows; axis -2: one per row).",
        "Indexing the wrong axis."}},
      {"NoZeroPoints",
       {"FUNCTIONALITY",
        "zero_points None: the kernel skips the Add (hasOffset = 0); -0 and +0 products stay "
        "as they are.",
        "Adding a default offset changes nothing for codes, but must not fail."}},
      {"HalfInputs",
       {"FUNCTIONALITY",
        "float16 / bfloat16 x with scales and zero_points of the same dtype: each is widened "
        "to fp32 exactly (CAST_NONE) and the arithmetic is fp32.",
        "Computing in fp16 rounds x*scale to 11 bits."}},
      {"ProductOverflow",
       {"EDGE_CASE",
        "x*scale overflows fp32 to +-Inf: the int32 cast saturates, so the code is 7 / -8.",
        "An overflow that becomes NaN or INT_MIN gives 0 or -8 for +Inf."}},
      {"NonFinite",
       {"EDGE_CASE",
        "NaN (from x, scale, offset or Inf * 0) -> code 0 and +-Inf -> 7 / -8: the AscendC "
        "scalar cast rule (notes §0) assumed for the vector CAST_RINT [inf], as the npu_quantize "
        "op models it.",
        "x86 cvtps2dq turns NaN into INT_MIN, which saturates to -8."}},
      {"NpuLayout",
       {"FUNCTIONALITY",
        "The packed layout is the NPU one (notes §0): two's-complement nibbles, element 8j+t at "
        "bits [4t, 4t+3]; it is produced by pack_int4_word / opt::pack_int4 (int4pack.h).",
        "Offset binary or a reversed nibble order."}},
      {"SimdTail", {"EDGE_CASE", "Row lengths that leave vector tails.", "Tail loops."}},
      {"Random",
       {"BASIC",
        "Seeded values: x on a 2^-7 grid or normal, scales and offsets on coarse grids, so ties "
        "occur naturally and are accepted both ways.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
Tensor f32_tensor(Shape shape, const std::vector<float>& v) {
  std::vector<uint32_t> bits;
  for (float f : v) bits.push_back(std::bit_cast<uint32_t>(f));
  return Tensor::from<uint32_t>(DType::kF32, std::move(shape), bits);
}

CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags, Tensor x,
                   Tensor scales, std::optional<Tensor> zero_points, int axis = -1,
                   const std::string& overflow = "") {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.inputs["x"] = std::move(x);
  c.inputs["scales"] = std::move(scales);
  if (zero_points) c.inputs["zero_points"] = std::move(*zero_points);
  if (axis != -1) c.params["axis"] = axis;
  if (!overflow.empty()) c.params["int4_overflow"] = overflow;
  return c;
}

CaseSpec random_case(const std::string& name, DType dt, Shape shape, int axis, bool per_channel,
                     bool offset, const gen::FloatDist& xdist, std::vector<std::string> flags) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const int64_t nch =
      per_channel ? shape[static_cast<size_t>(static_cast<int64_t>(shape.size()) + axis)] : 1;
  Tensor x = gen::float_tensor(dt, shape, xdist, seed, 0);
  // Scales in [0.5, 1.5] on a 2^-5 grid, offsets in [-1, 1] on a 2^-4 grid: products of a
  // 2^-7-grid x stay exact in fp32, and ties x*s + o = k + 1/2 happen.
  Tensor s = gen::float_tensor(dt, {nch}, gen::FloatDist::grid(16, 48, -5), seed, 1);
  std::optional<Tensor> o;
  if (offset) o = gen::float_tensor(dt, {nch}, gen::FloatDist::grid(-16, 16, -4), seed, 2);
  flags.insert(flags.begin(), "Random");
  return make_case(name,
                   std::string(dtype_name(dt)) + " x " + shape_str(shape) + ", axis " +
                       std::to_string(axis) + (per_channel ? ", per-channel" : ", per-tensor") +
                       (offset ? " scales and zero_points" : " scale, no zero_points"),
                   flags, std::move(x), std::move(s), std::move(o), axis);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const Tensor one = f32_tensor({1}, {1.0f});
  {  // The old W4A8 path: [E, K, N] integers (already transposed), scale 1, no offset.
    std::vector<float> w;
    for (int e = 0; e < 2; ++e)
      for (int k = 0; k < 3; ++k)
        for (int n = 0; n < 8; ++n) w.push_back(static_cast<float>((n + 3 * k + 5 * e) % 16 - 8));
    v.push_back(make_case("legacy_w4a8_in_range",
                          "[2, 3, 8] integers in [-8, 7], scale [1.], no zero_points: the same "
                          "words as npu_convert_weight_to_int4pack",
                          {"LegacyW4A8", "NoZeroPoints", "NpuLayout"}, f32_tensor({2, 3, 8}, w),
                          one, std::nullopt));
  }
  v.push_back(make_case("legacy_w4a8_out_of_range",
                        "integers 8, -9, 100, -128, 127, 16, -16, 7 saturate to 7, -8, 7, -8, 7, "
                        "7, -8, 7 (npu_convert_weight_to_int4pack would wrap them)",
                        {"LegacyW4A8", "SaturatesNotWraps", "NoZeroPoints"},
                        f32_tensor({1, 8}, {8, -9, 100, -128, 127, 16, -16, 7}), one,
                        std::nullopt));
  v.push_back(make_case("wrap_reading_out_of_range",
                        "the wrap reading: 8 -> -8, -9 -> 7, 100 -> 4, -128 -> 0, 127 -> -1, "
                        "16 -> 0, -16 -> 0, 2048 -> 0",
                        {"SaturatesNotWraps"},
                        f32_tensor({1, 8}, {8, -9, 100, -128, 127, 16, -16, 2048}), one,
                        std::nullopt, -1, "wrap"));
  v.push_back(make_case("ties_half_even",
                        "x = -8.5 .. 7.5 step 1, scale 1: RINT gives even codes; both neighbours "
                        "accepted (7.5 and -8.5 saturate to one code)",
                        {"RoundHalfEven", "NoZeroPoints"},
                        f32_tensor({2, 8}, {-8.5f, -7.5f, -6.5f, -5.5f, -4.5f, -3.5f, -2.5f, -1.5f,
                                            -0.5f, 0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f}),
                        one, std::nullopt));
  v.push_back(make_case(
      "ties_via_scale_and_offset",
      "x = 4k + 2 with scale 0.25 and offset 0.5 gives k + 1: no ties; x = 4k "
      "gives k + 0.5: ties",
      {"RoundHalfEven"},
      f32_tensor({2, 8}, {-28, -20, -12, -4, 4, 12, 20, 28, -26, -18, -10, -2, 2, 10, 18, 26}),
      f32_tensor({1}, {0.25f}), f32_tensor({1}, {0.5f})));
  {
    // Element c: x = +-1025, s = 1 + m_c * 2^-14 with m_c odd, so x*s is an odd multiple of
    // 2^-14: an exact midpoint of the fp32 grid (2^-13 in [1024, 2048)), which the Mul rounds
    // to even (down for m = 1, 5; up for m = 3, 7); o = t_c - x*s is exact in fp32 (|o| < 1024,
    // grid 2^-14). The exact x*s + o is the tie t_c; the kernel sees t_c -+ 2^-14.
    // Kernel codes: 3, 3, 2, 4, 3, 3, -3, -3. FMA / float64 with RINT: 4, 2, 2, 4, 4, 2, -2, -4.
    std::vector<float> xs, ss, os;
    const int m[8] = {1, 3, 1, 3, 5, 7, 3, 5};
    const double t[8] = {3.5, 2.5, 2.5, 3.5, 3.5, 2.5, -2.5, -3.5};
    for (int c = 0; c < 8; ++c) {
      const double x = t[c] > 0 ? 1025.0 : -1025.0;
      const double sc = 1.0 + m[c] * std::ldexp(1.0, -14);
      xs.push_back(static_cast<float>(x));
      ss.push_back(static_cast<float>(sc));
      os.push_back(static_cast<float>(t[c] - x * sc));  // exact: see above
    }
    v.push_back(make_case("separate_mul_add",
                          "x*s is an fp32 midpoint that the kernel's Mul rounds before adding o: "
                          "codes 3, 3, 2, 4, 3, 3, -3, -3, where FMA or float64 evaluation gives "
                          "4, 2, 2, 4, 4, 2, -2, -4 (elements 2 and 3 agree)",
                          {"SeparateMulAdd", "PerChannel"}, f32_tensor({1, 8}, xs),
                          f32_tensor({8}, ss), f32_tensor({8}, os)));
  }
  v.push_back(
      make_case("per_channel_axis_m1", "[2, 8] with 8 scales and zero_points along the last dim",
                {"PerChannel", "RoundHalfEven"},
                f32_tensor({2, 8}, {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, -5, -6, -7, -8}),
                f32_tensor({8}, {0.5f, 0.25f, 1.5f, 2.0f, 0.75f, 1.0f, 0.125f, 1.25f}),
                f32_tensor({8}, {0.0f, 0.25f, -0.5f, 1.0f, -1.0f, 0.5f, 2.0f, -0.5f})));
  v.push_back(make_case(
      "per_row_axis_m2", "[3, 8] with 3 scales and zero_points, one per row (axis -2)",
      {"PerChannel"},
      f32_tensor({3, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8}),
      f32_tensor({3}, {0.5f, -1.0f, 0.3f}), f32_tensor({3}, {-2.0f, 3.0f, 0.1f}), -2));
  v.push_back(make_case(
      "product_overflow", "3e38 * 10 -> +Inf -> 7; -3e38 * 10 -> -Inf -> -8; tiny * tiny -> 0",
      {"ProductOverflow", "NoZeroPoints"},
      f32_tensor({1, 8}, {3e38f, -3e38f, 1e-30f, -1e-30f, 0.0f, -0.0f, 7.4f, -8.4f}),
      f32_tensor({1}, {10.0f}), std::nullopt));
  {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    v.push_back(make_case("non_finite",
                          "NaN, +Inf, -Inf, Inf with scale 0 (NaN), 1, -1, 2.5, -2.5 -> codes 0, "
                          "7, -8, 0, 1, -1, 2, -2 (scale 0 in channel 3 only)",
                          {"NonFinite", "PerChannel", "NoZeroPoints", "RoundHalfEven"},
                          f32_tensor({1, 8}, {nan, inf, -inf, inf, 1, -1, 2.5f, -2.5f}),
                          f32_tensor({8}, {1, 1, 1, 0, 1, 1, 1, 1}), std::nullopt));
  }
  {
    // float16: x = k/2 for k = -20..11 (ties at odd k), scale 1, offset 0.25 -> no ties.
    std::vector<uint16_t> xh, sh = {num::f32_to_f16(1.0f)}, oh = {num::f32_to_f16(0.25f)};
    for (int k = -20; k < 12; ++k) xh.push_back(num::f32_to_f16(static_cast<float>(k) / 2));
    v.push_back(make_case("float16_offset_quarter",
                          "fp16 x = k/2, scale 1, offset 0.25: k/2 + 0.25 is never a tie",
                          {"HalfInputs"}, Tensor::from<uint16_t>(DType::kF16, {1, 32}, xh),
                          Tensor::from<uint16_t>(DType::kF16, {1}, sh),
                          Tensor::from<uint16_t>(DType::kF16, {1}, oh)));
    std::vector<uint16_t> xb;
    for (int k = -20; k < 12; ++k) xb.push_back(num::f32_to_bf16(static_cast<float>(k) * 0.1f));
    v.push_back(make_case(
        "bfloat16_scale_3",
        "bf16 x = bf16(0.1 k), scale 3 (bf16), no zero_points: fp32 products "
        "of bf16 values",
        {"HalfInputs", "NoZeroPoints"}, Tensor::from<uint16_t>(DType::kBF16, {4, 8}, xb),
        Tensor::from<uint16_t>(DType::kBF16, {1}, std::vector<uint16_t>{num::f32_to_bf16(3.0f)}),
        std::nullopt));
  }
  const auto grid = gen::FloatDist::grid(-1280, 1280, -7);  // [-10, 10] on a 2^-7 grid
  v.push_back(random_case("random_f32_1x8", DType::kF32, {1, 8}, -1, false, false, grid, {}));
  v.push_back(random_case("random_f32_4x24", DType::kF32, {4, 24}, -1, true, true, grid,
                          {"PerChannel", "SimdTail"}));
  v.push_back(random_case("random_f32_3x5x40", DType::kF32, {3, 5, 40}, -1, false, true, grid,
                          {"SimdTail"}));
  v.push_back(random_case("random_f32_7x72_axis_m2", DType::kF32, {7, 72}, -2, true, true, grid,
                          {"PerChannel", "SimdTail"}));
  v.push_back(random_case("random_f32_normal_6x136", DType::kF32, {6, 136}, -1, true, true,
                          gen::FloatDist::normal(2), {"PerChannel", "SimdTail"}));
  v.push_back(random_case("random_f16_5x16", DType::kF16, {5, 16}, -1, true, true, grid,
                          {"HalfInputs", "PerChannel"}));
  v.push_back(random_case("random_bf16_3x32", DType::kBF16, {3, 32}, -1, false, false,
                          gen::FloatDist::grid(-256, 256, -5), {"HalfInputs"}));
  {
    // x on a quarter grid, scale 1, no offset: a quarter of the elements are ties.
    const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/random_f32_quarter_ties");
    v.push_back(make_case(
        "random_f32_quarter_ties", "x uniform on the 1/4 grid in [-10, 10], scale 1: many ties",
        {"Random", "RoundHalfEven", "SaturatesNotWraps", "NoZeroPoints"},
        gen::float_tensor(DType::kF32, {4, 16}, gen::FloatDist::grid(-40, 40, -2), seed, 0), one,
        std::nullopt));
  }
  return v;
}

NpuQuantizeArgs args_of(const Params& p) {
  NpuQuantizeArgs a;
  a.axis = static_cast<int>(param_int(p, "axis", -1));
  a.overflow = parse_int4_overflow(param_str(p, "int4_overflow", "saturate"));
  return a;
}

const Tensor* zero_points_of(const TensorMap& in) {
  auto it = in.find("zero_points");
  return it == in.end() ? nullptr : &it->second;
}

// ---- oracle: ties -----------------------------------------------------------------------------
// Where the kernel's fp32 value t = fp32(fp32(x*s) + o) is exactly k + 1/2, both RINT (the
// kernel's CAST_RINT) and half-away-from-zero (the API's "round") are accepted; a word accepts
// every combination of its elements' codes.
std::map<std::string, Check> oracle(const Params& p, const TensorMap&, const TensorMap& out) {
  const NpuQuantizeArgs a = args_of(p);
  const Tensor& scaled = out.at("scaled");
  const Tensor& codes = out.at("int4_values");
  std::vector<std::vector<int>> alts(static_cast<size_t>(codes.numel()));
  for (int64_t i = 0; i < codes.numel(); ++i) {
    const uint32_t bits = scaled.data<uint32_t>()[i];
    std::set<int> s = {codes.data<int8_t>()[i]};
    if (!num::is_inf(num::kF32, bits) && !num::is_nan(num::kF32, bits) &&
        num::is_tie(num::to_exact(num::kF32, bits)))
      if (auto q = ref::npu_quantize_code(bits, a.overflow, true)) s.insert(*q);
    alts[static_cast<size_t>(i)].assign(s.begin(), s.end());
  }
  std::map<std::string, Check> m;
  Check& sc = m["scaled"];
  sc.mode = CheckMode::kSpecial;  // NaN payloads are not portable
  sc.signed_zero = false;         // -0 * s vs a port that adds a +0 offset: same codes
  Check& cv = m["int4_values"];
  std::vector<int64_t> idx, off = {0};
  std::vector<int8_t> vals;
  for (int64_t i = 0; i < codes.numel(); ++i) {
    const auto& al = alts[static_cast<size_t>(i)];
    if (al.size() < 2) continue;
    idx.push_back(i);
    for (int q : al) vals.push_back(static_cast<int8_t>(q));
    off.push_back(static_cast<int64_t>(vals.size()));
  }
  if (!idx.empty()) {
    cv.mode = CheckMode::kExactTies;
    cv.accept.index = idx;
    cv.accept.offsets = off;
    cv.accept.values = Tensor::from<int8_t>({static_cast<int64_t>(vals.size())}, vals);
  }
  Check& pk = m["packed"];
  std::vector<int64_t> widx, woff = {0};
  std::vector<int32_t> wvals;
  for (int64_t w = 0; w < codes.numel() / kInt4PerInt32; ++w) {
    std::vector<int32_t> words = {0};
    for (int t = 0; t < kInt4PerInt32; ++t) {
      std::vector<int32_t> next;
      for (int32_t base : words)
        for (int q : alts[static_cast<size_t>(w * kInt4PerInt32 + t)])
          next.push_back(static_cast<int32_t>(static_cast<uint32_t>(base) |
                                              (static_cast<uint32_t>(q & 0xF) << (4 * t))));
      words = std::move(next);
    }
    if (words.size() < 2) continue;
    widx.push_back(w);
    wvals.insert(wvals.end(), words.begin(), words.end());
    woff.push_back(static_cast<int64_t>(wvals.size()));
  }
  if (!widx.empty()) {
    pk.mode = CheckMode::kExactTies;
    pk.accept.index = widx;
    pk.accept.offsets = woff;
    pk.accept.values = Tensor::from<int32_t>({static_cast<int64_t>(wvals.size())}, wvals);
  }
  return m;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_quantize(x, scales, zero_points, quint4x2, axis, div_mode=False): "
      "t = fp32(fp32(x*scale) + offset) (two roundings; no Add without zero_points), "
      "code = int4(CAST_RINT(t)) (saturating by default), packed 8 per int32 in the NPU layout.";
  d.sources = {
      "notes/torch_npu_semantics.md §6, §0",
      "hicann/ops-nn quant/ascend_quant_v2/op_kernel/ascend_quant_v2_fp32.h, _fp16.h Compute "
      "(Mul then Add), ascend_quant_v2_kernel.h CastOut (CAST_RINT -> int32 -> half -> int4)",
      "seed 001: vllm-ascend w4a8_dynamic.py pack_to_int32 (old format)"};
  d.inputs = {"x", "scales", "zero_points"};
  d.stages = {{"scaled", false, "fp32(fp32(x*scale) + offset), float32"},
              {"int4_values", false, "CAST_RINT, int32 -> half -> int4, as int8"},
              {"packed", true, "int32 words, NPU int4 layout"}};
  d.variants = {
      {"int4_overflow",
       {"saturate", "wrap"},
       "the half -> int4 cast on overflow: saturate ([inf], AscendC Cast default) or keep the "
       "low nibble"},
      {"axis", {"-1", "-2"}, "an argument: the axis scales and zero_points run along"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    const NpuQuantizeArgs a = args_of(p);
    const Tensor* zp = zero_points_of(in);
    out["packed"] = ref::npu_quantize_quint4x2(in.at("x"), in.at("scales"), zp, a);
    out["scaled"] = ref::npu_quantize_scaled(in.at("x"), in.at("scales"), zp, a.axis);
    out["int4_values"] = ref::npu_quantize_int4_values(out["scaled"], a.overflow);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["packed"] =
        opt::npu_quantize_quint4x2(in.at("x"), in.at("scales"), zero_points_of(in), args_of(p));
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_quantize_quint4x2
}  // namespace qconf::conf
