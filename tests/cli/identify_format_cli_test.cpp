// `qconf identify-format` end to end: exit codes 0 (identified), 1 (none), 3 (ambiguous),
// 2 (usage / unreadable file), the three file kinds, and messages naming the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "qconf/conformance/fixture.h"
#include "qconf/ops/int4pack.h"
#include "qconf/ops/packing.h"
#include "qconf/ops/scales.h"
#include "qconf/rng/generators.h"
#include "qconf/rng/philox.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

using namespace qconf;

struct CmdResult {
  int code;
  std::string out;
};

CmdResult qconf_cmd(const std::string& args) {
  const std::string cmd = std::string(QCONF_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

class IdentifyFormatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qconf_idf_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string json(const std::string& name, const Tensor& t) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << conf::tensor_to_json(t).dump();
    return p;
  }
  std::string raw(const std::string& name, const Tensor& t) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.bytes()), static_cast<std::streamsize>(t.nbytes()));
    return p;
  }
  fs::path dir_;
};

// int8 [8, 24] with values outside [-8, 7]: separates every weight packing.
Tensor weight() {
  return gen::int_tensor(DType::kI8, {8, 24}, -20, 20, rng::seed_from_string("idf_cli_w"), 0);
}

TEST_F(IdentifyFormatCli, IdentifiedExitsZeroAndNamesTheEncoding) {
  const Tensor w = weight();
  const CmdResult r =
      qconf_cmd("identify-format " + json("p.json", ref::ct_pack_to_int32(w, 4, 0)) + " --input " +
                json("w.json", w));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("identified: ct_pack_to_int32(num_bits=4, packed_dim=0)"));
  EXPECT_THAT(r.out, HasSubstr("ruled out   vllm_ascend_pack_int4_to_int32"));
}

TEST_F(IdentifyFormatCli, RawFilesWithDtypeAndShapeWork) {
  const Tensor w = weight();
  const CmdResult r =
      qconf_cmd("identify-format " + raw("p.bin", ref::vllm_ascend_pack_int4_to_int32(w)) +
                " --produced-dtype int32 --produced-shape 8,3 --input " + raw("w.bin", w) +
                " --input-dtype int8 --input-shape 8,24");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("identified: vllm_ascend_pack_int4_to_int32"));
}

Tensor as_i32(const Tensor& t) {
  Tensor o(DType::kI32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) o.data<int32_t>()[i] = static_cast<int32_t>(t.int_at(i));
  return o;
}

TEST_F(IdentifyFormatCli, TamperedWordsExitOneWithTheClosestCandidate) {
  const Tensor w = weight();
  Tensor p = ref::npu_convert_weight_to_int4pack(as_i32(w));
  p.data<int32_t>()[5] ^= 0x100;
  const CmdResult r =
      qconf_cmd("identify-format " + json("p.json", p) + " --input " + json("w.json", w));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("none: no documented encoding reproduces these words (closest: "
                               "npu_convert_weight_to_int4pack)"));
  EXPECT_THAT(r.out, HasSubstr("first at [1, 2]"));
}

TEST_F(IdentifyFormatCli, AmbiguousExitsThreeWithAHint) {
  // Positive scales: sign- and zero-extension give the same words.
  const Tensor s = Tensor::from<uint32_t>(DType::kF32, {2}, {0x3C23D70Au, 0x3F2AAAABu});
  const CmdResult r =
      qconf_cmd("identify-format " + json("q.json", ref::scale_from_float_to_int64(s)) +
                " --input " + json("s.json", s));
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ambiguous: 2 encodings"));
  EXPECT_THAT(r.out, HasSubstr("negative scale"));
}

TEST_F(IdentifyFormatCli, WordsAloneFp19IsAmbiguousAndSignExtensionIsIdentified) {
  const Tensor s = Tensor::from<uint32_t>(DType::kF32, {2}, {0xBF2AAAABu, 0x3F801800u});
  CmdResult r = qconf_cmd(
      "identify-format " +
      json("t.json",
           ref::npu_trans_quant_param(s, nullptr, TransQuantEncoding::kFp19Trunc).quant_param));
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("words only"));
  r = qconf_cmd("identify-format " + json("x.json", ref::scale_from_float_to_int64(s)));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("identified: scale_from_float_to_int64"));
}

TEST_F(IdentifyFormatCli, OffsetsAreTakenFromARawFloat32File) {
  const Tensor s = Tensor::from<uint32_t>(DType::kF32, {2}, {0xBF2AAAABu, 0x3F801800u});
  const Tensor off = Tensor::from<float>({2}, {-3.0f, 12.0f});
  const CmdResult r = qconf_cmd(
      "identify-format " +
      json("t.json",
           ref::npu_trans_quant_param(s, &off, TransQuantEncoding::kFp19Trunc).quant_param) +
      " --input " + json("s.json", s) + " --offset " + raw("o.bin", off));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("identified: npu_trans_quant_param(encoding=fp19_trunc)"));
}

TEST_F(IdentifyFormatCli, BadInputExitsTwoNamingTheFile) {
  const Tensor w = weight();
  const std::string p = json("p.json", ref::vllm_ascend_pack_int4_to_int32(w));
  CmdResult r = qconf_cmd("identify-format " + p + " --input " + raw("w.bin", w));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("w.bin: a raw file needs its dtype"));
  r = qconf_cmd("identify-format " + raw("w2.bin", w) +
                " --produced-dtype int32 --produced-shape 7");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("w2.bin: size: int32[7] needs 28 bytes of data, the file has 192"));
  r = qconf_cmd("identify-format " + p + " --input " +
                json("f.json", Tensor::from<float>({1}, {1.0f})));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("input: packed words need an integer weight"));
  r = qconf_cmd("identify-format " + (dir_ / "absent.json").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("absent.json: cannot open"));
  r = qconf_cmd("identify-format " + p + " --input-dtype int8");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("without --input"));
}

}  // namespace
