// Op: npu_weight_quant_batchmatmul (torch_npu), the W8A16 / W4A16 linear layer:
// y = x @ ((w + antiquant_offset) * antiquant_scale) + bias, optionally requantized to int8.
//
// Params: group_size (antiquant_group_size, int). Variant axes: requant = fixpipe | fp32 (the
// int8 epilogue), antiquant = x_dtype | fp32 (the precision of the fp16 antiquant).
// Stages: weight_values (int8, EXACT), antiquant_weight (x dtype, EXACT in SPECIAL mode),
// acc (fp32 x @ W + bias, BOUNDED), y (x dtype: BOUNDED; int8: REACHABLE). The bounds and the
// reachable sets come from the exact dot product (reference/ops/weight_quant_bmm.cpp,
// docs/bounds.md), never from a tolerance.
#include <cstring>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_weight_quant_batchmatmul {

constexpr const char* kOp = "npu_weight_quant_batchmatmul";

std::map<std::string, Note> notes() {
  return {
      {"OffsetSign",
       {"FUNCTIONALITY",
        "Large antiquant offsets: W = (w + offset) * scale with a PLUS sign (aclnn doc, "
        "AscendAntiQuant; vllm-ascend W8A16 passes weight_offset unchanged).",
        "A port computing (w - offset) * scale (the zero-point convention of many CPU/GPU "
        "kernels) gets every weight wrong."}},
      {"PerTensor", {"FUNCTIONALITY", "antiquant_scale/offset of shape (1,).", "Broadcasting."}},
      {"PerChannel",
       {"FUNCTIONALITY", "antiquant_scale/offset of shape (N,) or (1, N): one per column.",
        "Indexing scales by row instead of column."}},
      {"GroupIndex",
       {"FUNCTIONALITY",
        "Per-group scales (ceil(K/G), N), row k uses group k / G; the groups' scales differ by "
        "powers of 16, so a wrong group index changes W by orders of magnitude.",
        "Off-by-one or k % groups indexing applies another group's scale."}},
      {"GroupTail",
       {"EDGE_CASE", "K not a multiple of G: the last group is partial (ceil(K/G) groups).",
        "A port with floor(K/G) groups reads out of bounds or drops the tail rows."}},
      {"Int4Weights",
       {"FUNCTIONALITY",
        "int4 weights packed in int32 (K, N/8): column 8j + t in bits [4t, 4t+3] of word j, two's "
        "complement (notes §0, npu_convert_weight_to_int4pack).",
        "Nibble order or sign errors change W."}},
      {"Bias",
       {"FUNCTIONALITY",
        "bias (N,): float16 for fp16 x, float32 for bf16 x, added in the fp32 accumulator.",
        "Adding the bias after the cast to fp16/bf16 adds a rounding (usually within the "
        "bound); omitting it fails."}},
      {"AntiquantPrecision",
       {"DIVERGENCE",
        "fp16 x: the A2 kernel computes (w + offset) and * scale in fp16, each rounded "
        "(variant antiquant=x_dtype); computing both in fp32 and rounding once (antiquant=fp32: "
        "other kernel templates [inf], CPU ports) gives another W on this searched vector.",
        "Tells which antiquant precision a port implements; W is checked exactly."}},
      {"Fp16AntiquantOverflow",
       {"EDGE_CASE",
        "fp16 x with (w + offset) * scale beyond 65504: the fp16 antiquant overflows to Inf (and "
        "the output column to Inf); with bf16 x the fp32 antiquant stays finite.",
        "A port computing the fp16 antiquant in fp32 and saturating differs."}},
      {"AccumulationPrecision",
       {"FUNCTIONALITY",
        "x = 1, W = 1 + 2^-10 over K = 128: the exact sum 128.125 is an fp16 value and every "
        "fp32 partial sum is exact (bound 0 on acc), but an fp16 accumulator loses the 2^-10 "
        "terms once the sum passes 64 (result 128).",
        "Accumulating in fp16 (or bf16) instead of fp32 fails the bound."}},
      {"RequantReading",
       {"DIVERGENCE",
        "int8 output with quant_scale 0.1 (FP19 truncation changes it) and quant_offset 2.5 (the "
        "int9 offset rounds it to 2): requant=fixpipe (the scale through "
        "aclnnTransQuantParamV2, notes §2) and requant=fp32 (the documented formula in fp32) give "
        "different codes; the accumulators are provably exact.",
        "Tells which epilogue a port implements."}},
      {"RequantSaturation",
       {"EDGE_CASE",
        "Accumulators far beyond the int8 range (and beyond the fixpipe's 9-bit intermediate): "
        "codes saturate at -128 / 127.",
        "Wrapping instead of saturating."}},
      {"Reachable",
       {"FUNCTIONALITY",
        "int8 output of an inexact fp32 accumulation: elements whose accumulator interval "
        "[exact - bound, exact + bound] straddles a rounding boundary of the epilogue accept "
        "every reachable code.",
        "Shows that legitimate summation orders are accepted while wrong codes are not."}},
      {"W8A16",
       {"BASIC",
        "vllm-ascend W8A16: int8 [K, N] (transposed checkpoint), per-channel bf16 scale and offset "
        "loaded in params dtype, no bias (notes/vllm_ascend_quant.md §A).",
        "The real call of the W8A16 linear layer."}},
      {"W4A16",
       {"BASIC", "W4A16-style: int4 weights, per-group (G = 32) fp16 scales and offsets.",
        "A realistic int4 call."}},
      {"Random",
       {"BASIC",
        "Seeded activations and weights over assorted shapes (K not a multiple of 32: kernel "
        "tails), dtypes, scale modes.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(int64_t group_size, const std::string& requant = "fixpipe",
              const std::string& antiquant = "x_dtype") {
  return Params{{"group_size", group_size}, {"requant", requant}, {"antiquant", antiquant}};
}

WqbmmConfig config_of(const Params& p) {
  WqbmmConfig c;
  c.group_size = param_int(p, "group_size", 0);
  c.requant = parse_wqbmm_requant(param_str(p, "requant", "fixpipe"));
  c.antiquant = parse_wqbmm_antiquant(param_str(p, "antiquant", "x_dtype"));
  return c;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

WqbmmArgs args_of(const TensorMap& in) {
  WqbmmArgs a;
  a.x = &in.at("x");
  a.weight = &in.at("weight");
  a.antiquant_scale = &in.at("antiquant_scale");
  a.antiquant_offset = opt_input(in, "antiquant_offset");
  a.quant_scale = opt_input(in, "quant_scale");
  a.quant_offset = opt_input(in, "quant_offset");
  a.bias = opt_input(in, "bias");
  return a;
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

Tensor half_vals(DType t, Shape s, const std::vector<float>& v) {
  std::vector<uint16_t> b;
  for (float f : v)
    b.push_back(static_cast<uint16_t>(
        num::convert(num::kF32, f32b(f), t == DType::kF16 ? num::kF16 : num::kBF16)));
  return Tensor::from<uint16_t>(t, std::move(s), b);
}

// int4 codes in [-8, 7] [K, N] packed along N (8 per int32, element 8j+t in bits [4t, 4t+3]).
Tensor pack_int4_rows(const Tensor& codes) {
  const int64_t k = codes.dim(0), n = codes.dim(1);
  Tensor out(DType::kI32, {k, n / 8});
  for (int64_t j = 0; j < out.numel(); ++j) {
    uint32_t w = 0;
    for (int t = 0; t < 8; ++t)
      w |= static_cast<uint32_t>(codes.data<int8_t>()[8 * j + t] & 0xF) << (4 * t);
    out.data<int32_t>()[j] = static_cast<int32_t>(w);
  }
  return out;
}

struct Builder {
  std::vector<CaseSpec> v;
  void add(std::string name, std::string comment, std::vector<std::string> flags, Params p,
           TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  }
};

// Random inputs of one case: x ~ N(0, 2^xs), weights uniform, scales on a grid.
struct RandomSpec {
  DType xdt;
  int64_t m, k, n;
  bool int4;
  int64_t group;  // 0: per channel (or per tensor with per_tensor)
  bool per_tensor = false;
  bool offset = true;
  bool bias = false;
};
TensorMap random_inputs(const std::string& name, const RandomSpec& r, uint64_t attempt = 0) {
  const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
  TensorMap in;
  in["x"] = gen::float_tensor(r.xdt, {r.m, r.k}, gen::FloatDist::normal(0), s, 8 * attempt);
  Tensor codes = gen::int_tensor(DType::kI8, {r.k, r.n}, r.int4 ? -8 : -128, r.int4 ? 7 : 127, s,
                                 8 * attempt + 1);
  in["weight"] = r.int4 ? pack_int4_rows(codes) : codes;
  Shape ps =
      r.per_tensor ? Shape{1} : (r.group ? Shape{(r.k + r.group - 1) / r.group, r.n} : Shape{r.n});
  // scale = m * 2^-12 (m in [1, 255]): on the grid of both fp16 and bf16.
  in["antiquant_scale"] =
      gen::float_tensor(r.xdt, ps, gen::FloatDist::grid(1, 255, r.int4 ? -8 : -12), s, 2);
  if (r.offset)
    in["antiquant_offset"] = gen::float_tensor(r.xdt, ps, gen::FloatDist::grid(-64, 64, -2), s, 3);
  if (r.bias)
    in["bias"] = gen::float_tensor(r.xdt == DType::kF16 ? DType::kF16 : DType::kF32, {r.n},
                                   gen::FloatDist::normal(0), s, 4);
  return in;
}

// A vector on which the antiquant readings give different W (fp16 x): searched offsets/scales.
TensorMap antiquant_separator() {
  const uint64_t s = rng::seed_from_string(std::string(kOp) + "/antiquant_separator");
  for (uint64_t stream = 0; stream < 1000; ++stream) {
    TensorMap in;
    in["x"] = gen::float_tensor(DType::kF16, {2, 32}, gen::FloatDist::normal(0), s, 10 * stream);
    in["weight"] = gen::int_tensor(DType::kI8, {32, 8}, -128, 127, s, 10 * stream + 1);
    // Offsets with fractional bits so that w + offset rounds in fp16; scales with full mantissas.
    in["antiquant_scale"] = gen::float_tensor(
        DType::kF16, {8}, gen::FloatDist::grid(1024, 2047, -14), s, 10 * stream + 2);
    in["antiquant_offset"] = gen::float_tensor(
        DType::kF16, {8}, gen::FloatDist::grid(-2047, 2047, -7), s, 10 * stream + 3);
    WqbmmConfig a, b;
    b.antiquant = WqbmmAntiquant::kFp32;
    if (!ref::npu_weight_quant_batchmatmul(args_of(in), a)
             .antiquant_weight.bit_equal(
                 ref::npu_weight_quant_batchmatmul(args_of(in), b).antiquant_weight))
      return in;
  }
  throw std::logic_error("npu_weight_quant_batchmatmul: no antiquant separator found");
}

std::vector<CaseSpec> cases() {
  Builder b;
  const uint64_t seed = rng::seed_from_string(kOp);
  // ---- the plus sign ----
  // (bf16: w8a16_vllm_bf16 below carries the OffsetSign flag too.)
  for (DType dt : {DType::kF16}) {
    const std::string dn = "fp16";
    TensorMap in;
    in["x"] = gen::float_tensor(dt, {2, 32}, gen::FloatDist::normal(0), seed, 1);
    in["weight"] = gen::int_tensor(DType::kI8, {32, 8}, -128, 127, seed, 3);
    in["antiquant_scale"] =
        half_vals(dt, {8}, {0.01f, 0.02f, 0.005f, 0.0125f, 0.03f, 0.0075f, 0.015f, 0.025f});
    in["antiquant_offset"] =
        half_vals(dt, {8}, {50.0f, -37.5f, 100.0f, -64.0f, 12.25f, -120.0f, 7.0f, 90.0f});
    b.add("offset_plus_sign_" + dn, "per-channel offsets of +-7 to +-120: (w + offset) * scale",
          {"OffsetSign", "PerChannel"}, params(0), std::move(in));
  }
  // ---- scale modes ----
  {
    TensorMap in = random_inputs("per_tensor_fp16", {DType::kF16, 3, 40, 8, false, 0, true});
    b.add("per_tensor_fp16", "antiquant_scale/offset (1,)", {"PerTensor"}, params(0),
          std::move(in));
  }
  {
    TensorMap in = random_inputs("per_channel_bf16_bias",
                                 {DType::kBF16, 2, 48, 8, false, 0, false, true, true});
    in["antiquant_scale"] =
        Tensor::from<uint16_t>(DType::kBF16, {1, 8}, in["antiquant_scale"].to_vector<uint16_t>());
    in["antiquant_offset"] =
        Tensor::from<uint16_t>(DType::kBF16, {1, 8}, in["antiquant_offset"].to_vector<uint16_t>());
    b.add("per_channel_bf16_bias", "scale/offset (1, N), fp32 bias", {"PerChannel", "Bias"},
          params(0), std::move(in));
  }
  {
    TensorMap in = random_inputs("per_group_fp16_k96_g32", {DType::kF16, 2, 96, 8, false, 32});
    // Group g scales ~ 16^(g-1): a wrong group index is off by a factor 16 or more.
    std::vector<uint16_t> sc = in["antiquant_scale"].to_vector<uint16_t>();
    for (int64_t g = 0; g < 3; ++g)
      for (int64_t n = 0; n < 8; ++n) {
        const float f = num::f16_to_f32(sc[static_cast<size_t>(g * 8 + n)]) *
                        (g == 0 ? 1.0f / 16 : (g == 1 ? 1.0f : 16.0f));
        sc[static_cast<size_t>(g * 8 + n)] = num::f32_to_f16(f);
      }
    in["antiquant_scale"] = Tensor::from<uint16_t>(DType::kF16, {3, 8}, sc);
    b.add("per_group_fp16_k96_g32", "K = 96, G = 32: 3 groups with scales 16x apart",
          {"GroupIndex"}, params(32), std::move(in));
  }
  {
    TensorMap in =
        random_inputs("per_group_tail_bf16_k80_g32", {DType::kBF16, 2, 80, 8, false, 32});
    b.add("per_group_tail_bf16_k80_g32",
          "K = 80, G = 32: ceil(80/32) = 3 groups, the last of 16 rows",
          {"GroupIndex", "GroupTail"}, params(32), std::move(in));
  }
  // ---- int4 ----
  {
    TensorMap in = random_inputs("int4_per_group_fp16", {DType::kF16, 2, 64, 8, true, 32});
    b.add("int4_per_group_fp16", "int4 (K, N/8) int32 words, G = 32, offsets",
          {"Int4Weights", "GroupIndex", "W4A16"}, params(32), std::move(in));
  }
  {
    TensorMap in = random_inputs("int4_per_channel_bf16",
                                 {DType::kBF16, 2, 72, 8, true, 0, false, true, true});
    b.add("int4_per_channel_bf16", "int4, per channel, K = 72 (not a multiple of 32), fp32 bias",
          {"Int4Weights", "PerChannel", "Bias"}, params(0), std::move(in));
  }
  // ---- antiquant precision (fp16) ----
  {
    TensorMap in = antiquant_separator();
    for (const char* a : {"x_dtype", "fp32"})
      b.add(std::string("antiquant_precision_") + a,
            "searched: fl16(fl16(w + off) * s) != fl16(fl32(w + off) * s) for some w (antiquant " +
                std::string(a) + ")",
            {"AntiquantPrecision"}, params(0, "fixpipe", a), in);
  }
  // ---- fp16 antiquant overflow ----
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const std::string dn = dt == DType::kF16 ? "fp16" : "bf16";
    TensorMap in;
    in["x"] = gen::float_tensor(dt, {2, 32}, gen::FloatDist::grid(1, 64, -6), seed, 20);
    Tensor w = gen::int_tensor(DType::kI8, {32, 8}, -100, 100, seed, 21);
    for (int64_t k = 0; k < 32; ++k) w.data<int8_t>()[k * 8] = static_cast<int8_t>(110 + k % 17);
    in["weight"] = w;
    in["antiquant_scale"] =
        half_vals(dt, {8}, {600.0f, 0.01f, 0.02f, 0.03f, 0.01f, 0.02f, 0.03f, 0.04f});
    b.add("antiquant_overflow_" + dn,
          "column 0: w in [110, 126] times scale 600 > 65504: Inf in the fp16 antiquant, finite "
          "in the bf16 path",
          {"Fp16AntiquantOverflow"}, params(0), std::move(in));
  }
  // ---- fp16 accumulation detector ----
  {
    TensorMap in;
    in["x"] = half_vals(DType::kF16, {1, 128}, std::vector<float>(128, 1.0f));
    Tensor w(DType::kI8, {128, 4});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(1 + (i % 4));
    in["weight"] = w;
    in["antiquant_scale"] = half_vals(DType::kF16, {1}, {1.0009765625f});
    b.add("fp16_accumulation_detector",
          "x = 1, W = fl16(c (1 + 2^-10)), c = 1..4, K = 128: exact sums 128 W, every fp32 partial "
          "sum exact; "
          "an fp16 accumulator drops the 2^-10 terms",
          {"AccumulationPrecision", "PerTensor"}, params(0), std::move(in));
  }
  // ---- int8 output ----
  {
    // Provably exact accumulators (grid inputs), quant_scale 0.1, quant_offset 2.5.
    TensorMap in;
    in["x"] = gen::float_tensor(DType::kBF16, {2, 32}, gen::FloatDist::grid(-8, 8, -3), seed, 30);
    in["weight"] = gen::int_tensor(DType::kI8, {32, 8}, -20, 20, seed, 31);
    in["antiquant_scale"] =
        half_vals(DType::kBF16, {8}, {0.25f, 0.5f, 0.125f, 0.25f, 0.5f, 1.0f, 0.25f, 0.125f});
    in["antiquant_offset"] =
        half_vals(DType::kBF16, {8}, {1.0f, -2.0f, 0.0f, 3.0f, -1.0f, 0.0f, 2.0f, -3.0f});
    in["quant_scale"] = f32_vals({1}, {0.1f});
    in["quant_offset"] = f32_vals({1}, {2.5f});
    for (const char* r : {"fixpipe", "fp32"})
      b.add(std::string("requant_reading_") + r,
            "int8 output, quant_scale 0.1 (FP19-truncated by the fixpipe), quant_offset 2.5 (int9: "
            "2); exact accumulators, requant " +
                std::string(r),
            {"RequantReading"}, params(0, r), in);
  }
  {
    TensorMap in;
    in["x"] = gen::float_tensor(DType::kF16, {2, 32}, gen::FloatDist::grid(1, 16, 0), seed, 40);
    in["weight"] = gen::int_tensor(DType::kI8, {32, 8}, -127, 127, seed, 41);
    in["antiquant_scale"] = half_vals(DType::kF16, {8}, {1, -1, 2, -2, 1, -1, 0.5f, -0.5f});
    in["quant_scale"] = f32_vals({8}, {1.0f, 1.0f, 0.5f, 0.25f, 0.01f, 0.02f, 4.0f, 2.0f});
    in["quant_offset"] = f32_vals({8}, {0.0f, 100.0f, -100.0f, 300.0f, -300.0f, 1.0f, 0.0f, -0.5f});
    for (const char* r : {"fixpipe", "fp32"})
      b.add(std::string("requant_saturation_") + r,
            "accumulators of +-1e4 and more: saturation at -128 / 127 (and of the 9-bit fixpipe "
            "intermediate), per-channel quant_scale/offset",
            {"RequantSaturation"}, params(0, r), in);
  }
  for (const char* r : {"fixpipe", "fp32"}) {
    // Searched (by the x/weight stream) until some accumulator interval straddles a rounding
    // boundary of the epilogue, so that the reachable set lists at least one element.
    const std::string name = std::string("requant_reachable_") + r;
    for (uint64_t attempt = 0;; ++attempt) {
      TensorMap in =
          random_inputs(name, {DType::kF16, 2, 64, 8, false, 32, false, true, true}, attempt);
      in["quant_scale"] = f32_vals({8}, {0.7f, 1.3f, 0.9f, 2.1f, 0.55f, 1.7f, 3.3f, 0.45f});
      in["quant_offset"] = f32_vals({8}, {0.5f, -1.5f, 3.25f, 0.0f, -2.0f, 1.0f, 0.75f, -0.25f});
      if (ref::npu_weight_quant_batchmatmul_bounds(args_of(in), config_of(params(32, r)))
              .reach_index.empty()) {
        if (attempt > 500) throw std::logic_error(name + ": no straddling accumulator found");
        continue;
      }
      b.add(name,
            "int8 output of an inexact fp32 accumulation (K = 64, per-group), searched so that "
            "some accumulator interval straddles a rounding boundary: reachable sets",
            {"Reachable", "GroupIndex", "Bias"}, params(32, r), std::move(in));
      break;
    }
  }
  // ---- vllm-ascend W8A16 ----
  {
    TensorMap in = random_inputs("w8a16_vllm_bf16", {DType::kBF16, 2, 64, 8, false, 0});
    in["antiquant_offset"] = half_vals(DType::kBF16, {8}, {3, -5, 0, 12, -1, 7, -9, 2});
    b.add("w8a16_vllm_bf16", "W8A16: int8 weights, per-channel bf16 scale and integer offsets",
          {"W8A16", "PerChannel", "OffsetSign"}, params(0), std::move(in));
  }
  // ---- random ----
  struct R {
    const char* name;
    RandomSpec r;
  };
  for (const R& c :
       {R{"random_fp16_int8_per_channel_3x72x8",
          {DType::kF16, 3, 72, 8, false, 0, false, true, true}},
        R{"random_bf16_int4_per_group_2x96x8_g64", {DType::kBF16, 2, 96, 8, true, 64}},
        R{"random_fp16_int4_per_tensor_5x40x8", {DType::kF16, 5, 40, 8, true, 0, true}},
        R{"random_bf16_int8_per_group_3x100x8_g32_bias",
          {DType::kBF16, 3, 100, 8, false, 32, false, true, true}},
        R{"random_fp16_int8_no_offset_1x33x8", {DType::kF16, 1, 33, 8, false, 0, false, false}}}) {
    b.add(c.name, "seeded inputs", {"Random"}, params(c.r.group), random_inputs(c.name, c.r));
  }
  return b.v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    WqbmmStages s = fn(args_of(in), config_of(p));
    if (s.weight_values.numel()) out["weight_values"] = std::move(s.weight_values);
    if (s.antiquant_weight.numel()) out["antiquant_weight"] = std::move(s.antiquant_weight);
    if (s.acc.numel()) out["acc"] = std::move(s.acc);
    out["y"] = std::move(s.y);
  };
}

Check bounded(const Tensor& exact, const Tensor& bound) {
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = exact;
  c.bound = bound;
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  std::map<std::string, Check> m;
  const WqbmmBounds b = ref::npu_weight_quant_batchmatmul_bounds(args_of(in), config_of(p));
  m["antiquant_weight"].mode = CheckMode::kSpecial;
  m["acc"] = bounded(b.acc_exact, b.acc_bound);
  const Tensor& y = out.at("y");
  if (y.dtype() != DType::kI8) {
    m["y"] = bounded(b.y_exact, b.y_bound);
  } else if (!b.reach_index.empty()) {
    Check c;
    c.mode = CheckMode::kReachable;
    c.accept.index = b.reach_index;
    c.accept.offsets = b.reach_offsets;
    c.accept.values =
        Tensor::from<int8_t>({static_cast<int64_t>(b.reach_codes.size())}, b.reach_codes);
    m["y"] = std::move(c);
  }
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_weight_quant_batchmatmul: W = (w + antiquant_offset) * antiquant_scale (fp16 "
      "x: each op in fp16; bf16 x: fp32, cast to bf16), y = x @ W + bias accumulated in fp32 "
      "(order unspecified: BOUNDED from the exact dot product), optional int8 output "
      "(REACHABLE). int8 or int4 (int32-packed) weights, per-tensor / per-channel / per-group "
      "scales. Variants: requant (fixpipe | fp32), antiquant (x_dtype | fp32).";
  d.sources = {"notes/torch_npu_semantics.md §3, §2 (int64 quant scale), §0 (int4 layout)",
               "hicann/ops-nn matmul/weight_quant_batch_matmul_v2/docs/"
               "aclnnWeightQuantBatchMatmulV2.md [doc]",
               "ops-nn weight_quant_batch_matmul_v2_common.h AntiQuantCalType, "
               "WeightCopyInAndCast, AntiQuantCompute, WeightCopyOut [code]",
               "op-plugin op_plugin/ops/opapi/WeightQuantBatchMatmulKernelNpuOpApi.cpp "
               "(fp32 quant_scale -> aclnnTransQuantParamV2) [code]",
               "notes/vllm_ascend_quant.md §A W8A16",
               "docs/bounds.md (npu_weight_quant_batchmatmul)"};
  d.inputs = {"x",   "weight", "antiquant_scale", "antiquant_offset", "quant_scale", "quant_offset",
              "bias"};
  d.stages = {{"weight_values", false, "int8 [K, N]: the weights (int4 codes unpacked)"},
              {"antiquant_weight", false, "x dtype [K, N]: (w + offset) * scale"},
              {"acc", false, "float32 [M, N]: x @ W + bias in fp32 (bounded)"},
              {"y", true, "x dtype [M, N] (bounded), or int8 with quant_scale (reachable)"}};
  d.variants = {{"requant",
                 {"fixpipe", "fp32"},
                 "int8 epilogue: FP19 scale + int9 offset (aclnnTransQuantParamV2, fixpipe), or "
                 "the documented formula in fp32"},
                {"antiquant",
                 {"x_dtype", "fp32"},
                 "fp16 x: antiquant ops rounded to fp16 (A2 kernel), or computed in fp32 and "
                 "rounded once"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_weight_quant_batchmatmul);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::npu_weight_quant_batchmatmul);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_weight_quant_batchmatmul
}  // namespace qconf::conf
