// Checkpoint-like tensors of the int4 MoE schemes, built from int4 values the way each exporter
// stores them (shared by scheme_w4a8_dynamic_moe.cpp, scheme_w4a16_moe.cpp and their tests).
// Sources: notes/vllm_ascend_quant.md §A (W4A8 formats A and B, W4A16), §D (pack-quantized).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "qconf/core/tensor.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/packing.h"

namespace qconf::conf::moe_w4_ckpt {

// ModelSlim: int4 values [E, N, K] -> int8 [E, N/2, K], byte (r, k) = (v[2r+1, k] << 4) |
// (v[2r, k] & 0xF): two int4 per byte along the output dim, the even output in the low nibble
// (what transpose + view(int32) hands to the NPU's int4 layout).
inline Tensor modelslim_bytes(const Tensor& v) {
  const int64_t e = v.dim(0), n = v.dim(1), k = v.dim(2);
  Tensor b(DType::kI8, {e, n / 2, k});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t r = 0; r < n / 2; ++r)
      for (int64_t c = 0; c < k; ++c) {
        const int lo = v.data<int8_t>()[(x * n + 2 * r) * k + c];
        const int hi = v.data<int8_t>()[(x * n + 2 * r + 1) * k + c];
        b.data<int8_t>()[(x * (n / 2) + r) * k + c] =
            static_cast<int8_t>(static_cast<uint8_t>((hi << 4) | (lo & 0xF)));
      }
  return b;
}

// 8 * sum_{k in [k0, k1)} v[e, n, k] * s[e, n] in fp32 (the exact value rounded once: what an
// exporter computing in double and storing fp32 writes). v [E, N, K] int4, s float32 [E, N, 1].
inline float scale_bias_partial(const Tensor& v, const Tensor& s, int64_t e, int64_t n, int64_t k0,
                                int64_t k1) {
  const int64_t nn = v.dim(1), k = v.dim(2);
  int64_t cs = 0;
  for (int64_t c = k0; c < k1; ++c) cs += v.data<int8_t>()[(e * nn + n) * k + c];
  return static_cast<float>(static_cast<double>(8 * cs) *
                            static_cast<double>(s.data<float>()[e * nn + n]));
}

// ModelSlim gate/up scale_bias [E, N, 1] and down scale_bias [E, N, 16]: column c holds the
// partial sum over the c-th sixteenth of K (K % 16 == 0).
inline Tensor modelslim_scale_bias(const Tensor& v, const Tensor& s, int64_t cols) {
  const int64_t e = v.dim(0), n = v.dim(1), k = v.dim(2);
  Tensor sb(DType::kF32, {e, n, cols});
  for (int64_t x = 0; x < e; ++x)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < cols; ++c)
        sb.data<float>()[(x * n + r) * cols + c] =
            scale_bias_partial(v, s, x, r, c * k / cols, (c + 1) * k / cols);
  return sb;
}

// Columns [k0, k1) of [E, N, K].
inline Tensor k_slice(const Tensor& v, int64_t k0, int64_t k1) {
  const int64_t e = v.dim(0), n = v.dim(1), k = v.dim(2);
  Tensor o(v.dtype(), {e, n, k1 - k0});
  const size_t es = dtype_size(v.dtype());
  for (int64_t r = 0; r < e * n; ++r)
    std::memcpy(o.bytes() + r * (k1 - k0) * es, v.bytes() + (r * k + k0) * es, (k1 - k0) * es);
  return o;
}

// float32 [E, N, 1] -> bfloat16 (RNE): the LLM-Compressor scale dtype.
inline Tensor to_bf16(const Tensor& s) {
  Tensor b(DType::kBF16, s.shape());
  for (int64_t i = 0; i < s.numel(); ++i)
    b.data<uint16_t>()[i] = num::f32_to_bf16(s.data<float>()[i]);
  return b;
}

// compressed-tensors pack-quantized: int4 values [E, N, K] -> int32 [E, N, K/8] (offset binary,
// LSB first along K), through the project's ct_pack_to_int32.
inline Tensor ct_packed(const Tensor& v) {
  const int64_t e = v.dim(0), n = v.dim(1), k = v.dim(2);
  Tensor flat(DType::kI8, {e * n, k});
  std::memcpy(flat.bytes(), v.bytes(), v.nbytes());
  const Tensor p = ref::ct_pack_to_int32(flat, 4, 1);
  Tensor out(DType::kI32, {e, n, k / 8});
  std::memcpy(out.bytes(), p.bytes(), p.nbytes());
  return out;
}

inline Tensor weight_shape(int64_t e, int64_t n, int64_t k) {
  Tensor t(DType::kI32, {e, 2});
  for (int64_t x = 0; x < e; ++x) {
    t.data<int32_t>()[2 * x] = static_cast<int32_t>(n);
    t.data<int32_t>()[2 * x + 1] = static_cast<int32_t>(k);
  }
  return t;
}

}  // namespace qconf::conf::moe_w4_ckpt
