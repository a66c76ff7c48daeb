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
// of one rank on dispatched rows (BM_MoeW4a8Layer_*). BM_MoeW4a8FullLayer_* time the whole
// layer of that rank through the MoE skeleton (qconf/ops/moe_layer.h): the DeepSeek-V3 router
// over all 256 experts (fused Ascend kernel, sigmoid + bias, 8 groups keep 4, top-8, routed
// scaling 2.5), init_routing_v2 with the rank's local range [0, 16) (quant off: the W4A8 expert
// MLP quantizes its rows itself, as scheme_w4a8_dynamic_moe_layer does), the expert MLP, and the
// EP combine (finalize_routing). Load (process_weights_after_loading) is done once, outside the
// timing, as in serving.
//
// The reference runs at 8 rows only (tokens 16): at 128 rows its exact int64 MSD grouped
// matmuls take minutes per iteration. Both results are compared bit for bit once before timing.
//
// BM_MoeW4a8Layer_OptimizedPacked / BM_MoeW4a8FullLayer_OptimizedPacked: the same with the
// expert MLP on weights packed once at load (opt::w4a8_moe_pack, outside the timing; the op API
// decodes and packs every used expert on each call), checked bit-equal to the per-call path
// before timing.
//
// Run: build/bench/qconf_bench --benchmark_filter='MoeW4a8(Full)?Layer' (and 'MoeW4a16Layer' for
// the W4A16 rows at the end of this file)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>

#include "../conformance/ops/moe_w4_ckpt.h"
#include "qconf/ops/moe_layer.h"
#include "qconf/ops/moe_w4.h"
#include "qconf/opt/moe_w4_packed.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kH = 7168, kI = 2048, kELocal = 16;

struct Problem {
  Tensor x, group_list;
  qconf::W4a8MoeLoaded loaded;
  std::unique_ptr<qconf::opt::W4a8MoePacked> packed;  // packed at load, on first use
};

const qconf::opt::W4a8MoePacked& packed(const Problem& p) {
  auto& slot = const_cast<Problem&>(p).packed;
  if (!slot)
    slot = std::make_unique<qconf::opt::W4a8MoePacked>(qconf::opt::w4a8_moe_pack(p.loaded));
  return *slot;
}

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

// The same expert MLP on weights packed once at load (qconf/opt/moe_w4_packed.h), checked bit
// equal to the per-call op once per row count.
void BM_MoeW4a8Layer_OptimizedPacked(benchmark::State& st) {
  const int64_t tokens = st.range(0), rows = tokens * 8 / kELocal;
  const Problem& p = problem(rows);
  const qconf::opt::W4a8MoePacked& pk = packed(p);
  static std::map<int64_t, bool> checked;
  if (!checked[rows]) {
    if (!qconf::opt::w4a8_moe_expert_mlp_packed(p.x, p.group_list, pk, {})
             .bit_equal(qconf::opt::w4a8_moe_expert_mlp(p.x, p.group_list, p.loaded, {}).y)) {
      st.SkipWithError("packed and per-call optimized expert MLPs differ");
      return;
    }
    checked[rows] = true;
  }
  for (auto _ : st) {
    Tensor y = qconf::opt::w4a8_moe_expert_mlp_packed(p.x, p.group_list, pk, {});
    benchmark::DoNotOptimize(y.bytes());
  }
  set_counters(st, rows);
}
BENCHMARK(BM_MoeW4a8Layer_OptimizedPacked)
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

// ---- the whole layer of one EP rank (router, dispatch, expert MLP, combine) ------------------

constexpr int64_t kE = 256, kTopK = 8;

struct LayerActs {
  Tensor x, logits, bias;
};

const LayerActs& layer_acts(int64_t tokens) {
  static std::map<int64_t, LayerActs> cache;
  if (auto it = cache.find(tokens); it != cache.end()) return it->second;
  namespace gen = qconf::gen;
  const uint64_t s = qconf::rng::seed_from_string("moe_w4a8_full_layer/" + std::to_string(tokens));
  LayerActs a;
  a.x = gen::float_tensor(DType::kBF16, {tokens, kH}, gen::FloatDist::normal(0), s, 0);
  a.logits = gen::float_tensor(DType::kF32, {tokens, kE}, gen::FloatDist::normal(0), s, 1);
  a.bias = gen::float_tensor(DType::kF32, {kE}, gen::FloatDist::normal(-3), s, 2);
  return cache[tokens] = std::move(a);
}

qconf::MoeLayerConfig layer_config() {
  qconf::MoeLayerConfig c;
  c.routing.router = qconf::Router::kFusedAscend;
  c.routing.scoring = qconf::Scoring::kSigmoid;
  c.routing.top_k = kTopK;
  c.routing.n_group = 8;
  c.routing.k_group = 4;
  c.routing.routed_scaling_factor = 2.5f;
  c.local_start = 0;
  c.local_count = kELocal;
  c.dispatch_quant_mode = -1;
  return c;
}

// kOpt: the optimized ops; kPacked: with the expert MLP on weights packed at load.
template <bool kOpt, bool kPacked = false>
qconf::MoeLayerStages run_layer(int64_t tokens) {
  const Problem& p = problem(8);  // its loaded weights (its x and group_list are not used)
  const LayerActs& a = layer_acts(tokens);
  static const qconf::TensorMap no_weights;
  qconf::MoeLayerArgs args;
  args.x = &a.x;
  args.router_logits = &a.logits;
  args.bias = &a.bias;
  args.weights = &no_weights;
  const auto mlp = [&p](const qconf::ExpertMlpInput& in, const qconf::TensorMap&,
                        qconf::TensorMap&) {
    if constexpr (kPacked)
      return qconf::opt::w4a8_moe_expert_mlp_packed(*in.x, *in.counts, packed(p), {});
    else if constexpr (kOpt)
      return qconf::opt::w4a8_moe_expert_mlp(*in.x, *in.counts, p.loaded, {}).y;
    else
      return qconf::ref::w4a8_moe_expert_mlp(*in.x, *in.counts, p.loaded, {}).y;
  };
  if constexpr (kOpt)
    return qconf::opt::moe_layer(args, layer_config(), mlp);
  else
    return qconf::ref::moe_layer(args, layer_config(), mlp);
}

void BM_MoeW4a8FullLayer_Optimized(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  problem(8);  // load the weights and draw the activations outside the timing
  layer_acts(tokens);
  int64_t rows = 0;
  for (auto _ : st) {
    auto s = run_layer<true>(tokens);
    rows = s.dispatch.expanded_x.dim(0);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
  st.counters["local_rows"] = static_cast<double>(rows);
}
BENCHMARK(BM_MoeW4a8FullLayer_Optimized)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MoeW4a8FullLayer_OptimizedPacked(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  packed(problem(8));  // load and pack the weights, draw the activations outside the timing
  layer_acts(tokens);
  static std::map<int64_t, bool> checked;
  if (!checked[tokens]) {
    if (!run_layer<true, true>(tokens).combine.out.bit_equal(run_layer<true>(tokens).combine.out)) {
      st.SkipWithError("packed and per-call optimized layers differ");
      return;
    }
    checked[tokens] = true;
  }
  int64_t rows = 0;
  for (auto _ : st) {
    auto s = run_layer<true, true>(tokens);
    rows = s.dispatch.expanded_x.dim(0);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
  st.counters["local_rows"] = static_cast<double>(rows);
}
BENCHMARK(BM_MoeW4a8FullLayer_OptimizedPacked)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MoeW4a8FullLayer_Reference(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  static bool checked = false;
  if (!checked) {
    checked = true;
    if (!run_layer<true>(tokens).combine.out.bit_equal(run_layer<false>(tokens).combine.out))
      throw std::runtime_error("moe_w4a8 full layer bench: optimized and reference differ");
  }
  for (auto _ : st) {
    auto s = run_layer<false>(tokens);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
}
BENCHMARK(BM_MoeW4a8FullLayer_Reference)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

// ---- W4A16 (compressed-tensors, group 32) expert MLP of the same rank: op API vs prepared ------
// The same 16 local experts and rows as BM_MoeW4a8Layer_*: BM_MoeW4a16Layer_Optimized calls
// opt::w4a16_moe_expert_mlp (npu_weight_quant_batchmatmul per expert: the weights are prepared
// on every call), BM_MoeW4a16Layer_OptimizedPacked opt::w4a16_moe_expert_mlp_packed on weights
// prepared once at load (opt::w4a16_moe_pack), checked bit-equal before timing.

struct W4a16Problem {
  Tensor x, group_list;
  qconf::W4a16MoeLoaded loaded;
  qconf::opt::W4a16MoePacked packed;
};

const W4a16Problem& w4a16_problem(int64_t rows) {
  static std::map<int64_t, std::unique_ptr<W4a16Problem>> cache;
  auto& slot = cache[rows];
  if (slot) return *slot;
  namespace gen = qconf::gen;
  namespace ck = qconf::conf::moe_w4_ckpt;
  const uint64_t seed = qconf::rng::seed_from_string("moe_w4a16_layer_bench");
  constexpr int64_t kG = 32;
  // Packed int32 words drawn directly (every word is 8 offset-binary int4).
  const auto words = [&](qconf::Shape s, uint64_t stream) {
    return gen::int_tensor(DType::kI32, s, INT32_MIN, INT32_MAX, seed, stream);
  };
  const Tensor w13 = words({kELocal, 2 * kI, kH / 8}, 1), w2 = words({kELocal, kH, kI / 8}, 2);
  const auto scale = [&](qconf::Shape s, uint64_t stream) {
    return gen::float_tensor(DType::kF32, s, gen::FloatDist::grid(64, 127, -13), seed, stream);
  };
  const Tensor s13 = scale({kELocal, 2 * kI, kH / kG}, 3), s2 = scale({kELocal, kH, kI / kG}, 4);
  const Tensor sh13 = ck::weight_shape(kELocal, 2 * kI, kH),
               sh2 = ck::weight_shape(kELocal, kH, kI);
  qconf::W4a16MoeCheckpoint c;
  c.w13_weight_packed = &w13;
  c.w13_weight_scale = &s13;
  c.w13_weight_shape = &sh13;
  c.w2_weight_packed = &w2;
  c.w2_weight_scale = &s2;
  c.w2_weight_shape = &sh2;
  auto p = std::make_unique<W4a16Problem>();
  p->loaded = qconf::opt::w4a16_moe_load(c, DType::kBF16, kG);
  p->packed = qconf::opt::w4a16_moe_pack(p->loaded, kG);
  p->x = gen::float_tensor(DType::kBF16, {rows, kH}, gen::FloatDist::normal(0), seed, 7);
  std::vector<int64_t> counts(kELocal, rows / kELocal);
  for (int64_t e = 0; e < rows % kELocal; ++e) ++counts[e];
  p->group_list = Tensor::from<int64_t>({kELocal}, counts);
  slot = std::move(p);
  return *slot;
}

template <bool kPacked>
void BM_MoeW4a16Layer(benchmark::State& st) {
  const int64_t tokens = st.range(0), rows = tokens * 8 / kELocal;
  const W4a16Problem& p = w4a16_problem(rows);
  if constexpr (kPacked) {
    static std::map<int64_t, bool> checked;  // once per shape, not per benchmark invocation
    if (!checked[rows]) {
      if (!qconf::opt::w4a16_moe_expert_mlp_packed(p.x, p.group_list, p.packed)
               .bit_equal(qconf::opt::w4a16_moe_expert_mlp(p.x, p.group_list, p.loaded, 32).y))
        return st.SkipWithError("prepared and per-call W4A16 expert MLPs differ");
      checked[rows] = true;
    }
  }
  for (auto _ : st) {
    if constexpr (kPacked) {
      Tensor y = qconf::opt::w4a16_moe_expert_mlp_packed(p.x, p.group_list, p.packed);
      benchmark::DoNotOptimize(y.bytes());
    } else {
      auto s = qconf::opt::w4a16_moe_expert_mlp(p.x, p.group_list, p.loaded, 32);
      benchmark::DoNotOptimize(s.y.bytes());
    }
  }
  set_counters(st, rows);
}
BENCHMARK(BM_MoeW4a16Layer<false>)
    ->Name("BM_MoeW4a16Layer_Optimized")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MoeW4a16Layer<true>)
    ->Name("BM_MoeW4a16Layer_OptimizedPacked")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
