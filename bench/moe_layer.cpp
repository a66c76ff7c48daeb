// A full W8A8_DYNAMIC MoE layer (qconf/ops/moe_layer.h skeleton + qconf/ops/moe_w8a8.h expert
// MLP) and a full W8A8_DYNAMIC linear layer, optimized against reference, at DeepSeek-V3-like
// shapes:
//  * MoE: H = 7168, I = 2048 (moe_intermediate_size), top-8, 8 groups keep 4, sigmoid +
//    e_score_correction_bias, routed_scaling_factor 2.5 (fused_ascend router), bf16. E is
//    REDUCED from 256 to 32 routed experts (the post-load weights of 256 experts are 11 GB int8;
//    this machine is shared): with 8 groups of 4, top-8 of the 16 kept experts. So each expert
//    sees ~8x more rows than in DeepSeek-V3 at the same token count.
//    - MoeW8a8/opt/T:        opt::moe_layer with opt::w8a8_dynamic_expert_mlp (the per-call
//                            component ops, which pack each used expert's weights per call;
//                            every stage exposed), T = 4, 16, 256 tokens.
//    - MoeW8a8/opt_packed/T: opt::moe_layer with opt::w8a8_expert_mlp on weights packed once at
//                            load time (outside the timing), the same numbers (checked once).
//    - MoeW8a8/ref/T:        ref::moe_layer with ref::w8a8_dynamic_expert_mlp, T = 4 only, one
//                            iteration (exact integer matmuls, exact SwiGLU exp, exact combine:
//                            about 8 CPU-seconds per 10^9 multiply-adds; T = 16 takes minutes).
//  * Linear: K = N = 7168 (apply only: npu_dynamic_quant -> npu_quant_matmul with the per-token
//    scale, bf16 out; the load-time transpose and scale rounding outside the timing), M = 16 and
//    256 (opt), M = 16 (ref, one iteration).
// Report the ratio ref / opt at the same T (or M). Run with QCONF_THREADS=1 to compare CPU
// times on a loaded machine (the optimized ops' worker threads are not in the CPU column).
#include "qconf/ops/moe_layer.h"

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/moe_w8a8.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/opt/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using namespace qconf;

constexpr int64_t kE = 32, kH = 7168, kI = 2048, kTopK = 8;

struct MoeProblem {
  TensorMap w;  // post-load weights (w8a8_dynamic_moe_load's names)
  Tensor bias;
  opt::PackedExpertsS8 p13, p2;
  Tensor w2_scale_f32;
};

const MoeProblem& moe_problem() {
  static std::unique_ptr<MoeProblem> p;
  if (p) return *p;
  p = std::make_unique<MoeProblem>();
  const uint64_t s = rng::seed_from_string("moe_layer_bench/weights");
  // Post-load layout directly ([E, H, 2I], [E, I, H]): the bench times apply, not load.
  p->w["w13_weight_t"] = gen::int_tensor(DType::kI8, {kE, kH, 2 * kI}, -128, 127, s, 0);
  p->w["w2_weight_t"] = gen::int_tensor(DType::kI8, {kE, kI, kH}, -128, 127, s, 1);
  // Scales ~2^-10 (bf16 params), so the SwiGLU inputs are a few units.
  p->w["w13_scale_param"] =
      gen::float_tensor(DType::kBF16, {kE, 2 * kI}, gen::FloatDist::grid(64, 127, -16), s, 2);
  Tensor s13(DType::kF32, {kE, 2 * kI});
  for (int64_t i = 0; i < s13.numel(); ++i)
    s13.data<float>()[i] = num::bf16_to_f32(p->w["w13_scale_param"].data<uint16_t>()[i]);
  p->w["w13_scale_fp32"] = s13;
  p->w["w2_scale_param"] =
      gen::float_tensor(DType::kBF16, {kE, kH}, gen::FloatDist::grid(64, 127, -16), s, 3);
  p->bias = gen::float_tensor(DType::kF32, {kE}, gen::FloatDist::grid(-64, 64, -9), s, 4);
  p->p13 = opt::PackedExpertsS8::pack(p->w.at("w13_weight_t"));
  p->p2 = opt::PackedExpertsS8::pack(p->w.at("w2_weight_t"));
  return *p;
}

struct Acts {
  Tensor x, logits;
};
const Acts& acts(int64_t t) {
  static std::map<int64_t, Acts> cache;
  auto it = cache.find(t);
  if (it != cache.end()) return it->second;
  const uint64_t s = rng::seed_from_string("moe_layer_bench/acts/" + std::to_string(t));
  Acts a;
  a.x = gen::float_tensor(DType::kBF16, {t, kH}, gen::FloatDist::normal(0), s, 0);
  a.logits = gen::float_tensor(DType::kF32, {t, kE}, gen::FloatDist::normal(0), s, 1);
  return cache[t] = std::move(a);
}

MoeLayerConfig moe_config() {
  MoeLayerConfig c;
  c.routing.router = Router::kFusedAscend;
  c.routing.scoring = Scoring::kSigmoid;
  c.routing.top_k = kTopK;
  c.routing.n_group = 8;
  c.routing.k_group = 4;
  c.routing.routed_scaling_factor = 2.5f;
  return c;
}

MoeLayerArgs moe_args(int64_t t) {
  const MoeProblem& p = moe_problem();
  const Acts& a = acts(t);
  MoeLayerArgs r;
  r.x = &a.x;
  r.router_logits = &a.logits;
  r.bias = &p.bias;
  r.weights = &p.w;
  return r;
}

Tensor packed_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap&) {
  const MoeProblem& p = moe_problem();
  Tensor cum(DType::kI64, {in.counts->numel()});
  int64_t run = 0;
  for (int64_t e = 0; e < in.counts->numel(); ++e)
    cum.data<int64_t>()[e] = run += in.counts->int_at(e);
  Tensor y(DType::kBF16, {in.x->dim(0), kH});
  opt::w8a8_expert_mlp(*in.x, *in.x_scale, p.p13, w.at("w13_scale_fp32"), p.p2,
                       w.at("w2_scale_param"), cum, y);
  return y;
}

Tensor opt_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& s) {
  return opt::w8a8_dynamic_expert_mlp(in, w, s, W8a8MoeMlpPath::kFused);
}
Tensor ref_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& s) {
  return ref::w8a8_dynamic_expert_mlp(in, w, s, W8a8MoeMlpPath::kFused);
}

void set_moe_counters(benchmark::State& st, int64_t t) {
  const double ops = 2.0 * t * kTopK * (kH * 2.0 * kI + kI * kH);
  st.counters["GOPS"] =
      benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MoeOpt(benchmark::State& st) {
  const int64_t t = st.range(0);
  const MoeLayerArgs a = moe_args(t);
  for (auto _ : st) benchmark::DoNotOptimize(opt::moe_layer(a, moe_config(), opt_mlp));
  set_moe_counters(st, t);
}

void BM_MoeOptPacked(benchmark::State& st) {
  const int64_t t = st.range(0);
  const MoeLayerArgs a = moe_args(t);
  // Once: the packed path gives the same output as the per-call ops.
  static std::map<int64_t, bool> checked;
  if (!checked[t]) {
    const Tensor y1 = opt::moe_layer(a, moe_config(), opt_mlp).combine.out;
    const Tensor y2 = opt::moe_layer(a, moe_config(), packed_mlp).combine.out;
    if (!y1.bit_equal(y2)) {
      st.SkipWithError("packed and per-call optimized layers differ");
      return;
    }
    checked[t] = true;
  }
  for (auto _ : st) benchmark::DoNotOptimize(opt::moe_layer(a, moe_config(), packed_mlp));
  set_moe_counters(st, t);
}

void BM_MoeRef(benchmark::State& st) {
  const int64_t t = st.range(0);
  const MoeLayerArgs a = moe_args(t);
  for (auto _ : st) benchmark::DoNotOptimize(ref::moe_layer(a, moe_config(), ref_mlp));
  set_moe_counters(st, t);
}

// ---- linear -------------------------------------------------------------------------------

struct LinProblem {
  Tensor wt, scale;  // int8 [K, N] (after load), bf16 [N]
};
const LinProblem& lin_problem() {
  static std::unique_ptr<LinProblem> p;
  if (p) return *p;
  p = std::make_unique<LinProblem>();
  const uint64_t s = rng::seed_from_string("moe_layer_bench/linear");
  p->wt = gen::int_tensor(DType::kI8, {kH, kH}, -128, 127, s, 0);
  p->scale = gen::float_tensor(DType::kBF16, {kH}, gen::FloatDist::grid(64, 127, -16), s, 1);
  return *p;
}

template <bool kOpt>
void BM_Linear(benchmark::State& st) {
  const int64_t m = st.range(0);
  const LinProblem& p = lin_problem();
  const Tensor x = gen::float_tensor(DType::kBF16, {m, kH}, gen::FloatDist::normal(0),
                                     rng::seed_from_string("moe_layer_bench/linear_x"), 0);
  QuantMatmulConfig mc;
  mc.output_dtype = DType::kBF16;
  for (auto _ : st) {
    if constexpr (kOpt) {
      const DynQuantStages q = opt::npu_dynamic_quant(x, nullptr, nullptr, {});
      benchmark::DoNotOptimize(
          opt::npu_quant_matmul(q.y, p.wt, p.scale, nullptr, &q.scale, nullptr, mc));
    } else {
      const DynQuantStages q = ref::npu_dynamic_quant(x, nullptr, nullptr, {});
      benchmark::DoNotOptimize(
          ref::npu_quant_matmul(q.y, p.wt, p.scale, nullptr, &q.scale, nullptr, mc));
    }
  }
  st.counters["GOPS"] =
      benchmark::Counter(2.0 * m * kH * kH * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_MoeOpt)->Name("MoeW8a8/opt")->Arg(4)->Arg(16)->Arg(256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MoeOptPacked)
    ->Name("MoeW8a8/opt_packed")
    ->Arg(4)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MoeRef)->Name("MoeW8a8/ref")->Arg(4)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Linear<true>)
    ->Name("LinearW8a8Dynamic/opt")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Linear<false>)
    ->Name("LinearW8a8Dynamic/ref")
    ->Arg(16)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
