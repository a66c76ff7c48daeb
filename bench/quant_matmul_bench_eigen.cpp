// The fp32 peer of bench/quant_matmul_bench.cpp: Y = X W in fp32 with Eigen, K = N = 4096,
// M in {1, 16, 128, 1024}, 1 and 2 threads (Eigen is built without OpenMP here, so 2 threads
// run two Eigen GEMMs on the two halves of N through qconf::opt::parallel_for).
//
// This file alone is compiled with -march=native (bench/CMakeLists.txt), so Eigen uses its
// AVX-512 FMA kernels, a fair fp32 peer of the AVX-512 VNNI int8 code (the label says which
// SIMD Eigen was compiled for).
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <string>

#include "qconf/opt/parallel.h"

namespace {

constexpr int64_t kK = 4096, kN = 4096;
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const RowMajor& weights_f32() {
  static const RowMajor* w = [] {
    auto* m = new RowMajor(kK, kN);
    m->setRandom();
    return m;
  }();
  return *w;
}

void BM_EigenFp32Gemm(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  const RowMajor& w = weights_f32();
  RowMajor x(m, kK), y(m, kN);
  x.setRandom();
  const int64_t half = kN / 2;
  for (auto _ : state) {
    qconf::opt::parallel_for(
        kN, t == 1 ? kN : half,
        [&](int64_t n0, int64_t n1) {
          y.middleCols(n0, n1 - n0).noalias() = x * w.middleCols(n0, n1 - n0);
        },
        t);
    benchmark::DoNotOptimize(y.data());
  }
  const double ops = 2.0 * static_cast<double>(m) * kN * kK;
  state.counters["GOPS"] = benchmark::Counter(ops * 1e-9 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
  state.SetLabel(std::string("Eigen SIMD: ") + Eigen::SimdInstructionSetsInUse());
}
BENCHMARK(BM_EigenFp32Gemm)
    ->ArgsProduct({{1, 16, 128, 1024}, {1, 2}})
    ->ArgNames({"M", "threads"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
