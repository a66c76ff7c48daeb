// W8A8_DYNAMIC linear (vllm-ascend: npu_dynamic_quant + npu_quant_matmul with pertoken scale),
// K = N = 4096, M in {1, 16, 128, 1024}, at 1 and 2 threads, against
//  * oneDNN 2.6's int8 matmul (s8 x s8 -> s32 accumulation, per-N output scales, bf16 dst; the
//    primitive is created and the weights reordered to its preferred layout outside the timing
//    loop; the activations are given already quantized, so oneDNN does less work than the
//    linear, which also quantizes them and applies the per-token scale);
//  * an fp32 GEMM (Eigen, bench/quant_matmul_bench_eigen.cpp).
// Issue target: the linear >= 1.0x oneDNN at every M and thread count.
//
// Threads. qconf: GemmS8Options.threads for the GEMM and QCONF_THREADS for npu_dynamic_quant.
// Debian's libdnnl 2.6 is built with DNNL_CPU_RUNTIME = OMP (GNU libgomp, see dnnl_config.h), so
// its thread count is omp_set_num_threads(t), called before the primitive is created (oneDNN
// sizes its blocking by the thread count at creation) and before every execution. libgomp is
// loaded as a dependency of libdnnl; its symbol is looked up with dlsym so the benchmark does not
// need to link OpenMP itself.
//
// Counters: GOPS = 2*M*N*K / time; wGB/s = bytes of int8 weights read per second.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "memcpy_baseline.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/opt/gemm_s8.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

#ifdef QCONF_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

constexpr int64_t kK = 4096, kN = 4096;

uint64_t bench_seed() { return qconf::rng::seed_from_string("quant_matmul_bench"); }

struct Weights {
  qconf::Tensor w;      // int8 [K, N]
  qconf::Tensor scale;  // bf16 [N] (vllm-ascend keeps weight_scale in params dtype)
  qconf::opt::PackedWeightsS8 packed;
};

const Weights& weights() {
  static const Weights* w = [] {
    auto* r = new Weights;
    r->w = qconf::gen::int_tensor(qconf::DType::kI8, {kK, kN}, -127, 127, bench_seed(), 0);
    r->scale = qconf::gen::float_tensor(
        qconf::DType::kBF16, {kN}, qconf::gen::FloatDist::grid(128, 255, -20), bench_seed(), 1);
    r->packed = qconf::opt::PackedWeightsS8::pack(r->w);
    return r;
  }();
  return *w;
}

qconf::Tensor activations(int64_t m) {
  return qconf::gen::float_tensor(qconf::DType::kBF16, {m, kK}, qconf::gen::FloatDist::normal(0),
                                  bench_seed(), 100 + static_cast<uint64_t>(m));
}

void set_qconf_threads(int t) { setenv("QCONF_THREADS", std::to_string(t).c_str(), 1); }

void counters(benchmark::State& state, int64_t m) {
  const double ops = 2.0 * static_cast<double>(m) * kN * kK;
  state.counters["GOPS"] = benchmark::Counter(ops * 1e-9 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
  state.counters["wGB/s"] = benchmark::Counter(
      static_cast<double>(kN * kK) * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void qmm_args(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 16, 128, 1024})
    for (int64_t t : {1, 2}) b->Args({m, t});
  b->ArgNames({"M", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

// The full W8A8_DYNAMIC linear: dynamic quant of bf16 x + int8 GEMM + pertoken epilogue -> bf16.
void BM_W8A8DynamicLinear(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  const Weights& w = weights();
  const qconf::Tensor x = activations(m);
  set_qconf_threads(t);
  qconf::opt::GemmS8Options opt;
  opt.threads = t;
  // The output is allocated once, as oneDNN's dst is (a framework's caching allocator would
  // hand back the same block without zero-filling it).
  qconf::Tensor y(qconf::DType::kBF16, {m, kN});
  for (auto _ : state) {
    qconf::opt::w8a8_dynamic_linear(x, w.packed, w.scale, nullptr, y, opt);
    benchmark::DoNotOptimize(y.bytes());
  }
  unsetenv("QCONF_THREADS");
  counters(state, m);
  state.SetLabel(std::string(qconf::opt::gemm_s8_kernel()));
}
BENCHMARK(BM_W8A8DynamicLinear)->Apply(qmm_args);

// The GEMM and epilogue alone (x already quantized, as oneDNN gets it).
void BM_QuantMatmulPertokenPrequantized(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  const Weights& w = weights();
  const qconf::DynQuantStages q =
      qconf::opt::npu_dynamic_quant(activations(m), nullptr, nullptr, qconf::DynQuantConfig{});
  qconf::QuantMatmulConfig cfg;
  cfg.output_dtype = qconf::DType::kBF16;
  qconf::opt::GemmS8Options opt;
  opt.threads = t;
  for (auto _ : state) {
    qconf::Tensor y = qconf::opt::npu_quant_matmul_packed(q.y, w.packed, w.scale, nullptr, &q.scale,
                                                          nullptr, cfg, opt);
    benchmark::DoNotOptimize(y.bytes());
  }
  counters(state, m);
}
BENCHMARK(BM_QuantMatmulPertokenPrequantized)->Apply(qmm_args);

// Phases of the linear, for "where the time goes": the dynamic quant alone.
void BM_DynamicQuantOnly(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  const qconf::Tensor x = activations(m);
  set_qconf_threads(t);
  for (auto _ : state) {
    qconf::DynQuantStages q =
        qconf::opt::npu_dynamic_quant(x, nullptr, nullptr, qconf::DynQuantConfig{});
    benchmark::DoNotOptimize(q.y.bytes());
  }
  unsetenv("QCONF_THREADS");
}
BENCHMARK(BM_DynamicQuantOnly)->Apply(qmm_args);

#ifdef QCONF_HAVE_DNNL
// omp_set_num_threads from the libgomp that libdnnl loaded (see the header comment).
void set_omp_threads(int t) {
  using Fn = void (*)(int);
  static Fn fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (fn) fn(t);
}

struct DnnlMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  qconf::opt::AlignedBuffer wei_storage;  // declared before wei: freed after it
  dnnl::memory src, wei, dst;
  std::string dst_type;
};

// s8 [M, K] x s8 [K, N] -> bf16 (f32 if bf16 dst is not supported) with per-N output scales.
DnnlMatmul make_dnnl(int64_t m, const qconf::Tensor& codes) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  DnnlMatmul d;
  const Weights& w = weights();
  const dnnl::memory::desc src_md({m, kK}, dt::s8, tag::ab);
  const dnnl::memory::desc wei_any({kK, kN}, dt::s8, tag::any);
  const dnnl::memory::desc wei_user({kK, kN}, dt::s8, tag::ab);
  std::vector<float> scales(static_cast<size_t>(kN));
  for (int64_t j = 0; j < kN; ++j)
    scales[static_cast<size_t>(j)] = qconf::num::bf16_to_f32(w.scale.data<uint16_t>()[j]);
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, scales);
  dnnl::matmul::primitive_desc pd;
  for (dt dst_t : {dt::bf16, dt::f32}) {
    try {
      const dnnl::memory::desc dst_md({m, kN}, dst_t, tag::ab);
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, wei_any, dst_md), attr, d.eng);
      d.dst_type = dst_t == dt::bf16 ? "bf16" : "f32";
      break;
    } catch (const dnnl::error&) {
    }
  }
  d.prim = dnnl::matmul(pd);
  d.src = dnnl::memory(pd.src_desc(), d.eng);
  std::memcpy(d.src.get_data_handle(), codes.bytes(), codes.nbytes());
  dnnl::memory user_w(wei_user, d.eng, const_cast<std::byte*>(w.w.bytes()));
  // The reordered weights live in an AlignedBuffer, the storage of PackedWeightsS8 (huge pages
  // where the system allows them, qconf/core/large_buffer.h): both
  // GEMMs stream their weights through the same kind of pages.
  d.wei_storage = qconf::opt::AlignedBuffer(pd.weights_desc().get_size());
  d.wei = dnnl::memory(pd.weights_desc(), d.eng, d.wei_storage.data());
  dnnl::reorder(user_w, d.wei).execute(d.strm, user_w, d.wei);
  d.dst = dnnl::memory(pd.dst_desc(), d.eng);
  d.strm.wait();
  d.dst_type += std::string(" ") + pd.impl_info_str();
  return d;
}

void BM_OneDnnS8Matmul(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  set_omp_threads(t);
  const qconf::DynQuantStages q =
      qconf::opt::npu_dynamic_quant(activations(m), nullptr, nullptr, qconf::DynQuantConfig{});
  DnnlMatmul d = make_dnnl(m, q.y);
  const std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, d.src}, {DNNL_ARG_WEIGHTS, d.wei}, {DNNL_ARG_DST, d.dst}};
  for (auto _ : state) {
    d.prim.execute(d.strm, args);
    d.strm.wait();
  }
  counters(state, m);
  state.SetLabel(d.dst_type);
}
BENCHMARK(BM_OneDnnS8Matmul)->Apply(qmm_args);

// Paired rounds, the linear against oneDNN. The machine's speed drifts by 10-30% within minutes
// (a shared host), and the two separate benchmarks above can catch the two libraries in
// different phases even with interleaved repetitions. Each iteration is one round: a block of
// oneDNN calls, then a block of linear calls, each of ~40 ms (at least 3 calls). Each block
// starts after a 20 ms pause, so that the other library's idle workers have stopped spinning
// (libgomp spins for milliseconds after a parallel region, qconf's pool for ~35 us), and with
// one untimed call that wakes its own. Counters: ratio = the median over rounds of (oneDNN time
// per call) / (linear time per call), > 1 when the linear is faster; onednn_ms and linear_ms =
// the medians of each. Iteration time = the round's two timed blocks.
void BM_W8A8DynamicLinearVsOneDnn(benchmark::State& state) {
  const int64_t m = state.range(0);
  const int t = static_cast<int>(state.range(1));
  const Weights& w = weights();
  const qconf::Tensor x = activations(m);
  set_omp_threads(t);
  set_qconf_threads(t);
  const qconf::DynQuantStages q =
      qconf::opt::npu_dynamic_quant(x, nullptr, nullptr, qconf::DynQuantConfig{});
  DnnlMatmul d = make_dnnl(m, q.y);
  const std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, d.src}, {DNNL_ARG_WEIGHTS, d.wei}, {DNNL_ARG_DST, d.dst}};
  qconf::opt::GemmS8Options opt;
  opt.threads = t;
  qconf::Tensor y(qconf::DType::kBF16, {m, kN});
  auto onednn = [&] {
    d.prim.execute(d.strm, args);
    d.strm.wait();
  };
  auto linear = [&] {
    qconf::opt::w8a8_dynamic_linear(x, w.packed, w.scale, nullptr, y, opt);
    benchmark::DoNotOptimize(y.bytes());
  };
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  // Seconds per call over a block of `calls`, after the pause and the waking call.
  auto block = [&](auto&& call, int calls) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    call();
    const auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) call();
    return seconds(Clock::now() - t0) / calls;
  };
  const double first = block(linear, 1);
  const int calls = static_cast<int>(std::clamp(0.04 / first, 3.0, 2000.0));
  std::vector<double> ratio, t_onednn, t_linear;
  for (auto _ : state) {
    const double a = block(onednn, calls), b = block(linear, calls);
    state.SetIterationTime((a + b) * calls);
    t_onednn.push_back(a);
    t_linear.push_back(b);
    ratio.push_back(a / b);
  }
  unsetenv("QCONF_THREADS");
  state.counters["ratio"] = qconf_bench::median(ratio);
  state.counters["onednn_ms"] = qconf_bench::median(t_onednn) * 1e3;
  state.counters["linear_ms"] = qconf_bench::median(t_linear) * 1e3;
  state.SetLabel(d.dst_type);
}
BENCHMARK(BM_W8A8DynamicLinearVsOneDnn)
    ->ArgsProduct({{1, 16, 128, 1024}, {1, 2}})
    ->ArgNames({"M", "threads"})
    ->Iterations(12)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
#endif

}  // namespace
