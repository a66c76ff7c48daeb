// Optimized MoE dispatch and combine (qconf/ops/dispatch.h): a stable counting sort (LSD radix for
// the row_idx tie order), row gathers split over threads in fixed chunks, quantization with native
// fp32 arithmetic (IEEE, no contraction). Every init_routing output is bit-identical to the
// reference. The fixed-order fp32 combine (deterministic, independent of the thread count, within
// the reference's derived bound) is in optimized/ops/dispatch_combine.cpp (Highway SIMD).
#include "qconf/ops/dispatch.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"

namespace qconf::opt {
namespace {

using dispatch_detail::Combine;

constexpr int64_t kRowGrain = 64;  // rows per chunk of the threaded gathers

// Stable counting sort of positions [0, n) by small integer keys in [0, buckets): positions with
// equal keys keep their input order (`order`, or 0..n-1 when null).
std::vector<int32_t> counting_sort(const std::vector<int32_t>& bucket, int64_t buckets,
                                   const std::vector<int32_t>* order) {
  const int64_t n = static_cast<int64_t>(bucket.size());
  std::vector<int64_t> start(static_cast<size_t>(buckets) + 1, 0);
  for (int64_t p = 0; p < n; ++p) ++start[bucket[p] + 1];
  for (int64_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t p = order ? (*order)[i] : static_cast<int32_t>(i);
    out[start[bucket[p]]++] = p;
  }
  return out;
}

void copy_rows(const Tensor& x, const int32_t* src_row, int64_t rows, Tensor& out, int threads) {
  const size_t rb = static_cast<size_t>(x.dim(1)) * dtype_size(x.dtype());
  const std::byte* in = x.bytes();
  std::byte* o = out.bytes();
  parallel_for(
      rows, kRowGrain,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::memcpy(o + i * rb, in + src_row[i] * rb, rb);
      },
      threads);
}

uint32_t widen(DType d, const std::byte* base, int64_t i) {
  if (d == DType::kF32) {
    uint32_t v;
    std::memcpy(&v, base + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, base + 2 * i, 2);
  return d == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

float as_f(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
uint32_t as_u(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// fp32 -> int8: round half to even, saturate, NaN -> 0 (notes §0).
int8_t sat8(float v) {
  if (std::isnan(v)) return 0;
  const float r = std::nearbyint(v);
  return static_cast<int8_t>(r >= 127.0f ? 127 : r <= -128.0f ? -128 : static_cast<int>(r));
}

}  // namespace

// ---- v1
// ------------------------------------------------------------------------------------------

InitRoutingV1Stages npu_moe_init_routing(const Tensor& x, const Tensor& row_idx,
                                         const Tensor& expert_idx, const InitRoutingV1Config& c,
                                         int threads) {
  dispatch_detail::check_v1(x, row_idx, expert_idx, c);
  const int64_t n = x.dim(0), k = expert_idx.dim(1), nk = n * k;
  const int32_t* ids = expert_idx.data<int32_t>();
  const int32_t* rows = row_idx.data<int32_t>();
  int32_t lo = INT32_MAX, hi = INT32_MIN;
  for (int64_t p = 0; p < nk; ++p) lo = std::min(lo, ids[p]), hi = std::max(hi, ids[p]);
  std::vector<int32_t> perm;
  std::vector<int32_t> pre;  // row_idx order: positions sorted by their row_idx value
  if (c.tie_order == RoutingTieOrder::kRowIdxValue) {
    pre.resize(static_cast<size_t>(nk));
    for (int64_t p = 0; p < nk; ++p) pre[rows[p]] = static_cast<int32_t>(p);
  }
  const std::vector<int32_t>* order = pre.empty() ? nullptr : &pre;
  if (nk && static_cast<int64_t>(hi) - lo < 4 * nk + 4096) {
    std::vector<int32_t> bucket(static_cast<size_t>(nk));
    for (int64_t p = 0; p < nk; ++p) bucket[p] = ids[p] - lo;
    perm = counting_sort(bucket, static_cast<int64_t>(hi) - lo + 1, order);
  } else {
    perm = order ? pre : std::vector<int32_t>(static_cast<size_t>(nk));
    if (!order)
      for (int64_t p = 0; p < nk; ++p) perm[p] = static_cast<int32_t>(p);
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  }
  InitRoutingV1Stages st;
  st.sorted_position = Tensor::from<int32_t>({nk}, perm);
  st.expanded_expert_idx = Tensor(DType::kI32, {nk});
  st.expanded_row_idx = Tensor(DType::kI32, {nk});
  const int64_t rows_out = std::min(n, c.active_num) * k;
  st.expanded_x = Tensor(x.dtype(), {rows_out, x.dim(1)});
  std::vector<int32_t> src_tok(static_cast<size_t>(rows_out));
  for (int64_t i = 0; i < nk; ++i) {
    st.expanded_expert_idx.data<int32_t>()[i] = ids[perm[i]];
    const int32_t src = rows[perm[i]];
    st.expanded_row_idx.data<int32_t>()[src] = static_cast<int32_t>(i);
    if (i < rows_out) src_tok[i] = static_cast<int32_t>(src % n);
  }
  copy_rows(x, src_tok.data(), rows_out, st.expanded_x, threads);
  return st;
}

// ---- v2
// ------------------------------------------------------------------------------------------

InitRoutingV2Stages npu_moe_init_routing_v2(const Tensor& x, const Tensor& expert_idx,
                                            const Tensor* scale, const Tensor* offset,
                                            const InitRoutingV2Config& c, int threads) {
  const dispatch_detail::V2Plan p = dispatch_detail::check_v2(x, expert_idx, scale, offset, c);
  const int32_t* ids = expert_idx.data<int32_t>();
  // Buckets: expert ids [0, E) below `start` go to the last bucket E (the INT32_MAX key).
  std::vector<int32_t> bucket(static_cast<size_t>(p.nk));
  for (int64_t i = 0; i < p.nk; ++i)
    bucket[i] = ids[i] < p.start ? static_cast<int32_t>(c.expert_num) : ids[i];
  const std::vector<int32_t> perm = counting_sort(bucket, c.expert_num + 1, nullptr);
  InitRoutingV2Stages st;
  st.sorted_row_idx = Tensor::from<int32_t>({p.nk}, perm);
  st.sorted_expert_idx = Tensor(DType::kI32, {p.nk});
  int32_t* sorted = st.sorted_expert_idx.data<int32_t>();
  for (int64_t i = 0; i < p.nk; ++i) sorted[i] = ids[perm[i]] < p.start ? INT32_MAX : ids[perm[i]];

  std::vector<int64_t> counts(static_cast<size_t>(c.expert_num), 0);
  for (int64_t i = 0; i < p.nk; ++i) ++counts[ids[i]];

  if (c.drop_pad_mode == 1) {
    const int64_t cap = c.expert_capacity, e_num = c.expert_num;
    st.expanded_row_idx = Tensor(DType::kI32, {p.nk});
    int32_t* eri = st.expanded_row_idx.data<int32_t>();
    std::fill_n(eri, p.nk, -1);
    st.expanded_x = Tensor(x.dtype(), {e_num, cap, p.h});
    if (scale) st.expanded_scale = Tensor(DType::kF32, {e_num * cap});
    const size_t rb = static_cast<size_t>(p.h) * dtype_size(x.dtype());
    int64_t i = 0;
    for (int64_t e = 0; e < e_num; ++e) {  // sorted order visits the experts in increasing id
      for (int64_t j = 0; j < counts[e]; ++j, ++i) {
        if (j >= cap) continue;
        const int64_t dst = e * cap + j;
        eri[perm[i]] = static_cast<int32_t>(dst);
        std::memcpy(st.expanded_x.bytes() + dst * rb, x.bytes() + (perm[i] / p.k) * rb, rb);
        if (scale) st.expanded_scale.data<float>()[dst] = scale->data<float>()[perm[i] / p.k];
      }
    }
    if (c.expert_tokens_flag) st.expert_tokens = Tensor::from<int64_t>({e_num}, counts);
    return st;
  }

  if (c.row_idx_type == RowIdxType::kGather) {
    st.expanded_row_idx = Tensor(DType::kI32, {p.nk});
    int32_t* eri = st.expanded_row_idx.data<int32_t>();
    std::fill_n(eri, p.nk, -1);
    for (int64_t i = 0; i < p.total; ++i) eri[perm[i]] = static_cast<int32_t>(i);
  } else {
    st.expanded_row_idx = Tensor::from<int32_t>(
        {p.total}, std::vector<int32_t>(perm.begin(), perm.begin() + p.total));
  }
  if (c.expert_tokens_flag) {
    const int64_t m =
        c.expert_tokens_type == GroupListType::kKeyValue ? c.expert_num : p.end - p.start;
    if (c.expert_tokens_type == GroupListType::kKeyValue) {
      st.expert_tokens = Tensor(DType::kI64, {m, 2});
      int64_t* kv = st.expert_tokens.data<int64_t>();
      int64_t r = 0;
      for (int64_t e = p.start; e < p.end; ++e)
        if (counts[e]) kv[2 * r] = e, kv[2 * r + 1] = counts[e], ++r;
    } else {
      st.expert_tokens = Tensor(DType::kI64, {m});
      int64_t* t = st.expert_tokens.data<int64_t>();
      int64_t run = 0;
      for (int64_t e = p.start; e < p.end; ++e) {
        run += counts[e];
        t[e - p.start] = c.expert_tokens_type == GroupListType::kCount ? counts[e] : run;
      }
    }
  }
  std::vector<int32_t> tok(static_cast<size_t>(p.n_out));
  for (int64_t i = 0; i < p.n_out; ++i) tok[i] = perm[i] / static_cast<int32_t>(p.k);
  if (c.quant_mode == -1) {
    st.expanded_x = Tensor(x.dtype(), {p.n_out, p.h});
    copy_rows(x, tok.data(), p.n_out, st.expanded_x, threads);
    if (scale) {
      st.expanded_scale = Tensor(DType::kF32, {p.n_out});
      for (int64_t i = 0; i < p.n_out; ++i)
        st.expanded_scale.data<float>()[i] = scale->data<float>()[tok[i]];
    }
    return st;
  }
  st.expanded_x = Tensor(DType::kI8, {p.n_out, p.h});
  int8_t* q = st.expanded_x.data<int8_t>();
  const std::byte* xb = x.bytes();
  const DType dt = x.dtype();
  if (c.quant_mode == 0) {
    const float s = scale->data<float>()[0], o = offset->data<float>()[0];
    const uint16_t s16 = f32_to_f16_rne(as_u(s)), o16 = f32_to_f16_rne(as_u(o));
    parallel_for(
        p.n_out, kRowGrain,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            for (int64_t j = 0; j < p.h; ++j) {
              const int64_t at = tok[i] * p.h + j;
              if (c.static_precision == StaticQuantPrecision::kFp32) {
                q[i * p.h + j] = sat8((as_f(widen(dt, xb, at)) * s) + o);
                continue;
              }
              // fp16: the product of two fp16 is exact in fp32, one rounding to fp16; the add
              // is done by the bit-exact fp16 adder (no double rounding).
              uint16_t x16;
              if (dt == DType::kF16)
                std::memcpy(&x16, xb + 2 * at, 2);
              else
                x16 = f32_to_f16_rne(widen(dt, xb, at));
              const uint16_t prod =
                  f32_to_f16_rne(as_u(as_f(f16_to_f32(x16)) * as_f(f16_to_f32(s16))));
              const uint16_t sum = static_cast<uint16_t>(num::fp_add(num::kF16, prod, o16));
              q[i * p.h + j] = sat8(as_f(f16_to_f32(sum)));
            }
        },
        threads);
    return st;
  }
  st.expanded_scale = Tensor(DType::kF32, {p.n_out});
  float* es = st.expanded_scale.data<float>();
  const bool per_expert = scale && scale->numel() != p.h;
  parallel_for(
      p.n_out, kRowGrain,
      [&](int64_t b, int64_t e) {
        std::vector<float> xs(static_cast<size_t>(p.h));
        for (int64_t i = b; i < e; ++i) {
          const float* sm =
              scale ? scale->data<float>() + (per_expert ? (sorted[i] - p.start) * p.h : 0)
                    : nullptr;
          float amax = 0;
          bool nan = false;
          for (int64_t j = 0; j < p.h; ++j) {
            float v = as_f(widen(dt, xb, tok[i] * p.h + j));
            if (sm) v = v * sm[j];
            xs[j] = v;
            nan = nan || std::isnan(v);
            amax = std::max(amax, std::fabs(v));
          }
          if (nan) amax = std::numeric_limits<float>::quiet_NaN();
          int8_t* row = q + i * p.h;
          if (c.dyn_formula == DynQuantFormula::kDivScale) {
            const float sc = amax / 127.0f;
            for (int64_t j = 0; j < p.h; ++j) row[j] = sat8(xs[j] / sc);
            es[i] = sc;
          } else {
            const float m = 127.0f / amax;
            for (int64_t j = 0; j < p.h; ++j) row[j] = sat8(xs[j] * m);
            es[i] = c.dyn_formula == DynQuantFormula::kMulReciprocal ? 1.0f / m
                                                                     : amax * (1.0f / 127.0f);
          }
        }
      },
      threads);
  return st;
}

// The combine (npu_moe_finalize_routing, npu_moe_token_unpermute) is SIMD:
// optimized/ops/dispatch_combine.cpp.

}  // namespace qconf::opt
