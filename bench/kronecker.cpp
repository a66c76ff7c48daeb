// npu_kronecker_quant in tokens per second (items_per_second): the optimized op against the exact
// reference and against an Eigen formulation of the same computation (per token: Eigen GEMMs
// X * P2 and P1 * X' in fp32, the same roundings to the dtype / fp16 and the same quantization
// step, on the same static token partition and thread count).
//   build-bench/bench/qconf_bench --benchmark_filter='Kronecker'
// Args: M, N (token = M x N, K = M N), threads (0 = default). The reference runs one token.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "qconf/ops/int4pack.h"
#include "qconf/ops/kronecker_quant.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/parallel.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using qconf::DType;
using qconf::Tensor;

constexpr int64_t kTokens = 1024;

struct Data {
  Tensor x, p1, p2, clip;
};
Data make(int64_t t, int64_t m, int64_t n) {
  const uint64_t s = qconf::rng::seed_from_string("bench/kronecker");
  Data d;
  d.x = qconf::gen::float_tensor(DType::kF16, {t, m, n}, qconf::gen::FloatDist::normal(0), s, 0);
  d.p1 = qconf::ref::householder_orthogonal(DType::kF16, m, 4, s, 1);
  d.p2 = qconf::ref::householder_orthogonal(DType::kF16, n, 4, s, 2);
  const float c = 1.0f;
  uint32_t b;
  std::memcpy(&b, &c, 4);
  d.clip = Tensor::from<uint32_t>(DType::kF32, {1}, {b});
  return d;
}

void BM_KroneckerQuant_Optimized(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1);
  const int threads = static_cast<int>(st.range(2));
  const Data d = make(kTokens, m, n);
  for (auto _ : st) {
    auto r = qconf::opt::npu_kronecker_quant(d.x, d.p1, d.p2, d.clip, qconf::KronFormula::kKernel,
                                             false, threads);
    benchmark::DoNotOptimize(r.out.data<int32_t>());
  }
  st.SetItemsProcessed(st.iterations() * kTokens);
}

void BM_KroneckerQuant_Reference(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1);
  const Data d = make(1, m, n);
  for (auto _ : st) {
    auto r = qconf::ref::npu_kronecker_quant(d.x, d.p1, d.p2, d.clip, qconf::KronFormula::kKernel);
    benchmark::DoNotOptimize(r.out.data<int32_t>());
  }
  st.SetItemsProcessed(st.iterations());
}

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void BM_KroneckerQuant_Eigen(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1);
  const int threads = static_cast<int>(st.range(2));
  const Data d = make(kTokens, m, n);
  const int64_t tok = m * n;
  RowMat p1(m, m), p2(n, n);
  qconf::opt::f16_to_f32(d.p1.data<uint16_t>(), reinterpret_cast<uint32_t*>(p1.data()),
                         static_cast<size_t>(m * m));
  qconf::opt::f16_to_f32(d.p2.data<uint16_t>(), reinterpret_cast<uint32_t*>(p2.data()),
                         static_cast<size_t>(n * n));
  Tensor out(DType::kI32, {kTokens, tok / 8});
  std::vector<uint32_t> scale(kTokens);
  Eigen::setNbThreads(1);
  for (auto _ : st) {
    qconf::opt::parallel_for(
        kTokens, std::max<int64_t>(1, (int64_t{1} << 17) / tok),
        [&](int64_t b, int64_t e) {
          RowMat x(m, n), x1(m, n), x2(m, n);
          std::vector<uint16_t> h(static_cast<size_t>(tok));
          std::vector<int32_t> codes(static_cast<size_t>(tok));
          for (int64_t t = b; t < e; ++t) {
            qconf::opt::f16_to_f32(d.x.data<uint16_t>() + t * tok,
                                   reinterpret_cast<uint32_t*>(x.data()), size_t(tok));
            x1.noalias() = x * p2;
            qconf::opt::f32_to_f16_rne(reinterpret_cast<const uint32_t*>(x1.data()), h.data(),
                                       size_t(tok));
            qconf::opt::f16_to_f32(h.data(), reinterpret_cast<uint32_t*>(x1.data()), size_t(tok));
            x2.noalias() = p1 * x1;
            qconf::opt::f32_to_f16_rne(reinterpret_cast<const uint32_t*>(x2.data()), h.data(),
                                       size_t(tok));
            qconf::opt::f16_to_f32(h.data(), reinterpret_cast<uint32_t*>(x2.data()), size_t(tok));
            const float amax = x2.cwiseAbs().maxCoeff();
            const float mult = amax == 0.0f ? 7.0f : (7.0f / 1.0f) / amax;
            const float sc = (amax * 1.0f) / 7.0f;
            std::memcpy(&scale[size_t(t)], &sc, 4);
            for (int64_t i = 0; i < tok; ++i) {
              float v = x2.data()[i] * mult;
              uint32_t vb;
              std::memcpy(&vb, &v, 4);
              const uint32_t hb = qconf::opt::f16_to_f32(qconf::opt::f32_to_f16_rne(vb));
              std::memcpy(&v, &hb, 4);
              codes[size_t(i)] = static_cast<int32_t>(std::clamp(std::nearbyint(v), -8.0f, 7.0f));
            }
            qconf::opt::pack_int4(codes.data(), out.data<int32_t>() + t * (tok / 8), tok);
          }
        },
        threads);
    benchmark::DoNotOptimize(out.data<int32_t>());
  }
  st.SetItemsProcessed(st.iterations() * kTokens);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (auto mn : {std::pair<int64_t, int64_t>{32, 32}, {24, 32}, {64, 64}})
    for (int64_t th : {1, 2}) b->Args({mn.first, mn.second, th});
  b->UseRealTime();
}
BENCHMARK(BM_KroneckerQuant_Optimized)->Apply(Shapes);
BENCHMARK(BM_KroneckerQuant_Eigen)->Apply(Shapes);
BENCHMARK(BM_KroneckerQuant_Reference)
    ->Args({32, 32, 1})
    ->Args({24, 32, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace
