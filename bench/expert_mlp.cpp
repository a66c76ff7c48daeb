// The W8A8 expert MLP (vllm-ascend fused path (a): grouped_matmul_swiglu_quant, then the down
// grouped matmul with the per-token scale, bf16 output), optimized (qconf::opt::w8a8_expert_mlp:
// the VNNI int8 GEMM per expert on pre-packed weights) against a straightforward implementation
// in the same run (scalar int32 dot products, the same fp32 epilogue and SIMD SwiGLU), at two
// shapes:
//  * 8 experts:   M = 128 routed rows, H = 2048, I = 1024 (w13 [8, 2048, 2048], w2 [8, 1024, 2048])
//  * 256 experts: M = 512 routed rows (2 per expert on average), H = 1024, I = 256
// at 1 and 2 threads. Both produce the same bits (checked once before timing). Report the ratio
// straightforward / optimized of the times.
//
// Counters: GOPS = 2 * M * (H * 2I + I * H) / time.
#include "qconf/ops/expert_mlp.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>

#include "qconf/numeric/float_format.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/expert_mlp.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

struct Problem {
  int64_t e, m, h, i;
  Tensor x, x_scale, w13, w13_scale, w2, w2_scale, group_list;
  qconf::opt::PackedExpertsS8 p13, p2;
};

const Problem& problem(int64_t e, int64_t m, int64_t h, int64_t i) {
  static std::map<int64_t, std::unique_ptr<Problem>> cache;
  auto& slot = cache[e];
  if (slot) return *slot;
  namespace gen = qconf::gen;
  auto p = std::make_unique<Problem>();
  p->e = e;
  p->m = m;
  p->h = h;
  p->i = i;
  const uint64_t seed = qconf::rng::seed_from_string("expert_mlp_bench/" + std::to_string(e));
  p->x = gen::int_tensor(DType::kI8, {m, h}, -128, 127, seed, 0);
  p->x_scale = gen::float_tensor(DType::kF32, {m},
                                 gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -31), seed, 1);
  p->w13 = gen::int_tensor(DType::kI8, {e, h, 2 * i}, -128, 127, seed, 2);
  p->w13_scale = gen::float_tensor(DType::kF32, {e, 2 * i},
                                   gen::FloatDist::grid(1 << 23, (1 << 24) - 1, -34), seed, 3);
  p->w2 = gen::int_tensor(DType::kI8, {e, i, h}, -128, 127, seed, 4);
  p->w2_scale =
      gen::float_tensor(DType::kBF16, {e, h}, gen::FloatDist::grid(64, 255, -14), seed, 5);
  // Group sizes: uniform in [0, 2M/E], trimmed to M in total; the last expert takes the rest.
  Tensor c = gen::int_tensor(DType::kI64, {e}, 0, 2 * m / e, seed, 6);
  std::vector<int64_t> cum;
  int64_t total = 0;
  for (int64_t k = 0; k < e; ++k) {
    total = std::min(m, total + c.data<int64_t>()[k]);
    cum.push_back(k + 1 == e ? m : total);
  }
  p->group_list = Tensor::from<int64_t>({e}, cum);
  p->p13 = qconf::opt::PackedExpertsS8::pack(p->w13);
  p->p2 = qconf::opt::PackedExpertsS8::pack(p->w2);
  slot = std::move(p);
  return *slot;
}

uint32_t f32_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The straightforward implementation: the same steps, scalar loops, no packing.
void straightforward(const Problem& p, Tensor& y) {
  const int64_t n2 = 2 * p.i;
  const int64_t* cum = p.group_list.data<int64_t>();
  std::vector<float> c(static_cast<size_t>(n2)), s(static_cast<size_t>(p.i));
  std::vector<int8_t> hq(static_cast<size_t>(p.i));
  int64_t r0 = 0;
  for (int64_t e = 0; e < p.e; ++e) {
    const int8_t* w13 = p.w13.data<int8_t>() + e * p.h * n2;
    const int8_t* w2 = p.w2.data<int8_t>() + e * p.i * p.h;
    for (int64_t r = r0; r < cum[e]; ++r) {
      const int8_t* xr = p.x.data<int8_t>() + r * p.h;
      for (int64_t j = 0; j < n2; ++j) {
        int32_t acc = 0;
        for (int64_t k = 0; k < p.h; ++k) acc += int32_t{xr[k]} * w13[k * n2 + j];
        c[static_cast<size_t>(j)] = (static_cast<float>(acc) * p.x_scale.data<float>()[r]) *
                                    p.w13_scale.data<float>()[e * n2 + j];
      }
      // SwiGLU with the same exp as the optimized kernel (Highway's, 1 ulp; a scalar std::exp
      // differs in the last bit now and then, inside the bound but not bit-equal).
      qconf::opt::swiglu_halves_f32(c.data(), c.data() + p.i, s.data(), p.i);
      // Per-row int8: scale = amax / 127, y = S * (1 / scale) -> fp16 RNE -> int8 RINT.
      float amax = 0;
      for (float v : s) amax = std::max(amax, std::fabs(v));
      const float scale = amax / 127.0f, inv = 1.0f / scale;
      for (int64_t j = 0; j < p.i; ++j) {
        const uint32_t hb = qconf::opt::f16_to_f32(
            qconf::opt::f32_to_f16_rne(f32_bits(s[static_cast<size_t>(j)] * inv)));
        float hv;
        std::memcpy(&hv, &hb, 4);
        hq[static_cast<size_t>(j)] =
            std::isnan(hv) ? 0
                           : static_cast<int8_t>(std::clamp(std::nearbyint(hv), -128.0f, 127.0f));
      }
      for (int64_t j = 0; j < p.h; ++j) {
        int32_t acc = 0;
        for (int64_t k = 0; k < p.i; ++k)
          acc += int32_t{hq[static_cast<size_t>(k)]} * w2[k * p.h + j];
        float ws;
        const uint32_t wb = qconf::opt::bf16_to_f32(p.w2_scale.data<uint16_t>()[e * p.h + j]);
        std::memcpy(&ws, &wb, 4);
        y.data<uint16_t>()[r * p.h + j] =
            qconf::opt::f32_to_bf16_rne(f32_bits((static_cast<float>(acc) * ws) * scale));
      }
    }
    r0 = cum[e];
  }
}

struct Shape4 {
  int64_t e, m, h, i;
};
Shape4 shape_of(int64_t experts) {
  return experts == 8 ? Shape4{8, 128, 2048, 1024} : Shape4{256, 512, 1024, 256};
}

void set_counters(benchmark::State& st, const Problem& p) {
  const double ops = 2.0 * static_cast<double>(p.m) * (p.h * 2.0 * p.i + p.i * p.h);
  st.counters["GOPS"] =
      benchmark::Counter(ops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ExpertMlpOptimized(benchmark::State& st) {
  const Shape4 s = shape_of(st.range(0));
  const Problem& p = problem(s.e, s.m, s.h, s.i);
  const int threads = static_cast<int>(st.range(1));
  Tensor y(DType::kBF16, {p.m, p.h});
  {
    Tensor y_ref(DType::kBF16, {p.m, p.h});
    qconf::opt::w8a8_expert_mlp(p.x, p.x_scale, p.p13, p.w13_scale, p.p2, p.w2_scale, p.group_list,
                                y, threads);
    straightforward(p, y_ref);
    if (!y.bit_equal(y_ref)) st.SkipWithError("optimized and straightforward differ");
  }
  for (auto _ : st) {
    qconf::opt::w8a8_expert_mlp(p.x, p.x_scale, p.p13, p.w13_scale, p.p2, p.w2_scale, p.group_list,
                                y, threads);
    benchmark::DoNotOptimize(y.bytes());
  }
  set_counters(st, p);
}

void BM_ExpertMlpStraightforward(benchmark::State& st) {
  const Shape4 s = shape_of(st.range(0));
  const Problem& p = problem(s.e, s.m, s.h, s.i);
  Tensor y(DType::kBF16, {p.m, p.h});
  for (auto _ : st) {
    straightforward(p, y);
    benchmark::DoNotOptimize(y.bytes());
  }
  set_counters(st, p);
}

BENCHMARK(BM_ExpertMlpOptimized)
    ->ArgNames({"experts", "threads"})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Args({256, 1})
    ->Args({256, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ExpertMlpStraightforward)
    ->ArgNames({"experts"})
    ->Args({8})
    ->Args({256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);

}  // namespace
