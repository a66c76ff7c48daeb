// npu_weight_quant_batchmatmul GEMV (M = 1), W8A16 and W4A16, against the memory bandwidth
// measured in the same run (issue target: >= 80% of the streaming-read bandwidth for the weight
// stream at M = 1).
//
// Weights are prepared once (opt::wqbmm_prepare_weights: k-contiguous columns, as an engine
// does at load time) and the GEMV streams them: int8 (K x N bytes) or int4 (K x N / 2 bytes),
// plus the scale/offset as the kernel reads them (two fp32 per column and group). To measure DRAM
// and not the cache, every iteration uses the next of several weight copies whose total exceeds 4x
// the L3 cache. The reference bandwidth is a streaming read (sum of 64-bit words) over a 512 MiB
// buffer, at the same thread count, measured once per thread count in this process.
//
// Counters: bytes_per_second (weight bytes / time), bw_GBps (the streaming read), ratio
// (weight bytes per second / streaming bandwidth), ratio_cpu (the same on process CPU time /
// threads, for machines shared with other jobs).
//   build/qconf_bench --benchmark_filter='WeightQuant|StreamRead'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "memcpy_baseline.h"
#include "qconf/core/large_buffer.h"
#include "qconf/ops/weight_quant_bmm.h"
#include "qconf/opt/parallel.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kStreamBytes = int64_t{512} << 20;
constexpr int64_t kColdBytes = int64_t{160} << 20;  // > 4x a 32 MiB L3

// Sums 64-bit words of [b, e) (the compiler vectorizes it; the sum keeps the loads alive).
uint64_t sum_words(const uint64_t* p, int64_t b, int64_t e) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = b;
  for (; i + 4 <= e; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < e; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

// Allocated like the packed weights (qconf/core/large_buffer.h: huge pages where the system
// allows them), so that the reference stream and the weights see the same page size.
using StreamBuffer = std::vector<uint64_t, qconf::LargeBufferAllocator<uint64_t>>;
const StreamBuffer& stream_buffer() {
  static const StreamBuffer buf = [] {
    StreamBuffer b(static_cast<size_t>(kStreamBytes / 8));
    for (size_t i = 0; i < b.size(); ++i) b[i] = i * 0x9E3779B97F4A7C15ull;
    return b;
  }();
  return buf;
}

// CPU time of the whole process (all threads), seconds.
double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// One streaming read of the whole buffer with `threads` threads; returns seconds.
double stream_once(int threads) {
  const auto& buf = stream_buffer();
  const int64_t words = static_cast<int64_t>(buf.size());
  std::vector<uint64_t> sums(64, 0);
  const auto t0 = std::chrono::steady_clock::now();
  qconf::opt::parallel_for(
      words, words / 64,
      [&](int64_t b, int64_t e) {
        sums[static_cast<size_t>(b / (words / 64))] = sum_words(buf.data(), b, e);
      },
      threads);
  const auto t1 = std::chrono::steady_clock::now();
  benchmark::DoNotOptimize(sums.data());
  return std::chrono::duration<double>(t1 - t0).count();
}

// The streaming-read bandwidth (bytes/s) at `threads`, best of 5, measured once per process:
// by wall time, and by process CPU time / threads (what the threads achieve while they run: on
// a machine shared with other jobs, the wall-time figures include time the threads were not
// scheduled).
struct Bandwidth {
  double wall, cpu;
};
Bandwidth stream_bandwidth(int threads) {
  static std::mutex mu;
  static std::map<int, Bandwidth> cache;
  std::lock_guard<std::mutex> l(mu);
  auto it = cache.find(threads);
  if (it != cache.end()) return it->second;
  stream_once(threads);  // warm up (page faults)
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < 5; ++r) {
    const double c0 = process_cpu_seconds();
    best = std::min(best, stream_once(threads));
    best_cpu = std::min(best_cpu, (process_cpu_seconds() - c0) / threads);
  }
  return cache[threads] = {static_cast<double>(kStreamBytes) / best,
                           static_cast<double>(kStreamBytes) / best_cpu};
}

void BM_StreamRead512MiB(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(stream_once(threads));
  state.SetBytesProcessed(state.iterations() * kStreamBytes);
}
BENCHMARK(BM_StreamRead512MiB)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

struct Problem {
  std::vector<qconf::opt::WqbmmWeights> copies;  // identical weights, distinct memory
  Tensor x;
  int64_t weight_bytes = 0;  // packed weights + fp32 scale/offset pairs of one copy
};

// W8A16: int8 per-channel scale + offset (vllm-ascend W8A16). W4A16: int4, group 128, offset.
const Problem& problem(bool int4, int64_t k, int64_t n) {
  static std::mutex mu;
  static std::map<std::tuple<bool, int64_t, int64_t>, std::unique_ptr<Problem>> cache;
  std::lock_guard<std::mutex> l(mu);
  auto& slot = cache[{int4, k, n}];
  if (slot) return *slot;
  slot = std::make_unique<Problem>();
  Problem& p = *slot;
  const uint64_t seed = qconf::rng::seed_from_string("weight_quant_bench");
  const int64_t g = int4 ? 128 : 0;
  Tensor codes =
      qconf::gen::int_tensor(DType::kI8, {k, n}, int4 ? -8 : -128, int4 ? 7 : 127, seed, 0);
  Tensor w = codes;
  if (int4) {
    w = Tensor(DType::kI32, {k, n / 8});
    for (int64_t j = 0; j < w.numel(); ++j) {
      uint32_t word = 0;
      for (int t = 0; t < 8; ++t)
        word |= static_cast<uint32_t>(codes.data<int8_t>()[8 * j + t] & 0xF) << (4 * t);
      w.data<int32_t>()[j] = static_cast<int32_t>(word);
    }
  }
  const qconf::Shape ps = int4 ? qconf::Shape{k / g, n} : qconf::Shape{n};
  Tensor scale =
      qconf::gen::float_tensor(DType::kBF16, ps, qconf::gen::FloatDist::grid(1, 255, -14), seed, 1);
  Tensor offset =
      qconf::gen::float_tensor(DType::kBF16, ps, qconf::gen::FloatDist::grid(-16, 16, 0), seed, 2);
  p.x = qconf::gen::float_tensor(DType::kBF16, {1, k}, qconf::gen::FloatDist::normal(0), seed, 3);
  qconf::WqbmmArgs a;
  a.x = &p.x;
  a.weight = &w;
  a.antiquant_scale = &scale;
  a.antiquant_offset = &offset;
  qconf::WqbmmConfig cfg;
  cfg.group_size = g;
  qconf::opt::WqbmmWeights first = qconf::opt::wqbmm_prepare_weights(a, cfg);
  p.weight_bytes = static_cast<int64_t>(first.packed.size() + first.params_f32.size() * 4);
  const int64_t copies = std::max<int64_t>(2, (kColdBytes + p.weight_bytes - 1) / p.weight_bytes);
  for (int64_t c = 1; c < copies; ++c) p.copies.push_back(first);
  p.copies.push_back(std::move(first));
  return p;
}

// One GEMV per iteration; `cold`: the next of the weight copies each time (weights from DRAM),
// otherwise always the first copy (weights hot in L2/L3: the kernel's compute ceiling).
void run_gemv(benchmark::State& state, bool cold) {
  const bool int4 = state.range(0) != 0;
  const int64_t k = state.range(1), n = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const Problem& p = problem(int4, k, n);
  const Bandwidth bw = stream_bandwidth(threads);
  std::vector<float> acc(static_cast<size_t>(n));
  size_t next = 0;
  const double c0 = process_cpu_seconds();
  for (auto _ : state) {
    qconf::opt::wqbmm_gemm_acc(p.copies[next], p.x.data<uint16_t>(), 1, nullptr, acc.data(),
                               threads);
    benchmark::DoNotOptimize(acc.data());
    if (cold) next = (next + 1) % p.copies.size();
  }
  const double cpu = (process_cpu_seconds() - c0) / threads;
  state.SetBytesProcessed(state.iterations() * p.weight_bytes);
  state.counters["bw_GBps"] = bw.wall / 1e9;
  state.counters["ratio"] = benchmark::Counter(static_cast<double>(p.weight_bytes) / bw.wall,
                                               benchmark::Counter::kIsIterationInvariantRate);
  // The same ratio on process CPU time / threads (see stream_bandwidth).
  state.counters["ratio_cpu"] =
      static_cast<double>(state.iterations()) * static_cast<double>(p.weight_bytes) / cpu / bw.cpu;
  state.SetLabel(std::string(int4 ? "W4A16 g128" : "W8A16 per-channel") + " bf16, kernel " +
                 std::string(qconf::opt::wqbmm_kernel_name()));
}

void BM_WeightQuantGemv(benchmark::State& state) { run_gemv(state, true); }

// W8A16 with the int8 weights converted (vpmovsxbd, vcvtdq2ps, FMA, vcvtne2ps2bf16) instead of
// looked up with VBMI: the path of CPUs without VBMI, for an A/B in the same process.
void BM_WeightQuantGemvConvert(benchmark::State& state) {
  qconf::opt::wqbmm_disable_vbmi_lookup(true);
  run_gemv(state, true);
  qconf::opt::wqbmm_disable_vbmi_lookup(false);
}

// The weights of one copy every iteration (hot in L2/L3 at K = N = 4096 W4A16: 9 MiB; W8A16:
// 17 MiB, within the 32 MiB L3): what the kernel reaches when memory is not the limit.
void BM_WeightQuantGemvHot(benchmark::State& state) { run_gemv(state, false); }

// Paired rounds, the GEMV against the streaming read of the same round. The machine's speed
// drifts (a shared host: the streaming read of one thread measured 24.7-32 GB/s in one afternoon),
// so the best-of-5 stream figure of BM_WeightQuantGemv and the GEMV's own repetitions may catch
// different phases. Each iteration is one round: a streaming read of the 512 MiB buffer, then the
// GEMV over every weight copy (from DRAM, as in BM_WeightQuantGemv), both at `threads`. Counters:
// ratio = the median over rounds of (GEMV weight bytes / GEMV time) / (stream bytes / stream time);
// GBps and stream_GBps = the medians of each. Iteration time = the round's two timed parts.
void BM_WeightQuantGemvVsStream(benchmark::State& state) {
  const bool int4 = state.range(0) != 0;
  const int threads = static_cast<int>(state.range(1));
  const int64_t k = 4096, n = 4096;
  const Problem& p = problem(int4, k, n);
  std::vector<float> acc(static_cast<size_t>(n));
  stream_once(threads);  // first touch of the stream buffer (page faults) outside the rounds
  std::vector<double> ratio, gemv_rate, stream_rate;
  for (auto _ : state) {
    const double ts = stream_once(threads);
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& copy : p.copies)
      qconf::opt::wqbmm_gemm_acc(copy, p.x.data<uint16_t>(), 1, nullptr, acc.data(), threads);
    benchmark::DoNotOptimize(acc.data());
    const double tg = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(ts + tg);
    const double g =
        static_cast<double>(p.weight_bytes * static_cast<int64_t>(p.copies.size())) / tg;
    const double r = static_cast<double>(kStreamBytes) / ts;
    gemv_rate.push_back(g);
    stream_rate.push_back(r);
    ratio.push_back(g / r);
  }
  state.counters["ratio"] = qconf_bench::median(ratio);
  state.counters["GBps"] = qconf_bench::median(gemv_rate) / 1e9;
  state.counters["stream_GBps"] = qconf_bench::median(stream_rate) / 1e9;
  state.SetLabel(int4 ? "W4A16 g128" : "W8A16 per-channel");
}
BENCHMARK(BM_WeightQuantGemvVsStream)
    ->ArgNames({"int4", "threads"})
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->Iterations(15)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_WeightQuantGemv)
    ->ArgNames({"int4", "K", "N", "threads"})
    ->ArgsProduct({{0, 1}, {4096}, {4096, 14336}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_WeightQuantGemvConvert)
    ->ArgNames({"int4", "K", "N", "threads"})
    ->ArgsProduct({{0}, {4096}, {4096}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_WeightQuantGemvHot)
    ->ArgNames({"int4", "K", "N", "threads"})
    ->ArgsProduct({{0, 1}, {4096}, {4096}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
