// safetensors files and checkpoint directories: a strict reader (every malformed file is a
// CheckpointError naming the file, the tensor and the field) and a writer (tests and tools build
// small checkpoints with it).
//
// Format (huggingface/safetensors README, "Format"): 8 bytes little-endian u64 N, then N bytes of
// UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the byte buffer. Offsets are relative to the buffer; the tensors must cover the buffer
// exactly, without holes or overlaps; names are unique; the header may be padded with spaces.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "qconf/core/tensor.h"

namespace qconf::ckpt {

// Every checkpoint error: the file, the tensor (or key) and the field it is about.
class CheckpointError : public std::runtime_error {
 public:
  CheckpointError(std::string file, std::string tensor, std::string field, const std::string& what);
  const std::string& file() const { return file_; }
  const std::string& tensor() const { return tensor_; }
  const std::string& field() const { return field_; }

 private:
  std::string file_, tensor_, field_;
};

// safetensors dtype names ("F32", "BF16", "I8", "F8_E4M3", ...): their size in bytes, and the
// qconf DType that holds their bits (fp8 / e8m0 / fp4 containers as uint8). Unknown: nullopt.
std::optional<size_t> st_dtype_size(const std::string& st_dtype);
DType st_dtype_storage(const std::string& st_dtype);  // throws std::invalid_argument if unknown
std::string st_dtype_of(DType t);                     // "F32" for kF32, ...
const std::vector<std::string>& st_known_dtypes();

// One tensor of a safetensors file: where its bytes are.
struct TensorInfo {
  std::string name;
  std::string file;      // the file holding it
  std::string st_dtype;  // as written in the header
  Shape shape;
  uint64_t begin = 0, end = 0;  // absolute byte offsets in the file
};

class SafetensorsFile {
 public:
  // Reads and validates the header (the data is read on demand).
  static SafetensorsFile open(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return file_size_; }
  // Reads one tensor's bytes into a Tensor of its storage dtype.
  Tensor read(const std::string& name) const;

 private:
  std::string path_;
  uint64_t file_size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: its safetensors dtype (defaults to the Tensor's) and bytes.
struct StTensor {
  std::string name;
  Tensor t;
  std::string st_dtype;  // empty: st_dtype_of(t.dtype())
};
// The bytes of a valid safetensors file holding `tensors` in the given order.
std::string safetensors_bytes(const std::vector<StTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& path, const std::vector<StTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// All tensors of a checkpoint directory: model.safetensors.index.json (weight_map) when present,
// else every *.safetensors file. A name in two files, a weight_map entry whose file lacks it, or a
// shard the index does not know about is an error.
class CheckpointTensors {
 public:
  static CheckpointTensors open(const std::string& dir);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  Tensor read(const std::string& name) const;
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<std::string> files_;
  std::map<std::string, SafetensorsFile> shards_;
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace qconf::ckpt
