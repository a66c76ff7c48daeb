// Op: npu_kronecker_quant (torch_npu, FlatQuant): per token x [M, N], x' = x @ P2 (fp32
// accumulation, rounded to x's dtype), x'' = P1 @ x' (fp32, rounded to fp16), amax = max |x''|,
// quant_scale = amax * clip / 7, mult = (7 / clip) / amax (7 when amax == 0), codes =
// sat_int4(RINT(fp16(x'' * mult))) packed 8 per int32.
//
// Inputs: x [T, M, N], kronecker_p1 [M, M], kronecker_p2 [N, N] (x dtype), clip_ratio fp32 (1,).
// Variant axis: formula = kernel | opplugin_golden. Stages: x_p2, x_p1, amax, codes
// (intermediates), out, quant_scale; all REACHABLE: the fp32 accumulation order is not fixed, so
// every stage accepts the values reachable within the derived bound of the exact dot products
// (reference/ops/kronecker_quant.cpp, docs/bounds.md), and is exact where no boundary is in reach.
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/kronecker_quant.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_kronecker_quant {

constexpr const char* kOp = "npu_kronecker_quant";

std::map<std::string, Note> notes() {
  return {
      {"TransformOrder",
       {"FUNCTIONALITY",
        "Non-symmetric P1, P2 on a grid (every fp32 sum exact, so every stage has one value): "
        "x'' = P1 @ (x @ P2), no transposes inside the op (aclnnFlatQuant.md; vllm-ascend passes "
        "P1 = left_trans^T).",
        "A port computing P1^T, P2^T or x @ P1 fails exactly."}},
      {"DoubleRounding",
       {"FUNCTIONALITY",
        "x'' * mult = 2.500244140625 in fp32 (x'' = 1.4287109375, amax = 4, mult = 1.75): fp16 "
        "rounds it to 2.5, then RINT gives 2 (the kernel's CAST_RINT to fp16, then to int4); "
        "3.5 gives 4. Identity transforms: every sum exact.",
        "Rounding the fp32 product straight to an integer gives 3; truncation gives 3 for 3.5."}},
      {"FormulaReading",
       {"DIVERGENCE",
        "clip_ratio 0.5: the kernel/aclnn doc (scale = amax * clip / 7, mult = (7 / clip) / amax, "
        "RINT) and the op-plugin test golden (mult = 7 * clip / amax, scale = amax / (7 * clip), "
        "truncation) give different scales and codes (docs/divergences.md).",
        "Tells which reading a port implements."}},
      {"Saturation",
       {"EDGE_CASE",
        "clip_ratio < 1: |x''| * mult reaches 7 / clip > 7; the fp16 -> int4 cast saturates to "
        "[-8, 7] [inf: notes §0, saturation of fp16 -> int4 not documented].",
        "Wrapping the nibble instead of saturating."}},
      {"AmaxZero",
       {"EDGE_CASE",
        "An all-zero token: amax = 0, mult = 7 (the kernel's special case), scale 0, codes 0.",
        "Dividing by zero gives NaN codes or scales."}},
      {"Fp16Intermediate",
       {"FUNCTIONALITY",
        "bf16 input, P1 mixes rows with weight 2^-9: x'' needs fp16's 10 mantissa bits (the kernel "
        "rounds x'' to fp16 even for bf16 inputs).",
        "Rounding x'' to bf16 changes x_p1 and codes."}},
      {"NonFinite",
       {"EDGE_CASE",
        "A token with an Inf input (x' and x'' become +-Inf: amax Inf, mult 0, codes 0 since "
        "Inf * 0 = NaN -> 0 and finite * 0 = 0, scale Inf) and one with a NaN (NaN everywhere, "
        "amax and scale NaN, codes 0); the third token is ordinary. NaN signs are open (both "
        "accepted). [inf: the kernel's `tmpMax != tmpMax` check propagates NaN (notes §4); "
        "the NaN -> 0 and saturating casts follow notes §0.]",
        "A port that skips NaN in the max, or wraps Inf codes, fails."}},
      {"FlatQuant",
       {"BASIC",
        "vllm-ascend W4A4_FLATQUANT_DYNAMIC shapes (K = 1024 -> 32 x 32, K = 768 -> 24 x 32) with "
        "orthogonal (Householder) transforms rounded to the dtype.",
        "The real call."}},
      {"Reachable",
       {"FUNCTIONALITY",
        "Searched so that some element's interval straddles a rounding boundary: its reachable "
        "set has two or more values; every other element is exact.",
        "Legitimate summation orders pass, wrong values do not."}},
      {"Random",
       {"BASIC", "Seeded inputs, odd M, N = 8 .. 64, both dtypes, assorted clip ratios.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(const std::string& formula = "kernel") { return Params{{"formula", formula}}; }

KronFormula formula_of(const Params& p) {
  return parse_kron_formula(param_str(p, "formula", "kernel"));
}

uint32_t f32b(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

Tensor clip_t(float c) { return Tensor::from<uint32_t>(DType::kF32, {1}, {f32b(c)}); }

Tensor half_vals(DType t, Shape s, const std::vector<float>& v) {
  std::vector<uint16_t> b;
  for (float f : v)
    b.push_back(static_cast<uint16_t>(
        num::convert(num::kF32, f32b(f), t == DType::kF16 ? num::kF16 : num::kBF16)));
  return Tensor::from<uint16_t>(t, std::move(s), b);
}

Tensor identity(DType t, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n * n), 0.0f);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0f;
  return half_vals(t, {n, n}, v);
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

TensorMap inputs(Tensor x, Tensor p1, Tensor p2, float clip) {
  TensorMap in;
  in["x"] = std::move(x);
  in["kronecker_p1"] = std::move(p1);
  in["kronecker_p2"] = std::move(p2);
  in["clip_ratio"] = clip_t(clip);
  return in;
}

TensorMap random_inputs(const std::string& name, DType dt, int64_t t, int64_t m, int64_t n,
                        float clip, bool orthogonal, uint64_t attempt = 0) {
  const uint64_t s = rng::seed_from_string(std::string(kOp) + "/" + name);
  Tensor x = gen::float_tensor(dt, {t, m, n}, gen::FloatDist::normal(0), s, 8 * attempt);
  Tensor p1 = orthogonal
                  ? ref::householder_orthogonal(dt, m, 4, s, 8 * attempt + 1)
                  : gen::float_tensor(dt, {m, m}, gen::FloatDist::normal(-2), s, 8 * attempt + 1);
  Tensor p2 = orthogonal
                  ? ref::householder_orthogonal(dt, n, 4, s, 8 * attempt + 2)
                  : gen::float_tensor(dt, {n, n}, gen::FloatDist::normal(-2), s, 8 * attempt + 2);
  return inputs(std::move(x), std::move(p1), std::move(p2), clip);
}

std::vector<CaseSpec> cases() {
  Builder b;
  const uint64_t seed = rng::seed_from_string(kOp);
  // ---- transform order: non-symmetric grid matrices, exact sums ----
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const std::string dn = dt == DType::kF16 ? "fp16" : "bf16";
    Tensor x = gen::float_tensor(dt, {2, 3, 8}, gen::FloatDist::grid(-8, 8, 0), seed, 1);
    Tensor p1 = gen::float_tensor(dt, {3, 3}, gen::FloatDist::grid(-4, 4, -2), seed, 2);
    Tensor p2 = gen::float_tensor(dt, {8, 8}, gen::FloatDist::grid(-4, 4, -2), seed, 3);
    b.add("transform_order_" + dn,
          "x, P1, P2 small integers (times 2^-2): every fp32 sum exact, one value per stage; "
          "P1, P2 not symmetric",
          {"TransformOrder"}, params(), inputs(std::move(x), std::move(p1), std::move(p2), 1.0f));
  }
  // ---- double rounding through fp16 (identity transforms) ----
  {
    std::vector<float> v{4.0f, 1.4287109375f, 2.0f, -3.0f, 1.5f, -4.0f, 0.75f, 0.0f};
    for (const char* f : {"kernel", "opplugin_golden"})
      b.add(std::string("double_rounding_") + f,
            "identity P1, P2; amax 4, mult 1.75: 1.4287109375 * mult = 2.500244140625 -> fp16 2.5 "
            "-> RINT 2 (straight RINT: 3); 2 * mult = 3.5 -> RINT 4 (truncation: 3)",
            {"DoubleRounding"}, params(f),
            inputs(half_vals(DType::kF16, {1, 1, 8}, v), identity(DType::kF16, 1),
                   identity(DType::kF16, 8), 1.0f));
  }
  // ---- kernel vs op-plugin golden reading, saturation ----
  {
    Tensor x = gen::float_tensor(DType::kF16, {3, 2, 16}, gen::FloatDist::normal(0), seed, 10);
    TensorMap in = inputs(x, identity(DType::kF16, 2), identity(DType::kF16, 16), 0.5f);
    for (const char* f : {"kernel", "opplugin_golden"})
      b.add(std::string("formula_reading_clip_half_") + f,
            "clip 0.5, identity transforms: kernel mult 14 / amax (codes saturate), golden "
            "3.5 / amax (truncated); scales amax / 14 vs amax / 3.5",
            {"FormulaReading", "Saturation"}, params(f), in);
  }
  // ---- zero token ----
  {
    Tensor x = gen::float_tensor(DType::kBF16, {3, 2, 8}, gen::FloatDist::normal(0), seed, 20);
    for (int64_t i = 16; i < 32; ++i) x.data<uint16_t>()[i] = (i % 2) ? 0x8000 : 0;  // +-0
    b.add("zero_token_bf16", "token 1 all (signed) zeros: amax 0, mult 7, scale 0, codes 0",
          {"AmaxZero"}, params(),
          inputs(std::move(x), ref::householder_orthogonal(DType::kBF16, 2, 2, seed, 21),
                 ref::householder_orthogonal(DType::kBF16, 8, 3, seed, 22), 1.0f));
  }
  // ---- fp16 intermediate for bf16 input ----
  {
    Tensor x =
        gen::float_tensor(DType::kBF16, {2, 2, 8}, gen::FloatDist::grid(-120, 120, -4), seed, 30);
    Tensor p1 = half_vals(DType::kBF16, {2, 2}, {1.0f, 1.0f / 512, 0.0f, 1.0f});
    b.add("fp16_intermediate_bf16",
          "bf16 x on a grid, P2 = I, P1 = [[1, 2^-9], [0, 1]]: x'' = x0 + x1 / 512 needs fp16's "
          "mantissa; every sum exact",
          {"Fp16Intermediate"}, params(),
          inputs(std::move(x), std::move(p1), identity(DType::kBF16, 8), 1.0f));
  }
  // ---- non-finite inputs ----
  {
    Tensor x = gen::float_tensor(DType::kF16, {3, 2, 8}, gen::FloatDist::normal(0), seed, 40);
    x.data<uint16_t>()[3] = 0x7C00;       // token 0: +Inf
    x.data<uint16_t>()[16 + 9] = 0x7E00;  // token 1: NaN
    b.add("nonfinite_tokens_fp16",
          "token 0 holds +Inf (x'' all +-Inf: scale Inf, codes 0), token 1 a NaN (scale NaN, "
          "codes 0), token 2 ordinary",
          {"NonFinite"}, params(),
          inputs(std::move(x), ref::householder_orthogonal(DType::kF16, 2, 2, seed, 41),
                 ref::householder_orthogonal(DType::kF16, 8, 3, seed, 42), 1.0f));
  }
  // ---- vllm-ascend shapes ----
  b.add("flatquant_k1024_fp16", "K = 1024 -> 32 x 32, Householder transforms, 2 tokens",
        {"FlatQuant"}, params(),
        random_inputs("flatquant_k1024_fp16", DType::kF16, 2, 32, 32, 1.0f, true));
  b.add("flatquant_k768_bf16", "K = 768 -> 24 x 32, Householder transforms, clip 0.9",
        {"FlatQuant"}, params(),
        random_inputs("flatquant_k768_bf16", DType::kBF16, 2, 24, 32, 0.9f, true));
  // ---- reachable (searched) ----
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const std::string name =
        std::string("reachable_codes_") + (dt == DType::kF16 ? "fp16" : "bf16");
    for (uint64_t attempt = 0;; ++attempt) {
      TensorMap in = random_inputs(name, dt, 4, 8, 32, 1.0f, false, attempt);
      const KronQuantReach r = ref::npu_kronecker_quant_reachable(
          in.at("x"), in.at("kronecker_p1"), in.at("kronecker_p2"), in.at("clip_ratio"),
          KronFormula::kKernel);
      if (r.codes.index.empty() || r.x_p1.index.empty()) {
        if (attempt > 2000) throw std::logic_error(name + ": no straddling element found");
        continue;
      }
      b.add(name,
            "random non-orthogonal transforms, searched until some x'' and some code have two "
            "reachable values",
            {"Reachable"}, params(), std::move(in));
      break;
    }
  }
  // ---- random ----
  struct R {
    const char* name;
    DType dt;
    int64_t t, m, n;
    float clip;
  };
  for (const R& c : {R{"random_fp16_2x3x8", DType::kF16, 2, 3, 8, 1.0f},
                     R{"random_bf16_3x5x16_clip075", DType::kBF16, 3, 5, 16, 0.75f},
                     R{"random_fp16_1x7x24_clip09", DType::kF16, 1, 7, 24, 0.9f},
                     R{"random_bf16_2x1x64", DType::kBF16, 2, 1, 64, 1.0f}})
    b.add(c.name, "seeded inputs, orthogonal transforms", {"Random"}, params(),
          random_inputs(c.name, c.dt, c.t, c.m, c.n, c.clip, true));
  return b.v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    KronQuantStages s = fn(in.at("x"), in.at("kronecker_p1"), in.at("kronecker_p2"),
                           in.at("clip_ratio"), formula_of(p));
    if (s.x_p2.numel()) out["x_p2"] = std::move(s.x_p2);
    if (s.x_p1.numel()) out["x_p1"] = std::move(s.x_p1);
    if (s.amax.numel()) out["amax"] = std::move(s.amax);
    if (s.codes.numel()) out["codes"] = std::move(s.codes);
    out["out"] = std::move(s.out);
    out["quant_scale"] = std::move(s.quant_scale);
  };
}

#ifndef QCONF_NO_OPTIMIZED
KronQuantStages opt_with_intermediates(const Tensor& x, const Tensor& p1, const Tensor& p2,
                                       const Tensor& c, KronFormula f) {
  return opt::npu_kronecker_quant(x, p1, p2, c, f, true);
}
#endif

Check reachable(const ReachSet& r, DType dt) {
  Check c;
  c.mode = CheckMode::kReachable;
  if (r.index.empty()) {
    c.mode = CheckMode::kExact;
    return c;
  }
  c.accept.index = r.index;
  c.accept.offsets = r.offsets;
  Tensor v(dt, {static_cast<int64_t>(r.values.size())});
  const size_t w = dtype_size(dt);
  for (size_t i = 0; i < r.values.size(); ++i) std::memcpy(v.bytes() + i * w, &r.values[i], w);
  c.accept.values = std::move(v);
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  const KronQuantReach r = ref::npu_kronecker_quant_reachable(
      in.at("x"), in.at("kronecker_p1"), in.at("kronecker_p2"), in.at("clip_ratio"), formula_of(p));
  std::map<std::string, Check> m;
  m["x_p2"] = reachable(r.x_p2, out.at("x_p2").dtype());
  m["x_p1"] = reachable(r.x_p1, DType::kF16);
  m["amax"] = reachable(r.amax, DType::kF32);
  m["codes"] = reachable(r.codes, DType::kI8);
  m["out"] = reachable(r.out, DType::kI32);
  m["quant_scale"] = reachable(r.quant_scale, DType::kF32);
  // A zero token is intended (AmaxZero); the packed output is mostly small codes, not zeros.
  m["codes"].degenerate_ok = m["out"].degenerate_ok = true;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_kronecker_quant (FlatQuant): per token x'' = P1 @ (x @ P2) with fp32 "
      "accumulations (x' rounded to x's dtype, x'' to fp16), amax, quant_scale = amax * clip / 7, "
      "codes = sat_int4(RINT(fp16(x'' * (7 / clip) / amax))) packed 8 per int32. Every stage "
      "REACHABLE from the exact dot products and their derived bounds. Variant: formula (kernel "
      "| opplugin_golden).";
  d.sources = {
      "notes/torch_npu_semantics.md §4, §0",
      "hicann/ops-nn flat_quant_cube.h, flat_quant_vec.h, flat_quant_high.h [code]; "
      "aclnnFlatQuant.md [doc]",
      "op-plugin test/test_custom_ops/test_npu_kronecker_quant.py (golden, skipped) [test]",
      "notes/vllm_ascend_quant.md §A W4A4_FLATQUANT_DYNAMIC; seed 002",
      "docs/bounds.md (npu_kronecker_quant)"};
  d.inputs = {"x", "kronecker_p1", "kronecker_p2", "clip_ratio"};
  d.stages = {{"x_p2", false, "x dtype [T, M, N]: x @ P2 (reachable)"},
              {"x_p1", false, "float16 [T, M, N]: P1 @ x' (reachable)"},
              {"amax", false, "float32 [T]: max |x''| (reachable)"},
              {"codes", false, "int8 [T, M, N]: int4 codes (reachable)"},
              {"out", true, "int32 [T, M, N/8]: packed codes (reachable)"},
              {"quant_scale", true, "float32 [T] (reachable)"}};
  d.variants = {{"formula",
                 {"kernel", "opplugin_golden"},
                 "kernel/aclnn: scale = amax * clip / 7, mult = (7 / clip) / amax, RINT; op-plugin "
                 "test golden: mult = 7 * clip / amax, scale = amax / (7 * clip), truncation"}};
  d.notes = notes();
  d.reference = kernel(ref::npu_kronecker_quant);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt_with_intermediates);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_kronecker_quant
}  // namespace qconf::conf
