// Op: eplb_default_placement: vllm-ascend's default EPLB physical layout
// (eplb_utils.py generate_global_placement), the logical expert of every physical slot.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"

namespace qconf::conf {
namespace conformance_ops_eplb_default_placement {

constexpr const char* kOp = "eplb_default_placement";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"NoRedundancy",
       {"BASIC", "No redundant expert: the logical experts in order, ep_size rows.",
        "A transposed or strided layout."}},
      {"RedundantCopiesAppended",
       {"FUNCTIONALITY",
        "Without shared experts the slots are concatenate(arange(n), arange(n_redundant) % n) "
        "reshaped to (ep_size, -1): copies of experts 0, 1, ... come after all logical experts, "
        "so the flat slot is the global physical id (it must agree with vLLM's checkpoint "
        "loading, RoutedExperts.make_expert_params_mapping).",
        "A port that spreads the copies per rank loads the wrong weights into the redundant "
        "slots."}},
      {"RedundantWrapsModN",
       {"EDGE_CASE", "More redundant slots than logical experts: the copies wrap modulo n.",
        "Out-of-range ids."}},
      {"SharedMixPlacement",
       {"FUNCTIONALITY",
        "With shared experts (mix placement): np.array_split of the routed experts over the "
        "ranks, redundant copy i appended to group -(i % ep_size + 1) as that group's last "
        "expert + 1 (mod n), then shared expert n + r % num_shared appended to rank r.",
        "Any other distribution of copies or shared experts."}},
      {"UnevenArraySplit",
       {"EDGE_CASE",
        "n % ep_size != 0 in mix placement: the first groups of array_split are one longer and "
        "the redundant copies even out the last ones.",
        "A port using equal blocks fails the torch.tensor shape or shifts ids."}},
      {"EmptyGroupLiteralJ",
       {"LEGACY",
        "Mix placement with fewer routed experts than ranks: an empty group receives the literal "
        "j = i % ep_size + 1 (not an expert id modulo n), which can equal a shared expert's id "
        "and repeat within a rank.",
        "Pins upstream's output on this corner; such a placement is later rejected by "
        "eplb_log2phy (a repeated expert in a rank)."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec c(std::string name, std::string comment, std::vector<std::string> flags,
           int64_t num_experts, int64_t ep_size, int64_t num_redundant, int64_t num_shared) {
  CaseSpec s;
  s.name = std::move(name);
  s.comment = std::move(comment);
  s.flags = std::move(flags);
  s.params["num_experts"] = num_experts;
  s.params["ep_size"] = ep_size;
  s.params["num_redundant"] = num_redundant;
  s.params["num_shared_experts"] = num_shared;
  return s;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(c("n8_ep4", "[[0,1],[2,3],[4,5],[6,7]]", {"NoRedundancy"}, 8, 4, 0, 0));
  v.push_back(c("n8_ep4_red4", "[[0,1,2],[3,4,5],[6,7,0],[1,2,3]]", {"RedundantCopiesAppended"}, 8,
                4, 4, 0));
  v.push_back(c("n256_ep16_red16", "DeepSeek-like: 256 experts + 16 copies over 16 ranks",
                {"RedundantCopiesAppended"}, 256, 16, 16, 0));
  v.push_back(c("n3_ep3_red6", "every rank holds 0, 1, 2", {"RedundantWrapsModN"}, 3, 3, 6, 0));
  v.push_back(c("mix_n8_shared1_ep4", "[[0,1,8],[2,3,8],[4,5,8],[6,7,8]]", {"SharedMixPlacement"},
                9, 4, 0, 1));
  v.push_back(c("mix_n10_shared1_ep4_red2", "[[0,1,2,10],[3,4,5,10],[6,7,8,10],[8,9,0,10]]",
                {"SharedMixPlacement", "UnevenArraySplit"}, 11, 4, 2, 1));
  v.push_back(c("mix_n8_shared2_ep4_red4", "[[0,1,2,8],[2,3,4,9],[4,5,6,8],[6,7,0,9]]",
                {"SharedMixPlacement"}, 10, 4, 4, 2));
  v.push_back(c("mix_n2_shared1_ep4_red2", "[[0,2],[1,2],[2,2],[1,2]]: literal j in empty groups",
                {"EmptyGroupLiteralJ", "SharedMixPlacement"}, 3, 4, 2, 1));
  return v;
}

template <typename Fn>
Kernel kernel(Fn fn) {
  return [fn](const Params& p, const TensorMap&, TensorMap& out) {
    out["global_placement"] =
        fn(param_int(p, "num_experts", 0), param_int(p, "ep_size", 1),
           param_int(p, "num_redundant", 0), param_int(p, "num_shared_experts", 0));
  };
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend generate_global_placement(n_expert, ep_size, n_redundant, "
      "num_shared_experts) -> int32 [ep_size, slots]: the logical expert of every physical "
      "slot. No inputs; params num_experts (routed + shared), ep_size, num_redundant, "
      "num_shared_experts.";
  d.sources = {
      "vllm-ascend vllm_ascend/eplb/core/eplb_utils.py generate_global_placement "
      "@182b75e [code]",
      "notes/vllm_ascend_quant.md §C (EPLB)"};
  d.inputs = {};
  d.stages = {{"global_placement", true, "int32 [ep_size, slots]: logical expert per slot"}};
  d.notes = notes();
  d.reference = kernel(ref::eplb_default_placement);
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = kernel(opt::eplb_default_placement);
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_eplb_default_placement
}  // namespace qconf::conf
