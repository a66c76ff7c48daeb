// moe_gating_top_k at DeepSeek-V3 shapes: 256 experts, 8 groups, 4 kept, top-8, sigmoid + bias,
// routed_scaling_factor 2.5, bf16 logits. Optimized router vs a straightforward implementation
// (the Python reference transcribed: full sorts, per-token vectors) in the same run.
// Items = tokens, so the reported items_per_second is tokens/s.
#include "qconf/ops/routing.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "qconf/numeric/float_format.h"
#include "qconf/opt/convert.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

constexpr int64_t kExperts = 256, kGroups = 8, kKeep = 4, kTopK = 8;

struct Inputs {
  Tensor logits, bias;
  explicit Inputs(int64_t tokens) {
    const uint64_t seed = rng::seed_from_string("bench/routing");
    logits =
        gen::float_tensor(DType::kBF16, {tokens, kExperts}, gen::FloatDist::normal(0), seed, 0);
    bias = gen::float_tensor(DType::kF32, {kExperts}, gen::FloatDist::grid(-64, 64, -9), seed, 1);
  }
};

RoutingConfig deepseek_config() {
  RoutingConfig c;
  c.router = Router::kFusedAscend;
  c.scoring = Scoring::kSigmoid;
  c.top_k = kTopK;
  c.n_group = kGroups;
  c.k_group = kKeep;
  c.routed_scaling_factor = 2.5f;
  return c;
}

// Straightforward: sigmoid, + bias, per group sort for the top-2 sum, sort groups, mask, sort
// all experts, gather, renormalize, scale.
void straightforward(const Tensor& logits, const Tensor& bias, std::vector<int32_t>& ids,
                     std::vector<float>& weights) {
  const int64_t tokens = logits.dim(0), per = kExperts / kGroups;
  const uint16_t* x = logits.data<uint16_t>();
  const float* b = bias.data<float>();
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> s(kExperts), sel(kExperts);
    for (int64_t i = 0; i < kExperts; ++i) {
      const uint32_t xb = opt::bf16_to_f32(x[t * kExperts + i]);
      float xi;
      std::memcpy(&xi, &xb, 4);
      s[i] = 1.0f / (1.0f + std::exp(-xi));
      sel[i] = s[i] + b[i];
    }
    std::vector<std::pair<float, int64_t>> gs;
    for (int64_t g = 0; g < kGroups; ++g) {
      std::vector<float> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<float>());
      gs.push_back({v[0] + v[1], g});
    }
    std::stable_sort(gs.begin(), gs.end(), [](auto& a, auto& c) { return a.first > c.first; });
    std::vector<bool> keep(kGroups, false);
    for (int64_t j = 0; j < kKeep; ++j) keep[gs[j].second] = true;
    std::vector<std::pair<float, int64_t>> cand;
    for (int64_t i = 0; i < kExperts; ++i) cand.push_back({keep[i / per] ? sel[i] : -INFINITY, i});
    std::stable_sort(cand.begin(), cand.end(), [](auto& a, auto& c) { return a.first > c.first; });
    float sum = 0.0f;
    for (int64_t j = 0; j < kTopK; ++j) sum += s[cand[j].second];
    sum += 1e-20f;
    for (int64_t j = 0; j < kTopK; ++j) {
      ids[t * kTopK + j] = static_cast<int32_t>(cand[j].second);
      const float y = s[cand[j].second] / sum * 2.5f;
      uint32_t yb;
      std::memcpy(&yb, &y, 4);
      const uint32_t r = opt::bf16_to_f32(opt::f32_to_bf16_rne(yb));
      std::memcpy(&weights[t * kTopK + j], &r, 4);
    }
  }
}

void BM_RoutingOptimized(benchmark::State& st) {
  Inputs in(st.range(0));
  RoutingArgs a;
  a.logits = &in.logits;
  a.bias = &in.bias;
  const RoutingConfig c = deepseek_config();
  for (auto _ : st) {
    RoutingStages r = opt::moe_gating_top_k(a, c, static_cast<int>(st.range(1)));
    benchmark::DoNotOptimize(r.topk_ids.data<int32_t>());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

void BM_RoutingStraightforward(benchmark::State& st) {
  Inputs in(st.range(0));
  std::vector<int32_t> ids(st.range(0) * kTopK);
  std::vector<float> w(st.range(0) * kTopK);
  for (auto _ : st) {
    straightforward(in.logits, in.bias, ids, w);
    benchmark::DoNotOptimize(ids.data());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

// One thread: items/s from CPU time, comparable with the single-threaded straightforward run.
// Two threads: wall time (the CPU time of the main thread would overstate the rate).
BENCHMARK(BM_RoutingOptimized)->Args({4096, 1})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RoutingOptimized)->Args({4096, 2})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RoutingStraightforward)->Args({4096})->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qconf
