// Optimized: the int4 MoE schemes end to end (qconf/ops/moe_w4.h), composed of the optimized
// component ops (packing, scales, dynamic quant, the MSD grouped matmul, the grouped int8 GEMM,
// npu_weight_quant_batchmatmul, SwiGLU); the glue (transposes, nibble decode, the gmm2 epilogue)
// is threaded with the static partition of parallel.h, so results do not depend on the thread
// count. Bit-identical to qconf::ref wherever the reference is deterministic.
#include "qconf/ops/moe_w4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/expert_mlp.h"
#include "qconf/opt/gemm_s8.h"
#include "qconf/opt/moe_w4_packed.h"
#include "qconf/opt/parallel.h"

namespace qconf::opt {

namespace {

Tensor reshape(const Tensor& t, Shape s) {
  Tensor r(t.dtype(), std::move(s));
  std::memcpy(r.bytes(), t.bytes(), t.nbytes());
  return r;
}

// [E, A, B] -> [E, B, A], any element size, blocked over the rows of the output.
Tensor transpose12(const Tensor& t) {
  const int64_t e = t.dim(0), a = t.dim(1), b = t.dim(2);
  const size_t es = dtype_size(t.dtype());
  Tensor out(t.dtype(), {e, b, a});
  parallel_for(e * b, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t x = r / b, j = r % b;
      std::byte* dst = out.bytes() + r * a * es;
      const std::byte* src = t.bytes() + (x * a * b + j) * es;
      if (es == 1) {
        for (int64_t i = 0; i < a; ++i) dst[i] = src[i * b];
      } else {
        for (int64_t i = 0; i < a; ++i) std::memcpy(dst + i * es, src + i * b * es, es);
      }
    }
  });
  return out;
}

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

// int32 [E, K, N/8] (NPU int4 layout) -> int8 [E, K, N].
Tensor int4_values(const Tensor& packed) {
  Tensor out(DType::kI8, {packed.dim(0), packed.dim(1), packed.dim(2) * 8});
  const uint32_t* in = packed.data<uint32_t>();
  int8_t* o = out.data<int8_t>();
  parallel_for(packed.numel(), 4096, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) {
      const uint32_t word = in[w];
      for (int t = 0; t < 8; ++t) {
        const int nib = static_cast<int>((word >> (4 * t)) & 0xF);
        o[w * 8 + t] = static_cast<int8_t>(nib >= 8 ? nib - 16 : nib);
      }
    }
  });
  return out;
}

Tensor fp19_scale(const Tensor& quant, int64_t e, int64_t n) {
  return reshape(npu_trans_quant_param_decode(reshape(quant, {e * n})).dequant_scale, {e, n});
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

// The checkpoint scale loaded into a params-dtype parameter (fp32: the optimized rounding).
Tensor scale_param(const Tensor& s, DType pdt) {
  return s.dtype() == DType::kF32 ? load_scale_to_params_dtype(s, pdt)
                                  : ckpt::to_params_dtype(s, pdt);
}

Tensor expert(const Tensor& t, int64_t g) {
  Tensor e = rows(t, g, g + 1);
  return reshape(e, Shape(t.shape().begin() + 1, t.shape().end()));
}

}  // namespace

// ---- W4A8 ---------------------------------------------------------------------------------------

W4a8MoeLoaded w4a8_moe_load(const W4a8MoeCheckpoint& c, const W4a8MoeLoadConfig& cfg) {
  const W4a8MoeDims d = check_w4a8_moe_checkpoint(c, cfg);
  W4a8MoeLoaded w;
  // [E, N, 1] -> [E, 1, N] is the same memory.
  const Tensor s13 = reshape(*c.w13_weight_scale, {d.e, 1, 2 * d.i});
  const Tensor s2 = reshape(*c.w2_weight_scale, {d.e, 1, d.h});
  w.w13_scale = reshape(w4a8_process_scale(s13, nullptr, W4a8ScaleRounding::kNone), {d.e, 2 * d.i});
  w.w2_scale = w4a8_process_scale(s2, nullptr, W4a8ScaleRounding::kNone);
  if (cfg.format == W4a8MoeFormat::kModelSlim) {
    w.w13_weight = w4a8_modelslim_pack(*c.w13_weight);
    w.w2_weight = w4a8_modelslim_pack(*c.w2_weight);
    w.w13_scale_bias = w4a8_scale_bias_rank_sum(*c.w13_scale_bias, cfg.tp, W4a8BiasProj::kGateUp);
    const int64_t cols = 16 / cfg.tp;
    w.w2_scale_bias_cols = last_dim_slice(*c.w2_scale_bias, cfg.tp_rank * cols, cols);
    w.w2_scale_bias = w4a8_scale_bias_rank_sum(w.w2_scale_bias_cols, cfg.tp, W4a8BiasProj::kDown);
  } else {
    w.w13_scale_bias = w4a8_scale_bias(transpose12(*c.w13_weight), s13, nullptr);
    w.w2_scale_bias = w4a8_scale_bias(transpose12(*c.w2_weight), s2, nullptr);
    w.w13_weight = w4a8_llmcompressor_pack(*c.w13_weight);
    w.w2_weight = w4a8_llmcompressor_pack(*c.w2_weight);
  }
  w.w13_values_prepared = int4_values(w.w13_weight);
  w.w2_values_prepared = int4_values(w.w2_weight);
  return w;
}

W4a8MoeMlpStages w4a8_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                     const W4a8MoeLoaded& w, const W4a8MsdConfig& cfg) {
  const int64_t e = w.w13_weight.dim(0), h = w.w13_weight.dim(1), n2 = w.w13_weight.dim(2) * 8;
  if ((x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) || x.rank() != 2 || x.dim(1) != h)
    return ref::w4a8_moe_expert_mlp(x, group_list, w, cfg);  // names the bad argument
  const int64_t m = x.dim(0), i = n2 / 2;
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, "w4a8_moe");
  W4a8MoeMlpStages st;
  DynQuantStages q = npu_dynamic_quant(x, nullptr, nullptr, DynQuantConfig{});
  st.x_q = std::move(q.y);
  st.x_scale = std::move(q.scale);
  st.w13_values = w.w13_values_prepared.numel() ? w.w13_values_prepared : int4_values(w.w13_weight);
  st.w13_scale_fp19 = fp19_scale(w.w13_scale, e, n2);
  st.gmm1 = w4a8_msd_grouped_matmul(st.x_q, st.w13_values, st.w13_scale_fp19, w.w13_scale_bias,
                                    st.x_scale, cumsum, cfg);
  st.w2_values = w.w2_values_prepared.numel() ? w.w2_values_prepared : int4_values(w.w2_weight);
  st.w2_scale_fp19 = fp19_scale(w.w2_scale, e, h);
  // The two nibble matmuls in one grouped call: expert g's rows are its hi rows then its lo
  // rows (counts doubled), so each expert's weights are packed once.
  const int64_t* cs = cumsum.data<int64_t>();
  Tensor y2(DType::kI8, {2 * m, i});
  Tensor counts2(DType::kI64, {e});
  const int8_t* y1 = st.gmm1.q.y.data<int8_t>();
  for (int64_t g = 0, r0 = 0; g < e; ++g) {
    const int64_t r1 = cs[g], n = r1 - r0;
    counts2.data<int64_t>()[g] = 2 * n;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < i; ++j) {
        const int8_t v = y1[r * i + j];
        y2.data<int8_t>()[(r0 + r) * i + j] = static_cast<int8_t>(v >> 4);
        y2.data<int8_t>()[(r0 + r + n) * i + j] = static_cast<int8_t>((v & 0xF) - 8);
      }
    r0 = r1;
  }
  GroupedMatmulConfig gc;
  gc.group_list_type = GroupListType::kCount;
  gc.output_dtype = DType::kI32;
  const Tensor acc2 =
      npu_grouped_matmul(y2, st.w2_values, nullptr, nullptr, nullptr, counts2, gc).acc;
  st.gmm2_acc_hi = Tensor(DType::kI32, {m, h});
  st.gmm2_acc_lo = Tensor(DType::kI32, {m, h});
  for (int64_t g = 0, r0 = 0; g < e; ++g) {
    const int64_t r1 = cs[g], n = r1 - r0;
    std::memcpy(st.gmm2_acc_hi.data<int32_t>() + r0 * h, acc2.data<int32_t>() + 2 * r0 * h,
                n * h * 4);
    std::memcpy(st.gmm2_acc_lo.data<int32_t>() + r0 * h, acc2.data<int32_t>() + (2 * r0 + n) * h,
                n * h * 4);
    r0 = r1;
  }
  st.gmm2_a_hi = Tensor(DType::kF16, {m, h});
  st.gmm2_a_lo = Tensor(DType::kF16, {m, h});
  st.gmm2_msd_sum = Tensor(DType::kF32, {m, h});
  st.y = Tensor(DType::kBF16, {m, h});
  std::vector<int64_t> expert_of(m);
  for (int64_t g = 0, r = 0; g < e; ++g)
    for (; r < cumsum.data<int64_t>()[g]; ++r) expert_of[r] = g;
  parallel_for(m, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t g = expert_of[r];
      const float* s = st.w2_scale_fp19.data<float>() + g * h;
      const float* sb = w.w2_scale_bias.data<float>() + g * h;
      const float ts = st.gmm1.q.scale.data<float>()[r];
      for (int64_t n = 0; n < h; ++n) {
        const int64_t o = r * h + n;
        const uint16_t ah =
            w4a8_msd_fixpipe_f16(st.gmm2_acc_hi.data<int32_t>()[o], s[n], cfg.fixpipe);
        const uint16_t al =
            w4a8_msd_fixpipe_f16(st.gmm2_acc_lo.data<int32_t>()[o], s[n], cfg.fixpipe);
        st.gmm2_a_hi.data<uint16_t>()[o] = ah;
        st.gmm2_a_lo.data<uint16_t>()[o] = al;
        const float sum = w4a8_msd_sum(ah, al, sb[n], cfg.bias_first);
        st.gmm2_msd_sum.data<float>()[o] = sum;
        const float v = sum * ts;
        uint32_t b;
        std::memcpy(&b, &v, sizeof b);
        st.y.data<uint16_t>()[o] = f32_to_bf16_rne(b);
      }
    }
  });
  return st;
}

// ---- W4A8 on weights packed at load (qconf/opt/moe_w4_packed.h)
// ----------------------------------

W4a8MoePacked w4a8_moe_pack(const W4a8MoeLoaded& w, int threads) {
  if (w.w13_weight.dtype() != DType::kI32 || w.w13_weight.rank() != 3 ||
      w.w2_weight.dtype() != DType::kI32 || w.w2_weight.rank() != 3)
    throw std::invalid_argument("w4a8_moe_pack: loaded weights must be int32 [E, K, N/8], got " +
                                w.w13_weight.describe() + " and " + w.w2_weight.describe());
  W4a8MoePacked p;
  p.e = w.w13_weight.dim(0);
  p.h = w.w13_weight.dim(1);
  p.i = w.w13_weight.dim(2) * 4;
  if (w.w2_weight.shape() != Shape{p.e, p.i, p.h / 8} || p.h % 8 ||
      w.w13_scale_bias.shape() != Shape{p.e, 2 * p.i} || w.w2_scale_bias.shape() != Shape{p.e, p.h})
    throw std::invalid_argument("w4a8_moe_pack: inconsistent loaded shapes (w2_weight " +
                                w.w2_weight.describe() + ", w13_scale_bias " +
                                w.w13_scale_bias.describe() + ", w2_scale_bias " +
                                w.w2_scale_bias.describe() + ")");
  for (int64_t g = 0; g < p.e; ++g) {
    p.w13.push_back(PackedWeightsS8::pack_s4(w.w13_weight.data<int32_t>() + g * p.h * (2 * p.i / 8),
                                             p.h, 2 * p.i, threads));
    p.w2.push_back(PackedWeightsS8::pack_s4(w.w2_weight.data<int32_t>() + g * p.i * (p.h / 8), p.i,
                                            p.h, threads));
  }
  p.w13_scale_fp19 = fp19_scale(w.w13_scale, p.e, 2 * p.i);
  p.w2_scale_fp19 = fp19_scale(w.w2_scale, p.e, p.h);
  p.w13_scale_bias = w.w13_scale_bias;
  p.w2_scale_bias = w.w2_scale_bias;
  return p;
}

Tensor w4a8_moe_expert_mlp_packed(const Tensor& x, const Tensor& group_list, const W4a8MoePacked& p,
                                  const W4a8MsdConfig& cfg, int threads) {
  const int64_t e = p.e, h = p.h, i = p.i, n2 = 2 * i;
  if ((x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) || x.rank() != 2 || x.dim(1) != h)
    throw std::invalid_argument("w4a8_moe_expert_mlp_packed: x must be bfloat16 or float16 [M, " +
                                std::to_string(h) + "], got " + x.describe());
  const int64_t m = x.dim(0);
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, "w4a8_moe_packed");
  const int64_t* cs = cumsum.data<int64_t>();
  const DynQuantStages q = npu_dynamic_quant(x, nullptr, nullptr, DynQuantConfig{});
  Tensor y(DType::kBF16, {m, h});
  int64_t max_rows = 0;
  for (int64_t g = 0, r0 = 0; g < e; r0 = cs[g++]) max_rows = std::max(max_rows, cs[g] - r0);
  // Per call: the nibble rows, the int32 accumulators and the gmm1 epilogue of the largest group.
  std::vector<int8_t> nib(static_cast<size_t>(2 * max_rows * std::max(h, i)));
  std::vector<int32_t> acc(static_cast<size_t>(2 * max_rows * std::max(n2, h)));
  std::vector<float> c(static_cast<size_t>(max_rows * n2)), sw(static_cast<size_t>(max_rows * i));
  std::vector<int8_t> y1(static_cast<size_t>(max_rows * i));
  std::vector<float> y1s(static_cast<size_t>(max_rows));
  PackedActivationsS8 a;
  GemmS8Options go;
  go.threads = threads;
  const float lim = cfg.clamp_limit;
  const bool clamp = lim > 0 && std::isfinite(lim);
  // The MSD sum of one output: the hi and lo accumulators through the fixpipe, then the scale
  // bias (gmm1 and gmm2 alike).
  const auto msd = [&](int32_t hi, int32_t lo, float s, float b) {
    return w4a8_msd_sum(w4a8_msd_fixpipe_f16(hi, s, cfg.fixpipe),
                        w4a8_msd_fixpipe_f16(lo, s, cfg.fixpipe), b, cfg.bias_first);
  };
  // The MSD split of int8 rows: hi = v >> 4 (rows [0, n)), lo = (v & 0xF) - 8 (rows [n, 2n)).
  const auto split = [&](const int8_t* v, int64_t n, int64_t k) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j) {
        const int8_t b = v[r * k + j];
        nib[static_cast<size_t>(r * k + j)] = static_cast<int8_t>(b >> 4);
        nib[static_cast<size_t>((n + r) * k + j)] = static_cast<int8_t>((b & 0xF) - 8);
      }
  };
  for (int64_t g = 0, r0 = 0; g < e; r0 = cs[g++]) {
    const int64_t n = cs[g] - r0;
    if (n == 0) continue;
    // gmm1: [hi; lo] @ w13, then per row the MSD epilogue, SwiGLU and the requant.
    split(q.y.data<int8_t>() + r0 * h, n, h);
    a.pack_s8(nib.data(), 2 * n, h, h, p.w13[g].k_padded(), threads);
    gemm_s8_s32(a, p.w13[g], acc.data(), n2, go);
    const float* s1 = p.w13_scale_fp19.data<float>() + g * n2;
    const float* b1 = p.w13_scale_bias.data<float>() + g * n2;
    parallel_for(
        n, 1,
        [&](int64_t ra, int64_t rb) {
          for (int64_t r = ra; r < rb; ++r) {
            const float ts = q.scale.data<float>()[r0 + r];
            const int32_t* ah = acc.data() + r * n2;
            const int32_t* al = acc.data() + (n + r) * n2;
            float* cr = c.data() + r * n2;
            for (int64_t j = 0; j < n2; ++j) {
              float v = msd(ah[j], al[j], s1[j], b1[j]) * ts;
              if (clamp) {
                v = std::min(v, lim);
                if (j >= i) v = std::max(v, -lim);
              }
              cr[j] = v;
            }
            swiglu_quant_row_f32(cr, i, SwigluConfig{}, cfg.rounding, sw.data() + r * i,
                                 y1.data() + r * i, y1s.data() + r);
          }
        },
        threads);
    // gmm2: [hi; lo] @ w2, then the fixpipe, MSD sum and the bf16 output.
    split(y1.data(), n, i);
    a.pack_s8(nib.data(), 2 * n, i, i, p.w2[g].k_padded(), threads);
    gemm_s8_s32(a, p.w2[g], acc.data(), h, go);
    const float* s2 = p.w2_scale_fp19.data<float>() + g * h;
    const float* b2 = p.w2_scale_bias.data<float>() + g * h;
    parallel_for(
        n, 1,
        [&](int64_t ra, int64_t rb) {
          for (int64_t r = ra; r < rb; ++r) {
            const float ts = y1s[static_cast<size_t>(r)];
            const int32_t* ah = acc.data() + r * h;
            const int32_t* al = acc.data() + (n + r) * h;
            uint16_t* out = y.data<uint16_t>() + (r0 + r) * h;
            for (int64_t j = 0; j < h; ++j) {
              const float v = msd(ah[j], al[j], s2[j], b2[j]) * ts;
              uint32_t bits;
              std::memcpy(&bits, &v, sizeof bits);
              out[j] = f32_to_bf16_rne(bits);
            }
          }
        },
        threads);
  }
  return y;
}

// ---- W4A16 --------------------------------------------------------------------------------------

W4a16MoeLoaded w4a16_moe_load(const W4a16MoeCheckpoint& c, DType pdt, int64_t g) {
  const W4a16MoeDims d = check_w4a16_moe_checkpoint(c, g);
  W4a16MoeLoaded w;
  auto unpack = [](const Tensor& p) {
    const int64_t e = p.dim(0), n = p.dim(1), kw = p.dim(2);
    return reshape(ct_unpack_from_int32(reshape(p, {e * n, kw}), 4, CtShape{e * n, kw * 8}, 1),
                   {e, n, kw * 8});
  };
  w.w13_unpacked = unpack(*c.w13_weight_packed);
  w.w13_weight = w4a16_ct_repack_chain(*c.w13_weight_packed);
  w.w13_scale = transpose12(scale_param(*c.w13_weight_scale, pdt));
  w.w13_offset = Tensor(pdt, w.w13_scale.shape());
  w.w2_unpacked = unpack(*c.w2_weight_packed);
  w.w2_weight = w4a16_ct_repack_chain(*c.w2_weight_packed);
  w.w2_scale = transpose12(scale_param(*c.w2_weight_scale, pdt));
  w.w2_offset = Tensor(pdt, w.w2_scale.shape());
  (void)d;
  return w;
}

W4a16MoeMlpStages w4a16_moe_expert_mlp(const Tensor& x, const Tensor& group_list,
                                       const W4a16MoeLoaded& w, int64_t g) {
  const int64_t e = w.w13_weight.dim(0), h = w.w13_weight.dim(1), n2 = w.w13_weight.dim(2) * 8;
  if ((x.dtype() != DType::kBF16 && x.dtype() != DType::kF16) || x.rank() != 2 || x.dim(1) != h ||
      x.dtype() != w.w13_scale.dtype())
    return ref::w4a16_moe_expert_mlp(x, group_list, w, g);  // names the bad argument
  const int64_t m = x.dim(0), i = n2 / 2;
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, "w4a16_moe");
  const DType pdt = x.dtype();
  W4a16MoeMlpStages st{Tensor(pdt, {m, n2}), Tensor(pdt, {m, i}), Tensor(pdt, {m, h})};
  WqbmmConfig wc;
  wc.group_size = g;
  int64_t r0 = 0;
  for (int64_t x_e = 0; x_e < e; ++x_e) {
    const int64_t r1 = cumsum.data<int64_t>()[x_e];
    if (r1 == r0) continue;
    const Tensor xr = rows(x, r0, r1);
    const Tensor w13 = expert(w.w13_weight, x_e), s13 = expert(w.w13_scale, x_e),
                 o13 = expert(w.w13_offset, x_e);
    WqbmmArgs a1;
    a1.x = &xr;
    a1.weight = &w13;
    a1.antiquant_scale = &s13;
    a1.antiquant_offset = &o13;
    const Tensor g1 = npu_weight_quant_batchmatmul(a1, wc).y;
    std::memcpy(st.gmm1.bytes() + r0 * n2 * dtype_size(pdt), g1.bytes(), g1.nbytes());
    const Tensor sw = npu_swiglu(g1, SwigluConfig{});
    std::memcpy(st.swiglu.bytes() + r0 * i * dtype_size(pdt), sw.bytes(), sw.nbytes());
    const Tensor w2 = expert(w.w2_weight, x_e), s2 = expert(w.w2_scale, x_e),
                 o2 = expert(w.w2_offset, x_e);
    WqbmmArgs a2;
    a2.x = &sw;
    a2.weight = &w2;
    a2.antiquant_scale = &s2;
    a2.antiquant_offset = &o2;
    const Tensor y = npu_weight_quant_batchmatmul(a2, wc).y;
    std::memcpy(st.y.bytes() + r0 * h * dtype_size(pdt), y.bytes(), y.nbytes());
    r0 = r1;
  }
  return st;
}

// ---- W4A16 on weights prepared at load (qconf/opt/moe_w4_packed.h)
// -------------------------------

W4a16MoePacked w4a16_moe_pack(const W4a16MoeLoaded& w, int64_t g) {
  W4a16MoePacked p;
  p.e = w.w13_weight.dim(0);
  p.h = w.w13_weight.dim(1);
  p.i = w.w13_weight.dim(2) * 4;
  p.pdt = w.w13_scale.dtype();
  WqbmmConfig wc;
  wc.group_size = g;
  // The preparation checks its inputs with the op's checks; x only gives the dtype and K.
  const Tensor x13(p.pdt, {1, p.h}), x2(p.pdt, {1, p.i});
  for (int64_t x_e = 0; x_e < p.e; ++x_e) {
    const Tensor w13 = expert(w.w13_weight, x_e), s13 = expert(w.w13_scale, x_e),
                 o13 = expert(w.w13_offset, x_e);
    WqbmmArgs a1;
    a1.x = &x13;
    a1.weight = &w13;
    a1.antiquant_scale = &s13;
    a1.antiquant_offset = &o13;
    p.w13.push_back(wqbmm_prepare_weights(a1, wc));
    const Tensor w2 = expert(w.w2_weight, x_e), s2 = expert(w.w2_scale, x_e),
                 o2 = expert(w.w2_offset, x_e);
    WqbmmArgs a2;
    a2.x = &x2;
    a2.weight = &w2;
    a2.antiquant_scale = &s2;
    a2.antiquant_offset = &o2;
    p.w2.push_back(wqbmm_prepare_weights(a2, wc));
  }
  return p;
}

Tensor w4a16_moe_expert_mlp_packed(const Tensor& x, const Tensor& group_list,
                                   const W4a16MoePacked& p, int threads) {
  const int64_t e = p.e, h = p.h, n2 = 2 * p.i;
  if (x.dtype() != p.pdt || x.rank() != 2 || x.dim(1) != h)
    throw std::invalid_argument("w4a16_moe_expert_mlp_packed: x must be " +
                                std::string(dtype_name(p.pdt)) + " [M, " + std::to_string(h) +
                                "], got " + x.describe());
  const int64_t m = x.dim(0);
  const Tensor cumsum = moe_w4_cumsum(group_list, e, m, "w4a16_moe_packed");
  const int64_t* cs = cumsum.data<int64_t>();
  const size_t es = dtype_size(p.pdt);
  Tensor y(p.pdt, {m, h});
  std::vector<float> acc;
  const auto to_pdt = [&](const float* a, uint16_t* out, int64_t count) {
    const auto* in = reinterpret_cast<const uint32_t*>(a);
    if (p.pdt == DType::kF16)
      f32_to_f16_rne(in, out, static_cast<size_t>(count));
    else
      f32_to_bf16_rne(in, out, static_cast<size_t>(count));
  };
  for (int64_t g = 0, r0 = 0; g < e; r0 = cs[g++]) {
    const int64_t n = cs[g] - r0;
    if (n == 0) continue;
    acc.resize(static_cast<size_t>(n * std::max(n2, h)));
    Tensor g1(p.pdt, {n, n2});
    wqbmm_gemm_acc(p.w13[static_cast<size_t>(g)], x.data<uint16_t>() + r0 * h, n, nullptr,
                   acc.data(), threads);
    to_pdt(acc.data(), g1.data<uint16_t>(), n * n2);
    const Tensor sw = npu_swiglu(g1, SwigluConfig{});
    wqbmm_gemm_acc(p.w2[static_cast<size_t>(g)], sw.data<uint16_t>(), n, nullptr, acc.data(),
                   threads);
    to_pdt(acc.data(), reinterpret_cast<uint16_t*>(y.bytes() + r0 * h * es), n * h);
  }
  return y;
}

}  // namespace qconf::opt
