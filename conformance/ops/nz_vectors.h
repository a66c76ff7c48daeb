// Test-vector builders shared by the FRACTAL_NZ ops (conformance/ops/nd_to_nz.cpp,
// nz_to_nd.cpp, kv_cache_nz_to_nd.cpp, kv_cache_nd_to_nz.cpp).
//
// Coordinate vectors: every element's bits name its position, so that any wrong block size,
// block order or transposition changes the output and the failure message (which prints the
// bits in hex) says where the element came from:
//   float16 / bfloat16   bits 0xRRCC      (RR = row + 1, CC = column + 1)
//   float32              bits 0x0RRR0CCC  ((row + 1) << 16 | (column + 1))
//   int4 (int32 words)   word 0x0RRR0WWW  ((row + 1) << 16 | (word column + 1))
//   int8                 ((row * N + column) mod 251) + 1, as a byte (1..251, never 0)
// "row" counts across batch dims (row of the flattened [batch * M, N] matrix). No element is 0,
// so every zero in an NZ output is padding. The transforms copy bits: that some 16-bit
// patterns are subnormals is intended (a port must not canonicalise them).
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

#include "qconf/conformance/op.h"
#include "qconf/ops/nz.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf::nz_vectors {

// The layout a case asks for: param "dtype" (required) and "fp32_c0" (float32 only).
inline NzLayout layout_from(const Params& p, const std::string& op) {
  const std::string dt = param_str(p, "dtype", "");
  if (dt.empty())
    throw std::invalid_argument(op +
                                ": param \"dtype\" is required (float16, bfloat16, int8, int4, "
                                "float32)");
  const NzDtype d = parse_nz_dtype(op, dt);
  return nz_layout(d, parse_fp32_nz_c0(op, param_str(p, "fp32_c0", "torch_npu_16")));
}

inline Params params_for(NzDtype d, Fp32NzC0 fp32 = Fp32NzC0::kTorchNpu16) {
  Params p = Params::object();
  p["dtype"] = std::string(nz_dtype_name(d));
  if (d == NzDtype::kFloat32) p["fp32_c0"] = std::string(fp32_nz_c0_name(fp32));
  return p;
}

// The storage shape of the ND tensor for a logical shape [..., M, N] (int4: N / 8 words).
inline Shape nd_storage_shape(const Shape& logical, const NzLayout& l) {
  Shape s = logical;
  if (s.back() % l.values_per_element != 0)
    throw std::logic_error("nz_vectors: int4 N must be a multiple of 8");
  s.back() /= l.values_per_element;
  return s;
}

// The bits of the coordinate vector at (flat row, storage column), for a matrix with `cols`
// storage columns.
inline uint64_t coord_bits(DType storage, int64_t row, int64_t col, int64_t cols) {
  switch (dtype_size(storage)) {
    case 1:
      return static_cast<uint64_t>((row * cols + col) % 251 + 1);
    case 2:
      if (row + 1 > 0x7b || col + 1 > 0xff)
        throw std::logic_error("nz_vectors: 16-bit coordinate vector too large");
      return static_cast<uint64_t>(((row + 1) << 8) | (col + 1));
    default:
      if (row + 1 > 0xfff || col + 1 > 0xfff)
        throw std::logic_error("nz_vectors: 32-bit coordinate vector too large");
      return static_cast<uint64_t>(((row + 1) << 16) | (col + 1));
  }
}

inline void put_bits(Tensor& t, int64_t i, uint64_t bits) {
  std::memcpy(t.bytes() + i * static_cast<int64_t>(dtype_size(t.dtype())), &bits,
              dtype_size(t.dtype()));  // little-endian: the low bytes of `bits`
}

// A coordinate-encoding tensor of `storage` dtype and storage shape `shape` (rank >= 2).
inline Tensor coord_tensor(DType storage, const Shape& shape) {
  Tensor t(storage, shape);
  const int64_t cols = shape.back();
  for (int64_t k = 0; k < t.numel(); ++k)
    put_bits(t, k, coord_bits(storage, k / cols, k % cols, cols));
  return t;
}

// Uniform random bit patterns of `storage` dtype (NaNs, infinities and subnormals included for
// floats): the generator draws integers of the same width and the bits are reinterpreted.
inline Tensor random_bits(DType storage, const Shape& shape, const std::string& id) {
  DType as_int = DType::kU8;
  int64_t hi = 0xff;
  if (dtype_size(storage) == 2) as_int = DType::kU16, hi = 0xffff;
  if (dtype_size(storage) == 4) as_int = DType::kU32, hi = 0xffffffffLL;
  const Tensor r = gen::int_tensor(as_int, shape, 0, hi, rng::seed_from_string(id), 0);
  Tensor t(storage, shape);
  std::memcpy(t.bytes(), r.bytes(), r.nbytes());
  return t;
}

// The padding positions of an NZ storage tensor for ND [..., m, n] (storage units), as a
// predicate on the flat NZ index.
inline bool is_padding(const Shape& nz_shape, int64_t flat, int64_t m, int64_t n_storage) {
  const size_t r = nz_shape.size();
  const int64_t n0 = nz_shape[r - 1], m1 = nz_shape[r - 3], n1 = nz_shape[r - 4];
  const int64_t c = flat % n0, row = (flat / n0) % kNzFractalRows;
  const int64_t mb = (flat / (n0 * kNzFractalRows)) % m1;
  const int64_t nb = (flat / (n0 * kNzFractalRows * m1)) % n1;
  return mb * kNzFractalRows + row >= m || nb * n0 + c >= n_storage;
}

// An NZ tensor whose padding positions hold `garbage` bits instead of zero.
inline Tensor with_padding_garbage(Tensor nz, int64_t m, int64_t n_storage, uint64_t garbage) {
  for (int64_t k = 0; k < nz.numel(); ++k)
    if (is_padding(nz.shape(), k, m, n_storage)) put_bits(nz, k, garbage);
  return nz;
}

inline bool any_nonzero(const Tensor& t) {
  for (size_t k = 0; k < t.nbytes(); ++k)
    if (t.bytes()[k] != std::byte{0}) return true;
  return false;
}

// The KV-cache cases both directions run (kv_cache_nd_to_nz, kv_cache_nz_to_nd): one ND shape
// (num_blocks, block_size, num_kv_heads, head_size) per case, coordinate-coded or random int8.
struct KvCacheShape {
  const char* name;
  const char* comment;
  std::vector<std::string> flags;
  int64_t blocks, heads, head_size, block_size;
  bool random;
  Shape nd() const { return {blocks, block_size, heads, head_size}; }
};
inline std::vector<KvCacheShape> kv_cache_shapes() {
  return {
      {"va_unit_test_shape_2x2x32x32",
       "blocks 2, heads 2, head_size 32, bs 32",
       {"VaUnitTestShape"},
       2,
       2,
       32,
       32,
       false},
      {"square_axes_2x4x128x4",
       "heads 4 == head_size/32 4 == block_size 4",
       {"PermuteOrder", "HeadChunks"},
       2,
       4,
       128,
       4,
       false},
      {"head_chunks_2x3x64x8",
       "heads 3, head_size 64 (2 chunks), bs 8",
       {"HeadChunks"},
       2,
       3,
       64,
       8,
       false},
      {"block_size_8_3x2x32x8", "block_size 8", {"BlockSizeNotPadded"}, 3, 2, 32, 8, false},
      {"block_size_1_4x1x96x1",
       "block_size 1, one head of 3 chunks",
       {"BlockSizeNotPadded"},
       4,
       1,
       96,
       1,
       false},
      {"random_2x2x96x4",
       "random int8",
       {"Random", "HeadChunks", "BlockSizeNotPadded"},
       2,
       2,
       96,
       4,
       true},
      {"random_1x3x64x16", "random int8", {"Random", "HeadChunks"}, 1, 3, 64, 16, true},
  };
}
// The ND cache of a case: position-coded, or random bits seeded by "OP/NAME".
inline Tensor kv_cache_nd_input(const KvCacheShape& k, const std::string& op) {
  return k.random ? random_bits(DType::kI8, k.nd(), op + "/" + k.name)
                  : coord_tensor(DType::kI8, k.nd());
}

}  // namespace qconf::conf::nz_vectors
