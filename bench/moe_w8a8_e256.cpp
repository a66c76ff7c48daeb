// The whole W8A8_DYNAMIC MoE layer at the real DeepSeek-V3 expert count, optimized against the
// reference (the companion of bench/moe_layer.cpp, which reduces E to 32):
//   H = 7168, I = 2048 (moe_intermediate_size), E = 256 routed experts, top-8, the DeepSeek-V3
//   router (fused Ascend kernel: sigmoid + e_score_correction_bias, 8 groups keep 4, routed
//   scaling 2.5), init_routing_v2 with quant_mode 1, the W8A8 expert MLP (fused path (a)),
//   token_unpermute; bf16 activations. The activations (x, logits, bias) are those of
//   bench/moe_w4a8_layer.cpp's whole-layer benchmark at the same token counts (its seeds), so
//   both schemes route the same tokens to the same experts.
//
//   MoeW8a8E256/ref/4                  ref::moe_layer + ref::w8a8_dynamic_expert_mlp, one
//                                      iteration (exact arithmetic: ~17 s for 32 routed rows).
//   MoeW8a8E256/opt/{4,16,256}         opt::moe_layer + opt::w8a8_dynamic_expert_mlp (the op
//                                      API: each used expert's weights are packed per call).
//   MoeW8a8E256/opt_packed/{4,16,256}  opt::moe_layer + opt::w8a8_expert_mlp on weights packed
//                                      once at load (outside the timing).
//   MoeW8a8Ep16/{ref/16, opt/16, opt/256, opt_packed/16, opt_packed/256}: one rank of EP 16
//                                      (256 experts routed, the 16 local experts [0, 16), the
//                                      EP combine finalize_routing), the shape of
//                                      MoeW4a8FullLayer_* in bench/moe_w4a8_layer.cpp.
// Checks: the per-call optimized output at each token count is kept; the packed path is
// compared with it bit for bit before it is timed, the reference with it right after its single
// timed iteration (running the reference twice would cost another ~17 s; it runs once, without
// repetitions: its time is exact arithmetic, not the point); a mismatch ends the
// benchmark with an error.
//
// Memory. The post-load int8 expert weights of 256 experts are 256 x 7168 x 6144 bytes =
// 11.3 GB, and a packed copy (VNNI panels, gemm_s8.h) is as large: both do not fit next to each
// other on a 24 GiB machine. Tensor storage is zero-filled on allocation (std::vector), so
// leaving the weights of unused experts unset does not save memory here (an untouched calloc'd
// or mmap'd buffer would cost nothing, but the op API takes a Tensor). So the full layer keeps
// ONE of two weight sets alive at a time: the checkpoint layout (for ref and opt) or the packed
// layout (for opt_packed); switching frees one before building the other. Only the weights of
// the experts that the benchmarked token counts route to are generated (and packed): the values
// of the others never reach the output (their rows are zero, their packed copies are never
// read). Before building a set, MemAvailable (/proc/meminfo) must exceed its size plus 1 GiB,
// else the benchmark ends with SkipWithError (no OOM kill on a smaller machine).
//
// Preparation: each expert's weights are one seeded stream (stream = 2 x expert id, + 1 for w2),
// generated in parallel over experts; generation and packing are outside the timing.
//
// Run (1 thread, CPU time): QCONF_THREADS=1 build/bench/qconf_bench
//   --benchmark_filter='MoeW8a8(E256|Ep16)/' --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qconf/numeric/float_format.h"
#include "qconf/ops/moe_layer.h"
#include "qconf/ops/moe_w8a8.h"
#include "qconf/ops/scales.h"
#include "qconf/opt/expert_mlp.h"
#include "qconf/opt/parallel.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace {

using namespace qconf;

constexpr int64_t kE = 256, kH = 7168, kI = 2048, kTopK = 8, kEpLocal = 16;
const std::vector<int64_t> kFullTokens = {4, 16, 256};
const std::vector<int64_t> kEpTokens = {16, 256};

// MemAvailable in bytes (0 if /proc/meminfo cannot be read: then nothing is built).
int64_t mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream s(line.substr(13));
      int64_t kb = 0;
      s >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

// Empty string when `bytes` fit (with 1 GiB to spare), else the reason.
std::string does_not_fit(int64_t bytes, const char* what) {
  const int64_t avail = mem_available(), need = bytes + (int64_t{1} << 30);
  if (avail >= need) return {};
  std::ostringstream s;
  s << what << " needs " << need / (1 << 20) << " MiB (weights + 1 GiB), MemAvailable is "
    << avail / (1 << 20) << " MiB: skipped";
  return s.str();
}

// ---- activations: bench/moe_w4a8_layer.cpp's whole-layer activations -----------------------

struct Acts {
  Tensor x, logits, bias;
};
const Acts& acts(int64_t tokens) {
  static std::map<int64_t, Acts> cache;
  if (auto it = cache.find(tokens); it != cache.end()) return it->second;
  const uint64_t s = rng::seed_from_string("moe_w4a8_full_layer/" + std::to_string(tokens));
  Acts a;
  a.x = gen::float_tensor(DType::kBF16, {tokens, kH}, gen::FloatDist::normal(0), s, 0);
  a.logits = gen::float_tensor(DType::kF32, {tokens, kE}, gen::FloatDist::normal(0), s, 1);
  a.bias = gen::float_tensor(DType::kF32, {kE}, gen::FloatDist::normal(-3), s, 2);
  return cache[tokens] = std::move(a);
}

MoeLayerConfig config(bool ep) {
  MoeLayerConfig c;
  c.routing.router = Router::kFusedAscend;
  c.routing.scoring = Scoring::kSigmoid;
  c.routing.top_k = kTopK;
  c.routing.n_group = 8;
  c.routing.k_group = 4;
  c.routing.routed_scaling_factor = 2.5f;
  if (ep) {
    c.local_start = 0;
    c.local_count = kEpLocal;
  }
  return c;
}

// ---- weights ----------------------------------------------------------------------------------

// Expert e's post-load weights: w13 [H, 2I] and w2 [I, H] int8, each the bytes of one seeded
// stream of uniform 64-bit words (gen::int_tensor over the full int64 range: one Philox half-block
// gives 8 weights, 8x faster than drawing int8 elements one by one).
uint64_t weight_seed() { return rng::seed_from_string("moe_w8a8_e256_bench/weights"); }
Tensor expert_bytes(int64_t bytes, uint64_t stream) {
  return gen::int_tensor(DType::kI64, {bytes / 8}, std::numeric_limits<int64_t>::min(),
                         std::numeric_limits<int64_t>::max(), weight_seed(), stream);
}
Tensor expert_w13(int64_t e) { return expert_bytes(kH * 2 * kI, 2 * e); }
Tensor expert_w2(int64_t e) { return expert_bytes(kI * kH, 2 * e + 1); }
const int8_t* as_i8(const Tensor& t) { return reinterpret_cast<const int8_t*>(t.bytes()); }

// The scales of experts [0, n) (small: always built): the names w8a8_dynamic_moe_load gives.
void add_scales(TensorMap& w, int64_t n) {
  const uint64_t s = rng::seed_from_string("moe_w8a8_e256_bench/scales");
  // bf16 params ~2^-10: the SwiGLU inputs are a few units.
  Tensor s13 =
      gen::float_tensor(DType::kBF16, {kE, 2 * kI}, gen::FloatDist::grid(64, 127, -16), s, 0);
  Tensor s2 = gen::float_tensor(DType::kBF16, {kE, kH}, gen::FloatDist::grid(64, 127, -16), s, 1);
  w["w13_scale_param"] = moe_load::slice_experts(s13, 0, n);
  w["w2_scale_param"] = moe_load::slice_experts(s2, 0, n);
  w["w13_scale_fp32"] = ref::widen_scale_to_fp32(w["w13_scale_param"]);
}

// The experts (of [0, n)) that the layer routes `tokens` tokens to.
std::set<int64_t> used_experts(int64_t tokens, bool ep) {
  const Acts& a = acts(tokens);
  static const TensorMap none;
  MoeLayerArgs args;
  args.x = &a.x;
  args.router_logits = &a.logits;
  args.bias = &a.bias;
  args.weights = &none;
  std::set<int64_t> used;
  const auto record = [&used](const ExpertMlpInput& in, const TensorMap&, TensorMap&) {
    for (int64_t e = 0; e < in.counts->numel(); ++e)
      if (in.counts->int_at(e)) used.insert(e);
    return Tensor(DType::kBF16, {in.x->dim(0), kH});
  };
  opt::moe_layer(args, config(ep), record);
  return used;
}

// One weight set of a layer (the full one: E = 256; the EP rank: the 16 local experts).
struct Layer {
  bool ep = false;
  int64_t n = 0;              // experts in the weight tensors
  std::vector<int64_t> used;  // the experts that get values
  TensorMap w;                // scales always; w13_weight_t / w2_weight_t when checkpoint_ready
  opt::PackedExpertsS8 p13, p2;
  bool checkpoint_ready = false, packed_ready = false;
  std::map<int64_t, Tensor> per_call_out;  // the per-call optimized output per token count

  explicit Layer(bool ep_) : ep(ep_), n(ep_ ? kEpLocal : kE) {
    std::set<int64_t> u;
    for (int64_t t : ep ? kEpTokens : kFullTokens)
      for (int64_t e : used_experts(t, ep)) u.insert(e);
    used.assign(u.begin(), u.end());
    add_scales(w, n);
  }
  int64_t expert_bytes() const { return kH * 2 * kI + kI * kH; }

  // Builds the checkpoint-layout weights (frees the packed ones in the full layer). Empty
  // string, or why it cannot.
  std::string checkpoint() {
    if (checkpoint_ready) return {};
    if (!ep) release_packed();
    if (auto why = does_not_fit(n * expert_bytes(), "the checkpoint-layout weights"); !why.empty())
      return why;
    Tensor w13(DType::kI8, {n, kH, 2 * kI}), w2(DType::kI8, {n, kI, kH});
    opt::parallel_for(static_cast<int64_t>(used.size()), 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t e = used[static_cast<size_t>(u)];
        const Tensor a = expert_w13(e), b = expert_w2(e);
        std::memcpy(w13.bytes() + e * a.nbytes(), a.bytes(), a.nbytes());
        std::memcpy(w2.bytes() + e * b.nbytes(), b.bytes(), b.nbytes());
      }
    });
    w["w13_weight_t"] = std::move(w13);
    w["w2_weight_t"] = std::move(w2);
    checkpoint_ready = true;
    return {};
  }
  void release_checkpoint() {
    w.erase("w13_weight_t");
    w.erase("w2_weight_t");
    checkpoint_ready = false;
  }
  // Packs the used experts (frees the checkpoint layout in the full layer); the others stay
  // empty PackedWeightsS8 (never read: their group has no rows).
  std::string packed() {
    if (packed_ready) return {};
    if (!ep) release_checkpoint();
    if (auto why =
            does_not_fit(static_cast<int64_t>(used.size()) * expert_bytes(), "the packed weights");
        !why.empty())
      return why;
    p13 = {};
    p2 = {};
    p13.w.resize(static_cast<size_t>(n));
    p2.w.resize(static_cast<size_t>(n));
    p13.k = kH;
    p13.n = 2 * kI;
    p2.k = kI;
    p2.n = kH;
    opt::parallel_for(static_cast<int64_t>(used.size()), 1, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t e = used[static_cast<size_t>(u)];
        const Tensor a = expert_w13(e), b = expert_w2(e);
        p13.w[static_cast<size_t>(e)] =
            opt::PackedWeightsS8::pack_s8(as_i8(a), kH, 2 * kI, 2 * kI, 1);
        p2.w[static_cast<size_t>(e)] = opt::PackedWeightsS8::pack_s8(as_i8(b), kI, kH, kH, 1);
      }
    });
    packed_ready = true;
    return {};
  }
  void release_packed() {
    p13 = {};
    p2 = {};
    packed_ready = false;
  }
};

Layer& layer(bool ep) {
  static std::unique_ptr<Layer> full, rank;
  auto& slot = ep ? rank : full;
  if (!slot) slot = std::make_unique<Layer>(ep);
  if (ep && full) {  // the EP rank runs after the full layer: free its 11 GB
    full->release_checkpoint();
    full->release_packed();
  }
  return *slot;
}

MoeLayerArgs args(const Layer& l, int64_t tokens) {
  const Acts& a = acts(tokens);
  MoeLayerArgs r;
  r.x = &a.x;
  r.router_logits = &a.logits;
  r.bias = &a.bias;
  r.weights = &l.w;
  return r;
}

Tensor opt_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& s) {
  return opt::w8a8_dynamic_expert_mlp(in, w, s, W8a8MoeMlpPath::kFused);
}
Tensor ref_mlp(const ExpertMlpInput& in, const TensorMap& w, TensorMap& s) {
  return ref::w8a8_dynamic_expert_mlp(in, w, s, W8a8MoeMlpPath::kFused);
}
ExpertMlpFn packed_mlp(const Layer& l) {
  return [&l](const ExpertMlpInput& in, const TensorMap& w, TensorMap&) {
    Tensor cum(DType::kI64, {in.counts->numel()});
    int64_t run = 0;
    for (int64_t e = 0; e < in.counts->numel(); ++e)
      cum.data<int64_t>()[e] = run += in.counts->int_at(e);
    Tensor y(DType::kBF16, {in.x->dim(0), kH});
    opt::w8a8_expert_mlp(*in.x, *in.x_scale, l.p13, w.at("w13_scale_fp32"), l.p2,
                         w.at("w2_scale_param"), cum, y);
    return y;
  };
}

void set_counters(benchmark::State& st, const MoeLayerStages& s, const Layer& l) {
  st.counters["rows"] = static_cast<double>(s.dispatch.expanded_x.dim(0));
  st.counters["experts_with_values"] = static_cast<double>(l.used.size());
}

// The per-call optimized output at `tokens` (computed when not kept yet).
std::string per_call_out(Layer& l, int64_t tokens, Tensor& out) {
  if (auto it = l.per_call_out.find(tokens); it != l.per_call_out.end()) {
    out = it->second;
    return {};
  }
  if (auto why = l.checkpoint(); !why.empty()) return why;
  out = l.per_call_out[tokens] = opt::moe_layer(args(l, tokens), config(l.ep), opt_mlp).combine.out;
  return {};
}

template <bool kEp>
void BM_Opt(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  Layer& l = layer(kEp);
  if (auto why = l.checkpoint(); !why.empty()) return st.SkipWithError(why.c_str());
  const MoeLayerArgs a = args(l, tokens);
  MoeLayerStages s;
  for (auto _ : st) {
    s = opt::moe_layer(a, config(kEp), opt_mlp);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
  l.per_call_out[tokens] = s.combine.out;
  set_counters(st, s, l);
}

template <bool kEp>
void BM_OptPacked(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  Layer& l = layer(kEp);
  Tensor want;
  if (auto why = per_call_out(l, tokens, want); !why.empty()) return st.SkipWithError(why.c_str());
  if (auto why = l.packed(); !why.empty()) return st.SkipWithError(why.c_str());
  const MoeLayerArgs a = args(l, tokens);
  const ExpertMlpFn mlp = packed_mlp(l);
  if (!opt::moe_layer(a, config(kEp), mlp).combine.out.bit_equal(want))
    return st.SkipWithError("packed and per-call optimized layers differ");
  MoeLayerStages s;
  for (auto _ : st) {
    s = opt::moe_layer(a, config(kEp), mlp);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
  set_counters(st, s, l);
}

template <bool kEp>
void BM_Ref(benchmark::State& st) {
  const int64_t tokens = st.range(0);
  Layer& l = layer(kEp);
  Tensor want;
  if (auto why = per_call_out(l, tokens, want); !why.empty()) return st.SkipWithError(why.c_str());
  const MoeLayerArgs a = args(l, tokens);
  MoeLayerStages s;
  for (auto _ : st) {
    s = ref::moe_layer(a, config(kEp), ref_mlp);
    benchmark::DoNotOptimize(s.combine.out.bytes());
  }
  if (!s.combine.out.bit_equal(want))
    return st.SkipWithError("reference and per-call optimized layers differ");
  set_counters(st, s, l);
}

// Registration order = run order: the checkpoint-layout benchmarks of the full layer first, then
// its packed ones (one switch of the weight sets), then the EP rank.
BENCHMARK(BM_Ref<false>)
    ->Name("MoeW8a8E256/ref")
    ->Arg(4)
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Opt<false>)
    ->Name("MoeW8a8E256/opt")
    ->Arg(4)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OptPacked<false>)
    ->Name("MoeW8a8E256/opt_packed")
    ->Arg(4)
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Ref<true>)
    ->Name("MoeW8a8Ep16/ref")
    ->Arg(16)
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Opt<true>)->Name("MoeW8a8Ep16/opt")->Arg(16)->Arg(256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OptPacked<true>)
    ->Name("MoeW8a8Ep16/opt_packed")
    ->Arg(16)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);

}  // namespace
