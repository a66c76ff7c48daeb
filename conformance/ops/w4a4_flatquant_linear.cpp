// Op: w4a4_flatquant_linear, vllm-ascend's W4A4_FLATQUANT_DYNAMIC linear layer end to end
// (seed 002, quantization/methods/w4a4_flatquant.py):
//   (L, R) = get_decompose_dim(K); P1 = left_trans^T; P2 = right_trans;
//   (q, s) = npu_kronecker_quant(x viewed [T, L, R], P1, P2, clip_ratio) in chunks of
//            chunk_tokens tokens;
//   mm = npu_quant_matmul(q, int4 weight^T, weight_scale, pertoken_scale = s, output x dtype);
//   y = mm + bias (in x dtype).
//
// Params: formula (variant, as npu_kronecker_quant), chunk_tokens (8192 in seed 002; any value
// gives the same bits). Stages: decompose_dim (EXACT), kq_out and kq_scale (REACHABLE, as
// npu_kronecker_quant's out and quant_scale), acc (int32, REACHABLE: every integer between the
// smallest and largest accumulator the reachable codes give), mm_out and y (BOUNDED: the range
// of the epilogue over the reachable accumulators and scales, exact (bound 0) for tokens whose
// codes and scale are unique). reference/ops/kronecker_quant.cpp, docs/bounds.md.
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/index.h"
#include "qconf/ops/kronecker_quant.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_w4a4_flatquant_linear {

constexpr const char* kOp = "w4a4_flatquant_linear";

std::map<std::string, Note> notes() {
  return {
      {"DecomposeDim",
       {"FUNCTIONALITY",
        "K with L != R (128 -> (8, 16), 384 -> (16, 24)): the token is viewed [L, R] with "
        "L = a - b the left (smaller) factor.",
        "Swapping L and R or viewing the token transposed changes every code."}},
      {"LeftTranspose",
       {"FUNCTIONALITY",
        "Non-symmetric left_trans: the op passes P1 = left_trans^T "
        "(process_weights_after_loading).",
        "Using left_trans itself gives other codes."}},
      {"Chunking",
       {"FUNCTIONALITY",
        "chunk_tokens = 2 with T = 5 (chunks 2, 2, 1): the same bits as without chunking (the "
        "op is per token).",
        "A chunked port that mixes tokens across chunks, or drops the tail chunk."}},
      {"Bias",
       {"FUNCTIONALITY", "bias [N] in x dtype, added after npu_quant_matmul in x dtype.",
        "Adding the bias inside the fp32 epilogue rounds once instead of twice."}},
      {"FormulaReading",
       {"DIVERGENCE", "As npu_kronecker_quant: the kernel vs the op-plugin golden reading.",
        "Tells which reading the activation quantization implements."}},
      {"Random",
       {"BASIC", "Seeded inputs, orthogonal transforms, int4 weights, per-channel scales.",
        "General coverage; the seed is derived from the case id."}},
  };
}

Params params(const std::string& formula = "kernel", int64_t chunk = 8192) {
  return Params{{"formula", formula}, {"chunk_tokens", chunk}};
}
FlatQuantLinearConfig config_of(const Params& p) {
  FlatQuantLinearConfig c;
  c.formula = parse_kron_formula(param_str(p, "formula", "kernel"));
  c.chunk_tokens = param_int(p, "chunk_tokens", 8192);
  return c;
}

const Tensor* opt_input(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}
FlatQuantLinearArgs args_of(const TensorMap& in) {
  FlatQuantLinearArgs a;
  a.x = &in.at("x");
  a.left_trans = &in.at("left_trans");
  a.right_trans = &in.at("right_trans");
  a.clip_ratio = &in.at("clip_ratio");
  a.weight = &in.at("weight");
  a.weight_scale = &in.at("weight_scale");
  a.bias = opt_input(in, "bias");
  return a;
}

struct Spec {
  DType dt;
  int64_t t, k, n;
  float clip;
  bool bias;
  bool orthogonal = true;
};

TensorMap random_inputs(const std::string& name, const Spec& s) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const DecomposeDims dd = ref::get_decompose_dim(s.k);
  TensorMap in;
  in["x"] = gen::float_tensor(s.dt, {s.t, s.k}, gen::FloatDist::normal(0), seed, 0);
  in["left_trans"] = s.orthogonal ? ref::householder_orthogonal(s.dt, dd.left, 4, seed, 1)
                                  : gen::float_tensor(s.dt, {dd.left, dd.left},
                                                      gen::FloatDist::grid(-4, 4, -2), seed, 1);
  in["right_trans"] = ref::householder_orthogonal(s.dt, dd.right, 4, seed, 2);
  float c = s.clip;
  uint32_t cb;
  std::memcpy(&cb, &c, 4);
  in["clip_ratio"] = Tensor::from<uint32_t>(DType::kF32, {1}, {cb});
  in["weight"] = gen::int_tensor(DType::kI8, {s.n, s.k}, -8, 7, seed, 3);
  // weight_scale m * 2^-12, m in [16, 255]: a per-channel fp32 scale [N, 1].
  in["weight_scale"] =
      gen::float_tensor(DType::kF32, {s.n, 1}, gen::FloatDist::grid(16, 255, -12), seed, 4);
  if (s.bias) in["bias"] = gen::float_tensor(s.dt, {s.n}, gen::FloatDist::normal(-2), seed, 5);
  return in;
}

struct Builder {
  std::vector<CaseSpec> v;
  void add(std::string name, std::string comment, std::vector<std::string> flags, Params p,
           TensorMap in) {
    CaseSpec c;
    c.name = std::move(name);
    c.comment = std::move(comment);
    c.flags = std::move(flags);
    c.params = std::move(p);
    c.inputs = std::move(in);
    v.push_back(std::move(c));
  }
};

std::vector<CaseSpec> cases() {
  Builder b;
  b.add("decompose_k128_fp16", "K = 128 -> (L, R) = (8, 16), N = 16, no bias", {"DecomposeDim"},
        params(), random_inputs("decompose_k128_fp16", {DType::kF16, 3, 128, 16, 1.0f, false}));
  b.add("decompose_k384_bf16_bias", "K = 384 -> (16, 24), bf16, bias", {"DecomposeDim", "Bias"},
        params(), random_inputs("decompose_k384_bf16_bias", {DType::kBF16, 2, 384, 8, 1.0f, true}));
  b.add("left_transpose_k64_fp16",
        "K = 64 -> (8, 8), left_trans a non-symmetric grid matrix (P1 = left_trans^T)",
        {"LeftTranspose"}, params(),
        random_inputs("left_transpose_k64_fp16", {DType::kF16, 2, 64, 8, 1.0f, false, false}));
  {
    TensorMap in = random_inputs("chunking_t5_fp16", {DType::kF16, 5, 64, 8, 1.0f, true});
    for (int64_t chunk : {int64_t{8192}, int64_t{2}})
      b.add("chunking_t5_fp16_chunk" + std::to_string(chunk),
            "T = 5 tokens, chunk_tokens " + std::to_string(chunk) + ": identical outputs",
            {"Chunking", "Bias"}, params("kernel", chunk), in);
  }
  {
    TensorMap in = random_inputs("formula_reading_k64", {DType::kBF16, 2, 64, 16, 0.5f, false});
    for (const char* f : {"kernel", "opplugin_golden"})
      b.add(std::string("formula_reading_k64_") + f, "clip 0.5, formula " + std::string(f),
            {"FormulaReading"}, params(f), in);
  }
  b.add("random_k256_fp16_bias", "K = 256 -> (16, 16), N = 24, bias, clip 0.95", {"Random", "Bias"},
        params(), random_inputs("random_k256_fp16_bias", {DType::kF16, 3, 256, 24, 0.95f, true}));
  return b.v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap& in, TensorMap& out) {
    FlatQuantLinearStages s = fn(args_of(in), config_of(p));
    out["decompose_dim"] = std::move(s.decompose_dim);
    out["kq_out"] = std::move(s.kq_out);
    out["kq_scale"] = std::move(s.kq_scale);
    if (s.acc.numel()) out["acc"] = std::move(s.acc);
    out["mm_out"] = std::move(s.mm_out);
    out["y"] = std::move(s.y);
  };
}

#ifndef QCONF_NO_OPTIMIZED
FlatQuantLinearStages opt_kernel(const FlatQuantLinearArgs& a, const FlatQuantLinearConfig& c) {
  return opt::w4a4_flatquant_linear(a, c, true);
}
#endif

Check reachable(const ReachSet& r, DType dt, const Shape&) {
  Check c;
  if (r.index.empty()) return c;
  c.mode = CheckMode::kReachable;
  c.accept.index = r.index;
  c.accept.offsets = r.offsets;
  Tensor v(dt, {static_cast<int64_t>(r.values.size())});
  const size_t w = dtype_size(dt);
  for (size_t i = 0; i < r.values.size(); ++i) std::memcpy(v.bytes() + i * w, &r.values[i], w);
  c.accept.values = std::move(v);
  return c;
}

Check bounded(const Tensor& exact, const Tensor& bound) {
  Check c;
  c.mode = CheckMode::kBounded;
  c.exact = exact;
  c.bound = bound;
  return c;
}

std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap& out) {
  const FlatQuantLinearReach r = ref::w4a4_flatquant_linear_reachable(args_of(in), config_of(p));
  std::map<std::string, Check> m;
  m["kq_out"] = reachable(r.kq.out, DType::kI32, out.at("kq_out").shape());
  m["kq_scale"] = reachable(r.kq.quant_scale, DType::kF32, out.at("kq_scale").shape());
  m["acc"] = reachable(r.acc, DType::kI32, out.at("acc").shape());
  m["mm_out"] = bounded(r.mm_exact, r.mm_bound);
  m["y"] = bounded(r.y_exact, r.y_bound);
  return m;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A4_FLATQUANT_DYNAMIC linear: get_decompose_dim(K), npu_kronecker_quant(x "
      "[T, L, R], left_trans^T, right_trans, clip) in token chunks, npu_quant_matmul(int4 x int4, "
      "weight_scale, pertoken_scale, output x dtype), + bias in x dtype. Codes and scales "
      "REACHABLE, accumulator REACHABLE (integer range), outputs BOUNDED by the range over the "
      "reachable codes (exact where unique).";
  d.sources = {"seed 002: vllm-ascend quantization/methods/w4a4_flatquant.py [code]",
               "notes/vllm_ascend_quant.md §A W4A4_FLATQUANT_DYNAMIC",
               "notes/torch_npu_semantics.md §4 (npu_kronecker_quant), §2 (npu_quant_matmul "
               "pertoken path order)",
               "docs/bounds.md (npu_kronecker_quant, w4a4_flatquant_linear)"};
  d.inputs = {"x", "left_trans", "right_trans", "clip_ratio", "weight", "weight_scale", "bias"};
  d.stages = {{"decompose_dim", false, "int64 [2]: get_decompose_dim(K)"},
              {"kq_out", false, "int32 [T, K/8]: packed int4 activation codes (reachable)"},
              {"kq_scale", false, "float32 [T]: activation scales (reachable)"},
              {"acc", false, "int32 [T, N]: int4 x int4 accumulator (reachable range)"},
              {"mm_out", false, "x dtype [T, N]: npu_quant_matmul output (bounded)"},
              {"y", true, "x dtype [T, N]: + bias (bounded)"}};
  d.variants = {
      {"formula", {"kernel", "opplugin_golden"}, "the npu_kronecker_quant reading (see that op)"}};
  d.notes = notes();
  d.reference = kernel(ref::w4a4_flatquant_linear);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt_kernel);
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_w4a4_flatquant_linear
}  // namespace qconf::conf
