// The packings of qconf/ops/packing.h on 64 MiB inputs: issue target >= 50% of memcpy bandwidth
// for the optimized pack and unpack. Each iteration times a 64 MiB memcpy and then the op at the
// same thread count (bench/memcpy_baseline.h); the counter pct_memcpy is the op's share of that
// memcpy bandwidth. Bytes counted = bytes READ (64 MiB per iteration), as in int4pack_bench; the
// label gives the bytes written. Outputs are preallocated (raw entry points), except
// npu_quantize_quint4x2, which goes through the Tensor API (default threads). Outputs start on a
// 64-byte boundary (as torch's CPU allocator gives), or `skew` bytes past one: a std::vector or
// qconf Tensor of this size starts 16 bytes past a page, where the transposing packers cannot
// write whole cache lines with streaming stores (docs/perf.md, issue 3).
//   build/bench/qconf_bench --benchmark_filter='Pack|Unpack|W4A16Chain' --benchmark_repetitions=6
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memcpy_baseline.h"
#include "qconf/ops/packing.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kBytes = int64_t{64} << 20;

const Tensor& int4_values_i8() {  // 64 Mi int8 values in [-8, 7]
  static const Tensor t = qconf::gen::int_tensor(DType::kI8, {kBytes / 4096, 4096}, -8, 7,
                                                 qconf::rng::seed_from_string("pack_bench_i8"), 0);
  return t;
}

const Tensor& words_i32() {  // 16 Mi full-range int32 words
  static const Tensor t =
      qconf::gen::int_tensor(DType::kI32, {kBytes / 4 / 4096, 4096}, INT32_MIN, INT32_MAX,
                             qconf::rng::seed_from_string("pack_bench_i32"), 0);
  return t;
}

// An output buffer of n elements starting `skew` bytes past a 64-byte boundary.
template <class T>
class OutBuf {
 public:
  OutBuf(size_t n, int skew) : raw_(n * sizeof(T) + 128), n_(n) {
    const auto base = (reinterpret_cast<uintptr_t>(raw_.data()) + 63) / 64 * 64;
    p_ = reinterpret_cast<T*>(base + static_cast<uintptr_t>(skew));
  }
  T* data() { return p_; }
  size_t size() const { return n_; }

 private:
  std::vector<std::byte> raw_;
  size_t n_;
  T* p_;
};

// Times `op` against memcpy at `threads` threads; 64 MiB read per call.
template <class Op>
void run(benchmark::State& state, int threads, int64_t written, Op&& op) {
  qconf_bench::run_vs_memcpy(state, threads, kBytes, op);
  state.SetLabel("writes " + std::to_string(written >> 20) + " MiB");
}

void BM_VllmAscendPackInt8_64MiB(benchmark::State& state) {
  const Tensor& w = int4_values_i8();
  std::vector<int32_t> out(static_cast<size_t>(w.numel() / 8));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, w.numel() / 2, [&] {
    qconf::opt::vllm_ascend_pack_int4_to_int32(w.data<int8_t>(), out.data(), w.numel(), threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_VllmAscendPackInt8_64MiB)
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Args: threads, num_bits, packed_dim.
void BM_CtPack64MiB(benchmark::State& state) {
  const Tensor& v = int4_values_i8();
  const int bits = static_cast<int>(state.range(1)), dim = static_cast<int>(state.range(2));
  const int64_t pf = 32 / bits, rows = v.dim(0), cols = v.dim(1);
  std::vector<int32_t> out(static_cast<size_t>(dim == 1 ? rows * ((cols + pf - 1) / pf)
                                                        : ((rows + pf - 1) / pf) * cols));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, static_cast<int64_t>(out.size()) * 4, [&] {
    qconf::opt::ct_pack_to_int32(v.data<int8_t>(), rows, cols, bits, dim, out.data(), threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_CtPack64MiB)
    ->ArgNames({"threads", "bits", "dim"})
    ->Args({1, 4, 1})
    ->Args({2, 4, 1})
    ->Args({2, 8, 1})
    ->Args({2, 4, 0})
    ->Args({2, 8, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Args: threads, num_bits, packed_dim, output skew in bytes.
void BM_CtUnpack64MiB(benchmark::State& state) {
  const Tensor& p = words_i32();
  const int bits = static_cast<int>(state.range(1)), dim = static_cast<int>(state.range(2));
  const int64_t pf = 32 / bits, prow = p.dim(0), pcol = p.dim(1);
  const qconf::CtShape shape =
      dim == 1 ? qconf::CtShape{prow, pcol * pf} : qconf::CtShape{prow * pf, pcol};
  OutBuf<int8_t> out(static_cast<size_t>(shape.rows * shape.cols),
                     static_cast<int>(state.range(3)));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, static_cast<int64_t>(out.size()), [&] {
    qconf::opt::ct_unpack_from_int32(p.data<int32_t>(), prow, pcol, bits, shape, dim, out.data(),
                                     threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_CtUnpack64MiB)
    ->ArgNames({"threads", "bits", "dim", "skew"})
    ->Args({1, 4, 1, 0})
    ->Args({2, 4, 1, 0})
    ->Args({2, 8, 1, 0})
    ->Args({1, 4, 0, 0})
    ->Args({2, 4, 0, 0})
    ->Args({2, 8, 0, 0})
    ->Args({2, 4, 0, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_W4A8ModelslimPack64MiB(benchmark::State& state) {
  const Tensor& w = int4_values_i8();  // viewed as [16, 2048, 2048] bytes
  OutBuf<int32_t> out(static_cast<size_t>(w.numel() / 4), static_cast<int>(state.range(1)));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, w.numel(), [&] {
    qconf::opt::w4a8_modelslim_pack(w.data<int8_t>(), 16, 2048, 2048, out.data(), threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_W4A8ModelslimPack64MiB)
    ->ArgNames({"threads", "skew"})
    ->ArgsProduct({{1, 2}, {0, 16}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_W4A8LlmCompressorPack64MiB(benchmark::State& state) {
  const Tensor& w = int4_values_i8();  // viewed as [16, 2048, 2048] int4 values
  OutBuf<int32_t> out(static_cast<size_t>(w.numel() / 8), static_cast<int>(state.range(1)));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, w.numel() / 2, [&] {
    qconf::opt::w4a8_llmcompressor_pack(w.data<int8_t>(), 16, 2048, 2048, out.data(), threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_W4A8LlmCompressorPack64MiB)
    ->ArgNames({"threads", "skew"})
    ->ArgsProduct({{1, 2}, {0, 16}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_W4A16ChainPack64MiB(benchmark::State& state) {
  const Tensor& p = words_i32();  // viewed as [16, 2048, 512] words: K = 4096, N = 2048
  OutBuf<int32_t> out(static_cast<size_t>(p.numel()), static_cast<int>(state.range(1)));
  const int threads = static_cast<int>(state.range(0));
  run(state, threads, p.numel() * 4, [&] {
    qconf::opt::w4a16_ct_repack_chain(p.data<int32_t>(), 16, 2048, 512, out.data(), threads);
    benchmark::DoNotOptimize(out.data());
  });
}
BENCHMARK(BM_W4A16ChainPack64MiB)
    ->ArgNames({"threads", "skew"})
    ->ArgsProduct({{1, 2}, {0, 16}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_NpuQuantizeQuint4x2Pack64MiB(benchmark::State& state) {
  static const Tensor x = qconf::gen::float_tensor(
      DType::kF32, {kBytes / 4 / 4096, 4096}, qconf::gen::FloatDist::normal(2),
      qconf::rng::seed_from_string("pack_bench_f32"), 0);
  static const Tensor s =
      qconf::gen::float_tensor(DType::kF32, {4096}, qconf::gen::FloatDist::grid(16, 48, -5),
                               qconf::rng::seed_from_string("pack_bench_s"), 0);
  run(state, 0, x.numel() / 2,
      [&] { benchmark::DoNotOptimize(qconf::opt::npu_quantize_quint4x2(x, s, nullptr, {})); });
}
BENCHMARK(BM_NpuQuantizeQuint4x2Pack64MiB)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
