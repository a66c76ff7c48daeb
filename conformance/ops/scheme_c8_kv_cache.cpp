// scheme_c8_kv_cache: the C8 KV cache of one attention layer end to end, from its checkpoint
// tensors ({attn}.k_proj.kv_cache_scale / _offset, {attn}.v_proj.kv_cache_scale / _offset):
//   load (squeeze, .to(model dtype)), _prepare_c8_scales (TP shard by kv head, 1.0 / scale),
//   _quantize_kv_to_int8 (x * inv + offset in the model dtype, torch.round half to even, clamp
//   to [-128, 127], int8), the paged cache write (tokens in slots 0..T-1, blocks of block_size,
//   empty slots 0) and its NZ layout (kv_cache_nd_to_nz), then the attention side: the cache
//   read back (kv_cache_nz_to_nd) and dequantized (variant `antiquant`, qconf/ops/kv_c8.h).
//
// Params: params_dtype, tp_rank / tp_size (default 0 / 1), block_size (default 128; vllm-ascend
// asserts a multiple of 32), antiquant (sub_offset | scale_only | add_offset). Every stage is
// exact: the arithmetic is elementwise with fixed roundings. Math: reference/ops/kv_c8.cpp,
// optimized/ops/kv_c8.cpp; layout: reference/ops/nz.cpp.
#include <algorithm>
#include <cmath>

#include "qconf/conformance/op.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/kv_c8.h"
#include "qconf/ops/nz.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_c8_kv_cache {

constexpr const char* kOp = "scheme_c8_kv_cache";
using namespace scheme_pipeline;  // NOLINT

// The paged cache after reshape_and_cache with slots 0..T-1: ND [blocks, block_size, kvh, D].
Tensor paged_nd(const Tensor& q, int64_t block_size) {
  const int64_t t = q.dim(0), kvh = q.dim(1), d = q.dim(2);
  const int64_t blocks = std::max<int64_t>(1, (t + block_size - 1) / block_size);
  Tensor nd(DType::kI8, {blocks, block_size, kvh, d});
  std::memset(nd.bytes(), 0, nd.nbytes());
  std::memcpy(nd.bytes(), q.bytes(), q.nbytes());  // slot s = token s: rows are contiguous
  return nd;
}
// The first T slots of an ND cache, as [T, kvh, D].
Tensor gather_tokens(const Tensor& nd, int64_t t) {
  Tensor q(DType::kI8, {t, nd.dim(2), nd.dim(3)});
  std::memcpy(q.bytes(), nd.bytes(), q.nbytes());
  return q;
}

struct Side {
  const char* tag;       // "k" | "v"
  const char* x;         // "key" | "value"
  const char* scale_in;  // checkpoint input names
  const char* offset_in;
};
constexpr Side kSides[2] = {{"k", "key", "k_proj.kv_cache_scale", "k_proj.kv_cache_offset"},
                            {"v", "value", "v_proj.kv_cache_scale", "v_proj.kv_cache_offset"}};

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  const DType pdt = pdt_of(p);
  const int64_t tp_rank = param_int(p, "tp_rank", 0), tp_size = param_int(p, "tp_size", 1);
  const int64_t block_size = param_int(p, "block_size", 128);
  if (block_size < 1 || block_size % 32 != 0)
    throw std::invalid_argument(std::string(kOp) +
                                ": block_size must be a positive multiple of 32 (vllm-ascend "
                                "asserts it for the C8 cache), got " +
                                std::to_string(block_size));
  const C8Antiquant mode = parse_c8_antiquant(param_str(p, "antiquant", "sub_offset"));
  for (const Side& sd : kSides) {
    const Tensor& x = in.at(sd.x);
    if (x.dtype() != pdt || x.rank() != 3 || x.dim(2) % kKvNzLastDim != 0)
      throw std::invalid_argument(
          std::string(kOp) + ": " + sd.x + " must be " + std::string(dtype_name(pdt)) +
          " [tokens, kv_heads, head_size] with head_size % 32 == 0, got " + x.describe());
    const int64_t kvh = x.dim(1), d = x.dim(2);
    const Tensor scale =
        ref::c8_shard(ref::c8_load_param(in.at(sd.scale_in), pdt), kvh, d, tp_rank, tp_size);
    const Tensor offset =
        ref::c8_shard(ref::c8_load_param(in.at(sd.offset_in), pdt), kvh, d, tp_rank, tp_size);
    const Tensor inv = ref::c8_inv_scale(scale);
    C8QuantStages q;
    if constexpr (kOpt)
      q = opt::c8_quantize(x, inv, offset, true);
    else
      q = ref::c8_quantize(x, inv, offset);
    const Tensor nd = paged_nd(q.q, block_size);
    Tensor nz, back;
    if constexpr (kOpt) {
      nz = opt::kv_cache_nd_to_nz(nd);
      back = opt::kv_cache_nz_to_nd(nz);
    } else {
      nz = ref::kv_cache_nd_to_nz(nd);
      back = ref::kv_cache_nz_to_nd(nz);
    }
    const Tensor read = gather_tokens(back, x.dim(0));
    Tensor deq;
    if constexpr (kOpt)
      deq = opt::c8_dequantize(read, scale, offset, pdt, mode);
    else
      deq = ref::c8_dequantize(read, scale, offset, pdt, mode);
    const std::string t = sd.tag;
    out[t + "_scale_param"] = scale;
    out[t + "_offset_param"] = offset;
    out[t + "_inv_scale"] = inv;
    out[t + "_scaled"] = std::move(q.scaled);
    out[t + "_shifted"] = std::move(q.shifted);
    out[t + "_q"] = std::move(q.q);
    out[t + "_cache_nz"] = std::move(nz);
    out[t + "_dequant"] = std::move(deq);
  }
}

// ---- cases ------------------------------------------------------------------------------------
Tensor from_floats(DType dt, const Shape& s, const std::vector<float>& v) {
  Tensor t(dt, s);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float f = v[static_cast<size_t>(i) % v.size()];
    t.data<uint16_t>()[i] = dt == DType::kBF16 ? num::f32_to_bf16(f) : num::f32_to_f16(f);
  }
  return t;
}
Tensor f32_const(int64_t n, float v) {
  return Tensor::from<uint32_t>(DType::kF32, {n}, std::vector<uint32_t>(n, num::f32_bits(v)));
}

// x * 1 + 0 exactly on k + 1/2 (and offsets / inverse scales that make ties), past both ends of
// the int8 range, and the values next to them.
const std::vector<float> kTieValues = {
    0.5f,    1.5f,   2.5f,    3.5f,    -0.5f,   -1.5f, -2.5f,  -3.5f, 126.5f,  127.5f,  -127.5f,
    -128.5f, 200.0f, -300.0f, 127.0f,  -128.0f, 0.25f, -0.75f, 4.5f,  5.5f,    -4.5f,   -5.5f,
    64.5f,   -64.5f, 100.5f,  -100.5f, 0.0f,    -0.0f, 1.0f,   -1.0f, 126.49f, 60000.0f};

// A searched vector: elements whose code depends on rounding x * inv to the model dtype before
// the offset and the round (torch's pdt tensors) -- a port that keeps the product in fp32 rounds
// other ties. Deterministic scan over bf16 grids.
std::vector<float> searched_pdt_rounding(DType pdt, float inv, size_t want) {
  std::vector<float> found;
  const num::FloatFormat& f = pdt == DType::kBF16 ? num::kBF16 : num::kF16;
  const uint16_t ib = pdt == DType::kBF16 ? num::f32_to_bf16(inv) : num::f32_to_f16(inv);
  const float invf = static_cast<float>(num::to_double(f, ib));
  for (int m = 1; m < 4096 && found.size() < want; ++m) {
    const float xv = static_cast<float>(m) / 256.0f + 1.0f;
    const uint16_t xb = pdt == DType::kBF16 ? num::f32_to_bf16(xv) : num::f32_to_f16(xv);
    const float xr = static_cast<float>(num::to_double(f, xb));
    const uint16_t a = ref::c8_quantize_scaled(xb, ib, pdt);
    const int8_t pdt_code = ref::c8_quantize_code(a, pdt);
    const float fp32 = xr * invf;  // exact
    const float alt = std::nearbyint(fp32);
    if (static_cast<int>(alt) != pdt_code &&
        std::find(found.begin(), found.end(), xr) == found.end())
      found.push_back(xr);
  }
  return found;
}

struct Spec {
  DType pdt;
  int64_t t, kvh, d;
};

TensorMap random_inputs(const std::string& name, const Spec& s, int64_t total_kvh,
                        bool zero_offset) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  TensorMap in;
  const int64_t c = total_kvh * s.d;
  in["key"] = gen::float_tensor(s.pdt, {s.t, s.kvh, s.d}, gen::FloatDist::normal(0), seed, 0);
  in["value"] = gen::float_tensor(s.pdt, {s.t, s.kvh, s.d}, gen::FloatDist::normal(-1), seed, 1);
  // Scales ~ amax/127 for N(0, 1): m * 2^-12 with m in [64, 160]; fp32 checkpoint values on a
  // finer grid, so the load rounding shows.
  in["k_proj.kv_cache_scale"] =
      gen::float_tensor(DType::kF32, {c}, gen::FloatDist::grid(1 << 14, 40000, -20), seed, 2);
  in["v_proj.kv_cache_scale"] =
      gen::float_tensor(DType::kF32, {c}, gen::FloatDist::grid(1 << 13, 20000, -20), seed, 3);
  in["k_proj.kv_cache_offset"] =
      zero_offset ? f32_const(c, 0.0f)
                  : gen::float_tensor(DType::kF32, {c}, gen::FloatDist::grid(-6, 6, 0), seed, 4);
  in["v_proj.kv_cache_offset"] =
      zero_offset ? f32_const(c, 0.0f)
                  : gen::float_tensor(DType::kF32, {c}, gen::FloatDist::grid(-6, 6, 0), seed, 5);
  return in;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto add = [&](std::string name, std::string comment, std::vector<std::string> flags, DType pdt,
                 TensorMap in, Params extra = Params::object()) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = {{"params_dtype", pdt == DType::kBF16 ? "bfloat16" : "float16"}, {"block_size", 32}};
    for (auto it = extra.begin(); it != extra.end(); ++it) c.params[it.key()] = it.value();
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  };
  for (DType pdt : {DType::kBF16, DType::kF16}) {
    const std::string dn = pdt == DType::kBF16 ? "bf16" : "fp16";
    // Ties and saturation: scale 1 (inverse 1), offset 0 for K; V: scale 0.5 (inverse 2) with
    // K's values halved, and offset 0.5 on every other channel (ties made by the offset).
    TensorMap in;
    in["key"] = from_floats(pdt, {1, 1, 32}, kTieValues);
    std::vector<float> half;
    for (float x : kTieValues) half.push_back(x / 2);
    in["value"] = from_floats(pdt, {1, 1, 32}, half);
    in["k_proj.kv_cache_scale"] = f32_const(32, 1.0f);
    in["k_proj.kv_cache_offset"] = f32_const(32, 0.0f);
    in["v_proj.kv_cache_scale"] = f32_const(32, 0.5f);
    std::vector<uint32_t> vo(32);
    for (size_t i = 0; i < 32; ++i) vo[i] = num::f32_bits(i % 2 ? 0.5f : 0.0f);
    in["v_proj.kv_cache_offset"] = Tensor::from<uint32_t>(DType::kF32, {32}, vo);
    add("ties_saturation_" + dn,
        "k + 1/2 ties (half to even: 0.5 -> 0, 2.5 -> 2, -2.5 -> -2), 127.5 -> 128 -> 127, "
        "-128.5 -> -128, 200 and -300 saturate; V: ties made by scale 0.5 and offset 0.5",
        {"Ties", "Saturation"}, pdt, in);
  }
  {
    // x * inv rounded to bf16 before the round: found by a scan (x in [1, 17), inv = 3).
    const std::vector<float> xs = searched_pdt_rounding(DType::kBF16, 3.0f, 32);
    TensorMap in;
    std::vector<float> keys = xs;
    keys.resize(32, 1.0f);
    in["key"] = from_floats(DType::kBF16, {1, 1, 32}, keys);
    in["value"] = from_floats(DType::kBF16, {1, 1, 32}, keys);
    const float s = 1.0f / 3.0f;  // loads as bf16(1/3); 1.0 / that is 3 in bf16
    in["k_proj.kv_cache_scale"] = f32_const(32, s);
    in["v_proj.kv_cache_scale"] = f32_const(32, s);
    in["k_proj.kv_cache_offset"] = f32_const(32, 0.0f);
    in["v_proj.kv_cache_offset"] = f32_const(32, 0.0f);
    add("pdt_intermediate_rounding_bf16",
        "searched: " + std::to_string(xs.size()) +
            " keys whose x * inv (inv = bf16(1/bf16(1/3)) = 3) rounds in bf16 to another integer "
            "or tie than the fp32 product",
        {"IntermediateRounding"}, DType::kBF16, in);
  }
  // Random layers, every antiquant reading on the same inputs (nonzero offsets separate them).
  {
    const Spec s{DType::kBF16, 5, 2, 32};
    const TensorMap in = random_inputs("random_bf16", s, 2, false);
    for (const char* a : {"sub_offset", "scale_only", "add_offset"})
      add(std::string("random_bf16_") + a,
          "seeded K/V N(0, 1) and N(0, 1/4), per-channel scales and integer offsets; antiquant " +
              std::string(a),
          {"Random", "AntiquantReading"}, DType::kBF16, in, {{"antiquant", a}});
  }
  add("random_fp16_zero_offset_t34",
      "fp16, 34 tokens over two blocks of 32 (the second padded), symmetric (offset 0)",
      {"Random", "Paging"}, DType::kF16,
      random_inputs("random_fp16_zero_offset_t34", {DType::kF16, 34, 1, 32}, 1, true));
  add("tp_shard_rank1_of2",
      "checkpoint scales for 4 kv heads, tp_size 2, rank 1: heads 2 and 3 ([2, 4) of [4, D])",
      {"TpShard"}, DType::kBF16,
      random_inputs("tp_shard_rank1_of2", {DType::kBF16, 3, 2, 32}, 4, false),
      {{"tp_rank", 1}, {"tp_size", 2}});
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "C8 KV cache from checkpoint tensors: per-channel scale/offset loaded in the model dtype, "
      "TP-sharded by kv head, inv = 1/scale; q = clamp(round_half_even(x * inv + offset), -128, "
      "127) with each op rounded to the model dtype; the paged cache in NZ layout; the "
      "attention-side dequant read back from the cache (variant antiquant).";
  d.sources = {
      "notes/vllm_ascend_quant.md §A Attention and KV cache (C8)",
      "notes/torch_npu_semantics.md §11 (KV-cache NZ), §12 (C8 quant formula, torch.round)",
      "vllm-ascend quantization/methods/kv_c8.py (_c8_kv_scale_weight_loader) and "
      "attention/attention_v1.py (_prepare_c8_scales, _quantize_kv_to_int8, "
      "_dequant_paged_kv_to_dense, FIA key_antiquant_scale/offset)",
      "reference/schemes/c8_kv_cache.cpp (checkpoint declarations)"};
  d.inputs = {"key",
              "value",
              "k_proj.kv_cache_scale",
              "k_proj.kv_cache_offset",
              "v_proj.kv_cache_scale",
              "v_proj.kv_cache_offset"};
  for (const Side& sd : kSides) {
    const std::string t = sd.tag;
    d.stages.push_back({t + "_scale_param", false, "pdt [kvh * D]: loaded and sharded scale"});
    d.stages.push_back({t + "_offset_param", false, "pdt [kvh * D]: loaded and sharded offset"});
    d.stages.push_back({t + "_inv_scale", false, "pdt [kvh * D]: 1.0 / scale"});
    d.stages.push_back({t + "_scaled", false, "pdt [T, kvh, D]: x * inv"});
    d.stages.push_back({t + "_shifted", false, "pdt [T, kvh, D]: + offset"});
    d.stages.push_back({t + "_q", true, "int8 [T, kvh, D]: the cache codes"});
    d.stages.push_back(
        {t + "_cache_nz", false, "int8 [blocks, kvh, D/32, block_size, 32]: the paged cache"});
    d.stages.push_back({t + "_dequant", true, "pdt [T, kvh, D]: read back and dequantized"});
  }
  d.variants = {{"antiquant",
                 {"sub_offset", "scale_only", "add_offset"},
                 "attention-side dequant: (q - offset) * scale in pdt (dense path) [code]; q * "
                 "scale (NZ variant) [code]; fp32 (q + offset) * scale (FIA, AscendAntiQuant "
                 "convention) [inf]"}};
  d.notes = {
      {"Ties",
       {"FUNCTIONALITY", "x * inv + offset exactly on k + 1/2: torch.round is half to even",
        "a port rounding half away from zero (roundf) gets 1, 3, -3 for 0.5, 2.5, -2.5"}},
      {"Saturation",
       {"EDGE_CASE", "values past [-128, 127] (127.5, -128.5, 200, -300, 60000) clamp",
        "a wrapping or unclamped cast stores other codes"}},
      {"IntermediateRounding",
       {"DIVERGENCE",
        "x * inv is a model-dtype tensor op: rounded to bf16 before + offset and the round",
        "a fused port keeping x * inv + offset in fp32 gets other codes for these keys"}},
      {"AntiquantReading",
       {"DIVERGENCE", "nonzero offsets: the three dequant readings give different K/V",
        "tells which attention-side dequant a port implements"}},
      {"Paging",
       {"FUNCTIONALITY", "tokens spanning two blocks; empty slots of the last block are zero",
        "a port that lays blocks out in another order or leaves garbage in padding"}},
      {"TpShard",
       {"FUNCTIONALITY",
        "scales for all kv heads, sliced to the rank's heads [rank * total / tp, + kvh)",
        "a port that uses the first heads on every rank"}},
      {"Random", {"BASIC", "seeded K/V and per-channel parameters", "general coverage"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_c8_kv_cache
}  // namespace qconf::conf
