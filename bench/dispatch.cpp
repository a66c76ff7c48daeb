// MoE dispatch and combine at DeepSeek-V3-like shapes: 4096 tokens, hidden 7168 (bf16), 256
// experts, top-8 (32768 expanded rows).
//  * npu_moe_init_routing_v2 (gather-form row index, count expert_tokens, no quant): the
//    optimized counting sort and threaded row gathers vs a straightforward implementation
//    (std::stable_sort of the flat positions by expert id, then one row copy at a time);
//  * npu_moe_finalize_routing (drop_pad_mode 2, bf16 rows and top-k weights, no skip or bias,
//    as vllm-ascend calls it): the optimized Highway SIMD combine vs a straightforward scalar
//    loop with the same fixed fp32 order (one element at a time, widened per element).
// Optimized runs at 1 and 2 threads. Each optimized result is checked bit-equal to the
// straightforward one once before timing. Report: straightforward time / optimized time.
//
// Counters: GB/s = bytes read + written / time (rows dominate).
#include "qconf/ops/dispatch.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "qconf/opt/convert.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kTokens = 4096, kHidden = 7168, kExperts = 256, kTopK = 8;

struct Problem {
  Tensor x, ids;                              // init_routing inputs
  Tensor rows, scales, src_to_dst, topk_ids;  // finalize inputs
};

// K distinct experts per token (partial Fisher-Yates on the Philox stream).
Tensor topk_ids(uint64_t seed) {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(kTokens * kTopK));
  std::vector<int32_t> pool(static_cast<size_t>(kExperts));
  for (int64_t t = 0; t < kTokens; ++t) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int64_t j = 0; j < kTopK; ++j) {
      const uint32_t r =
          qconf::rng::u32_at(seed, static_cast<uint64_t>(t), static_cast<uint64_t>(j));
      const int64_t pick = j + static_cast<int64_t>(r % static_cast<uint32_t>(kExperts - j));
      std::swap(pool[j], pool[pick]);
      out.push_back(pool[j]);
    }
  }
  return Tensor::from<int32_t>({kTokens, kTopK}, out);
}

const Problem& problem() {
  static std::unique_ptr<Problem> p;
  if (p) return *p;
  namespace gen = qconf::gen;
  p = std::make_unique<Problem>();
  const uint64_t seed = qconf::rng::seed_from_string("dispatch_bench");
  p->x = gen::float_tensor(DType::kBF16, {kTokens, kHidden}, gen::FloatDist::grid(-255, 255, -6),
                           seed, 0);
  p->ids = topk_ids(qconf::rng::seed_from_string("dispatch_bench/ids"));
  p->rows = gen::float_tensor(DType::kBF16, {kTokens * kTopK, kHidden},
                              gen::FloatDist::grid(-255, 255, -6), seed, 1);
  p->scales =
      gen::float_tensor(DType::kBF16, {kTokens, kTopK}, gen::FloatDist::grid(1, 255, -8), seed, 2);
  // The gather-form expanded_row_idx of the routing: a permutation of [0, N*K).
  qconf::InitRoutingV2Config c;
  c.expert_num = kExperts;
  p->src_to_dst =
      qconf::opt::npu_moe_init_routing_v2(p->x, p->ids, nullptr, nullptr, c).expanded_row_idx;
  p->topk_ids = p->ids;
  return *p;
}

qconf::InitRoutingV2Config routing_config() {
  qconf::InitRoutingV2Config c;
  c.expert_num = kExperts;
  c.expert_tokens_flag = true;
  c.expert_tokens_type = qconf::GroupListType::kCount;
  return c;
}

// Straightforward init_routing_v2 (all experts active, gather form, counts).
struct Routed {
  std::vector<int32_t> perm, eri;
  std::vector<int64_t> counts;
  Tensor expanded_x;
};
Routed straightforward_routing(const Tensor& x, const Tensor& ids) {
  const int64_t nk = ids.numel(), k = ids.dim(1), h = x.dim(1);
  const int32_t* id = ids.data<int32_t>();
  Routed r;
  r.perm.resize(static_cast<size_t>(nk));
  std::iota(r.perm.begin(), r.perm.end(), 0);
  std::stable_sort(r.perm.begin(), r.perm.end(),
                   [&](int32_t a, int32_t b) { return id[a] < id[b]; });
  r.eri.assign(static_cast<size_t>(nk), -1);
  r.counts.assign(static_cast<size_t>(kExperts), 0);
  r.expanded_x = Tensor(x.dtype(), {nk, h});
  const size_t rb = static_cast<size_t>(h) * 2;
  for (int64_t i = 0; i < nk; ++i) {
    r.eri[r.perm[i]] = static_cast<int32_t>(i);
    ++r.counts[id[r.perm[i]]];
    std::memcpy(r.expanded_x.bytes() + i * static_cast<int64_t>(rb),
                x.bytes() + (r.perm[i] / k) * static_cast<int64_t>(rb), rb);
  }
  return r;
}

// Straightforward finalize (mode 2, scales, no skip/bias): out[i] = sum_k s * r, fp32, k order.
Tensor straightforward_finalize(const Problem& p) {
  Tensor out(DType::kBF16, {kTokens, kHidden});
  const uint16_t* rows = p.rows.data<uint16_t>();
  const uint16_t* sc = p.scales.data<uint16_t>();
  const int32_t* s2d = p.src_to_dst.data<int32_t>();
  auto f = [](uint16_t b) {
    const uint32_t u = qconf::opt::bf16_to_f32(b);
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  };
  for (int64_t i = 0; i < kTokens; ++i)
    for (int64_t c = 0; c < kHidden; ++c) {
      float acc = 0.0f;
      for (int64_t j = 0; j < kTopK; ++j) {
        const int32_t r = s2d[i * kTopK + j];
        if (r < 0) continue;
        acc = acc + f(sc[i * kTopK + j]) * f(rows[r * kHidden + c]);
      }
      uint32_t u;
      std::memcpy(&u, &acc, 4);
      out.data<uint16_t>()[i * kHidden + c] = qconf::opt::f32_to_bf16_rne(u);
    }
  return out;
}

qconf::FinalizeRoutingArgs finalize_args(const Problem& p) {
  qconf::FinalizeRoutingArgs a;
  a.rows = &p.rows;
  a.scales = &p.scales;
  a.src_to_dst = &p.src_to_dst;
  a.expert_idx = &p.topk_ids;
  a.drop_pad_mode = 2;
  return a;
}

void check_routing_once() {
  static bool done = false;
  if (done) return;
  const Problem& p = problem();
  const auto o =
      qconf::opt::npu_moe_init_routing_v2(p.x, p.ids, nullptr, nullptr, routing_config(), 2);
  const Routed r = straightforward_routing(p.x, p.ids);
  if (!o.expanded_x.bit_equal(r.expanded_x) ||
      !o.expanded_row_idx.bit_equal(Tensor::from<int32_t>({kTokens * kTopK}, r.eri)) ||
      !o.expert_tokens.bit_equal(Tensor::from<int64_t>({kExperts}, r.counts)))
    throw std::logic_error("dispatch bench: optimized init_routing_v2 != straightforward");
  done = true;
}

void check_finalize_once() {
  static bool done = false;
  if (done) return;
  const Problem& p = problem();
  if (!qconf::opt::npu_moe_finalize_routing(finalize_args(p), 2)
           .out.bit_equal(straightforward_finalize(p)))
    throw std::logic_error("dispatch bench: optimized finalize_routing != straightforward");
  done = true;
}

constexpr double kRoutingBytes = 2.0 * kTokens * kTopK * kHidden * 2;  // rows read + written
constexpr double kFinalizeBytes = (kTokens * kTopK + kTokens) * kHidden * 2.0;

void BM_InitRoutingV2Optimized(benchmark::State& st) {
  check_routing_once();
  const Problem& p = problem();
  const int threads = static_cast<int>(st.range(0));
  for (auto _ : st) {
    auto o = qconf::opt::npu_moe_init_routing_v2(p.x, p.ids, nullptr, nullptr, routing_config(),
                                                 threads);
    benchmark::DoNotOptimize(o.expanded_x.bytes());
  }
  st.counters["GB/s"] =
      benchmark::Counter(kRoutingBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_InitRoutingV2Straightforward(benchmark::State& st) {
  check_routing_once();
  const Problem& p = problem();
  for (auto _ : st) {
    Routed r = straightforward_routing(p.x, p.ids);
    benchmark::DoNotOptimize(r.expanded_x.bytes());
  }
  st.counters["GB/s"] =
      benchmark::Counter(kRoutingBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_FinalizeRoutingOptimized(benchmark::State& st) {
  check_finalize_once();
  const Problem& p = problem();
  const int threads = static_cast<int>(st.range(0));
  for (auto _ : st) {
    auto o = qconf::opt::npu_moe_finalize_routing(finalize_args(p), threads);
    benchmark::DoNotOptimize(o.out.bytes());
  }
  st.counters["GB/s"] =
      benchmark::Counter(kFinalizeBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_FinalizeRoutingStraightforward(benchmark::State& st) {
  check_finalize_once();
  const Problem& p = problem();
  for (auto _ : st) {
    Tensor o = straightforward_finalize(p);
    benchmark::DoNotOptimize(o.bytes());
  }
  st.counters["GB/s"] =
      benchmark::Counter(kFinalizeBytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_InitRoutingV2Optimized)
    ->ArgNames({"threads"})
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_InitRoutingV2Straightforward)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_FinalizeRoutingOptimized)
    ->ArgNames({"threads"})
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_FinalizeRoutingStraightforward)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
