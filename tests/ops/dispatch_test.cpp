// Properties of the MoE dispatch and combine ops (qconf/ops/dispatch.h), reference and optimized.
#include "qconf/ops/dispatch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/conformance/verdict.h"
#include "qconf/numeric/float_format.h"
#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/index.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf {
namespace {

using ::testing::HasSubstr;

Tensor i32(Shape s, std::vector<int32_t> v) { return Tensor::from<int32_t>(std::move(s), v); }

// K distinct experts per token in [0, e).
Tensor topk_ids(uint64_t seed, int64_t n, int64_t k, int64_t e) {
  std::vector<int32_t> out, pool(static_cast<size_t>(e));
  for (int64_t t = 0; t < n; ++t) {
    std::iota(pool.begin(), pool.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      const Tensor d = gen::int_tensor(DType::kI64, {1}, j, e - 1, seed, t * 1024 + j);
      std::swap(pool[j], pool[d.data<int64_t>()[0]]);
      out.push_back(pool[j]);
    }
  }
  return Tensor::from<int32_t>({n, k}, out);
}

Tensor rows(DType dt, int64_t n, int64_t h, uint64_t seed) {
  return gen::float_tensor(dt, {n, h}, gen::FloatDist::normal(0), seed, 0);
}

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

// The separator: expert 1 at (t0,j0), (t1,j1), (t2,j0), (t3,j1).
const Tensor& dup_ids() {
  static const Tensor t = i32({4, 2}, {1, 0, 0, 1, 1, 2, 2, 1});
  return t;
}

// Stability check: within each key, the flat positions appear in increasing order.
bool stable_token_major(const Tensor& ids, const std::vector<int32_t>& perm, int64_t total) {
  for (int64_t i = 1; i < total; ++i) {
    const int32_t a = ids.data<int32_t>()[perm[i - 1]], b = ids.data<int32_t>()[perm[i]];
    if (a > b || (a == b && perm[i - 1] > perm[i])) return false;
  }
  return true;
}

// ---- init_routing_v2 ---------------------------------------------------------------------------

TEST(InitRoutingV2, ExpandedRowIdxIsABijectionOnActiveRowsAndMinusOneElsewhere) {
  for (auto [n, k, e, s, t] : std::vector<std::tuple<int, int, int, int, int>>{
           {7, 2, 16, 4, 12}, {33, 8, 64, 0, 64}, {128, 2, 256, 100, 140}, {1, 1, 8, 0, 8}}) {
    const Tensor ids = topk_ids(rng::seed_from_string("bij") + n, n, k, e);
    InitRoutingV2Config c;
    c.expert_num = e, c.range_start = s, c.range_end = t;
    const InitRoutingV2Stages st =
        ref::npu_moe_init_routing_v2(rows(DType::kF16, n, 4, 1), ids, nullptr, nullptr, c);
    std::set<int32_t> seen;
    int64_t active = 0;
    for (int64_t p = 0; p < n * k; ++p) {
      const int32_t id = ids.data<int32_t>()[p], r = st.expanded_row_idx.data<int32_t>()[p];
      const bool act = id >= s && id < t;
      active += act;
      if (!act) {
        EXPECT_EQ(r, -1) << p;
        continue;
      }
      EXPECT_TRUE(seen.insert(r).second) << "row " << r << " twice";
      // The row holds the token's x and the sorted id is the position's expert.
      EXPECT_EQ(st.sorted_row_idx.data<int32_t>()[r], p);
      EXPECT_EQ(st.sorted_expert_idx.data<int32_t>()[r], id);
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), active);
    if (active) {
      EXPECT_EQ(*seen.rbegin(), active - 1);
    }
    EXPECT_EQ(st.expanded_x.dim(0), active);
    // Scatter form is the inverse of the gather form.
    c.row_idx_type = RowIdxType::kScatter;
    const InitRoutingV2Stages sc =
        ref::npu_moe_init_routing_v2(rows(DType::kF16, n, 4, 1), ids, nullptr, nullptr, c);
    ASSERT_EQ(sc.expanded_row_idx.numel(), active);
    for (int64_t i = 0; i < active; ++i)
      EXPECT_EQ(st.expanded_row_idx.data<int32_t>()[sc.expanded_row_idx.data<int32_t>()[i]], i);
  }
}

TEST(InitRoutingV2, SortIsStableOnTheTokenMajorPositionAndAnUnstableSortIsCaught) {
  InitRoutingV2Config c;
  c.expert_num = 4;
  const InitRoutingV2Stages st =
      ref::npu_moe_init_routing_v2(rows(DType::kF16, 4, 3, 2), dup_ids(), nullptr, nullptr, c);
  const std::vector<int32_t> perm = st.sorted_row_idx.to_vector<int32_t>();
  EXPECT_TRUE(stable_token_major(dup_ids(), perm, 8));
  // Expert 1 rows: tokens 0, 1, 2, 3 in that order.
  EXPECT_EQ(perm, (std::vector<int32_t>{1, 2, 0, 3, 4, 7, 5, 6}));
  // Planted bug: ties broken by the k-major index j*N + t.
  std::vector<int32_t> kmajor(8);
  std::iota(kmajor.begin(), kmajor.end(), 0);
  std::stable_sort(kmajor.begin(), kmajor.end(), [&](int32_t a, int32_t b) {
    const int32_t ia = dup_ids().data<int32_t>()[a], ib = dup_ids().data<int32_t>()[b];
    if (ia != ib) return ia < ib;
    return (a % 2) * 4 + a / 2 < (b % 2) * 4 + b / 2;
  });
  EXPECT_FALSE(stable_token_major(dup_ids(), kmajor, 8));
  EXPECT_NE(kmajor, perm);
}

TEST(InitRoutingV2, ExpertTokensAgreeWithTheSortedIdsInAllThreeForms) {
  const Tensor ids = topk_ids(rng::seed_from_string("tokens"), 33, 8, 64);
  InitRoutingV2Config c;
  c.expert_num = 64, c.range_start = 16, c.range_end = 48, c.expert_tokens_flag = true;
  std::map<GroupListType, Tensor> got;
  for (GroupListType t :
       {GroupListType::kCumsum, GroupListType::kCount, GroupListType::kKeyValue}) {
    c.expert_tokens_type = t;
    got[t] = ref::npu_moe_init_routing_v2(rows(DType::kBF16, 33, 2, 3), ids, nullptr, nullptr, c)
                 .expert_tokens;
    EXPECT_TRUE(got[t].bit_equal(
        opt::npu_moe_init_routing_v2(rows(DType::kBF16, 33, 2, 3), ids, nullptr, nullptr, c)
            .expert_tokens));
  }
  std::vector<int64_t> counts(32, 0);
  for (int64_t p = 0; p < 33 * 8; ++p) {
    const int32_t id = ids.data<int32_t>()[p];
    if (id >= 16 && id < 48) ++counts[id - 16];
  }
  EXPECT_EQ(got[GroupListType::kCount].to_vector<int64_t>(), counts);
  std::vector<int64_t> cs(counts);
  std::partial_sum(cs.begin(), cs.end(), cs.begin());
  EXPECT_EQ(got[GroupListType::kCumsum].to_vector<int64_t>(), cs);
  // key_value: global ids, expert_num rows, (0, 0) padding.
  const Tensor& kv = got[GroupListType::kKeyValue];
  ASSERT_EQ(kv.shape(), (Shape{64, 2}));
  int64_t r = 0;
  for (int64_t e = 0; e < 32; ++e)
    if (counts[e]) {
      EXPECT_EQ(kv.data<int64_t>()[2 * r], e + 16);
      EXPECT_EQ(kv.data<int64_t>()[2 * r + 1], counts[e]);
      ++r;
    }
  for (; r < 64; ++r) EXPECT_EQ(kv.data<int64_t>()[2 * r] | kv.data<int64_t>()[2 * r + 1], 0);
}

TEST(InitRoutingV2, OptimizedIsBitIdenticalToTheReferenceForEveryThreadCount) {
  struct C {
    int n, k, e, quant;
    DType dt;
    int drop;
  };
  for (const C& cs : {C{128, 8, 256, -1, DType::kBF16, 0}, C{33, 2, 16, 1, DType::kF16, 0},
                      C{33, 2, 16, 0, DType::kF32, 0}, C{128, 2, 8, -1, DType::kF16, 1},
                      C{7, 8, 8, 1, DType::kF32, 0}}) {
    const Tensor ids = topk_ids(rng::seed_from_string("opt") + cs.n, cs.n, cs.k, cs.e);
    const Tensor x = rows(cs.dt, cs.n, 19, 5);
    const Tensor s0 = Tensor::from<float>({1}, {0.37f}), o0 = Tensor::from<float>({1}, {1.5f});
    InitRoutingV2Config c;
    c.expert_num = cs.e, c.quant_mode = cs.quant, c.drop_pad_mode = cs.drop;
    c.expert_tokens_flag = true;
    if (cs.drop) c.expert_capacity = 20;
    if (!cs.drop && cs.e >= 16) c.range_start = cs.e / 4, c.range_end = cs.e / 2;
    for (StaticQuantPrecision sp : {StaticQuantPrecision::kFp16, StaticQuantPrecision::kFp32})
      for (DynQuantFormula f : {DynQuantFormula::kDivScale, DynQuantFormula::kMulReciprocal,
                                DynQuantFormula::kDbScale}) {
        c.static_precision = sp, c.dyn_formula = f;
        const Tensor* sc = cs.quant == 0 ? &s0 : nullptr;
        const Tensor* of = cs.quant == 0 ? &o0 : nullptr;
        const InitRoutingV2Stages r = ref::npu_moe_init_routing_v2(x, ids, sc, of, c);
        for (int th : {1, 2, 3}) {
          const InitRoutingV2Stages o = opt::npu_moe_init_routing_v2(x, ids, sc, of, c, th);
          EXPECT_TRUE(r.sorted_row_idx.bit_equal(o.sorted_row_idx));
          EXPECT_TRUE(r.sorted_expert_idx.bit_equal(o.sorted_expert_idx));
          EXPECT_TRUE(r.expanded_row_idx.bit_equal(o.expanded_row_idx));
          EXPECT_TRUE(r.expanded_x.bit_equal(o.expanded_x)) << cs.n << " q" << cs.quant;
          EXPECT_TRUE(r.expert_tokens.bit_equal(o.expert_tokens));
          EXPECT_TRUE(r.expanded_scale.bit_equal(o.expanded_scale));
        }
      }
  }
}

TEST(InitRoutingV2, DynamicQuantWithoutSmoothIsNpuDynamicQuantOfTheExpandedRows) {
  for (DType dt : {DType::kF16, DType::kBF16})
    for (DynQuantFormula f : {DynQuantFormula::kDivScale, DynQuantFormula::kMulReciprocal}) {
      const Tensor ids = topk_ids(7, 16, 2, 8);
      const Tensor x = rows(dt, 16, 40, 9);
      InitRoutingV2Config c;
      c.expert_num = 8;
      const Tensor plain = ref::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c).expanded_x;
      c.quant_mode = 1, c.dyn_formula = f;
      const InitRoutingV2Stages q = ref::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c);
      DynQuantConfig dq;
      dq.formula = f;
      const DynQuantStages d = ref::npu_dynamic_quant(plain, nullptr, nullptr, dq);
      EXPECT_TRUE(q.expanded_x.bit_equal(d.y));
      EXPECT_TRUE(q.expanded_scale.bit_equal(d.scale));
    }
}

TEST(InitRoutingV2, StaticQuantPrecisionsAreSeparatedByTheGoldenVector) {
  const Tensor x = Tensor::from<float>({1, 2}, {95.0f, 400.0f});
  const Tensor s = Tensor::from<float>({1}, {0.3f}), o = Tensor::from<float>({1}, {0.0f});
  InitRoutingV2Config c;
  c.expert_num = 2, c.quant_mode = 0;
  const Tensor ids = i32({1, 1}, {1});
  const Tensor q16 = ref::npu_moe_init_routing_v2(x, ids, &s, &o, c).expanded_x;
  c.static_precision = StaticQuantPrecision::kFp32;
  const Tensor q32 = ref::npu_moe_init_routing_v2(x, ids, &s, &o, c).expanded_x;
  EXPECT_EQ(q16.to_vector<int8_t>(), (std::vector<int8_t>{28, 120}));
  EXPECT_EQ(q32.to_vector<int8_t>(), (std::vector<int8_t>{29, 120}));
}

TEST(InitRoutingV2, DropPadKeepsTheFirstCapacityRowsOfEachExpert) {
  const Tensor ids = i32({5, 2}, {1, 0, 0, 1, 1, 2, 2, 1, 1, 0});
  const Tensor x = rows(DType::kF32, 5, 3, 11);
  InitRoutingV2Config c;
  c.expert_num = 4, c.drop_pad_mode = 1, c.expert_capacity = 2, c.expert_tokens_flag = true;
  const InitRoutingV2Stages st = ref::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c);
  // Expert 1 at positions 0, 3, 4, 7, 8: keeps 0 (slot 2) and 3 (slot 3); drops 4, 7, 8.
  EXPECT_EQ(st.expanded_row_idx.to_vector<int32_t>(),
            (std::vector<int32_t>{2, 0, 1, 3, -1, 4, 5, -1, -1, -1}));
  EXPECT_EQ(st.expert_tokens.to_vector<int64_t>(), (std::vector<int64_t>{3, 5, 2, 0}));
  ASSERT_EQ(st.expanded_x.shape(), (Shape{4, 2, 3}));
  for (int64_t i = 6 * 3; i < 8 * 3; ++i) EXPECT_EQ(st.expanded_x.data<float>()[i], 0.0f);
}

// ---- init_routing v1 ---------------------------------------------------------------------------

TEST(InitRoutingV1, RowIdxIsIndexedByTheKMajorRowIdxAndTieOrdersDiffer) {
  std::vector<int32_t> rv;
  for (int t = 0; t < 4; ++t)
    for (int j = 0; j < 2; ++j) rv.push_back(j * 4 + t);
  const Tensor row_idx = i32({4, 2}, rv);
  const Tensor x = rows(DType::kF16, 4, 5, 13);
  InitRoutingV1Config c;
  c.active_num = 4;
  const InitRoutingV1Stages a = ref::npu_moe_init_routing(x, row_idx, dup_ids(), c);
  for (int64_t i = 0; i < 8; ++i) {
    const int32_t src = a.sorted_position.data<int32_t>()[i];
    EXPECT_EQ(a.expanded_row_idx.data<int32_t>()[rv[src]], i);
    EXPECT_EQ(std::memcmp(a.expanded_x.bytes() + i * 10, x.bytes() + (rv[src] % 4) * 10, 10), 0);
  }
  c.tie_order = RoutingTieOrder::kRowIdxValue;
  const InitRoutingV1Stages b = ref::npu_moe_init_routing(x, row_idx, dup_ids(), c);
  EXPECT_FALSE(a.expanded_row_idx.bit_equal(b.expanded_row_idx));
  EXPECT_TRUE(a.expanded_expert_idx.bit_equal(b.expanded_expert_idx));
  for (RoutingTieOrder o : {RoutingTieOrder::kFlatPosition, RoutingTieOrder::kRowIdxValue}) {
    c.tie_order = o;
    const InitRoutingV1Stages r = ref::npu_moe_init_routing(x, row_idx, dup_ids(), c);
    for (int th : {1, 2}) {
      const InitRoutingV1Stages q = opt::npu_moe_init_routing(x, row_idx, dup_ids(), c, th);
      EXPECT_TRUE(r.expanded_row_idx.bit_equal(q.expanded_row_idx));
      EXPECT_TRUE(r.expanded_x.bit_equal(q.expanded_x));
      EXPECT_TRUE(r.sorted_position.bit_equal(q.sorted_position));
    }
  }
}

// ---- combine -----------------------------------------------------------------------------------

// |got - exact| <= bound for every element.
bool within(const Tensor& got, const CombineBounds& b) {
  const num::FloatFormat& f = got.dtype() == DType::kF32   ? num::kF32
                              : got.dtype() == DType::kF16 ? num::kF16
                                                           : num::kBF16;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = num::to_double(f, got.bits_at(i));
    if (!(std::fabs(g - b.exact.data<double>()[i]) <= b.bound.data<double>()[i])) return false;
  }
  return true;
}

struct Fin {
  Tensor rows, skip1, skip2, bias, scales, s2d, ids;
  FinalizeRoutingArgs args(int mode) const {
    FinalizeRoutingArgs a;
    a.rows = &rows, a.skip1 = &skip1, a.skip2 = &skip2, a.bias = &bias, a.scales = &scales;
    a.src_to_dst = &s2d, a.expert_idx = &ids, a.drop_pad_mode = mode;
    return a;
  }
};

Fin make_fin(DType dt, int64_t n, int64_t k, int64_t h, int64_t e, bool grid, uint64_t seed) {
  // Not grid: fp32 full 24-bit mantissas in (-1, 1); fp16/bf16 N(0, 1) (their full precision).
  const gen::FloatDist xd = grid                ? gen::FloatDist::grid(-64, 64, -4)
                            : dt == DType::kF32 ? gen::FloatDist::grid(-(1 << 24), 1 << 24, -24)
                                                : gen::FloatDist::normal(0);
  Fin f;
  f.rows = gen::float_tensor(dt, {n * k, h}, xd, seed, 0);
  f.skip1 = gen::float_tensor(dt, {n, h}, xd, seed, 1);
  f.skip2 = gen::float_tensor(dt, {n, h}, xd, seed, 2);
  f.bias = gen::float_tensor(dt, {e, h}, xd, seed, 3);
  f.scales = gen::float_tensor(
      dt, {n, k}, grid ? gen::FloatDist::grid(1, 16, -4) : gen::FloatDist::grid(1, 255, -8), seed,
      4);
  std::vector<int32_t> p(static_cast<size_t>(n * k));
  std::iota(p.begin(), p.end(), 0);
  std::reverse(p.begin(), p.end());
  for (size_t i = 0; i < p.size(); i += 3) p[i] = -1;
  f.s2d = Tensor::from<int32_t>({n * k}, p);
  f.ids = topk_ids(seed, n, k, e);
  return f;
}

TEST(FinalizeRouting, GridInputsAreProvablyExactAndOptimizedMatchesBitForBit) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    const Fin f = make_fin(dt, 9, 4, 7, 8, true, 21);
    const CombineBounds b = ref::npu_moe_finalize_routing_bounds(f.args(0), AccPrecision::kFp32);
    EXPECT_TRUE(b.all_provably_exact);
    const Tensor r = ref::npu_moe_finalize_routing(f.args(0)).out;
    for (int th : {1, 2, 3})
      EXPECT_TRUE(r.bit_equal(opt::npu_moe_finalize_routing(f.args(0), th).out));
  }
}

// The combine in another order: reversed k, distributed s*r + s*b, pairwise; fp32 or fp16 acc.
Tensor combine_other_order(const Fin& f, int mode, bool io_dtype) {
  const int64_t n = f.skip1.dim(0), k = f.scales.dim(1), h = f.rows.dim(1);
  const DType dt = f.rows.dtype();
  const num::FloatFormat& fm = dt == DType::kF32   ? num::kF32
                               : dt == DType::kF16 ? num::kF16
                                                   : num::kBF16;
  auto rd = [&](float v) -> float {  // rounding to the io dtype when io_dtype
    if (!io_dtype || dt == DType::kF32) return v;
    const uint64_t b =
        num::encode(fm, num::to_exact(num::kF32, num::f32_bits(v)), num::Round::kRint);
    return num::f32_from_bits(static_cast<uint32_t>(num::convert(fm, b, num::kF32)));
  };
  auto at = [&](const Tensor& t, int64_t i) {
    return num::f32_from_bits(static_cast<uint32_t>(num::convert(fm, t.bits_at(i), num::kF32)));
  };
  Tensor out(dt, {n, h});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < h; ++c) {
      std::vector<float> terms;
      for (int64_t j = k - 1; j >= 0; --j) {
        const int64_t idx = mode < 2 ? j * n + i : i * k + j;
        const int32_t r = f.s2d.data<int32_t>()[idx];
        if (r < 0) continue;
        const float s = at(f.scales, i * k + j);
        const int32_t e = f.ids.data<int32_t>()[i * k + j];
        terms.push_back(rd(rd(s * at(f.rows, r * h + c)) + rd(s * at(f.bias, e * h + c))));
      }
      terms.push_back(rd(at(f.skip1, i * h + c) + at(f.skip2, i * h + c)));
      while (terms.size() > 1) {  // pairwise
        std::vector<float> nx;
        for (size_t q = 0; q + 1 < terms.size(); q += 2) nx.push_back(rd(terms[q] + terms[q + 1]));
        if (terms.size() % 2) nx.push_back(terms.back());
        terms = nx;
      }
      const uint64_t b =
          num::encode(fm, num::to_exact(num::kF32, num::f32_bits(terms[0])), num::Round::kRint);
      if (dt == DType::kF32)
        out.data<uint32_t>()[i * h + c] = static_cast<uint32_t>(b);
      else
        out.data<uint16_t>()[i * h + c] = static_cast<uint16_t>(b);
    }
  return out;
}

TEST(FinalizeRouting, EveryLegitimateOrderIsWithinTheBoundAndTheBoundIsNotVacuous) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int mode : {0, 2}) {
      const Fin f = make_fin(dt, 33, 8, 9, 16, false, 31 + mode);
      const CombineBounds b32 =
          ref::npu_moe_finalize_routing_bounds(f.args(mode), AccPrecision::kFp32);
      const CombineBounds bio =
          ref::npu_moe_finalize_routing_bounds(f.args(mode), AccPrecision::kIoDtype);
      // fp16/bf16 products with fp32 accumulation over k <= 8 are exact here (then the check is
      // EXACT); full fp32 mantissas are not.
      EXPECT_EQ(b32.all_provably_exact, dt != DType::kF32);
      EXPECT_FALSE(bio.all_provably_exact && dt != DType::kF32);
      EXPECT_TRUE(within(ref::npu_moe_finalize_routing(f.args(mode)).out, b32));
      EXPECT_TRUE(within(opt::npu_moe_finalize_routing(f.args(mode)).out, b32));
      EXPECT_TRUE(within(combine_other_order(f, mode, false), b32));
      EXPECT_TRUE(within(combine_other_order(f, mode, true), bio));
      // Planted bug: the other index convention.
      EXPECT_FALSE(within(ref::npu_moe_finalize_routing(f.args(mode ^ 2)).out, b32)) << mode;
      // Planted bug: -1 rows read as the last row (Python negative indexing).
      Fin g = f;
      std::vector<int32_t> s = g.s2d.to_vector<int32_t>();
      for (int32_t& v : s)
        if (v < 0) v = static_cast<int32_t>(g.rows.dim(0) - 1);
      g.s2d = Tensor::from<int32_t>(g.s2d.shape(), s);
      EXPECT_FALSE(within(ref::npu_moe_finalize_routing(g.args(mode)).out, b32));
      // Planted bug: one scale off by one step of its grid.
      Fin h = f;
      h.scales = Tensor(f.scales);
      const num::FloatFormat& fm = dt == DType::kF32   ? num::kF32
                                   : dt == DType::kF16 ? num::kF16
                                                       : num::kBF16;
      const uint64_t bits = h.scales.bits_at(8);
      const uint64_t nb =
          num::encode(fm, num::to_exact(fm, bits) + num::Exact(1, 256), num::Round::kRint);
      std::memcpy(h.scales.bytes() + 8 * dtype_size(dt), &nb, dtype_size(dt));
      EXPECT_FALSE(within(ref::npu_moe_finalize_routing(h.args(mode)).out, b32));
    }
}

// The fixed order of the optimized combine, one element at a time: acc = skip1 (or +0),
// + skip2, then for k = 0..K-1: v = r (+ b), v = s * v, acc = acc + v; one RNE cast. `fused`
// plants a bug: s * r + acc contracted into one fused multiply-add (no bias only).
Tensor fixed_order_scalar(const Fin& f, const FinalizeRoutingArgs& a, bool fused) {
  const int64_t n = f.scales.dim(0), k = f.scales.dim(1), h = f.rows.dim(1);
  const DType dt = f.rows.dtype();
  const num::FloatFormat& fm = dt == DType::kF32   ? num::kF32
                               : dt == DType::kF16 ? num::kF16
                                                   : num::kBF16;
  auto at = [&](const Tensor& t, int64_t i) {
    return num::f32_from_bits(static_cast<uint32_t>(num::convert(fm, t.bits_at(i), num::kF32)));
  };
  Tensor out(dt, {n, h});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < h; ++c) {
      float acc = a.skip1 ? at(*a.skip1, i * h + c) : 0.0f;
      if (a.skip2) acc = acc + at(*a.skip2, i * h + c);
      for (int64_t j = 0; j < k; ++j) {
        const int32_t r = f.s2d.data<int32_t>()[a.drop_pad_mode < 2 ? j * n + i : i * k + j];
        if (r < 0) continue;
        float v = at(f.rows, r * h + c);
        if (a.bias) v = v + at(f.bias, f.ids.data<int32_t>()[i * k + j] * h + c);
        const float s = a.scales ? at(f.scales, i * k + j) : 1.0f;
        if (fused && !a.bias) {
          acc = std::fma(s, v, acc);
          continue;
        }
        if (a.scales) v = s * v;
        acc = acc + v;
      }
      const uint64_t b = num::convert(num::kF32, num::f32_bits(acc), fm);
      if (dt == DType::kF32)
        out.data<uint32_t>()[i * h + c] = static_cast<uint32_t>(b);
      else
        out.data<uint16_t>()[i * h + c] = static_cast<uint16_t>(b);
    }
  return out;
}

TEST(FinalizeRouting, SimdCombineIsTheFixedOrderScalarSumBitForBitForEveryTailAndThreadCount) {
  int fused_differs = 0;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
    for (int64_t h : {1, 7, 15, 16, 17, 33, 100})  // below, at and past the vector widths
      for (int mode : {0, 2})
        for (int form = 0; form < 4; ++form) {  // skip2 / bias / scales present or not
          const Fin f = make_fin(dt, 11, 3, h, 8, false, 51 + h);
          FinalizeRoutingArgs a = f.args(mode);
          if (form & 1) a.skip2 = nullptr;
          if (form & 2) a.bias = nullptr;
          if (form == 3) a.scales = nullptr, a.skip1 = nullptr;
          const Tensor want = fixed_order_scalar(f, a, false);
          for (int th : {1, 2, 3})
            EXPECT_TRUE(want.bit_equal(opt::npu_moe_finalize_routing(a, th).out))
                << dtype_name(dt) << " h " << h << " mode " << mode << " form " << form;
          fused_differs += !want.bit_equal(fixed_order_scalar(f, a, true));
        }
  // The comparison is not vacuous: a fused multiply-add port gives other bits somewhere.
  EXPECT_GT(fused_differs, 0);
}

TEST(TokenUnpermute, SimdCombineIsTheFixedOrderScalarSumBitForBit) {
  for (DType dt : {DType::kF32, DType::kBF16})
    for (int64_t h : {5, 16, 37}) {
      const Fin f = make_fin(dt, 9, 4, h, 8, false, 71 + h);
      std::vector<int32_t> perm(36);
      std::iota(perm.begin(), perm.end(), 0);
      std::reverse(perm.begin(), perm.end());
      const Tensor s = Tensor::from<int32_t>({36}, perm);
      TokenUnpermuteArgs u;
      u.permuted = &f.rows, u.indices = &s, u.probs = &f.scales;
      // The same sum as finalize with a token-major index and no skip or bias.
      Fin g = f;
      g.s2d = s;
      FinalizeRoutingArgs a = g.args(2);
      a.skip1 = a.skip2 = a.bias = nullptr;
      const Tensor want = fixed_order_scalar(g, a, false);
      for (int th : {1, 2})
        EXPECT_TRUE(want.bit_equal(opt::npu_moe_token_unpermute(u, th).out)) << h;
    }
}

TEST(FinalizeRouting, InactiveRowsContributeZero) {
  Fin f = make_fin(DType::kF32, 3, 2, 4, 4, true, 41);
  std::fill_n(f.s2d.data<int32_t>(), 6, -1);
  const Tensor out = ref::npu_moe_finalize_routing(f.args(0)).out;
  for (int64_t i = 0; i < out.numel(); ++i)
    EXPECT_EQ(out.data<float>()[i], f.skip1.data<float>()[i] + f.skip2.data<float>()[i]);
}

// ---- token_unpermute
// -----------------------------------------------------------------------------

TEST(TokenUnpermute, UnpermuteOfPermuteRecoversXExactly) {
  for (int64_t k : {1, 2, 8})
    for (DType dt : {DType::kF16, DType::kBF16, DType::kF32}) {
      const int64_t n = 33, e = 16;
      const Tensor x = rows(dt, n, 11, 50 + k);
      const Tensor ids = topk_ids(60 + k, n, k, e);
      InitRoutingV2Config c;
      c.expert_num = e;
      const InitRoutingV2Stages d = opt::npu_moe_init_routing_v2(x, ids, nullptr, nullptr, c);
      // Unit probs: out = K * x, exact (K a power of two).
      const Tensor one = gen::float_tensor(dt, {n, k}, gen::FloatDist::grid(1, 1, 0), 1, 0);
      TokenUnpermuteArgs a;
      a.permuted = &d.expanded_x, a.indices = &d.expanded_row_idx, a.probs = &one;
      const CombineBounds b = ref::npu_moe_token_unpermute_bounds(a, AccPrecision::kFp32);
      EXPECT_TRUE(b.all_provably_exact);
      const Tensor r = ref::npu_moe_token_unpermute(a).out;
      EXPECT_TRUE(r.bit_equal(opt::npu_moe_token_unpermute(a, 2).out));
      const num::FloatFormat& fm = dt == DType::kF32   ? num::kF32
                                   : dt == DType::kF16 ? num::kF16
                                                       : num::kBF16;
      for (int64_t i = 0; i < x.numel(); ++i)
        ASSERT_EQ(num::to_exact(fm, r.bits_at(i)), num::to_exact(fm, x.bits_at(i)) * k) << i;
      // Planted bug: the scatter reading of the gather-form index does not recover x (k > 1, or
      // any non-involutive permutation).
      a.form = UnpermuteIndexForm::kScatter;
      const Tensor s = ref::npu_moe_token_unpermute(a).out;
      if (k > 1) {
        EXPECT_FALSE(s.bit_equal(r));
      }
    }
}

TEST(TokenUnpermute, GatherAndScatterFormsDifferOnACycle) {
  const Tensor t = rows(DType::kF32, 3, 2, 70);
  const Tensor s = i32({3}, {1, 2, 0});
  TokenUnpermuteArgs a;
  a.permuted = &t, a.indices = &s;
  const Tensor g = ref::npu_moe_token_unpermute(a).out;
  a.form = UnpermuteIndexForm::kScatter;
  const Tensor sc = ref::npu_moe_token_unpermute(a).out;
  EXPECT_EQ(std::memcmp(g.bytes(), t.bytes() + 8, 8), 0);    // out[0] = T[1]
  EXPECT_EQ(std::memcmp(sc.bytes(), t.bytes() + 16, 8), 0);  // out[0] = T[S^-1[0]] = T[2]
}

TEST(BadInput, NonFiniteCombineInputsAreRejectedNamingTheElement) {
  // Inf, NaN and a finite value just below the largest exponent, per dtype.
  struct C {
    DType dt;
    uint32_t inf, nan, big;
  };
  for (const C& c :
       {C{DType::kF32, 0xFF800000u, 0x7FC00001u, 0x7F7FFFFFu},
        C{DType::kF16, 0x7C00u, 0xFE01u, 0x7BFFu}, C{DType::kBF16, 0xFF80u, 0x7FC1u, 0x7F7Fu}}) {
    Fin f = make_fin(c.dt, 3, 2, 4, 4, true, 61);
    const size_t w = dtype_size(c.dt);
    std::memcpy(f.rows.bytes() + 5 * w, &c.big, w);  // finite: accepted
    EXPECT_EQ(error_of([&] { opt::npu_moe_finalize_routing(f.args(0)); }), "no error");
    for (uint32_t bad : {c.inf, c.nan}) {
      Fin g = f;
      g.rows = Tensor(f.rows);
      std::memcpy(g.rows.bytes() + 5 * w, &bad, w);
      EXPECT_THAT(error_of([&] { opt::npu_moe_finalize_routing(g.args(0)); }),
                  HasSubstr("expanded_permuted_rows element 5 is not finite"))
          << dtype_name(c.dt) << " " << bad;
    }
  }
}

TEST(BadInput, ErrorsNameTheOpAndTheArgument) {
  const Tensor x = rows(DType::kF16, 2, 3, 1);
  InitRoutingV2Config c;
  c.expert_num = 4;
  EXPECT_THAT(error_of([&] {
                ref::npu_moe_init_routing_v2(x, i32({2, 1}, {0, 9}), nullptr, nullptr, c);
              }),
              HasSubstr("npu_moe_init_routing_v2: expert_idx entry 1 is 9"));
  c.range_start = 3, c.range_end = 2;
  EXPECT_THAT(error_of([&] {
                opt::npu_moe_init_routing_v2(x, i32({2, 1}, {0, 1}), nullptr, nullptr, c);
              }),
              HasSubstr("active_expert_range"));
  InitRoutingV1Config v1;
  EXPECT_THAT(error_of([&] {
                ref::npu_moe_init_routing(x, i32({2, 1}, {0, 0}), i32({2, 1}, {0, 1}), v1);
              }),
              HasSubstr("row_idx must be a permutation"));
  const Tensor s = i32({3}, {0, 0, 1});
  TokenUnpermuteArgs a;
  const Tensor t = rows(DType::kF32, 3, 2, 1);
  a.permuted = &t, a.indices = &s;
  EXPECT_THAT(error_of([&] { ref::npu_moe_token_unpermute(a); }),
              HasSubstr("sorted_indices must be a permutation"));
}

// ---- verdicts on the goldens -----------------------------------------------------------------

// Runs `impl` on every case of `op` whose name starts with `prefix`; returns how many cases it
// fails (some output stage not PASS) and how many it was run on.
std::pair<int, int> failures(const std::string& op, const std::string& prefix,
                             const conf::Kernel& impl) {
  const conf::OpDef* def = conf::OpRegistry::instance().find(op);
  EXPECT_NE(def, nullptr) << op;
  if (!def) return {0, 0};
  const conf::Fixture fx = conf::generate_fixture(*def);
  int failed = 0, run = 0;
  for (const conf::Case& c : fx.cases) {
    if (c.id.rfind(op + "/" + prefix, 0) != 0) continue;
    ++run;
    TensorMap out;
    impl(c.params, c.inputs, out);
    bool ok = true;
    for (const conf::Stage& st : c.stages)
      if (st.output && out.count(st.name))
        ok = ok && conf::verify_stage(st, out.at(st.name)).verdict == conf::Verdict::kPass;
    failed += !ok;
  }
  return {failed, run};
}

TEST(Verdicts, PlantedDispatchBugsFailTheirGoldensAndTheOptimizedKernelsPass) {
  const conf::OpDef* v2 = conf::OpRegistry::instance().find("npu_moe_init_routing_v2");
  ASSERT_NE(v2, nullptr);
  EXPECT_EQ(failures("npu_moe_init_routing_v2", "", v2->optimized).first, 0);
  // Unstable sort: ties in reverse flat order (the gather form rebuilt from that order).
  const conf::Kernel unstable = [&](const conf::Params& p, const TensorMap& in, TensorMap& out) {
    v2->reference(p, in, out);
    const Tensor& ids = in.at("expert_idx");
    const int64_t nk = ids.numel();
    std::vector<int32_t> perm(static_cast<size_t>(nk));
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) {
      const int32_t ia = ids.data<int32_t>()[a], ib = ids.data<int32_t>()[b];
      return ia != ib ? ia < ib : a > b;
    });
    Tensor& eri = out.at("expanded_row_idx");
    if (eri.numel() != nk) return;
    std::vector<int32_t> g = eri.to_vector<int32_t>();
    for (int64_t i = 0; i < nk; ++i)
      if (g[perm[i]] >= 0) g[perm[i]] = static_cast<int32_t>(i);
    eri = Tensor::from<int32_t>(eri.shape(), g);
  };
  auto [f1, n1] = failures("npu_moe_init_routing_v2", "stable_dup", unstable);
  EXPECT_GT(n1, 0);
  EXPECT_EQ(f1, n1);
  // Inactive rows counted: count-form expert_tokens over every id of the range's width.
  const conf::Kernel counts_inactive = [&](const conf::Params& p, const TensorMap& in,
                                           TensorMap& out) {
    v2->reference(p, in, out);
    Tensor& et = out.at("expert_tokens");
    if (et.rank() == 1 && et.numel()) et.data<int64_t>()[0] += 1;
  };
  auto [f2, n2] = failures("npu_moe_init_routing_v2", "inactive_range_2_6", counts_inactive);
  EXPECT_GT(n2, 0);
  EXPECT_GE(f2, 2);
  // Finalize: the other index convention fails the convention separators.
  const conf::OpDef* fin = conf::OpRegistry::instance().find("npu_moe_finalize_routing");
  ASSERT_NE(fin, nullptr);
  EXPECT_EQ(failures("npu_moe_finalize_routing", "", fin->optimized).first, 0);
  const conf::Kernel swapped = [&](const conf::Params& p, const TensorMap& in, TensorMap& out) {
    conf::Params q = p;
    q["drop_pad_mode"] = (p["drop_pad_mode"].get<int>() + 2) % 4;
    fin->optimized(q, in, out);
  };
  auto [f3, n3] = failures("npu_moe_finalize_routing", "index_convention", swapped);
  EXPECT_EQ(n3, 4);
  EXPECT_EQ(f3, 4);
  auto [f4, n4] = failures("npu_moe_finalize_routing", "random", swapped);
  EXPECT_EQ(f4, n4 - 1);  // all but random_*_n1_k1, where both conventions read entry 0
  const conf::OpDef* un = conf::OpRegistry::instance().find("npu_moe_token_unpermute");
  ASSERT_NE(un, nullptr);
  EXPECT_EQ(failures("npu_moe_token_unpermute", "", un->optimized).first, 0);
}

}  // namespace
}  // namespace qconf
