// The safetensors reader and writer (see qconf/checkpoint/safetensors.h for the format).
// Source: huggingface/safetensors README "Format" (header length, JSON header, contiguous buffer,
// no duplicate names, the dtype list); confidence: [doc].
#include "qconf/checkpoint/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace qconf::ckpt {

namespace fs = std::filesystem;
using JsonT = nlohmann::json;

CheckpointError::CheckpointError(std::string file, std::string tensor, std::string field,
                                 const std::string& what)
    : std::runtime_error(file + (tensor.empty() ? "" : ": tensor \"" + tensor + "\"") +
                         (field.empty() ? "" : ": field \"" + field + "\"") + ": " + what),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      field_(std::move(field)) {}

namespace {
struct StDtype {
  const char* name;
  size_t size;
  DType storage;
};
// The dtypes of safetensors' Dtype enum (safetensors/src/tensor.rs); fp8/e8m0 held as uint8.
// F4 (two values a byte) and sub-byte types have no whole-byte element: not accepted.
const StDtype kStDtypes[] = {
    {"BOOL", 1, DType::kBool},  {"U8", 1, DType::kU8},      {"I8", 1, DType::kI8},
    {"F8_E5M2", 1, DType::kU8}, {"F8_E4M3", 1, DType::kU8}, {"F8_E8M0", 1, DType::kU8},
    {"I16", 2, DType::kI16},    {"U16", 2, DType::kU16},    {"F16", 2, DType::kF16},
    {"BF16", 2, DType::kBF16},  {"I32", 4, DType::kI32},    {"U32", 4, DType::kU32},
    {"F32", 4, DType::kF32},    {"F64", 8, DType::kF64},    {"I64", 8, DType::kI64},
    {"U64", 8, DType::kU64},
};
const StDtype* find_dtype(const std::string& n) {
  for (const auto& d : kStDtypes)
    if (n == d.name) return &d;
  return nullptr;
}
constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

std::string known_list() {
  std::string s;
  for (const auto& d : kStDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

// Parses JSON and rejects duplicate keys in any object (nlohmann keeps the last silently).
JsonT parse_strict(const std::string& text, const std::string& file) {
  std::vector<std::set<std::string>> stack;
  std::string dup;
  auto cb = [&](int, JsonT::parse_event_t ev, JsonT& parsed) {
    if (ev == JsonT::parse_event_t::object_start) stack.emplace_back();
    if (ev == JsonT::parse_event_t::object_end && !stack.empty()) stack.pop_back();
    if (ev == JsonT::parse_event_t::key && !stack.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!stack.back().insert(k).second && dup.empty()) dup = k;
    }
    return true;
  };
  JsonT j;
  try {
    j = JsonT::parse(text, cb);
  } catch (const JsonT::parse_error& e) {
    throw CheckpointError(file, "", "header", std::string("not valid JSON: ") + e.what());
  }
  if (!dup.empty())
    throw CheckpointError(file, dup, "header",
                          "the name appears twice in the JSON header (names must be unique)");
  return j;
}

uint64_t get_u64(const JsonT& v, const std::string& file, const std::string& tensor,
                 const std::string& field) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw CheckpointError(file, tensor, field, "expected a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}
}  // namespace

std::optional<size_t> st_dtype_size(const std::string& st_dtype) {
  if (const StDtype* d = find_dtype(st_dtype)) return d->size;
  return std::nullopt;
}
DType st_dtype_storage(const std::string& st_dtype) {
  if (const StDtype* d = find_dtype(st_dtype)) return d->storage;
  throw std::invalid_argument("unknown safetensors dtype \"" + st_dtype + "\"");
}
std::string st_dtype_of(DType t) {
  switch (t) {
    case DType::kBool:
      return "BOOL";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
    case DType::kI16:
      return "I16";
    case DType::kU16:
      return "U16";
    case DType::kI32:
      return "I32";
    case DType::kU32:
      return "U32";
    case DType::kI64:
      return "I64";
    case DType::kU64:
      return "U64";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
  }
  return "?";
}
const std::vector<std::string>& st_known_dtypes() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> r;
    for (const auto& d : kStDtypes) r.push_back(d.name);
    return r;
  }();
  return v;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw CheckpointError(path, "", "", "not a regular file (cannot open it)");
  f.file_size_ = fs::file_size(path, ec);
  if (ec) throw CheckpointError(path, "", "", "cannot read its size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path, "", "", "cannot open for reading");
  if (f.file_size_ < 8)
    throw CheckpointError(path, "", "header length",
                          "the file has " + std::to_string(f.file_size_) +
                              " bytes, fewer than the 8-byte little-endian header length");
  unsigned char lenb[8];
  in.read(reinterpret_cast<char*>(lenb), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | lenb[i];
  if (n > f.file_size_ - 8)
    throw CheckpointError(path, "", "header length",
                          "the header length says " + std::to_string(n) + " bytes, but only " +
                              std::to_string(f.file_size_ - 8) +
                              " follow it (truncated file, or not a safetensors file)");
  if (n > kMaxHeader)
    throw CheckpointError(path, "", "header length",
                          "header of " + std::to_string(n) + " bytes exceeds the 100 MB limit");
  if (n < 2)
    throw CheckpointError(path, "", "header length",
                          "header of " + std::to_string(n) + " bytes cannot hold a JSON object");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  if (!in) throw CheckpointError(path, "", "header", "short read of the header");
  if (text[0] != '{')
    throw CheckpointError(path, "", "header", "the JSON header must start with '{'");
  const JsonT j = parse_strict(text, path);
  if (!j.is_object()) throw CheckpointError(path, "", "header", "expected a JSON object");
  const uint64_t data_start = 8 + n;
  const uint64_t buffer = f.file_size_ - data_start;
  struct Span {
    uint64_t b, e;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (!v.is_object())
        throw CheckpointError(path, "", "__metadata__", "expected an object of strings");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          throw CheckpointError(path, "", "__metadata__." + k,
                                "expected a string value, got " + s.dump());
        f.metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    if (!v.is_object())
      throw CheckpointError(path, name, "", "expected an object {dtype, shape, data_offsets}");
    for (const auto& [k, unused] : v.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        throw CheckpointError(path, name, k,
                              "unknown field (expected only dtype, shape, data_offsets)");
    for (const char* req : {"dtype", "shape", "data_offsets"})
      if (!v.contains(req)) throw CheckpointError(path, name, req, "missing");
    TensorInfo t;
    t.name = name;
    t.file = path;
    if (!v["dtype"].is_string())
      throw CheckpointError(path, name, "dtype", "expected a string, got " + v["dtype"].dump());
    t.st_dtype = v["dtype"].get<std::string>();
    const StDtype* dt = find_dtype(t.st_dtype);
    if (!dt)
      throw CheckpointError(
          path, name, "dtype",
          "unknown dtype \"" + t.st_dtype + "\" (expected one of " + known_list() + ")");
    if (!v["shape"].is_array())
      throw CheckpointError(path, name, "shape", "expected an array, got " + v["shape"].dump());
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      const uint64_t x = get_u64(d, path, name, "shape");
      if (x != 0 && numel > UINT64_MAX / x) overflow = true;
      numel *= x;
      t.shape.push_back(static_cast<int64_t>(x));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      throw CheckpointError(path, name, "data_offsets", "expected [begin, end], got " + off.dump());
    const uint64_t b = get_u64(off[0], path, name, "data_offsets");
    const uint64_t e = get_u64(off[1], path, name, "data_offsets");
    if (e < b)
      throw CheckpointError(path, name, "data_offsets",
                            "end " + std::to_string(e) + " is before begin " + std::to_string(b));
    if (e > buffer)
      throw CheckpointError(path, name, "data_offsets",
                            "[" + std::to_string(b) + ", " + std::to_string(e) +
                                ") is out of range: the data buffer has " + std::to_string(buffer) +
                                " bytes (truncated file?)");
    if (overflow || numel > UINT64_MAX / dt->size || numel * dt->size != e - b)
      throw CheckpointError(
          path, name, "shape",
          "shape " + shape_str(t.shape) + " of " + t.st_dtype + " needs " +
              (overflow ? std::string("more than 2^64") : std::to_string(numel * dt->size)) +
              " bytes, data_offsets give " + std::to_string(e - b));
    t.begin = data_start + b;
    t.end = data_start + e;
    spans.push_back({b, e, name});
    f.tensors_[name] = std::move(t);
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& c) { return a.b != c.b ? a.b < c.b : a.e < c.e; });
  uint64_t pos = 0;
  for (const Span& s : spans) {
    if (s.b < pos)
      throw CheckpointError(path, s.name, "data_offsets",
                            "[" + std::to_string(s.b) + ", " + std::to_string(s.e) +
                                ") overlaps the previous tensor (which ends at " +
                                std::to_string(pos) + ")");
    if (s.b > pos)
      throw CheckpointError(path, s.name, "data_offsets",
                            "begins at " + std::to_string(s.b) + ", leaving a hole of " +
                                std::to_string(s.b - pos) + " bytes after offset " +
                                std::to_string(pos) + " (the buffer must be fully indexed)");
    pos = s.e;
  }
  if (pos != buffer)
    throw CheckpointError(path, spans.empty() ? "" : spans.back().name, "data_offsets",
                          "the tensors end at buffer offset " + std::to_string(pos) +
                              " but the buffer has " + std::to_string(buffer) +
                              " bytes (trailing bytes are not indexed)");
  return f;
}

Tensor SafetensorsFile::read(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw CheckpointError(path_, name, "", "no such tensor in the file");
  const TensorInfo& t = it->second;
  Tensor out(st_dtype_storage(t.st_dtype), t.shape);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(t.begin));
  in.read(reinterpret_cast<char*>(out.bytes()), static_cast<std::streamsize>(t.end - t.begin));
  if (!in || static_cast<uint64_t>(in.gcount()) != t.end - t.begin)
    throw CheckpointError(path_, name, "data", "short read (the file changed or is truncated)");
  return out;
}

std::string safetensors_bytes(const std::vector<StTensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t pos = 0;
  std::string data;
  for (const StTensor& t : tensors) {
    const std::string dt = t.st_dtype.empty() ? st_dtype_of(t.t.dtype()) : t.st_dtype;
    if (st_dtype_size(dt).value_or(0) != dtype_size(t.t.dtype()))
      throw std::invalid_argument("write_safetensors: " + t.name + ": dtype " + dt +
                                  " does not match the storage " + t.t.describe());
    h[t.name] = {
        {"dtype", dt}, {"shape", t.t.shape()}, {"data_offsets", {pos, pos + t.t.nbytes()}}};
    data.append(reinterpret_cast<const char*>(t.t.bytes()), t.t.nbytes());
    pos += t.t.nbytes();
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs.push_back(' ');  // the reference writer aligns the buffer to 8
  std::string out(8, '\0');
  uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + hs + data;
}

void write_safetensors(const std::string& path, const std::vector<StTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::ofstream o(path, std::ios::binary);
  const std::string b = safetensors_bytes(tensors, metadata);
  o.write(b.data(), static_cast<std::streamsize>(b.size()));
  if (!o) throw std::runtime_error("cannot write " + path);
}

const TensorInfo* CheckpointTensors::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Tensor CheckpointTensors::read(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw CheckpointError("(checkpoint)", name, "", "no such tensor in any shard");
  return shards_.at(t->file).read(name);
}

CheckpointTensors CheckpointTensors::open(const std::string& dir) {
  CheckpointTensors c;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw CheckpointError(dir, "", "", "not a directory");
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::vector<std::string> all;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors")
      all.push_back(e.path().string());
  std::sort(all.begin(), all.end());
  std::map<std::string, std::string> weight_map;  // tensor -> file (absolute)
  if (fs::exists(index)) {
    std::ifstream in(index);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const JsonT j = parse_strict(text, index.string());
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw CheckpointError(index.string(), "", "weight_map", "expected an object {tensor: file}");
    std::set<std::string> named;
    for (const auto& [name, v] : j["weight_map"].items()) {
      if (!v.is_string())
        throw CheckpointError(index.string(), name, "weight_map", "expected a file name string");
      const std::string file = (fs::path(dir) / v.get<std::string>()).string();
      weight_map[name] = file;
      named.insert(file);
    }
    c.files_.assign(named.begin(), named.end());
    for (const auto& f : all)
      if (!named.count(f))
        throw CheckpointError(f, "", "",
                              "shard not referenced by model.safetensors.index.json weight_map");
  } else {
    c.files_ = all;
  }
  if (c.files_.empty())
    throw CheckpointError(dir, "", "", "no *.safetensors file in the directory");
  for (const auto& f : c.files_) {
    SafetensorsFile s = SafetensorsFile::open(f);
    for (const auto& [name, info] : s.tensors()) {
      if (auto it = c.tensors_.find(name); it != c.tensors_.end())
        throw CheckpointError(f, name, "",
                              "also present in " + it->second.file + " (a name must be unique)");
      if (!weight_map.empty()) {
        auto w = weight_map.find(name);
        if (w == weight_map.end())
          throw CheckpointError(f, name, "weight_map",
                                "tensor missing from model.safetensors.index.json");
        if (w->second != f)
          throw CheckpointError(f, name, "weight_map", "the index places it in " + w->second);
      }
      c.tensors_[name] = info;
    }
    c.shards_.emplace(f, std::move(s));
  }
  for (const auto& [name, file] : weight_map)
    if (!c.tensors_.count(name))
      throw CheckpointError(file, name, "weight_map",
                            "named by model.safetensors.index.json but absent from the file");
  return c;
}

}  // namespace qconf::ckpt
