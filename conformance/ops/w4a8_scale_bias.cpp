// Op: w4a8_scale_bias (vllm-ascend W4A8_DYNAMIC MoE correction term 8 * sum_k W * s).
//
// LLM-Compressor (HEAD update_bias_compressed_tensors): 8 * (W.fp32 * scale).sum(k).
// Old ModelSlim / mindie format (PR #2392 process_scale, process_scale_second): the same with
// W * per_group_scale first. An fp32 sum whose order torch does not fix: the output stage is
// EXACT when every order provably gives the exact value (benchdnn-style grid inputs), BOUNDED
// otherwise with a per-element bound derived from the exact sum (docs/bounds.md).
// Math: reference/ops/scales.cpp (ref::w4a8_scale_bias, ref::w4a8_scale_bias_bound),
// optimized/ops/scales.cpp.
#include "qconf/conformance/op.h"
#include "qconf/ops/scales.h"
#include "scales_cases.h"

namespace qconf::conf {
namespace conformance_ops_w4a8_scale_bias {

using namespace scales;

constexpr const char* kOp = "w4a8_scale_bias";

std::map<std::string, Note> notes() {
  return {
      {"EightTimesSum",
       {"BASIC",
        "Small hand-checked vectors: the result is 8 * sum_k W[e,k,n] * s[e,n] (the MSD "
        "kernel's int4 split x = 16 x_hi + x_lo' + 8 needs + 8 * sum W s).",
        "A port that forgets the factor 8 or sums over the wrong axis (N instead of K)."}},
      {"SignedInt4",
       {"FUNCTIONALITY",
        "W holds signed int4 values in int8 bytes, -8 and 7 included (two's complement, not the "
        "offset-binary v + 8 of compressed-tensors packing).",
        "A port that feeds unsigned nibbles (v + 8) adds 64 * sum s per column."}},
      {"PerGroupScale",
       {"FUNCTIONALITY",
        "Old format: weight_high = W * per_group_scale[e, k / (K/G), n] (contiguous groups of "
        "K/G rows), then * scale, in fp32.",
        "A port that maps row k to group k % G (interleaved) or forgets the per-group factor."}},
      {"ExactByConstruction",
       {"BASIC",
        "benchdnn-style inputs: scales are small integers times powers of two, so every product "
        "and every partial sum is an fp32 number: any summation order gives the exact result, "
        "checked EXACT (+0 and -0 not distinguished).",
        "Any arithmetic slip, however small, fails these cases, which a bound would hide for "
        "large K."}},
      {"BoundedSum",
       {"BASIC",
        "Realistic scales with full fp32 mantissas: the products and partial sums round; the sum "
        "order is not fixed by torch, so the stage is BOUNDED by 8 (gamma_{K+1} sum |T| + "
        "underflow slack), derived from the exact sum (docs/bounds.md).",
        "A port whose error exceeds what any summation order can produce."}},
      {"Cancellation",
       {"EDGE_CASE",
        "W alternates in sign so that sum_k W s is small against sum_k |W s|: the absolute bound "
        "scales with sum |T|, not with the result.",
        "A port whose bound or accumulation is relative to the result fails or passes by luck."}},
      {"ParamsDtypeScale",
       {"FUNCTIONALITY",
        "bf16 scales (LLM-Compressor) and bf16 per-group scales (PR #2392 params): widened to "
        "fp32 by type promotion before the fp32 products.",
        "A port that multiplies in bf16."}},
      {"Random",
       {"BASIC", "Seeded int4 weights in [-8, 7] and seeded scales (grid or full mantissa).",
        "General coverage; the seed is derived from the case id."}},
      {"SimdTail",
       {"EDGE_CASE", "N not a multiple of common vector widths.",
        "Tail loops that skip or over-read columns."}},
  };
}

Tensor int4_weight(Shape shape, const std::vector<int8_t>& w) {
  return Tensor::from<int8_t>(DType::kI8, std::move(shape), w);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  {
    // E=1, K=4, N=2: column 0 W = 1, 2, 3, 4 with s = 0.5 -> 8 * 10 * 0.5 = 40;
    // column 1 W = -8, 7, -1, 0 with s = 0.25 -> 8 * (-2) * 0.25 = -4.
    CaseSpec c = make_case("eight_times_sum_small",
                           "W[:, 0] = 1, 2, 3, 4, s = 0.5 -> 40; W[:, 1] = -8, 7, -1, 0, s = 0.25 "
                           "-> -4",
                           {"EightTimesSum", "SignedInt4", "ExactByConstruction"});
    c.inputs["weight"] = int4_weight({1, 4, 2}, {1, -8, 2, 7, 3, -1, 4, 0});
    c.inputs["scale"] = f32_vals({1, 1, 2}, {0.5f, 0.25f});
    v.push_back(std::move(c));
  }
  {
    CaseSpec c = make_case("signed_int4_extremes",
                           "all -8 in column 0, all 7 in column 1, K = 16, bf16 scales 2^-6 and "
                           "3 * 2^-8: -1024 * 2^-6 = -16 and 896 * 3 * 2^-8 = 10.5",
                           {"SignedInt4", "ParamsDtypeScale", "ExactByConstruction"});
    std::vector<int8_t> w;
    for (int k = 0; k < 16; ++k) {
      w.push_back(-8);
      w.push_back(7);
    }
    c.inputs["weight"] = int4_weight({1, 16, 2}, w);
    c.inputs["scale"] = half_vals(DType::kBF16, {1, 1, 2}, {0.015625f, 0.01171875f});
    v.push_back(std::move(c));
  }
  {
    // K = 8, G = 2: rows 0..3 use group 0 (pgs 1), rows 4..7 group 1 (pgs 4). W = 1 everywhere:
    // contiguous groups give 8 * (4 * 1 + 4 * 4) * s = 160 s; interleaved (k % G) would give
    // the same here, so W differs between the halves: rows 0..3 = 1, rows 4..7 = 2.
    CaseSpec c = make_case("per_group_row_mapping",
                           "K = 8, G = 2, W = 1 in rows 0..3 and 2 in rows 4..7, pgs = 1 | 4, "
                           "s = 0.125: contiguous groups give 8 * (4 + 32) * 0.125 = 36, "
                           "interleaved k % G would give 8 * (1 + 4 + 2 + 8) * 2 * 0.125 = 30",
                           {"PerGroupScale", "ExactByConstruction"});
    std::vector<int8_t> w;
    for (int k = 0; k < 8; ++k) w.push_back(k < 4 ? 1 : 2);
    c.inputs["weight"] = int4_weight({1, 8, 1}, w);
    c.inputs["scale"] = f32_vals({1, 1, 1}, {0.125f});
    c.inputs["per_group_scale"] = f32_vals({1, 2, 1}, {1.0f, 4.0f});
    v.push_back(std::move(c));
  }
  // benchdnn-style exact sets: scales m * 2^-12 (m <= 255 per channel, m <= 63 with groups),
  // per-group m * 2^-6 (m in [32, 127]): every T is a multiple of 2^-18 with at most 19
  // significant bits, and sum |T| <= K * 8 * 127 * 63 * 2^-18 < 2^24 * 2^-18 for K <= 128 (per
  // channel: K * 8 * 255 * 2^-12), so every partial sum is an fp32 number.
  auto add = [&](const std::string& name, Shape wshape, std::optional<int64_t> groups, DType sdt,
                 bool grid, bool cancel, std::vector<std::string> flags) {
    flags.insert(flags.begin(), "Random");
    const int64_t e = wshape[0], k = wshape[1], n = wshape[2];
    CaseSpec c =
        make_case(name,
                  std::string(grid ? "grid" : "full-mantissa") + " " +
                      std::string(dtype_name(sdt)) + " scales, weight " + shape_str(wshape) +
                      (groups ? ", G = " + std::to_string(*groups) : std::string(", per channel")) +
                      (cancel ? ", alternating-sign rows" : ""),
                  flags);
    const uint64_t seed = case_seed(kOp, name);
    Tensor w = gen::int_tensor(DType::kI8, wshape, -8, 7, seed, 0);
    if (cancel) {
      // Row k+1 = -row k (clamped to [-7, 7] first): the column sums nearly cancel.
      int8_t* p = w.data<int8_t>();
      for (int64_t ee = 0; ee < e; ++ee)
        for (int64_t kk = 0; kk + 1 < k; kk += 2)
          for (int64_t nn = 0; nn < n; ++nn) {
            int8_t& a = p[(ee * k + kk) * n + nn];
            if (a == -8) a = -7;
            p[(ee * k + kk + 1) * n + nn] =
                static_cast<int8_t>(-a + (nn % 3 == 0 && a > -7 ? 1 : 0));
          }
    }
    c.inputs["weight"] = std::move(w);
    if (grid)
      c.inputs["scale"] = gen::float_tensor(
          sdt, {e, 1, n}, gen::FloatDist::grid(1, groups ? 63 : 255, -12), seed, 1);
    else
      c.inputs["scale"] = random_bits_tensor(sdt, {e, 1, n}, 0x3A000000u, 0x3C7FFFFFu, seed, 1);
    if (groups) {
      if (grid)
        c.inputs["per_group_scale"] =
            gen::float_tensor(sdt, {e, *groups, n}, gen::FloatDist::grid(32, 127, -6), seed, 2);
      else
        c.inputs["per_group_scale"] =
            random_bits_tensor(sdt, {e, *groups, n}, 0x3F000000u, 0x3FFFFFFFu, seed, 2);
    }
    v.push_back(std::move(c));
  };
  add("grid_per_channel_bf16", {2, 64, 16}, std::nullopt, DType::kBF16, true, false,
      {"ExactByConstruction", "ParamsDtypeScale", "SignedInt4"});
  add("grid_per_group_bf16", {2, 128, 8}, 4, DType::kBF16, true, false,
      {"ExactByConstruction", "PerGroupScale", "ParamsDtypeScale"});
  add("grid_per_group_fp32_tail", {2, 48, 19}, 3, DType::kF32, true, false,
      {"ExactByConstruction", "PerGroupScale", "SimdTail"});
  add("grid_cancellation", {1, 64, 9}, std::nullopt, DType::kF32, true, true,
      {"ExactByConstruction", "Cancellation", "SimdTail"});
  add("fp32_per_channel_bounded", {2, 128, 17}, std::nullopt, DType::kF32, false, false,
      {"BoundedSum", "SimdTail"});
  add("fp32_per_group_bounded", {1, 192, 8}, 2, DType::kF32, false, false,
      {"BoundedSum", "PerGroupScale"});
  add("fp32_cancellation_bounded", {1, 200, 33}, std::nullopt, DType::kF32, false, true,
      {"BoundedSum", "Cancellation", "SimdTail"});
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A8_DYNAMIC MoE scale_bias = 8 * sum_k (W[e,k,n] (* per_group_scale[e, "
      "k/(K/G), n]) * scale[e,n]) in fp32: LLM-Compressor (per channel) and the old ModelSlim "
      "per-group format. Sum order not fixed: EXACT when provable, else BOUNDED.";
  d.sources = {
      "vllm-project/vllm-ascend quantization/methods/w4a8.py @01697b3e "
      "update_bias_compressed_tensors [code]",
      "/work/shared/seeds/001 vllm-ascend PR #2392 w4a8_dynamic.py process_scale, "
      "process_scale_second [code]",
      "notes/vllm_ascend_quant.md §A W4A8_DYNAMIC MoE (why 8 * sum)",
      "docs/bounds.md w4a8_scale_bias"};
  d.inputs = {"weight", "scale", "per_group_scale"};
  d.stages = {{"weight_high", false, "float32 [E, K, N] = W * per_group_scale (old format)"},
              {"scale_bias", true, "float32 [E, N]"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    auto it = in.find("per_group_scale");
    W4a8ScaleBiasResult r = ref::w4a8_scale_bias(in.at("weight"), in.at("scale"),
                                                 it == in.end() ? nullptr : &it->second);
    if (r.weight_high) out["weight_high"] = std::move(*r.weight_high);
    out["scale_bias"] = std::move(r.scale_bias);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    auto it = in.find("per_group_scale");
    out["scale_bias"] = opt::w4a8_scale_bias(in.at("weight"), in.at("scale"),
                                             it == in.end() ? nullptr : &it->second);
  };
#endif
  d.oracle = [](const Params&, const TensorMap& in, const TensorMap&) {
    auto it = in.find("per_group_scale");
    std::map<std::string, Check> m;
    m["scale_bias"] = check_from_bound(ref::w4a8_scale_bias_bound(
        in.at("weight"), in.at("scale"), it == in.end() ? nullptr : &it->second));
    return m;
  };
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a8_scale_bias
}  // namespace qconf::conf
