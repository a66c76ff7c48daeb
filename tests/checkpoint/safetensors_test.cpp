// The safetensors reader: valid files round-trip; every malformed file is an error that names the
// file, the tensor and the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ckpt_builder.h"

namespace {

using namespace ckpt_test;
using qconf::ckpt::CheckpointError;
using qconf::ckpt::CheckpointTensors;
using qconf::ckpt::SafetensorsFile;
using ::testing::HasSubstr;

// Opens `bytes` written to a file and returns the error (fails the test when there is none).
CheckpointError open_error(const TempDir& d, const std::string& bytes) {
  const fs::path p = d.path / "model.safetensors";
  write_text(p, bytes);
  try {
    SafetensorsFile::open(p.string());
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.file(), p.string());
    EXPECT_THAT(e.what(), HasSubstr(p.string()));
    return e;
  }
  ADD_FAILURE() << "no error for a malformed file";
  return CheckpointError("", "", "", "");
}

TEST(Safetensors, WrittenFileRoundTripsEveryTensorBitExactly) {
  TempDir d("roundtrip");
  Tensor a = i8({3, 5}, 1), b = f32({4, 1}, 2);
  Tensor c = f16ish(DType::kBF16, {2, 3}, 3);
  const std::string p = (d.path / "m.safetensors").string();
  qconf::ckpt::write_safetensors(p, {{"a", a, ""}, {"b", b, ""}, {"c", c, ""}}, {{"format", "pt"}});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_TRUE(f.read("a").bit_equal(a));
  EXPECT_TRUE(f.read("b").bit_equal(b));
  EXPECT_TRUE(f.read("c").bit_equal(c));
  EXPECT_EQ(f.tensors().at("c").st_dtype, "BF16");
}

TEST(Safetensors, Fp8TensorsAreReadAsTheirBytes) {
  TempDir d("fp8");
  Tensor w = qconf::gen::int_tensor(DType::kU8, {2, 4}, 0, 255, 7, 0);
  const std::string p = (d.path / "m.safetensors").string();
  qconf::ckpt::write_safetensors(p, {{"w", w, "F8_E4M3"}});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.tensors().at("w").st_dtype, "F8_E4M3");
  EXPECT_TRUE(f.read("w").bit_equal(w));
}

TEST(Safetensors, HeaderLengthBeyondTheFileIsAnError) {
  TempDir d("badlen");
  const std::string h = R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})";
  CheckpointError e = open_error(d, raw_safetensors(h, "xy", 5000));
  EXPECT_EQ(e.field(), "header length");
  EXPECT_THAT(e.what(), HasSubstr("5000"));
}

TEST(Safetensors, FileShorterThanTheLengthFieldIsAnError) {
  TempDir d("tiny");
  CheckpointError e = open_error(d, std::string("\x02\x00\x00", 3));
  EXPECT_EQ(e.field(), "header length");
}

TEST(Safetensors, OffsetsOutOfRangeNameTheTensor) {
  TempDir d("range");
  const std::string h = R"({"w":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}})";
  CheckpointError e = open_error(d, raw_safetensors(h, "abcd"));
  EXPECT_EQ(e.tensor(), "w");
  EXPECT_EQ(e.field(), "data_offsets");
  EXPECT_THAT(e.what(), HasSubstr("out of range"));
}

TEST(Safetensors, ShapeThatDisagreesWithTheByteCountIsAnError) {
  TempDir d("shape");
  const std::string h = R"({"s":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  CheckpointError e = open_error(d, raw_safetensors(h, "12345678"));
  EXPECT_EQ(e.tensor(), "s");
  EXPECT_EQ(e.field(), "shape");
  EXPECT_THAT(e.what(), HasSubstr("needs 12 bytes"));
}

TEST(Safetensors, UnknownDtypeIsAnError) {
  TempDir d("dtype");
  const std::string h = R"({"s":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}})";
  CheckpointError e = open_error(d, raw_safetensors(h, "12"));
  EXPECT_EQ(e.field(), "dtype");
  EXPECT_THAT(e.what(), HasSubstr("F12"));
}

TEST(Safetensors, TruncatedFileIsAnErrorNamingTheLastTensor) {
  TempDir d("trunc");
  std::string good =
      qconf::ckpt::safetensors_bytes({{"a", i8({4, 4}, 1), ""}, {"b", f32({4}, 2), ""}});
  CheckpointError e = open_error(d, good.substr(0, good.size() - 5));
  EXPECT_EQ(e.tensor(), "b");
  EXPECT_THAT(e.what(), HasSubstr("truncated"));
}

TEST(Safetensors, HolesOverlapsAndTrailingBytesAreErrors) {
  TempDir d("holes");
  {
    const std::string h = R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}})";
    CheckpointError e = open_error(d, raw_safetensors(h, "abcd"));
    EXPECT_THAT(e.what(), HasSubstr("hole"));
  }
  {
    const std::string h =
        R"({"a":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}})";
    CheckpointError e = open_error(d, raw_safetensors(h, "abcd"));
    EXPECT_THAT(e.what(), HasSubstr("overlaps"));
  }
  {
    const std::string h = R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})";
    CheckpointError e = open_error(d, raw_safetensors(h, "abcd"));
    EXPECT_THAT(e.what(), HasSubstr("trailing"));
  }
}

TEST(Safetensors, DuplicateNamesAndBadJsonAreErrors) {
  TempDir d("dup");
  {
    const std::string h =
        R"({"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"I8","shape":[1],"data_offsets":[1,2]}})";
    CheckpointError e = open_error(d, raw_safetensors(h, "ab"));
    EXPECT_EQ(e.tensor(), "a");
    EXPECT_THAT(e.what(), HasSubstr("twice"));
  }
  {
    CheckpointError e = open_error(d, raw_safetensors("{\"a\": [", ""));
    EXPECT_EQ(e.field(), "header");
  }
}

TEST(Safetensors, ShardedCheckpointFollowsTheIndexAndRejectsDisagreement) {
  TempDir d("shards");
  qconf::ckpt::write_safetensors((d.path / "a.safetensors").string(), {{"x", i8({2}, 1), ""}});
  qconf::ckpt::write_safetensors((d.path / "b.safetensors").string(), {{"y", i8({3}, 2), ""}});
  write_text(d.path / "model.safetensors.index.json",
             json({{"weight_map", {{"x", "a.safetensors"}, {"y", "b.safetensors"}}}}).dump());
  CheckpointTensors t = CheckpointTensors::open(d.str());
  EXPECT_EQ(t.tensors().size(), 2u);
  EXPECT_EQ(t.read("y").numel(), 3);
  // The index places y in the wrong file.
  write_text(d.path / "model.safetensors.index.json",
             json({{"weight_map", {{"x", "a.safetensors"}, {"y", "a.safetensors"}}}}).dump());
  try {
    CheckpointTensors::open(d.str());
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_THAT(e.what(), HasSubstr("b.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("not referenced"));
  }
  qconf::ckpt::write_safetensors((d.path / "b.safetensors").string(),
                                 {{"y", i8({3}, 2), ""}, {"z", i8({1}, 3), ""}});
  write_text(d.path / "model.safetensors.index.json",
             json({{"weight_map",
                    {{"x", "a.safetensors"}, {"y", "a.safetensors"}, {"z", "b.safetensors"}}}})
                 .dump());
  try {
    CheckpointTensors::open(d.str());
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "y");
    EXPECT_THAT(e.what(), HasSubstr("the index places it in"));
  }
}

TEST(Safetensors, SameTensorInTwoShardsIsAnError) {
  TempDir d("twice");
  qconf::ckpt::write_safetensors((d.path / "a.safetensors").string(), {{"x", i8({2}, 1), ""}});
  qconf::ckpt::write_safetensors((d.path / "b.safetensors").string(), {{"x", i8({2}, 2), ""}});
  try {
    CheckpointTensors::open(d.str());
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.tensor(), "x");
    EXPECT_THAT(e.what(), HasSubstr("also present"));
  }
}

}  // namespace
