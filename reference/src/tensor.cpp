#include "qconf/core/tensor.h"

#include <array>
#include <sstream>

namespace qconf {

namespace {
struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeInfo, 13> kInfo{{
    {DType::kBool, "bool", 1},
    {DType::kI8, "int8", 1},
    {DType::kU8, "uint8", 1},
    {DType::kI16, "int16", 2},
    {DType::kU16, "uint16", 2},
    {DType::kI32, "int32", 4},
    {DType::kU32, "uint32", 4},
    {DType::kI64, "int64", 8},
    {DType::kU64, "uint64", 8},
    {DType::kF16, "float16", 2},
    {DType::kBF16, "bfloat16", 2},
    {DType::kF32, "float32", 4},
    {DType::kF64, "float64", 8},
}};
constexpr std::array<DType, 13> kAll{
    DType::kBool, DType::kI8,  DType::kU8,  DType::kI16,  DType::kU16, DType::kI32, DType::kU32,
    DType::kI64,  DType::kU64, DType::kF16, DType::kBF16, DType::kF32, DType::kF64};
const DTypeInfo& info(DType t) { return kInfo[static_cast<size_t>(t)]; }
}  // namespace

std::string_view dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }
std::span<const DType> all_dtypes() { return kAll; }

DType parse_dtype(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.name == name) return i.t;
  std::string known;
  for (const auto& i : kInfo) known += (known.empty() ? "" : ", ") + std::string(i.name);
  throw std::invalid_argument("unknown dtype \"" + std::string(name) + "\" (expected one of " +
                              known + ")");
}

bool dtype_is_float(DType t) {
  return t == DType::kF16 || t == DType::kBF16 || t == DType::kF32 || t == DType::kF64;
}
bool dtype_is_signed_int(DType t) {
  return t == DType::kI8 || t == DType::kI16 || t == DType::kI32 || t == DType::kI64;
}
bool dtype_is_int(DType t) { return !dtype_is_float(t) && t != DType::kBool; }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype),
      shape_(std::move(shape)),
      bytes_(static_cast<size_t>(shape_numel(shape_)) * dtype_size(dtype)) {}

int64_t Tensor::dim(int i) const {
  int r = rank();
  int j = i < 0 ? i + r : i;
  if (j < 0 || j >= r)
    throw std::out_of_range("Tensor::dim(" + std::to_string(i) + ") on rank-" + std::to_string(r) +
                            " tensor");
  return shape_[static_cast<size_t>(j)];
}

uint64_t Tensor::bits_at(int64_t i) const {
  size_t sz = dtype_size(dtype_);
  if (i < 0 || i >= numel()) throw std::out_of_range("Tensor::bits_at: index out of range");
  uint64_t v = 0;
  std::memcpy(&v, bytes_.data() + static_cast<size_t>(i) * sz, sz);  // little-endian host
  return v;
}

int64_t Tensor::int_at(int64_t i) const {
  uint64_t b = bits_at(i);
  switch (dtype_) {
    case DType::kBool:
    case DType::kU8:
    case DType::kU16:
    case DType::kU32:
    case DType::kU64:
      return static_cast<int64_t>(b);
    case DType::kI8:
      return static_cast<int8_t>(b);
    case DType::kI16:
      return static_cast<int16_t>(b);
    case DType::kI32:
      return static_cast<int32_t>(b);
    case DType::kI64:
      return static_cast<int64_t>(b);
    default:
      throw std::logic_error("Tensor::int_at on float tensor");
  }
}

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + shape_str(shape_); }

}  // namespace qconf
