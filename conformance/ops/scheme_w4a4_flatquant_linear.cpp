// scheme_w4a4_flatquant_linear: one W4A4_FLATQUANT_DYNAMIC linear layer end to end, from its
// checkpoint tensors (seed 002: vllm-ascend quantization/methods/w4a4_flatquant.py):
//
//   checkpoint: weight int8 [N, K] (int4 values), left_trans [L, L] and right_trans [R, R] in
//     params dtype ((L, R) = get_decompose_dim(K)), clip_ratio float32 [1], weight_scale and
//     weight_offset float32 [N, 1];
//   process_weights_after_loading:
//     weight_packed = npu_convert_weight_to_int4pack(weight.to(int32), inner_k_tiles=1)  [N, K/8]
//     weight_scale = weight_scale.to(float32); left_trans = left_trans.t().contiguous();
//     aclnn_clip_ratio = clip_ratio.item()
//   apply: the op w4a4_flatquant_linear (npu_kronecker_quant(x [T, L, R], left_trans (already
//     transposed), right_trans, clip) in token chunks, npu_quant_matmul(q, weight_packed.t(),
//     weight_scale, pertoken_scale, output x dtype), + bias in x dtype).
//
// The apply stages and their checks are w4a4_flatquant_linear's (REACHABLE codes, scales and
// accumulator, BOUNDED outputs; docs/bounds.md): this op calls that op's reference / optimized
// kernel and its reachable-set oracle on the weight codes read back from weight_packed, so a
// packing bug reaches the matmul. Param `formula` as npu_kronecker_quant (variant).
#include <cstring>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/kronecker_quant.h"
#include "scheme_int4_util.h"
#include "scheme_pipeline_util.h"

namespace qconf::conf {
namespace conformance_ops_scheme_w4a4_flatquant_linear {

constexpr const char* kOp = "scheme_w4a4_flatquant_linear";
using namespace scheme_pipeline;  // NOLINT
using namespace scheme_int4;      // NOLINT

Tensor transpose_sq(const Tensor& t) {
  if (t.rank() != 2 || t.dim(0) != t.dim(1) || dtype_size(t.dtype()) != 2)
    throw std::invalid_argument(std::string(kOp) +
                                ": left_trans must be a square 16-bit float matrix, got " +
                                t.describe());
  const int64_t n = t.dim(0);
  Tensor o(t.dtype(), {n, n});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) o.data<uint16_t>()[j * n + i] = t.data<uint16_t>()[i * n + j];
  return o;
}

FlatQuantLinearConfig config_of(const Params& p) {
  FlatQuantLinearConfig c;
  c.formula = parse_kron_formula(param_str(p, "formula", "kernel"));
  c.chunk_tokens = param_int(p, "chunk_tokens", 32768);
  return c;
}

// The load-time state the apply step reads.
struct Loaded {
  Tensor weight_packed;     // int32 [N, K/8]
  Tensor left_trans_param;  // params dtype [L, L]: left_trans^T
  Tensor weight_scale;      // float32 [N]
  Tensor clip;              // float32 [1]
  Tensor codes;             // int8 [N, K]: the codes the matmul reads from weight_packed.t()
  Tensor left_ckpt;         // params dtype [L, L]: left_trans_param^T, the orientation
                            // w4a4_flatquant_linear takes (it forms P1 = left^T itself)
};

template <bool kOpt>
Loaded load(const Params& p, const TensorMap& in) {
  const DType pdt = pdt_of(p);
  const Tensor& x = in.at("x");
  if (x.dtype() != pdt)
    throw std::invalid_argument(std::string(kOp) + ": x must have the params dtype, got " +
                                x.describe());
  const Tensor& cr = in.at("clip_ratio");
  if (cr.dtype() != DType::kF32 || cr.numel() != 1)
    throw std::invalid_argument(std::string(kOp) + ": clip_ratio must be float32 [1], got " +
                                cr.describe());
  Loaded l;
  const Tensor w32 = widen_i32(in.at("weight"), kOp);
  if constexpr (kOpt)
    l.weight_packed = opt::npu_convert_weight_to_int4pack(w32);
  else
    l.weight_packed = ref::npu_convert_weight_to_int4pack(w32);
  l.left_trans_param = transpose_sq(in.at("left_trans"));
  l.weight_scale = flat_f32(in.at("weight_scale"), kOp, "weight_scale");
  l.clip = Tensor::from<uint32_t>(DType::kF32, {1}, {cr.data<uint32_t>()[0]});
  l.codes = unpack_rows(l.weight_packed);
  l.left_ckpt = transpose_sq(l.left_trans_param);
  return l;
}

FlatQuantLinearArgs args_of(const TensorMap& in, const Loaded& l) {
  FlatQuantLinearArgs a;
  a.x = &in.at("x");
  a.left_trans = &l.left_ckpt;
  a.right_trans = &in.at("right_trans");
  a.clip_ratio = &l.clip;
  a.weight = &l.codes;
  a.weight_scale = &l.weight_scale;
  auto b = in.find("bias");
  a.bias = b == in.end() ? nullptr : &b->second;
  return a;
}

template <bool kOpt>
void run(const Params& p, const TensorMap& in, TensorMap& out) {
  Loaded l = load<kOpt>(p, in);
  const FlatQuantLinearArgs a = args_of(in, l);
  FlatQuantLinearStages s;
  if constexpr (kOpt)
    s = opt::w4a4_flatquant_linear(a, config_of(p), true);
  else
    s = ref::w4a4_flatquant_linear(a, config_of(p));
  out["weight_packed"] = std::move(l.weight_packed);
  out["left_trans_param"] = std::move(l.left_trans_param);
  out["weight_scale_param"] = std::move(l.weight_scale);
  out["decompose_dim"] = std::move(s.decompose_dim);
  out["kq_out"] = std::move(s.kq_out);
  out["kq_scale"] = std::move(s.kq_scale);
  if (s.acc.numel()) out["acc"] = std::move(s.acc);
  out["mm_out"] = std::move(s.mm_out);
  out["y"] = std::move(s.y);
}

// ---- the reachable-set oracle of w4a4_flatquant_linear, on the loaded state --------------------
Check reachable(const ReachSet& r, DType dt) {
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
std::map<std::string, Check> oracle(const Params& p, const TensorMap& in, const TensorMap&) {
  const Loaded l = load<false>(p, in);
  const FlatQuantLinearReach r = ref::w4a4_flatquant_linear_reachable(args_of(in, l), config_of(p));
  std::map<std::string, Check> m;
  m["kq_out"] = reachable(r.kq.out, DType::kI32);
  m["kq_scale"] = reachable(r.kq.quant_scale, DType::kF32);
  m["acc"] = reachable(r.acc, DType::kI32);
  m["mm_out"] = bounded(r.mm_exact, r.mm_bound);
  m["y"] = bounded(r.y_exact, r.y_bound);
  return m;
}

// ---- cases ------------------------------------------------------------------------------------
struct Spec {
  DType dt;
  int64_t t, k, n;
  float clip;
  bool bias;
  bool symmetric_left = false;  // false: a non-symmetric grid left_trans (P1 = left^T matters)
};

TensorMap inputs_for(const std::string& name, const Spec& s) {
  const uint64_t seed = rng::seed_from_string(std::string(kOp) + "/" + name);
  const DecomposeDims dd = ref::get_decompose_dim(s.k);
  TensorMap in;
  in["x"] = gen::float_tensor(s.dt, {s.t, s.k}, gen::FloatDist::normal(0), seed, 0);
  in["left_trans"] = s.symmetric_left ? ref::householder_orthogonal(s.dt, dd.left, 4, seed, 1)
                                      : gen::float_tensor(s.dt, {dd.left, dd.left},
                                                          gen::FloatDist::grid(-4, 4, -2), seed, 1);
  in["right_trans"] = ref::householder_orthogonal(s.dt, dd.right, 4, seed, 2);
  in["clip_ratio"] = Tensor::from<uint32_t>(DType::kF32, {1}, {num::f32_bits(s.clip)});
  in["weight"] = gen::int_tensor(DType::kI8, {s.n, s.k}, -8, 7, seed, 3);
  in["weight_scale"] =
      gen::float_tensor(DType::kF32, {s.n, 1}, gen::FloatDist::grid(16, 255, -12), seed, 4);
  in["weight_offset"] =
      gen::float_tensor(DType::kF32, {s.n, 1}, gen::FloatDist::grid(-3, 3, 0), seed, 5);
  if (s.bias) in["bias"] = gen::float_tensor(s.dt, {s.n}, gen::FloatDist::normal(-2), seed, 6);
  return in;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  auto add = [&](const std::string& name, const std::string& comment,
                 std::vector<std::string> flags, const Spec& s, const std::string& formula) {
    CaseSpec c;
    c.name = name;
    c.comment = comment;
    c.flags = std::move(flags);
    c.params = {{"params_dtype", s.dt == DType::kBF16 ? "bfloat16" : "float16"},
                {"formula", formula}};
    c.inputs = inputs_for(name, s);
    v.push_back(std::move(c));
  };
  add("bf16_k64_n16_bias", "K = 64 -> (8, 8), non-symmetric left_trans, bias, clip 1",
      {"Pipeline", "LeftTranspose"}, {DType::kBF16, 2, 64, 16, 1.0f, true}, "kernel");
  add("fp16_k128_n8", "K = 128 -> (8, 16): L != R, orthogonal transforms, clip 0.9", {"Pipeline"},
      {DType::kF16, 2, 128, 8, 0.9f, false, true}, "kernel");
  for (const char* f : {"kernel", "opplugin_golden"}) {
    CaseSpec c;
    c.name = std::string("formula_") + f;
    c.comment = "clip 0.5, formula " + std::string(f) + "; the same inputs for both readings";
    c.flags = {"FormulaReading"};
    c.params = {{"params_dtype", "bfloat16"}, {"formula", f}};
    c.inputs = inputs_for("formula", {DType::kBF16, 2, 64, 8, 0.5f, false, true});
    v.push_back(std::move(c));
  }
  return v;
}

OpDef make() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "W4A4_FLATQUANT_DYNAMIC linear layer from checkpoint tensors: weight packed by "
      "npu_convert_weight_to_int4pack, left_trans transposed, clip_ratio read as a float; "
      "then w4a4_flatquant_linear (npu_kronecker_quant + int4 npu_quant_matmul + bias), with "
      "that op's reachable / bounded checks.";
  d.sources = {
      "seed 002: vllm-ascend quantization/methods/w4a4_flatquant.py "
      "(process_weights_after_loading, apply) [code]",
      "notes/vllm_ascend_quant.md §A W4A4_FLATQUANT_DYNAMIC",
      "conformance/ops/w4a4_flatquant_linear.cpp, docs/bounds.md",
      "reference/schemes/w4a4_flatquant.cpp (checkpoint declarations)"};
  d.inputs = {"x",          "weight",       "left_trans",    "right_trans",
              "clip_ratio", "weight_scale", "weight_offset", "bias"};
  d.stages = {
      {"weight_packed", false, "int32 [N, K/8]: npu_convert_weight_to_int4pack(weight.int32)"},
      {"left_trans_param", false, "params dtype [L, L]: left_trans.t() (P1 of the op)"},
      {"weight_scale_param", false, "float32 [N]"},
      {"decompose_dim", false, "int64 [2]: get_decompose_dim(K)"},
      {"kq_out", false, "int32 [T, K/8]: activation codes (reachable)"},
      {"kq_scale", false, "float32 [T]: activation scales (reachable)"},
      {"acc", false, "int32 [T, N] (reachable range)"},
      {"mm_out", false, "x dtype [T, N] (bounded)"},
      {"y", true, "x dtype [T, N]: + bias (bounded)"}};
  d.variants = {
      {"formula", {"kernel", "opplugin_golden"}, "the npu_kronecker_quant reading (see that op)"}};
  d.notes = {
      {"Pipeline",
       {"FUNCTIONALITY", "the whole layer from checkpoint tensors, load-time transforms included",
        "a port that packs along N or skips a load step differs"}},
      {"LeftTranspose",
       {"FUNCTIONALITY", "a non-symmetric left_trans: the layer stores left_trans^T at load",
        "a port that keeps left_trans gives other codes"}},
      {"FormulaReading",
       {"DIVERGENCE", "as npu_kronecker_quant: the kernel vs the op-plugin golden reading",
        "which reading the activation quantization implements"}}};
  d.reference = run<false>;
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = run<true>;
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}
QCONF_REGISTER_OP(make);

}  // namespace conformance_ops_scheme_w4a4_flatquant_linear
}  // namespace qconf::conf
