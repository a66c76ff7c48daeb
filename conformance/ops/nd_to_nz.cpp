// Op: nd_to_nz, ND -> FRACTAL_NZ (ACL format 29), as torch_npu.npu_format_cast(x, 29) and
// aclnnNpuFormatCast lay weights out for the cube unit (vllm-ascend maybe_trans_nz).
//
// 1. flags (each explained); 2. cases: named vectors, then seeded random sets; 3. the OpDef.
// The math lives in reference/ops/nz.cpp and optimized/ops/nz.cpp; vector builders in
// conformance/ops/nz_vectors.h.
#include "nz_vectors.h"

namespace qconf::conf {
namespace conformance_ops_nd_to_nz {

using namespace nz_vectors;  // NOLINT

constexpr const char* kOp = "nd_to_nz";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> nd_to_nz_notes() {
  return {
      {"ElementMap",
       {"FUNCTIONALITY",
        "Every element's bits encode its (row, column) (see nz_vectors.h), so the vector checks "
        "nz[..., j/n0, i/16, i%16, j%n0] = nd[..., i, j] for every element.",
        "Any other element map moves at least one coded value; the failure message's hex bits "
        "name the row and column the value came from."}},
      {"ColumnBlocksOutermost",
       {"FUNCTIONALITY",
        "Storage is [..., N1, M1, 16, n0]: the fractals of one column block are contiguous "
        "('N' order outside). M1 == N1 here, so a port that stores row blocks outermost "
        "([M1, N1, 16, n0]) produces the same shape and different bytes.",
        "The matmul reads the wrong fractal for every block off the diagonal."}},
      {"FractalRowMajor",
       {"FUNCTIONALITY",
        "Inside a fractal, each of the 16 rows is n0 contiguous values ('z' order inside). With "
        "n0 == 16 a port that stores each fractal column-major (as FRACTAL_Z/ZN do) has the "
        "same shape.",
        "Every fractal is transposed: the cube multiplies W^T blocks."}},
      {"RowsAreM",
       {"FUNCTIONALITY",
        "The second-last ND dim (M) is cut into 16-row blocks and the last (N) into n0-column "
        "blocks. M == N here, so a port that swaps i and j (transposes the matrix) keeps the "
        "shape.",
        "A transposed weight: wrong results for any non-symmetric matrix."}},
      {"Int8C0Is32",
       {"FUNCTIONALITY",
        "int8 fractals are 16 x 32 (n0 = 32 bytes / 1): storage [..., ceil(N/32), M1, 16, 32].",
        "A port that uses the fp16 fractal (n0 = 16) for int8 writes [..., ceil(N/16), M1, 16, "
        "16]: wrong shape."}},
      {"Int4C0Is64",
       {"FUNCTIONALITY",
        "int4 (8 per int32 word): a fractal row is C0 = 32 bytes = 64 int4 = 8 words (notes "
        "§5); storage int32 [..., ceil(N/64), M1, 16, 8].",
        "torch_npu's shape inference caps itemsize at 2, so a port that NZ-casts the int32 "
        "words with it uses 16 words (128 int4) per row; one that keeps one int4 per byte uses "
        "32 (4 words). Both give another shape."}},
      {"Int4WordsStayWhole",
       {"FUNCTIONALITY",
        "Each word holds 8 distinct nibbles: NZ moves whole words, the nibble order inside a "
        "word never changes (element 8w+t stays in bits [4t, 4t+3]).",
        "A port that unpacks int4 to bytes and re-packs with another nibble order, or that "
        "moves bytes (2 int4) instead of words, scrambles values inside words."}},
      {"Fp32C0",
       {"DIVERGENCE",
        "float32 fractal row length: torch_npu's InferShapeNDToNZ caps itemsize at 2 ('float32 "
        "will cast to float16'), so n0 = 16 (64-byte rows; param fp32_c0=torch_npu_16, "
        "default); CANN (aclnnNpuFormatCast C0 table, TBE fractal_shape) uses C0 = 32 B / 4 = "
        "8 (fp32_c0=cann_8). The same ND input appears under both readings.",
        "A port on the other reading writes another storage shape ([.., 2, M1, 16, 16] vs "
        "[.., 3, M1, 16, 8] for N = 20). See docs/divergences.md."}},
      {"MTail",
       {"EDGE_CASE", "M is not a multiple of 16: the last row block has padding rows M .. 16*M1-1.",
        "Ports that read past the last row or leave the padding rows unwritten."}},
      {"NTail",
       {"EDGE_CASE",
        "N is not a multiple of n0: the last column block has padding columns N .. n0*N1-1.",
        "Ports that copy whole 32-byte runs past the end of a row (reading the next row's "
        "values into the padding) or leave padding unwritten."}},
      {"PaddingIsZero",
       {"FUNCTIONALITY",
        "Every padding position of the NZ tensor is zero (notes §11; the aclnn matmul docs "
        "require zero fill, since the cube reduces over the padded K).",
        "Garbage or stale memory in the padding enters every matmul that reads the padded "
        "block."}},
      {"SingleRow",
       {"EDGE_CASE", "M = 1: 15 of the 16 rows of every fractal are padding.",
        "Ports that assume M >= 16 or a full first row block."}},
      {"SingleColumn",
       {"EDGE_CASE", "N = 1: every fractal row holds one value and n0 - 1 zeros.",
        "Ports that assume N >= n0."}},
      {"SingleElement",
       {"EDGE_CASE", "M = N = 1: one value, one fractal, everything else padding.",
        "Degenerate sizes in the loop bounds."}},
      {"OneFractal",
       {"EDGE_CASE",
        "Exactly one fractal (M = 16, N = n0): the NZ bytes equal the ND bytes, only the shape "
        "changes.",
        "Checks the shape and that nothing moves; a port that writes [1, 16, 16] for fp16 "
        "(ATB's merged M1*16) must reshape."}},
      {"BatchDims",
       {"FUNCTIONALITY",
        "Rank 3 and 4: the leading dims are independent matrices, copied through in order.",
        "Ports that fold batch dims into M (then padding lands between batches only at the "
        "end) or reorder batches."}},
      {"AscDocExample",
       {"BASIC",
        "The ASC TransdataOperation doc example ND {8, 100, 30} fp16 -> NZ {8, 2, 112, 16}, "
        "with the batch cut to 1 to keep the fixture small: storage [1, 2, 7, 16, 16] (ATB "
        "merges M1 and 16 into 112). The full shape is checked in tests/ops/nz_test.cpp.",
        "Shape inference that pads M to 16 but not N (or the reverse)."}},
      {"BitPatterns",
       {"EDGE_CASE",
        "NaN payloads, signed NaN, +-Inf, -0 and subnormals: NZ copies bits, it never "
        "converts values.",
        "A port that moves values through float registers with FTZ/DAZ, or canonicalises "
        "NaNs, changes these bits."}},
      {"Random",
       {"BASIC",
        "Seeded uniform bit patterns over assorted shapes with tails (floats include NaN and "
        "Inf patterns).",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags,
                   Params params, Tensor nd) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment);
  c.flags = std::move(flags);
  c.params = std::move(params);
  c.inputs["nd"] = std::move(nd);
  return c;
}

// A coordinate case for logical shape [..., M, N] (int4: N counts int4 values).
CaseSpec coord_case(const std::string& name, const std::string& comment,
                    std::vector<std::string> flags, NzDtype d, const Shape& logical,
                    Fp32NzC0 fp32 = Fp32NzC0::kTorchNpu16) {
  const NzLayout l = nz_layout(d, fp32);
  const Shape nd = nd_storage_shape(logical, l);
  return make_case(name,
                   comment + "; ND " + std::string(nz_dtype_name(d)) + shape_str(logical) +
                       " -> NZ " + shape_str(nz_storage_shape(nd, l)),
                   std::move(flags), params_for(d, fp32), coord_tensor(l.storage, nd));
}

CaseSpec random_case(const std::string& name, NzDtype d, const Shape& logical,
                     std::vector<std::string> flags, Fp32NzC0 fp32 = Fp32NzC0::kTorchNpu16) {
  const NzLayout l = nz_layout(d, fp32);
  const Shape nd = nd_storage_shape(logical, l);
  flags.insert(flags.begin(), "Random");
  return make_case(name,
                   "uniform random bits, ND " + std::string(nz_dtype_name(d)) + shape_str(logical) +
                       " -> NZ " + shape_str(nz_storage_shape(nd, l)),
                   std::move(flags), params_for(d, fp32),
                   random_bits(l.storage, nd, std::string(kOp) + "/" + name));
}

// Special bit patterns, repeated over `shape`.
Tensor special_bits(DType storage, const Shape& shape) {
  std::vector<uint64_t> pat;
  if (storage == DType::kF16)
    pat = {0x7c01, 0x7e00, 0xfe01, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x83ff, 0x7bff, 0x3c00};
  else if (storage == DType::kBF16)
    pat = {0x7f81, 0x7fc0, 0xffc1, 0x7f80, 0xff80, 0x8000, 0x0001, 0x807f, 0x7f7f, 0x3f80};
  else
    pat = {0x7f800001, 0x7fc00000, 0xffc00001, 0x7f800000, 0xff800000,
           0x80000000, 0x00000001, 0x807fffff, 0x7f7fffff, 0x3f800000};
  Tensor t(storage, shape);
  for (int64_t k = 0; k < t.numel(); ++k) put_bits(t, k, pat[static_cast<size_t>(k) % pat.size()]);
  return t;
}

std::vector<CaseSpec> nd_to_nz_cases() {
  using D = NzDtype;
  const auto kC8 = Fp32NzC0::kCann8;
  std::vector<CaseSpec> v;
  // Element map and block order: M1 == N1 and square fractals, so every reordering mutant
  // keeps the shape and only the values can catch it.
  v.push_back(coord_case("fp16_square_blocks_17x17", "2 x 2 fractals of 16 x 16",
                         {"ElementMap", "ColumnBlocksOutermost", "FractalRowMajor", "RowsAreM"},
                         D::kFloat16, {17, 17}));
  v.push_back(coord_case("int8_blocks_17x33", "2 x 2 fractals of 16 x 32",
                         {"ElementMap", "ColumnBlocksOutermost", "Int8C0Is32"}, D::kInt8,
                         {17, 33}));
  v.push_back(coord_case("int4_blocks_17x72", "2 x 2 fractals of 16 x 64 int4 (8 words)",
                         {"ElementMap", "ColumnBlocksOutermost", "Int4C0Is64"}, D::kInt4,
                         {17, 72}));
  // Tails and padding.
  v.push_back(coord_case("fp16_tails_20x37", "M1 = 2 (12 padding rows), N1 = 3 (11 padding cols)",
                         {"ElementMap", "MTail", "NTail", "PaddingIsZero"}, D::kFloat16, {20, 37}));
  v.push_back(coord_case("bf16_tails_18x20", "M1 = 2, N1 = 2 (12 padding cols)",
                         {"ElementMap", "MTail", "NTail", "PaddingIsZero"}, D::kBFloat16,
                         {18, 20}));
  v.push_back(coord_case("int8_tails_19x45", "M1 = 2, N1 = 2 (19 padding cols)",
                         {"ElementMap", "MTail", "NTail", "PaddingIsZero", "Int8C0Is32"}, D::kInt8,
                         {19, 45}));
  v.push_back(coord_case("int4_tails_5x40", "40 int4 = 5 words: 3 padding words per row",
                         {"ElementMap", "MTail", "NTail", "PaddingIsZero", "Int4C0Is64"}, D::kInt4,
                         {5, 40}));
  {
    // 8 distinct nibbles in every word: nibble t of word (r, w) is (r + 3w + t) mod 16.
    const NzLayout l = nz_layout(D::kInt4);
    Tensor nd(DType::kI32, {17, 9});
    for (int64_t r = 0; r < 17; ++r)
      for (int64_t w = 0; w < 9; ++w) {
        uint32_t word = 0;
        for (int t = 0; t < 8; ++t) word |= static_cast<uint32_t>((r + 3 * w + t) % 16) << (4 * t);
        nd.data<int32_t>()[r * 9 + w] = static_cast<int32_t>(word);
      }
    std::string comment = "8 distinct nibbles per word; N = 72 int4 = 9 words, N1 = 2; NZ " +
                          shape_str(nz_storage_shape(nd.shape(), l));
    v.push_back(make_case("int4_distinct_nibbles_17x72", std::move(comment),
                          {"Int4WordsStayWhole", "Int4C0Is64", "MTail", "NTail"},
                          params_for(D::kInt4), std::move(nd)));
  }
  // float32: the same ND under both readings of n0.
  v.push_back(coord_case("fp32_5x20_torch_npu_16", "torch_npu reading: n0 = 16 (64-byte rows)",
                         {"Fp32C0", "ElementMap", "MTail", "NTail"}, D::kFloat32, {5, 20}));
  v.push_back(coord_case("fp32_5x20_cann_8", "CANN reading: n0 = 8 (32-byte rows)",
                         {"Fp32C0", "ElementMap", "MTail", "NTail"}, D::kFloat32, {5, 20}, kC8));
  // Degenerate sizes.
  v.push_back(coord_case("fp16_single_row_1x40", "M = 1", {"SingleRow", "NTail", "PaddingIsZero"},
                         D::kFloat16, {1, 40}));
  v.push_back(coord_case("fp16_single_column_40x1", "N = 1",
                         {"SingleColumn", "MTail", "PaddingIsZero"}, D::kFloat16, {40, 1}));
  v.push_back(coord_case("int8_single_element_1x1", "M = N = 1",
                         {"SingleElement", "PaddingIsZero", "Int8C0Is32"}, D::kInt8, {1, 1}));
  v.push_back(coord_case("fp16_one_fractal_16x16", "exactly one fractal", {"OneFractal"},
                         D::kFloat16, {16, 16}));
  v.push_back(coord_case("int8_one_fractal_16x32", "exactly one fractal",
                         {"OneFractal", "Int8C0Is32"}, D::kInt8, {16, 32}));
  // Batch dims.
  v.push_back(coord_case("int8_batch_3x5x20", "rank 3", {"BatchDims", "MTail", "NTail"}, D::kInt8,
                         {3, 5, 20}));
  v.push_back(coord_case("fp16_batch_2x1x5x18", "rank 4", {"BatchDims", "MTail", "NTail"},
                         D::kFloat16, {2, 1, 5, 18}));
  v.push_back(coord_case("fp16_asc_doc_example_1x100x30",
                         "ASC doc ND {8,100,30} -> NZ {8,2,112,16}, batch cut to 1",
                         {"AscDocExample", "MTail", "NTail"}, D::kFloat16, {1, 100, 30}));
  // Bit patterns.
  v.push_back(make_case("fp16_bit_patterns_3x20", "NaN payloads, -NaN, +-Inf, -0, subnormals",
                        {"BitPatterns", "MTail", "NTail"}, params_for(D::kFloat16),
                        special_bits(DType::kF16, {3, 20})));
  v.push_back(make_case("bf16_bit_patterns_3x20", "NaN payloads, -NaN, +-Inf, -0, subnormals",
                        {"BitPatterns", "MTail", "NTail"}, params_for(D::kBFloat16),
                        special_bits(DType::kBF16, {3, 20})));
  v.push_back(make_case("fp32_bit_patterns_3x10_cann_8",
                        "NaN payloads, -NaN, +-Inf, -0, subnormals",
                        {"BitPatterns", "Fp32C0", "MTail", "NTail"}, params_for(D::kFloat32, kC8),
                        special_bits(DType::kF32, {3, 10})));
  // Seeded random sets.
  v.push_back(random_case("random_fp16_9x24", D::kFloat16, {9, 24}, {"MTail", "NTail"}));
  v.push_back(
      random_case("random_bf16_2x9x20", D::kBFloat16, {2, 9, 20}, {"BatchDims", "MTail", "NTail"}));
  v.push_back(random_case("random_int8_9x40", D::kInt8, {9, 40}, {"MTail", "NTail"}));
  v.push_back(random_case("random_int4_9x80", D::kInt4, {9, 80}, {"MTail", "NTail"}));
  v.push_back(
      random_case("random_int4_2x3x72", D::kInt4, {2, 3, 72}, {"BatchDims", "MTail", "NTail"}));
  v.push_back(random_case("random_fp32_9x20_torch_npu_16", D::kFloat32, {9, 20},
                          {"Fp32C0", "MTail", "NTail"}));
  v.push_back(random_case("random_fp32_9x20_cann_8", D::kFloat32, {9, 20},
                          {"Fp32C0", "MTail", "NTail"}, kC8));
  v.push_back(random_case("random_fp16_1x2x3x17", D::kFloat16, {1, 2, 3, 17},
                          {"BatchDims", "MTail", "NTail"}));
  return v;
}

// Every stage exact. The NZ output is mostly zero when padding dominates; those zeros are
// checked exactly (PaddingIsZero), so the case is not degenerate unless its input is all zero.
std::map<std::string, Check> nd_to_nz_oracle(const Params&, const TensorMap& in, const TensorMap&) {
  std::map<std::string, Check> m;
  if (any_nonzero(in.at("nd"))) m["nz"].degenerate_ok = true;
  return m;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_nd_to_nz() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "ND [..., M, N] -> FRACTAL_NZ (ACL format 29), stored with its storage shape [..., "
      "ceil(N/n0), ceil(M/16), 16, n0], n0 = 32 bytes / itemsize (fp16/bf16 16, int8 32, int4 "
      "64 values = 8 int32 words; fp32 16 (torch_npu) or 8 (CANN), param fp32_c0); "
      "nz[..., j/n0, i/16, i%16, j%n0] = nd[..., i, j], padding zero, bits copied unchanged. "
      "int4 tensors are int32 words of 8 nibbles (npu_convert_weight_to_int4pack layout).";
  d.sources = {
      "notes/torch_npu_semantics.md §11, §5, §0",
      "Ascend/pytorch torch_npu/csrc/framework/FormatHelper.cpp InferShapeNDToNZ [code]",
      "torch_npu test_storage_sizes: fp32 [128, 512] -> storage (32, 8, 16, 16) [test]",
      "hicann/ops-math aclnnNpuFormatCast.md: C0 = 32B / sizeof(additionalDtype) [doc]",
      "hicann/ops-nn matmul golden util nd_to_nz: pad, reshape, transpose(2, 0, 1, 3) [test]",
      "ASC TransdataOperation example ND {8,100,30} fp16 -> NZ {8,2,112,16} [doc]",
      "notes/vllm_ascend_quant.md: maybe_trans_nz, NZ cast then view(int32) for W4A8 [code]"};
  d.inputs = {"nd"};
  d.stages = {{"nz", true, "NZ storage tensor [..., N1, M1, 16, n0], padding zero"}};
  d.variants = {
      {"dtype",
       {"float16", "bfloat16", "int8", "int4", "float32"},
       "element type (required); int4 tensors are int32 words of 8 packed int4"},
      {"fp32_c0",
       {"torch_npu_16", "cann_8"},
       "float32 fractal row length: torch_npu caps itemsize at 2 (n0 = 16) / CANN C0 = 32 B / "
       "4 = 8"}};
  d.notes = nd_to_nz_notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["nz"] = ref::nd_to_nz(in.at("nd"), layout_from(p, kOp));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["nz"] = opt::nd_to_nz(in.at("nd"), layout_from(p, kOp));
  };
#endif
  d.oracle = nd_to_nz_oracle;
  d.cases = nd_to_nz_cases;
  return d;
}

QCONF_REGISTER_OP(make_nd_to_nz);

}  // namespace conformance_ops_nd_to_nz
}  // namespace qconf::conf
