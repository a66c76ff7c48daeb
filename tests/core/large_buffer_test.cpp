// Tests of qconf/core/large_buffer.h: the storage of streamed weights (PackedWeightsS8,
// WqbmmWeights::packed) starts on a 2 MiB boundary from 2 MiB on, so that the kernel can back it
// with huge pages; smaller buffers keep the 64-byte alignment the SIMD kernels load with; the
// contents are what was stored.
#include "qconf/core/large_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/opt/gemm_s8.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

uintptr_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(LargeBuffer, BuffersOfTwoMiBOrMoreStartOnAHugePageBoundaryAndSmallerOnesOnACacheLine) {
  for (size_t bytes : {size_t{1}, size_t{100}, size_t{4096}, (size_t{2} << 20) - 1, size_t{2} << 20,
                       (size_t{2} << 20) + 1, size_t{5} << 20}) {
    void* p = qconf::allocate_large_buffer(bytes);
    const uintptr_t align = bytes >= qconf::kLargeBufferBytes ? qconf::kLargeBufferBytes : 64;
    EXPECT_EQ(addr(p) % align, 0u) << bytes << " bytes";
    // Every byte is usable (a short allocation would be caught by the sanitizer build).
    auto* b = static_cast<unsigned char*>(p);
    b[bytes - 1] = 2;
    b[0] = 1;
    EXPECT_EQ(b[bytes - 1], bytes == 1 ? 1 : 2) << bytes << " bytes";
    qconf::free_large_buffer(p);
  }
}

TEST(LargeBuffer, PackedInt8WeightsOfTwoMiBStartOnAHugePageBoundary) {
  const Tensor w = qconf::gen::int_tensor(DType::kI8, {2048, 1024}, -127, 127,
                                          qconf::rng::seed_from_string("large_buffer"), 0);
  const auto p = qconf::opt::PackedWeightsS8::pack(w);
  EXPECT_EQ(addr(p.panel(0)) % qconf::kLargeBufferBytes, 0u);
}

TEST(LargeBuffer, PreparedWeightQuantWeightsKeepTheirBytesAndStartOnAHugePageBoundary) {
  const uint64_t seed = qconf::rng::seed_from_string("large_buffer_wqbmm");
  const Tensor w = qconf::gen::int_tensor(DType::kI8, {2048, 1024}, -128, 127, seed, 0);
  const Tensor scale = qconf::gen::float_tensor(DType::kBF16, {1024},
                                                qconf::gen::FloatDist::grid(1, 255, -14), seed, 1);
  const Tensor x =
      qconf::gen::float_tensor(DType::kBF16, {1, 2048}, qconf::gen::FloatDist::normal(0), seed, 2);
  qconf::WqbmmArgs a;
  a.x = &x;
  a.weight = &w;
  a.antiquant_scale = &scale;
  const auto prepared = qconf::opt::wqbmm_prepare_weights(a, qconf::WqbmmConfig{});
  ASSERT_GE(prepared.packed.size(), qconf::kLargeBufferBytes);
  EXPECT_EQ(addr(prepared.packed.data()) % qconf::kLargeBufferBytes, 0u);
  // Column-major k-contiguous bytes (weight_quant_bmm.cpp): column n, row k at n * kpad + k.
  for (int64_t n : {0, 517, 1023})
    for (int64_t k : {0, 1000, 2047})
      ASSERT_EQ(static_cast<int8_t>(prepared.packed[static_cast<size_t>(n * prepared.kpad + k)]),
                w.data<int8_t>()[k * 1024 + n])
          << "k " << k << " n " << n;
}

}  // namespace
