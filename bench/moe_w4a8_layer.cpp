// The W4A8_DYNAMIC MoE expert MLP (ModelSlim checkpoint format) at DeepSeek-V3-like shapes,
// optimized (qconf::opt::w4a8_moe_expert_mlp) against the reference (qconf::ref, exact
// arithmetic) in the same binary.
//
// Shapes: H = 7168, I = 2048 (moe_intermediate_size), 256 routed experts, top-8, expert
// parallelism 16 (16 local experts per rank, the smallest EP at which the int4 weights of every
// local expert fit this machine's memory next to their unpacked copies: w13 is 16 x 7168 x 4096
// int4 = 235 MB packed). Tokens 16 and 256: each token's 8 routes land on this rank with
// probability 16/256, so the rank sees M = tokens * 8 / 16 dispatched rows: 8 and 128, spread
// evenly over the 16 experts (group_list counts). The layer's router, dispatch and combine are
// not included (the MoE skeleton was not merged when this was written): this is the expert MLP
// of one rank on dispatched rows. Load (process_weights_after_loading) is done once, outside
// the timing, as in serving.
//
// The reference runs at 8 rows only (tokens 16): at 128 rows its exact int64 MSD grouped
// matmuls take minutes per iteration. Both results are compared bit for bit once before timing.
//
// Run: build/bench/qconf_bench --benchmark_filter=MoeW4a8Layer
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "../conformance/ops/moe_w4_ckpt.h"
#include "qconf/ops/moe_w4.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kH = 7168, kI = 2048, kELocal = 16;

struct Problem {
  Tensor x, group_list;
  qconf::W4a8MoeLoaded loaded;
};

const Problem& problem(int64_t rows) {
  static std::map<int64_t, std::unique_ptr<Problem>> cache;
  auto& slot = cache[rows];
  if (slot) return *slot;
  namespace gen = qconf::gen;
  namespace ck = qconf::conf::moe_w4_ckpt;
  const uint64_t seed = qconf::rng::seed_from_string("moe_w4a8_layer_bench");
  // Checkpoint tensors (ModelSlim): packed bytes drawn directly (every byte is two int4).
  const Tensor w13 = gen::int_tensor(DType::kI8, {kELocal, kI, kH}, -128, 127, seed, 1);
  const Tensor w2 = gen::int_tensor(DType::kI8, {kELocal, kH / 2, kI}, -128, 127, seed, 2);
  const auto scale = [&](qconf::Shape s, uint64_t stream) {
    return gen::float_tensor(DType::kF32, s, gen::FloatDist::grid(4096, 16383, -20), seed, stream);
  };
  const Tensor s13 = scale({kELocal, 2 * kI, 1}, 3), s2 = scale({kELocal, kH, 1}, 4);
  const Tensor sb13 = scale({kELocal, 2 * kI, 1}, 5), sb2 = scale({kELocal, kH, 16}, 6);
  qconf::W4a8MoeCheckpoint c;
  c.w13_weight = &w13;
  c.w13_weight_scale = &s13;
  c.w13_scale_bias = &sb13;
  c.w2_weight = &w2;
  c.w2_weight_scale = &s2;
  c.w2_scale_bias = &sb2;
  auto p = std::make_unique<Problem>();
  p->loaded = qconf::opt::w4a8_moe_load(c, qconf::W4a8MoeLoadConfig{});
  p->x = gen::float_tensor(DType::kBF16, {rows, kH}, gen::FloatDist::normal(0), seed, 7);
  std::vector<int64_t> counts(kELocal, rows / kELocal);
  for (int64_t e = 0; e < rows % kELocal; ++e) ++counts[e];
  p->group_list = Tensor::from<int64_t>({kELocal}, counts);
  (void)ck::weight_shape;
  slot = std::move(p);
  return *slot;
}

void check_equal_once(const Problem& p) {
  static bool done = false;
  if (done) return;
  done = true;
  const auto o = qconf::opt::w4a8_moe_expert_mlp(p.x, p.group_list, p.loaded, {});
  const auto r = qconf::ref::w4a8_moe_expert_mlp(p.x, p.group_list, p.loaded, {});
  if (!o.y.bit_equal(r.y) || !o.gmm1.q.y.bit_equal(r.gmm1.q.y))
    throw std::runtime_error("moe_w4a8_layer bench: optimized and reference differ");
}

void set_counters(benchmark::State& st, int64_t rows) {
  st.counters["rows"] = static_cast<double>(rows);
  st.counters["GOPS"] = benchmark::Counter(
      static_cast<double>(2 * rows * (kH * 2 * kI + kI * kH)) * st.iterations() / 1e9,
      benchmark::Counter::kIsRate);
}

void BM_MoeW4a8Layer_Optimized(benchmark::State& st) {
  const int64_t tokens = st.range(0), rows = tokens * 8 / kELocal;
  const Problem& p = problem(rows);
  for (auto _ : st) {
    auto s = qconf::opt::w4a8_moe_expert_mlp(p.x, p.group_list, p.loaded, {});
    benchmark::DoNotOptimize(s.y.bytes());
  }
  set_counters(st, rows);
}
BENCHMARK(BM_MoeW4a8Layer_Optimized)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MoeW4a8Layer_Reference(benchmark::State& st) {
  const int64_t tokens = st.range(0), rows = tokens * 8 / kELocal;
  const Problem& p = problem(rows);
  check_equal_once(p);
  for (auto _ : st) {
    auto s = qconf::ref::w4a8_moe_expert_mlp(p.x, p.group_list, p.loaded, {});
    benchmark::DoNotOptimize(s.y.bytes());
  }
  set_counters(st, rows);
}
BENCHMARK(BM_MoeW4a8Layer_Reference)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
