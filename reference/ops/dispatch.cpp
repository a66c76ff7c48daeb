// Reference (executable specification) of the MoE dispatch and combine ops: see
// qconf/ops/dispatch.h. Every step is one function named after what it computes, with its source.
#include "qconf/ops/dispatch.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "qconf/numeric/bounds.h"
#include "qconf/numeric/float_format.h"
#include "qconf/numeric/fp_ops.h"
#include "qconf/numeric/rounding.h"

namespace qconf {

using num::BigInt;
using num::Exact;
using num::Round;

// ---- names -------------------------------------------------------------------------------------

std::string_view routing_tie_order_name(RoutingTieOrder o) {
  return o == RoutingTieOrder::kFlatPosition ? "flat_position" : "row_idx_value";
}
RoutingTieOrder parse_routing_tie_order(std::string_view s) {
  if (s == "flat_position") return RoutingTieOrder::kFlatPosition;
  if (s == "row_idx_value") return RoutingTieOrder::kRowIdxValue;
  throw std::invalid_argument("unknown tie_order \"" + std::string(s) +
                              "\" (expected flat_position or row_idx_value)");
}
std::string_view static_quant_precision_name(StaticQuantPrecision p) {
  return p == StaticQuantPrecision::kFp16 ? "fp16" : "fp32";
}
StaticQuantPrecision parse_static_quant_precision(std::string_view s) {
  if (s == "fp16") return StaticQuantPrecision::kFp16;
  if (s == "fp32") return StaticQuantPrecision::kFp32;
  throw std::invalid_argument("unknown static_precision \"" + std::string(s) +
                              "\" (expected fp16 or fp32)");
}
std::string_view acc_precision_name(AccPrecision a) {
  return a == AccPrecision::kFp32 ? "fp32" : "io_dtype";
}
AccPrecision parse_acc_precision(std::string_view s) {
  if (s == "fp32") return AccPrecision::kFp32;
  if (s == "io_dtype") return AccPrecision::kIoDtype;
  throw std::invalid_argument("unknown acc_precision \"" + std::string(s) +
                              "\" (expected fp32 or io_dtype)");
}
std::string_view unpermute_index_form_name(UnpermuteIndexForm f) {
  return f == UnpermuteIndexForm::kGather ? "gather" : "scatter";
}
UnpermuteIndexForm parse_unpermute_index_form(std::string_view s) {
  if (s == "gather") return UnpermuteIndexForm::kGather;
  if (s == "scatter") return UnpermuteIndexForm::kScatter;
  throw std::invalid_argument("unknown index_form \"" + std::string(s) +
                              "\" (expected gather or scatter)");
}

namespace dispatch_detail {

[[noreturn]] void fail(const std::string& op, const std::string& what) {
  throw std::invalid_argument(op + ": " + what);
}

bool is_float(DType d) { return d == DType::kF16 || d == DType::kBF16 || d == DType::kF32; }

const num::FloatFormat& fmt(DType d) {
  return d == DType::kF16 ? num::kF16 : d == DType::kBF16 ? num::kBF16 : num::kF32;
}

void check_ids(const std::string& op, const Tensor& x, const Tensor& ids, const char* name) {
  if (!is_float(x.dtype()) || x.rank() != 2)
    fail(op, "x must be float16, bfloat16 or float32 [N, H], got " + x.describe());
  if (ids.dtype() != DType::kI32 || ids.rank() != 2 || ids.dim(0) != x.dim(0))
    fail(op, std::string(name) + " must be int32 [N, K] with N = " + std::to_string(x.dim(0)) +
                 ", got " + ids.describe());
}

void check_v1(const Tensor& x, const Tensor& row_idx, const Tensor& expert_idx,
              const InitRoutingV1Config& c) {
  const std::string op = "npu_moe_init_routing";
  check_ids(op, x, expert_idx, "expert_idx");
  check_ids(op, x, row_idx, "row_idx");
  if (row_idx.shape() != expert_idx.shape())
    fail(op, "row_idx must have expert_idx's shape " + expert_idx.describe() + ", got " +
                 row_idx.describe());
  if (c.active_num < 0) fail(op, "active_num must be >= 0, got " + std::to_string(c.active_num));
  const int64_t n = x.dim(0), k = expert_idx.dim(1), nk = n * k;
  const int32_t* rows = row_idx.data<int32_t>();
  // row_idx must be a permutation of [0, N*K) (every expanded row written once).
  std::vector<char> seen(static_cast<size_t>(nk), 0);
  for (int64_t p = 0; p < nk; ++p) {
    if (rows[p] < 0 || rows[p] >= nk || seen[rows[p]])
      fail(op, "row_idx must be a permutation of [0, N*K), entry " + std::to_string(p) + " is " +
                   std::to_string(rows[p]));
    seen[rows[p]] = 1;
  }
}

}  // namespace dispatch_detail

namespace ref {
using namespace dispatch_detail;

// Step: the stable order of the flat positions by key. notes §8: "stable sort on the flat
// position" (numpy argsort kind="stable"). Confidence: doc reference code.
std::vector<int32_t> stable_sort_positions(const std::vector<int64_t>& key) {
  std::vector<int32_t> perm(key.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return key[a] < key[b]; });
  return perm;
}

// Step: per-expert counts of the active sorted ids (np.bincount(sorted[:total] - start)).
std::vector<int64_t> expert_counts(const Tensor& sorted, int64_t total, int64_t start,
                                   int64_t end) {
  std::vector<int64_t> c(static_cast<size_t>(end - start), 0);
  for (int64_t i = 0; i < total; ++i) ++c[sorted.data<int32_t>()[i] - start];
  return c;
}

namespace {

// Copies row `src` of x into row `dst` of out (same dtype): a bit copy.
void copy_row(const Tensor& x, int64_t src, Tensor& out, int64_t dst) {
  const size_t rb = static_cast<size_t>(x.dim(1)) * dtype_size(x.dtype());
  std::copy_n(x.bytes() + src * rb, rb, out.bytes() + dst * rb);
}

uint32_t to_f32_bits(DType d, uint64_t bits) {
  return d == DType::kF32 ? static_cast<uint32_t>(bits)
                          : static_cast<uint32_t>(num::convert(fmt(d), bits, num::kF32));
}

// quant_mode 0: y = sat8(RINT(x * scale + offset)) (notes §8). Precision: kFp16 = CANN ops
// golden of moe_init_routing (x, scale, offset cast to fp16; numpy fp16 Mul and Add, each
// rounded to fp16; np.rint; clip) [test]; kFp32 = the formula in fp32 [inf].
int8_t static_quant_code(DType xdt, uint64_t xbits, uint32_t scale, uint32_t offset,
                         StaticQuantPrecision p) {
  if (p == StaticQuantPrecision::kFp16) {
    const uint64_t x16 = xdt == DType::kF16 ? xbits : num::convert(fmt(xdt), xbits, num::kF16);
    const uint64_t s16 = num::convert(num::kF32, scale, num::kF16);
    const uint64_t o16 = num::convert(num::kF32, offset, num::kF16);
    const uint64_t v = num::fp_add(num::kF16, num::fp_mul(num::kF16, x16, s16), o16);
    return static_cast<int8_t>(num::float_to_int(num::kF16, v, Round::kRint, 8));
  }
  const uint64_t x32 = to_f32_bits(xdt, xbits);
  const uint64_t v = num::fp_add(num::kF32, num::fp_mul(num::kF32, x32, scale), offset);
  return static_cast<int8_t>(num::float_to_int(num::kF32, v, Round::kRint, 8));
}

// quant_mode 1: per-row dynamic int8 quant of the expanded row (notes §8; vllm_ascend_quant.md
// §C): xs = fp32(x) * smooth (fp32), amax = max|xs|, then as npu_dynamic_quant's formulas
// (qconf/ops/dynamic_quant.h): div_scale: scale = amax/127, y = RINT(xs/scale); mul_reciprocal:
// m = 127/amax, y = RINT(xs*m), scale = 1/m; db_scale: codes as mul_reciprocal, scale =
// amax*(1/127). Saturating casts, NaN -> 0 (notes §0).
uint32_t dynamic_quant_row(const uint32_t* xs, int64_t h, DynQuantFormula f, int8_t* codes) {
  using num::kF32;
  uint64_t amax = 0;
  for (int64_t i = 0; i < h; ++i)
    amax = num::fp_max_propagate_nan(kF32, amax, num::fp_abs(kF32, xs[i]));
  const uint64_t q = num::f32_bits(127.0f);
  if (f == DynQuantFormula::kDivScale) {
    const uint64_t scale = num::fp_div(kF32, amax, q);
    for (int64_t i = 0; i < h; ++i)
      codes[i] = static_cast<int8_t>(
          num::float_to_int(kF32, num::fp_div(kF32, xs[i], scale), Round::kRint, 8));
    return static_cast<uint32_t>(scale);
  }
  const uint64_t m = num::fp_div(kF32, q, amax);
  for (int64_t i = 0; i < h; ++i)
    codes[i] =
        static_cast<int8_t>(num::float_to_int(kF32, num::fp_mul(kF32, xs[i], m), Round::kRint, 8));
  if (f == DynQuantFormula::kMulReciprocal)
    return static_cast<uint32_t>(num::fp_div(kF32, num::f32_bits(1.0f), m));
  return static_cast<uint32_t>(num::fp_mul(kF32, amax, num::fp_div(kF32, num::f32_bits(1.0f), q)));
}

}  // namespace

// ---- v1
// ------------------------------------------------------------------------------------------

InitRoutingV1Stages npu_moe_init_routing(const Tensor& x, const Tensor& row_idx,
                                         const Tensor& expert_idx, const InitRoutingV1Config& c) {
  check_v1(x, row_idx, expert_idx, c);
  const int64_t n = x.dim(0), k = expert_idx.dim(1), nk = n * k;
  const int32_t* ids = expert_idx.data<int32_t>();
  const int32_t* rows = row_idx.data<int32_t>();
  // Step 1: the sort. flat_position: key (id), ties by p; row_idx_value: key (id, row_idx[p]).
  std::vector<int64_t> key(static_cast<size_t>(nk));
  for (int64_t p = 0; p < nk; ++p)
    key[p] = c.tie_order == RoutingTieOrder::kFlatPosition
                 ? int64_t{ids[p]}
                 : (int64_t{ids[p]} - INT32_MIN) * nk + rows[p];
  const std::vector<int32_t> perm = stable_sort_positions(key);
  InitRoutingV1Stages st;
  st.sorted_position = Tensor::from<int32_t>({nk}, perm);
  st.expanded_expert_idx = Tensor(DType::kI32, {nk});
  st.expanded_row_idx = Tensor(DType::kI32, {nk});
  const int64_t rows_out = std::min(n, c.active_num) * k;
  st.expanded_x = Tensor(x.dtype(), {rows_out, x.dim(1)});
  for (int64_t i = 0; i < nk; ++i) {
    // Step 2: expanded_expert_idx[i] = sorted id; src = row_idx[perm[i]];
    // expanded_row_idx[src] = i (indexed by the row_idx value, k-major j*N + t).
    st.expanded_expert_idx.data<int32_t>()[i] = ids[perm[i]];
    const int32_t src = rows[perm[i]];
    st.expanded_row_idx.data<int32_t>()[src] = static_cast<int32_t>(i);
    // Step 3: expanded_x[i] = x[src % N] for the first min(N, active_num) * K rows.
    if (i < rows_out) copy_row(x, src % n, st.expanded_x, i);
  }
  return st;
}

// ---- v2
// ------------------------------------------------------------------------------------------

}  // namespace ref

namespace dispatch_detail {
V2Plan check_v2(const Tensor& x, const Tensor& ids, const Tensor* scale, const Tensor* offset,
                const InitRoutingV2Config& c) {
  const std::string op = "npu_moe_init_routing_v2";
  check_ids(op, x, ids, "expert_idx");
  V2Plan p{};
  p.n = x.dim(0), p.k = ids.dim(1), p.h = x.dim(1), p.nk = p.n * p.k;
  if (c.expert_num <= 0) fail(op, "expert_num must be > 0, got " + std::to_string(c.expert_num));
  if (c.drop_pad_mode != 0 && c.drop_pad_mode != 1)
    fail(op, "drop_pad_mode must be 0 or 1, got " + std::to_string(c.drop_pad_mode));
  if (c.quant_mode < -1 || c.quant_mode > 1)
    fail(op, "quant_mode must be -1, 0 or 1 (MXFP/HIF8 modes are not modelled), got " +
                 std::to_string(c.quant_mode));
  if (c.drop_pad_mode == 1) {
    if (c.expert_capacity <= 0)
      fail(op,
           "drop_pad_mode 1 needs expert_capacity > 0, got " + std::to_string(c.expert_capacity));
    if (c.quant_mode != -1)
      fail(op,
           "quant_mode with drop_pad_mode 1 is not modelled (the padding rows' scale is "
           "undefined upstream)");
    p.start = 0, p.end = c.expert_num;
  } else {
    p.start = c.range_start < 0 ? 0 : c.range_start;
    p.end = c.range_end < 0 ? c.expert_num : c.range_end;
    if (!(0 <= p.start && p.start < p.end && p.end <= c.expert_num))
      fail(op, "active_expert_range must satisfy 0 <= start < end <= expert_num, got [" +
                   std::to_string(p.start) + ", " + std::to_string(p.end) + ")");
  }
  const int32_t* e = ids.data<int32_t>();
  p.total = 0;
  for (int64_t i = 0; i < p.nk; ++i) {
    if (e[i] < 0 || e[i] >= c.expert_num)
      fail(op, "expert_idx entry " + std::to_string(i) + " is " + std::to_string(e[i]) +
                   ", expected [0, expert_num = " + std::to_string(c.expert_num) + ")");
    p.total += e[i] >= p.start && e[i] < p.end;
  }
  p.n_out = c.active_num <= 0 ? p.total : std::min(c.active_num, p.total);
  auto f32vec = [&](const Tensor* t, const char* name) {
    if (t && t->dtype() != DType::kF32)
      fail(op, std::string(name) + " must be float32, got " + t->describe());
  };
  f32vec(scale, "scale");
  f32vec(offset, "offset");
  if (c.quant_mode == 0) {
    if (!scale || !offset || scale->numel() != 1 || offset->numel() != 1)
      fail(op, "quant_mode 0 (static) needs float32 scale [1] and offset [1]");
  } else if (c.quant_mode == 1) {
    if (scale &&
        !(scale->numel() == p.h ||
          (scale->rank() == 2 && scale->dim(0) == p.end - p.start && scale->dim(1) == p.h)))
      fail(op, "quant_mode 1 smooth scale must be [H], [1, H] or [end - start, H] with H = " +
                   std::to_string(p.h) + ", got " + scale->describe());
    if (offset) fail(op, "quant_mode 1 takes no offset");
  } else {
    if (scale && (scale->rank() != 1 || scale->dim(0) != p.n))
      fail(op, "scale without quant must be float32 [N], got " + scale->describe());
    if (offset) fail(op, "offset needs quant_mode 0");
  }
  return p;
}
}  // namespace dispatch_detail

namespace ref {
InitRoutingV2Stages npu_moe_init_routing_v2(const Tensor& x, const Tensor& expert_idx,
                                            const Tensor* scale, const Tensor* offset,
                                            const InitRoutingV2Config& c) {
  const V2Plan p = check_v2(x, expert_idx, scale, offset, c);
  const int32_t* ids = expert_idx.data<int32_t>();
  InitRoutingV2Stages st;
  // Step 1: the keys: experts below start become INT32_MAX (they sort last); experts >= end keep
  // their id (they sort after the active ones). Drop-pad: start = 0.
  std::vector<int64_t> key(static_cast<size_t>(p.nk));
  for (int64_t i = 0; i < p.nk; ++i) key[i] = ids[i] < p.start ? INT32_MAX : ids[i];
  // Step 2: the stable sort on the token-major flat position p = t*K + j.
  const std::vector<int32_t> perm = stable_sort_positions(key);
  st.sorted_row_idx = Tensor::from<int32_t>({p.nk}, perm);
  st.sorted_expert_idx = Tensor(DType::kI32, {p.nk});
  for (int64_t i = 0; i < p.nk; ++i)
    st.sorted_expert_idx.data<int32_t>()[i] = static_cast<int32_t>(key[perm[i]]);
  const int32_t* sorted = st.sorted_expert_idx.data<int32_t>();

  if (c.drop_pad_mode == 1) {
    // Drop-pad: the first C rows of each expert (sorted order) go to slot e*C + j, the rest are
    // dropped (-1); expanded_x is [E, C, H], zero padding (CANN golden adapter_capacity).
    const int64_t cap = c.expert_capacity, e_num = c.expert_num;
    st.expanded_row_idx = Tensor(DType::kI32, {p.nk});
    std::fill_n(st.expanded_row_idx.data<int32_t>(), p.nk, -1);
    st.expanded_x = Tensor(x.dtype(), {e_num, cap, p.h});
    Tensor flat_x(x.dtype(), {e_num * cap, p.h});
    if (scale) st.expanded_scale = Tensor(DType::kF32, {e_num * cap});
    std::vector<int64_t> used(static_cast<size_t>(e_num), 0);
    for (int64_t i = 0; i < p.nk; ++i) {
      const int32_t e = sorted[i];
      if (used[e] >= cap) continue;
      const int64_t dst = e * cap + used[e]++;
      st.expanded_row_idx.data<int32_t>()[perm[i]] = static_cast<int32_t>(dst);
      copy_row(x, perm[i] / p.k, flat_x, dst);
      if (scale) st.expanded_scale.data<float>()[dst] = scale->data<float>()[perm[i] / p.k];
    }
    std::copy_n(flat_x.bytes(), flat_x.nbytes(), st.expanded_x.bytes());
    if (c.expert_tokens_flag)  // counts before capacity, whatever the type (CANN golden)
      st.expert_tokens =
          Tensor::from<int64_t>({e_num}, expert_counts(st.sorted_expert_idx, p.nk, 0, e_num));
    return st;
  }

  // Step 3: expanded_row_idx. Gather: [N*K], -1 except expanded_row_idx[perm[i]] = i for the
  // `total` active rows; scatter: perm[:total].
  if (c.row_idx_type == RowIdxType::kGather) {
    st.expanded_row_idx = Tensor(DType::kI32, {p.nk});
    std::fill_n(st.expanded_row_idx.data<int32_t>(), p.nk, -1);
    for (int64_t i = 0; i < p.total; ++i)
      st.expanded_row_idx.data<int32_t>()[perm[i]] = static_cast<int32_t>(i);
  } else {
    st.expanded_row_idx = Tensor::from<int32_t>(
        {p.total}, std::vector<int32_t>(perm.begin(), perm.begin() + p.total));
  }
  // Step 4: expert_tokens (flag): counts of the active range; cumsum and key_value through
  // group_list_convert (key_value has expert_num rows, global ids, (0, 0) padding).
  if (c.expert_tokens_flag) {
    const std::vector<int64_t> counts =
        expert_counts(st.sorted_expert_idx, p.total, p.start, p.end);
    GroupListConversion cv;
    cv.src = GroupListType::kCount;
    cv.dst = c.expert_tokens_type;
    if (c.expert_tokens_type == GroupListType::kKeyValue) {
      std::vector<int64_t> global(static_cast<size_t>(c.expert_num), 0);
      std::copy(counts.begin(), counts.end(), global.begin() + p.start);
      st.expert_tokens = group_list_convert(Tensor::from<int64_t>({c.expert_num}, global), cv);
    } else {
      st.expert_tokens = group_list_convert(Tensor::from<int64_t>({p.end - p.start}, counts), cv);
    }
  }
  // Step 5: expanded_x[i] = x[perm[i] / K] for i < n_out, quantized per quant_mode.
  if (c.quant_mode == -1) {
    st.expanded_x = Tensor(x.dtype(), {p.n_out, p.h});
    for (int64_t i = 0; i < p.n_out; ++i) copy_row(x, perm[i] / p.k, st.expanded_x, i);
    if (scale) {
      st.expanded_scale = Tensor(DType::kF32, {p.n_out});
      for (int64_t i = 0; i < p.n_out; ++i)
        st.expanded_scale.data<float>()[i] = scale->data<float>()[perm[i] / p.k];
    }
    return st;
  }
  st.expanded_x = Tensor(DType::kI8, {p.n_out, p.h});
  int8_t* q = st.expanded_x.data<int8_t>();
  if (c.quant_mode == 0) {
    const uint32_t s = num::f32_bits(scale->data<float>()[0]);
    const uint32_t o = num::f32_bits(offset->data<float>()[0]);
    for (int64_t i = 0; i < p.n_out; ++i)
      for (int64_t j = 0; j < p.h; ++j)
        q[i * p.h + j] = static_cast<int8_t>(static_quant_code(
            x.dtype(), x.bits_at((perm[i] / p.k) * p.h + j), s, o, c.static_precision));
    return st;
  }
  st.expanded_scale = Tensor(DType::kF32, {p.n_out});
  std::vector<uint32_t> xs(static_cast<size_t>(p.h));
  for (int64_t i = 0; i < p.n_out; ++i) {
    const int64_t t = perm[i] / p.k;
    const int64_t srow = scale && scale->numel() != p.h ? sorted[i] - p.start : 0;
    for (int64_t j = 0; j < p.h; ++j) {
      uint64_t v = to_f32_bits(x.dtype(), x.bits_at(t * p.h + j));
      if (scale) v = num::fp_mul(num::kF32, v, num::f32_bits(scale->data<float>()[srow * p.h + j]));
      xs[j] = static_cast<uint32_t>(v);
    }
    const uint32_t sc = dynamic_quant_row(xs.data(), p.h, c.dyn_formula, q + i * p.h);
    std::memcpy(st.expanded_scale.data<float>() + i, &sc, 4);
  }
  return st;
}

// ---- combine: finalize_routing and token_unpermute
// ------------------------------------------------

}  // namespace ref

namespace dispatch_detail {

// Rejects Inf and NaN: an all-ones exponent field. A branch-free scan of the raw bits first (the
// optimized combine shares this plan: its inputs are hundreds of MB at real shapes), then the
// first offending element is named.
template <typename U>
bool all_finite_bits(const U* b, int64_t n, U exp_mask) {
  U bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<U>((b[i] & exp_mask) == exp_mask);
  return bad == 0;
}

void check_finite(const Combine& c, const Tensor* t, const char* name) {
  if (!t) return;
  const int64_t n = t->numel();
  switch (t->dtype()) {
    case DType::kF32:
      if (all_finite_bits<uint32_t>(t->data<uint32_t>(), n, 0x7F800000u)) return;
      break;
    case DType::kF16:
      if (all_finite_bits<uint16_t>(t->data<uint16_t>(), n, 0x7C00u)) return;
      break;
    case DType::kBF16:
      if (all_finite_bits<uint16_t>(t->data<uint16_t>(), n, 0x7F80u)) return;
      break;
    default:
      break;
  }
  const num::FloatFormat& f = fmt(t->dtype());
  for (int64_t i = 0; i < n; ++i)
    if (num::is_nan(f, t->bits_at(i)) || num::is_inf(f, t->bits_at(i)))
      fail(c.op, std::string(name) + " element " + std::to_string(i) +
                     " is not finite (non-finite inputs are not modelled)");
}

Combine finalize_plan(const FinalizeRoutingArgs& a) {
  Combine c;
  c.op = "npu_moe_finalize_routing";
  if (!a.rows || !a.src_to_dst) fail(c.op, "expanded_permuted_rows and src_to_dst are required");
  const Tensor& r = *a.rows;
  if (!is_float(r.dtype()) || (r.rank() != 2 && r.rank() != 3))
    fail(c.op, "expanded_permuted_rows must be float16/bfloat16/float32 [R, H] or [E, C, H], got " +
                   r.describe());
  c.dt = r.dtype(), c.h = r.dim(-1), c.rows = &r;
  const int64_t nrows = c.h ? r.numel() / c.h : 0;
  if (a.drop_pad_mode < 0 || a.drop_pad_mode > 3)
    fail(c.op, "drop_pad_mode must be 0..3, got " + std::to_string(a.drop_pad_mode));
  if (a.scales)
    c.n = a.scales->dim(0), c.k = a.scales->rank() == 2 ? a.scales->dim(1) : 0;
  else if (a.expert_idx)
    c.n = a.expert_idx->dim(0), c.k = a.expert_idx->dim(1);
  else if (a.skip1)
    c.n = a.skip1->dim(0), c.k = a.k;
  else
    fail(c.op, "one of scales, expert_for_source_row or skip1 must give N");
  if (c.k <= 0) fail(c.op, "K must be > 0 (scales [N, K] or the param k)");
  auto same = [&](const Tensor* t, const char* name, Shape s) {
    if (t && (t->dtype() != c.dt || t->shape() != s))
      fail(c.op, std::string(name) + " must be " + std::string(dtype_name(c.dt)) + " " +
                     Tensor(c.dt, s).describe() + ", got " + t->describe());
  };
  same(a.skip1, "skip1", {c.n, c.h});
  same(a.skip2, "skip2", {c.n, c.h});
  same(a.scales, "scales", {c.n, c.k});
  if (a.skip2 && !a.skip1) fail(c.op, "skip2 needs skip1");
  if (a.bias) {
    if (a.bias->dtype() != c.dt || a.bias->rank() != 2 || a.bias->dim(1) != c.h)
      fail(c.op,
           "bias must be " + std::string(dtype_name(c.dt)) + " [E, H], got " + a.bias->describe());
    if (!a.expert_idx) fail(c.op, "bias needs expert_for_source_row");
  }
  if (a.expert_idx && (a.expert_idx->dtype() != DType::kI32 || a.expert_idx->rank() != 2 ||
                       a.expert_idx->dim(0) != c.n || a.expert_idx->dim(1) != c.k))
    fail(c.op, "expert_for_source_row must be int32 [N, K] = [" + std::to_string(c.n) + ", " +
                   std::to_string(c.k) + "], got " + a.expert_idx->describe());
  const Tensor& s2d = *a.src_to_dst;
  if (s2d.dtype() != DType::kI32 || s2d.numel() != c.n * c.k)
    fail(c.op, "expanded_src_to_dst_row must be int32 with N*K = " + std::to_string(c.n * c.k) +
                   " elements, got " + s2d.describe());
  c.skip1 = a.skip1, c.skip2 = a.skip2, c.bias = a.bias, c.scales = a.scales;
  c.row.assign(static_cast<size_t>(c.n * c.k), -1);
  c.brow.assign(static_cast<size_t>(c.n * c.k), -1);
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t j = 0; j < c.k; ++j) {
      // The index convention: modes 0/1 read src_to_dst[j*N + i] (k-major, column-major), modes
      // 2/3 read src_to_dst[i*K + j] (token-major) [doc reference code, notes §9].
      const int64_t at = a.drop_pad_mode < 2 ? j * c.n + i : i * c.k + j;
      const int32_t v = s2d.data<int32_t>()[at];
      if (v < -1 || v >= nrows)
        fail(c.op, "expanded_src_to_dst_row entry " + std::to_string(at) + " is " +
                       std::to_string(v) + ", expected -1 or [0, " + std::to_string(nrows) + ")");
      c.row[i * c.k + j] = v;
      if (a.bias && v >= 0) {
        const int32_t e = a.expert_idx->data<int32_t>()[i * c.k + j];
        if (e < 0 || e >= a.bias->dim(0))
          fail(c.op, "expert_for_source_row entry " + std::to_string(i * c.k + j) + " is " +
                         std::to_string(e) + ", outside the bias rows");
        c.brow[i * c.k + j] = e;
      }
    }
  for (auto [t, nm] : {std::pair{a.rows, "expanded_permuted_rows"},
                       {a.skip1, "skip1"},
                       {a.skip2, "skip2"},
                       {a.bias, "bias"},
                       {a.scales, "scales"}})
    check_finite(c, t, nm);
  return c;
}

Combine unpermute_plan(const TokenUnpermuteArgs& a) {
  Combine c;
  c.op = "npu_moe_token_unpermute";
  if (!a.permuted || !a.indices) fail(c.op, "permuted_tokens and sorted_indices are required");
  const Tensor& t = *a.permuted;
  if (!is_float(t.dtype()) || t.rank() != 2)
    fail(c.op, "permuted_tokens must be float16/bfloat16/float32 [N*K, H], got " + t.describe());
  c.dt = t.dtype(), c.h = t.dim(1), c.rows = &t;
  const int64_t nk = t.dim(0);
  if (a.indices->dtype() != DType::kI32 || a.indices->rank() != 1 || a.indices->dim(0) != nk)
    fail(c.op,
         "sorted_indices must be int32 [" + std::to_string(nk) + "], got " + a.indices->describe());
  if (a.probs) {
    if (a.probs->dtype() != c.dt || a.probs->rank() != 2 || a.probs->numel() != nk)
      fail(c.op, "probs must be " + std::string(dtype_name(c.dt)) +
                     " [N, K] with N*K = " + std::to_string(nk) + ", got " + a.probs->describe());
    c.n = a.probs->dim(0), c.k = a.probs->dim(1);
  } else {
    c.n = nk, c.k = 1;  // aclnn doc: probs None means topK = 1
  }
  const int32_t* s = a.indices->data<int32_t>();
  std::vector<int32_t> inv(static_cast<size_t>(nk), -1);
  for (int64_t m = 0; m < nk; ++m) {
    if (s[m] < 0 || s[m] >= nk || inv[s[m]] >= 0)
      fail(c.op, "sorted_indices must be a permutation of [0, " + std::to_string(nk) + "), entry " +
                     std::to_string(m) + " is " + std::to_string(s[m]));
    inv[s[m]] = static_cast<int32_t>(m);
  }
  c.scales = a.probs;
  c.brow.assign(static_cast<size_t>(nk), -1);
  c.row.resize(static_cast<size_t>(nk));
  // gather: token-major slot m reads T[S[m]]; scatter: slot S[m] receives T[m], i.e. slot m
  // reads T[S^-1[m]].
  for (int64_t m = 0; m < nk; ++m) c.row[m] = a.form == UnpermuteIndexForm::kGather ? s[m] : inv[m];
  check_finite(c, a.permuted, "permuted_tokens");
  check_finite(c, a.probs, "probs");
  return c;
}
}  // namespace dispatch_detail

namespace ref {
namespace {

Exact val(const Tensor& t, int64_t i) { return num::to_exact(fmt(t.dtype()), t.bits_at(i)); }

// Bound helpers (qconf/numeric/bounds.h, docs/bounds.md).
using num::abs_exact;
using num::gamma;
using num::half_ulp;
using num::low_bit;
using num::overflow_threshold;
using num::pow2;
using num::stored_bound;
using num::to_double_nearest;

// The exact combine of output element (i, c).
Exact exact_combine(const Combine& c, int64_t i, int64_t col) {
  Exact s = 0;
  if (c.skip1) s += val(*c.skip1, i * c.h + col);
  if (c.skip2) s += val(*c.skip2, i * c.h + col);
  for (int64_t j = 0; j < c.k; ++j) {
    const int32_t r = c.row[i * c.k + j];
    if (r < 0) continue;  // a -1 row contributes 0 (notes §9)
    Exact v = val(*c.rows, r * c.h + col);
    if (c.brow[i * c.k + j] >= 0) v += val(*c.bias, c.brow[i * c.k + j] * c.h + col);
    if (c.scales) v *= val(*c.scales, i * c.k + j);
    s += v;
  }
  return s;
}

CombineStages combine_ref(const Combine& c) {
  CombineStages st;
  st.gathered_row = Tensor::from<int32_t>({c.n, c.k}, c.row);
  st.out = Tensor(c.dt, {c.n, c.h});
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t col = 0; col < c.h; ++col) {
      // The exact combine, rounded once to the output dtype (round to nearest even).
      const uint64_t b = num::encode(fmt(c.dt), exact_combine(c, i, col), Round::kRint);
      if (c.dt == DType::kF32)
        st.out.data<uint32_t>()[i * c.h + col] = static_cast<uint32_t>(b);
      else
        st.out.data<uint16_t>()[i * c.h + col] = static_cast<uint16_t>(b);
    }
  return st;
}

// ---- bounds (docs/bounds.md, "npu_moe_finalize_routing") ---------------------------------------

CombineBounds combine_bounds(const Combine& c, AccPrecision accp) {
  const num::FloatFormat& acc = accp == AccPrecision::kFp32 ? num::kF32 : fmt(c.dt);
  const num::FloatFormat& out = fmt(c.dt);
  const int p = acc.mant_bits + 1, emin = num::min_exponent(acc);
  const double inf = std::numeric_limits<double>::infinity();
  CombineBounds b;
  b.exact = Tensor(DType::kF64, {c.n, c.h});
  b.bound = Tensor(DType::kF64, {c.n, c.h});
  for (int64_t i = 0; i < c.n; ++i)
    for (int64_t col = 0; col < c.h; ++col) {
      // Every value any order or association computes exactly: the inputs, r + b, s*r, s*b,
      // s*(r + b); A = sum of the magnitudes |skip| + |s| (|r| + |b|) (covers s*r + s*b).
      std::vector<Exact> vals;
      Exact a = 0, smax = 1, inner_max = 0;
      int64_t terms = 0;
      auto add_skip = [&](const Tensor* t) {
        if (!t) return;
        const Exact v = val(*t, i * c.h + col);
        vals.push_back(v), a += abs_exact(v), ++terms;
      };
      add_skip(c.skip1);
      add_skip(c.skip2);
      for (int64_t j = 0; j < c.k; ++j) {
        const int32_t r = c.row[i * c.k + j];
        if (r < 0) continue;
        const Exact rv = val(*c.rows, r * c.h + col);
        const Exact bv =
            c.brow[i * c.k + j] >= 0 ? val(*c.bias, c.brow[i * c.k + j] * c.h + col) : Exact(0);
        const Exact sv = c.scales ? val(*c.scales, i * c.k + j) : Exact(1);
        vals.insert(vals.end(), {rv, bv, sv, rv + bv, sv * rv, sv * bv, sv * (rv + bv)});
        a += abs_exact(sv) * (abs_exact(rv) + abs_exact(bv));
        smax = std::max(smax, abs_exact(sv));
        inner_max = std::max(inner_max, abs_exact(rv) + abs_exact(bv));
        ++terms;
      }
      const Exact ex = exact_combine(c, i, col);
      b.exact.data<double>()[i * c.h + col] = to_double_nearest(ex);
      double& bd = b.bound.data<double>()[i * c.h + col];
      // Provably exact: every value a multiple of 2^q, q >= emin (normal range: no flush), and
      // A < 2^(p + q): every partial sum of every subset, in any order, is an acc-format number.
      int q = INT_MAX;
      for (const Exact& v : vals) q = std::min(q, low_bit(v));
      if (q == INT_MAX || (q >= emin && a < pow2(p + q) && a < overflow_threshold(acc))) {
        // The accumulator is exact; the cast of the exact value to the output dtype is
        // deterministic: the bound is that rounding's error (0 when the output holds it).
        const Exact r = num::to_exact(out, num::encode(out, ex, Round::kRint)) - ex;
        bd = r == 0 ? 0.0 : stored_bound(abs_exact(r), ex);
        continue;
      }
      b.all_provably_exact = false;
      // Otherwise: each term has at most two roundings, the sum of `terms` terms terms-1
      // additions: e = gamma_{terms+1} A (Higham (4.4), Lemma 3.3), plus a flush-to-zero slack
      // of 2^emin per operation (3 per term, 1 per addition), scaled by max(1, |s|).
      const int64_t ops = 3 * c.k + 3;
      const Exact g = gamma(terms + 1, p);
      const Exact ftz = Exact(ops) * pow2(emin) * smax * (Exact(1) + g);
      Exact e = g * a + ftz;
      if (a * (Exact(1) + g) + ftz >= overflow_threshold(acc) ||
          inner_max * (Exact(1) + g) >= overflow_threshold(acc)) {
        bd = inf;
        continue;
      }
      // The final cast to the output dtype (only when it is narrower than the accumulator).
      if (&acc != &out && acc.mant_bits > out.mant_bits) {
        const Exact mag = abs_exact(ex) + e;
        if (mag >= overflow_threshold(out)) {
          bd = inf;
          continue;
        }
        e += half_ulp(out, mag);
      }
      bd = stored_bound(e, ex);
    }
  return b;
}

}  // namespace

CombineStages npu_moe_finalize_routing(const FinalizeRoutingArgs& a) {
  return combine_ref(finalize_plan(a));
}
CombineBounds npu_moe_finalize_routing_bounds(const FinalizeRoutingArgs& a, AccPrecision acc) {
  return combine_bounds(finalize_plan(a), acc);
}
CombineStages npu_moe_token_unpermute(const TokenUnpermuteArgs& a) {
  return combine_ref(unpermute_plan(a));
}
CombineBounds npu_moe_token_unpermute_bounds(const TokenUnpermuteArgs& a, AccPrecision acc) {
  return combine_bounds(unpermute_plan(a), acc);
}

}  // namespace ref

}  // namespace qconf
