// `qconf identify-format` (qconf/conformance/identify_format.h). Every candidate is computed by
// the reference ops of reference/ops/{int4pack,packing,scales}.cpp; nothing here re-implements an
// encoding. The words-only checks test bit fields the reference's encodings fix (their comments
// cite the reference function that fixes each field).
#include "qconf/conformance/identify_format.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "qconf/conformance/fixture.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"

namespace qconf::conf {

namespace identify_format_detail {

// ---- tensor helpers ------------------------------------------------------------------------

Tensor reshaped(const Tensor& t, Shape s) {
  Tensor out(t.dtype(), std::move(s));
  if (out.nbytes() != t.nbytes()) throw std::logic_error("reshaped: element count differs");
  if (t.nbytes()) std::memcpy(out.bytes(), t.bytes(), t.nbytes());
  return out;
}

// The values of an integer tensor converted to `to` (int8 or int32); nullopt when a value does
// not fit (the encoding then does not accept this input).
std::optional<Tensor> int_values_as(const Tensor& t, DType to) {
  if (t.dtype() == to) return t;
  if (!dtype_is_int(t.dtype())) return std::nullopt;
  const int64_t lo = to == DType::kI8 ? INT8_MIN : INT32_MIN;
  const int64_t hi = to == DType::kI8 ? INT8_MAX : INT32_MAX;
  Tensor out(to, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::kU64 && t.bits_at(i) > static_cast<uint64_t>(INT64_MAX))
      return std::nullopt;
    const int64_t v = t.int_at(i);
    if (v < lo || v > hi) return std::nullopt;
    if (to == DType::kI8)
      out.data<int8_t>()[i] = static_cast<int8_t>(v);
    else
      out.data<int32_t>()[i] = static_cast<int32_t>(v);
  }
  return out;
}

// Words of an int32-sized tensor (int32 or uint32) as int32 bits, for the W4A16 chain input.
std::optional<Tensor> words_as_i32(const Tensor& t) {
  if (t.dtype() == DType::kI32) return t;
  if (t.dtype() != DType::kU32) return std::nullopt;
  Tensor out(DType::kI32, t.shape());
  std::memcpy(out.bytes(), t.bytes(), t.nbytes());
  return out;
}

std::string hex_bits(uint64_t v, size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", static_cast<int>(2 * bytes),
                static_cast<unsigned long long>(v));
  return buf;
}

std::string index_str(const Shape& s, int64_t flat) {
  if (s.empty()) return "[]";
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    const int64_t n = std::max<int64_t>(s[d], 1);
    idx[d] = flat % n;
    flat /= n;
  }
  return shape_str(idx);
}

// Thrown by a candidate's apply() when the encoding does not accept the input.
struct NotApplicable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Tensor need(std::optional<Tensor> t, const std::string& why) {
  if (!t) throw NotApplicable(why);
  return std::move(*t);
}

// An int4 weight in the 2-D/3-D form npu_convert_weight_to_int4pack takes ([k, n] / [g, k, n]);
// rank 1 is one row, rank > 3 is flattened to rows. Packing is per row, so the words are the same.
Tensor as_int4pack_form(const Tensor& w) {
  if (w.rank() == 2 || w.rank() == 3) return w;
  if (w.rank() == 0) throw NotApplicable("needs a weight of rank >= 1");
  const int64_t n = w.dim(-1);
  return reshaped(w, {n ? w.numel() / n : 0, n});
}

Tensor flat_f32(const Tensor& t, const char* what) {
  if (t.dtype() != DType::kF32)
    throw NotApplicable(std::string("takes float32 ") + what + ", got " + t.describe());
  return reshaped(t, {t.numel()});
}

// ---- the candidates ------------------------------------------------------------------------

struct CandidateImpl {
  FormatCandidate c;
  // With input: the reference output (throws NotApplicable / std::invalid_argument).
  std::function<Tensor(const Tensor& input, const Tensor* offset)> apply;
  // Words only: "" when word i can come from this encoding, else why not.
  std::function<std::string(uint64_t word)> word_check;
};

// Packed int4/int8 words: every 32-bit word is the image of some input under each of these
// encodings (all 16 nibble values and all 256 byte values occur), so no word rules one out.
std::string any_word(uint64_t) { return ""; }

// int64 scale-word fields (reference/ops/scales.cpp).
constexpr uint64_t kLow32 = 0xFFFFFFFFull;
uint64_t hi32(uint64_t w) { return w >> 32; }
bool bits_32_36_47_63_clear(uint64_t w) {
  return (w & 0xFFFF801F00000000ull) == 0;  // outside scale field, offset field and flag
}

// fp32 bits exactly representable in fp16 (what (x).to(float16).to(float32) yields), incl.
// zeros, Inf and the quiet NaNs an fp16 NaN widens to.
bool fp32_is_fp16_value(uint32_t b) {
  const int exp_field = static_cast<int>((b >> 23) & 0xFF);
  const uint32_t man = b & 0x7FFFFF;
  if (exp_field == 0) return man == 0;  // zero (fp32 subnormals are below fp16's range)
  if (exp_field == 0xFF) return (man & 0x1FFF) == 0;
  const int e = exp_field - 127;
  if (e > 15 || e < -24) return false;
  const int drop = e >= -14 ? 13 : 13 + (-14 - e);  // mantissa bits fp16 cannot hold
  return (man & ((1u << drop) - 1)) == 0;
}

const std::vector<CandidateImpl>& impls() {
  static const std::vector<CandidateImpl> v = [] {
    std::vector<CandidateImpl> c;
    const auto W = FormatFamily::kPackedWeight;
    const auto S = FormatFamily::kScaleWord;
    c.push_back({{"npu_convert_weight_to_int4pack",
                  "torch_npu int4 layout: two's-complement nibbles, element 8j+t in bits 4t..4t+3 "
                  "of word j, values outside [-8, 7] wrap (notes/torch_npu_semantics.md §0, §5)",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   Tensor w = need(int_values_as(in, DType::kI32), "needs int32-range integers");
                   return ref::npu_convert_weight_to_int4pack(as_int4pack_form(w));
                 },
                 any_word});
    c.push_back({{"npu_quantize_quint4x2_layout",
                  "the NPU int4 layout after the saturating int4 cast of npu_quantize(dtype="
                  "quint4x2) / npu_dynamic_quant int4: codes clamped to [-8, 7], then "
                  "two's-complement nibbles (input: the int codes)",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   Tensor w = need(int_values_as(in, DType::kI32), "needs int32-range integers");
                   Tensor clamped = ref::vllm_ascend_clamp_int4(w);  // clamp to [-8, 7] as int8
                   return ref::npu_convert_weight_to_int4pack(
                       as_int4pack_form(*int_values_as(clamped, DType::kI32)));
                 },
                 any_word});
    c.push_back({{"vllm_ascend_pack_int4_to_int32",
                  "vllm-ascend fallback packer (seed 002 w4a4_flatquant.py): clamp to [-8, 7], "
                  "offset binary v + 8, LSB first",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   std::optional<Tensor> w = in.dtype() == DType::kI8
                                                 ? std::optional<Tensor>(in)
                                                 : int_values_as(in, DType::kI32);
                   return ref::vllm_ascend_pack_int4_to_int32(
                       need(w, "needs int8 or int32-range integers"));
                 },
                 any_word});
    for (int bits : {4, 8})
      for (int dim : {1, 0})
        c.push_back({{"ct_pack_to_int32(num_bits=" + std::to_string(bits) +
                          ", packed_dim=" + std::to_string(dim) + ")",
                      "compressed-tensors pack_to_int32: offset binary v + 2^(b-1), LSB first, "
                      "no clamp (out-of-range fields carry), packed dim padded with zeros",
                      W},
                     [bits, dim](const Tensor& in, const Tensor*) {
                       if (in.rank() != 2)
                         throw NotApplicable("takes a 2-D weight, got " + in.describe());
                       return ref::ct_pack_to_int32(
                           need(int_values_as(in, DType::kI8), "needs int8-range integers"), bits,
                           dim);
                     },
                     any_word});
    c.push_back({{"w4a8_modelslim_pack",
                  "W4A8 MoE msModelSlim (seed 001 w4a8.py): int8 [E, N/2, K] bytes (two int4 "
                  "each) transposed to [E, K, N/2] and viewed as int32 [E, K, N/8]",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   if (in.rank() != 3)
                     throw NotApplicable("takes int8 [E, N/2, K], got " + in.describe());
                   return ref::w4a8_modelslim_pack(
                       need(int_values_as(in, DType::kI8), "needs int8-range integers"));
                 },
                 any_word});
    c.push_back({{"w4a8_llmcompressor_pack",
                  "W4A8 MoE LLM-Compressor (w4a8.py): int8 [E, N, K] int4 values transposed, "
                  "pairs (w[2j+1] << 4) | (w[2j] & 0xF), viewed as int32 [E, K, N/8]",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   if (in.rank() != 3)
                     throw NotApplicable("takes int8 [E, N, K], got " + in.describe());
                   return ref::w4a8_llmcompressor_pack(
                       need(int_values_as(in, DType::kI8), "needs int8-range integers"));
                 },
                 any_word});
    c.push_back({{"w4a16_ct_repack_chain",
                  "W4A16 MoE (seed 004): compressed-tensors int32 [E, N, K/8] -> unpack -> "
                  "transpose -> npu_convert_weight_to_int4pack int32 [E, K, N/8] (input: the "
                  "compressed-tensors words)",
                  W},
                 [](const Tensor& in, const Tensor*) {
                   if (in.rank() != 3)
                     throw NotApplicable("takes int32 words [E, N, K/8], got " + in.describe());
                   return ref::w4a16_ct_repack_chain(
                       need(words_as_i32(in), "takes int32 words, got " + in.describe()));
                 },
                 any_word});

    // ---- scale words ----
    c.push_back({{"scale_from_float_to_int64",
                  "W8A8_DYNAMIC fused-MC2 scales (seed 000 w8a8_dynamic.py): fp32 bits read as "
                  "int32, sign-extended to int64",
                  S},
                 [](const Tensor& in, const Tensor* off) {
                   if (off) throw NotApplicable("takes no offset");
                   return ref::scale_from_float_to_int64(in);
                 },
                 [](uint64_t w) -> std::string {
                   // fp32_bits_sign_extended: the upper half copies bit 31.
                   const uint64_t want = (w & 0x80000000ull) ? kLow32 : 0;
                   if (hi32(w) != want)
                     return "upper 32 bits " + hex_bits(hi32(w), 4) + " are not the sign " +
                            "extension of bit 31 (" + hex_bits(want, 4) + ")";
                   return "";
                 }});
    for (TransQuantEncoding enc : {TransQuantEncoding::kFp19Trunc, TransQuantEncoding::kFp19Rne,
                                   TransQuantEncoding::kFullFp32}) {
      const std::string en(trans_quant_encoding_name(enc));
      const bool fp19 = enc != TransQuantEncoding::kFullFp32;
      c.push_back(
          {{"npu_trans_quant_param(encoding=" + en + ")",
            enc == TransQuantEncoding::kFp19Trunc
                ? "kernel round_mode=0: (fp32 bits & 0xFFFFE000) | 1 << 46, int9 offset in "
                  "bits 37..45 (notes/torch_npu_semantics.md §2)"
            : enc == TransQuantEncoding::kFp19Rne
                ? "kernel round_mode=1: fp32 rounded to nearest even at bit 13 (FP19), "
                  "| 1 << 46, int9 offset in bits 37..45"
                : "older host helper (aclnnTransQuantParam, TransQuantScaleToM1): all 32 fp32 "
                  "bits | 1 << 46, int9 offset in bits 37..45",
            S},
           [enc](const Tensor& in, const Tensor* off) {
             Tensor s = flat_f32(in, "scales");
             std::optional<Tensor> o;
             if (off) o = flat_f32(*off, "offsets");
             return ref::npu_trans_quant_param(s, o ? &*o : nullptr, enc).quant_param;
           },
           [fp19](uint64_t w) -> std::string {
             // assemble_quant_param: bits 32..36 and 47..63 are never set.
             if (!bits_32_36_47_63_clear(w))
               return "bits 32..36 / 47..63 are set (" + hex_bits(w, 8) + ")";
             if (fp19) {
               // The kernel always sets the flag; encode_scale_field keeps bits 13..31 only.
               if (!(w & kQuantParamFlag)) return "bit 46 (scale flag) is clear";
               if (w & 0x1FFF)
                 return "low 13 bits " + hex_bits(w & 0x1FFF, 2) + " are not zero (FP19 keeps " +
                        "sign, exponent and 10 mantissa bits)";
             } else if (!(w & kQuantParamFlag) && (w & kLow32)) {
               // The host helper writes a scale field only together with the flag.
               return "scale field set without bit 46";
             }
             return "";
           }});
    }
    for (W4a8ScaleRounding r : {W4a8ScaleRounding::kFp16, W4a8ScaleRounding::kNone}) {
      const std::string rn(w4a8_scale_rounding_name(r));
      c.push_back(
          {{"w4a8_process_scale(scale_rounding=" + rn + ")",
            r == W4a8ScaleRounding::kFp16
                ? "W4A8 MoE scales, vllm-ascend PR #2392: scale rounded to fp16, its fp32 bits "
                  "read as uint32 and zero-extended to int64 (per-channel; per-group scales "
                  "are not tried)"
                : "W4A8 MoE scales, vllm-ascend HEAD w4a8.py: fp32 bits read as uint32, "
                  "zero-extended to int64",
            S},
           [r](const Tensor& in, const Tensor* off) {
             if (off) throw NotApplicable("takes no offset");
             return ref::w4a8_process_scale(reshaped(in, {1, 1, in.numel()}), nullptr, r)
                 .scale_int64;
           },
           [r](uint64_t w) -> std::string {
             // The int64 view of [bits, 0] uint32 pairs: the upper half is zero.
             if (hi32(w) != 0) return "upper 32 bits " + hex_bits(hi32(w), 4) + " are not zero";
             if (r == W4a8ScaleRounding::kFp16 && !fp32_is_fp16_value(static_cast<uint32_t>(w)))
               return "fp32 " + hex_bits(w & kLow32, 4) + " is not an fp16 value";
             return "";
           }});
    }
    return c;
  }();
  return v;
}

FormatFamily family_of(const Tensor& produced) {
  switch (produced.dtype()) {
    case DType::kI32:
    case DType::kU32:
      return FormatFamily::kPackedWeight;
    case DType::kI64:
    case DType::kU64:
      return FormatFamily::kScaleWord;
    default:
      throw std::invalid_argument(
          "produced: expected int32/uint32 packed words or int64/uint64 scale words, got " +
          produced.describe());
  }
}

// What separates two remaining candidates (from the notes and golden separating vectors).
void add_pair_hints(const std::vector<std::string>& rem, std::vector<std::string>& hints) {
  auto has = [&](const std::string& prefix) {
    return std::any_of(rem.begin(), rem.end(),
                       [&](const std::string& r) { return r.rfind(prefix, 0) == 0; });
  };
  if (has("npu_convert_weight_to_int4pack") && has("npu_quantize_quint4x2_layout"))
    hints.push_back(
        "npu_convert_weight_to_int4pack wraps and the quint4x2 cast saturates: a weight value "
        "outside [-8, 7] separates them");
  if (has("vllm_ascend_pack_int4_to_int32") && has("ct_pack_to_int32(num_bits=4, packed_dim=1)"))
    hints.push_back(
        "vllm_ascend_pack_int4_to_int32 clamps and ct_pack_to_int32 carries: a weight value "
        "outside [-8, 7] separates them");
  if (has("ct_pack_to_int32(num_bits=4, packed_dim=0)") &&
      has("ct_pack_to_int32(num_bits=4, packed_dim=1)"))
    hints.push_back("a non-square weight separates packed_dim 0 and 1");
  if (has("npu_trans_quant_param(encoding=fp19_trunc)") &&
      has("npu_trans_quant_param(encoding=fp19_rne)"))
    hints.push_back(
        "fp19_trunc and fp19_rne differ only on a scale whose low 13 bits are 0x1001..0x1FFF or "
        "the tie 0x1000 with bit 13 set (RNE rounds up): include such a scale");
  if (has("npu_trans_quant_param(encoding=full_fp32)") &&
      has("npu_trans_quant_param(encoding=fp19"))
    hints.push_back(
        "full_fp32 keeps the low 13 bits that FP19 drops: a scale with nonzero low 13 bits "
        "separates them");
  if (has("scale_from_float_to_int64") && has("w4a8_process_scale"))
    hints.push_back(
        "scale_from_float_to_int64 sign-extends and w4a8_process_scale zero-extends: only a "
        "negative scale (sign bit set) separates them");
  if (has("w4a8_process_scale(scale_rounding=fp16)") &&
      has("w4a8_process_scale(scale_rounding=none)"))
    hints.push_back("a scale that is not an fp16 value separates scale_rounding fp16 and none");
}

// Words-only evidence for packed weights: where the nibbles cluster. Not a verdict.
void nibble_hint(const Tensor& produced, std::vector<std::string>& hints) {
  std::array<int64_t, 16> h{};
  for (int64_t i = 0; i < produced.numel(); ++i) {
    const uint64_t w = produced.bits_at(i);
    for (int t = 0; t < 8; ++t) ++h[(w >> (4 * t)) & 0xF];
  }
  const int64_t twos = h[0x0] + h[0x1] + h[0xF] + h[0xE];  // small values, two's complement
  const int64_t offs = h[0x7] + h[0x8] + h[0x9] + h[0x6];  // small values, offset binary
  std::ostringstream o;
  o << "nibble histogram (evidence, not a verdict): " << twos
    << " nibbles in {0x0, 0x1, 0xE, 0xF} (small values in two's complement), " << offs
    << " in {0x6, 0x7, 0x8, 0x9} (small values in offset binary)";
  if (h[0x8] == 0) o << "; nibble 0x8 never occurs (symmetric codes in two's complement?)";
  if (h[0x0] == 0) o << "; nibble 0x0 never occurs (symmetric codes in offset binary?)";
  hints.push_back(o.str());
  hints.push_back(
      "every int32 word is a possible output of each packing: give the logical input "
      "(--input) to decide");
}

}  // namespace identify_format_detail

const std::vector<FormatCandidate>& format_candidates() {
  static const std::vector<FormatCandidate> v = [] {
    std::vector<FormatCandidate> c;
    for (const auto& i : identify_format_detail::impls()) c.push_back(i.c);
    return c;
  }();
  return v;
}

FormatIdentification identify_format(const Tensor& produced, const Tensor* input,
                                     const Tensor* offset) {
  FormatIdentification id;
  id.family = identify_format_detail::family_of(produced);
  id.with_input = input != nullptr;
  if (produced.numel() == 0)
    throw std::invalid_argument("produced: " + produced.describe() + " is empty");
  if (offset && !input)
    throw std::invalid_argument("offset: given without the input scales (--input)");
  if (offset && id.family != FormatFamily::kScaleWord)
    throw std::invalid_argument(
        "offset: only npu_trans_quant_param takes an offset, and the "
        "produced tensor is not int64 scale words");
  if (input) {
    if (input->numel() == 0)
      throw std::invalid_argument("input: " + input->describe() + " is empty");
    if (id.family == FormatFamily::kPackedWeight && !dtype_is_int(input->dtype()))
      throw std::invalid_argument(
          "input: packed words need an integer weight (or the int32 "
          "compressed-tensors words of the W4A16 chain), got " +
          input->describe());
    if (id.family == FormatFamily::kScaleWord && !dtype_is_float(input->dtype()))
      throw std::invalid_argument("input: scale words need float scales, got " + input->describe());
  }
  const auto& cands = format_candidates();
  int64_t best = -1;
  for (size_t k = 0; k < identify_format_detail::impls().size(); ++k) {
    const identify_format_detail::CandidateImpl& ci = identify_format_detail::impls()[k];
    if (ci.c.family != id.family) continue;
    CandidateResult r;
    r.candidate = &cands[k];
    if (!input) {
      r.verdict = CandidateVerdict::kConsistent;
      for (int64_t i = 0; i < produced.numel(); ++i) {
        std::string why = ci.word_check(produced.bits_at(i));
        if (!why.empty()) {
          r.verdict = CandidateVerdict::kInconsistent;
          r.detail =
              "element " + identify_format_detail::index_str(produced.shape(), i) + ": " + why;
          break;
        }
      }
      if (r.verdict == CandidateVerdict::kConsistent) id.remaining.push_back(ci.c.name);
      id.results.push_back(std::move(r));
      continue;
    }
    Tensor out;
    try {
      out = ci.apply(*input, offset);
    } catch (const identify_format_detail::NotApplicable& e) {
      r.detail = e.what();
      id.results.push_back(std::move(r));
      continue;
    } catch (const std::invalid_argument& e) {
      r.detail = e.what();  // the reference op's own argument check
      id.results.push_back(std::move(r));
      continue;
    }
    const size_t bytes = dtype_size(produced.dtype());
    if (out.numel() != produced.numel()) {
      r.verdict = CandidateVerdict::kMismatch;
      r.detail = "produces " + out.describe() + ", the produced tensor is " + produced.describe();
      id.results.push_back(std::move(r));
      continue;
    }
    r.compared = out.numel();
    int64_t first = -1;
    for (int64_t i = 0; i < out.numel(); ++i)
      if (out.bits_at(i) != produced.bits_at(i)) {
        if (first < 0) first = i;
        ++r.mismatches;
      }
    if (first < 0) {
      r.verdict = CandidateVerdict::kMatch;
      if (out.shape() != produced.shape())
        r.detail = "bits match; the reference shape is " + shape_str(out.shape());
      id.remaining.push_back(ci.c.name);
    } else {
      r.verdict = CandidateVerdict::kMismatch;
      r.detail = std::to_string(r.mismatches) + "/" + std::to_string(r.compared) +
                 " elements differ; first at " +
                 identify_format_detail::index_str(produced.shape(), first) + ": got " +
                 identify_format_detail::hex_bits(produced.bits_at(first), bytes) +
                 ", this encoding gives " +
                 identify_format_detail::hex_bits(out.bits_at(first), bytes);
      if (best < 0 || r.mismatches < id.results[best].mismatches)
        best = static_cast<int64_t>(id.results.size());
    }
    id.results.push_back(std::move(r));
  }
  id.outcome = id.remaining.empty()       ? FormatOutcome::kNone
               : id.remaining.size() == 1 ? FormatOutcome::kIdentified
                                          : FormatOutcome::kAmbiguous;
  if (id.outcome == FormatOutcome::kNone && best >= 0)
    id.closest = id.results[best].candidate->name;
  if (id.outcome == FormatOutcome::kAmbiguous) {
    identify_format_detail::add_pair_hints(id.remaining, id.hints);
    if (input) id.hints.push_back("these encodings agree on every element of this input");
  }
  if (!input && id.family == FormatFamily::kPackedWeight)
    identify_format_detail::nibble_hint(produced, id.hints);
  if (id.family == FormatFamily::kScaleWord && !offset)
    for (int64_t i = 0; i < produced.numel(); ++i) {
      const uint64_t w = produced.bits_at(i);
      if ((w & kQuantParamFlag) && ((w >> kQuantParamOffsetShift) & kQuantParamOffsetMask)) {
        id.hints.push_back("element " + identify_format_detail::index_str(produced.shape(), i) +
                           " carries an int9 offset in bits 37..45" +
                           (input ? ": pass the offsets (--offset) to match it" : ""));
        break;
      }
    }
  return id;
}

std::string format_identification_report(const FormatIdentification& id) {
  std::ostringstream o;
  o << (id.family == FormatFamily::kPackedWeight ? "packed weight words" : "int64 scale words")
    << (id.with_input ? ", checked against the reference with the given input\n"
                      : ", words only (no input): consistency with each encoding's bit fields\n");
  for (const auto& r : id.results) {
    const char* tag = "";
    switch (r.verdict) {
      case CandidateVerdict::kMatch:
        tag = "MATCH       ";
        break;
      case CandidateVerdict::kMismatch:
        tag = "ruled out   ";
        break;
      case CandidateVerdict::kNotApplicable:
        tag = "n/a         ";
        break;
      case CandidateVerdict::kConsistent:
        tag = "consistent  ";
        break;
      case CandidateVerdict::kInconsistent:
        tag = "ruled out   ";
        break;
    }
    o << "  " << tag << r.candidate->name;
    if (!r.detail.empty()) o << "\n                " << r.detail;
    o << "\n";
  }
  switch (id.outcome) {
    case FormatOutcome::kIdentified:
      o << "identified: " << id.remaining[0]
        << (id.with_input ? " (bit-exact)" : " (the only encoding consistent with the words)")
        << "\n  "
        << std::find_if(id.results.begin(), id.results.end(),
                        [&](const auto& r) { return r.candidate->name == id.remaining[0]; })
               ->candidate->source
        << "\n";
      break;
    case FormatOutcome::kNone:
      o << "none: no documented encoding "
        << (id.with_input ? "reproduces these words" : "can produce these words");
      if (!id.closest.empty()) o << " (closest: " << id.closest << ")";
      o << "\n";
      break;
    case FormatOutcome::kAmbiguous:
      o << "ambiguous: " << id.remaining.size() << " encodings "
        << (id.with_input ? "reproduce these words" : "are consistent with these words") << ":";
      for (const auto& r : id.remaining) o << "\n  " << r;
      o << "\n";
      break;
  }
  for (const auto& h : id.hints) o << "hint: " << h << "\n";
  return o.str();
}

// ---- file loading --------------------------------------------------------------------------

namespace identify_format_detail {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument(path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Shape parse_shape(const std::string& path, const std::string& s) {
  Shape out;
  std::string tok;
  std::istringstream in(s);
  while (std::getline(in, tok, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
    }
    while (used < tok.size() && tok[used] == ' ') ++used;
    if (v < 0 || used != tok.size())
      throw std::invalid_argument(path + ": --shape \"" + s +
                                  "\": expected comma-separated non-negative integers");
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument(path + ": --shape is empty");
  return out;
}

Tensor from_bytes(const std::string& path, DType dt, Shape shape, const std::string& bytes,
                  size_t offset, const std::string& field) {
  const uint64_t want = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dt);
  if (bytes.size() - offset != want)
    throw std::invalid_argument(path + ": " + field + ": " + std::string(dtype_name(dt)) +
                                shape_str(shape) + " needs " + std::to_string(want) +
                                " bytes of data, the file has " +
                                std::to_string(bytes.size() - offset));
  Tensor t(dt, std::move(shape));
  if (want) std::memcpy(t.bytes(), bytes.data() + offset, want);
  return t;
}

// NumPy .npy, format versions 1-3: magic, version, header length, a Python dict literal.
Tensor load_npy(const std::string& path, const std::string& bytes) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::invalid_argument(path + ": not a .npy file (magic \\x93NUMPY missing)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t hlen = 0, start = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw std::invalid_argument(path + ": truncated .npy header");
    for (int i = 0; i < 4; ++i) hlen |= size_t{static_cast<unsigned char>(bytes[8 + i])} << 8 * i;
    start = 12;
  } else {
    throw std::invalid_argument(path + ": .npy format version " + std::to_string(major) +
                                " is not supported (1, 2 or 3)");
  }
  if (bytes.size() < start + hlen) throw std::invalid_argument(path + ": truncated .npy header");
  const std::string h = bytes.substr(start, hlen);
  auto field = [&](const std::string& key) {
    const size_t k = h.find("'" + key + "'");
    if (k == std::string::npos)
      throw std::invalid_argument(path + ": .npy header has no '" + key + "': " + h);
    size_t p = h.find(':', k);
    while (p + 1 < h.size() && h[p + 1] == ' ') ++p;
    return p + 1;
  };
  size_t p = field("descr");
  if (h[p] != '\'' && h[p] != '"')
    throw std::invalid_argument(path + ": .npy descr is not a simple dtype string: " + h);
  const std::string descr = h.substr(p + 1, h.find(h[p], p + 1) - p - 1);
  static const std::map<std::string, DType> kDescr = {
      {"|i1", DType::kI8},  {"|u1", DType::kU8},  {"<i2", DType::kI16}, {"<u2", DType::kU16},
      {"<i4", DType::kI32}, {"<u4", DType::kU32}, {"<i8", DType::kI64}, {"<u8", DType::kU64},
      {"<f2", DType::kF16}, {"<f4", DType::kF32}, {"<f8", DType::kF64}, {"|b1", DType::kBool}};
  auto it = kDescr.find(descr);
  if (it == kDescr.end())
    throw std::invalid_argument(path + ": .npy descr '" + descr +
                                "' is not supported (little-endian ints, float16/32/64, bool)");
  p = field("fortran_order");
  if (h.compare(p, 5, "False") != 0)
    throw std::invalid_argument(path + ": .npy fortran_order must be False (save C-contiguous)");
  p = field("shape");
  const size_t close = h.find(')', p);
  if (h[p] != '(' || close == std::string::npos)
    throw std::invalid_argument(path + ": .npy shape is not a tuple: " + h);
  Shape shape;
  std::istringstream in(h.substr(p + 1, close - p - 1));
  std::string tok;
  while (std::getline(in, tok, ',')) {
    tok.erase(std::remove(tok.begin(), tok.end(), ' '), tok.end());
    if (tok.empty()) continue;
    try {
      shape.push_back(std::stoll(tok));
    } catch (const std::exception&) {
      throw std::invalid_argument(path + ": .npy shape entry '" + tok + "' is not an integer");
    }
  }
  return from_bytes(path, it->second, shape, bytes, start + hlen, "data");
}

}  // namespace identify_format_detail

Tensor load_tensor_file(const std::string& path, const std::optional<std::string>& dtype,
                        const std::optional<std::string>& shape) {
  const std::string bytes = identify_format_detail::read_all(path);
  const bool json = identify_format_detail::ends_with(path, ".json"),
             npy = identify_format_detail::ends_with(path, ".npy");
  if ((json || npy) && (dtype || shape))
    throw std::invalid_argument(path + ": --*-dtype/--*-shape are for raw files only (" +
                                (json ? "the JSON" : "the .npy header") + " gives them)");
  if (json) {
    Json j;
    try {
      j = Json::parse(bytes);
    } catch (const std::exception& e) {
      throw std::invalid_argument(path + ": not valid JSON: " + e.what());
    }
    try {
      return tensor_from_json(j, path, "", "tensor");
    } catch (const std::exception& e) {
      throw std::invalid_argument(e.what());
    }
  }
  if (npy) return identify_format_detail::load_npy(path, bytes);
  if (!dtype)
    throw std::invalid_argument(path +
                                ": a raw file needs its dtype (e.g. --input-dtype int8); "
                                "or give a .json tensor or a .npy file");
  DType dt;
  try {
    dt = parse_dtype(*dtype);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path + ": dtype: " + e.what());
  }
  Shape s = shape ? identify_format_detail::parse_shape(path, *shape)
                  : Shape{static_cast<int64_t>(bytes.size() / dtype_size(dt))};
  return identify_format_detail::from_bytes(path, dt, std::move(s), bytes, 0, "size");
}

}  // namespace qconf::conf
