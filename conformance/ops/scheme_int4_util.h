// Shared by the W4A4 scheme pipeline ops (scheme_w4a4_dynamic_linear.cpp,
// scheme_w4a4_flatquant_linear.cpp): how npu_quant_matmul reads the load-time packed weight.
//
// process_weights_after_loading packs the int8 weight [N, K] with npu_convert_weight_to_int4pack
// (8 codes along K per int32: [N, K/8]) and passes its transpose ([K/8, N], a view) as x2 of
// npu_quant_matmul. torch_npu documents that form: int4 x2 is (k, n/8) contiguous or (k/8, n)
// = the transpose of a contiguous (n, k/8) (notes/torch_npu_semantics.md §2). Either way x2 is
// the logical int4 matrix W^T [K, N]; the reference matmul takes the (k, n/8) form, so the
// pipelines re-express the packed words in it (a layout change: every code comes from the
// packed word, so a packing bug still reaches the matmul).
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/core/tensor.h"
#include "qconf/ops/int4pack.h"

namespace qconf::conf::scheme_int4 {

// The int4 code at (row r, column c) of an int32 [rows, cols/8] NPU-packed tensor.
inline int8_t nibble(const Tensor& packed, int64_t r, int64_t c) {
  const int64_t words = packed.dim(1);
  const uint32_t w = static_cast<uint32_t>(packed.data<int32_t>()[r * words + c / kInt4PerInt32]);
  const int v = static_cast<int>((w >> (4 * (c % kInt4PerInt32))) & 0xF);
  return static_cast<int8_t>(v >= 8 ? v - 16 : v);
}

// weight_packed int32 [N, K/8] -> the codes the matmul reads, int8 [N, K].
inline Tensor unpack_rows(const Tensor& packed) {
  if (packed.dtype() != DType::kI32 || packed.rank() != 2)
    throw std::invalid_argument("weight_packed must be int32 [N, K/8], got " + packed.describe());
  const int64_t n = packed.dim(0), k = packed.dim(1) * kInt4PerInt32;
  Tensor w(DType::kI8, {n, k});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) w.data<int8_t>()[i * k + j] = nibble(packed, i, j);
  return w;
}

// weight_packed int32 [N, K/8] (its transpose is x2) -> x2 in the (k, n/8) form, int32
// [K, N/8]. N must be a multiple of 8 (the form packs 8 columns per word).
inline Tensor x2_from_transposed(const Tensor& packed, const char* op) {
  if (packed.dtype() != DType::kI32 || packed.rank() != 2)
    throw std::invalid_argument(std::string(op) + ": weight_packed must be int32 [N, K/8], got " +
                                packed.describe());
  const int64_t n = packed.dim(0), k = packed.dim(1) * kInt4PerInt32;
  if (n % kInt4PerInt32 != 0)
    throw std::invalid_argument(std::string(op) + ": N = " + std::to_string(n) +
                                " must be a multiple of 8 (int4 npu_quant_matmul)");
  Tensor x2(DType::kI32, {k, n / kInt4PerInt32});
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n / kInt4PerInt32; ++j) {
      int32_t v[kInt4PerInt32];
      for (int q = 0; q < kInt4PerInt32; ++q) v[q] = nibble(packed, j * kInt4PerInt32 + q, kk);
      x2.data<int32_t>()[kk * (n / kInt4PerInt32) + j] = ref::pack_int4_word(v);
    }
  return x2;
}

// int8 [N, K] -> int32 [N, K] (the `.to(torch.int32)` before npu_convert_weight_to_int4pack).
inline Tensor widen_i32(const Tensor& w, const char* op) {
  if (w.dtype() != DType::kI8 || w.rank() != 2)
    throw std::invalid_argument(std::string(op) + ": weight must be int8 [N, K], got " +
                                w.describe());
  Tensor o(DType::kI32, w.shape());
  for (int64_t i = 0; i < w.numel(); ++i) o.data<int32_t>()[i] = w.data<int8_t>()[i];
  return o;
}

// A [N, 1] or [N] float32 scale as the flattened float32 parameter [N] (`.to(float32)`,
// `.view(-1)`; the checkpoint declares float32, so the cast is the identity).
inline Tensor flat_f32(const Tensor& s, const char* op, const char* name) {
  if (s.dtype() != DType::kF32 || s.rank() < 1 || s.rank() > 2 || (s.rank() == 2 && s.dim(1) != 1))
    throw std::invalid_argument(std::string(op) + ": " + name + " must be float32 [N, 1], got " +
                                s.describe());
  Tensor f(DType::kF32, {s.numel()});
  std::memcpy(f.bytes(), s.bytes(), s.nbytes());
  return f;
}

}  // namespace qconf::conf::scheme_int4
