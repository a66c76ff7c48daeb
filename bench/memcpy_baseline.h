// The memcpy baseline of the issue-3 performance target (>= 50% of memcpy bandwidth), measured in
// the same process, at the same thread count, interleaved with the op it is compared with.
//
// Why interleaved: this machine is shared (2 cores, other jobs' builds), so bandwidth drifts by
// 2x within a run. Each benchmark iteration times one memcpy of 64 MiB (split over the same
// threads as BM_Memcpy64MiB in int4pack_bench.cpp) and then one call of the op, back to back;
// both start from cold caches (each moves more than the L3 holds). Per iteration
//   ratio = (op_bytes / t_op) / (64 MiB / t_memcpy),
// and the counter pct_memcpy is 100 x the median of those ratios, so a load spike that hits one
// pair moves the median little. The benchmark's own time is the op's (manual time), so
// bytes_per_second stays the op's bandwidth; memcpy_GBps is the median memcpy bandwidth of the
// same iterations. op_bytes follows each file's convention (bytes read by a pack, ND bytes by
// an NZ transform), as memcpy counts the bytes it reads.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "qconf/opt/cpu.h"
#include "qconf/opt/parallel.h"

namespace qconf_bench {

inline constexpr int64_t kMemcpyBytes = int64_t{64} << 20;

// memcpy of 64 MiB on `threads` threads (0 = the library default), 16 fixed chunks as in
// BM_Memcpy64MiB. Returns seconds.
inline double time_memcpy_64mib(int threads) {
  static std::vector<char> src(static_cast<size_t>(kMemcpyBytes), 1),
      dst(static_cast<size_t>(kMemcpyBytes), 2);
  const auto t0 = std::chrono::steady_clock::now();
  qconf::opt::parallel_for(
      kMemcpyBytes, kMemcpyBytes / 16,
      [&](int64_t b, int64_t e) { std::memcpy(dst.data() + b, src.data() + b, e - b); }, threads);
  benchmark::DoNotOptimize(dst.data());
  benchmark::ClobberMemory();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// The benchmark loop of an op compared with memcpy (register the benchmark with UseManualTime).
// `op` runs the op once on `threads` threads; op_bytes are the bytes one call counts.
template <class Op>
void run_vs_memcpy(benchmark::State& state, int threads, int64_t op_bytes, Op&& op) {
  std::vector<double> ratios, memcpy_bw;
  for (auto _ : state) {
    const double tm = time_memcpy_64mib(threads);
    const auto t0 = std::chrono::steady_clock::now();
    op();
    benchmark::ClobberMemory();
    const double to = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(to);
    ratios.push_back((static_cast<double>(op_bytes) / to) / (kMemcpyBytes / tm));
    memcpy_bw.push_back(kMemcpyBytes / tm * 1e-9);
  }
  state.SetBytesProcessed(state.iterations() * op_bytes);
  state.counters["pct_memcpy"] = 100.0 * median(ratios);
  state.counters["memcpy_GBps"] = median(memcpy_bw);
  state.counters["threads"] = threads > 0 ? threads : qconf::opt::default_threads();
}

}  // namespace qconf_bench
