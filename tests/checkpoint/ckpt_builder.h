// Builds small checkpoint directories at test time (ModelSlim and compressed-tensors formats),
// and damaged safetensors files, for the checkpoint tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qconf/checkpoint/safetensors.h"
#include "qconf/numeric/float_format.h"
#include "qconf/rng/generators.h"

namespace ckpt_test {

namespace fs = std::filesystem;
using nlohmann::json;
using qconf::DType;
using qconf::Shape;
using qconf::Tensor;

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("qconf_ckpt_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

inline void write_text(const fs::path& p, const std::string& s) {
  std::ofstream o(p, std::ios::binary);
  o << s;
}

inline Tensor i8(const Shape& s, uint64_t seed) {
  return qconf::gen::int_tensor(DType::kI8, s, -128, 127, seed, 1);
}
inline Tensor i32(const Shape& s, uint64_t seed) {
  return qconf::gen::int_tensor(DType::kI32, s, -1000, 1000, seed, 2);
}
inline Tensor f32(const Shape& s, uint64_t seed) {
  return qconf::gen::float_tensor(DType::kF32, s, qconf::gen::FloatDist::grid(4096, 16383, -20),
                                  seed, 3);
}
inline Tensor f16ish(DType dt, const Shape& s, uint64_t seed) {
  return qconf::gen::float_tensor(dt, s, qconf::gen::FloatDist::grid(1, 100, -8), seed, 4);
}

// A ModelSlim checkpoint under construction: tensors + description entries.
struct ModelSlim {
  std::vector<qconf::ckpt::StTensor> tensors;
  json desc = json::object();
  json config = {{"model_type", "llama"}, {"torch_dtype", "bfloat16"}};
  uint64_t seed = 1;

  void add(const std::string& name, Tensor t, const std::string& type, const std::string& st = "") {
    tensors.push_back({name, std::move(t), st});
    desc[name] = type;
  }
  void w8a8_dynamic(const std::string& p, int64_t n, int64_t k) {
    add(p + ".weight", i8({n, k}, ++seed), "W8A8_DYNAMIC");
    add(p + ".weight_scale", f32({n, 1}, ++seed), "W8A8_DYNAMIC");
    add(p + ".weight_offset", f32({n, 1}, ++seed), "W8A8_DYNAMIC");
  }
  void w8a16(const std::string& p, int64_t n, int64_t k) {
    add(p + ".weight", i8({n, k}, ++seed), "W8A16");
    add(p + ".weight_scale", f32({n, 1}, ++seed), "W8A16");
    add(p + ".weight_offset",
        qconf::gen::float_tensor(DType::kF32, {n, 1}, qconf::gen::FloatDist::grid(-20, 20, -2),
                                 ++seed, 5),
        "W8A16");
  }
  void w8a8_static(const std::string& p, int64_t n, int64_t k, bool fp16) {
    add(p + ".weight", i8({n, k}, ++seed), "W8A8");
    add(p + ".input_scale",
        Tensor::from<uint32_t>(DType::kF32, {1}, {qconf::num::f32_bits(0.0312f)}), "W8A8");
    add(p + ".input_offset", Tensor::from<int8_t>({1}, {2}), "W8A8");
    add(p + ".quant_bias", i32({n}, ++seed), "W8A8");
    if (fp16) {
      // int64 quant params: the fp32 bits with the "scale present" flag.
      std::vector<int64_t> q(static_cast<size_t>(n));
      Tensor s = f32({n}, ++seed);
      for (int64_t i = 0; i < n; ++i)
        q[i] = static_cast<int64_t>((s.data<uint32_t>()[i] & 0xFFFFE000u) | (uint64_t{1} << 46));
      add(p + ".deq_scale", Tensor::from<int64_t>({n}, q), "W8A8");
    } else {
      add(p + ".deq_scale", f32({n}, ++seed), "W8A8");
    }
    add(p + ".weight_scale", f32({n, 1}, ++seed), "W8A8");
    add(p + ".weight_offset", f32({n, 1}, ++seed), "W8A8");
  }
  void moe_w8a8_dynamic(const std::string& p, int64_t e, int64_t inter, int64_t h) {
    for (int64_t x = 0; x < e; ++x) {
      const std::string ep = p + "." + std::to_string(x) + ".";
      w8a8_dynamic(ep + "gate_proj", inter, h);
      w8a8_dynamic(ep + "up_proj", inter, h);
      w8a8_dynamic(ep + "down_proj", h, inter);
    }
  }
  void flt(const std::string& name, const Shape& s) {
    add(name, f16ish(DType::kBF16, s, ++seed), "FLOAT");
  }
  void write(const fs::path& dir) const {
    qconf::ckpt::write_safetensors((dir / "model.safetensors").string(), tensors);
    write_text(dir / "quant_model_description.json", desc.dump(2));
    write_text(dir / "config.json", config.dump(2));
  }
};

// A small valid ModelSlim model: fused qkv (W8A8_DYNAMIC), o_proj W8A8 static, gate_up + down
// W8A16, a MoE layer with 2 experts (W8A8_DYNAMIC), norms and lm_head FLOAT.
inline ModelSlim small_modelslim() {
  ModelSlim m;
  const int64_t h = 16;
  m.flt("model.embed_tokens.weight", {32, h});
  m.flt("model.layers.0.input_layernorm.weight", {h});
  m.w8a8_dynamic("model.layers.0.self_attn.q_proj", 16, h);
  m.w8a8_dynamic("model.layers.0.self_attn.k_proj", 8, h);
  m.w8a8_dynamic("model.layers.0.self_attn.v_proj", 8, h);
  m.w8a8_static("model.layers.0.self_attn.o_proj", h, 16, false);
  m.w8a16("model.layers.0.mlp.gate_proj", 24, h);
  m.w8a16("model.layers.0.mlp.up_proj", 24, h);
  m.w8a16("model.layers.0.mlp.down_proj", h, 24);
  m.moe_w8a8_dynamic("model.layers.1.mlp.experts", 2, 8, h);
  m.flt("lm_head.weight", {32, h});
  return m;
}

// Raw safetensors bytes from a header text and a data buffer (for damaged files).
inline std::string raw_safetensors(const std::string& header, const std::string& data,
                                   int64_t declared_len = -1) {
  std::string out(8, '\0');
  const uint64_t n = declared_len < 0 ? header.size() : static_cast<uint64_t>(declared_len);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

struct CmdResult {
  int code;
  std::string out;
};
inline CmdResult run_qconf(const std::string& args) {
  std::string cmd = std::string(QCONF_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace ckpt_test
