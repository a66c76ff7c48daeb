// Shared case helpers of the MoE dispatch/combine op files (npu_moe_init_routing*.cpp,
// npu_moe_finalize_routing.cpp, npu_moe_token_unpermute.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf::conformance_ops_dispatch_cases {

inline CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags,
                          Params p, TensorMap in) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.params = std::move(p);
  c.inputs = std::move(in);
  return c;
}

inline Tensor i32(Shape s, std::vector<int32_t> v) { return Tensor::from<int32_t>(s, v); }

// Top-k style expert ids: K distinct experts per token in [0, E), drawn from the seed by a
// partial Fisher-Yates shuffle (one uniform draw per swap).
inline Tensor random_topk_ids(const std::string& seed_name, int64_t n, int64_t k, int64_t e) {
  const uint64_t seed = rng::seed_from_string(seed_name);
  std::vector<int32_t> out;
  std::vector<int32_t> pool(static_cast<size_t>(e));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < e; ++i) pool[i] = static_cast<int32_t>(i);
    for (int64_t j = 0; j < k; ++j) {
      const Tensor d = gen::int_tensor(DType::kI64, {1}, j, e - 1, seed, t * 1024 + j);
      std::swap(pool[j], pool[d.data<int64_t>()[0]]);
      out.push_back(pool[j]);
    }
  }
  return Tensor::from<int32_t>({n, k}, out);
}

// The k-major row_idx of npu_moe_gating_top_k_softmax: row_idx[t, j] = j*N + t (notes §7).
inline Tensor k_major_row_idx(int64_t n, int64_t k) {
  std::vector<int32_t> v;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) v.push_back(static_cast<int32_t>(j * n + t));
  return Tensor::from<int32_t>({n, k}, v);
}

}  // namespace qconf::conf::conformance_ops_dispatch_cases
