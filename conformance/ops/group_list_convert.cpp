// Op: group_list_convert: the three group_list formats of the MoE path (cumsum, count,
// key_value) converted into each other, exactly or as vllm-ascend's cumsum_group_list does.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_group_list_convert {

constexpr const char* kOp = "group_list_convert";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"UpstreamUnitTestLiteral",
       {"BASIC",
        "The literals of vllm-ascend tests/ut/ops/test_moe_mlp.py TestCumsumGroupList "
        "(notes/vllm_ascend_quant.md §E): cumsum [0, 2, 3, 3] <-> count [0, 2, 1, 0] <-> "
        "key_value [[1, 2], [2, 1], [0, 0], [0, 0]], expert_num 4. Upstream tests the "
        "conversions count -> cumsum, cumsum -> count and cumsum -> cumsum.",
        "A port that disagrees with upstream's own unit test."}},
      {"KeyValueLayout",
       {"FUNCTIONALITY",
        "key_value is int64 [E, 2]: (expert id, count) of the experts with count > 0, in "
        "increasing id order, packed first; the remaining rows are (0, 0) "
        "(notes/torch_npu_semantics.md §8, §10; fill from the unit-test literal).",
        "Listing empty experts, another order, or another padding misroutes every group of an "
        "int8 m-grouped npu_grouped_matmul."}},
      {"EmptyExperts",
       {"EDGE_CASE",
        "Experts without tokens at the start, in the middle and at the end of the list.",
        "Ports that skip leading zeros or stop at the first empty expert."}},
      {"SingleExpert",
       {"EDGE_CASE", "Every token on one expert: one key_value pair, a step in the cumsum.",
        "Off-by-one in the range fill of key_value -> cumsum."}},
      {"ExpertZeroFirst",
       {"EDGE_CASE",
        "Expert 0 has tokens: its key_value row (0, c) differs from a padding row only by its "
        "count.",
        "A port that treats id 0 as padding drops expert 0's tokens."}},
      {"ZeroTotal",
       {"EDGE_CASE", "No tokens at all: cumsum and counts are zero, key_value is all (0, 0).",
        "Degenerate on purpose: pins the all-padding layout."}},
      {"KvTailFill",
       {"DIVERGENCE",
        "vllm-ascend's key_value -> cumsum (moe_mlp.py cumsum_group_list, src 2 -> dst 0) fills "
        "the experts from the last listed id on with active_num, default 0: the unit-test "
        "key_value gives [0, 2, 0, 0] with active_num 0 and [0, 2, 3, 3] with active_num = 3 "
        "(the total), which the exact reading always gives.",
        "A caller that relies on the defaults gets a cumsum that drops to 0 from the last "
        "non-empty expert on (that expert included): the grouped matmul sees negative groups."}},
      {"UncheckedDecreasingCumsum",
       {"LEGACY",
        "vllm-ascend's cumsum -> count is torch.diff with the first element kept, without "
        "validation: [0, 3, 2, 5] -> [0, 3, -1, 3]. The exact reading rejects a decreasing "
        "cumsum (std::invalid_argument).",
        "Pins upstream's behaviour on corrupt input; a port that clamps or validates differs."}},
      {"Random",
       {"BASIC",
        "Seeded counts in [0, 9] with about a third of the experts empty, over assorted expert "
        "numbers; the cumsum and key_value inputs are built from them.",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
Tensor vec(const std::vector<int64_t>& v) {
  return Tensor::from<int64_t>({static_cast<int64_t>(v.size())}, v);
}

Tensor kv(const std::vector<std::pair<int64_t, int64_t>>& rows) {
  std::vector<int64_t> flat;
  for (auto [id, cnt] : rows) {
    flat.push_back(id);
    flat.push_back(cnt);
  }
  return Tensor::from<int64_t>({static_cast<int64_t>(rows.size()), 2}, flat);
}

CaseSpec conv(std::string name, std::string comment, std::vector<std::string> flags, Tensor in,
              const std::string& src, const std::string& dst,
              const std::string& semantics = "exact", int64_t expert_num = -1,
              int64_t active_num = -1) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.params["semantics"] = semantics;
  c.params["src"] = src;
  c.params["dst"] = dst;
  if (expert_num >= 0) c.params["expert_num"] = expert_num;
  if (active_num >= 0) c.params["active_num"] = active_num;
  c.inputs["group_list"] = std::move(in);
  return c;
}

// Counts in [0, 9], negative draws clamped to 0 (about a third of the experts empty).
std::vector<int64_t> random_counts(const std::string& name, int64_t experts) {
  Tensor t = gen::int_tensor(DType::kI64, {experts}, -4, 9,
                             rng::seed_from_string(std::string(kOp) + "/" + name), 0);
  std::vector<int64_t> c = t.to_vector<int64_t>();
  for (int64_t& x : c) x = std::max<int64_t>(x, 0);
  return c;
}

Tensor counts_as(const std::vector<int64_t>& counts, GroupListType t) {
  GroupListConversion cv;
  cv.src = GroupListType::kCount;
  cv.dst = t;
  return ref::group_list_convert(vec(counts), cv);
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  const std::vector<std::string> ut = {"UpstreamUnitTestLiteral"};
  const Tensor ut_cumsum = vec({0, 2, 3, 3}), ut_count = vec({0, 2, 1, 0});
  const Tensor ut_kv = kv({{1, 2}, {2, 1}, {0, 0}, {0, 0}});
  // The unit-test literals, every direction, exact reading.
  v.push_back(conv("ut_cumsum_to_count", "[0,2,3,3] -> [0,2,1,0]",
                   {"UpstreamUnitTestLiteral", "EmptyExperts"}, ut_cumsum, "cumsum", "count"));
  v.push_back(
      conv("ut_count_to_cumsum", "[0,2,1,0] -> [0,2,3,3]", ut, ut_count, "count", "cumsum"));
  v.push_back(conv("ut_count_to_key_value", "[0,2,1,0] -> [[1,2],[2,1],[0,0],[0,0]]",
                   {"UpstreamUnitTestLiteral", "KeyValueLayout"}, ut_count, "count", "key_value"));
  v.push_back(conv("ut_cumsum_to_key_value", "[0,2,3,3] -> [[1,2],[2,1],[0,0],[0,0]]",
                   {"UpstreamUnitTestLiteral", "KeyValueLayout"}, ut_cumsum, "cumsum",
                   "key_value"));
  v.push_back(conv("ut_key_value_to_cumsum", "[[1,2],[2,1],[0,0],[0,0]] -> [0,2,3,3]",
                   {"UpstreamUnitTestLiteral", "KeyValueLayout"}, ut_kv, "key_value", "cumsum",
                   "exact", 4));
  v.push_back(conv("ut_key_value_to_count", "[[1,2],[2,1],[0,0],[0,0]] -> [0,2,1,0]",
                   {"UpstreamUnitTestLiteral", "KeyValueLayout"}, ut_kv, "key_value", "count",
                   "exact", 4));
  // The directions upstream tests, through vllm-ascend's own function.
  v.push_back(conv("vllm_ascend_ut_cumsum_to_count", "upstream (0, 1): [0,2,3,3] -> [0,2,1,0]", ut,
                   ut_cumsum, "cumsum", "count", "vllm_ascend"));
  v.push_back(conv("vllm_ascend_ut_count_to_cumsum", "upstream (1, 0): [0,2,1,0] -> [0,2,3,3]", ut,
                   ut_count, "count", "cumsum", "vllm_ascend"));
  v.push_back(conv("vllm_ascend_ut_cumsum_identity", "upstream (0, 0): returned unchanged", ut,
                   ut_cumsum, "cumsum", "cumsum", "vllm_ascend"));
  // key_value -> cumsum, upstream reading: the tail fill.
  v.push_back(conv("vllm_ascend_key_value_to_cumsum_active_num_total",
                   "active_num = 3 (the total): [0,2,3,3], as the exact reading",
                   {"UpstreamUnitTestLiteral", "KvTailFill"}, ut_kv, "key_value", "cumsum",
                   "vllm_ascend", 4, 3));
  v.push_back(conv("vllm_ascend_key_value_to_cumsum_active_num_default",
                   "active_num = 0 (the default): [0,2,0,0]",
                   {"UpstreamUnitTestLiteral", "KvTailFill"}, ut_kv, "key_value", "cumsum",
                   "vllm_ascend", 4, 0));
  v.push_back(conv("vllm_ascend_decreasing_cumsum", "[0,3,2,5] -> [0,3,-1,3] (no validation)",
                   {"UncheckedDecreasingCumsum"}, vec({0, 3, 2, 5}), "cumsum", "count",
                   "vllm_ascend"));
  // Edge cases.
  const std::vector<int64_t> ends = {0, 0, 5, 0, 3, 0, 0, 1, 0, 0};
  v.push_back(conv("empty_ends_count_to_key_value", "counts [0,0,5,0,3,0,0,1,0,0]",
                   {"EmptyExperts", "KeyValueLayout"}, vec(ends), "count", "key_value"));
  v.push_back(conv("empty_ends_key_value_to_cumsum", "pairs (2,5), (4,3), (7,1) of 10 experts",
                   {"EmptyExperts", "KeyValueLayout"}, counts_as(ends, GroupListType::kKeyValue),
                   "key_value", "cumsum", "exact", 10));
  v.push_back(conv("empty_ends_vllm_ascend_key_value_to_cumsum",
                   "pairs (2,5), (4,3), (7,1) of 10 experts, active_num 9 (the total)",
                   {"EmptyExperts", "KvTailFill"}, counts_as(ends, GroupListType::kKeyValue),
                   "key_value", "cumsum", "vllm_ascend", 10, 9));
  v.push_back(conv("empty_ends_cumsum_to_count", "cumsum [0,0,5,5,8,8,8,9,9,9]", {"EmptyExperts"},
                   counts_as(ends, GroupListType::kCumsum), "cumsum", "count"));
  const std::vector<int64_t> single = {0, 0, 0, 7, 0, 0};
  v.push_back(conv("single_expert_count_to_key_value", "all 7 tokens on expert 3",
                   {"SingleExpert", "KeyValueLayout"}, vec(single), "count", "key_value"));
  v.push_back(conv("single_expert_key_value_to_cumsum", "[[3,7],(0,0) x 5] -> [0,0,0,7,7,7]",
                   {"SingleExpert"}, counts_as(single, GroupListType::kKeyValue), "key_value",
                   "cumsum", "exact", 6));
  v.push_back(conv("single_expert_vllm_ascend_key_value_to_cumsum",
                   "[[3,7],(0,0) x 5], active_num 7 -> [0,0,0,7,7,7]",
                   {"SingleExpert", "KvTailFill"}, counts_as(single, GroupListType::kKeyValue),
                   "key_value", "cumsum", "vllm_ascend", 6, 7));
  const Tensor zero_first = kv({{0, 4}, {5, 1}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0, 0}});
  v.push_back(conv("expert_zero_first_key_value_to_cumsum",
                   "[[0,4],[5,1],(0,0) x 6] -> [4,4,4,4,4,5,5,5]", {"ExpertZeroFirst"}, zero_first,
                   "key_value", "cumsum", "exact", 8));
  v.push_back(conv("expert_zero_first_vllm_ascend_key_value_to_cumsum",
                   "[[0,4],[5,1],(0,0) x 6], active_num 5 -> [4,4,4,4,4,5,5,5]",
                   {"ExpertZeroFirst", "KvTailFill"}, zero_first, "key_value", "cumsum",
                   "vllm_ascend", 8, 5));
  v.push_back(conv("expert_zero_first_count_to_key_value", "[4,0,0,0,0,1,0,0]",
                   {"ExpertZeroFirst", "KeyValueLayout"}, vec({4, 0, 0, 0, 0, 1, 0, 0}), "count",
                   "key_value"));
  v.push_back(conv("zero_total_count_to_key_value", "no tokens: all (0, 0)", {"ZeroTotal"},
                   vec(std::vector<int64_t>(6, 0)), "count", "key_value"));
  v.push_back(conv("zero_total_key_value_to_cumsum", "no tokens: all 0", {"ZeroTotal"},
                   kv(std::vector<std::pair<int64_t, int64_t>>(6, {0, 0})), "key_value", "cumsum",
                   "exact", 6));
  // Random sets.
  for (auto [e, src, dst] : std::vector<std::tuple<int64_t, GroupListType, GroupListType>>{
           {16, GroupListType::kCount, GroupListType::kKeyValue},
           {37, GroupListType::kCumsum, GroupListType::kCount},
           {64, GroupListType::kKeyValue, GroupListType::kCumsum},
           {128, GroupListType::kCount, GroupListType::kCumsum},
           {256, GroupListType::kCumsum, GroupListType::kKeyValue},
           {96, GroupListType::kKeyValue, GroupListType::kCount}}) {
    const std::string s = group_list_type_name(src), d = group_list_type_name(dst);
    const std::string name = "random_" + s + "_to_" + d + "_" + std::to_string(e);
    v.push_back(conv(name, std::to_string(e) + " experts, seeded counts", {"Random"},
                     counts_as(random_counts(name, e), src), s, d, "exact",
                     src == GroupListType::kKeyValue ? e : -1));
  }
  return v;
}

std::map<std::string, Check> oracle(const Params&, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  const Tensor& g = in.at("group_list");
  bool all_zero = true;
  for (int64_t i = 0; i < g.numel(); ++i) all_zero = all_zero && g.data<int64_t>()[i] == 0;
  if (all_zero) m["counts"].degenerate_ok = m["group_list"].degenerate_ok = true;
  return m;
}

GroupListConversion conversion(const Params& p) {
  GroupListConversion c;
  c.src = parse_group_list_type(param_str(p, "src", "cumsum"));
  c.dst = parse_group_list_type(param_str(p, "dst", "count"));
  const std::string s = param_str(p, "semantics", "exact");
  if (s != "exact" && s != "vllm_ascend")
    throw std::invalid_argument(std::string(kOp) +
                                ": param semantics must be exact or vllm_ascend, got " + s);
  c.semantics = s == "exact" ? GroupListSemantics::kExact : GroupListSemantics::kVllmAscend;
  c.expert_num = param_int(p, "expert_num", -1);
  c.active_num = param_int(p, "active_num", 0);
  return c;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "MoE group_list formats converted into each other: cumsum (0) int64 [E], count (1) int64 "
      "[E], key_value (2) int64 [E, 2] = (id, count) of the non-empty experts in increasing id, "
      "then (0, 0) rows. Params: src, dst, semantics (exact: through the per-expert counts, "
      "validated; vllm_ascend: moe_mlp.py cumsum_group_list literally), expert_num (experts of "
      "a key_value source; default its rows, or 0 for vllm_ascend), active_num (vllm_ascend "
      "key_value -> cumsum tail value, default 0).";
  d.sources = {"notes/torch_npu_semantics.md §8, §10",
               "notes/vllm_ascend_quant.md §C (group_list_type), §E [test: "
               "tests/ut/ops/test_moe_mlp.py TestCumsumGroupList]",
               "vllm-ascend vllm_ascend/ops/fused_moe/moe_mlp.py cumsum_group_list @182b75e "
               "[code]",
               "CANN MoeInitRouting docs: expertTokensCountOrCumsumOut key_value shape "
               "[expertNum, 2] [doc]"};
  d.inputs = {"group_list"};
  d.stages = {{"counts", false, "per-expert token counts (exact semantics only)"},
              {"group_list", true, "the group list in the dst format"}};
  d.variants = {{"semantics",
                 {"exact", "vllm_ascend"},
                 "exact: every pair of formats, validated; vllm_ascend: upstream "
                 "cumsum_group_list (only count->cumsum, cumsum->count, key_value->cumsum and "
                 "identity; key_value->cumsum fills the tail with active_num)"},
                {"src", {"cumsum", "count", "key_value"}, "format of the input"},
                {"dst", {"count", "cumsum", "key_value"}, "format of the output"}};
  d.notes = notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    const GroupListConversion c = conversion(p);
    if (c.semantics == GroupListSemantics::kExact)
      out["counts"] = ref::group_list_counts(in.at("group_list"), c.src, c.expert_num);
    out["group_list"] = ref::group_list_convert(in.at("group_list"), c);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["group_list"] = opt::group_list_convert(in.at("group_list"), conversion(p));
  };
#endif
  d.oracle = oracle;
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_group_list_convert
}  // namespace qconf::conf
