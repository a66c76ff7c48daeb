// The mutation catalogue: see catalogue.h. Each entry is a realistic bug in one step of an op.
//
// How a mutant is built, in order of preference:
//   * a re-implementation of the op (or of its last steps, on the optimized kernel's earlier
//     stages) with the one buggy step, next to a correct re-implementation ("port") that the
//     legitimate-variation test proves passes every case: so each failure is the bug's;
//   * the optimized kernel called with the reading a real port hard-codes (variant forcing);
//   * the optimized kernel fed the tensor a wrong index computation reads (transposed or shifted
//     scales): bit-for-bit what the buggy kernel computes.
// To add a mutant: append one {id, op, bug, catching case, kernel} to catalogue() below.
#include "catalogue.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/numeric/rounding.h"
#include "qconf/ops/dispatch.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/expert_mlp.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/kronecker_quant.h"
#include "qconf/ops/nz.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/quant_matmul.h"
#include "qconf/ops/quantize.h"
#include "qconf/ops/scales.h"
#include "qconf/ops/weight_quant_bmm.h"

namespace qconf::mutants {
namespace {

using conf::Kernel;
using conf::param_int;
using conf::param_str;
using conf::Params;
using num::kF32;

// ---- helpers ---------------------------------------------------------------------------------

Kernel optimized(const std::string& op) {
  const conf::OpDef* d = conf::OpRegistry::instance().find(op);
  if (!d || !d->optimized)
    throw std::logic_error("mutant catalogue: no optimized kernel for " + op);
  return d->optimized;
}

// The optimized kernel with a param forced: a port that hard-codes one reading.
Kernel with_param(const std::string& op, const std::string& key, const std::string& value) {
  Kernel k = optimized(op);
  return [k, key, value](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    q[key] = value;
    k(q, in, out);
  };
}

// The optimized kernel, then `fix` re-computes some outputs (the buggy last step).
Kernel then(const std::string& op,
            std::function<void(const Params&, const TensorMap&, TensorMap&)> step) {
  Kernel k = optimized(op);
  return [k, step](const Params& p, const TensorMap& in, TensorMap& out) {
    k(p, in, out);
    step(p, in, out);
  };
}

const Tensor* opt_in(const TensorMap& in, const char* name) {
  auto it = in.find(name);
  return it == in.end() ? nullptr : &it->second;
}

const num::FloatFormat& fmt(DType t) {
  return t == DType::kF16 ? num::kF16 : (t == DType::kBF16 ? num::kBF16 : num::kF32);
}
// Element i of a float tensor widened to fp32 bits (exact).
uint32_t f32_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kF32
             ? static_cast<uint32_t>(t.bits_at(i))
             : static_cast<uint32_t>(num::convert(fmt(t.dtype()), t.bits_at(i), kF32));
}
float fval(uint32_t bits) { return num::f32_from_bits(bits); }
uint32_t fbits(float v) { return num::f32_bits(v); }
uint32_t fmul(uint32_t a, uint32_t b) { return static_cast<uint32_t>(num::fp_mul(kF32, a, b)); }
uint32_t fdiv(uint32_t a, uint32_t b) { return static_cast<uint32_t>(num::fp_div(kF32, a, b)); }
uint32_t fadd(uint32_t a, uint32_t b) { return static_cast<uint32_t>(num::fp_add(kF32, a, b)); }
uint32_t fsub(uint32_t a, uint32_t b) { return static_cast<uint32_t>(num::fp_sub(kF32, a, b)); }

// Values of an int tensor as int64.
std::vector<int64_t> ints(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.int_at(i);
  return v;
}

// ---- int4 word assembly (npu_convert_weight_to_int4pack and the packers built on it) ---------

enum class PackBug {
  kNone,
  kNibbleSwap,
  kOffsetBinary,
  kClamp,
  kNoMask,
  kBigEndian,
  kTailOffByOne
};

// Packs rows of `n` values (n % 8 == 0) into n/8 words, as the NPU layout wants, with one bug.
// kTailOffByOne: a vector loop of 16 words per iteration and a scalar tail loop whose bound is
// off by one (the last word of a row whose word count is not a multiple of 16 is never written).
Tensor pack_npu_int4(const std::vector<int64_t>& v, Shape shape, PackBug bug) {
  const int64_t n = shape.back(), words = n / 8, rows = n ? static_cast<int64_t>(v.size()) / n : 0;
  shape.back() = words;
  Tensor out(DType::kI32, shape);
  int32_t* o = out.data<int32_t>();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t vec_end = words / 16 * 16;
    const int64_t end = bug == PackBug::kTailOffByOne && vec_end != words ? words - 1 : words;
    for (int64_t j = 0; j < end; ++j) {
      uint32_t w = 0;
      for (int t = 0; t < 8; ++t) {
        const int src = bug == PackBug::kNibbleSwap ? (t ^ 1) : t;
        int64_t x = v[static_cast<size_t>(r * n + 8 * j + src)];
        uint32_t nib;
        switch (bug) {
          case PackBug::kOffsetBinary:
            nib = static_cast<uint32_t>(x + 8) & 0xFu;
            break;
          case PackBug::kClamp:
            nib = static_cast<uint32_t>(std::clamp<int64_t>(x, -8, 7)) & 0xFu;
            break;
          case PackBug::kNoMask:  // sign-extended value OR-ed in: negative values smear upward
            w |= static_cast<uint32_t>(static_cast<int32_t>(x) << (4 * t));
            continue;
          default:
            nib = static_cast<uint32_t>(x) & 0xFu;
        }
        const int slot = bug == PackBug::kBigEndian ? ((3 - t / 2) * 2 + t % 2) : t;
        w |= nib << (4 * slot);
      }
      o[r * words + j] = static_cast<int32_t>(w);
    }
  }
  return out;
}

Kernel int4pack_mutant(PackBug bug) {
  return [bug](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    out["packed"] = pack_npu_int4(ints(w), w.shape(), bug);
  };
}

// ---- vllm_ascend_pack_int4_to_int32: clamp, offset binary, LSB first -------------------------
enum class VllmPackBug { kNone, kTwosComplement, kWrapNotClamp, kInt8CastFirst };
Kernel vllm_pack_mutant(VllmPackBug bug) {
  return [bug](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    std::vector<int64_t> v = ints(w);
    for (int64_t& x : v) {
      if (bug == VllmPackBug::kInt8CastFirst) x = static_cast<int8_t>(x);  // .to(int8) first
      if (bug != VllmPackBug::kWrapNotClamp) x = std::clamp<int64_t>(x, -8, 7);
    }
    out["packed"] = pack_npu_int4(
        v, w.shape(),
        bug == VllmPackBug::kTwosComplement ? PackBug::kNone : PackBug::kOffsetBinary);
  };
}

// ---- compressed-tensors pack / unpack --------------------------------------------------------
enum class CtBug { kNone, kOrNotSum, kPadWithValueZero, kFieldTwosComplement, kDimIgnored };
Kernel ct_pack_mutant(CtBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& v = in.at("value");
    const int b = static_cast<int>(param_int(p, "num_bits", 4));
    const int dim = static_cast<int>(param_int(p, "packed_dim", 1));
    const int64_t rows = v.dim(0), cols = v.dim(1), pf = 32 / b;
    const int64_t prow = dim == 0 ? (rows + pf - 1) / pf : rows;
    const int64_t pcol = dim == 1 ? (cols + pf - 1) / pf : cols;
    Tensor o(DType::kI32, {prow, pcol});
    const uint32_t pad = bug == CtBug::kPadWithValueZero ? (1u << (b - 1)) : 0u;
    for (int64_t r = 0; r < prow; ++r)
      for (int64_t c = 0; c < pcol; ++c) {
        uint32_t w = 0;
        for (int64_t i = 0; i < pf; ++i) {
          const int64_t rr = dim == 0 ? r * pf + i : r, cc = dim == 1 ? c * pf + i : c;
          uint32_t u = pad;
          if (rr < rows && cc < cols)
            u = static_cast<uint8_t>(v.data<int8_t>()[rr * cols + cc] + (1 << (b - 1)));
          if (bug == CtBug::kOrNotSum)
            w |= (u & ((1u << b) - 1)) << (b * i);
          else
            w += u << (b * i);
        }
        o.data<int32_t>()[r * pcol + c] = static_cast<int32_t>(w);
      }
    out["packed"] = o;
  };
}
Kernel ct_unpack_mutant(CtBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& pk = in.at("packed");
    const std::vector<int64_t> ws = ints(in.at("weight_shape"));
    const int b = static_cast<int>(param_int(p, "num_bits", 4));
    int dim = static_cast<int>(param_int(p, "packed_dim", 1));
    if (bug == CtBug::kDimIgnored) dim = 1;
    const int64_t rows = ws[0], cols = ws[1], pf = 32 / b, pcols = pk.dim(1);
    Tensor o(DType::kI8, {rows, cols});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t pr = dim == 0 ? r / pf : r, pc = dim == 1 ? c / pf : c;
        const int64_t i = dim == 0 ? r % pf : c % pf;
        if (pr >= pk.dim(0) || pc >= pcols) continue;
        const uint32_t w = static_cast<uint32_t>(pk.data<int32_t>()[pr * pcols + pc]);
        const int32_t f = static_cast<int32_t>((w >> (b * i)) & ((1u << b) - 1));
        const int32_t val = bug == CtBug::kFieldTwosComplement
                                ? (f >= (1 << (b - 1)) ? f - (1 << b) : f)
                                : f - (1 << (b - 1));
        o.data<int8_t>()[r * cols + c] = static_cast<int8_t>(val);
      }
    out["unpacked"] = o;
  };
}

// ---- W4A8 MoE packers --------------------------------------------------------------------------
// LLM-Compressor: int8 [E, N, K] -> transpose -> pairs (w[2j+1] << 4 | w[2j] & 0xF) -> view int32.
Kernel llmcompressor_pack(bool swapped) {
  return [swapped](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    const int64_t e = w.dim(0), n = w.dim(1), k = w.dim(2);
    Tensor o(DType::kI32, {e, k, n / 8});
    uint8_t* bytes = reinterpret_cast<uint8_t*>(o.data<int32_t>());
    for (int64_t x = 0; x < e; ++x)
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t j = 0; j < n / 2; ++j) {
          const int8_t lo = w.data<int8_t>()[(x * n + 2 * j) * k + kk];
          const int8_t hi = w.data<int8_t>()[(x * n + 2 * j + 1) * k + kk];
          // Bug: the even column goes to the high nibble.
          bytes[(x * k + kk) * (n / 2) + j] = swapped
                                                  ? static_cast<uint8_t>((lo << 4) | (hi & 0xF))
                                                  : static_cast<uint8_t>((hi << 4) | (lo & 0xF));
        }
    out["packed"] = o;
  };
}
// msModelSlim: int8 [E, N/2, K] -> transpose(1, 2) -> view int32. Bug: reshape, not transpose.
Kernel modelslim_pack(bool reshape) {
  return [reshape](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    const int64_t e = w.dim(0), a = w.dim(1), k = w.dim(2);
    Tensor o(DType::kI32, {e, k, a / 4});
    if (reshape) {
      std::memcpy(o.bytes(), w.bytes(), w.nbytes());
    } else {
      uint8_t* bytes = reinterpret_cast<uint8_t*>(o.data<int32_t>());
      for (int64_t x = 0; x < e; ++x)
        for (int64_t i = 0; i < a; ++i)
          for (int64_t kk = 0; kk < k; ++kk)
            bytes[(x * k + kk) * a + i] =
                static_cast<uint8_t>(w.data<int8_t>()[(x * a + i) * k + kk]);
    }
    out["packed"] = o;
  };
}
// W4A16 chain: unpack (offset binary) -> transpose -> NPU int4pack. Bug: the -8 of the unpack
// is skipped (fields 0..15 fed to the NPU packer).
Kernel w4a16_repack(bool offset_kept) {
  return [offset_kept](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& pk = in.at("weight_packed");
    const int64_t e = pk.dim(0), n = pk.dim(1), kw = pk.dim(2), k = kw * 8;
    std::vector<int64_t> t(static_cast<size_t>(e * k * n));
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) {
          const uint32_t w = static_cast<uint32_t>(pk.data<int32_t>()[(x * n + r) * kw + c / 8]);
          t[static_cast<size_t>((x * k + c) * n + r)] =
              ((w >> (4 * (c % 8))) & 0xF) - (offset_kept ? 0 : 8);
        }
    out["packed"] = pack_npu_int4(t, {e, k, n}, PackBug::kNone);
  };
}

// ---- scale bit conversions ---------------------------------------------------------------------
Kernel scale_int64(bool zero_extended) {
  return [zero_extended](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor f = ref::widen_scale_to_fp32(in.at("scale"));
    Tensor o(DType::kI64, f.shape());
    (zero_extended ? opt::fp32_bits_to_int64_zero_extended : opt::fp32_bits_to_int64_sign_extended)(
        f.data<uint32_t>(), o.data<int64_t>(), f.numel());
    out["scale_int64"] = o;
  };
}
Kernel process_scale_sign_extended() {
  return then("w4a8_process_scale", [](const Params&, const TensorMap&, TensorMap& out) {
    Tensor& t = out.at("scale_int64");
    for (int64_t i = 0; i < t.numel(); ++i)
      t.data<int64_t>()[i] = static_cast<int32_t>(static_cast<uint32_t>(t.data<int64_t>()[i]));
  });
}

// npu_trans_quant_param: re-encodes the word's fields with a buggy step.
enum class TqpBug { kScaleNotTruncated, kScaleRne, kOffsetWraps, kOffsetHalfAway };
Kernel trans_quant_param_mutant(TqpBug bug) {
  return then("npu_trans_quant_param", [bug](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& scale = in.at("scale");
    const Tensor* offset = opt_in(in, "offset");
    Tensor& qp = out.at("quant_param");
    for (int64_t i = 0; i < qp.numel(); ++i) {
      uint64_t w = static_cast<uint64_t>(qp.data<int64_t>()[i]);
      if (bug == TqpBug::kScaleNotTruncated || bug == TqpBug::kScaleRne) {
        if (!(w & kQuantParamFlag)) continue;
        const uint32_t s = scale.data<uint32_t>()[scale.numel() == 1 ? 0 : i];
        const uint32_t field = bug == TqpBug::kScaleRne ? num::fp32_bits_rne_to_fp19(s) : s;
        w = (w & ~uint64_t{0xFFFFFFFFu}) | field;
      } else {
        if (!offset) continue;
        const uint32_t o = offset->data<uint32_t>()[offset->numel() == 1 ? 0 : i];
        const int64_t r = num::float_to_int(
            kF32, o, bug == TqpBug::kOffsetHalfAway ? num::Round::kRound : num::Round::kRint, 32);
        const int64_t off9 = bug == TqpBug::kOffsetWraps ? r : std::clamp<int64_t>(r, -256, 255);
        w = (w & ~(kQuantParamOffsetMask << kQuantParamOffsetShift)) |
            ((static_cast<uint64_t>(off9) & kQuantParamOffsetMask) << kQuantParamOffsetShift);
      }
      qp.data<int64_t>()[i] = static_cast<int64_t>(w);
    }
  });
}
Kernel decode_offset_zero_extended() {
  return then("npu_trans_quant_param_decode", [](const Params&, const TensorMap& in,
                                                 TensorMap& out) {
    const Tensor& qp = in.at("quant_param");
    for (int64_t i = 0; i < qp.numel(); ++i)
      out.at("offset").data<int32_t>()[i] =
          static_cast<int32_t>((qp.bits_at(i) >> kQuantParamOffsetShift) & kQuantParamOffsetMask);
  });
}
Kernel decode_scale_not_masked() {
  return then(
      "npu_trans_quant_param_decode", [](const Params&, const TensorMap& in, TensorMap& out) {
        const Tensor& qp = in.at("quant_param");
        for (int64_t i = 0; i < qp.numel(); ++i)
          out.at("dequant_scale").data<uint32_t>()[i] = static_cast<uint32_t>(qp.bits_at(i));
      });
}

// load_scale_to_params_dtype: fp32 -> bf16/fp16 with a wrong rounding.
enum class NarrowBug { kNone, kTruncate, kHalfUp };
Kernel load_scale_mutant(NarrowBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& s = in.at("scale");
    const DType pdt =
        parse_params_dtype("load_scale_to_params_dtype", param_str(p, "params_dtype", "bfloat16"));
    Tensor o(pdt, s.shape());
    for (int64_t i = 0; i < s.numel(); ++i) {
      const uint32_t b = s.data<uint32_t>()[i];
      uint16_t r;
      if (bug == NarrowBug::kNone)
        r = static_cast<uint16_t>(num::convert(kF32, b, fmt(pdt), num::Round::kRint));
      else if (pdt == DType::kBF16 && !num::is_nan(kF32, b))
        r = static_cast<uint16_t>((bug == NarrowBug::kHalfUp ? b + 0x8000u : b) >> 16);
      else
        r = static_cast<uint16_t>(
            num::convert(kF32, b, fmt(pdt),
                         bug == NarrowBug::kHalfUp ? num::Round::kRound : num::Round::kTrunc));
      o.data<uint16_t>()[i] = r;
    }
    out["scale"] = o;
  };
}

// ---- w4a8_scale_bias and its rank sum: fp32 sums whose order is open ---------------------------
using SumOrder = std::function<uint32_t(const std::vector<uint32_t>&)>;
uint32_t sum_forward(const std::vector<uint32_t>& t) {
  uint32_t s = t[0];
  for (size_t i = 1; i < t.size(); ++i) s = fbits(fval(s) + fval(t[i]));
  return s;
}
uint32_t sum_backward(const std::vector<uint32_t>& t) {
  uint32_t s = t.back();
  for (size_t i = t.size() - 1; i-- > 0;) s = fbits(fval(s) + fval(t[i]));
  return s;
}
float pairwise_f(const uint32_t* t, size_t n) {
  if (n == 1) return fval(t[0]);
  return pairwise_f(t, n / 2) + pairwise_f(t + n / 2, n - n / 2);
}
uint32_t sum_pairwise(const std::vector<uint32_t>& t) {
  return fbits(pairwise_f(t.data(), t.size()));
}
uint32_t sum_blocked(const std::vector<uint32_t>& t, size_t b) {
  float total = 0;
  for (size_t i = 0; i < t.size(); i += b) {
    float part = 0;
    for (size_t j = i; j < std::min(t.size(), i + b); ++j) part = part + fval(t[j]);
    total = i == 0 ? part : total + part;
  }
  return fbits(total);
}
// Bug: every partial sum rounded to bf16 (a bf16 accumulator register).
uint32_t sum_in_bf16(const std::vector<uint32_t>& t) {
  float s = 0;
  for (uint32_t v : t) s = num::bf16_to_f32(num::f32_to_bf16(s + fval(v)));
  return fbits(s);
}

enum class SbBug { kNone, kNoFactor8, kGroupModulo, kZeroExtendedInt4 };
Kernel scale_bias_port(SbBug bug, SumOrder order) {
  return [bug, order](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& w = in.at("weight");
    const Tensor& sc = in.at("scale");
    const Tensor* pgs = opt_in(in, "per_group_scale");
    const int64_t e = w.dim(0), k = w.dim(1), n = w.dim(2);
    const int64_t g = pgs ? pgs->dim(1) : 1, kg = k / g;
    Tensor o(DType::kF32, {e, n});
    std::vector<uint32_t> terms(static_cast<size_t>(k));
    for (int64_t x = 0; x < e; ++x)
      for (int64_t j = 0; j < n; ++j) {
        const uint32_t s = f32_at(sc, x * n + j);
        for (int64_t kk = 0; kk < k; ++kk) {
          int32_t wv = w.data<int8_t>()[(x * k + kk) * n + j];
          if (bug == SbBug::kZeroExtendedInt4) wv &= 0xF;
          uint32_t wh = fbits(static_cast<float>(wv));
          if (pgs) {
            const int64_t grp = bug == SbBug::kGroupModulo ? kk % g : kk / kg;
            wh = fmul(wh, f32_at(*pgs, (x * g + grp) * n + j));
          }
          terms[static_cast<size_t>(kk)] = fmul(wh, s);
        }
        const uint32_t acc = order(terms);
        o.data<uint32_t>()[x * n + j] = bug == SbBug::kNoFactor8 ? acc : fmul(fbits(8.0f), acc);
      }
    out["scale_bias"] = o;
  };
}
Kernel rank_sum_port(SumOrder order, bool first_column_only) {
  return [order, first_column_only](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& sb = in.at("scale_bias");
    const int64_t rows = sb.dim(0) * sb.dim(1), c = sb.dim(2);
    Tensor o(DType::kF32, {sb.dim(0), sb.dim(1)});
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<uint32_t> t(sb.data<uint32_t>() + r * c,
                              sb.data<uint32_t>() + r * c + (first_column_only ? 1 : c));
      o.data<uint32_t>()[r] = order(t);
    }
    out["scale_bias_sum"] = o;
  };
}

// ---- npu_dynamic_quant: a scalar port with selectable bugs -------------------------------------
enum class DqBug { kNone, kAmaxNoAbs, kSmoothAfterAmax, kAmaxTailDropped, kGroupOffByOne };
Kernel dynamic_quant_port(DqBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& x = in.at("x");
    const Tensor* smooth = opt_in(in, "smooth_scales");
    const Tensor* gi = opt_in(in, "group_index");
    const DynQuantFormula formula =
        parse_dyn_quant_formula(param_str(p, "formula", "mul_reciprocal"));
    const num::Round rounding = num::parse_round(param_str(p, "rounding", "rint"));
    const bool int4 = param_str(p, "dst_type", "int8") != "int8";
    const int bits = int4 ? 4 : 8;
    const uint32_t qmax = fbits(int4 ? 7.0f : 127.0f);
    const int64_t h = x.dim(-1), rows = x.numel() / h;
    Tensor codes(DType::kI8, x.shape());
    Shape rs(x.shape().begin(), x.shape().end() - 1);
    Tensor scale(DType::kF32, rs);
    std::vector<uint32_t> row(static_cast<size_t>(h)), raw(static_cast<size_t>(h));
    for (int64_t r = 0; r < rows; ++r) {
      int64_t g = 0;
      if (gi) {
        const int32_t* e = gi->data<int32_t>();
        g = gi->numel() - 1;
        for (int64_t q = 0; q < gi->numel(); ++q)
          if (bug == DqBug::kGroupOffByOne ? r <= e[q] : r < e[q]) {
            g = q;
            break;
          }
      }
      for (int64_t i = 0; i < h; ++i) {
        raw[static_cast<size_t>(i)] = f32_at(x, r * h + i);
        row[static_cast<size_t>(i)] =
            smooth ? fmul(raw[static_cast<size_t>(i)], f32_at(*smooth, g * h + i))
                   : raw[static_cast<size_t>(i)];
      }
      // amax over the row. kAmaxTailDropped: 32 lanes per iteration, the h % 32 tail skipped.
      const std::vector<uint32_t>& src = bug == DqBug::kSmoothAfterAmax ? raw : row;
      const int64_t end = bug == DqBug::kAmaxTailDropped && h > 32 ? h / 32 * 32 : h;
      uint64_t m = 0;
      for (int64_t i = 0; i < end; ++i) {
        const uint32_t v = src[static_cast<size_t>(i)];
        m = num::fp_max_propagate_nan(kF32, m, bug == DqBug::kAmaxNoAbs ? v : num::fp_abs(kF32, v));
      }
      const uint32_t amax = static_cast<uint32_t>(m);
      uint32_t* sc = scale.data<uint32_t>() + r;
      int8_t* c = codes.data<int8_t>() + r * h;
      if (formula == DynQuantFormula::kDivScale) {
        *sc = fdiv(amax, qmax);
        for (int64_t i = 0; i < h; ++i)
          c[i] = static_cast<int8_t>(
              num::float_to_int(kF32, fdiv(row[static_cast<size_t>(i)], *sc), rounding, bits));
        continue;
      }
      const uint32_t mult = fdiv(qmax, amax);
      for (int64_t i = 0; i < h; ++i)
        c[i] = static_cast<int8_t>(
            num::float_to_int(kF32, fmul(row[static_cast<size_t>(i)], mult), rounding, bits));
      *sc = formula == DynQuantFormula::kMulReciprocal ? fdiv(fbits(1.0f), mult)
                                                       : fmul(amax, fdiv(fbits(1.0f), qmax));
    }
    if (!int4) {
      out["y"] = codes;
    } else {
      std::vector<int64_t> v(static_cast<size_t>(codes.numel()));
      for (int64_t i = 0; i < codes.numel(); ++i)
        v[static_cast<size_t>(i)] = codes.data<int8_t>()[i];
      out["y"] = pack_npu_int4(v, x.shape(), PackBug::kNone);
    }
    out["scale"] = scale;
  };
}

// ---- npu_dynamic_quant_asymmetric --------------------------------------------------------------
enum class AsymBug { kNone, kOffsetSign, kNoEps };
Kernel asym_port(AsymBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& x = in.at("x");
    const Tensor* smooth = opt_in(in, "smooth_scales");
    const Tensor* gi = opt_in(in, "group_index");
    const bool int4 = param_str(p, "dst_type", "int8") != "int8";
    const int bits = int4 ? 4 : 8;
    const uint32_t span = fbits(int4 ? 15.0f : 255.0f), dst_max = fbits(int4 ? 7.0f : 127.0f);
    const int64_t h = x.dim(-1), rows = x.numel() / h;
    Shape rs(x.shape().begin(), x.shape().end() - 1);
    Tensor scale(DType::kF32, rs), offset(DType::kF32, rs);
    std::vector<int64_t> codes(static_cast<size_t>(x.numel()));
    std::vector<uint32_t> row(static_cast<size_t>(h));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t g = smooth_group_of_row(gi, r);
      for (int64_t i = 0; i < h; ++i)
        row[static_cast<size_t>(i)] =
            smooth ? fmul(f32_at(x, r * h + i), f32_at(*smooth, g * h + i)) : f32_at(x, r * h + i);
      uint64_t hi = row[0], lo = row[0];
      for (int64_t i = 1; i < h; ++i) {
        hi = num::fp_max_propagate_nan(kF32, hi, row[static_cast<size_t>(i)]);
        lo = num::fp_min_propagate_nan(kF32, lo, row[static_cast<size_t>(i)]);
      }
      uint64_t sc = num::fp_div(kF32, num::fp_sub(kF32, hi, lo), span);
      if (bug != AsymBug::kNoEps) sc = num::fp_max_propagate_nan(kF32, sc, fbits(1e-12f));
      const uint32_t hs = fdiv(static_cast<uint32_t>(hi), static_cast<uint32_t>(sc));
      const uint32_t off = bug == AsymBug::kOffsetSign ? fsub(hs, dst_max) : fsub(dst_max, hs);
      scale.data<uint32_t>()[r] = static_cast<uint32_t>(sc);
      offset.data<uint32_t>()[r] = off;
      const uint32_t inv = fdiv(fbits(1.0f), static_cast<uint32_t>(sc));
      for (int64_t i = 0; i < h; ++i)
        codes[static_cast<size_t>(r * h + i)] = num::float_to_int(
            kF32, fadd(fmul(row[static_cast<size_t>(i)], inv), off), num::Round::kRint, bits);
    }
    if (!int4) {
      Tensor y(DType::kI8, x.shape());
      for (size_t i = 0; i < codes.size(); ++i) y.data<int8_t>()[i] = static_cast<int8_t>(codes[i]);
      out["y"] = y;
    } else {
      out["y"] = pack_npu_int4(codes, x.shape(), PackBug::kNone);
    }
    out["scale"] = scale;
    out["offset"] = offset;
  };
}

// ---- npu_quantize: the int8 cast without saturation --------------------------------------------
Kernel quantize_no_saturation() {
  return then("npu_quantize", [](const Params& p, const TensorMap&, TensorMap& out) {
    if (param_str(p, "dtype", "qint8") != "qint8") return;
    const Tensor& v = out.at("value");
    Tensor& y = out.at("y");
    for (int64_t i = 0; i < v.numel(); ++i)  // int32 -> int8 by truncation (wraps)
      y.data<int8_t>()[i] = static_cast<int8_t>(
          num::wrap_to_bits(num::float_to_int(kF32, v.bits_at(i), num::Round::kRint, 32), 8));
  });
}
// npu_quantize_quint4x2 compiled with FP contraction: x*s + o as one FMA.
Kernel quint4x2(bool fma) {
  return [fma](const Params& p, const TensorMap& in, TensorMap& out) {
    const int axis = static_cast<int>(param_int(p, "axis", -1));
    const Int4Overflow ov = parse_int4_overflow(param_str(p, "int4_overflow", "saturate"));
    const Tensor scaled =
        ref::npu_quantize_scaled(in.at("x"), in.at("scales"), opt_in(in, "zero_points"), axis, fma);
    const Tensor v = ref::npu_quantize_int4_values(scaled, ov);
    std::vector<int64_t> c(static_cast<size_t>(v.numel()));
    for (int64_t i = 0; i < v.numel(); ++i) c[static_cast<size_t>(i)] = v.data<int8_t>()[i];
    out["packed"] = pack_npu_int4(c, v.shape(), PackBug::kNone);
  };
}

// ---- NZ layouts --------------------------------------------------------------------------------
enum class NzBug { kNone, kN0Halved, kPaddingNotZeroed };
Kernel nd_to_nz_mutant(NzBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& nd = in.at("nd");
    const std::string op = "nd_to_nz";
    const NzLayout l = nz_layout(parse_nz_dtype(op, param_str(p, "dtype", "")),
                                 parse_fp32_nz_c0(op, param_str(p, "fp32_c0", "torch_npu_16")));
    const Tensor good = opt::nd_to_nz(nd, l);  // only for the storage shape
    Tensor o(good.dtype(), good.shape());
    const size_t sz = dtype_size(nd.dtype());
    if (bug == NzBug::kPaddingNotZeroed) std::memset(o.bytes(), 0x5A, o.nbytes());
    const int64_t m = nd.dim(-2), n = nd.dim(-1), m1 = (m + 15) / 16;
    const int64_t n0 = bug == NzBug::kN0Halved && l.dtype == NzDtype::kInt8 ? 16 : l.n0;
    const int64_t batches = m * n != 0 ? nd.numel() / (m * n) : 0;
    const int64_t per_batch = o.numel() / std::max<int64_t>(batches, 1);
    for (int64_t b = 0; b < batches; ++b)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          int64_t dst = ((j / n0 * m1 + i / 16) * 16 + i % 16) * n0 + j % n0;
          if (dst >= per_batch) continue;  // a wrong n0 can index past the batch's block
          dst += b * per_batch;
          std::memcpy(o.bytes() + dst * sz, nd.bytes() + ((b * m + i) * n + j) * sz, sz);
        }
    out["nz"] = o;
  };
}
// KV cache ND (blocks, block_size, heads, head_size) -> NZ (blocks, heads, head_size/32,
// block_size, 32). Bug: the heads and head-chunk axes are swapped in the destination index.
Kernel kv_nd_to_nz(bool swapped) {
  return [swapped](const Params&, const TensorMap& in, TensorMap& out) {
    const Tensor& nd = in.at("cache_nd");
    const int64_t nb = nd.dim(0), bs = nd.dim(1), nh = nd.dim(2), hs = nd.dim(3), c = hs / 32;
    Tensor o(DType::kI8, {nb, nh, c, bs, 32});
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t s = 0; s < bs; ++s)
        for (int64_t hh = 0; hh < nh; ++hh)
          for (int64_t d = 0; d < hs; ++d)
            o.data<int8_t>()
                [(swapped ? ((b * c + d / 32) * nh + hh) : ((b * nh + hh) * c + d / 32)) * bs * 32 +
                 s * 32 + d % 32] = nd.data<int8_t>()[((b * bs + s) * nh + hh) * hs + d];
    out["cache_nz"] = o;
  };
}

// ---- npu_weight_quant_batchmatmul: a port with an open summation order -------------------------
using FloatOrder = std::function<float(const std::vector<float>&)>;
float order_forward(const std::vector<float>& t) {
  float s = 0;
  for (float v : t) s = s + v;
  return s;
}
float order_backward(const std::vector<float>& t) {
  float s = 0;
  for (size_t i = t.size(); i-- > 0;) s = s + t[i];
  return s;
}
float pairwise_v(const float* t, size_t n) {
  if (n == 0) return 0;
  if (n == 1) return t[0];
  return pairwise_v(t, n / 2) + pairwise_v(t + n / 2, n - n / 2);
}
float order_blocked16(const std::vector<float>& t) {
  float total = 0;
  for (size_t i = 0; i < t.size(); i += 16) {
    float part = 0;
    for (size_t j = i; j < std::min(t.size(), i + 16); ++j) part = part + t[j];
    total = total + part;
  }
  return total;
}

enum class WqBug {
  kNone,
  kFp16Accumulation,    // the accumulator is an x-dtype register
  kOffsetSubtracted,    // (w - offset) * scale
  kGroupOffByOne,       // group of row k computed as (k + 1) / G
  kTransposedScale,     // the [G, N] scale read as [N, G]
  kRequantOffsetFirst,  // requant: (acc + quant_offset) * quant_scale
  kInt4NibbleSwap,      // int4 weights unpacked high nibble first
};
Kernel wqbmm_port(WqBug bug, FloatOrder order, bool bias_first) {
  return [=](const Params& p, const TensorMap& in, TensorMap& out) {
    WqbmmArgs a;
    a.x = &in.at("x");
    a.weight = &in.at("weight");
    a.antiquant_scale = &in.at("antiquant_scale");
    a.antiquant_offset = opt_in(in, "antiquant_offset");
    a.quant_scale = opt_in(in, "quant_scale");
    a.quant_offset = opt_in(in, "quant_offset");
    a.bias = opt_in(in, "bias");
    WqbmmConfig cfg;
    cfg.group_size = param_int(p, "group_size", 0);
    cfg.requant = parse_wqbmm_requant(param_str(p, "requant", "fixpipe"));
    cfg.antiquant = parse_wqbmm_antiquant(param_str(p, "antiquant", "x_dtype"));
    const WqbmmShape s = check_wqbmm_inputs(a, cfg);
    Tensor wv = ref::wqbmm_weight_values(*a.weight);
    if (bug == WqBug::kInt4NibbleSwap && s.int4)
      for (int64_t i = 0; i + 1 < wv.numel(); i += 2)
        std::swap(wv.data<int8_t>()[i], wv.data<int8_t>()[i + 1]);
    std::vector<float> w(static_cast<size_t>(s.k * s.n));
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t n = 0; n < s.n; ++n) {
        int64_t idx = s.param_index(k, n);
        if (s.mode == WqbmmScaleMode::kPerGroup) {
          int64_t g = s.group_of(k);
          if (bug == WqBug::kGroupOffByOne) g = std::min((k + 1) / s.group_size, s.groups - 1);
          // Transposed: the kernel takes the [G, N] tensor for [N, G]: (n, g) at n * G + g.
          idx = bug == WqBug::kTransposedScale ? n * s.groups + g : g * s.n + n;
        }
        uint16_t off = a.antiquant_offset ? a.antiquant_offset->data<uint16_t>()[idx] : 0;
        if (bug == WqBug::kOffsetSubtracted) off ^= 0x8000;
        const uint16_t bits = ref::wqbmm_antiquant(
            s.xdt, wv.data<int8_t>()[k * s.n + n], a.antiquant_scale->data<uint16_t>()[idx],
            a.antiquant_offset ? &off : nullptr, cfg.antiquant);
        w[static_cast<size_t>(k * s.n + n)] =
            fval(static_cast<uint32_t>(num::convert(fmt(s.xdt), bits, kF32)));
      }
    Tensor y(s.quant_out ? DType::kI8 : s.xdt, {s.m, s.n});
    Tensor acc_stage(DType::kF32, {s.m, s.n});  // the bounded intermediate, checked too
    std::vector<float> terms;
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t n = 0; n < s.n; ++n) {
        terms.clear();
        const float bias = a.bias ? fval(f32_at(*a.bias, n)) : 0.0f;
        if (a.bias && bias_first) terms.push_back(bias);
        for (int64_t k = 0; k < s.k; ++k)
          terms.push_back(fval(f32_at(*a.x, i * s.k + k)) * w[static_cast<size_t>(k * s.n + n)]);
        if (a.bias && !bias_first) terms.push_back(bias);
        float acc;
        if (bug == WqBug::kFp16Accumulation) {
          acc = 0;
          for (float t : terms)
            acc = fval(static_cast<uint32_t>(
                num::convert(fmt(s.xdt), num::convert(kF32, fbits(acc + t), fmt(s.xdt)), kF32)));
        } else {
          acc = order(terms);
        }
        const int64_t e = i * s.n + n;
        acc_stage.data<float>()[e] = acc;
        if (!s.quant_out) {
          y.data<uint16_t>()[e] = static_cast<uint16_t>(num::convert(kF32, fbits(acc), fmt(s.xdt)));
          continue;
        }
        const int64_t qi = a.quant_scale->numel() == 1 ? 0 : n;
        const uint32_t qs = a.quant_scale->data<uint32_t>()[qi];
        uint32_t qo = a.quant_offset ? a.quant_offset->data<uint32_t>()[qi] : 0;
        uint32_t accb = fbits(acc);
        if (bug == WqBug::kRequantOffsetFirst && a.quant_offset) {
          accb = fadd(accb, qo);
          qo = 0;
        }
        y.data<int8_t>()[e] =
            ref::wqbmm_requant(accb, qs, a.quant_offset ? &qo : nullptr, cfg.requant);
      }
    out["acc"] = acc_stage;
    out["y"] = y;
  };
}

// ---- npu_quant_matmul: the optimized GEMM's int32 accumulator, then a port of the epilogue -----
enum class QmmBug {
  kNone,
  kBiasBeforePertoken,   // + float bias, then * pertoken_scale
  kInt32BiasAfterScale,  // the int32 bias added in fp32 after the dequant
  kPertokenIgnored,      // pertoken_scale never applied
  kInt8NoSaturation,     // s9 + offset cast to int8 by truncation
  kPertokenTwice,        // pertoken_scale applied by the fused epilogue and again after it
};
Kernel quant_matmul_port(QmmBug bug) {
  Kernel k = optimized("npu_quant_matmul");
  return [k, bug](const Params& p, const TensorMap& in, TensorMap& out) {
    TensorMap full;
    k(p, in, full);
    QuantMatmulConfig cfg;
    cfg.output_dtype = parse_dtype(param_str(p, "output_dtype", "int8"));
    cfg.opplugin_fp19 = param_str(p, "opplugin_fp19", "true") == "true";
    cfg.fixpipe = parse_fixpipe_precision(param_str(p, "fixpipe_precision", "fp32"));
    const Tensor* offset = opt_in(in, "offset");
    const Tensor* pertoken = opt_in(in, "pertoken_scale");
    const Tensor* bias = opt_in(in, "bias");
    const QuantMatmulPlan plan =
        plan_quant_matmul(in.at("x1"), in.at("x2"), in.at("scale"), offset, pertoken, bias, cfg);
    const bool exact =
        plan.path == QuantMatmulPath::kFixpipe && cfg.fixpipe == FixpipePrecision::kExact;
    if (plan.path == QuantMatmulPath::kInt32Out || exact) {  // no fp32 epilogue to port
      out["out"] = full.at("out");
      return;
    }
    const QuantMatmulColumnParams col = quant_matmul_column_params(plan, in.at("scale"), offset);
    const Tensor& acc = full.at("acc");
    const DType odt = cfg.output_dtype;
    Tensor o(odt, plan.out_shape);
    for (int64_t e = 0; e < acc.numel(); ++e) {
      const int64_t j = e % plan.n, i = (e / plan.n) % plan.m;
      int32_t a = acc.data<int32_t>()[e];
      uint32_t late_bias = 0;
      bool add_late = false;
      if (plan.bias_int32) {
        if (bug == QmmBug::kInt32BiasAfterScale) {
          late_bias = fbits(static_cast<float>(bias->data<int32_t>()[j]));
          add_late = true;
        } else {
          a = static_cast<int32_t>(static_cast<uint32_t>(a) +
                                   static_cast<uint32_t>(bias->data<int32_t>()[j]));
        }
      }
      uint32_t v = fmul(fbits(static_cast<float>(a)), col.scale_bits[static_cast<size_t>(j)]);
      if (add_late) v = fadd(v, late_bias);
      const uint32_t fb = plan.bias_float ? f32_at(*bias, j) : 0;
      if (plan.bias_float && bug == QmmBug::kBiasBeforePertoken) v = fadd(v, fb);
      if (plan.has_pertoken && bug != QmmBug::kPertokenIgnored)
        v = fmul(v, pertoken->data<uint32_t>()[i]);
      if (plan.has_pertoken && bug == QmmBug::kPertokenTwice)
        v = fmul(v, pertoken->data<uint32_t>()[i]);
      if (plan.bias_float && bug != QmmBug::kBiasBeforePertoken) v = fadd(v, fb);
      if (odt == DType::kF32) {
        o.data<uint32_t>()[e] = v;
      } else if (odt == DType::kF16 || odt == DType::kBF16) {
        o.data<uint16_t>()[e] =
            static_cast<uint16_t>(num::convert(kF32, v, fmt(odt), num::Round::kRint));
      } else {
        const int32_t s9 = static_cast<int32_t>(
            std::clamp<int64_t>(num::float_to_int(kF32, v, num::Round::kRint, 32), -256, 255));
        const int32_t r = s9 + col.offset9[static_cast<size_t>(j)];
        o.data<int8_t>()[e] = bug == QmmBug::kInt8NoSaturation
                                  ? static_cast<int8_t>(r)
                                  : static_cast<int8_t>(std::clamp(r, -128, 127));
      }
    }
    out["out"] = o;
  };
}

// ---- index ops
// -----------------------------------------------------------------------------------
Kernel count_to_cumsum_exclusive() {
  return then("group_list_convert", [](const Params& p, const TensorMap& in, TensorMap& out) {
    if (param_str(p, "src", "cumsum") != "count" || param_str(p, "dst", "count") != "cumsum")
      return;
    const Tensor& g = in.at("group_list");
    Tensor& o = out.at("group_list");
    int64_t s = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {  // exclusive scan: the running sum before e
      o.data<int64_t>()[i] = s;
      s += g.data<int64_t>()[i];
    }
  });
}
Kernel expert_map_global_ids() {
  return then("determine_expert_map", [](const Params& p, const TensorMap&, TensorMap& out) {
    if (param_str(p, "strategy", "linear") != "round_robin") return;
    Tensor& m = out.at("expert_map");
    for (int64_t e = 0; e < m.numel(); ++e)
      if (m.data<int32_t>()[e] >= 0) m.data<int32_t>()[e] = static_cast<int32_t>(e);
  });
}
enum class EplbBug { kNone, kKMajorPosition, kNoPeriod };
Kernel eplb_map_mutant(EplbBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& ids = in.at("topk_ids");
    const Tensor& l2p = in.at("logical_to_physical_map");
    const Tensor& cnt = in.at("logical_replica_count");
    const int64_t t_rows = ids.dim(0), k = ids.dim(1), reps = l2p.dim(1);
    const int64_t rank = param_int(p, "ep_rank", 0);
    const bool flat =
        param_str(p, "replica_select", "ascend_routing_table") == "vllm_flat_position";
    Tensor o(ids.dtype(), ids.shape());
    for (int64_t t = 0; t < t_rows; ++t)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = t * k + j, l = ids.int_at(e), c = std::max<int64_t>(cnt.int_at(l), 1);
        int64_t slot;
        if (flat)
          slot = (bug == EplbBug::kKMajorPosition ? j * t_rows + t : e) % c;
        else
          slot = ((bug == EplbBug::kNoPeriod ? t : t % 1024) + rank + l) % c;
        const int64_t phys = l2p.int_at(l * reps + slot);
        if (o.dtype() == DType::kI32)
          o.data<int32_t>()[e] = static_cast<int32_t>(phys);
        else
          o.data<int64_t>()[e] = phys;
      }
    out["physical_ids"] = o;
  };
}

// ---- MoE dispatch and combine (npu_moe_init_routing*, npu_moe_finalize_routing,
// npu_moe_token_unpermute) --------------------------------------------------------------------

enum class RouteBug {
  kNone,
  kTiesReversed,       // unstable sort: each expert's rows in reverse flat-position order
  kCumsumCountSwap,    // expert_tokens type 0 written as counts, type 1 as the cumsum
  kRangeEndInclusive,  // active test start <= id <= end
  kCapacityOffByOne,   // drop-pad keeps capacity - 1 rows per expert (j + 1 >= C dropped)
};

// Positions [0, n) sorted by key with a counting sort; ties in increasing position (the stable
// sort) or, with kTiesReversed, in decreasing position (a bucket filled from its end).
std::vector<int32_t> route_sort(const std::vector<int64_t>& key, const std::vector<int32_t>& order,
                                RouteBug bug) {
  std::vector<int32_t> perm(order);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return key[a] < key[b]; });
  if (bug == RouteBug::kTiesReversed)
    for (size_t i = 0; i < perm.size();) {
      size_t j = i;
      while (j < perm.size() && key[perm[j]] == key[perm[i]]) ++j;
      std::reverse(perm.begin() + static_cast<std::ptrdiff_t>(i),
                   perm.begin() + static_cast<std::ptrdiff_t>(j));
      i = j;
    }
  return perm;
}

void copy_row_bytes(const Tensor& x, int64_t src, Tensor& out, int64_t dst) {
  const size_t rb = static_cast<size_t>(x.dim(1)) * dtype_size(x.dtype());
  std::memcpy(out.bytes() + dst * static_cast<int64_t>(rb),
              x.bytes() + src * static_cast<int64_t>(rb), rb);
}

// A scalar port of npu_moe_init_routing (v1) with one bug.
Kernel init_routing_v1_port(RouteBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& x = in.at("x");
    const Tensor& row_idx = in.at("row_idx");
    const Tensor& ids = in.at("expert_idx");
    const int64_t n = x.dim(0), k = ids.dim(1), nk = n * k;
    const bool by_value = param_str(p, "tie_order", "flat_position") == "row_idx_value";
    std::vector<int64_t> key(static_cast<size_t>(nk));
    std::vector<int32_t> order(static_cast<size_t>(nk));
    for (int64_t q = 0; q < nk; ++q) key[q] = ids.int_at(q);
    for (int64_t q = 0; q < nk; ++q) {
      if (by_value)
        order[row_idx.int_at(q)] = static_cast<int32_t>(q);  // positions by row_idx value
      else
        order[q] = static_cast<int32_t>(q);
    }
    const std::vector<int32_t> perm = route_sort(key, order, bug);
    const int64_t rows_out = std::min(n, param_int(p, "active_num", 0)) * k;
    Tensor eei(DType::kI32, {nk}), eri(DType::kI32, {nk}), ex(x.dtype(), {rows_out, x.dim(1)});
    for (int64_t i = 0; i < nk; ++i) {
      eei.data<int32_t>()[i] = static_cast<int32_t>(key[perm[i]]);
      const int64_t src = row_idx.int_at(perm[i]);
      eri.data<int32_t>()[src] = static_cast<int32_t>(i);
      if (i < rows_out) copy_row_bytes(x, src % n, ex, i);
    }
    out["sorted_position"] = Tensor::from<int32_t>({nk}, perm);
    out["expanded_expert_idx"] = eei;
    out["expanded_row_idx"] = eri;
    out["expanded_x"] = ex;
  };
}

// A scalar port of npu_moe_init_routing_v2 with one bug: sort, row index, expert_tokens,
// drop-pad and the unquantized copy. quant_mode 0/1 rows are quantized by the optimized kernel
// (the port's own sort and index stages are kept): the bugs here are in the routing, not the
// quantization.
Kernel init_routing_v2_port(RouteBug bug) {
  Kernel quant = optimized("npu_moe_init_routing_v2");
  return [bug, quant](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& x = in.at("x");
    const Tensor& ids = in.at("expert_idx");
    const Tensor* scale = opt_in(in, "scale");
    const int64_t n = ids.dim(0), k = ids.dim(1), nk = n * k, h = x.dim(1);
    const int64_t e_num = param_int(p, "expert_num", -1);
    int64_t start = 0, end = e_num;
    if (p.contains("active_expert_range"))
      start = p["active_expert_range"][0].get<int64_t>(),
      end = p["active_expert_range"][1].get<int64_t>();
    const int64_t end_test = bug == RouteBug::kRangeEndInclusive ? end + 1 : end;
    std::vector<int64_t> key(static_cast<size_t>(nk));
    std::vector<int32_t> order(static_cast<size_t>(nk));
    int64_t total = 0;
    for (int64_t q = 0; q < nk; ++q) {
      const int64_t id = ids.int_at(q);
      key[q] = id < start ? INT32_MAX : id;
      order[q] = static_cast<int32_t>(q);
      total += id >= start && id < end_test;
    }
    const std::vector<int32_t> perm = route_sort(key, order, bug);
    Tensor sk(DType::kI32, {nk});
    for (int64_t i = 0; i < nk; ++i) sk.data<int32_t>()[i] = static_cast<int32_t>(key[perm[i]]);
    out["sorted_expert_idx"] = sk;
    out["sorted_row_idx"] = Tensor::from<int32_t>({nk}, perm);
    out["expert_tokens"] = Tensor(DType::kI64, {0});
    out["expanded_scale"] = Tensor(DType::kF32, {0});
    const bool flag =
        p.contains("expert_tokens_num_flag") && p["expert_tokens_num_flag"].get<bool>();
    if (param_int(p, "drop_pad_mode", 0) == 1) {
      const int64_t cap = param_int(p, "expert_capacity", -1);
      std::vector<int64_t> counts(static_cast<size_t>(e_num), 0);
      Tensor eri(DType::kI32, {nk}), ex(x.dtype(), {e_num, cap, h});
      Tensor es(DType::kF32, {scale ? e_num * cap : 0});
      std::fill_n(eri.data<int32_t>(), nk, -1);
      std::memset(ex.bytes(), 0, ex.nbytes());
      if (scale) std::fill_n(es.data<float>(), e_num * cap, 0.0f);
      for (int64_t i = 0; i < nk; ++i) {
        const int64_t e = ids.int_at(perm[i]), j = counts[e]++;
        const int64_t keep = bug == RouteBug::kCapacityOffByOne ? cap - 1 : cap;
        if (j >= keep) continue;
        eri.data<int32_t>()[perm[i]] = static_cast<int32_t>(e * cap + j);
        copy_row_bytes(x, perm[i] / k, ex, e * cap + j);  // row e*C + j of [E, C, H]
        if (scale) es.data<float>()[e * cap + j] = scale->data<float>()[perm[i] / k];
      }
      out["expanded_row_idx"] = eri;
      out["expanded_x"] = ex;
      if (scale) out["expanded_scale"] = es;
      if (flag) out["expert_tokens"] = Tensor::from<int64_t>({e_num}, counts);
      return;
    }
    if (param_int(p, "row_idx_type", 0) == 0) {
      Tensor eri(DType::kI32, {nk});
      std::fill_n(eri.data<int32_t>(), nk, -1);
      for (int64_t i = 0; i < total; ++i) eri.data<int32_t>()[perm[i]] = static_cast<int32_t>(i);
      out["expanded_row_idx"] = eri;
    } else {
      out["expanded_row_idx"] =
          Tensor::from<int32_t>({total}, std::vector<int32_t>(perm.begin(), perm.begin() + total));
    }
    if (flag) {
      std::vector<int64_t> counts(static_cast<size_t>(e_num), 0);
      for (int64_t i = 0; i < total; ++i) ++counts[key[perm[i]]];
      int64_t type = param_int(p, "expert_tokens_num_type", 0);
      if (bug == RouteBug::kCumsumCountSwap && type < 2) type = 1 - type;
      if (type == 2) {
        Tensor kv(DType::kI64, {e_num, 2});
        std::fill_n(kv.data<int64_t>(), 2 * e_num, 0);
        int64_t r = 0;
        for (int64_t e = start; e < end; ++e)
          if (counts[e])
            kv.data<int64_t>()[2 * r] = e, kv.data<int64_t>()[2 * r + 1] = counts[e], ++r;
        out["expert_tokens"] = kv;
      } else {
        std::vector<int64_t> t;
        int64_t run = 0;
        for (int64_t e = start; e < end; ++e) t.push_back(type == 1 ? counts[e] : run += counts[e]);
        out["expert_tokens"] = Tensor::from<int64_t>({end - start}, t);
      }
    }
    const int64_t active = param_int(p, "active_num", -1);
    const int64_t n_out = active <= 0 ? total : std::min(active, total);
    if (param_int(p, "quant_mode", -1) != -1) {
      TensorMap q;
      quant(p, in, q);  // the quantized rows and scales of the optimized kernel
      out["expanded_x"] = q.at("expanded_x");
      out["expanded_scale"] = q.at("expanded_scale");
      return;
    }
    Tensor ex(x.dtype(), {n_out, h});
    for (int64_t i = 0; i < n_out; ++i) copy_row_bytes(x, perm[i] / k, ex, i);
    out["expanded_x"] = ex;
    if (scale) {
      std::vector<float> es(static_cast<size_t>(n_out));
      for (int64_t i = 0; i < n_out; ++i) es[i] = scale->data<float>()[perm[i] / k];
      out["expanded_scale"] = Tensor::from<float>({n_out}, es);
    }
  };
}

// quant_mode numbering swapped (op-plugin: QUANT_MODE_STATIC = 0, QUANT_MODE_DYNAMIC = 1): a
// port that runs the dynamic per-row quant for 0 (scale and offset unused) and the static quant
// for 1 (scale 1, offset 0 when the tensors are absent or not [1]).
Kernel init_routing_v2_quant_mode_swapped() {
  Kernel k = optimized("npu_moe_init_routing_v2");
  return [k](const Params& p, const TensorMap& in, TensorMap& out) {
    const int64_t mode = param_int(p, "quant_mode", -1);
    if (mode == -1) return k(p, in, out);
    Params q = p;
    TensorMap in2 = in;
    q["quant_mode"] = 1 - mode;
    if (mode == 0) {
      in2.erase("scale");
      in2.erase("offset");
    } else {
      if (!in2.count("scale") || in2.at("scale").numel() != 1)
        in2["scale"] = Tensor::from<float>({1}, {1.0f});
      if (!in2.count("offset")) in2["offset"] = Tensor::from<float>({1}, {0.0f});
    }
    k(q, in2, out);
  };
}

// A scalar port of the combine (npu_moe_finalize_routing, npu_moe_token_unpermute): the row
// index of (token i, slot j) computed by the port, then fp32 in a fixed order (skip1, skip2,
// k = 0..K-1: acc += s * (r + b)) and one cast to the output dtype.
enum class CombineBug {
  kNone,
  kIndexConventionSwapped,  // finalize: k-major and token-major src_to_dst index confused
  kMinusOneIsLastRow,       // finalize: idx -1 read Python-style as the last row
  kGatherScatterSwapped,    // unpermute: gather and scatter readings of sorted_indices confused
};

float f32_of(const Tensor& t, int64_t i) { return fval(f32_at(t, i)); }

void combine_port(const std::vector<int32_t>& row, const std::vector<int32_t>& brow, int64_t n,
                  int64_t k, const Tensor& rows, const Tensor* skip1, const Tensor* skip2,
                  const Tensor* bias, const Tensor* scales, TensorMap& out) {
  const int64_t h = rows.dim(rows.rank() - 1);
  const DType dt = rows.dtype();
  Tensor o(dt, {n, h});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < h; ++c) {
      float acc = skip1 ? f32_of(*skip1, i * h + c) : 0.0f;
      if (skip2) acc = acc + f32_of(*skip2, i * h + c);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t r = row[i * k + j];
        if (r < 0) continue;
        float v = f32_of(rows, r * h + c);
        if (bias && brow[i * k + j] >= 0) v = v + f32_of(*bias, brow[i * k + j] * h + c);
        if (scales) v = f32_of(*scales, i * k + j) * v;
        acc = acc + v;
      }
      const uint64_t b = num::convert(kF32, fbits(acc), fmt(dt));
      if (dt == DType::kF32)
        o.data<uint32_t>()[i * h + c] = static_cast<uint32_t>(b);
      else
        o.data<uint16_t>()[i * h + c] = static_cast<uint16_t>(b);
    }
  out["gathered_row"] = Tensor::from<int32_t>({n, k}, row);
  out["out"] = o;
}

Kernel finalize_port(CombineBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& rows = in.at("expanded_permuted_rows");
    const Tensor* scales = opt_in(in, "scales");
    const Tensor* ids = opt_in(in, "expert_for_source_row");
    const Tensor& s2d = in.at("expanded_src_to_dst_row");
    const int64_t nk = s2d.numel();
    const int64_t k = scales ? scales->dim(1) : ids ? ids->dim(1) : param_int(p, "k", 1);
    const int64_t n = nk / k;
    const int64_t r_rows = rows.numel() / rows.dim(rows.rank() - 1);
    bool k_major = param_int(p, "drop_pad_mode", 0) < 2;
    if (bug == CombineBug::kIndexConventionSwapped) k_major = !k_major;
    std::vector<int32_t> row(static_cast<size_t>(nk)), brow(static_cast<size_t>(nk), -1);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        int64_t r = s2d.int_at(k_major ? j * n + i : i * k + j);
        if (r < 0 && bug == CombineBug::kMinusOneIsLastRow) r = r_rows + r;
        row[i * k + j] = static_cast<int32_t>(r);
        if (r >= 0 && ids) brow[i * k + j] = static_cast<int32_t>(ids->int_at(i * k + j));
      }
    combine_port(row, brow, n, k, rows, opt_in(in, "skip1"), opt_in(in, "skip2"),
                 opt_in(in, "bias"), scales, out);
  };
}

Kernel unpermute_port(CombineBug bug) {
  return [bug](const Params& p, const TensorMap& in, TensorMap& out) {
    const Tensor& t = in.at("permuted_tokens");
    const Tensor& s = in.at("sorted_indices");
    const Tensor* probs = opt_in(in, "probs");
    const int64_t nk = s.numel(), k = probs ? probs->dim(1) : 1, n = nk / k;
    bool gather = param_str(p, "index_form", "gather") == "gather";
    if (bug == CombineBug::kGatherScatterSwapped) gather = !gather;
    std::vector<int32_t> row(static_cast<size_t>(nk));
    for (int64_t m = 0; m < nk; ++m) {
      if (gather)
        row[m] = static_cast<int32_t>(s.int_at(m));
      else
        row[s.int_at(m)] = static_cast<int32_t>(m);
    }
    combine_port(row, std::vector<int32_t>(static_cast<size_t>(nk), -1), n, k, t, nullptr, nullptr,
                 nullptr, probs, out);
  };
}

}  // namespace

// ---- expert MLP ------------------------------------------------------------------------------

// group_list type 2 read by position: pair i's count given to expert i (the key ignored); the
// optimized kernel then runs on those counts.
Kernel gmm_key_value_by_position() {
  Kernel k = optimized("npu_grouped_matmul");
  return [k](const Params& p, const TensorMap& in, TensorMap& out) {
    if (param_str(p, "group_list_type", "cumsum") != "key_value") return k(p, in, out);
    const Tensor& gl = in.at("group_list");
    const int64_t e = gl.dim(0);
    std::vector<int64_t> counts(static_cast<size_t>(e));
    for (int64_t i = 0; i < e; ++i) counts[static_cast<size_t>(i)] = gl.int_at(2 * i + 1);
    TensorMap in2 = in;
    in2["group_list"] = Tensor::from<int64_t>({e}, counts);
    Params q = p;
    q["group_list_type"] = "count";
    k(q, in2, out);
  };
}

// The requant step recomputed from the kernel's own SwiGLU and scale with the other rounding.
Kernel swiglu_requant_rounding(const std::string& op, SwigluQuantRounding r) {
  return then(op, [r](const Params&, const TensorMap&, TensorMap& out) {
    const Tensor& s = out.at("swiglu");
    const Tensor& q = out.at("scale");
    const int64_t h = s.dim(1);
    Tensor& y = out.at("y");
    for (int64_t i = 0; i < s.numel(); ++i)
      y.data<int8_t>()[i] = swiglu_code(s.data<float>()[i], q.data<float>()[i / h], r);
  });
}

// npu_swiglu / dequant_swiglu_quant with a config the port hard-codes.
Kernel swiglu_activate_right() {
  return [](const Params& p, const TensorMap& in, TensorMap& out) {
    SwigluConfig c;
    c.swiglu_mode = static_cast<int>(conf::param_int(p, "swiglu_mode", 0));
    c.activate_left = false;  // the bug
    if (c.swiglu_mode == 1) return optimized("npu_swiglu")(p, in, out);
    out["out"] = opt::npu_swiglu(in.at("x"), c);
  };
}

// dequant_swiglu_quant's SwiGLU-OAI without the clamp: a huge clamp_limit.
Kernel dsq_no_clamp() {
  Kernel k = optimized("npu_dequant_swiglu_quant");
  return [k](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    q["clamp_limit"] = 1e30;
    k(q, in, out);
  };
}

// grouped_matmul_swiglu_quant's dequant with the scales in the other order (w_scale first),
// from the kernel's int32 accumulators recomputed by the optimized grouped matmul.
Kernel gmm_swiglu_scale_order_swapped() {
  return then(
      "npu_grouped_matmul_swiglu_quant", [](const Params&, const TensorMap& in, TensorMap& out) {
        GroupedMatmulConfig gc;
        gc.output_dtype = DType::kI32;
        const Tensor acc = opt::npu_grouped_matmul(in.at("x"), in.at("weight"), nullptr, nullptr,
                                                   nullptr, in.at("group_list"), gc)
                               .acc;
        const GroupRows g = group_rows(in.at("group_list"), GroupListType::kCumsum,
                                       in.at("weight").dim(0), acc.dim(0));
        Tensor& c = out.at("dequant");
        const int64_t n2 = c.dim(1);
        for (size_t i = 0; i < g.expert.size(); ++i)
          for (int64_t r = g.begin[i]; r < g.end[i]; ++r)
            for (int64_t j = 0; j < n2; ++j)
              c.data<float>()[r * n2 + j] =
                  (static_cast<float>(acc.data<int32_t>()[r * n2 + j]) *
                   in.at("weight_scale").data<float>()[g.expert[i] * n2 + j]) *
                  in.at("x_scale").data<float>()[r];
      });
}

// The MSD split done wrong, carried through the whole optimized pipeline: the kernel runs on
// x' = 16 hi + lo + 8, whose correct split is the buggy (hi, lo) of x.
enum class MsdBug { kLowNibbleSigned, kHighNibbleTruncated };
Kernel msd_split_mutant(MsdBug bug) {
  Kernel k = optimized("w4a8_msd_grouped_matmul");
  return [k, bug](const Params& p, const TensorMap& in, TensorMap& out) {
    TensorMap in2 = in;
    Tensor& x = in2.at("x");
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int v = in.at("x").data<int8_t>()[i];
      int hi = v >> 4, lo = (v & 0xF) - 8;
      if (bug == MsdBug::kLowNibbleSigned) lo = (v & 0x8) ? (v & 0xF) - 16 : (v & 0xF);
      if (bug == MsdBug::kHighNibbleTruncated) hi = v / 16;
      x.data<int8_t>()[i] = static_cast<int8_t>(16 * hi + lo + 8);
    }
    k(p, in2, out);
  };
}

// The clamp_limit param ignored.
Kernel msd_no_clamp() {
  Kernel k = optimized("w4a8_msd_grouped_matmul");
  return [k](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    q.erase("clamp_limit");
    k(q, in, out);
  };
}

// Legitimate: a grouped matmul that writes garbage into the unspecified tail rows.
Kernel gmm_tail_rows_garbage() {
  return then("npu_grouped_matmul", [](const Params& p, const TensorMap& in, TensorMap& out) {
    const GroupRows g = group_rows(in.at("group_list"),
                                   parse_group_list_type(param_str(p, "group_list_type", "cumsum")),
                                   in.at("weight").dim(0), in.at("x").dim(0));
    for (auto& [name, t] : out) {
      if (t.rank() != 2) continue;
      const size_t row = static_cast<size_t>(t.dim(1)) * dtype_size(t.dtype());
      std::memset(t.bytes() + static_cast<size_t>(g.valid_rows) * row, 0x5A,
                  static_cast<size_t>(t.dim(0) - g.valid_rows) * row);
    }
  });
}

// ---- routing (moe_gating_top_k) and Kronecker quant ------------------------------------------

// Columns of a [rows, cols] tensor (any dtype) in reverse order.
Tensor reverse_columns(const Tensor& t) {
  Tensor r(t.dtype(), t.shape());
  const int64_t cols = t.dim(-1), rows = cols ? t.numel() / cols : 0;
  const size_t w = dtype_size(t.dtype());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      std::memcpy(r.bytes() + static_cast<size_t>(i * cols + j) * w,
                  t.bytes() + static_cast<size_t>(i * cols + cols - 1 - j) * w, w);
  return r;
}

// A router whose sort breaks exact ties towards the higher expert id (a descending sort on
// (score, id) pairs): realized as the optimized router on the expert axis reversed (groups stay
// contiguous blocks), its outputs mapped back. Cases with expert_map / log2phy / zero experts
// (whose columns are positional) run unmutated.
Kernel routing_ties_to_higher_index() {
  Kernel k = optimized("moe_gating_top_k");
  return [k](const Params& p, const TensorMap& in, TensorMap& out) {
    if (opt_in(in, "expert_map") || opt_in(in, "log2phy") || param_int(p, "zero_experts", 0)) {
      k(p, in, out);
      return;
    }
    TensorMap rin;
    rin["logits"] = reverse_columns(in.at("logits"));
    if (const Tensor* b = opt_in(in, "bias")) rin["bias"] = reverse_columns(*b);
    TensorMap rout;
    k(p, rin, rout);
    const int64_t e = in.at("logits").dim(1);
    out["scores"] = reverse_columns(rout.at("scores"));
    out["expert_weights"] = reverse_columns(rout.at("expert_weights"));
    Tensor ids = rout.at("topk_ids");
    for (int64_t i = 0; i < ids.numel(); ++i)
      ids.data<int32_t>()[i] = static_cast<int32_t>(e - 1 - ids.data<int32_t>()[i]);
    out["topk_ids"] = std::move(ids);
  };
}

// The optimized router with a numeric param replaced: f(old value) (a port hard-coding eps = 0,
// or multiplying by routed_scaling_factor twice: rsf * rsf in one fp32 multiply per weight).
Kernel routing_num_param(const std::string& key, double dflt, std::function<double(double)> f) {
  Kernel k = optimized("moe_gating_top_k");
  return [k, key, dflt, f](const Params& p, const TensorMap& in, TensorMap& out) {
    Params q = p;
    const double v = p.contains(key) ? p.at(key).get<double>() : dflt;
    q[key] = static_cast<double>(static_cast<float>(f(v)));
    k(q, in, out);
  };
}

// An ordered router emitting its top-k ascending (the sort comparator inverted at the output).
Kernel routing_ascending_order() {
  return then("moe_gating_top_k", [](const Params&, const TensorMap&, TensorMap& out) {
    Tensor& ids = out.at("topk_ids");
    const int64_t k = ids.dim(1);
    for (int64_t t = 0; t < ids.dim(0); ++t)
      std::reverse(ids.data<int32_t>() + t * k, ids.data<int32_t>() + (t + 1) * k);
  });
}

// Kronecker quant, kernel reading, with the multiplier's clip inverted: mult = (7 * clip) / amax
// instead of (7 / clip) / amax (quant_scale as the kernel's). Codes and the packed words are
// recomputed from the optimized kernel's x'' and amax.
Kernel kronecker_clip_inverted() {
  return then("npu_kronecker_quant", [](const Params& p, const TensorMap& in, TensorMap& out) {
    if (param_str(p, "formula", "kernel") != "kernel") return;
    const uint32_t clip = fbits(in.at("clip_ratio").data<float>()[0]);
    const Tensor& x2 = out.at("x_p1");
    const Tensor& amax = out.at("amax");
    Tensor& codes = out.at("codes");
    const int64_t tok = amax.numel() ? x2.numel() / amax.numel() : 0;
    for (int64_t t = 0; t < amax.numel(); ++t) {
      const uint32_t a = amax.data<uint32_t>()[t];
      const uint32_t mult = fval(a) == 0.0f ? fbits(7.0f) : fdiv(fmul(fbits(7.0f), clip), a);
      for (int64_t i = t * tok; i < (t + 1) * tok; ++i)
        codes.data<int8_t>()[i] =
            ref::kron_code(x2.data<uint16_t>()[i], mult, KronFormula::kKernel);
    }
    Tensor& o = out.at("out");
    for (int64_t w = 0; w < o.numel(); ++w) {
      int32_t v[8];
      for (int q = 0; q < 8; ++q) v[q] = codes.data<int8_t>()[w * 8 + q];
      o.data<int32_t>()[w] = ref::pack_int4_word(v);
    }
  });
}

const std::vector<Mutant>& catalogue() {
  static const std::vector<Mutant> v = [] {
    std::vector<Mutant> m;
    auto add = [&m](std::string id, std::string op, std::string bug, std::string catches,
                    Kernel k) {
      m.push_back({std::move(id), std::move(op), std::move(bug), std::move(catches), std::move(k)});
    };
    const std::string i4 = "npu_convert_weight_to_int4pack";
    add("int4pack.nibble_order_swapped", i4, "element 2i packed into the high nibble of byte i",
        "ascending_0_to_7", int4pack_mutant(PackBug::kNibbleSwap));
    add("int4pack.offset_binary", i4,
        "nibbles stored as value+8 (offset binary), not two's complement",
        "offset_binary_separator", int4pack_mutant(PackBug::kOffsetBinary));
    add("int4pack.clamp_not_wrap", i4, "out-of-range values clamped to [-8, 7] instead of wrapping",
        "wraps_vs_clamp_separator", int4pack_mutant(PackBug::kClamp));
    add("int4pack.sign_smear", i4,
        "nibble not masked: the sign-extended int32 is OR-ed in, smearing the sign upward",
        "negatives_m8_to_m1", int4pack_mutant(PackBug::kNoMask));
    add("int4pack.big_endian_words", i4, "bytes assembled big-endian inside each int32 word",
        "single_top_nibble", int4pack_mutant(PackBug::kBigEndian));
    add("int4pack.simd_tail_off_by_one", i4,
        "16-word vector loop, scalar tail loop bound off by one: the last word of a row is lost",
        "random_5x200", int4pack_mutant(PackBug::kTailOffByOne));

    const std::string vp = "vllm_ascend_pack_int4_to_int32";
    add("vllm_pack.twos_complement", vp,
        "the NPU packer reused: two's complement, not offset binary", "offset_binary_separator",
        vllm_pack_mutant(VllmPackBug::kTwosComplement));
    add("vllm_pack.wrap_not_clamp", vp, "clamp step missing: out-of-range values wrap",
        "clamp_out_of_range_int8", vllm_pack_mutant(VllmPackBug::kWrapNotClamp));
    add("vllm_pack.int8_cast_before_clamp", vp,
        "int32 weights cast to int8 before the clamp (300 -> 44 -> 7 instead of 7 from 300)",
        "clamp_vs_wrap_int32", vllm_pack_mutant(VllmPackBug::kInt8CastFirst));

    add("ct_pack.or_not_sum", "ct_pack_to_int32",
        "fields masked and OR-ed instead of summed: out-of-range values do not carry",
        "out_of_range_carries", ct_pack_mutant(CtBug::kOrNotSum));
    add("ct_pack.pad_with_value_zero", "ct_pack_to_int32",
        "padding filled with value 0 (u = 2^(b-1)) instead of u = 0", "padding_4bit_dim1",
        ct_pack_mutant(CtBug::kPadWithValueZero));
    add("ct_unpack.fields_twos_complement", "ct_unpack_from_int32",
        "fields sign-extended as two's complement instead of minus 2^(b-1)",
        "vllm_ascend_test_packed_dim_1", ct_unpack_mutant(CtBug::kFieldTwosComplement));
    add("ct_unpack.packed_dim_ignored", "ct_unpack_from_int32",
        "packed_dim ignored: always unpacks along dim 1", "vllm_ascend_test_packed_dim_0",
        ct_unpack_mutant(CtBug::kDimIgnored));
    add("llmcompressor.pair_order_swapped", "w4a8_llmcompressor_pack",
        "_pack_int4_to_int8 puts the even column in the high nibble", "ascending_columns",
        llmcompressor_pack(true));
    add("modelslim.reshape_not_transpose", "w4a8_modelslim_pack",
        "reshape (view) instead of transpose(1, 2) before the int32 view", "byte_index_pattern",
        modelslim_pack(true));
    add("w4a16.offset_not_removed", "w4a16_ct_repack_chain",
        "unpacked offset-binary fields fed to the NPU packer without subtracting 8",
        "literal_0x76543210_rows", w4a16_repack(true));

    add("scale_int64.zero_extended", "scale_from_float_to_int64",
        "fp32 bits zero-extended to int64 instead of sign-extended",
        "negative_scales_sign_extended", scale_int64(true));
    add("process_scale.sign_extended", "w4a8_process_scale",
        "uint32 bits sign-extended to int64 instead of zero-extended",
        "negative_scales_zero_extended_fp16", process_scale_sign_extended());
    add("process_scale.fp16_rounding_skipped", "w4a8_process_scale",
        "the .to(torch.float16) rounding of the scale skipped", "per_channel_not_fp16_exact_fp16",
        with_param("w4a8_process_scale", "scale_rounding", "none"));

    const std::string tq = "npu_trans_quant_param";
    add("trans_quant.fp19_not_truncated", tq, "the full fp32 scale stored: FP19 truncation missing",
        "low_bits_below_half_fp19_trunc", trans_quant_param_mutant(TqpBug::kScaleNotTruncated));
    add("trans_quant.fp19_rne_not_trunc", tq, "scale rounded to FP19 (RNE) instead of truncated",
        "low_bits_above_half_fp19_trunc", trans_quant_param_mutant(TqpBug::kScaleRne));
    add("trans_quant.offset_int9_wraps", tq,
        "offset not clamped to [-256, 255]: keeps the low 9 bits", "offset_saturation_fp19_trunc",
        trans_quant_param_mutant(TqpBug::kOffsetWraps));
    add("trans_quant.offset_half_away", tq, "offset rounded half away from zero, not half to even",
        "offset_rint_ties_fp19_trunc", trans_quant_param_mutant(TqpBug::kOffsetHalfAway));
    add("trans_quant_decode.offset_zero_extended", "npu_trans_quant_param_decode",
        "the int9 offset read zero-extended (no sign extension)", "offset_sign_extension",
        decode_offset_zero_extended());
    add("trans_quant_decode.scale_not_masked", "npu_trans_quant_param_decode",
        "all 32 low bits read as the scale (no & 0xFFFFE000)", "full_fp32_words_read_as_19_bits",
        decode_scale_not_masked());

    add("load_scale.bf16_truncated", "load_scale_to_params_dtype",
        "fp32 -> bf16/fp16 by truncation (drop the low bits) instead of RNE",
        "typical_scales_bfloat16", load_scale_mutant(NarrowBug::kTruncate));
    add("load_scale.bf16_half_up", "load_scale_to_params_dtype",
        "fp32 -> bf16 by (bits + 0x8000) >> 16: ties round up, not to even", "ties_bfloat16",
        load_scale_mutant(NarrowBug::kHalfUp));
    add("w8a8_reciprocal.fp32_then_narrow", "w8a8_static_input_scale_reciprocal",
        "1/input_scale computed in fp32 and narrowed, instead of in params_dtype",
        "separating_bfloat16_params_dtype",
        with_param("w8a8_static_input_scale_reciprocal", "reciprocal", "fp32_then_params_dtype"));

    const std::string sb = "w4a8_scale_bias";
    add("scale_bias.factor_8_missing", sb, "the factor 8 of the int4 bias correction missing",
        "eight_times_sum_small", scale_bias_port(SbBug::kNoFactor8, sum_forward));
    add("scale_bias.group_index_modulo", sb,
        "per-group scale of row k taken as group k % G instead of k / (K/G)",
        "per_group_row_mapping", scale_bias_port(SbBug::kGroupModulo, sum_forward));
    add("scale_bias.int4_zero_extended", sb, "int4 weights zero-extended (w & 0xF)",
        "signed_int4_extremes", scale_bias_port(SbBug::kZeroExtendedInt4, sum_forward));
    add("scale_bias.bf16_accumulation", sb, "the sum over k accumulated in a bf16 register",
        "fp32_per_channel_bounded", scale_bias_port(SbBug::kNone, sum_in_bf16));
    add("rank_sum.first_column_only", "w4a8_scale_bias_rank_sum",
        "only the first rank's column taken (the gate_up reading applied to down)", "grid_tp2",
        rank_sum_port(sum_forward, true));

    const std::string dq = "npu_dynamic_quant";
    add("dynamic_quant.divide_not_reciprocal", dq,
        "y = x / scale (divide) where the kernel multiplies by 127/amax",
        "formula_separator_int8_mul_reciprocal_rint", with_param(dq, "formula", "div_scale"));
    add("dynamic_quant.half_away", dq, "codes rounded half away from zero instead of half to even",
        "ties_int8_mul_reciprocal_rint", with_param(dq, "rounding", "round"));
    add("dynamic_quant.amax_without_abs", dq, "amax = max(x) instead of max(|x|)", "smooth_per_h",
        dynamic_quant_port(DqBug::kAmaxNoAbs));
    add("dynamic_quant.smooth_after_amax", dq,
        "amax taken over the raw x, the smooth scale applied only to the codes", "smooth_per_h",
        dynamic_quant_port(DqBug::kSmoothAfterAmax));
    add("dynamic_quant.amax_tail_dropped", dq,
        "amax reduction over 32-lane chunks skips the h % 32 tail", "amax_in_simd_tail_4x200",
        dynamic_quant_port(DqBug::kAmaxTailDropped));
    add("dynamic_quant.group_boundary_off_by_one", dq,
        "row r uses smooth group g with r <= group_index[g] (boundary row in the wrong group)",
        "smooth_grouped", dynamic_quant_port(DqBug::kGroupOffByOne));
    add("dynamic_quant_asym.offset_sign", "npu_dynamic_quant_asymmetric",
        "offset = max/scale - 127 (sign inverted)", "min_max_ends",
        asym_port(AsymBug::kOffsetSign));
    add("dynamic_quant_asym.no_eps", "npu_dynamic_quant_asymmetric",
        "scale not floored at 1e-12 (renormalizing without eps): a constant row divides by 0",
        "equal_row", asym_port(AsymBug::kNoEps));

    add("quantize.int8_no_saturation", "npu_quantize",
        "the int32 -> int8 cast truncates (wraps) instead of saturating", "saturation_int8_mul",
        quantize_no_saturation());
    add("quantize.div_half_away", "npu_quantize",
        "div_mode rounding half away from zero instead of half to even", "ties_div_qint8_rint",
        with_param("npu_quantize", "div_rounding", "round"));
    add("quint4x2.wrap_not_saturate", "npu_quantize_quint4x2",
        "the int4 cast keeps the low nibble instead of saturating", "legacy_w4a8_out_of_range",
        with_param("npu_quantize_quint4x2", "int4_overflow", "wrap"));
    add("quint4x2.fma_contraction", "npu_quantize_quint4x2",
        "x*scale + offset contracted into one FMA (one rounding instead of two)",
        "separate_mul_add", quint4x2(true));

    add("nd_to_nz.int8_n0_16", "nd_to_nz", "fractal row length n0 = 16 for int8 (should be 32)",
        "int8_blocks_17x33", nd_to_nz_mutant(NzBug::kN0Halved));
    add("nd_to_nz.padding_not_zeroed", "nd_to_nz",
        "the NZ buffer is not zeroed: padding keeps stale memory", "fp16_tails_20x37",
        nd_to_nz_mutant(NzBug::kPaddingNotZeroed));
    add("kv_nz.heads_and_chunks_swapped", "kv_cache_nd_to_nz",
        "KV NZ permutation writes (head chunk, head) instead of (head, head chunk)",
        "head_chunks_2x3x64x8", kv_nd_to_nz(true));

    const std::string wq = "npu_weight_quant_batchmatmul";
    add("wqbmm.fp16_accumulation", wq, "x @ W accumulated in an fp16 (x dtype) register",
        "fp16_accumulation_detector", wqbmm_port(WqBug::kFp16Accumulation, order_forward, false));
    add("wqbmm.antiquant_offset_subtracted", wq,
        "antiquant (w - offset) * scale instead of (w + offset)", "offset_plus_sign_fp16",
        wqbmm_port(WqBug::kOffsetSubtracted, order_forward, false));
    add("wqbmm.group_index_off_by_one", wq, "group of row k computed as (k + 1) / group_size",
        "per_group_fp16_k96_g32", wqbmm_port(WqBug::kGroupOffByOne, order_forward, false));
    add("wqbmm.transposed_scale", wq, "the per-group [G, N] antiquant scale read as [N, G]",
        "per_group_fp16_k96_g32", wqbmm_port(WqBug::kTransposedScale, order_forward, false));
    add("wqbmm.requant_offset_before_scale", wq,
        "requant epilogue order swapped: (acc + quant_offset) * quant_scale",
        "requant_reading_fp32", wqbmm_port(WqBug::kRequantOffsetFirst, order_forward, false));
    add("wqbmm.int4_nibble_order", wq, "int4 weights unpacked high nibble first",
        "int4_per_group_fp16", wqbmm_port(WqBug::kInt4NibbleSwap, order_forward, false));

    const std::string qm = "npu_quant_matmul";
    add("quant_matmul.bias_before_pertoken", qm,
        "epilogue order swapped: + bias before * pertoken_scale", "combo_pertoken_bf16_bias_bf16",
        quant_matmul_port(QmmBug::kBiasBeforePertoken));
    add("quant_matmul.int32_bias_after_scale", qm,
        "the int32 bias added in fp32 after the dequant instead of in the int32 accumulator",
        "combo_int64_fp16_bias_i32_fp32", quant_matmul_port(QmmBug::kInt32BiasAfterScale));
    add("quant_matmul.pertoken_ignored", qm, "pertoken_scale never applied", "combo_pertoken_bf16",
        quant_matmul_port(QmmBug::kPertokenIgnored));
    add("quant_matmul.pertoken_applied_twice", qm,
        "the scaling factor applied twice: pertoken_scale in the epilogue and again by the caller",
        "combo_pertoken_bf16", quant_matmul_port(QmmBug::kPertokenTwice));
    add("quant_matmul.int8_no_saturation", qm, "requant s9 + offset cast to int8 without clipping",
        "requant_saturation_int64", quant_matmul_port(QmmBug::kInt8NoSaturation));
    add("quant_matmul.fp19_not_applied", qm,
        "fp32 scale used as given where op-plugin converts it to FP19", "fp19_truncation_fp16_true",
        with_param(qm, "opplugin_fp19", "false"));

    add("group_list.cumsum_exclusive", "group_list_convert",
        "count -> cumsum as an exclusive scan (off by one expert)", "ut_count_to_cumsum",
        count_to_cumsum_exclusive());
    add("expert_map.global_not_local_index", "determine_expert_map",
        "round-robin map stores the global expert id instead of the local slot",
        "round_robin_10_ep4_rank1", expert_map_global_ids());
    add("eplb.k_major_position", "eplb_map_to_physical",
        "flat position of topk_ids taken k-major (j * T + t) instead of token-major (t * k + j)",
        "ut_tables_6x2_rank0_vllm_flat_position", eplb_map_mutant(EplbBug::kKMajorPosition));
    add("eplb.routing_period_missing", "eplb_map_to_physical",
        "token row not reduced modulo the 1024-row routing table",
        "period_vs_direct_modulo_3_replicas", eplb_map_mutant(EplbBug::kNoPeriod));

    const std::string ir1 = "npu_moe_init_routing", ir2 = "npu_moe_init_routing_v2";
    add("init_routing.unstable_sort", ir1,
        "unstable sort: ties between equal expert ids reordered (each expert's rows in reverse "
        "flat-position order)",
        "stable_dup_experts_flat_position", init_routing_v1_port(RouteBug::kTiesReversed));
    add("init_routing_v2.unstable_sort", ir2,
        "unstable sort: ties between equal expert ids reordered (each expert's rows in reverse "
        "flat-position order)",
        "stable_dup_experts_type1", init_routing_v2_port(RouteBug::kTiesReversed));
    add("init_routing_v2.cumsum_count_swapped", ir2,
        "expert_tokens_num_type 0 (cumsum) written as per-expert counts and 1 (count) as the "
        "cumsum",
        "stable_dup_experts_type0", init_routing_v2_port(RouteBug::kCumsumCountSwap));
    add("init_routing_v2.range_end_inclusive", ir2,
        "active_expert_range upper bound inclusive: ids equal to end routed as active",
        "inactive_range_2_6_type0", init_routing_v2_port(RouteBug::kRangeEndInclusive));
    add("init_routing_v2.capacity_off_by_one", ir2,
        "drop-pad capacity off by one: only expert_capacity - 1 rows kept per expert",
        "drop_pad_capacity_2", init_routing_v2_port(RouteBug::kCapacityOffByOne));
    add("init_routing_v2.quant_mode_swapped", ir2,
        "quant_mode 0/1 numbering swapped: 0 runs the dynamic per-row quant, 1 the static one",
        "static_quant_separator_fp16", init_routing_v2_quant_mode_swapped());
    add("finalize.index_convention_swapped", "npu_moe_finalize_routing",
        "expanded_src_to_dst_row read token-major (i*K + k) for modes 0/1 and k-major for 2/3",
        "index_convention_mode0", finalize_port(CombineBug::kIndexConventionSwapped));
    add("finalize.minus_one_is_last_row", "npu_moe_finalize_routing",
        "a -1 src_to_dst entry read Python-style as the last expanded row instead of adding 0",
        "inactive_rows_exact_float32", finalize_port(CombineBug::kMinusOneIsLastRow));
    add("unpermute.gather_scatter_swapped", "npu_moe_token_unpermute",
        "sorted_indices read as a scatter where the gather is asked (and vice versa)",
        "cycle_no_probs_gather", unpermute_port(CombineBug::kGatherScatterSwapped));
    const std::string gmm = "npu_grouped_matmul", gsq = "npu_grouped_matmul_swiglu_quant",
                      dsq = "npu_dequant_swiglu_quant", msd = "w4a8_msd_grouped_matmul";
    add("gmm.key_value_by_position", gmm,
        "group_list type 2 read by position: pair i's count given to expert i",
        "group_list_key_value", gmm_key_value_by_position());
    add("gmm_swiglu_quant.single_rounding", gsq,
        "requant y = S / q rounded once (int16 path) instead of through fp16",
        "double_rounding_search", swiglu_requant_rounding(gsq, SwigluQuantRounding::kSingleInt16));
    add("gmm_swiglu_quant.scale_order_swapped", gsq,
        "dequant as (fp32(acc) * w_scale) * x_scale instead of x_scale first",
        "groups_tail_amax_zero", gmm_swiglu_scale_order_swapped());
    add("dequant_swiglu_quant.double_rounding", dsq,
        "requant through fp16 (double rounding) instead of the int16 single rounding",
        "single_rounding_search", swiglu_requant_rounding(dsq, SwigluQuantRounding::kDoubleFp16));
    add("dequant_swiglu_quant.oai_clamp_missing", dsq, "SwiGLU-OAI without the clamp",
        "swiglu_oai_clamp", dsq_no_clamp());
    add("swiglu.activate_right", "npu_swiglu", "swish applied to the second half", "plain_fp32",
        swiglu_activate_right());
    add("msd.low_nibble_signed", msd,
        "MSD low nibble read as a signed int4 (the 8 colsum correction no longer matches)",
        "nibble_edges_groups_tail", msd_split_mutant(MsdBug::kLowNibbleSigned));
    add("msd.high_nibble_truncated", msd,
        "MSD high nibble by truncating division x / 16 instead of the arithmetic shift",
        "nibble_edges_groups_tail", msd_split_mutant(MsdBug::kHighNibbleTruncated));
    add("msd.sum_order_bias_first", msd, "16 a_hi + (a_lo + scale_bias) hard-coded",
        "sum_order_hi_lo_first", with_param(msd, "msd_sum_order", "bias_first"));
    add("msd.single_rounding", msd, "the row requant rounded once (int16 path)",
        "requant_double_fp16", with_param(msd, "requant_rounding", "single_int16"));
    add("msd.clamp_missing", msd, "the optional clamp ignored", "clamp_limit_1_5", msd_no_clamp());
    const std::string rt = "moe_gating_top_k";
    add("routing.ties_to_higher_index", rt,
        "exact ties in the top-k (and group) sort broken towards the higher expert id",
        "exact_tie_fused_ascend", routing_ties_to_higher_index());
    add("routing.renorm_without_eps", rt,
        "fused kernel renormalization w / sum(w) without the + eps (1e-20)",
        "renorm_eps_fused_ascend", routing_num_param("eps", 1e-20, [](double) { return 0.0; }));
    add("routing.scaling_twice", rt,
        "routed_scaling_factor applied twice (the old select_experts bug)",
        "scaling_twice_fused_ascend",
        routing_num_param("routed_scaling_factor", 1.0, [](double v) { return v * v; }));
    add("routing.ascending_order", rt,
        "the sorted variants' top-k emitted in ascending instead of descending order",
        "output_order_fused_ascend", routing_ascending_order());
    add("kronecker.clip_inverted", "npu_kronecker_quant",
        "kernel reading's multiplier (7 * clip) / amax instead of (7 / clip) / amax",
        "formula_reading_clip_half_kernel", kronecker_clip_inverted());
    return m;
  }();
  return v;
}

const std::vector<Variation>& legitimate_variations() {
  static const std::vector<Variation> v = [] {
    std::vector<Variation> l;
    const std::string wq = "npu_weight_quant_batchmatmul";
    l.push_back({"wqbmm.forward", wq, "port, forward fp32 sum, bias last",
                 wqbmm_port(WqBug::kNone, order_forward, false)});
    l.push_back({"wqbmm.backward_bias_first", wq, "port, reversed fp32 sum, bias first",
                 wqbmm_port(WqBug::kNone, order_backward, true)});
    l.push_back(
        {"wqbmm.pairwise", wq, "port, pairwise fp32 sum",
         wqbmm_port(
             WqBug::kNone,
             [](const std::vector<float>& t) { return pairwise_v(t.data(), t.size()); }, false)});
    l.push_back({"wqbmm.blocked16", wq, "port, 16-term blocks summed, then the blocks",
                 wqbmm_port(WqBug::kNone, order_blocked16, true)});
    l.push_back({"wqbmm.double", wq, "port, summed in double, rounded once",
                 wqbmm_port(
                     WqBug::kNone,
                     [](const std::vector<float>& t) {
                       double s = 0;
                       for (float x : t) s += x;
                       return static_cast<float>(s);
                     },
                     false)});
    const std::string sb = "w4a8_scale_bias";
    l.push_back({"scale_bias.forward", sb, "port, forward fp32 sum",
                 scale_bias_port(SbBug::kNone, sum_forward)});
    l.push_back({"scale_bias.backward", sb, "port, reversed fp32 sum",
                 scale_bias_port(SbBug::kNone, sum_backward)});
    l.push_back({"scale_bias.pairwise", sb, "port, pairwise fp32 sum",
                 scale_bias_port(SbBug::kNone, sum_pairwise)});
    l.push_back({"scale_bias.blocked8", sb, "port, 8-term blocks",
                 scale_bias_port(SbBug::kNone, [](const std::vector<uint32_t>& t) {
                   return sum_blocked(t, 8);
                 })});
    const std::string rs = "w4a8_scale_bias_rank_sum";
    l.push_back({"rank_sum.forward", rs, "port, forward", rank_sum_port(sum_forward, false)});
    l.push_back({"rank_sum.backward", rs, "port, reversed", rank_sum_port(sum_backward, false)});
    l.push_back({"rank_sum.pairwise", rs, "port, pairwise", rank_sum_port(sum_pairwise, false)});
    // The bases of the other mutants, unmutated: each must pass all its op's cases.
    l.push_back({"int4pack.port", "npu_convert_weight_to_int4pack", "scalar port",
                 int4pack_mutant(PackBug::kNone)});
    l.push_back({"vllm_pack.port", "vllm_ascend_pack_int4_to_int32", "scalar port",
                 vllm_pack_mutant(VllmPackBug::kNone)});
    l.push_back({"ct_pack.port", "ct_pack_to_int32", "scalar port", ct_pack_mutant(CtBug::kNone)});
    l.push_back(
        {"ct_unpack.port", "ct_unpack_from_int32", "scalar port", ct_unpack_mutant(CtBug::kNone)});
    l.push_back({"dynamic_quant.port", "npu_dynamic_quant", "scalar port",
                 dynamic_quant_port(DqBug::kNone)});
    l.push_back({"dynamic_quant_asym.port", "npu_dynamic_quant_asymmetric", "scalar port",
                 asym_port(AsymBug::kNone)});
    l.push_back({"llmcompressor.port", "w4a8_llmcompressor_pack", "scalar port",
                 llmcompressor_pack(false)});
    l.push_back({"modelslim.port", "w4a8_modelslim_pack", "scalar port", modelslim_pack(false)});
    l.push_back({"w4a16.port", "w4a16_ct_repack_chain", "scalar port", w4a16_repack(false)});
    l.push_back({"scale_int64.port", "scale_from_float_to_int64", "the sign-extending raw kernel",
                 scale_int64(false)});
    l.push_back({"load_scale.port", "load_scale_to_params_dtype", "scalar port (RNE)",
                 load_scale_mutant(NarrowBug::kNone)});
    l.push_back({"quint4x2.port", "npu_quantize_quint4x2", "reference steps, two roundings",
                 quint4x2(false)});
    l.push_back({"kv_nz.port", "kv_cache_nd_to_nz", "scalar port", kv_nd_to_nz(false)});
    l.push_back({"nd_to_nz.port", "nd_to_nz", "scalar port", nd_to_nz_mutant(NzBug::kNone)});
    l.push_back(
        {"eplb_map.port", "eplb_map_to_physical", "scalar port", eplb_map_mutant(EplbBug::kNone)});
    l.push_back({"quant_matmul.port", "npu_quant_matmul", "optimized GEMM, ported epilogue",
                 quant_matmul_port(QmmBug::kNone)});
    l.push_back({"init_routing.port", "npu_moe_init_routing", "scalar port (stable sort)",
                 init_routing_v1_port(RouteBug::kNone)});
    l.push_back({"init_routing_v2.port", "npu_moe_init_routing_v2",
                 "scalar port (stable sort; quantized rows from the optimized kernel)",
                 init_routing_v2_port(RouteBug::kNone)});
    l.push_back({"finalize.port", "npu_moe_finalize_routing", "scalar port, fp32 fixed order",
                 finalize_port(CombineBug::kNone)});
    l.push_back({"unpermute.port", "npu_moe_token_unpermute", "scalar port, fp32 fixed order",
                 unpermute_port(CombineBug::kNone)});
    l.push_back({"gmm.tail_rows_garbage", "npu_grouped_matmul",
                 "optimized, then garbage in the unspecified tail rows (the NPU leaves them)",
                 gmm_tail_rows_garbage()});
    return l;
  }();
  return v;
}

}  // namespace qconf::mutants
