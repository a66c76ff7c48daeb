// FRACTAL_NZ transforms on 64 MiB tensors, against memcpy of the same bytes in the same run
// (issue target: >= 50% of memcpy bandwidth): each iteration times a 64 MiB memcpy and then the
// transform at the same thread count; counter pct_memcpy (bench/memcpy_baseline.h). Bytes
// counted = bytes of the ND tensor (the source of nd->nz, the destination of nz->nd), as
// memcpy counts the bytes it reads. Arg = threads.
//   build/bench/qconf_bench --benchmark_filter='Nz' --benchmark_repetitions=6
#include <benchmark/benchmark.h>

#include <vector>

#include "memcpy_baseline.h"
#include "qconf/ops/nz.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::NzDtype;

constexpr int64_t kBytes = int64_t{64} << 20;

struct Case {
  NzDtype dtype;
  int64_t rows, cols;  // storage elements: rows * cols * itemsize ~= 64 MiB
};

const qconf::Tensor& nd_input(const qconf::NzLayout& l, int64_t rows, int64_t cols) {
  // One cached tensor per (dtype, shape); the values do not matter for a copy.
  static std::vector<std::pair<std::string, qconf::Tensor>> cache;
  const std::string key = std::string(qconf::dtype_name(l.storage)) + "/" + std::to_string(rows) +
                          "x" + std::to_string(cols);
  for (auto& [k, t] : cache)
    if (k == key) return t;
  qconf::Tensor t = qconf::gen::int_tensor(l.storage, {rows, cols}, -100, 100,
                                           qconf::rng::seed_from_string("nz_bench/" + key), 0);
  cache.emplace_back(key, std::move(t));
  return cache.back().second;
}

void run_nd_to_nz(benchmark::State& state, qconf::NzLayout l, int64_t rows, int64_t cols) {
  const int threads = static_cast<int>(state.range(0));
  const qconf::Tensor& nd = nd_input(l, rows, cols);
  std::vector<std::byte> out(qconf::shape_numel(qconf::nz_storage_shape(nd.shape(), l)) *
                             qconf::dtype_size(l.storage));
  qconf_bench::run_vs_memcpy(state, threads, static_cast<int64_t>(nd.nbytes()), [&] {
    qconf::opt::nd_to_nz_raw(nd.bytes(), out.data(), 1, rows, cols,
                             static_cast<int64_t>(qconf::dtype_size(l.storage)), l.n0, threads);
    benchmark::DoNotOptimize(out.data());
  });
}

void run_nz_to_nd(benchmark::State& state, qconf::NzLayout l, int64_t rows, int64_t cols) {
  const int threads = static_cast<int>(state.range(0));
  const qconf::Tensor nz = qconf::opt::nd_to_nz(nd_input(l, rows, cols), l);
  std::vector<std::byte> out(static_cast<size_t>(rows * cols) * qconf::dtype_size(l.storage));
  qconf_bench::run_vs_memcpy(state, threads, static_cast<int64_t>(out.size()), [&] {
    qconf::opt::nz_to_nd_raw(nz.bytes(), out.data(), 1, rows, cols,
                             static_cast<int64_t>(qconf::dtype_size(l.storage)), l.n0, threads);
    benchmark::DoNotOptimize(out.data());
  });
}

#define QCONF_NZ_BENCH(name, dtype, fp32, rows, cols)                                         \
  void BM_NdToNz##name(benchmark::State& s) {                                                 \
    run_nd_to_nz(s, qconf::nz_layout(dtype, fp32), rows, cols);                               \
  }                                                                                           \
  BENCHMARK(BM_NdToNz##name)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond); \
  void BM_NzToNd##name(benchmark::State& s) {                                                 \
    run_nz_to_nd(s, qconf::nz_layout(dtype, fp32), rows, cols);                               \
  }                                                                                           \
  BENCHMARK(BM_NzToNd##name)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

constexpr auto kT16 = qconf::Fp32NzC0::kTorchNpu16;
constexpr auto kC8 = qconf::Fp32NzC0::kCann8;
// 64 MiB each: fp16 4096 x 8192; fp16 with tails in both dims (4100 x 8180, ~64 MiB);
// int8 8192 x 8192; int4 as int32 words 4096 x 4096 (N = 32768 int4); fp32 4096 x 4096 under
// both readings.
QCONF_NZ_BENCH(Fp16_64MiB, NzDtype::kFloat16, kT16, 4096, 8192)
QCONF_NZ_BENCH(Fp16Tails_64MiB, NzDtype::kFloat16, kT16, 4100, 8180)
QCONF_NZ_BENCH(Int8_64MiB, NzDtype::kInt8, kT16, 8192, 8192)
QCONF_NZ_BENCH(Int4_64MiB, NzDtype::kInt4, kT16, 4096, 4096)
QCONF_NZ_BENCH(Fp32TorchNpu16_64MiB, NzDtype::kFloat32, kT16, 4096, 4096)
QCONF_NZ_BENCH(Fp32Cann8_64MiB, NzDtype::kFloat32, kC8, 4096, 4096)

// KV cache int8: 512 blocks x 8 heads x head_size 128 x block_size 128 = 64 MiB.
constexpr int64_t kKvBlocks = 512, kKvHeads = 8, kKvHeadSize = 128, kKvBlockSize = 128;

void BM_KvCacheNzToNd_64MiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::vector<int8_t> in(kBytes, 3), out(kBytes);
  qconf_bench::run_vs_memcpy(state, threads, kBytes, [&] {
    qconf::opt::kv_cache_nz_to_nd_raw(in.data(), out.data(), kKvBlocks, kKvHeads, kKvHeadSize,
                                      kKvBlockSize, threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_KvCacheNzToNd_64MiB)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_KvCacheNdToNz_64MiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::vector<int8_t> in(kBytes, 3), out(kBytes);
  qconf_bench::run_vs_memcpy(state, threads, kBytes, [&] {
    qconf::opt::kv_cache_nd_to_nz_raw(in.data(), out.data(), kKvBlocks, kKvHeads, kKvHeadSize,
                                      kKvBlockSize, threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_KvCacheNdToNz_64MiB)->Arg(1)->Arg(2)->UseManualTime()->Unit(benchmark::kMillisecond);

// The reference (element by element through the map), once, for scale.
void BM_NdToNzReferenceFp16_64MiB(benchmark::State& state) {
  const qconf::NzLayout l = qconf::nz_layout(NzDtype::kFloat16);
  const qconf::Tensor& nd = nd_input(l, 4096, 8192);
  for (auto _ : state) benchmark::DoNotOptimize(qconf::ref::nd_to_nz(nd, l));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(nd.nbytes()));
}
BENCHMARK(BM_NdToNzReferenceFp16_64MiB)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
