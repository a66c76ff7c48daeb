// The core data model shared by reference/, optimized/, conformance/ and every plugin:
// a dense, row-major tensor of one element type, stored as little-endian bytes.
//
// Floats are stored by bit pattern (fp16 and bf16 as uint16, fp32 as uint32 bits), so a
// tensor round-trips through a fixture file without any conversion.
#pragma once

#include <boost/align/aligned_allocator.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace qconf {

// Element types. Names (the strings in fixtures) follow numpy where numpy has the type.
enum class DType : uint8_t {
  kBool,
  kI8,
  kU8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kF16,   // IEEE binary16, stored as its 16 bits
  kBF16,  // bfloat16, stored as its 16 bits
  kF32,   // IEEE binary32, stored as its 32 bits
  kF64,   // IEEE binary64, stored as its 64 bits
};

// "bool", "int8", "uint8", ..., "float16", "bfloat16", "float32", "float64".
std::string_view dtype_name(DType t);
// Parses a name from dtype_name(); throws std::invalid_argument naming the bad value.
DType parse_dtype(std::string_view name);
// All dtypes, in declaration order (for tests and listings).
std::span<const DType> all_dtypes();
size_t dtype_size(DType t);
bool dtype_is_float(DType t);
bool dtype_is_signed_int(DType t);
bool dtype_is_int(DType t);  // any integer type (bool excluded)

// Maps a C++ storage type to its DType (floats by bits are not covered: use the DType).
template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, bool>)
    return DType::kBool;
  else if constexpr (std::is_same_v<T, int8_t>)
    return DType::kI8;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::kU8;
  else if constexpr (std::is_same_v<T, int16_t>)
    return DType::kI16;
  else if constexpr (std::is_same_v<T, uint16_t>)
    return DType::kU16;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::kI32;
  else if constexpr (std::is_same_v<T, uint32_t>)
    return DType::kU32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::kI64;
  else if constexpr (std::is_same_v<T, uint64_t>)
    return DType::kU64;
  else if constexpr (std::is_same_v<T, float>)
    return DType::kF32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::kF64;
  else
    static_assert(sizeof(T) == 0, "no DType for this type");
}

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3, 8]"

class Tensor {
 public:
  static constexpr size_t kStorageAlignment = 64;  // bytes() of a non-empty tensor
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled

  template <typename T>
  static Tensor from(DType dtype, Shape shape, const std::vector<T>& values) {
    Tensor t(dtype, std::move(shape));
    if (sizeof(T) != dtype_size(dtype) || values.size() != static_cast<size_t>(t.numel()))
      throw std::invalid_argument("Tensor::from: storage type or element count mismatch");
    if (!t.bytes_.empty()) std::memcpy(t.bytes_.data(), values.data(), t.bytes_.size());
    return t;
  }
  template <typename T>
  static Tensor from(Shape shape, const std::vector<T>& values) {
    return from(dtype_of<T>(), std::move(shape), values);
  }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return bytes_.size(); }

  std::byte* bytes() { return bytes_.data(); }
  const std::byte* bytes() const { return bytes_.data(); }

  // Typed access; T's size must equal the element size (checked).
  template <typename T>
  T* data() {
    check_elem<T>();
    return reinterpret_cast<T*>(bytes_.data());
  }
  template <typename T>
  const T* data() const {
    check_elem<T>();
    return reinterpret_cast<const T*>(bytes_.data());
  }
  template <typename T>
  std::vector<T> to_vector() const {
    check_elem<T>();
    std::vector<T> v(static_cast<size_t>(numel()));
    if (!bytes_.empty()) std::memcpy(v.data(), bytes_.data(), bytes_.size());
    return v;
  }

  // The raw bits of element i, zero-extended (for any dtype up to 64 bits).
  uint64_t bits_at(int64_t i) const;
  // The value of integer element i (sign-extended for signed types). Requires an int dtype.
  int64_t int_at(int64_t i) const;

  bool bit_equal(const Tensor& o) const {
    return dtype_ == o.dtype_ && shape_ == o.shape_ && bytes_ == o.bytes_;
  }
  std::string describe() const;  // "int32[2, 8]"

 private:
  template <typename T>
  void check_elem() const {
    if (sizeof(T) != dtype_size(dtype_))
      throw std::logic_error("Tensor::data<T>: element size mismatch for " +
                             std::string(dtype_name(dtype_)));
  }
  DType dtype_ = DType::kF32;
  Shape shape_{0};  // default-constructed: an empty tensor, not a scalar
  // Storage starts on a 64-byte (cache-line) boundary, as torch's CPU allocator gives: the
  // optimized transposing packers and unpackers stream whole output lines with non-temporal
  // stores only from an aligned start (docs/perf.md, issue 3); std::vector's default 16-byte
  // alignment put every Tensor output 16 bytes off a line.
  std::vector<std::byte, boost::alignment::aligned_allocator<std::byte, kStorageAlignment>> bytes_;
};

// Named tensors: the inputs, the stages and the outputs of one op call.
using TensorMap = std::map<std::string, Tensor>;

}  // namespace qconf
