// Optimized npu_quant_matmul: the int8 GEMM of optimized/src/gemm_s8.cpp with the dequant fused
// into its tile callback, and the W8A8_DYNAMIC linear (dynamic quant + GEMM + pertoken epilogue).
//
// Bit-exactness with reference/ops/quant_matmul.cpp. The accumulator is exact (mod 2^32). The
// epilogue performs the reference's steps in its order, each as ONE IEEE fp32 operation with
// round-to-nearest-even named in the instruction (embedded rounding, so MXCSR's rounding mode
// does not matter): cvt int32 -> fp32, * scale, * pertoken, + bias; no FMA (an FMA rounds once
// where the reference rounds twice). The output casts: fp16 by vcvtps2ph with RNE, bf16 by the
// integer RNE of qconf/opt/convert.h (vcvtneps2bf16 would flush subnormals), int8 by clamping to
// [-256, 255] in fp32, vcvtps2dq with RNE (NaN -> 0), + offset, clamp to [-128, 127].
// The fixpipe `exact` reading (acc * FP19 scale rounded once) runs in the scalar epilogue: the
// product of an int32 and an 11-bit significand has at most 42 bits, so it is exact in double,
// and is then rounded once to the output format.
#include "qconf/ops/quant_matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "qconf/ops/dynamic_quant.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/scales.h"
#include "qconf/opt/convert.h"
#include "qconf/opt/cpu.h"
#include "qconf/opt/dynamic_quant_row.h"
#include "qconf/opt/gemm_s8.h"
#include "qconf/opt/parallel.h"

namespace qconf::opt {
namespace {

// ---- per-call epilogue parameters ------------------------------------------------------------

struct Epilogue;
using TileEpilogue = void (*)(const Epilogue& e, const S8Tile& t);

struct Epilogue {
  DType out_dt = DType::kF32;
  bool int32_out = false;
  bool exact = false;  // fixpipe `exact` reading
  bool simd = false;
  TileEpilogue fast = nullptr;  // a branch-free specialization of the common case, if any
  int64_t n = 0;
  int64_t m = 1;         // rows per batch: pertoken_scale index = output row % m
  int64_t row_base = 0;  // output row of the GEMM's row 0
  int64_t rows_end = 0;  // one past the GEMM's last output row
  // Column parameters, padded to a whole number of 64-column panels.
  const float* scale = nullptr;
  const int32_t* offset9 = nullptr;
  const int32_t* bias_i32 = nullptr;  // null: no int32 bias
  const float* bias_f32 = nullptr;    // null: no float bias
  const float* pertoken = nullptr;    // null: no pertoken_scale
  // Set with a replicated GEMM prologue (the fused linear at small M): each worker slot's own
  // pertoken scales, read through pertoken_of instead of `pertoken` (same values).
  const std::vector<float>* pertoken_by_worker = nullptr;
  // Outputs, row-major [rows, n]; null when not requested.
  void* out = nullptr;
  int32_t* acc = nullptr;
  int32_t* acc_bias = nullptr;
  float* dequant = nullptr;
  float* pertoken_st = nullptr;
  float* biased = nullptr;
  int32_t* requant = nullptr;
};

// Column parameters in padded arrays (the SIMD epilogue loads whole 16-lane vectors).
struct Columns {
  std::vector<float> scale;
  std::vector<int32_t> offset9, bias_i32;
  std::vector<float> bias_f32;
};

// The pertoken scales that tile t uses: its worker's own copy when the prologue is replicated.
inline const float* pertoken_of(const Epilogue& e, const S8Tile& t) {
  return e.pertoken_by_worker ? e.pertoken_by_worker[t.worker].data() : e.pertoken;
}

float f32_of_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// s9(offset) = clip(rint(offset), -256, 255), NaN -> 0: encode_offset_int9 (scales.h) without
// exact arithmetic.
int32_t offset_int9(uint32_t bits) {
  const float v = f32_of_bits(bits);
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::clamp(std::nearbyint(v), -256.0f, 255.0f));
}

// The scale and offset each column sees: quant_matmul_column_params (reference/ops/
// quant_matmul.cpp) with bit operations in place of its exact conversions (that function is the
// specification; it converts bf16 through qconf::num and costs ~1 us per column). Fills `c`,
// reusing its vectors' capacity (the fused linear keeps one per calling thread: no allocation
// per call).
void prepare_columns(const QuantMatmulPlan& p, const Tensor& scale, const Tensor* offset,
                     const Tensor* bias, Columns& c) {
  const int64_t npad = (p.n + kGemmS8Nr - 1) / kGemmS8Nr * kGemmS8Nr;
  c.scale.assign(static_cast<size_t>(npad), 0.0f);
  c.offset9.assign(static_cast<size_t>(npad), 0);
  if (p.path != QuantMatmulPath::kInt32Out) {
    // Data pointers and dtype tests hoisted out of the column loop (Tensor::data<T>() checks the
    // dtype on every call: that was most of a ~20 us fixed cost per M = 1 linear call).
    const bool one = scale.numel() == 1;
    const uint32_t* off = offset ? offset->data<uint32_t>() : nullptr;
    const bool off_one = offset && offset->numel() == 1;
    if (scale.dtype() == DType::kBF16 && !offset) {
      const uint16_t* sc = scale.data<uint16_t>();
      for (int64_t j = 0; j < p.n; ++j)
        c.scale[static_cast<size_t>(j)] = f32_of_bits(bf16_to_f32(sc[one ? 0 : j]));
    } else {
      const int64_t* sc64 = scale.dtype() == DType::kI64 ? scale.data<int64_t>() : nullptr;
      const uint16_t* sc16 = scale.dtype() == DType::kBF16 ? scale.data<uint16_t>() : nullptr;
      const uint32_t* sc32 = !sc64 && !sc16 ? scale.data<uint32_t>() : nullptr;
      for (int64_t j = 0; j < p.n; ++j) {
        const int64_t js = one ? 0 : j;
        const size_t ju = static_cast<size_t>(j);
        const uint32_t off_bits = off ? off[off_one ? 0 : j] : 0;
        uint32_t bits;
        if (sc64) {  // the int64 quant param: FP19 scale, int9 offset
          const uint64_t qp = static_cast<uint64_t>(sc64[js]);
          bits = ref::decode_dequant_scale_bits(qp);
          c.offset9[ju] = ref::decode_offset_int9(qp);
        } else if (sc16) {
          bits = bf16_to_f32(sc16[js]);  // exact (NaN quieted, as convert())
          if (offset) c.offset9[ju] = offset_int9(off_bits);
        } else {
          bits = sc32[js];
          // op-plugin's npu_trans_quant_param (round_mode 0): keep the top 19 bits.
          if (p.path == QuantMatmulPath::kFixpipe) bits &= kFp19KeepMask;
          if (offset) c.offset9[ju] = offset_int9(off_bits);
        }
        c.scale[ju] = f32_of_bits(bits);
      }
    }
  }
  c.bias_i32.clear();
  c.bias_f32.clear();
  if (p.bias_int32) {
    c.bias_i32.assign(static_cast<size_t>(npad), 0);
    std::memcpy(c.bias_i32.data(), bias->data<int32_t>(), static_cast<size_t>(p.n) * 4);
  }
  if (p.bias_float) {
    c.bias_f32.assign(static_cast<size_t>(npad), 0.0f);
    auto* dst = reinterpret_cast<uint32_t*>(c.bias_f32.data());
    const size_t n = static_cast<size_t>(p.n);
    if (bias->dtype() == DType::kF32)
      std::memcpy(dst, bias->data<uint32_t>(), n * 4);
    else if (bias->dtype() == DType::kF16)
      f16_to_f32(bias->data<uint16_t>(), dst, n);  // exact widening
    else
      bf16_to_f32(bias->data<uint16_t>(), dst, n);
  }
}

// ---- scalar epilogue (the fixpipe `exact` reading, and CPUs without AVX-512) -----------------

// A double that holds an exact value, rounded once (RNE) to a binary format of `exp_bits` and
// `mant_bits` (fp16: 5, 10; bf16: 8, 7): subnormals, carry into the next binade, overflow to
// Inf, NaN to the quiet NaN of the sign.
uint16_t f64_to_narrow_rne(double x, int exp_bits, int mant_bits) {
  const uint32_t sign = std::signbit(x) ? 1u << (exp_bits + mant_bits) : 0u;
  const uint32_t exp_all = ((1u << exp_bits) - 1) << mant_bits;
  if (std::isnan(x)) return static_cast<uint16_t>(sign | exp_all | (1u << (mant_bits - 1)));
  const double a = std::fabs(x);
  if (std::isinf(a)) return static_cast<uint16_t>(sign | exp_all);
  if (a == 0) return static_cast<uint16_t>(sign);
  const int bias = (1 << (exp_bits - 1)) - 1;
  int e;
  std::frexp(a, &e);
  e = std::max(e - 1, 1 - bias);  // a in [2^e, 2^(e+1)); below normal: the subnormal quantum
  double sig = std::nearbyint(std::ldexp(a, mant_bits - e));  // exact scaling, one RNE rounding
  if (sig >= std::ldexp(1.0, mant_bits + 1)) {                // carried into the next binade
    sig /= 2;
    ++e;
  }
  if (e > bias) return static_cast<uint16_t>(sign | exp_all);  // overflow: Inf
  const uint32_t s = static_cast<uint32_t>(sig);
  if (s < (1u << mant_bits)) return static_cast<uint16_t>(sign | s);  // subnormal
  return static_cast<uint16_t>(sign | static_cast<uint32_t>(e + bias) << mant_bits |
                               (s - (1u << mant_bits)));
}

int32_t s9_of(double v) {  // clip(rint(v), -256, 255), NaN -> 0
  if (std::isnan(v)) return 0;
  return static_cast<int32_t>(std::clamp(std::nearbyint(v), -256.0, 255.0));
}

void store_out_scalar(const Epilogue& e, int64_t idx, float v) {
  switch (e.out_dt) {
    case DType::kF32:
      static_cast<float*>(e.out)[idx] = v;
      break;
    case DType::kF16: {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      static_cast<uint16_t*>(e.out)[idx] = f32_to_f16_rne(b);
      break;
    }
    case DType::kBF16: {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      static_cast<uint16_t*>(e.out)[idx] = f32_to_bf16_rne(b);
      break;
    }
    default:
      break;
  }
}

void store_int8_scalar(const Epilogue& e, int64_t idx, int32_t s9, int64_t col) {
  if (e.requant) e.requant[idx] = s9;
  static_cast<int8_t*>(e.out)[idx] =
      static_cast<int8_t>(std::clamp(s9 + e.offset9[col], -128, 127));
}

void epilogue_scalar(const Epilogue& e, const S8Tile& t) {
  for (int r = 0; r < t.rows; ++r) {
    const int64_t row = e.row_base + t.row0 + r;
    for (int c = 0; c < t.cols; ++c) {
      const int64_t col = t.col0 + c, idx = row * e.n + col;
      int32_t acc = t.acc[r * kGemmS8Nr + c];
      if (e.acc) e.acc[idx] = acc;
      if (e.bias_i32) {  // int32 wrap, as the cube's accumulator
        acc = static_cast<int32_t>(static_cast<uint32_t>(acc) +
                                   static_cast<uint32_t>(e.bias_i32[col]));
        if (e.acc_bias) e.acc_bias[idx] = acc;
      }
      if (e.int32_out) {
        static_cast<int32_t*>(e.out)[idx] = acc;
        continue;
      }
      if (e.exact) {
        const double p = static_cast<double>(acc) * static_cast<double>(e.scale[col]);
        switch (e.out_dt) {
          case DType::kF32:
            static_cast<float*>(e.out)[idx] = static_cast<float>(p);
            break;
          case DType::kF16:
            static_cast<uint16_t*>(e.out)[idx] = f64_to_narrow_rne(p, 5, 10);
            break;
          case DType::kBF16:
            static_cast<uint16_t*>(e.out)[idx] = f64_to_narrow_rne(p, 8, 7);
            break;
          default:
            store_int8_scalar(e, idx, s9_of(p), col);
        }
        continue;
      }
      // fp32 steps, each rounded once (-ffp-contract=off: no FMA; SSE arithmetic, RNE).
      float v = static_cast<float>(acc);
      v = v * e.scale[col];
      if (e.dequant) e.dequant[idx] = v;
      if (e.pertoken) {
        v = v * pertoken_of(e, t)[row % e.m];
        if (e.pertoken_st) e.pertoken_st[idx] = v;
      }
      if (e.bias_f32) {
        v = v + e.bias_f32[col];
        if (e.biased) e.biased[idx] = v;
      }
      if (e.out_dt == DType::kI8)
        store_int8_scalar(e, idx, s9_of(v), col);
      else
        store_out_scalar(e, idx, v);
    }
  }
}

// ---- AVX-512 epilogue --------------------------------------------------------------------

#define QCONF_AVX512_TARGET __attribute__((target("avx512f")))
// The fast epilogue may use vcvtneps2bf16 (only where the CPU has it: fast_for_output).
#define QCONF_AVX512_TARGET_BF16 __attribute__((target("avx512f,avx512dq,avx512bf16")))
constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

QCONF_AVX512_TARGET inline void store_u16(uint16_t* dst, __m256i v, int cnt) {
  if (cnt == 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
    return;
  }
  alignas(32) uint16_t tmp[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
  std::memcpy(dst, tmp, static_cast<size_t>(cnt) * 2);
}

// fp32 -> bf16, round to nearest even on the bit pattern (convert.h f32_to_bf16_rne): NaN keeps
// its top bits with the quiet bit set; everything else (subnormals and Inf included) is
// (bits + 0x7FFF + lsb) >> 16.
QCONF_AVX512_TARGET inline __m256i f32_to_bf16_rne_avx512(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7FFF)), lsb), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan,
                            _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

QCONF_AVX512_TARGET void epilogue_avx512(const Epilogue& e, const S8Tile& t) {
  for (int r = 0; r < t.rows; ++r) {
    const int64_t row = e.row_base + t.row0 + r;
    const __m512 pt = _mm512_set1_ps(e.pertoken ? pertoken_of(e, t)[row % e.m] : 0.0f);
    for (int c0 = 0; c0 < t.cols; c0 += 16) {
      const int cnt = std::min(16, t.cols - c0);
      const __mmask16 mk = static_cast<__mmask16>(cnt == 16 ? 0xFFFFu : (1u << cnt) - 1);
      const int64_t col = t.col0 + c0, idx = row * e.n + col;
      __m512i acc = _mm512_load_si512(t.acc + r * kGemmS8Nr + c0);
      if (e.acc) _mm512_mask_storeu_epi32(e.acc + idx, mk, acc);
      if (e.bias_i32) {  // int32 wrap, as the cube's accumulator
        acc = _mm512_add_epi32(acc, _mm512_loadu_si512(e.bias_i32 + col));
        if (e.acc_bias) _mm512_mask_storeu_epi32(e.acc_bias + idx, mk, acc);
      }
      if (e.int32_out) {
        _mm512_mask_storeu_epi32(static_cast<int32_t*>(e.out) + idx, mk, acc);
        continue;
      }
      __m512 v = _mm512_cvt_roundepi32_ps(acc, kRne);
      v = _mm512_mul_round_ps(v, _mm512_loadu_ps(e.scale + col), kRne);
      if (e.dequant) _mm512_mask_storeu_ps(e.dequant + idx, mk, v);
      if (e.pertoken) {
        v = _mm512_mul_round_ps(v, pt, kRne);
        if (e.pertoken_st) _mm512_mask_storeu_ps(e.pertoken_st + idx, mk, v);
      }
      if (e.bias_f32) {
        v = _mm512_add_round_ps(v, _mm512_loadu_ps(e.bias_f32 + col), kRne);
        if (e.biased) _mm512_mask_storeu_ps(e.biased + idx, mk, v);
      }
      switch (e.out_dt) {
        case DType::kF32:
          _mm512_mask_storeu_ps(static_cast<float*>(e.out) + idx, mk, v);
          break;
        case DType::kF16:
          store_u16(static_cast<uint16_t*>(e.out) + idx, _mm512_cvtps_ph(v, kRne), cnt);
          break;
        case DType::kBF16:
          store_u16(static_cast<uint16_t*>(e.out) + idx, f32_to_bf16_rne_avx512(v), cnt);
          break;
        default: {  // int8 requant: clip(s9(rint(v)) + offset9, -128, 127), NaN -> 0
          const __mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
          const __m512 clamped =
              _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-256.0f)), _mm512_set1_ps(255.0f));
          const __m512i s9 = _mm512_maskz_mov_epi32(ord, _mm512_cvt_roundps_epi32(clamped, kRne));
          if (e.requant) _mm512_mask_storeu_epi32(e.requant + idx, mk, s9);
          __m512i y = _mm512_add_epi32(s9, _mm512_loadu_si512(e.offset9 + col));
          y = _mm512_min_epi32(_mm512_max_epi32(y, _mm512_set1_epi32(-128)),
                               _mm512_set1_epi32(127));
          _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(e.out) + idx, mk, y);
        }
      }
    }
  }
}

// Prefetches the output lines that the next tile of this panel (the next 6 rows, same columns)
// will write. The GEMM walks a panel's row blocks in order and spends ~k/4 * 24 cycles per
// block, so the lines arrive long before they are written: without this, every row of every
// tile starts with a write-allocate miss (the rows are n * elem bytes apart, a new page each),
// which cost ~10% of the M = 1024 linear.
void prefetch_next_tile_output(const Epilogue& e, const S8Tile& t) {
  const size_t es = dtype_size(e.out_dt);
  const size_t bytes = static_cast<size_t>(t.cols) * es;
  const int64_t first = e.row_base + t.row0 + t.rows;
  const int64_t last = std::min<int64_t>(first + kGemmS8Mr, e.rows_end);
  for (int64_t row = first; row < last; ++row) {
    const char* p =
        static_cast<const char*>(e.out) + (row * e.n + t.col0) * static_cast<int64_t>(es);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 1, 3);
    __builtin_prefetch(p + bytes - 1, 1, 3);
  }
}

// The common case with its branches resolved at compile time: float output (fp32 / fp16 /
// bf16), no intermediate stages, optional int32 bias, pertoken scale and float bias. The same
// operations as epilogue_avx512 in the same order, so the same bits. Per tile, e and t are read
// once (FastTile) and the pertoken index takes one division: the stores go through char
// pointers, which may alias e and t, so GCC had reloaded their fields for every vector, and
// `row % m` had cost a 64-bit division per row. With bf16 output on a CPU with AVX512_BF16 the
// rounding is one vcvtneps2bf16 per 16 values instead of eleven integer instructions
// (epilogue_fast_bf16_cvt). Measured (same process, alternating rounds, the W8A8_DYNAMIC linear
// at K = N = 4096, M = 128, one Zen 4 thread, with the epilogue run ten times per tile to lift it
// above the noise; session 11, three runs): one pass over the 1368 tiles took 78-82 us before,
// 52-71 us with the conversion, 63-88 us with FastTile alone (the integer rounding, as on CPUs
// without AVX512_BF16). The linear takes ~9.7 ms, so this is worth ~0.3%.

// The pointers and the first pertoken index of one tile of epilogue_fast, read once from e and
// t (scalar code, inlined into both targets below).
struct FastTile {
  const float* scale;
  const int32_t* bias_i32;
  const float* bias_f32;
  const float* pertoken;
  const int32_t* acc;
  char* out;        // row 0, the tile's first column
  int64_t out_row;  // bytes from one output row to the next
  int64_t pr, m;    // the pertoken index of the next row, and its period
  int rows, cols;

  FastTile(const Epilogue& e, const S8Tile& t, int64_t es)
      : scale(e.scale + t.col0),
        bias_i32(e.bias_i32 ? e.bias_i32 + t.col0 : nullptr),
        bias_f32(e.bias_f32 ? e.bias_f32 + t.col0 : nullptr),
        pertoken(pertoken_of(e, t)),
        acc(t.acc),
        out(static_cast<char*>(e.out) + ((e.row_base + t.row0) * e.n + t.col0) * es),
        out_row(e.n * es),
        pr(pertoken ? (e.row_base + t.row0) % e.m : 0),
        m(e.m),
        rows(t.rows),
        cols(t.cols) {}
  // The pertoken scale of the next row (rows in order).
  float next_pertoken() {
    const float v = pertoken[pr];
    if (++pr == m) pr = 0;
    return v;
  }
};

// Columns [c0, c0 + 16) of one row of epilogue_fast before the output rounding.
template <bool kIntBias, bool kPertoken, bool kFloatBias>
QCONF_AVX512_TARGET inline __attribute__((always_inline)) __m512 epilogue_fast_values(
    const FastTile& p, const int32_t* acc_row, __m512 pt, int c0) {
  __m512i acc = _mm512_load_si512(acc_row + c0);
  if constexpr (kIntBias) acc = _mm512_add_epi32(acc, _mm512_loadu_si512(p.bias_i32 + c0));
  __m512 v = _mm512_cvt_roundepi32_ps(acc, kRne);
  v = _mm512_mul_round_ps(v, _mm512_loadu_ps(p.scale + c0), kRne);
  if constexpr (kPertoken) v = _mm512_mul_round_ps(v, pt, kRne);
  if constexpr (kFloatBias) v = _mm512_add_round_ps(v, _mm512_loadu_ps(p.bias_f32 + c0), kRne);
  return v;
}

// The output of 16 values, cnt of them stored.
template <DType kOut>
QCONF_AVX512_TARGET inline __attribute__((always_inline)) void epilogue_fast_store(char* out,
                                                                                   int c0, __m512 v,
                                                                                   int cnt) {
  if constexpr (kOut == DType::kF32) {
    const __mmask16 mk = static_cast<__mmask16>(cnt == 16 ? 0xFFFFu : (1u << cnt) - 1);
    _mm512_mask_storeu_ps(reinterpret_cast<float*>(out) + c0, mk, v);
  } else if constexpr (kOut == DType::kF16) {
    store_u16(reinterpret_cast<uint16_t*>(out) + c0, _mm512_cvtps_ph(v, kRne), cnt);
  } else {
    store_u16(reinterpret_cast<uint16_t*>(out) + c0, f32_to_bf16_rne_avx512(v), cnt);
  }
}

template <bool kIntBias, bool kPertoken, bool kFloatBias, DType kOut>
QCONF_AVX512_TARGET void epilogue_fast(const Epilogue& e, const S8Tile& t) {
  FastTile p(e, t, kOut == DType::kF32 ? 4 : 2);
  for (int r = 0; r < p.rows; ++r) {
    const __m512 pt = _mm512_set1_ps(kPertoken ? p.next_pertoken() : 0.0f);
    char* const out = p.out + r * p.out_row;
    const int32_t* const acc_row = p.acc + r * kGemmS8Nr;
    for (int c0 = 0; c0 < p.cols; c0 += 16)
      epilogue_fast_store<kOut>(
          out, c0, epilogue_fast_values<kIntBias, kPertoken, kFloatBias>(p, acc_row, pt, c0),
          std::min(16, p.cols - c0));
  }
}

// epilogue_fast for bf16 output on a CPU with AVX512_BF16 (and DQ): vcvtneps2bf16 rounds like
// f32_to_bf16_rne_avx512 (round to nearest even on the bit pattern, NaN quieted with its top bits
// kept, Inf kept) every input except subnormals, which it flushes to a signed zero (Intel SDM,
// VCVTNEPS2BF16): a vector holding a subnormal (vfpclassps 0x20) takes the integer sequence.
// The row loop is epilogue_fast's, written again because the two functions have different
// targets (an AVX512_BF16 function cannot be inlined into an avx512f-only one).
template <bool kIntBias, bool kPertoken, bool kFloatBias>
QCONF_AVX512_TARGET_BF16 void epilogue_fast_bf16_cvt(const Epilogue& e, const S8Tile& t) {
  FastTile p(e, t, 2);
  for (int r = 0; r < p.rows; ++r) {
    const __m512 pt = _mm512_set1_ps(kPertoken ? p.next_pertoken() : 0.0f);
    char* const out = p.out + r * p.out_row;
    const int32_t* const acc_row = p.acc + r * kGemmS8Nr;
    for (int c0 = 0; c0 < p.cols; c0 += 16) {
      const __m512 v = epilogue_fast_values<kIntBias, kPertoken, kFloatBias>(p, acc_row, pt, c0);
      const __m256i h = _mm512_fpclass_ps_mask(v, 0x20) == 0
                            ? reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v))
                            : f32_to_bf16_rne_avx512(v);
      store_u16(reinterpret_cast<uint16_t*>(out) + c0, h, std::min(16, p.cols - c0));
    }
  }
}

std::atomic<bool> g_disable_bf16_cvt{false};  // quant_matmul_disable_bf16_cvt

template <bool kIntBias, bool kPertoken, bool kFloatBias>
TileEpilogue fast_for_output(DType out) {
  switch (out) {
    case DType::kF32:
      return epilogue_fast<kIntBias, kPertoken, kFloatBias, DType::kF32>;
    case DType::kF16:
      return epilogue_fast<kIntBias, kPertoken, kFloatBias, DType::kF16>;
    case DType::kBF16:
      return cpu_features().avx512bf16 && cpu_features().avx512dq && !g_disable_bf16_cvt.load()
                 ? epilogue_fast_bf16_cvt<kIntBias, kPertoken, kFloatBias>
                 : epilogue_fast<kIntBias, kPertoken, kFloatBias, DType::kBF16>;
    default:
      return nullptr;
  }
}

// The specialization for e, or nullptr (int8 / int32 output, intermediates, no AVX-512).
TileEpilogue select_fast_epilogue(const Epilogue& e) {
  const bool stages = e.acc || e.acc_bias || e.dequant || e.pertoken_st || e.biased || e.requant;
  if (!e.simd || stages || e.int32_out) return nullptr;
  const bool ib = e.bias_i32, pt = e.pertoken, fb = e.bias_f32;
  if (ib && pt && fb) return fast_for_output<true, true, true>(e.out_dt);
  if (ib && pt && !fb) return fast_for_output<true, true, false>(e.out_dt);
  if (ib && !pt && fb) return fast_for_output<true, false, true>(e.out_dt);
  if (ib && !pt && !fb) return fast_for_output<true, false, false>(e.out_dt);
  if (!ib && pt && fb) return fast_for_output<false, true, true>(e.out_dt);
  if (!ib && pt && !fb) return fast_for_output<false, true, false>(e.out_dt);
  if (!ib && !pt && fb) return fast_for_output<false, false, true>(e.out_dt);
  return fast_for_output<false, false, false>(e.out_dt);
}

void epilogue_tile(void* ctx, const S8Tile& t) {
  const Epilogue& e = *static_cast<const Epilogue*>(ctx);
  if (e.fast)
    e.fast(e, t);
  else if (e.simd)
    epilogue_avx512(e, t);
  else
    epilogue_scalar(e, t);
  prefetch_next_tile_output(e, t);
}

// ---- the op ------------------------------------------------------------------------------

template <typename T>
T* data_or_null(std::optional<Tensor>& t) {
  return t ? t->data<T>() : nullptr;
}

// Output stages of the plan (intermediates only when asked).
QuantMatmulStages allocate_stages(const QuantMatmulPlan& p, const QuantMatmulConfig& cfg,
                                  bool intermediates) {
  QuantMatmulStages st;
  const bool exact = p.path == QuantMatmulPath::kFixpipe && cfg.fixpipe == FixpipePrecision::kExact;
  st.out = Tensor(cfg.output_dtype, p.out_shape);
  if (!intermediates) return st;
  st.acc = Tensor(DType::kI32, p.out_shape);
  if (p.bias_int32) st.acc_bias = Tensor(DType::kI32, p.out_shape);
  if (p.path != QuantMatmulPath::kInt32Out && !exact) st.dequant = Tensor(DType::kF32, p.out_shape);
  if (p.has_pertoken) st.pertoken = Tensor(DType::kF32, p.out_shape);
  if (p.bias_float) st.biased = Tensor(DType::kF32, p.out_shape);
  if (cfg.output_dtype == DType::kI8) st.requant = Tensor(DType::kI32, p.out_shape);
  return st;
}

Epilogue make_epilogue(const QuantMatmulPlan& p, const QuantMatmulConfig& cfg, const Columns& c,
                       const Tensor* pertoken, QuantMatmulStages& st, bool force_scalar) {
  Epilogue e;
  e.out_dt = cfg.output_dtype;
  e.int32_out = p.path == QuantMatmulPath::kInt32Out;
  e.exact = p.path == QuantMatmulPath::kFixpipe && cfg.fixpipe == FixpipePrecision::kExact;
  e.simd = !force_scalar && !e.exact && cpu_features().avx512f;
  e.n = p.n;
  e.m = std::max<int64_t>(p.m, 1);
  e.scale = c.scale.data();
  e.offset9 = c.offset9.data();
  e.bias_i32 = p.bias_int32 ? c.bias_i32.data() : nullptr;
  e.bias_f32 = p.bias_float ? c.bias_f32.data() : nullptr;
  e.pertoken = pertoken ? pertoken->data<float>() : nullptr;
  e.out = st.out.bytes();
  if (st.acc.dtype() == DType::kI32 && st.acc.numel() > 0) e.acc = st.acc.data<int32_t>();
  e.acc_bias = data_or_null<int32_t>(st.acc_bias);
  e.dequant = data_or_null<float>(st.dequant);
  e.pertoken_st = data_or_null<float>(st.pertoken);
  e.biased = data_or_null<float>(st.biased);
  e.requant = data_or_null<int32_t>(st.requant);
  e.fast = select_fast_epilogue(e);
  return e;
}

// Packs `rows` rows of x1 starting at row `row0` (int8, or int4 words).
void pack_x1_rows(const Tensor& x1, bool int4, int64_t row0, int64_t rows, int64_t k, int64_t kp,
                  PackedActivationsS8& a, int threads) {
  if (int4)
    a.pack_s4(x1.data<int32_t>() + row0 * (k / 8), rows, k, kp, threads);
  else
    a.pack_s8(x1.data<int8_t>() + row0 * k, rows, k, k, kp, threads);
}

QuantMatmulStages run(const QuantMatmulPlan& p, const QuantMatmulConfig& cfg, const Tensor& x1,
                      const Tensor* x2, const PackedWeightsS8* packed, const Tensor& scale,
                      const Tensor* offset, const Tensor* pertoken, const Tensor* bias,
                      bool intermediates, const GemmS8Options& opt) {
  QuantMatmulStages st = allocate_stages(p, cfg, intermediates);
  if (st.out.numel() == 0) return st;
  Columns cols;
  prepare_columns(p, scale, offset, bias, cols);
  Epilogue e = make_epilogue(p, cfg, cols, pertoken, st, opt.force_scalar);
  if (!p.x2_batched) {
    // One weight for every batch: all of x1's rows form one GEMM.
    PackedWeightsS8 own;
    if (!packed)
      own = p.int4 ? PackedWeightsS8::pack_s4(x2->data<int32_t>(), p.k, p.n, opt.threads)
                   : PackedWeightsS8::pack_s8(x2->data<int8_t>(), p.k, p.n, p.n, opt.threads);
    const PackedWeightsS8& w = packed ? *packed : own;
    const int64_t rows = (p.x1_batched ? p.batch : 1) * p.m;
    PackedActivationsS8 a;
    pack_x1_rows(x1, p.int4, 0, rows, p.k, w.k_padded(), a, opt.threads);
    e.rows_end = rows;
    gemm_s8(a, w, epilogue_tile, &e, opt);
    return st;
  }
  const int64_t words_per_batch = p.k * (p.int4 ? p.n / 8 : p.n);
  PackedActivationsS8 shared;
  for (int64_t b = 0; b < p.batch; ++b) {
    const PackedWeightsS8 w =
        p.int4 ? PackedWeightsS8::pack_s4(x2->data<int32_t>() + b * words_per_batch, p.k, p.n,
                                          opt.threads)
               : PackedWeightsS8::pack_s8(x2->data<int8_t>() + b * words_per_batch, p.k, p.n, p.n,
                                          opt.threads);
    PackedActivationsS8 own;
    if (p.x1_batched) {
      pack_x1_rows(x1, p.int4, b * p.m, p.m, p.k, w.k_padded(), own, opt.threads);
    } else if (b == 0) {
      pack_x1_rows(x1, p.int4, 0, p.m, p.k, w.k_padded(), shared, opt.threads);
    }
    e.row_base = b * p.m;
    e.rows_end = e.row_base + p.m;
    gemm_s8(p.x1_batched ? own : shared, w, epilogue_tile, &e, opt);
  }
  return st;
}

}  // namespace

QuantMatmulStages npu_quant_matmul(const Tensor& x1, const Tensor& x2, const Tensor& scale,
                                   const Tensor* offset, const Tensor* pertoken, const Tensor* bias,
                                   const QuantMatmulConfig& cfg, bool intermediates, int threads) {
  const QuantMatmulPlan p = plan_quant_matmul(x1, x2, scale, offset, pertoken, bias, cfg);
  GemmS8Options opt;
  opt.threads = threads;
  return run(p, cfg, x1, &x2, nullptr, scale, offset, pertoken, bias, intermediates, opt);
}

void quant_matmul_disable_bf16_cvt(bool on) { g_disable_bf16_cvt.store(on); }

Tensor npu_quant_matmul_packed(const Tensor& x1, const PackedWeightsS8& x2, const Tensor& scale,
                               const Tensor* offset, const Tensor* pertoken, const Tensor* bias,
                               const QuantMatmulConfig& cfg, const GemmS8Options& opt) {
  const Shape x2_shape{x2.k(), x2.int4() ? x2.n() / 8 : x2.n()};
  const QuantMatmulPlan p =
      plan_quant_matmul(x1.dtype(), x1.shape(), x2.int4() ? DType::kI32 : DType::kI8, x2_shape,
                        scale, offset, pertoken, bias, cfg);
  return run(p, cfg, x1, nullptr, &x2, scale, offset, pertoken, bias, false, opt).out;
}

namespace {

// The linear with the dynamic quant fused into the activation packing: each row is quantized
// (dynamic_quant_row_default: the same steps and bits as npu_dynamic_quant) straight into the
// GEMM's packed layout, with no [rows, K] fp32 / int8 intermediate tensors, and the packed
// buffer is kept per calling thread and reused across calls (no allocation or page faults per
// call once warm). Then the same GEMM and epilogue as npu_quant_matmul with a pertoken scale.
struct LinearWorkspace {
  PackedActivationsS8 a;
  Tensor pertoken;  // float32 [rows]
  Columns cols;     // the per-column scale (and bias), refilled each call
  // One block of rows (kReplicatedQuantRows): each GEMM worker slot's own packed rows and
  // pertoken scales.
  std::vector<PackedActivationsS8> own_a;
  std::vector<std::vector<float>> own_pt;
};

// Up to one block of rows (the shared prologue's single unit, which one worker quantizes while
// the others wait), with more than one thread, every GEMM worker quantizes the rows itself into
// its own buffer (GemmS8Prologue::own): the same wall time for the quant, and no packed line
// written on one core and then read by the kernels of another (and written again on the next
// call). Same process, alternating rounds (K = N = 4096, 2 threads, 60 rounds): M = 1 went from
// 126.5-127.8 to 122.5-124.6 us. At M = 16 and 32, where each worker would quantize all the
// blocks instead of its share, replicating measured the same as sharing (670-683 against
// 670-690 us at M = 16), so those keep the shared prologue.
constexpr int64_t kReplicatedQuantRows = kGemmS8Mr;

// The rows to quantize: x [rows, k] (bf16 or f16) into the blocks of *a, scales into pertoken.
struct QuantRows {
  const uint16_t* xin;
  bool f16;
  int64_t k;
  float* pertoken;
  PackedActivationsS8* a;  // its block_rows give the rows of each block
};

// Blocks [b0, b1) of q: each block's rows at once (full blocks of six, or the last partial
// one) by dynamic_quant_block_packed, else row by row (f16, or no AVX-512).
void quantize_blocks(const QuantRows& q, int64_t b0, int64_t b1) {
  static thread_local std::vector<float> xf;
  static thread_local std::vector<int8_t> codes;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t first = b * kGemmS8Mr, rows = q.a->block_rows(b);
    int32_t sums[kGemmS8Mr];
    if (dynamic_quant_block_packed(q.xin + first * q.k, q.k, static_cast<int>(rows), q.f16, q.k,
                                   q.a->k_padded(), q.a->row_codes(first), q.pertoken + first,
                                   sums)) {
      for (int64_t r = 0; r < rows; ++r) q.a->set_row_sum(first + r, sums[r]);
      continue;
    }
    if (xf.size() < static_cast<size_t>(q.k)) {
      xf.resize(static_cast<size_t>(q.k));
      codes.resize(static_cast<size_t>(q.k));
    }
    for (int64_t row = first; row < first + rows; ++row) {
      dynamic_quant_row_default(q.xin + row * q.k, q.f16, q.k, xf.data(), codes.data(),
                                q.pertoken + row);
      q.a->set_row(row, codes.data(), q.k);
    }
  }
}

// The replicated prologue's context: worker slot w quantizes every row into ws->own_a[w] (of
// the shape of rows.a, the shared buffer) and ws->own_pt[w].
struct OwnRows {
  QuantRows rows;
  LinearWorkspace* ws;
};

const PackedActivationsS8* quantize_own_rows(void* ctx, int worker) {
  const OwnRows& o = *static_cast<const OwnRows*>(ctx);
  PackedActivationsS8& a = o.ws->own_a[static_cast<size_t>(worker)];
  a.reset(o.rows.a->m(), o.rows.a->k_padded());
  QuantRows q = o.rows;
  q.a = &a;
  q.pertoken = o.ws->own_pt[static_cast<size_t>(worker)].data();
  quantize_blocks(q, 0, a.blocks());
  return &a;
}

void linear_fused(const Tensor& x, int64_t rows, const PackedWeightsS8& w,
                  const Tensor& weight_scale, const Tensor* bias, Tensor& y,
                  const GemmS8Options& opt) {
  static thread_local LinearWorkspace ws;
  if (ws.pertoken.rank() != 1 || ws.pertoken.dim(0) != rows)
    ws.pertoken = Tensor(DType::kF32, {rows});
  float* pertoken = ws.pertoken.data<float>();
  QuantMatmulConfig cfg;
  cfg.output_dtype = x.dtype();
  const QuantMatmulPlan p = plan_quant_matmul(DType::kI8, {rows, w.k()}, DType::kI8, {w.k(), w.n()},
                                              weight_scale, nullptr, &ws.pertoken, bias, cfg);
  const int64_t k = w.k();
  const bool f16 = x.dtype() == DType::kF16;
  const uint16_t* xin = x.data<uint16_t>();
  PackedActivationsS8& a = ws.a;
  a.reset(rows, w.k_padded());  // the shape gemm_s8 works on (and the rows, when shared)
  QuantRows qr{xin, f16, k, pertoken, &a};
  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  GemmS8Prologue pro;
  OwnRows own{qr, &ws};
  const bool replicated = rows <= kReplicatedQuantRows && threads > 1;
  if (replicated) {
    // Every slot's buffers exist before the parallel region (workers only fill their own).
    if (ws.own_a.size() < static_cast<size_t>(threads)) ws.own_a.resize(threads);
    ws.own_pt.resize(std::max(ws.own_pt.size(), static_cast<size_t>(threads)));
    for (std::vector<float>& pt : ws.own_pt) pt.resize(static_cast<size_t>(rows));
    pro.ctx = &own;
    pro.own = quantize_own_rows;
    pro.max_workers = threads;
  } else {
    // The quant runs as the GEMM's prologue (the same parallel region: one pool hand-off per
    // call), in chunks of row blocks of ~32 KiB of x.
    pro.ctx = &qr;
    pro.units = a.blocks();
    pro.grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(k * kGemmS8Mr, 1));
    pro.fn = [](void* ctx, int64_t b0, int64_t b1) {
      quantize_blocks(*static_cast<const QuantRows*>(ctx), b0, b1);
    };
  }
  GemmS8Options gopt = opt;
  gopt.prologue = &pro;
  QuantMatmulStages st;
  st.out = std::move(y);  // x.shape[:-1] + [N]: the same elements as [rows, N]
  prepare_columns(p, weight_scale, nullptr, bias, ws.cols);
  Epilogue e = make_epilogue(p, cfg, ws.cols, &ws.pertoken, st, opt.force_scalar);
  e.rows_end = rows;
  if (replicated) e.pertoken_by_worker = ws.own_pt.data();
  try {
    gemm_s8(a, w, epilogue_tile, &e, gopt);
  } catch (...) {
    y = std::move(st.out);
    throw;
  }
  y = std::move(st.out);
}

}  // namespace

void w8a8_dynamic_linear(const Tensor& x, const PackedWeightsS8& w, const Tensor& weight_scale,
                         const Tensor* bias, Tensor& y, const GemmS8Options& opt) {
  if (w.int4())
    throw std::invalid_argument("w8a8_dynamic_linear: the weight must be int8 (W8A8), got int4");
  if (x.rank() < 2 || x.dim(-1) != w.k())
    throw std::invalid_argument("w8a8_dynamic_linear: x must be [.., K] with K = " +
                                std::to_string(w.k()) + ", got " + x.describe());
  Shape out_shape = x.shape();
  out_shape.back() = w.n();
  if (y.dtype() != x.dtype() || y.shape() != out_shape)
    throw std::invalid_argument("w8a8_dynamic_linear: y must be " +
                                std::string(dtype_name(x.dtype())) + shape_str(out_shape) +
                                ", got " + y.describe());
  int64_t rows = 1;
  for (int d = 0; d + 1 < x.rank(); ++d) rows *= x.dim(d);
  if ((x.dtype() == DType::kBF16 || x.dtype() == DType::kF16) && w.k() > 0) {
    linear_fused(x, rows, w, weight_scale, bias, y, opt);
    return;
  }
  // Other dtypes and K = 0: the unfused steps (npu_dynamic_quant reports a bad dtype).
  // Step 1: per-token dynamic quant (the A2/A3 kernel: m = 127/amax, RINT(x*m), scale = 1/m).
  DynQuantStages q = npu_dynamic_quant(x, nullptr, nullptr, DynQuantConfig{});
  // Step 2: npu_quant_matmul(x_q, W, weight_scale, pertoken_scale = scale, bias,
  // output_dtype = x.dtype), on the flattened tokens.
  Tensor pertoken(DType::kF32, {rows});
  std::memcpy(pertoken.bytes(), q.scale.bytes(), q.scale.nbytes());
  QuantMatmulConfig cfg;
  cfg.output_dtype = x.dtype();
  const QuantMatmulPlan p = plan_quant_matmul(DType::kI8, {rows, w.k()}, DType::kI8, {w.k(), w.n()},
                                              weight_scale, nullptr, &pertoken, bias, cfg);
  QuantMatmulStages st;
  st.out = std::move(y);  // x.shape[:-1] + [N]: the same elements as [rows, N]
  Columns cols;
  prepare_columns(p, weight_scale, nullptr, bias, cols);
  Epilogue e = make_epilogue(p, cfg, cols, &pertoken, st, opt.force_scalar);
  PackedActivationsS8 a;
  a.pack_s8(q.y.data<int8_t>(), rows, w.k(), w.k(), w.k_padded(), opt.threads);
  e.rows_end = rows;
  try {
    gemm_s8(a, w, epilogue_tile, &e, opt);
  } catch (...) {
    y = std::move(st.out);
    throw;
  }
  y = std::move(st.out);
}

Tensor w8a8_dynamic_linear(const Tensor& x, const PackedWeightsS8& w, const Tensor& weight_scale,
                           const Tensor* bias, const GemmS8Options& opt) {
  if (x.rank() < 2)
    throw std::invalid_argument("w8a8_dynamic_linear: x must be [.., K], got " + x.describe());
  Shape out_shape = x.shape();
  out_shape.back() = w.n();
  Tensor y(x.dtype(), out_shape);
  w8a8_dynamic_linear(x, w, weight_scale, bias, y, opt);
  return y;
}

}  // namespace qconf::opt
