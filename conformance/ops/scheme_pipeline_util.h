// Shared by the scheme pipeline ops (scheme_*_linear.cpp): the load-time transforms vllm-ascend
// applies to checkpoint tensors, and the seeded checkpoint-like inputs of the golden cases.
#pragma once

#include <string>

#include "qconf/checkpoint/checkpoint.h"
#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf::scheme_pipeline {

// weight [N, K] -> [K, N] contiguous (process_weights_after_loading: transpose(0, 1); the NZ cast
// that follows changes the layout, not the values).
inline Tensor transpose_2d(const Tensor& w) {
  if (w.rank() != 2) throw std::invalid_argument("weight must be 2-D [N, K], got " + w.describe());
  const int64_t n = w.dim(0), k = w.dim(1);
  const size_t es = dtype_size(w.dtype());
  Tensor t(w.dtype(), {k, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      std::memcpy(t.bytes() + (j * n + i) * es, w.bytes() + (i * k + j) * es, es);
  return t;
}

// A [N, 1] (or [N]) checkpoint scale as the flattened params-dtype parameter [N].
inline Tensor flat_param(const Tensor& s, DType pdt) {
  Tensor p = ckpt::to_params_dtype(s, pdt);
  Tensor f(p.dtype(), {p.numel()});
  std::memcpy(f.bytes(), p.bytes(), p.nbytes());
  return f;
}

// Exact widening of a bf16/fp16 tensor to fp32 (the `*_fp32` copies).
inline Tensor widen_f32(const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  Tensor w(DType::kF32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint16_t b = t.data<uint16_t>()[i];
    w.data<uint32_t>()[i] =
        num::f32_bits(t.dtype() == DType::kF16 ? num::f16_to_f32(b) : num::bf16_to_f32(b));
  }
  return w;
}

inline DType pdt_of(const Params& p) {
  const std::string s = param_str(p, "params_dtype", "bfloat16");
  if (s == "bfloat16") return DType::kBF16;
  if (s == "float16") return DType::kF16;
  throw std::invalid_argument("params_dtype must be bfloat16 or float16, got \"" + s + "\"");
}

// Checkpoint-like fp32 scales: values on a 2^-20 grid in [2^-8, 2^-6), most not representable in
// bf16/fp16, so the load-time rounding is visible.
inline Tensor ckpt_scale(const Shape& shape, uint64_t seed, uint64_t stream) {
  return gen::float_tensor(DType::kF32, shape, gen::FloatDist::grid(4096, 16383, -20), seed,
                           stream);
}

inline std::map<std::string, Check> special_floats(const TensorMap& out) {
  std::map<std::string, Check> m;
  for (const auto& [name, t] : out)
    if (dtype_is_float(t.dtype())) m[name].mode = CheckMode::kSpecial;
  return m;
}

}  // namespace qconf::conf::scheme_pipeline
