// `qconf identify-format`: which documented data encoding (issue 3: int4/int8 weight packings,
// int64 scale encodings) produced a given tensor of packed words or encoded scales.
//
// With the logical input (the int weight, the packed ct words of the W4A16 chain, or the float
// scales), every documented encoding in every parameterization is run through the REFERENCE op
// and compared bit for bit with the produced tensor. Without the input, each encoding is checked
// for consistency with the words alone (bit fields that the encoding fixes), which usually
// cannot single one out: the answer is then "ambiguous", never a guess.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf::conf {

enum class FormatFamily {
  kPackedWeight,  // int32 words holding int4/int8 fields
  kScaleWord,     // int64 words holding an encoded fp32 scale
};

// One documented encoding with one parameterization, e.g. "ct_pack_to_int32(num_bits=4,
// packed_dim=1)".
struct FormatCandidate {
  std::string name;
  std::string source;  // what produces it (upstream function, notes section)
  FormatFamily family;
};
// Every candidate identify_format tries, in report order.
const std::vector<FormatCandidate>& format_candidates();

enum class CandidateVerdict {
  kMatch,          // with input: bit-exact reproduction
  kMismatch,       // with input: ran, differs (first differing element in `detail`)
  kNotApplicable,  // with input: the encoding does not accept this input (reason in `detail`)
  kConsistent,     // words only: every word has the bit fields this encoding can produce
  kInconsistent,   // words only: some word cannot come from this encoding (`detail` says which)
};

struct CandidateResult {
  const FormatCandidate* candidate = nullptr;
  CandidateVerdict verdict = CandidateVerdict::kNotApplicable;
  std::string detail;
  int64_t compared = 0;    // elements compared (kMatch / kMismatch)
  int64_t mismatches = 0;  // differing elements (kMismatch)
};

enum class FormatOutcome {
  kIdentified = 0,  // exactly one candidate matches (or, words only, is consistent)
  kNone = 1,        // no candidate matches / is consistent
  kAmbiguous = 3,   // several candidates remain; `hints` say what would separate them
};

struct FormatIdentification {
  FormatFamily family = FormatFamily::kPackedWeight;
  bool with_input = false;
  FormatOutcome outcome = FormatOutcome::kNone;
  std::vector<CandidateResult> results;  // one per candidate of the family
  std::vector<std::string> remaining;    // the matching / consistent candidates
  std::string closest;                   // kNone with input: the candidate with fewest mismatches
  std::vector<std::string> hints;        // what separates the remaining ones, evidence seen
};

// `produced`: int32/uint32 packed words or int64/uint64 scale words (the family follows the
// element size). `input` (optional): the logical input; `offset` (optional, scale family only):
// the float32 offset given to npu_trans_quant_param. Throws std::invalid_argument for input it
// cannot judge (empty tensors, a dtype no family accepts, an offset without scale words).
FormatIdentification identify_format(const Tensor& produced, const Tensor* input,
                                     const Tensor* offset);
std::string format_identification_report(const FormatIdentification& id);

// Loads a tensor for the CLI: the project's tensor JSON ({"dtype", "shape", "hex"}), a NumPy
// .npy file (little-endian, C order), or raw little-endian bytes (any other name; `dtype`
// required, `shape` optional: 1-D by default). `dtype`/`shape` are only accepted for raw files.
// Throws std::invalid_argument naming the file and the field.
Tensor load_tensor_file(const std::string& path, const std::optional<std::string>& dtype,
                        const std::optional<std::string>& shape);

}  // namespace qconf::conf
