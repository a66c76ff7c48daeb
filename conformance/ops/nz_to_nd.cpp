// Op: nz_to_nd, FRACTAL_NZ (ACL format 29) -> ND: the inverse of nd_to_nz. The NZ tensor
// does not carry its logical shape, so params m and n give it (as torch_npu keeps the logical
// shape next to the storage). Padding positions are dropped, whatever they hold.
//
// 1. flags; 2. cases; 3. the OpDef. Math: reference/ops/nz.cpp, optimized/ops/nz.cpp.
#include "nz_vectors.h"

namespace qconf::conf {
namespace conformance_ops_nz_to_nd {

using namespace nz_vectors;  // NOLINT

constexpr const char* kOp = "nz_to_nd";

// ---- 1. flags ---------------------------------------------------------------------------------
std::map<std::string, Note> nz_to_nd_notes() {
  return {
      {"ElementMap",
       {"FUNCTIONALITY",
        "The NZ input is the NZ of a coordinate vector (bits encode row and column, "
        "nz_vectors.h): nd[..., i, j] = nz[..., j/n0, i/16, i%16, j%n0] for every element.",
        "Any other element map puts a coded value at the wrong place; the hex bits in the "
        "failure name where it should have come from."}},
      {"ColumnBlocksOutermost",
       {"FUNCTIONALITY",
        "Column blocks are outermost in the storage ([..., N1, M1, 16, n0]); M1 == N1 here so "
        "reading [M1, N1, 16, n0] is not caught by a shape check.",
        "The wrong fractal is read for every block off the diagonal."}},
      {"FractalRowMajor",
       {"FUNCTIONALITY",
        "Each fractal row is n0 contiguous values; with n0 == 16 a column-major reading of the "
        "fractal has the same shape.",
        "Every 16 x 16 block comes out transposed."}},
      {"Int8C0Is32",
       {"FUNCTIONALITY", "int8 NZ storage has n0 = 32 ([..., ceil(N/32), M1, 16, 32]).",
        "A port expecting n0 = 16 rejects the tensor or reads it as the wrong shape."}},
      {"Int4C0Is64",
       {"FUNCTIONALITY",
        "int4 NZ storage is int32 [..., ceil(N/64), M1, 16, 8]: 64 int4 (32 bytes) per fractal "
        "row; n counts int4 values.",
        "A port that counts n in words, or uses 16 words per row, reads another shape."}},
      {"Int4WordsStayWhole",
       {"FUNCTIONALITY",
        "8 distinct nibbles per word: words move whole, the nibble order inside a word is kept.",
        "Unpack/repack with another nibble order scrambles values inside words."}},
      {"Fp32C0",
       {"DIVERGENCE",
        "float32 n0 = 16 (torch_npu, fp32_c0=torch_npu_16, default) or 8 (CANN, "
        "fp32_c0=cann_8); the same ND is read back from both storages.",
        "A port on the other reading rejects the shape or reads the wrong elements. See "
        "docs/divergences.md."}},
      {"MTail",
       {"EDGE_CASE", "M is not a multiple of 16: the padding rows are dropped.",
        "Ports that write padding rows past the end of the ND tensor."}},
      {"NTail",
       {"EDGE_CASE", "N is not a multiple of n0: the padding columns are dropped.",
        "Ports that copy whole 32-byte runs into the ND row (overwriting the next row's "
        "first values)."}},
      {"PaddingIgnored",
       {"FUNCTIONALITY",
        "The padding positions of the NZ input hold non-zero garbage (NaN, 0x55, ...): the "
        "output must not depend on them.",
        "Ports that copy padding into the output (overrunning rows) or validate/accumulate "
        "it."}},
      {"SingleRow", {"EDGE_CASE", "M = 1.", "Ports that assume M >= 16."}},
      {"SingleColumn", {"EDGE_CASE", "N = 1.", "Ports that assume N >= n0."}},
      {"SingleElement", {"EDGE_CASE", "M = N = 1.", "Degenerate loop bounds."}},
      {"OneFractal",
       {"EDGE_CASE", "Exactly one fractal: ND bytes equal NZ bytes.", "Shape handling only."}},
      {"BatchDims",
       {"FUNCTIONALITY", "Rank 5 and 6 NZ: leading dims are independent matrices.",
        "Ports that mix batches."}},
      {"BitPatterns",
       {"EDGE_CASE", "NaN payloads, -NaN, +-Inf, -0, subnormals are copied bit for bit.",
        "Ports that route values through float registers with FTZ/DAZ or canonicalise NaNs."}},
      {"Random",
       {"BASIC",
        "Seeded uniform bits for the whole NZ input, padding included (so the padding is "
        "garbage too).",
        "General coverage; the seed is derived from the case id."}},
  };
}

// ---- 2. cases ---------------------------------------------------------------------------------
Params nz_params(NzDtype d, const Shape& logical, Fp32NzC0 fp32) {
  Params p = params_for(d, fp32);
  p["m"] = logical[logical.size() - 2];
  p["n"] = logical.back();
  return p;
}

CaseSpec make_case(std::string name, std::string comment, std::vector<std::string> flags, NzDtype d,
                   const Shape& logical, Fp32NzC0 fp32, Tensor nz) {
  CaseSpec c;
  c.name = std::move(name);
  c.comment = std::move(comment) + "; NZ " + std::string(nz_dtype_name(d)) + shape_str(nz.shape()) +
              " -> ND" + shape_str(logical);
  c.flags = std::move(flags);
  c.params = nz_params(d, logical, fp32);
  c.inputs["nz"] = std::move(nz);
  return c;
}

// NZ of the coordinate vector of logical shape [..., M, N]; `garbage` (if non-zero) fills the
// padding.
CaseSpec coord_case(const std::string& name, const std::string& comment,
                    std::vector<std::string> flags, NzDtype d, const Shape& logical,
                    Fp32NzC0 fp32 = Fp32NzC0::kTorchNpu16, uint64_t garbage = 0) {
  const NzLayout l = nz_layout(d, fp32);
  const Shape nd_shape = nd_storage_shape(logical, l);
  Tensor nz = ref::nd_to_nz(coord_tensor(l.storage, nd_shape), l);
  if (garbage != 0)
    nz = with_padding_garbage(std::move(nz), nd_shape[nd_shape.size() - 2], nd_shape.back(),
                              garbage);
  return make_case(name, comment, std::move(flags), d, logical, fp32, std::move(nz));
}

CaseSpec random_case(const std::string& name, NzDtype d, const Shape& logical,
                     std::vector<std::string> flags, Fp32NzC0 fp32 = Fp32NzC0::kTorchNpu16) {
  const NzLayout l = nz_layout(d, fp32);
  const Shape nz_shape = nz_storage_shape(nd_storage_shape(logical, l), l);
  flags.insert(flags.begin(), "Random");
  return make_case(name, "uniform random bits, padding included", std::move(flags), d, logical,
                   fp32, random_bits(l.storage, nz_shape, std::string(kOp) + "/" + name));
}

std::vector<CaseSpec> nz_to_nd_cases() {
  using D = NzDtype;
  const auto kT16 = Fp32NzC0::kTorchNpu16;
  const auto kC8 = Fp32NzC0::kCann8;
  std::vector<CaseSpec> v;
  v.push_back(coord_case("fp16_square_blocks_17x17", "2 x 2 fractals of 16 x 16",
                         {"ElementMap", "ColumnBlocksOutermost", "FractalRowMajor"}, D::kFloat16,
                         {17, 17}));
  v.push_back(coord_case("int8_blocks_17x33", "2 x 2 fractals of 16 x 32",
                         {"ElementMap", "ColumnBlocksOutermost", "Int8C0Is32"}, D::kInt8,
                         {17, 33}));
  v.push_back(coord_case("int4_blocks_17x72", "2 x 2 fractals of 16 x 64 int4",
                         {"ElementMap", "ColumnBlocksOutermost", "Int4C0Is64"}, D::kInt4,
                         {17, 72}));
  v.push_back(coord_case("fp16_tails_20x37", "M1 = 2, N1 = 3", {"ElementMap", "MTail", "NTail"},
                         D::kFloat16, {20, 37}));
  v.push_back(coord_case("bf16_tails_18x20", "M1 = 2, N1 = 2", {"ElementMap", "MTail", "NTail"},
                         D::kBFloat16, {18, 20}));
  v.push_back(coord_case("int8_tails_19x45", "M1 = 2, N1 = 2",
                         {"ElementMap", "MTail", "NTail", "Int8C0Is32"}, D::kInt8, {19, 45}));
  v.push_back(coord_case("int4_tails_5x40", "40 int4 = 5 words, 3 padding words per row",
                         {"ElementMap", "MTail", "NTail", "Int4C0Is64"}, D::kInt4, {5, 40}));
  {
    const NzLayout l = nz_layout(D::kInt4);
    Tensor nd(DType::kI32, {17, 9});
    for (int64_t r = 0; r < 17; ++r)
      for (int64_t w = 0; w < 9; ++w) {
        uint32_t word = 0;
        for (int t = 0; t < 8; ++t) word |= static_cast<uint32_t>((r + 3 * w + t) % 16) << (4 * t);
        nd.data<int32_t>()[r * 9 + w] = static_cast<int32_t>(word);
      }
    v.push_back(make_case("int4_distinct_nibbles_17x72", "8 distinct nibbles per word",
                          {"Int4WordsStayWhole", "Int4C0Is64", "MTail", "NTail"}, D::kInt4,
                          {17, 72}, kT16, ref::nd_to_nz(nd, l)));
  }
  // Padding garbage: the output must not depend on it.
  v.push_back(coord_case("fp16_padding_garbage_5x20", "padding holds NaN 0x7e00",
                         {"PaddingIgnored", "MTail", "NTail"}, D::kFloat16, {5, 20}, kT16, 0x7e00));
  v.push_back(coord_case("int8_padding_garbage_5x40", "padding holds 0x55",
                         {"PaddingIgnored", "MTail", "NTail", "Int8C0Is32"}, D::kInt8, {5, 40},
                         kT16, 0x55));
  v.push_back(coord_case("int4_padding_garbage_5x40", "padding words hold 0x77777777",
                         {"PaddingIgnored", "MTail", "NTail", "Int4C0Is64"}, D::kInt4, {5, 40},
                         kT16, 0x77777777));
  v.push_back(coord_case("fp32_padding_garbage_5x20_cann_8", "padding holds 0x7fc00000",
                         {"PaddingIgnored", "Fp32C0", "MTail", "NTail"}, D::kFloat32, {5, 20}, kC8,
                         0x7fc00000));
  // float32 under both readings.
  v.push_back(coord_case("fp32_5x20_torch_npu_16", "torch_npu reading: n0 = 16",
                         {"Fp32C0", "ElementMap", "MTail", "NTail"}, D::kFloat32, {5, 20}));
  v.push_back(coord_case("fp32_5x20_cann_8", "CANN reading: n0 = 8",
                         {"Fp32C0", "ElementMap", "MTail", "NTail"}, D::kFloat32, {5, 20}, kC8));
  // Degenerate sizes.
  v.push_back(coord_case("fp16_single_row_1x40", "M = 1; padding holds 0x7c01",
                         {"SingleRow", "NTail"}, D::kFloat16, {1, 40}, kT16, 0x7c01));
  v.push_back(coord_case("fp16_single_column_40x1", "N = 1; padding holds 0x7c01",
                         {"SingleColumn", "MTail"}, D::kFloat16, {40, 1}, kT16, 0x7c01));
  v.push_back(coord_case("int8_single_element_1x1", "M = N = 1; padding holds 0x7f",
                         {"SingleElement", "Int8C0Is32"}, D::kInt8, {1, 1}, kT16, 0x7f));
  v.push_back(coord_case("fp16_one_fractal_16x16", "exactly one fractal", {"OneFractal"},
                         D::kFloat16, {16, 16}));
  // Batch dims.
  v.push_back(coord_case("int8_batch_3x5x20", "rank 3 ND", {"BatchDims", "MTail", "NTail"},
                         D::kInt8, {3, 5, 20}));
  v.push_back(coord_case("fp16_batch_2x1x5x18", "rank 4 ND", {"BatchDims", "MTail", "NTail"},
                         D::kFloat16, {2, 1, 5, 18}));
  // Bit patterns: the NZ of special values.
  {
    const NzLayout l = nz_layout(D::kFloat16);
    Tensor nd(DType::kF16, {3, 20});
    const uint16_t pat[] = {0x7c01, 0x7e00, 0xfe01, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x83ff};
    for (int64_t k = 0; k < nd.numel(); ++k) nd.data<uint16_t>()[k] = pat[k % 8];
    v.push_back(make_case("fp16_bit_patterns_3x20", "NaN payloads, -NaN, +-Inf, -0, subnormals",
                          {"BitPatterns", "MTail", "NTail"}, D::kFloat16, {3, 20}, kT16,
                          ref::nd_to_nz(nd, l)));
  }
  // Seeded random NZ tensors (padding random too).
  v.push_back(random_case("random_fp16_9x24", D::kFloat16, {9, 24}, {"MTail", "NTail"}));
  v.push_back(
      random_case("random_bf16_2x9x20", D::kBFloat16, {2, 9, 20}, {"BatchDims", "MTail", "NTail"}));
  v.push_back(random_case("random_int8_9x40", D::kInt8, {9, 40}, {"MTail", "NTail"}));
  v.push_back(random_case("random_int4_9x80", D::kInt4, {9, 80}, {"MTail", "NTail"}));
  v.push_back(random_case("random_fp32_9x20_torch_npu_16", D::kFloat32, {9, 20},
                          {"Fp32C0", "MTail", "NTail"}));
  v.push_back(random_case("random_fp32_9x20_cann_8", D::kFloat32, {9, 20},
                          {"Fp32C0", "MTail", "NTail"}, kC8));
  v.push_back(random_case("random_fp16_1x2x3x17", D::kFloat16, {1, 2, 3, 17},
                          {"BatchDims", "MTail", "NTail"}));
  return v;
}

// ---- 3. definition ----------------------------------------------------------------------------
OpDef make_nz_to_nd() {
  OpDef d;
  d.name = kOp;
  d.summary =
      "FRACTAL_NZ (ACL format 29) storage [..., ceil(N/n0), ceil(M/16), 16, n0] -> ND [..., M, "
      "N] (params m, n: the logical shape; for int4, n counts int4 values); nd[..., i, j] = "
      "nz[..., j/n0, i/16, i%16, j%n0], padding dropped whatever it holds, bits copied "
      "unchanged. n0 as nd_to_nz (fp32: param fp32_c0).";
  d.sources = {"notes/torch_npu_semantics.md §11, §5, §0",
               "Ascend/pytorch torch_npu/csrc/framework/FormatHelper.cpp InferShapeNDToNZ [code]",
               "hicann/ops-math aclnnNpuFormatCast.md: NZ -> ND, C0 table [doc]",
               "hicann/ops-nn matmul golden util nd_to_nz [test]"};
  d.inputs = {"nz"};
  d.stages = {{"nd", true, "ND tensor [..., M, N] (int4: int32 [..., M, N/8])"}};
  d.variants = {
      {"dtype",
       {"float16", "bfloat16", "int8", "int4", "float32"},
       "element type (required); int4 tensors are int32 words of 8 packed int4"},
      {"fp32_c0", {"torch_npu_16", "cann_8"}, "float32 fractal row length: torch_npu 16 / CANN 8"}};
  d.notes = nz_to_nd_notes();
  d.reference = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["nd"] = ref::nz_to_nd(in.at("nz"), layout_from(p, kOp), param_int(p, "m", -1),
                              param_int(p, "n", -1));
  };
#ifndef QCONF_NO_OPTIMIZED
  d.optimized = [](const Params& p, const TensorMap& in, TensorMap& out) {
    out["nd"] = opt::nz_to_nd(in.at("nz"), layout_from(p, kOp), param_int(p, "m", -1),
                              param_int(p, "n", -1));
  };
#endif
  d.cases = nz_to_nd_cases;
  return d;
}

QCONF_REGISTER_OP(make_nz_to_nd);

}  // namespace conformance_ops_nz_to_nd
}  // namespace qconf::conf
