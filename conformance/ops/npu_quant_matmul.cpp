// Op: npu_quant_matmul (torch_npu), int8 / int4 matmul with an int32 accumulator and a dequant
// epilogue (scale, pertoken scale, bias, offset), cast to int8 / fp16 / bf16 / fp32 / int32.
//
// Params: output_dtype (an op argument: int8 | float16 | bfloat16 | float32 | int32) and two
// variant axes, set only on the cases they apply to:
//   opplugin_fp19 = true | false: op-plugin converts an fp32 scale through
//     npu_trans_quant_param (FP19 truncation) when there is no pertoken_scale and the output is
//     neither bf16 nor int32 (true), or the scale is used as given (false);
//   fixpipe_precision = fp32 | exact: on the int64-scale path, acc -> fp32 then one fp32
//     multiply, or the exact product rounded once [inf: undocumented].
// Everything is deterministic, so every stage is EXACT (float stages in SPECIAL mode: NaN
// payloads are not portable). Separating vectors are constructed (or searched, then checked
// against the reference) so that each pair of readings disagrees on some case.
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/ops/scales.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_npu_quant_matmul {

constexpr const char* kOp = "npu_quant_matmul";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"FormulaCombination",
       {"BASIC",
        "One row of the aclnnQuantMatmulV4 dtype table (A2/A3): scale fp32 / bf16 / int64, "
        "bias none / int32 / float, pertoken_scale or not, output int8 / fp16 / bf16 / int32. "
        "Order: int32 acc (+ int32 bias) -> fp32 -> *scale -> *pertoken -> +float bias -> cast.",
        "A port that adds the bias after the scale when it is int32 (or before it when it is "
        "float), or multiplies pertoken before scale, differs in the last bits."}},
      {"W8A8Static",
       {"FUNCTIONALITY",
        "The vllm-ascend W8A8 static apply: npu_quant_matmul(x_q, W, deq_scale, bias=quant_bias "
        "(int32), output_dtype=pdt), deq_scale int64 for fp16 models, fp32 for bf16 models "
        "(notes/vllm_ascend_quant.md §A).",
        "The production call of static W8A8 layers."}},
      {"W8A8Dynamic",
       {"FUNCTIONALITY",
        "The vllm-ascend W8A8_DYNAMIC apply: npu_quant_matmul(x_q, W, weight_scale, "
        "pertoken_scale=s, bias, output_dtype=x.dtype) (notes/vllm_ascend_quant.md §A).",
        "The production call of dynamic W8A8 layers."}},
      {"Int32Output",
       {"FUNCTIONALITY",
        "output_dtype int32: acc (+ int32 bias); the scale is passed but not applied [inf: the "
        "aclnn table lists int32 output with a float scale; no formula is given].",
        "A port that scales the int32 output differs everywhere."}},
      {"Fp19Truncation",
       {"DIVERGENCE",
        "An fp32 scale with its low 13 mantissa bits set, no pertoken_scale, fp16 or int8 "
        "output: op-plugin (QuantMatmulKernelNpuOpApi.cpp L297-300) passes it through "
        "npu_trans_quant_param, which keeps sign + 8 exponent + 10 mantissa bits (truncation), "
        "so the product uses a different scale than the fp32 one.",
        "A port that uses the fp32 scale at full precision (the aclnn op called directly, a CPU "
        "port) differs from torch_npu on these outputs; see docs/divergences.md."}},
      {"FixpipeDoubleRounding",
       {"DIVERGENCE",
        "acc * scale (int64 scale, FP19) lies within half an fp32 ulp of a rounding boundary of "
        "the output (fp16, or the integer grid for int8) but not on it: acc -> fp32 -> fp32 "
        "multiply rounds onto the boundary (a tie, broken to even), the exact product rounded "
        "once does not. The fixpipe's internal precision is undocumented [inf].",
        "Separates the two readings of the fixpipe by one output ulp / one int8 code."}},
      {"RequantSaturation",
       {"EDGE_CASE",
        "int8 output: y = clip(s9(rint(acc*scale)) + s9(offset), -128, 127) with "
        "s9 = clip(round(.), -256, 255) (qbmmv3_kernel_golden.py compute_requant): values "
        "beyond +-256 are clipped BEFORE the offset is added, offsets beyond the int9 range are "
        "clipped too, and the sum saturates at -128 / 127.",
        "A port that adds the offset before clipping, or clips only at the end, gives other "
        "codes when |acc*scale| > 256 and the offset pulls back into range."}},
      {"RoundingTie",
       {"FUNCTIONALITY",
        "Values exactly halfway between two output codes (int8: k + 0.5; fp16 / bf16: "
        "midpoints): CAST_RINT rounds half to even.",
        "Half-away-from-zero or truncating casts are off by one code / ulp on every tie."}},
      {"AccBeyond2p24",
       {"EDGE_CASE",
        "|acc| > 2^24: the int32 -> fp32 conversion is no longer exact (ulp 2, ties to even).",
        "A port converting through a wider type (double) or with truncation differs."}},
      {"Int32Overflow",
       {"EDGE_CASE",
        "acc + int32 bias leaves the int32 range and wraps modulo 2^32 (the cube's int32 "
        "accumulator) [inf: no kernel check]. The exact value is in the case comment. acc alone "
        "cannot overflow with int8 operands and k <= 65535.",
        "A port that saturates, or adds the bias in int64 or in fp32, differs."}},
      {"Int4Operands",
       {"FUNCTIONALITY",
        "x1 and x2 int32 = 8 int4 per word, element 8j+t in bits [4t, 4t+3] of word j, two's "
        "complement (notes §0); x1 [m, k/8], x2 [k, n/8].",
        "A swapped nibble order or offset-binary nibbles change every product."}},
      {"Batch",
       {"FUNCTIONALITY",
        "3-D operands: x1 [b, m, k] with x2 [k, n] or [b, k, n], batch 1 broadcasting; "
        "pertoken_scale [m] applies to every batch.",
        "Wrong batch strides or broadcasting."}},
      {"SpecialScale",
       {"EDGE_CASE",
        "Scales +-Inf, NaN, +-0, subnormal, and an all-zero row of x1: 0 * Inf = NaN, x * Inf = "
        "+-Inf, and the casts keep NaN / Inf [inf: NaN handling is undocumented; IEEE rules].",
        "Documents the IEEE behaviour of the epilogue."}},
      {"Random",
       {"BASIC",
        "Seeded uniform int8 / int4 operands in benchdnn-style safe ranges "
        "(qconf::gen::safe_int_range: every partial sum fits the accumulator), odd m, k, n "
        "(tails of 16/64-wide kernels), random full-mantissa scales.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. tensor helpers ------------------------------------------------------------------------
Tensor i8(Shape s, const std::vector<int>& v) {
  std::vector<int8_t> b(v.begin(), v.end());
  return Tensor::from<int8_t>(std::move(s), b);
}
Tensor f32(Shape s, const std::vector<float>& v) { return Tensor::from<float>(std::move(s), v); }
Tensor f32_bits(Shape s, const std::vector<uint32_t>& v) {
  return Tensor::from(DType::kF32, std::move(s), v);
}
Tensor bf16(Shape s, const std::vector<float>& v) {
  std::vector<uint16_t> b;
  for (float f : v) b.push_back(num::f32_to_bf16(f));
  return Tensor::from(DType::kBF16, std::move(s), b);
}
// The int64 quant param torch_npu.npu_trans_quant_param(scale, offset) makes (default round_mode).
Tensor int64_scale(const Tensor& scale, const Tensor* offset = nullptr) {
  return ref::npu_trans_quant_param(scale, offset, TransQuantEncoding::kFp19Trunc).quant_param;
}

uint64_t seed_of(const std::string& name) {
  return rng::seed_from_string(std::string(kOp) + "/" + name);
}
Tensor rand_i8(Shape s, int64_t lo, int64_t hi, const std::string& name, uint64_t stream) {
  return gen::int_tensor(DType::kI8, s, lo, hi, seed_of(name), stream);
}
// int4 operand [rows, cols] packed to int32 [rows, cols/8].
Tensor rand_i4_packed(int64_t rows, int64_t cols, const std::string& name, uint64_t stream) {
  return ref::npu_convert_weight_to_int4pack(
      gen::int_tensor(DType::kI32, {rows, cols}, -8, 7, seed_of(name), stream));
}
// Positive fp32 scales with full 24-bit significands in [2^e, 2^(e+1)): their low 13 bits are
// almost never zero, so the FP19 truncation shows.
Tensor rand_scale(int64_t n, int e, const std::string& name, uint64_t stream) {
  return gen::float_tensor(DType::kF32, {n}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, e - 23),
                           seed_of(name), stream);
}
Tensor rand_bf16_scale(int64_t n, int e, const std::string& name, uint64_t stream) {
  return gen::float_tensor(DType::kBF16, {n}, gen::FloatDist::grid(128, 255, e - 7), seed_of(name),
                           stream);
}
Tensor rand_int32(Shape s, int64_t lo, int64_t hi, const std::string& name, uint64_t stream) {
  return gen::int_tensor(DType::kI32, s, lo, hi, seed_of(name), stream);
}
Tensor rand_float(DType dt, int64_t n, int sigma_log2, const std::string& name, uint64_t stream) {
  return gen::float_tensor(dt, {n}, gen::FloatDist::normal(sigma_log2), seed_of(name), stream);
}

// x1 [1, k] and x2 [k, n] whose product is exactly `targets` (one column each): x1 is
// [127, ..., 127, 1]; column j holds T_j / 127 spread over entries of magnitude <= 127, then the
// remainder T_j % 127 against the final 1.
std::pair<Tensor, Tensor> operands_for_acc(const std::vector<int64_t>& targets) {
  int64_t q = 1;
  for (int64_t t : targets) q = std::max<int64_t>(q, (std::llabs(t / 127) + 126) / 127);
  const int64_t k = q + 1, n = static_cast<int64_t>(targets.size());
  std::vector<int> x1(static_cast<size_t>(k), 127), x2(static_cast<size_t>(k * n), 0);
  x1.back() = 1;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t t = targets[static_cast<size_t>(j)];
    int64_t quot = std::llabs(t / 127);
    const int sign = t < 0 ? -1 : 1;
    for (int64_t i = 0; i < q && quot > 0; ++i) {
      const int64_t c = std::min<int64_t>(127, quot);
      x2[static_cast<size_t>(i * n + j)] = static_cast<int>(sign * c);
      quot -= c;
    }
    x2[static_cast<size_t>(q * n + j)] = static_cast<int>(t % 127);
  }
  return {i8({1, k}, x1), i8({k, n}, x2)};
}

Params params(const std::string& out, const std::string& fp19 = "",
              const std::string& fixpipe = "") {
  Params p{{"output_dtype", out}};
  if (!fp19.empty()) p["opplugin_fp19"] = fp19;
  if (!fixpipe.empty()) p["fixpipe_precision"] = fixpipe;
  return p;
}

QuantMatmulConfig config_of(const Params& p) {
  QuantMatmulConfig c;
  c.output_dtype = parse_dtype(param_str(p, "output_dtype", "int8"));
  const std::string fp19 = param_str(p, "opplugin_fp19", "true");
  if (fp19 != "true" && fp19 != "false")
    throw std::invalid_argument("opplugin_fp19 must be true or false, got " + fp19);
  c.opplugin_fp19 = fp19 == "true";
  c.fixpipe = parse_fixpipe_precision(param_str(p, "fixpipe_precision", "fp32"));
  return c;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

QuantMatmulStages run_ref(const Params& p, const TensorMap& in) {
  return ref::npu_quant_matmul(in.at("x1"), in.at("x2"), in.at("scale"), opt_input(in, "offset"),
                               opt_input(in, "pertoken_scale"), opt_input(in, "bias"),
                               config_of(p));
}

// Modular inverse of an odd number modulo 2^64 (Newton).
uint64_t inverse_mod_2_64(uint64_t a) {
  uint64_t x = a;
  for (int i = 0; i < 6; ++i) x *= 2 - a * x;
  return x;
}

// acc and an FP19 scale M * 2^-e (M odd, 11 bits) whose exact product sits within a few 2^-e of
// an output rounding boundary, so that fp32(fp32(acc) * scale) lands ON the boundary (a tie)
// while the exact product does not: the two fixpipe readings give different outputs.
// int8: boundaries k + 0.5 in [lo, hi); fp16: midpoints between fp16 values in [lo, hi).
struct Separator {
  int64_t acc;
  float scale;
};
Separator fixpipe_separator(DType out, int e, double lo, double hi) {
  const uint64_t mod = uint64_t{1} << e, half = mod / 2;
  const num::FloatFormat& f = out == DType::kF16 ? num::kF16 : num::kF32;
  for (uint64_t m = 2047; m >= 1025; m -= 2) {
    const uint64_t inv = inverse_mod_2_64(m) & (mod - 1);
    for (int d = -40; d <= 40; ++d) {
      if (d == 0) continue;
      // acc * m = boundary * 2^e + d  (mod 2^e): boundary fraction 1/2 on the 2^-e grid.
      const uint64_t target = (half + static_cast<uint64_t>(static_cast<int64_t>(mod) + d)) % mod;
      const uint64_t acc = (target * inv) & (mod - 1);
      const float scale = std::ldexp(static_cast<float>(m), -e);
      const num::Exact exact =
          num::Exact(static_cast<int64_t>(acc)) * num::to_exact(num::kF32, num::f32_bits(scale));
      const double v = static_cast<double>(acc) * static_cast<double>(scale);
      if (v < lo || v >= hi || acc >= (uint64_t{1} << 24)) continue;
      const float p = num::f32_mul(static_cast<float>(acc), scale);
      bool differs;
      if (out == DType::kI8) {
        differs =
            num::round_to_integer(exact, num::Round::kRint) !=
            num::round_to_integer(num::to_exact(num::kF32, num::f32_bits(p)), num::Round::kRint);
      } else {
        differs = num::encode(f, exact, num::Round::kRint) !=
                  num::convert(num::kF32, num::f32_bits(p), f, num::Round::kRint);
      }
      if (differs) return {static_cast<int64_t>(acc), scale};
    }
  }
  throw std::logic_error("npu_quant_matmul: no fixpipe separator found");
}

// ---- 3. cases ---------------------------------------------------------------------------------
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
  // Two cases must give different outputs: a separator that does not separate is a bug here.
  auto expect_differ = [&](const std::string& a, const std::string& b) {
    const CaseSpec *ca = nullptr, *cb = nullptr;
    for (const auto& c : v) {
      if (c.name == a) ca = &c;
      if (c.name == b) cb = &c;
    }
    if (!ca || !cb ||
        run_ref(ca->params, ca->inputs).out.bit_equal(run_ref(cb->params, cb->inputs).out))
      throw std::logic_error(std::string(kOp) + ": cases " + a + " and " + b +
                             " do not separate their variants");
  };

  // -- each formula combination (aclnnQuantMatmulV4 A2/A3 table) on one random 2x16 @ 16x12 --
  {
    const std::string nm = "combo";
    const int64_t m = 2, k = 16, n = 12;
    const Tensor x1 = rand_i8({m, k}, -128, 127, nm, 0), x2 = rand_i8({k, n}, -128, 127, nm, 1);
    const Tensor s_f32 = rand_scale(n, -10, nm, 2);  // |acc| ~ 3e4 -> outputs ~ 30
    const Tensor s_bf16 = rand_bf16_scale(n, -10, nm, 3);
    const Tensor s_i64 = int64_scale(s_f32);
    const Tensor off =
        f32({n}, {0.5f, -0.5f, 1.5f, -2.5f, 3, -3, 100, -100, 7.25f, 255.5f, -300, 20});
    const Tensor s_i64_off = int64_scale(s_f32, &off);
    const Tensor bias_i32 = rand_int32({n}, -40000, 40000, nm, 4);
    const Tensor bias_f32 = rand_float(DType::kF32, n, 4, nm, 5);
    const Tensor bias_bf16 = rand_float(DType::kBF16, n, 4, nm, 6);
    const Tensor bias_f16 = rand_float(DType::kF16, n, 4, nm, 7);
    const Tensor pt = gen::float_tensor(
        DType::kF32, {m}, gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -23), seed_of(nm), 8);
    const Tensor pt_s_f32 = rand_scale(n, -11, nm, 9);  // pertoken in [1, 2): outputs ~ 30
    const Tensor pt_s_bf16 = rand_bf16_scale(n, -11, nm, 10);
    auto base = [&](const Tensor& scale) {
      return TensorMap{{"x1", x1}, {"x2", x2}, {"scale", scale}};
    };
    auto with = [](TensorMap in, const char* name, const Tensor& t) {
      in[name] = t;
      return in;
    };
    for (const char* fx : {"fp32", "exact"}) {
      const std::string f = fx;
      add("combo_int64_fp16_" + f, "int64 scale (npu_trans_quant_param), fp16: x1@x2*scale",
          {"FormulaCombination"}, params("float16", "", f), base(s_i64));
      add("combo_int64_fp16_bias_i32_" + f,
          "int64 scale, int32 bias, fp16: (x1@x2 + bias)*scale (W8A8 static, fp16 model)",
          {"FormulaCombination", "W8A8Static"}, params("float16", "", f),
          with(base(s_i64), "bias", bias_i32));
      add("combo_int64_int8_offset_" + f,
          "int64 scale with int9 offsets in bits 37..45, int32 bias, int8: requant",
          {"FormulaCombination", "RoundingTie"}, params("int8", "", f),
          with(base(s_i64_off), "bias", bias_i32));
      add("combo_fp32_fp16_opplugin_" + f,
          "fp32 scale, fp16, no pertoken: op-plugin converts the scale to int64 (FP19)",
          {"FormulaCombination", "Fp19Truncation"}, params("float16", "true", f), base(s_f32));
      add("combo_fp32_int8_offset_opplugin_" + f,
          "fp32 scale + fp32 offset, int8: op-plugin converts both (FP19, int9)",
          {"FormulaCombination", "Fp19Truncation", "RoundingTie"}, params("int8", "true", f),
          with(base(s_f32), "offset", off));
    }
    add("combo_fp32_fp16_direct", "fp32 scale at full precision (no op-plugin conversion), fp16",
        {"FormulaCombination", "Fp19Truncation"}, params("float16", "false"), base(s_f32));
    add("combo_fp32_int8_offset_direct",
        "fp32 scale at full precision, offset s9(rint(offset)), int8 requant",
        {"FormulaCombination", "Fp19Truncation", "RoundingTie"}, params("int8", "false"),
        with(base(s_f32), "offset", off));
    add("combo_fp32_bf16", "fp32 scale, bf16 (vector dequant; op-plugin does not convert)",
        {"FormulaCombination"}, params("bfloat16"), base(s_f32));
    add("combo_fp32_bf16_bias_i32",
        "fp32 scale, int32 bias, bf16: (x1@x2 + bias)*scale (W8A8 static, bf16 model)",
        {"FormulaCombination", "W8A8Static"}, params("bfloat16"),
        with(base(s_f32), "bias", bias_i32));
    add("combo_fp32_bf16_bias_bf16", "fp32 scale, bf16 bias, bf16: x1@x2*scale + bias",
        {"FormulaCombination"}, params("bfloat16"), with(base(s_f32), "bias", bias_bf16));
    add("combo_bf16scale_bf16_bias_f32", "bf16 scale, fp32 bias, bf16: x1@x2*scale + bias",
        {"FormulaCombination"}, params("bfloat16"), with(base(s_bf16), "bias", bias_f32));
    add("combo_pertoken_bf16", "fp32 scale * pertoken, bf16 (W8A8_DYNAMIC, bf16 model)",
        {"FormulaCombination", "W8A8Dynamic"}, params("bfloat16"),
        with(base(pt_s_f32), "pertoken_scale", pt));
    add("combo_pertoken_bf16scale_bf16", "bf16 scale * pertoken, bf16",
        {"FormulaCombination", "W8A8Dynamic"}, params("bfloat16"),
        with(base(pt_s_bf16), "pertoken_scale", pt));
    add("combo_pertoken_fp16", "fp32 scale * pertoken, fp16 (W8A8_DYNAMIC, fp16 model)",
        {"FormulaCombination", "W8A8Dynamic"}, params("float16"),
        with(base(pt_s_f32), "pertoken_scale", pt));
    add("combo_pertoken_bf16_bias_i32", "(x1@x2 + bias)*scale*pertoken, bf16",
        {"FormulaCombination"}, params("bfloat16"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_i32));
    add("combo_pertoken_fp16_bias_i32", "(x1@x2 + bias)*scale*pertoken, fp16",
        {"FormulaCombination"}, params("float16"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_i32));
    add("combo_pertoken_bf16_bias_bf16", "x1@x2*scale*pertoken + bias (bf16), bf16",
        {"FormulaCombination", "W8A8Dynamic"}, params("bfloat16"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_bf16));
    add("combo_pertoken_fp16_bias_f16", "x1@x2*scale*pertoken + bias (fp16), fp16",
        {"FormulaCombination", "W8A8Dynamic"}, params("float16"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_f16));
    add("combo_pertoken_fp16_bias_f32", "x1@x2*scale*pertoken + bias (fp32), fp16",
        {"FormulaCombination"}, params("float16"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_f32));
    add("combo_pertoken_fp32_out", "x1@x2*scale*pertoken + bias, float32 output (not cast)",
        {"FormulaCombination"}, params("float32"),
        with(with(base(pt_s_f32), "pertoken_scale", pt), "bias", bias_f32));
    add("combo_int32_out", "int32 output: acc, the scale is not applied",
        {"FormulaCombination", "Int32Output"}, params("int32"), base(s_f32));
    add("combo_int32_out_bias", "int32 output: acc + int32 bias",
        {"FormulaCombination", "Int32Output"}, params("int32"),
        with(base(s_bf16), "bias", bias_i32));
    add("combo_scale_broadcast", "scale [1] broadcast to every column, bf16",
        {"FormulaCombination"}, params("bfloat16"), base(f32({1}, {0.0009765625f * 1.375f})));
    expect_differ("combo_fp32_fp16_opplugin_fp32", "combo_fp32_fp16_direct");
  }

  // -- FP19 truncation: scales with low bits set, fp16 and int8, op-plugin or not -----------
  {
    // 0x3C23D70A = fp32(0.01): npu_trans_quant_param keeps 0x3C23C000 (0.0099945..);
    // 0x3F7FFFFF = 1 - 2^-24 becomes 0x3F7FE000 = 1 - 2^-10.
    const Tensor scale = f32_bits({2}, {0x3C23D70Au, 0x3F7FFFFFu});
    const auto [x1, x2] = operands_for_acc({12345, 1000});
    for (const char* fp19 : {"true", "false"}) {
      const std::string f = fp19;
      add("fp19_truncation_fp16_" + f,
          "scales 0.01 (0x3C23D70A) and 1-2^-24 (0x3F7FFFFF), acc [12345, 1000], fp16: "
          "123.45 vs 123.38 and 1000 vs 999.02",
          {"Fp19Truncation"}, params("float16", f, "fp32"),
          {{"x1", x1}, {"x2", x2}, {"scale", scale}});
    }
    expect_differ("fp19_truncation_fp16_true", "fp19_truncation_fp16_false");
  }
  {
    // int8: accs (searched, ascending) where rint(acc * 0.01) changes with the FP19 scale.
    const uint32_t full = 0x3C23D70Au, fp19 = full & kFp19KeepMask;
    std::vector<int64_t> accs;
    for (int64_t a = 1; a < 12000 && accs.size() < 3; ++a) {
      const float fa = static_cast<float>(a);
      if (std::nearbyint(num::f32_mul(fa, num::f32_from_bits(full))) !=
          std::nearbyint(num::f32_mul(fa, num::f32_from_bits(fp19))))
        accs.push_back(accs.size() == 1 ? -a : a);
    }
    const auto [x1, x2] = operands_for_acc(accs);
    std::string comment = "scale 0.01 (0x3C23D70A), accs";
    for (int64_t a : accs) comment += " " + std::to_string(a);
    comment += ": rint(acc * scale) changes by one when the scale is FP19 (0x3C23C000)";
    for (const char* fpf : {"true", "false"}) {
      const std::string f = fpf;
      add("fp19_truncation_int8_" + f, comment, {"Fp19Truncation"}, params("int8", f, "fp32"),
          {{"x1", x1}, {"x2", x2}, {"scale", f32_bits({1}, {full})}});
    }
    expect_differ("fp19_truncation_int8_true", "fp19_truncation_int8_false");
  }

  // -- fixpipe double rounding: fp16 and int8 separators (searched, then checked) -----------
  {
    const Separator s16 = fixpipe_separator(DType::kF16, 20, 1024, 2048);
    const Separator s8 = fixpipe_separator(DType::kI8, 24, 32, 120);
    const auto [a16, b16] = operands_for_acc({s16.acc, 3000});
    const auto [a8, b8] = operands_for_acc({s8.acc, -s8.acc});
    const Tensor q16 = int64_scale(f32({1}, {s16.scale}));
    const Tensor q8 = int64_scale(f32({1}, {s8.scale}));
    const std::string c16 = "acc " + std::to_string(s16.acc) + " * FP19 scale " +
                            num::exact_str(num::to_exact(num::kF32, num::f32_bits(s16.scale))) +
                            ": exact product just off an fp16 midpoint, fp32 product on it";
    const std::string c8 = "acc +-" + std::to_string(s8.acc) + " * FP19 scale " +
                           num::exact_str(num::to_exact(num::kF32, num::f32_bits(s8.scale))) +
                           ": exact product just off k + 0.5, fp32 product on it";
    for (const char* fx : {"fp32", "exact"}) {
      const std::string f = fx;
      add("fixpipe_double_rounding_fp16_" + f, c16, {"FixpipeDoubleRounding"},
          params("float16", "", f), {{"x1", a16}, {"x2", b16}, {"scale", q16}});
      add("fixpipe_double_rounding_int8_" + f, c8, {"FixpipeDoubleRounding"}, params("int8", "", f),
          {{"x1", a8}, {"x2", b8}, {"scale", q8}});
    }
    expect_differ("fixpipe_double_rounding_fp16_fp32", "fixpipe_double_rounding_fp16_exact");
    expect_differ("fixpipe_double_rounding_int8_fp32", "fixpipe_double_rounding_int8_exact");
  }

  // -- int8 requant: s9 clipping at +-256, offsets beyond int9, saturation at -128 / 127, ties --
  {
    // Column j: acc, scale, offset.  acc*scale | s9 | + s9(offset) | y
    const std::vector<int64_t> acc = {300, -300, 200, -200, -200, 256, 5, 7, -5, 1000, 127, -129};
    const std::vector<float> sc = {1, 1, 1, 1, 1, 1, 0.5f, 0.5f, 0.5f, 0.125f, 1, 1};
    const std::vector<float> off = {-200, 200, 0, 0, 300, -255, 0, 0, 0, -2.5f, 0.5f, 1.5f};
    const auto [x1, x2] = operands_for_acc(acc);
    const Tensor scale = f32({12}, sc), offset = f32({12}, off);
    const std::string comment =
        "columns: 300-200 -> s9 255-200 = 55; -300+200 -> -56; 200 -> 127; -200 -> -128; "
        "-200 + s9(300)=255 -> 55; 256 -> 255-255 = 0; 2.5 -> 2, 3.5 -> 4, -2.5 -> -2 "
        "(half even); 125 + s9(-2.5) = -2 -> 123; 127 + rint(0.5) = 0 -> 127; -129 -> "
        "-129 + 2 -> -127";
    add("requant_saturation_int64", comment + " (int64 scale with offsets)",
        {"RequantSaturation", "RoundingTie"}, params("int8", "", "fp32"),
        {{"x1", x1}, {"x2", x2}, {"scale", int64_scale(scale, &offset)}});
    for (const char* fp19 : {"true", "false"}) {
      const std::string f = fp19;
      add("requant_saturation_fp32_scale_" + f, comment + " (fp32 scale + offset tensors)",
          {"RequantSaturation", "RoundingTie"}, params("int8", f, "fp32"),
          {{"x1", x1}, {"x2", x2}, {"scale", scale}, {"offset", offset}});
    }
  }

  // -- output casts on ties: bf16 / fp16 midpoints, half to even ---------------------------
  {
    const auto [x1, x2] = operands_for_acc({257, 259, -257, 2049, 2051, -2051, 4098, 4102});
    add("cast_rint_ties_bf16",
        "scale 1: acc 257, 259, -257 are bf16 midpoints (-> 256, 260, -256); 2049.. not",
        {"RoundingTie"}, params("bfloat16"), {{"x1", x1}, {"x2", x2}, {"scale", f32({1}, {1})}});
    add("cast_rint_ties_fp16",
        "scale 1 (int64): acc 2049, 2051, -2051, 4098, 4102 are fp16 midpoints "
        "(-> 2048, 2052, -2052, 4096, 4104)",
        {"RoundingTie"}, params("float16", "", "fp32"),
        {{"x1", x1}, {"x2", x2}, {"scale", int64_scale(f32({1}, {1}))}});
  }

  // -- |acc| > 2^24: the int32 -> fp32 conversion rounds ------------------------------------
  {
    const int64_t p24 = int64_t{1} << 24;
    const auto [x1, x2] = operands_for_acc({p24 + 1, p24 + 3, -(p24 + 5)});
    add("acc_beyond_2p24",
        "acc 2^24+1, 2^24+3, -(2^24+5) (k = 1042): fp32(acc) = 2^24, 2^24+4, -(2^24+4) "
        "(ties to even); bf16 scale 1, float32 output shows the conversion",
        {"AccBeyond2p24"}, params("float32"), {{"x1", x1}, {"x2", x2}, {"scale", bf16({1}, {1})}});
  }

  // -- int32 overflow of acc + int32 bias -------------------------------------------------
  {
    const auto [x1, x2] = operands_for_acc({1000, -1000, 5});
    const Tensor bias = Tensor::from<int32_t>({3}, {INT32_MAX - 10, INT32_MIN + 5, INT32_MAX});
    add("int32_overflow_int32_out",
        "acc [1000, -1000, 5] + bias [2^31-11, -2^31+5, 2^31-1]: exact 2147484637, "
        "-2147484643, 2147483652 wrap to -2147482659, 2147482653, -2147483644",
        {"Int32Overflow", "Int32Output"}, params("int32"),
        {{"x1", x1}, {"x2", x2}, {"scale", f32({1}, {1})}, {"bias", bias}});
    add("int32_overflow_bf16_out",
        "the same wrapped acc + bias (exact 2147484637, -2147484643, 2147483652), then * 2^-20, "
        "bf16: the wrapped sign shows",
        {"Int32Overflow"}, params("bfloat16"),
        {{"x1", x1}, {"x2", x2}, {"scale", f32({1}, {0x1p-20f})}, {"bias", bias}});
  }

  // -- int4 operands ----------------------------------------------------------------------
  {
    // x1 = one word 0x8765 4321 -> [1, 2, 3, 4, 5, 6, 7, -8]; x2 = identity 8x8 (word of row t
    // = 1 << 4t): out = x1's elements in order.
    std::vector<int32_t> eye(8);
    for (int t = 0; t < 8; ++t) eye[static_cast<size_t>(t)] = int32_t{1} << (4 * t);
    add("int4_nibble_order",
        "x1 word 0x87654321 = [1..7, -8] times the 8x8 identity: out = [1, 2, 3, 4, 5, 6, 7, -8]",
        {"Int4Operands"}, params("float16", "", "fp32"),
        {{"x1", Tensor::from<int32_t>({1, 1}, {static_cast<int32_t>(0x87654321u)})},
         {"x2", Tensor::from<int32_t>({8, 1}, eye)},
         {"scale", int64_scale(f32({1}, {1}))}});
    const std::string nm = "int4";
    const Tensor x1 = rand_i4_packed(2, 32, nm, 0), x2 = rand_i4_packed(32, 16, nm, 1);
    add("int4_a4w4_fp16_bias_i32", "int4 x int4 (k 32, n 16), int64 scale, int32 bias, fp16",
        {"Int4Operands"}, params("float16", "", "fp32"),
        {{"x1", x1},
         {"x2", x2},
         {"scale", int64_scale(rand_scale(16, -4, nm, 2))},
         {"bias", rand_int32({16}, -300, 300, nm, 3)}});
    add("int4_pertoken_bf16_bias_bf16", "int4 x int4, fp32 scale * pertoken + bf16 bias, bf16",
        {"Int4Operands"}, params("bfloat16"),
        {{"x1", x1},
         {"x2", x2},
         {"scale", rand_scale(16, -6, nm, 4)},
         {"pertoken_scale", rand_scale(2, 0, nm, 5)},
         {"bias", rand_float(DType::kBF16, 16, 0, nm, 6)}});
  }

  // -- batch --------------------------------------------------------------------------------
  {
    const std::string nm = "batch";
    add("batch_x1_3d_x2_2d", "x1 [2, 3, 16] @ x2 [16, 8], pertoken [3] per batch, bf16",
        {"Batch", "W8A8Dynamic"}, params("bfloat16"),
        {{"x1", rand_i8({2, 3, 16}, -128, 127, nm, 0)},
         {"x2", rand_i8({16, 8}, -128, 127, nm, 1)},
         {"scale", rand_scale(8, -12, nm, 2)},
         {"pertoken_scale", rand_scale(3, 0, nm, 3)}});
    add("batch_both_3d", "x1 [2, 2, 16] @ x2 [2, 16, 8], int64 scale, int32 bias, fp16", {"Batch"},
        params("float16", "", "fp32"),
        {{"x1", rand_i8({2, 2, 16}, -128, 127, nm, 4)},
         {"x2", rand_i8({2, 16, 8}, -128, 127, nm, 5)},
         {"scale", int64_scale(rand_scale(8, -8, nm, 6))},
         {"bias", rand_int32({8}, -1000, 1000, nm, 7)}});
    const Tensor s = rand_scale(8, -9, nm, 10), o = f32({1}, {-3});
    add("batch_broadcast_x1", "x1 [1, 2, 16] broadcast over x2 [3, 16, 8], int8 with offset -3",
        {"Batch"}, params("int8", "", "fp32"),
        {{"x1", rand_i8({1, 2, 16}, -128, 127, nm, 8)},
         {"x2", rand_i8({3, 16, 8}, -128, 127, nm, 9)},
         {"scale", int64_scale(s, &o)}});
  }

  // -- special scales -------------------------------------------------------------------------
  {
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Tensor scale =
        f32({8}, {inf, -inf, nan, 0.0f, -0.0f, 0x1p-140f, std::numeric_limits<float>::max(), 1});
    std::vector<int> x1v(32, 0);
    const Tensor x1r = rand_i8({1, 16}, -128, 127, "special", 0);
    for (int i = 0; i < 16; ++i) x1v[static_cast<size_t>(i)] = x1r.data<int8_t>()[i];
    add("special_scale_bf16",
        "scale [Inf, -Inf, NaN, 0, -0, 2^-140, max, 1]; row 1 of x1 is zero (0 * Inf = NaN)",
        {"SpecialScale"}, params("bfloat16"),
        {{"x1", i8({2, 16}, x1v)},
         {"x2", rand_i8({16, 8}, -128, 127, "special", 1)},
         {"scale", scale}});
  }

  // -- seeded random sets: safe ranges, tails and odd sizes, one combination each ----------
  enum class Kind { kPertokenBf16, kPertokenFp16, kInt64Fp16, kStaticBf16 };
  struct R {
    const char* name;
    int64_t m, k, n;
    int acc_digits;  // 24: every partial sum exact in fp32 too; 31: int32 only
    bool int4;
    Kind kind;
  };
  for (const R& r : {R{"random_5x67x19_pertoken_bf16", 5, 67, 19, 31, false, Kind::kPertokenBf16},
                     R{"random_7x100x9_safe24_int64_fp16", 7, 100, 9, 24, false, Kind::kInt64Fp16},
                     R{"random_2x150x21_pertoken_fp16", 2, 150, 21, 31, false, Kind::kPertokenFp16},
                     R{"random_3x29x40_static_bf16", 3, 29, 40, 31, false, Kind::kStaticBf16},
                     R{"random_int4_3x72x24_int64_fp16", 3, 72, 24, 31, true, Kind::kInt64Fp16}}) {
    const std::string nm = r.name;
    const gen::IntRange ra = gen::safe_int_range(r.acc_digits, r.k, DType::kI8);
    const Tensor x1 =
        r.int4 ? rand_i4_packed(r.m, r.k, nm, 0) : rand_i8({r.m, r.k}, ra.lo, ra.hi, nm, 0);
    const Tensor x2 =
        r.int4 ? rand_i4_packed(r.k, r.n, nm, 1) : rand_i8({r.k, r.n}, ra.lo, ra.hi, nm, 1);
    const std::string comment =
        "m, k, n = " + std::to_string(r.m) + ", " + std::to_string(r.k) + ", " +
        std::to_string(r.n) + "; " +
        (r.int4 ? std::string("int4 [-8, 7]")
                : "int8 [" + std::to_string(ra.lo) + ", " + std::to_string(ra.hi) + "] (safe for " +
                      std::to_string(r.acc_digits) + " bits)");
    const int e = r.int4 ? -4 : -10;  // outputs of a few tens
    switch (r.kind) {
      case Kind::kPertokenBf16:
        add(nm, comment + "; fp32 scale * pertoken + bf16 bias, bf16", {"Random", "W8A8Dynamic"},
            params("bfloat16"),
            {{"x1", x1},
             {"x2", x2},
             {"scale", rand_scale(r.n, e - 1, nm, 2)},
             {"pertoken_scale", rand_scale(r.m, 0, nm, 3)},
             {"bias", rand_float(DType::kBF16, r.n, 2, nm, 4)}});
        break;
      case Kind::kPertokenFp16:
        add(nm, comment + "; fp32 scale * pertoken + fp16 bias, fp16", {"Random", "W8A8Dynamic"},
            params("float16"),
            {{"x1", x1},
             {"x2", x2},
             {"scale", rand_scale(r.n, e - 1, nm, 2)},
             {"pertoken_scale", rand_scale(r.m, 0, nm, 3)},
             {"bias", rand_float(DType::kF16, r.n, 2, nm, 4)}});
        break;
      case Kind::kInt64Fp16:
        add(nm, comment + "; int64 scale, int32 bias, fp16", {"Random", "W8A8Static"},
            params("float16", "", "fp32"),
            {{"x1", x1},
             {"x2", x2},
             {"scale", int64_scale(rand_scale(r.n, e, nm, 5))},
             {"bias", rand_int32({r.n}, -5000, 5000, nm, 6)}});
        break;
      case Kind::kStaticBf16:
        add(nm, comment + "; fp32 scale, int32 bias, bf16", {"Random", "W8A8Static"},
            params("bfloat16"),
            {{"x1", x1},
             {"x2", x2},
             {"scale", rand_scale(r.n, e, nm, 5)},
             {"bias", rand_int32({r.n}, -5000, 5000, nm, 6)}});
        break;
    }
  }
  return v;
}

// ---- 4. kernels, oracle, registration ------------------------------------------------------
void put(TensorMap& out, const char* name, std::optional<Tensor>& t) {
  if (t) out[name] = std::move(*t);
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    QuantMatmulStages s = fn(p, in);
    out["acc"] = std::move(s.acc);
    put(out, "acc_bias", s.acc_bias);
    put(out, "dequant", s.dequant);
    put(out, "pertoken", s.pertoken);
    put(out, "biased", s.biased);
    put(out, "requant", s.requant);
    out["out"] = std::move(s.out);
  };
}

std::map<std::string, Check> oracle(const Params&, const TensorMap&, const TensorMap& out) {
  std::map<std::string, Check> m;
  for (const auto& [name, t] : out)
    if (dtype_is_float(t.dtype())) m[name].mode = CheckMode::kSpecial;
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "torch_npu.npu_quant_matmul: int32 acc = x1 @ x2 (int8, or int4 packed 8 per int32) "
      "[+ int32 bias] -> fp32 -> * scale -> * pertoken_scale -> + float bias -> cast (CAST_RINT; "
      "int8: clip(s9(rint(v)) + s9(offset), -128, 127)). An int64 scale is the FP19 quant param "
      "of npu_trans_quant_param. Variants: opplugin_fp19 (op-plugin's hidden FP19 conversion of "
      "an fp32 scale) and fixpipe_precision (fp32 | exact product on the int64-scale path).";
  d.sources = {
      "notes/torch_npu_semantics.md §2 (formulas, pertoken order, int64 scale, requant golden), §0",
      "ops-nn matmul/quant_batch_matmul_v3/docs/aclnnQuantMatmulV4.md (formulas, dtype table) "
      "[doc]",
      "ops-nn quant_batch_matmul_v3_pertoken.h; qbmmv3_kernel_golden.py compute_pertoken, "
      "compute_requant [code, test]",
      "op-plugin op_plugin/ops/opapi/QuantMatmulKernelNpuOpApi.cpp L297-300 "
      "use_trans_quant_param [code]",
      "ops-nn matmul/common/tests/st/arch35/matmul_quant_util.py u64_to_deq_scale / "
      "u64_to_offset [test]",
      "notes/vllm_ascend_quant.md §A (W8A8 static, W8A8_DYNAMIC apply)"};
  d.inputs = {"x1", "x2", "scale", "offset", "pertoken_scale", "bias"};
  d.stages = {{"acc", false, "int32 x1 @ x2 (wraps modulo 2^32)"},
              {"acc_bias", false, "int32 acc + int32 bias (wraps modulo 2^32)"},
              {"dequant", false, "float32 fp32(acc) * scale (absent for fixpipe_precision exact)"},
              {"pertoken", false, "float32 dequant * pertoken_scale[m]"},
              {"biased", false, "float32 ... + float(bias)"},
              {"requant", false, "int32 (int8 output): s9(rint(v)) in [-256, 255]"},
              {"out", true, "output_dtype"}};
  d.variants = {
      {"output_dtype",
       {"int8", "float16", "bfloat16", "float32", "int32"},
       "the op's output_dtype argument (not a disagreement; int8 is torch_npu's default)"},
      {"opplugin_fp19",
       {"true", "false"},
       "true: op-plugin turns an fp32 scale (and offset) into npu_trans_quant_param's int64 when "
       "there is no pertoken_scale and the output is not bf16/int32 (FP19 truncation); false: "
       "the scale is used as given (aclnn called directly, CPU ports)"},
      {"fixpipe_precision",
       {"fp32", "exact"},
       "int64-scale path: fp32(acc) * scale in fp32 then the cast, or the exact product rounded "
       "once [inf: undocumented]"}};
  d.notes = notes();
  d.reference = kernel([](const Params& p, const TensorMap& in) { return run_ref(p, in); });
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel([](const Params& p, const TensorMap& in) {
    return opt::npu_quant_matmul(in.at("x1"), in.at("x2"), in.at("scale"), opt_input(in, "offset"),
                                 opt_input(in, "pertoken_scale"), opt_input(in, "bias"),
                                 config_of(p), true);
  });
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_npu_quant_matmul
}  // namespace qconf::conf
