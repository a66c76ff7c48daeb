// Reference: the int4 MoE schemes (W4A8_DYNAMIC MoE in both checkpoint formats, W4A16 MoE) end to
// end on dispatched tokens, composed of the component ops (qconf/ops/moe_w4.h).
//
// Sources, step by step (confidence in brackets):
//   W4A8 ModelSlim (notes/vllm_ascend_quant.md §A format A, seed W4A8_DYNAMIC w4a8.py
//     process_weights_after_loading_modelslim): weights transpose(1, 2) then view(int32)
//     (w4a8_modelslim_pack) [code]; scales transpose(1, 2), numpy uint32 view widened to int64
//     (w4a8_process_scale, scale_rounding none) [code]; w13 squeezed to [E, 2I] [code];
//     scale_bias transpose(1, 2).sum(axis=1) of this rank's 16/tp down columns
//     (w4a8_scale_bias_rank_sum) [code]. NZ cast: layout only [doc].
//   W4A8 LLM-Compressor (§A format B, update_bias_compressed_tensors): transpose, scale_bias =
//     8 * sum_k W * s in fp32 (w4a8_scale_bias), scales fp32 -> int64, pack pairs along N
//     (w4a8_llmcompressor_pack) [code].
//   W4A8 apply (§C "Quantized MLP", W4A8 branch): npu_dynamic_quant, then the MSD gmm1 + SwiGLU +
//     requant (w4a8_msd_grouped_matmul) [notes], then gmm2 = npu_grouped_matmul(int8, int4 w2,
//     int64 scale, bias = w2_scale_bias, per_token_scale), output bf16 [notes]; its arithmetic is
//     modelled as the MSD split with the same fixpipe and sum [inf].
//   W4A16 (§A W4A16 MoE, §D; seed compressed-tensors W4A16 w4a16.py): unpack_from_int32 - 8,
//     transpose, npu_convert_weight_to_int4pack (w4a16_ct_repack_chain) [code]; scale loaded into
//     a params-dtype parameter (rounded) then transposed to [E, K/g, N], offsets zeros [code];
//     apply: grouped matmul antiquant x @ ((w + off) * s_group), npu_swiglu, grouped matmul
//     antiquant [notes]; each group's matmul is npu_weight_quant_batchmatmul's arithmetic (the
//     AntiQuant of the grouped kernel taken to be the same) [inf].
#include "qconf/ops/moe_w4.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/numeric/bounds.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "qconf/ops/weight_quant_bmm.h"

namespace qconf {

namespace {

using num::Exact;
using num::gamma;
using num::pow2;

[[noreturn]] void bad(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

constexpr const char* kW4a8 = "w4a8_moe";
constexpr const char* kW4a16 = "w4a16_moe";

void want(const char* op, const char* name, const Tensor* t, std::initializer_list<DType> dts,
          const Shape& shape) {
  if (!t) bad(op, std::string(name) + " is missing");
  bool ok = false;
  for (DType d : dts) ok = ok || t->dtype() == d;
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  s += "]";
  if (!ok || t->shape() != shape)
    bad(op, std::string(name) + " must be " + s + " of " + std::string(dtype_name(*dts.begin())) +
                (dts.size() > 1 ? " (or another accepted dtype)" : "") + ", got " + t->describe());
}

Tensor reshape(const Tensor& t, Shape s) {
  Tensor r(t.dtype(), std::move(s));
  if (r.nbytes() != t.nbytes()) throw std::logic_error("moe_w4: reshape size mismatch");
  std::memcpy(r.bytes(), t.bytes(), t.nbytes());
  return r;
}

Tensor rows(const Tensor& t, int64_t r0, int64_t r1) {
  const int64_t w = t.numel() / t.dim(0);
  Shape s = t.shape();
  s[0] = r1 - r0;
  Tensor o(t.dtype(), s);
  const size_t es = dtype_size(t.dtype());
  std::memcpy(o.bytes(), t.bytes() + r0 * w * es, (r1 - r0) * w * es);
  return o;
}

void put_rows(Tensor& dst, int64_t r0, const Tensor& src) {
  std::memcpy(dst.bytes() + r0 * (dst.nbytes() / dst.dim(0)), src.bytes(), src.nbytes());
}

// Columns [c0, c0 + c) of the last dim of [E, H, C].
Tensor last_dim_slice(const Tensor& t, int64_t c0, int64_t c) {
  const int64_t outer = t.numel() / t.dim(-1), cc = t.dim(-1);
  Shape s = t.shape();
  s.back() = c;
  Tensor o(t.dtype(), s);
  const size_t es = dtype_size(t.dtype());
  for (int64_t r = 0; r < outer; ++r)
    std::memcpy(o.bytes() + r * c * es, t.bytes() + (r * cc + c0) * es, c * es);
  return o;
}

const num::FloatFormat& fmt_of(DType d) {
  switch (d) {
    case DType::kBF16:
      return num::kBF16;
    case DType::kF16:
      return num::kF16;
    case DType::kF32:
      return num::kF32;
    default:
      throw std::logic_error("moe_w4: not a float dtype");
  }
}

// The next representable value above `bits` (finite, not NaN).
uint64_t next_up(const num::FloatFormat& f, uint64_t bits) {
  const uint64_t sign = num::sign_mask(f);
  if (bits == sign) return 1;  // -0 -> smallest positive
  if (bits & sign) return bits - 1;
  return bits + 1;
}

}  // namespace

std::string_view w4a8_moe_format_name(W4a8MoeFormat f) {
  return f == W4a8MoeFormat::kModelSlim ? "modelslim" : "llmcompressor";
}
W4a8MoeFormat parse_w4a8_moe_format(std::string_view s) {
  if (s == "modelslim") return W4a8MoeFormat::kModelSlim;
  if (s == "llmcompressor") return W4a8MoeFormat::kLlmCompressor;
  bad(kW4a8, "format must be modelslim or llmcompressor, got \"" + std::string(s) + "\"");
}

W4a8MoeDims check_w4a8_moe_checkpoint(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg) {
  if (cfg.tp < 1 || cfg.tp > 16 || 16 % cfg.tp)
    bad(kW4a8, "tp must divide 16 (vllm-ascend rejects tp > 16), got " + std::to_string(cfg.tp));
  if (cfg.tp_rank < 0 || cfg.tp_rank >= cfg.tp)
    bad(kW4a8, "tp_rank must be in [0, tp), got " + std::to_string(cfg.tp_rank));
  if (!c.w13_weight || c.w13_weight->rank() != 3)
    bad(kW4a8,
        "w13_weight must be int8 [E, rows, H]" +
            (c.w13_weight ? ", got " + c.w13_weight->describe() : std::string(" (missing)")));
  W4a8MoeDims d;
  d.e = c.w13_weight->dim(0);
  d.h = c.w13_weight->dim(2);
  const bool ms = cfg.format == W4a8MoeFormat::kModelSlim;
  // ModelSlim w13 bytes: I rows (two int4 per byte) = 2I outputs; LLM-Compressor: 2I rows.
  const int64_t rows13 = c.w13_weight->dim(1);
  if (ms) {
    d.i = rows13;
  } else {
    if (rows13 % 2) bad(kW4a8, "w13_weight rows (2I) must be even, got " + std::to_string(rows13));
    d.i = rows13 / 2;
  }
  if (d.e < 1 || d.h < 1 || d.i < 1) bad(kW4a8, "empty w13_weight " + c.w13_weight->describe());
  if (d.i % 4 || d.h % 8)
    bad(kW4a8, "I must be a multiple of 4 and H of 8 (8 int4 per int32 along 2I and H), got I = " +
                   std::to_string(d.i) + ", H = " + std::to_string(d.h));
  const Shape w13 = ms ? Shape{d.e, d.i, d.h} : Shape{d.e, 2 * d.i, d.h};
  const Shape w2 = ms ? Shape{d.e, d.h / 2, d.i} : Shape{d.e, d.h, d.i};
  want(kW4a8, "w13_weight", c.w13_weight, {DType::kI8}, w13);
  want(kW4a8, "w2_weight", c.w2_weight, {DType::kI8}, w2);
  if (ms) {
    want(kW4a8, "w13_weight_scale", c.w13_weight_scale, {DType::kF32}, {d.e, 2 * d.i, 1});
    want(kW4a8, "w2_weight_scale", c.w2_weight_scale, {DType::kF32}, {d.e, d.h, 1});
    want(kW4a8, "w13_scale_bias", c.w13_scale_bias, {DType::kF32}, {d.e, 2 * d.i, 1});
    want(kW4a8, "w2_scale_bias", c.w2_scale_bias, {DType::kF32}, {d.e, d.h, 16});
  } else {
    want(kW4a8, "w13_weight_scale", c.w13_weight_scale, {DType::kBF16, DType::kF32},
         {d.e, 2 * d.i, 1});
    want(kW4a8, "w2_weight_scale", c.w2_weight_scale, {DType::kBF16, DType::kF32}, {d.e, d.h, 1});
    for (int64_t j = 0; j < c.w13_weight->numel(); ++j)
      if (c.w13_weight->data<int8_t>()[j] < -8 || c.w13_weight->data<int8_t>()[j] > 7)
        bad(kW4a8, "w13_weight[" + std::to_string(j) +
                       "] = " + std::to_string(c.w13_weight->data<int8_t>()[j]) +
                       " is not an int4 value in [-8, 7] (LLM-Compressor: one int4 per int8)");
    for (int64_t j = 0; j < c.w2_weight->numel(); ++j)
      if (c.w2_weight->data<int8_t>()[j] < -8 || c.w2_weight->data<int8_t>()[j] > 7)
        bad(kW4a8, "w2_weight[" + std::to_string(j) +
                       "] = " + std::to_string(c.w2_weight->data<int8_t>()[j]) +
                       " is not an int4 value in [-8, 7] (LLM-Compressor: one int4 per int8)");
  }
  return d;
}

Tensor moe_w4_cumsum(const Tensor& counts, int64_t experts, int64_t rows, const char* op) {
  if (counts.dtype() != DType::kI64 || counts.shape() != Shape{experts})
    bad(op, "group_list must be int64 counts [E = " + std::to_string(experts) + "], got " +
                counts.describe());
  Tensor cs(DType::kI64, {experts});
  int64_t acc = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t v = counts.data<int64_t>()[e];
    if (v < 0) bad(op, "group_list[" + std::to_string(e) + "] = " + std::to_string(v) + " < 0");
    acc += v;
    cs.data<int64_t>()[e] = acc;
  }
  if (acc != rows)
    bad(op, "group_list sums to " + std::to_string(acc) + ", expected the " + std::to_string(rows) +
                " rows of x (every dispatched row belongs to an expert)");
  return cs;
}

Tensor moe_w4_int4_values(const Tensor& packed) {
  if (packed.dtype() != DType::kI32 || packed.rank() != 3)
    bad("moe_w4", "packed weight must be int32 [E, K, N/8], got " + packed.describe());
  const Tensor v =
      ref::wqbmm_weight_values(reshape(packed, {packed.dim(0) * packed.dim(1), packed.dim(2)}));
  return reshape(v, {packed.dim(0), packed.dim(1), packed.dim(2) * 8});
}

Tensor moe_w4_fp19_scale(const Tensor& quant, int64_t e, int64_t n) {
  if (quant.dtype() != DType::kI64 || quant.numel() != e * n)
    bad("moe_w4", "quant scale must be int64 with E * N elements, got " + quant.describe());
  Tensor s(DType::kF32, {e, n});
  for (int64_t i = 0; i < e * n; ++i)
    s.data<uint32_t>()[i] =
        ref::decode_dequant_scale_bits(static_cast<uint64_t>(quant.data<int64_t>()[i]));
  return s;
}

namespace ref {

// ---- W4A8 load ---------------------------------------------------------------------------------

W4a8MoeLoaded w4a8_moe_load(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg) {
  const W4a8MoeDims d = check_w4a8_moe_checkpoint(c, cfg);
  W4a8MoeLoaded w;
  // Scales: [E, N, 1] -> transpose(1, 2) [E, 1, N] -> fp32 bits as uint32, zero-extended to int64.
  const Tensor s13 = transpose_last_two(*c.w13_weight_scale);
  const Tensor s2 = transpose_last_two(*c.w2_weight_scale);
  w.w13_scale = reshape(w4a8_process_scale(s13, nullptr, W4a8ScaleRounding::kNone).scale_int64,
                        {d.e, 2 * d.i});                                               // squeezed
  w.w2_scale = w4a8_process_scale(s2, nullptr, W4a8ScaleRounding::kNone).scale_int64;  // [E,1,H]
  if (cfg.format == W4a8MoeFormat::kModelSlim) {
    // Weights: transpose(1, 2), view(int32).
    w.w13_weight = w4a8_modelslim_pack(*c.w13_weight);
    w.w2_weight = w4a8_modelslim_pack(*c.w2_weight);
    // scale_bias: gate/up [E, 2I, 1] summed over its one column; down: this rank's 16/tp columns.
    w.w13_scale_bias = w4a8_scale_bias_rank_sum(*c.w13_scale_bias, cfg.tp, W4a8BiasProj::kGateUp);
    const int64_t cols = 16 / cfg.tp;
    w.w2_scale_bias_cols = last_dim_slice(*c.w2_scale_bias, cfg.tp_rank * cols, cols);
    w.w2_scale_bias = w4a8_scale_bias_rank_sum(w.w2_scale_bias_cols, cfg.tp, W4a8BiasProj::kDown);
  } else {
    // scale_bias = 8 * sum_k W[e, k, n] * s[e, n] on the transposed int4 weights, fp32 scales.
    w.w13_scale_bias = w4a8_scale_bias(transpose_last_two(*c.w13_weight), s13, nullptr).scale_bias;
    w.w2_scale_bias = w4a8_scale_bias(transpose_last_two(*c.w2_weight), s2, nullptr).scale_bias;
    w.w13_weight = w4a8_llmcompressor_pack(*c.w13_weight);
    w.w2_weight = w4a8_llmcompressor_pack(*c.w2_weight);
  }
  return w;
}

// ---- W4A8 apply --------------------------------------------------------------------------------

float w4a8_gmm2_msd_value(int32_t acc_hi, int32_t acc_lo, float s, float sb, float tok_scale,
                          const W4a8MsdConfig& cfg) {
  const uint16_t ah = w4a8_msd_fixpipe_f16(acc_hi, s, cfg.fixpipe);
  const uint16_t al = w4a8_msd_fixpipe_f16(acc_lo, s, cfg.fixpipe);
  return num::f32_mul(w4a8_msd_sum(ah, al, sb, cfg.bias_first), tok_scale);
}

W4a8MoeMlpStages w4a8_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                     const W4a8MoeLoaded& w, const W4a8MsdConfig& cfg,
                                     SwigluQuantBounds* bounds) {
  if ((x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) || x.rank() != 2)
    bad(kW4a8, "x must be bfloat16 or float16 [M, H], got " + x.describe());
  const int64_t e = w.w13_weight.dim(0), h = w.w13_weight.dim(1), n2 = w.w13_weight.dim(2) * 8;
  const int64_t m = x.dim(0), i = n2 / 2;
  if (x.dim(1) != h) bad(kW4a8, "x must have H = " + std::to_string(h) + " columns");
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, kW4a8);
  W4a8MoeMlpStages st;
  // Step 1: per-row dynamic int8 quant (the dispatch's quant_mode 1 is the same op).
  DynQuantStages q = npu_dynamic_quant(x, nullptr, nullptr, DynQuantConfig{});
  st.x_q = std::move(q.y);
  st.x_scale = std::move(q.scale);
  // Step 2: gmm1 + SwiGLU + requant by MSD, on the codes and FP19 scales the kernel reads.
  st.w13_values = moe_w4_int4_values(w.w13_weight);
  st.w13_scale_fp19 = moe_w4_fp19_scale(w.w13_scale, e, n2);
  st.gmm1 = w4a8_msd_grouped_matmul(st.x_q, st.w13_values, st.w13_scale_fp19, w.w13_scale_bias,
                                    st.x_scale, cumsum, cfg, bounds);
  // Step 3: gmm2 by MSD: the int4 split of y1, two exact int32 grouped matmuls, the epilogue.
  st.w2_values = moe_w4_int4_values(w.w2_weight);
  st.w2_scale_fp19 = moe_w4_fp19_scale(w.w2_scale, e, h);
  Tensor y_hi(DType::kI8, {m, i}), y_lo(DType::kI8, {m, i});
  for (int64_t j = 0; j < m * i; ++j) {
    const int8_t v = st.gmm1.q.y.data<int8_t>()[j];
    y_hi.data<int8_t>()[j] = static_cast<int8_t>(v >> 4);
    y_lo.data<int8_t>()[j] = static_cast<int8_t>((v & 0xF) - 8);
  }
  GroupedMatmulConfig gc;
  gc.group_list_type = GroupListType::kCount;
  gc.output_dtype = DType::kI32;
  st.gmm2_acc_hi =
      npu_grouped_matmul(y_hi, st.w2_values, nullptr, nullptr, nullptr, group_list, gc).acc;
  st.gmm2_acc_lo =
      npu_grouped_matmul(y_lo, st.w2_values, nullptr, nullptr, nullptr, group_list, gc).acc;
  st.gmm2_a_hi = Tensor(DType::kF16, {m, h});
  st.gmm2_a_lo = Tensor(DType::kF16, {m, h});
  st.gmm2_msd_sum = Tensor(DType::kF32, {m, h});
  st.y = Tensor(DType::kBF16, {m, h});
  int64_t r = 0;
  for (int64_t g = 0; g < e; ++g)
    for (const int64_t end = cumsum.data<int64_t>()[g]; r < end; ++r)
      for (int64_t n = 0; n < h; ++n) {
        const int64_t o = r * h + n;
        const float s = st.w2_scale_fp19.data<float>()[g * h + n];
        const uint16_t ah = w4a8_msd_fixpipe_f16(st.gmm2_acc_hi.data<int32_t>()[o], s, cfg.fixpipe);
        const uint16_t al = w4a8_msd_fixpipe_f16(st.gmm2_acc_lo.data<int32_t>()[o], s, cfg.fixpipe);
        st.gmm2_a_hi.data<uint16_t>()[o] = ah;
        st.gmm2_a_lo.data<uint16_t>()[o] = al;
        const float sum =
            w4a8_msd_sum(ah, al, w.w2_scale_bias.data<float>()[g * h + n], cfg.bias_first);
        st.gmm2_msd_sum.data<float>()[o] = sum;
        st.y.data<uint16_t>()[o] =
            num::f32_to_bf16(num::f32_mul(sum, st.gmm1.q.scale.data<float>()[r]));
      }
  return st;
}

// The reachable range of y = bf16(msd_sum(fixpipe(A_hi), fixpipe(A_lo), sb) * s_tok). Every step
// is monotone in each operand separately (the fixpipe in A for a fixed-sign s, the fp32 adds, the
// multiply for a fixed sign of the other operand, the bf16 cast), so the extremes over the box
// A_hi x A_lo x sb x s_tok are at its corners (docs/bounds.md). The A ranges: each y1 element
// with several reachable codes moves A_hi by (hi(c) - hi(c0)) w and A_lo by (lo(c) - lo(c0)) w;
// the nibble changes are taken independently (a superset).
W4a8MoeGmm2Range w4a8_moe_gmm2_range(const W4a8MoeMlpStages& st, const SwigluQuantBounds& b,
                                     const Tensor& group_list, const Tensor& sb_lo,
                                     const Tensor& sb_hi, const W4a8MsdConfig& cfg) {
  const int64_t m = st.y.dim(0), h = st.y.dim(1), i = st.gmm1.q.y.dim(1);
  const int64_t e = st.w2_values.dim(0);
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, kW4a8);
  W4a8MoeGmm2Range out;
  for (Tensor* t : {&out.acc_hi_lo, &out.acc_hi_hi, &out.acc_lo_lo, &out.acc_lo_hi})
    *t = Tensor(DType::kI64, {m, h});
  for (Tensor* t : {&out.a_hi_lo, &out.a_hi_hi, &out.a_lo_lo, &out.a_lo_hi, &out.msd_lo,
                    &out.msd_hi, &out.lo, &out.hi})
    *t = Tensor(DType::kF64, {m, h});
  // Per row: the scale candidates, and the ambiguous y1 elements with their code sets.
  auto scale_set = [&](int64_t r) {
    std::vector<float> v{st.gmm1.q.scale.data<float>()[r]};
    for (size_t k = 0; k < b.scale_index.size(); ++k)
      if (b.scale_index[k] == r)
        for (int64_t j = b.scale_offsets[k]; j < b.scale_offsets[k + 1]; ++j)
          v.push_back(b.scale_values[j]);
    return v;
  };
  size_t yk = 0;  // cursor into b.y_index (sorted flat indices)
  int64_t r = 0;
  for (int64_t g = 0; g < e; ++g)
    for (const int64_t end = cumsum.data<int64_t>()[g]; r < end; ++r) {
      const std::vector<float> ss = scale_set(r);
      float s_min = ss[0], s_max = ss[0];
      for (float v : ss) s_min = std::min(s_min, v), s_max = std::max(s_max, v);
      std::vector<std::pair<int64_t, std::vector<int8_t>>> amb;  // (column k, codes)
      while (yk < b.y_index.size() && b.y_index[yk] < (r + 1) * i) {
        if (b.y_index[yk] >= r * i) {
          std::vector<int8_t> codes;
          for (int64_t j = b.y_offsets[yk]; j < b.y_offsets[yk + 1]; ++j)
            codes.push_back(b.y_values[j]);
          amb.emplace_back(b.y_index[yk] - r * i, std::move(codes));
        }
        ++yk;
      }
      for (int64_t n = 0; n < h; ++n) {
        const int64_t o = r * h + n;
        int64_t hi_lo = st.gmm2_acc_hi.data<int32_t>()[o], hi_hi = hi_lo;
        int64_t lo_lo = st.gmm2_acc_lo.data<int32_t>()[o], lo_hi = lo_lo;
        for (const auto& [k, codes] : amb) {
          const int c0 = st.gmm1.q.y.data<int8_t>()[r * i + k];
          const int wv = st.w2_values.data<int8_t>()[(g * i + k) * h + n];
          int dh_min = 0, dh_max = 0, dl_min = 0, dl_max = 0;
          for (int8_t c : codes) {
            const int dh = ((c >> 4) - (c0 >> 4)) * wv, dl = ((c & 0xF) - (c0 & 0xF)) * wv;
            dh_min = std::min(dh_min, dh), dh_max = std::max(dh_max, dh);
            dl_min = std::min(dl_min, dl), dl_max = std::max(dl_max, dl);
          }
          hi_lo += dh_min, hi_hi += dh_max, lo_lo += dl_min, lo_hi += dl_max;
        }
        const float s = st.w2_scale_fp19.data<float>()[g * h + n];
        out.acc_hi_lo.data<int64_t>()[o] = hi_lo;
        out.acc_hi_hi.data<int64_t>()[o] = hi_hi;
        out.acc_lo_lo.data<int64_t>()[o] = lo_lo;
        out.acc_lo_hi.data<int64_t>()[o] = lo_hi;
        // The fixpipe is monotone in A (direction: the sign of s): both ends, ordered.
        auto f16_range = [&](int64_t a0, int64_t a1, Tensor& tlo, Tensor& thi) {
          const double v0 =
              num::f16_to_f32(w4a8_msd_fixpipe_f16(static_cast<int32_t>(a0), s, cfg.fixpipe));
          const double v1 =
              num::f16_to_f32(w4a8_msd_fixpipe_f16(static_cast<int32_t>(a1), s, cfg.fixpipe));
          tlo.data<double>()[o] = std::min(v0, v1);
          thi.data<double>()[o] = std::max(v0, v1);
        };
        f16_range(hi_lo, hi_hi, out.a_hi_lo, out.a_hi_hi);
        f16_range(lo_lo, lo_hi, out.a_lo_lo, out.a_lo_hi);
        double mlo = std::numeric_limits<double>::infinity(), mhi = -mlo;
        double lo = mlo, hi = -mlo;
        for (int64_t ah : {hi_lo, hi_hi})
          for (int64_t al : {lo_lo, lo_hi})
            for (float sb : {sb_lo.data<float>()[g * h + n], sb_hi.data<float>()[g * h + n]}) {
              const float sum =
                  w4a8_msd_sum(w4a8_msd_fixpipe_f16(static_cast<int32_t>(ah), s, cfg.fixpipe),
                               w4a8_msd_fixpipe_f16(static_cast<int32_t>(al), s, cfg.fixpipe), sb,
                               cfg.bias_first);
              mlo = std::min(mlo, static_cast<double>(sum));
              mhi = std::max(mhi, static_cast<double>(sum));
              for (float ts : {s_min, s_max}) {
                const double y = num::bf16_to_f32(num::f32_to_bf16(num::f32_mul(sum, ts)));
                lo = std::min(lo, y), hi = std::max(hi, y);
              }
            }
        out.msd_lo.data<double>()[o] = mlo;
        out.msd_hi.data<double>()[o] = mhi;
        out.lo.data<double>()[o] = lo;
        out.hi.data<double>()[o] = hi;
      }
    }
  return out;
}

}  // namespace ref

// ---- W4A16 --------------------------------------------------------------------------------------

W4a16MoeDims check_w4a16_moe_checkpoint(const W4a16MoeCheckpoint& c, int64_t g) {
  if (!c.w13_weight_packed || c.w13_weight_packed->rank() != 3 ||
      c.w13_weight_packed->dtype() != DType::kI32)
    bad(kW4a16, "w13_weight_packed must be int32 [E, 2I, H/8]" +
                    (c.w13_weight_packed ? ", got " + c.w13_weight_packed->describe()
                                         : std::string(" (missing)")));
  if (g < 1) bad(kW4a16, "group_size must be positive, got " + std::to_string(g));
  W4a16MoeDims d;
  d.e = c.w13_weight_packed->dim(0);
  d.h = c.w13_weight_packed->dim(2) * 8;
  if (c.w13_weight_packed->dim(1) % 2)
    bad(kW4a16, "w13_weight_packed rows (2I) must be even, got " + c.w13_weight_packed->describe());
  d.i = c.w13_weight_packed->dim(1) / 2;
  if (d.e < 1 || d.i < 1 || d.h < 1) bad(kW4a16, "empty w13_weight_packed");
  if (d.h % g || d.i % g || d.i % 8)
    bad(kW4a16, "H = " + std::to_string(d.h) + " and I = " + std::to_string(d.i) +
                    " must be multiples of group_size " + std::to_string(g) +
                    " (and I of 8: unpacked columns)");
  want(kW4a16, "w2_weight_packed", c.w2_weight_packed, {DType::kI32}, {d.e, d.h, d.i / 8});
  for (auto [name, t, n, k] : {std::tuple{"w13_weight_scale", c.w13_weight_scale, 2 * d.i, d.h},
                               std::tuple{"w2_weight_scale", c.w2_weight_scale, d.h, d.i}})
    want(kW4a16, name, t, {DType::kF32, DType::kBF16, DType::kF16}, {d.e, n, k / g});
  for (auto [name, t, n, k] : {std::tuple{"w13_weight_shape", c.w13_weight_shape, 2 * d.i, d.h},
                               std::tuple{"w2_weight_shape", c.w2_weight_shape, d.h, d.i}}) {
    want(kW4a16, name, t, {DType::kI32, DType::kI64}, {d.e, 2});
    for (int64_t x = 0; x < d.e; ++x)
      if (t->int_at(2 * x) != n || t->int_at(2 * x + 1) != k)
        bad(kW4a16, std::string(name) + "[" + std::to_string(x) + "] = [" +
                        std::to_string(t->int_at(2 * x)) + ", " +
                        std::to_string(t->int_at(2 * x + 1)) + "], expected [" + std::to_string(n) +
                        ", " + std::to_string(k) +
                        "] (padded columns are never produced: the packed dim is a multiple of "
                        "the group size)");
  }
  return d;
}

namespace {
// [E, N, G] scale -> params dtype (rounded at load) -> [E, G, N].
Tensor w4a16_scale_param(const Tensor& s, DType pdt) {
  return ref::transpose_last_two(ckpt::to_params_dtype(s, pdt));
}

WqbmmArgs wq_args(const Tensor& x, const Tensor& w, const Tensor& s, const Tensor& off) {
  WqbmmArgs a;
  a.x = &x;
  a.weight = &w;
  a.antiquant_scale = &s;
  a.antiquant_offset = &off;
  return a;
}

// Expert g's slice [K, ...] of a [E, K, ...] tensor.
Tensor expert(const Tensor& t, int64_t g) {
  Tensor e = rows(t, g, g + 1);
  Shape s(t.shape().begin() + 1, t.shape().end());
  return reshape(e, s);
}

// Every pdt value in [lo, hi] (both pdt values).
std::vector<float> pdt_values(const num::FloatFormat& f, double lo, double hi) {
  std::vector<float> v;
  uint64_t b = num::encode(f, Exact(lo), num::Round::kRint);
  for (;;) {
    const double d = num::to_double(f, b);
    if (d > hi) break;
    v.push_back(static_cast<float>(d));
    if (v.size() > 4096) throw std::domain_error("w4a16_moe: a reachable set over 4096 values");
    b = next_up(f, b);
  }
  return v;
}
}  // namespace

namespace ref {

W4a16MoeLoaded w4a16_moe_load(const W4a16MoeCheckpoint& c, DType pdt, int64_t g) {
  const W4a16MoeDims d = check_w4a16_moe_checkpoint(c, g);
  W4a16MoeLoaded w;
  w.w13_unpacked = w4a16_unpack(*c.w13_weight_packed);
  w.w13_weight = w4a16_ct_repack_chain(*c.w13_weight_packed);
  w.w13_scale = w4a16_scale_param(*c.w13_weight_scale, pdt);
  w.w13_offset = Tensor(pdt, w.w13_scale.shape());
  w.w2_unpacked = w4a16_unpack(*c.w2_weight_packed);
  w.w2_weight = w4a16_ct_repack_chain(*c.w2_weight_packed);
  w.w2_scale = w4a16_scale_param(*c.w2_weight_scale, pdt);
  w.w2_offset = Tensor(pdt, w.w2_scale.shape());
  (void)d;
  return w;
}

W4a16MoeMlpStages w4a16_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                       const W4a16MoeLoaded& w, int64_t g, W4a16MoeRanges* ranges) {
  if ((x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) || x.rank() != 2)
    bad(kW4a16, "x must be bfloat16 or float16 [M, H], got " + x.describe());
  if (x.dtype() != w.w13_scale.dtype())
    bad(kW4a16, "x must have the params dtype of the loaded scales (" +
                    std::string(dtype_name(w.w13_scale.dtype())) + "), got " + x.describe());
  const int64_t e = w.w13_weight.dim(0), h = w.w13_weight.dim(1), n2 = w.w13_weight.dim(2) * 8;
  const int64_t m = x.dim(0), i = n2 / 2;
  if (x.dim(1) != h) bad(kW4a16, "x must have H = " + std::to_string(h) + " columns");
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, kW4a16);
  const DType pdt = x.dtype();
  const num::FloatFormat& pf = fmt_of(pdt);
  WqbmmConfig wc;
  wc.group_size = g;
  W4a16MoeMlpStages st{Tensor(pdt, {m, n2}), Tensor(pdt, {m, i}), Tensor(pdt, {m, h})};
  if (ranges) {
    ranges->gmm1_exact = Tensor(DType::kF64, {m, n2});
    ranges->gmm1_bound = Tensor(DType::kF64, {m, n2});
    ranges->swiglu_lo = Tensor(DType::kF64, {m, i});
    ranges->swiglu_hi = Tensor(DType::kF64, {m, i});
    ranges->y_lo = Tensor(DType::kF64, {m, h});
    ranges->y_hi = Tensor(DType::kF64, {m, h});
  }
  int64_t r0 = 0;
  for (int64_t x_e = 0; x_e < e; ++x_e) {
    const int64_t r1 = cumsum.data<int64_t>()[x_e];
    if (r1 == r0) continue;  // an expert with no rows: no call
    const Tensor xr = rows(x, r0, r1);
    const Tensor w13 = expert(w.w13_weight, x_e), s13 = expert(w.w13_scale, x_e),
                 o13 = expert(w.w13_offset, x_e);
    // gmm1: antiquant grouped matmul on this expert's rows.
    const WqbmmStages g1 = npu_weight_quant_batchmatmul(wq_args(xr, w13, s13, o13), wc);
    put_rows(st.gmm1, r0, g1.y);
    // npu_swiglu (swish on the first half), computed in fp32, output in the x dtype.
    const SwigluStages sw = npu_swiglu(g1.y, SwigluConfig{});
    put_rows(st.swiglu, r0, sw.out);
    const Tensor w2 = expert(w.w2_weight, x_e), s2 = expert(w.w2_scale, x_e),
                 o2 = expert(w.w2_offset, x_e);
    const WqbmmStages g2 = npu_weight_quant_batchmatmul(wq_args(sw.out, w2, s2, o2), wc);
    put_rows(st.y, r0, g2.y);
    if (ranges) {
      const WqbmmBounds b1 = npu_weight_quant_batchmatmul_bounds(wq_args(xr, w13, s13, o13), wc);
      std::memcpy(ranges->gmm1_exact.data<double>() + r0 * n2, b1.y_exact.data<double>(),
                  b1.y_exact.nbytes());
      std::memcpy(ranges->gmm1_bound.data<double>() + r0 * n2, b1.y_bound.data<double>(),
                  b1.y_bound.nbytes());
      // SwiGLU over the reachable gmm1 values: swish(a) * b is linear in b, so b's two ends;
      // every reachable a (swish is not monotone). Each pair's fp32 interval, cast to pdt.
      const int64_t rr = r1 - r0;
      auto reach = [&](int64_t row, int64_t col, double* lo, double* hi) {
        const double ex = b1.y_exact.data<double>()[row * n2 + col];
        const double bd = b1.y_bound.data<double>()[row * n2 + col];
        if (!std::isfinite(ex) || !std::isfinite(bd))
          throw std::domain_error("w4a16_moe: gmm1 overflow reachable: no finite range");
        *lo = num::to_double(pf, num::encode(pf, Exact(ex - bd), num::Round::kCeil));
        *hi = num::to_double(pf, num::encode(pf, Exact(ex + bd), num::Round::kFloor));
      };
      Tensor sw_lo(DType::kF64, {rr, i}), sw_hi(DType::kF64, {rr, i});
      for (int64_t rw = 0; rw < rr; ++rw)
        for (int64_t j = 0; j < i; ++j) {
          double alo, ahi, blo, bhi;
          reach(rw, j, &alo, &ahi);
          reach(rw, i + j, &blo, &bhi);
          double lo = std::numeric_limits<double>::infinity(), hi = -lo;
          for (float a : pdt_values(pf, alo, ahi))
            for (double bb : {blo, bhi}) {
              const SwigluEval ev = swiglu_eval(a, static_cast<float>(bb), SwigluConfig{});
              lo = std::min(lo,
                            num::to_double(pf, num::convert(num::kF32, num::f32_bits(ev.lo), pf)));
              hi = std::max(hi,
                            num::to_double(pf, num::convert(num::kF32, num::f32_bits(ev.hi), pf)));
            }
          sw_lo.data<double>()[rw * i + j] = lo;
          sw_hi.data<double>()[rw * i + j] = hi;
        }
      std::memcpy(ranges->swiglu_lo.data<double>() + r0 * i, sw_lo.data<double>(), sw_lo.nbytes());
      std::memcpy(ranges->swiglu_hi.data<double>() + r0 * i, sw_hi.data<double>(), sw_hi.nbytes());
      // gmm2 over the SwiGLU ranges: the exact sum ranges over [S_min, S_max] (each term's ends,
      // W exact), any fp32 order adds at most gamma_{K-1} A + K 2^-126 (1 + gamma) with A the
      // sum of the largest |x W| (products of two pdt values are exact in fp32 unless below
      // 2^-126: E, added), then the cast to pdt (monotone).
      const Tensor& aw = g2.antiquant_weight;  // pdt [I, H]
      // The sums are formed in float64 (each product of two params-dtype values is exact in
      // float64; K float64 additions are off by at most gamma53_K sum|t| <= 2 K 2^-53 A each,
      // added to the error below as `dbl`), then the bound in exact rationals.
      const Exact gam = gamma(i - 1);
      const double u53 = std::ldexp(1.0, -53), tiny_lim = std::ldexp(1.0, -126);
      for (int64_t rw = 0; rw < rr; ++rw)
        for (int64_t n = 0; n < h; ++n) {
          double smin_d = 0, smax_d = 0, a_d = 0, tiny_d = 0;
          for (int64_t k = 0; k < i; ++k) {
            const double wv = num::to_double(pf, aw.bits_at(k * h + n));
            const double lo = sw_lo.data<double>()[rw * i + k] * wv;
            const double hi = sw_hi.data<double>()[rw * i + k] * wv;
            smin_d += std::min(lo, hi);
            smax_d += std::max(lo, hi);
            const double mag = std::max(std::fabs(lo), std::fabs(hi));
            a_d += mag;
            if (mag != 0 && mag < tiny_lim) tiny_d += mag;
          }
          if (!std::isfinite(smin_d) || !std::isfinite(smax_d) || !std::isfinite(a_d))
            throw std::domain_error("w4a16_moe: gmm2 overflow reachable: no finite range");
          // a_d and tiny_d themselves may be low by 2 K 2^-53 relative: scaled up by (1 + that).
          const Exact dbl_rel = Exact(2 * i) * Exact(u53);
          const Exact a = Exact(a_d) * (1 + dbl_rel), tiny = Exact(tiny_d) * (1 + dbl_rel);
          const Exact dbl = dbl_rel * a;
          const Exact smin = Exact(smin_d) - dbl, smax = Exact(smax_d) + dbl;
          const Exact err = tiny + gam * (a + tiny) + Exact(i) * pow2(-126) * (1 + gam);
          const uint64_t lo32 = num::encode(num::kF32, smin - err, num::Round::kFloor);
          const uint64_t hi32 = num::encode(num::kF32, smax + err, num::Round::kCeil);
          const int64_t o = (r0 + rw) * h + n;
          ranges->y_lo.data<double>()[o] = num::to_double(pf, num::convert(num::kF32, lo32, pf));
          ranges->y_hi.data<double>()[o] = num::to_double(pf, num::convert(num::kF32, hi32, pf));
        }
    }
    r0 = r1;
  }
  return st;
}

}  // namespace ref
}  // namespace qconf
