// Op: get_decompose_dim (vllm-ascend W4A4 FlatQuant, seed 002): the sizes (left, right) of
// the two Kronecker transforms of an input dimension n.
// The math lives in reference/ops/index.cpp and optimized/ops/index.cpp.
#include <cstdint>
#include <vector>

#include "qconf/conformance/op.h"
#include "qconf/ops/index.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace qconf::conf {
namespace conformance_ops_get_decompose_dim {

constexpr const char* kOp = "get_decompose_dim";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> notes() {
  return {
      {"UpstreamUnitTestLiteral",
       {"BASIC",
        "Literal oracles of vllm-ascend tests/ut/quantization/methods/a2/test_w4a4_flatquant.py "
        "(notes/vllm_ascend_quant.md §E): 1024 -> (32, 32), 768 -> (24, 32), 100 -> (10, 10), "
        "99 -> (9, 11).",
        "A port that disagrees with upstream's own unit test."}},
      {"FactorOrder",
       {"FUNCTIONALITY",
        "The function returns (a - b, a + b): the smaller factor first, used as left_trans_dim "
        "(99 -> (9, 11), 768 -> (24, 32)).",
        "Swapped factors give left_trans/right_trans parameters of transposed sizes: the "
        "checkpoint does not load, or the Kronecker product is applied the wrong way round."}},
      {"SameParityPair",
       {"FUNCTIONALITY",
        "Fermat's search returns the factor pair of the SAME parity closest together, not the "
        "closest factor pair: 12 -> (2, 6) not (3, 4), 20 -> (2, 10) not (4, 5), 28 -> (2, 14) "
        "not (4, 7), 44 -> (2, 22) not (4, 11). The vector also holds n where both readings "
        "agree (24, 48, 60).",
        "A port that searches the divisor closest to sqrt(n) builds transforms of other sizes "
        "for n = 4m whenever m's closest pair has odd members."}},
      {"PerfectSquare",
       {"EDGE_CASE", "n = k^2 stops at a = k with b = 0: (k, k).",
        "An off-by-one start (a = floor(sqrt(n)) + 1) skips the square and returns a worse "
        "pair."}},
      {"SmallN",
       {"EDGE_CASE",
        "n = 0 -> (0, 0), n = 1 -> (1, 1), n = 3 -> (1, 3), n = 4 -> (2, 2) and other tiny n.",
        "Guards such as d >= 2 or special-casing 0 and 1 differently from the Python."}},
      {"Prime",
       {"EDGE_CASE",
        "Odd primes: the only pair is (1, n); the loop runs (n + 1) / 2 - ceil(sqrt(n)) times "
        "(999983: about 5e5 iterations).",
        "Ports that cap the search, or stop at the first divisor above 1."}},
      {"LargeSqrtPrecision",
       {"EDGE_CASE",
        "n near 2^53 and 2^63, where the float square root matters: squares k^2 (k = "
        "94906265, 94906267, 2^31, 3037000499), k^2 - 1, a pair (k - 77000, k + 77000) found "
        "at the first step, and n = K^2 + 2 (K = 3036932113) whose double rounds to K^2. "
        "Python's int(math.sqrt(n)) + 1-if-short gives exactly ceil(sqrt(n)) on all of them.",
        "A float32 sqrt starts tens of units off (3037000449 instead of 3037000499) and misses "
        "the pair; ceil(sqrt(double(n))) starts at K for n = K^2 + 2, one below ceil(sqrt(n)), "
        "and takes the square root of a negative number."}},
      {"ModelHiddenSizes",
       {"FUNCTIONALITY",
        "Input sizes of real models (896 .. 27648), the values the FlatQuant loader meets.",
        "Any deviation changes the shapes of left_trans/right_trans of real checkpoints."}},
      {"ScalarInput",
       {"EDGE_CASE", "A 0-d int64 input (upstream takes a Python int).",
        "Shape handling of the batch wrapper."}},
      {"Sweep",
       {"BASIC", "Every n in [1, 1024] with n % 4 != 2 (n % 4 == 2 never terminates upstream).",
        "Dense coverage of small n."}},
      {"Random",
       {"BASIC",
        "Seeded uniform n in [1, 10^6]; n = 2 (mod 4) is replaced by n + 1 (the upstream loop "
        "never ends on it).",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec literal(std::string name, std::string comment, std::vector<std::string> flags,
                 std::vector<int64_t> n) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  const int64_t size = static_cast<int64_t>(n.size());
  c.inputs["n"] = Tensor::from<int64_t>({size}, n);
  return c;
}

CaseSpec random_case(const std::string& name, Shape shape) {
  CaseSpec c;
  c.name = name;
  c.comment = "uniform n in [1, 1e6] (n = 2 mod 4 -> n + 1), shape " + shape_str(shape);
  c.flags = {"Random"};
  Tensor t = gen::int_tensor(DType::kI64, shape, 1, 1000000,
                             rng::seed_from_string(std::string(kOp) + "/" + name), 0);
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.data<int64_t>()[i] % 4 == 2) ++t.data<int64_t>()[i];
  c.inputs["n"] = std::move(t);
  return c;
}

std::vector<CaseSpec> cases() {
  std::vector<CaseSpec> v;
  v.push_back(literal("upstream_unit_test_literals",
                      "1024 -> (32, 32), 768 -> (24, 32), 100 -> (10, 10), 99 -> (9, 11)",
                      {"UpstreamUnitTestLiteral", "FactorOrder", "PerfectSquare"},
                      {1024, 768, 100, 99}));
  v.push_back(literal("same_parity_not_closest",
                      "12 -> (2, 6), 20 -> (2, 10), 28 -> (2, 14), 44 -> (2, 22); 24, 48, 60 "
                      "agree with the closest pair",
                      {"SameParityPair", "FactorOrder"}, {12, 20, 28, 44, 24, 48, 60}));
  v.push_back(literal("small_n", "0 -> (0, 0), 1 -> (1, 1), 3 -> (1, 3), 4 -> (2, 2), ...",
                      {"SmallN", "PerfectSquare"}, {0, 1, 3, 4, 5, 7, 8, 9, 11, 15, 16, 17}));
  v.push_back(
      literal("primes", "odd primes: (1, p)", {"Prime"}, {3, 5, 7, 4093, 65521, 999983, 1000003}));
  v.push_back(literal(
      "large_sqrt_precision",
      "94906265^2, 94906267^2 (either side of 2^53), 2^62, 3037000499^2 (the largest square "
      "below 2^63), 3037000499^2 - 1, 3037000499^2 - 77000^2, 3036932113^2 + 2",
      {"LargeSqrtPrecision", "PerfectSquare"},
      {9007199136250225, 9007199515875289, int64_t{1} << 62, 9223372030926249001,
       9223372030926249000, 9223372024997249001, 9222956658970644771}));
  v.push_back(literal("model_hidden_sizes", "input sizes of real models",
                      {"ModelHiddenSizes", "FactorOrder"},
                      {896,  1024, 1536,  2048,  2560,  3072,  3584,  4096,  5120,  6144,
                       7168, 8192, 11008, 12288, 13824, 14336, 16384, 18432, 25600, 27648}));
  {
    CaseSpec c;
    c.name = "scalar_input";
    c.comment = "a 0-d input: 7168 -> (64, 112)";
    c.flags = {"ScalarInput", "ModelHiddenSizes"};
    c.inputs["n"] = Tensor::from<int64_t>(Shape{}, std::vector<int64_t>{7168});
    v.push_back(std::move(c));
  }
  {
    std::vector<int64_t> n;
    for (int64_t i = 1; i <= 1024; ++i)
      if (i % 4 != 2) n.push_back(i);
    v.push_back(literal("sweep_1_to_1024", "every n in [1, 1024] with n % 4 != 2",
                        {"Sweep", "Prime", "PerfectSquare", "SameParityPair"}, n));
  }
  v.push_back(random_case("random_64", {64}));
  v.push_back(random_case("random_3x5", {3, 5}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_def() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "vllm-ascend W4A4 FlatQuant get_decompose_dim(n) -> (a - b, a + b): Fermat's search from "
      "a = ceil(sqrt(n)) for the first a with a*a - n a perfect square b*b. The smaller factor "
      "comes first; the pair has equal parity (12 -> (2, 6)). int64 n of any shape, n >= 0, "
      "n % 4 != 2 (the upstream loop never ends there).";
  d.sources = {"seeds/002 (vllm-ascend W4A4 FlatQuant PR, get_decompose_dim) [code]",
               "notes/vllm_ascend_quant.md §E, notes/torch_npu_semantics.md §12 [test: "
               "tests/ut/quantization/methods/a2/test_w4a4_flatquant.py]"};
  d.inputs = {"n"};
  d.stages = {{"start", false, "a before the loop: ceil(sqrt(n)) (int(math.sqrt(n)), +1 if short)"},
              {"left_trans_dim", true, "a - b"},
              {"right_trans_dim", true, "a + b"}};
  d.notes = notes();
  d.reference = [](const Params&, const TensorMap& in, TensorMap& out) {
    ref::get_decompose_dim(in.at("n"), &out["start"], &out["left_trans_dim"],
                           &out["right_trans_dim"]);
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params&, const TensorMap& in, TensorMap& out) {
    opt::get_decompose_dim(in.at("n"), &out["left_trans_dim"], &out["right_trans_dim"]);
  };
#endif
  d.cases = cases;
  return d;
}

QCONF_REGISTER_OP(make_def);

}  // namespace conformance_ops_get_decompose_dim
}  // namespace qconf::conf
