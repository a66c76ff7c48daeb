// npu_convert_weight_to_int4pack on a 64 MiB int32 tensor, against memcpy of the same bytes
// in the same run (issue target: >= 50% of memcpy bandwidth). Bytes counted = bytes read. The
// optimized op reports pct_memcpy against a memcpy timed in the same iterations at the same
// thread count (bench/memcpy_baseline.h); BM_Memcpy64MiB stays for the absolute figure.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "memcpy_baseline.h"
#include "qconf/ops/int4pack.h"
#include "qconf/opt/parallel.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

constexpr int64_t kBytes = int64_t{64} << 20;
constexpr int64_t kInts = kBytes / 4;

const qconf::Tensor& input() {
  static const qconf::Tensor t = qconf::gen::int_tensor(
      qconf::DType::kI32, {kInts / 4096, 4096}, -8, 7, qconf::rng::seed_from_string("bench"), 0);
  return t;
}

void BM_Memcpy64MiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  std::vector<char> src(kBytes, 1), dst(kBytes);
  for (auto _ : state) {
    qconf::opt::parallel_for(
        kBytes, kBytes / 16,
        [&](int64_t b, int64_t e) { std::memcpy(dst.data() + b, src.data() + b, e - b); }, threads);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_Memcpy64MiB)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Int4PackOptimized64MiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const auto& w = input();
  std::vector<int32_t> out(kInts / 8);
  qconf_bench::run_vs_memcpy(state, threads, kBytes, [&] {
    qconf::opt::parallel_for(
        kInts / 8, kInts / 128,
        [&](int64_t b, int64_t e) {
          qconf::opt::pack_int4(w.data<int32_t>() + 8 * b, out.data() + b, 8 * (e - b));
        },
        threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_Int4PackOptimized64MiB)
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_Int4PackReference64MiB(benchmark::State& state) {
  const auto& w = input();
  for (auto _ : state) benchmark::DoNotOptimize(qconf::ref::npu_convert_weight_to_int4pack(w));
  state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_Int4PackReference64MiB)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
