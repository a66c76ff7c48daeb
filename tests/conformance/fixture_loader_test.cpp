// The strict fixture reader: every malformed fixture is rejected with a FixtureError naming the
// file, the case, the field, and what was expected. Malformed fixtures are made here by JSON
// edits of the real golden file, so they stay in sync with the format.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "qconf/conformance/fixture.h"
#include "qconf/core/tensor.h"

namespace qconf::conf {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::EndsWith;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Matcher;
using ::testing::StartsWith;

constexpr const char* kOp = "npu_convert_weight_to_int4pack";
const std::string kGoldenDir = QCONF_SOURCE_DIR "/golden";
const std::string kGoldenFile = kGoldenDir + "/npu_convert_weight_to_int4pack.json";
constexpr const char* kFile = "edited.json";
const std::string kCase0 = std::string(kOp) + "/ascending_0_to_7";
const std::string kCase1 = std::string(kOp) + "/negatives_m8_to_m1";
const std::string kFixture = std::string(kOp) + ".json";

const Json& golden_json() {
  static const Json j = Json::parse(read_file(kGoldenFile));
  return j;
}

// A small valid fixture: the real golden file cut down to its first two cases. Case 0 is
// ascending_0_to_7: input weight int32[1, 8]; stage 0 int4_values int8[1, 8] (intermediate),
// stage 1 packed int32[1, 1]; both EXACT.
Json small_fixture() {
  Json j = golden_json();
  Json cases = Json::array();
  cases.push_back(j["cases"][0]);
  cases.push_back(j["cases"][1]);
  j["cases"] = std::move(cases);
  return j;
}

std::string text_of(const Json& j) { return j.dump(1) + "\n"; }

Json& stage_json(Json& j, int c, int s) { return j["cases"][c]["stages"][s]; }

Json i64_json(const std::vector<int64_t>& v) {
  return tensor_to_json(Tensor::from<int64_t>({static_cast<int64_t>(v.size())}, v));
}
Json i8_json(const std::vector<int8_t>& v) {
  return tensor_to_json(Tensor::from<int8_t>({static_cast<int64_t>(v.size())}, v));
}

// A valid accept set for stage 0 of case 0 (int8[1, 8] holding 0..7): element 1 may be 1 or 2,
// element 6 may be 6 or 5.
Json valid_accept() {
  Json a = Json::object();
  a["index"] = i64_json({1, 6});
  a["offsets"] = i64_json({0, 2, 4});
  a["values"] = i8_json({1, 2, 6, 5});
  return a;
}

// Case 0 with stage 0 made EXACT_TIES (or REACHABLE) with valid_accept().
Json with_accept(const char* mode = "exact_ties") {
  Json j = small_fixture();
  Json& check = stage_json(j, 0, 0)["check"];
  check["mode"] = mode;
  check["accept"] = valid_accept();
  return j;
}

// Case 0 with stage 0 turned into a float32[1, 8] BOUNDED stage with a valid exact and bound.
Json with_bounded() {
  Json j = small_fixture();
  Json& st = stage_json(j, 0, 0);
  st["tensor"] = tensor_to_json(Tensor(DType::kF32, {1, 8}));
  Json check = Json::object();
  check["mode"] = "bounded";
  check["exact"] = tensor_to_json(Tensor(DType::kF64, {1, 8}));
  Tensor bound(DType::kF64, {1, 8});
  for (int i = 0; i < 8; ++i) bound.data<double>()[i] = 0.5;
  check["bound"] = tensor_to_json(bound);
  st["check"] = std::move(check);
  return j;
}

// Feeds `text` to fixture_from_text and expects a FixtureError whose file, case and field are
// as given and whose message contains every fragment of `says`.
void ExpectRejected(const std::string& text, const std::string& case_id,
                    const Matcher<const std::string&>& field,
                    const std::vector<std::string>& says) {
  try {
    Fixture f = fixture_from_text(text, kFile);
    ADD_FAILURE() << "the malformed fixture loaded (" << f.cases.size() << " cases)";
  } catch (const FixtureError& e) {
    EXPECT_EQ(e.file(), kFile) << e.what();
    EXPECT_EQ(e.case_id(), case_id) << e.what();
    EXPECT_THAT(e.field(), field) << e.what();
    EXPECT_THAT(e.what(), StartsWith(std::string(kFile) + ": "));
    for (const auto& s : says) EXPECT_THAT(e.what(), HasSubstr(s));
  }
}

void ExpectRejected(const Json& j, const std::string& case_id,
                    const Matcher<const std::string&>& field,
                    const std::vector<std::string>& says) {
  ExpectRejected(text_of(j), case_id, field, says);
}

// Applies `edit` to small_fixture() and expects the result rejected.
void ExpectEditRejected(const std::function<void(Json&)>& edit, const std::string& case_id,
                        const Matcher<const std::string&>& field,
                        const std::vector<std::string>& says) {
  Json j = small_fixture();
  edit(j);
  ExpectRejected(j, case_id, field, says);
}

// ---- positive controls ----------------------------------------------------------------------

TEST(FixtureLoader, SmallFixtureDerivedFromGoldenLoads) {
  Fixture f = fixture_from_text(text_of(small_fixture()), kFile);
  EXPECT_EQ(f.op, kOp);
  ASSERT_EQ(f.cases.size(), 2u);
  const Case& c = f.cases[0];
  EXPECT_EQ(c.id, kCase0);
  EXPECT_EQ(c.op, kOp);
  EXPECT_EQ(c.file, kFile);
  EXPECT_EQ(c.flags, (std::vector<std::string>{"NibbleOrder", "ByteOrder"}));
  ASSERT_EQ(c.inputs.count("weight"), 1u);
  EXPECT_EQ(c.inputs.at("weight").describe(), "int32[1, 8]");
  EXPECT_EQ(c.inputs.at("weight").to_vector<int32_t>(),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_EQ(c.stages.size(), 2u);
  EXPECT_EQ(c.stages[0].name, "int4_values");
  EXPECT_FALSE(c.stages[0].output);
  EXPECT_EQ(c.stages[1].name, "packed");
  EXPECT_TRUE(c.stages[1].output);
  EXPECT_EQ(c.stages[1].check.mode, CheckMode::kExact);
  EXPECT_EQ(c.stages[1].expected.to_vector<int32_t>(), (std::vector<int32_t>{0x76543210}));
}

TEST(FixtureLoader, OptionalCaseFieldsTakeDefaults) {
  Json j = small_fixture();
  j["cases"][0].erase("comment");
  j["cases"][0].erase("flags");
  j["cases"][0].erase("params");
  stage_json(j, 0, 1).erase("output");
  Fixture f = fixture_from_text(text_of(j), kFile);
  EXPECT_EQ(f.cases[0].comment, "");
  EXPECT_TRUE(f.cases[0].flags.empty());
  EXPECT_EQ(f.cases[0].params, Json::object());
  EXPECT_TRUE(f.cases[0].stages[1].output);
}

TEST(FixtureLoader, ValidAcceptSetLoadsAsCsr) {
  for (const char* mode : {"exact_ties", "reachable"}) {
    SCOPED_TRACE(mode);
    Fixture f = fixture_from_text(text_of(with_accept(mode)), kFile);
    const Check& c = f.cases[0].stages[0].check;
    EXPECT_EQ(c.mode, parse_check_mode(mode));
    EXPECT_EQ(c.accept.index, (std::vector<int64_t>{1, 6}));
    EXPECT_EQ(c.accept.offsets, (std::vector<int64_t>{0, 2, 4}));
    EXPECT_EQ(c.accept.bits_for(1), (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(c.accept.bits_for(6), (std::vector<uint64_t>{6, 5}));
    EXPECT_TRUE(c.accept.bits_for(0).empty());
    EXPECT_TRUE(c.accept.bits_for(7).empty());
  }
}

TEST(FixtureLoader, ValidBoundedCheckLoads) {
  Fixture f = fixture_from_text(text_of(with_bounded()), kFile);
  const Check& c = f.cases[0].stages[0].check;
  EXPECT_EQ(c.mode, CheckMode::kBounded);
  ASSERT_TRUE(c.exact.has_value());
  ASSERT_TRUE(c.bound.has_value());
  EXPECT_EQ(c.bound->describe(), "float64[1, 8]");
  EXPECT_EQ(c.bound->data<double>()[7], 0.5);
}

Json ranges_json(const std::vector<int64_t>& r) {
  return tensor_to_json(Tensor::from<int64_t>({static_cast<int64_t>(r.size())}, r));
}

TEST(FixtureLoader, ComparedRangesLoadAndRoundTrip) {
  Json j = small_fixture();
  stage_json(j, 0, 0)["check"]["compared"] = ranges_json({0, 3, 5, 7});
  Fixture f = fixture_from_text(text_of(j), kFile);
  const Check& c = f.cases[0].stages[0].check;
  EXPECT_EQ(c.compared, (std::vector<int64_t>{0, 3, 5, 7}));
  std::vector<bool> seen;
  for (int64_t i = 0; i < 8; ++i) seen.push_back(c.is_compared(i));
  EXPECT_EQ(seen, (std::vector<bool>{true, true, true, false, false, true, true, false}));
  // Absent: every element compared, and the writer omits the field.
  EXPECT_TRUE(f.cases[0].stages[1].check.compared.empty());
  EXPECT_TRUE(f.cases[0].stages[1].check.is_compared(0));
  EXPECT_EQ(fixture_to_text(fixture_from_text(fixture_to_text(f), kFile)), fixture_to_text(f));
  EXPECT_THAT(fixture_to_text(f), HasSubstr("\"compared\""));
  EXPECT_THAT(fixture_to_text(fixture_from_text(text_of(small_fixture()), kFile)),
              Not(HasSubstr("\"compared\"")));
}

TEST(FixtureLoader, RejectsMalformedComparedRanges) {
  const char* field = "stages[0].check.compared";
  for (const auto& r :
       std::vector<std::vector<int64_t>>{{0, 3, 5},        // odd: not pairs
                                         {3, 3},           // empty range
                                         {4, 2},           // end before begin
                                         {0, 9},           // beyond numel (8)
                                         {-1, 2},          // negative
                                         {0, 4, 2, 6},     // overlapping
                                         {0, 4, 4, 6}}) {  // adjacent (must be merged)
    SCOPED_TRACE(testing::PrintToString(r));
    ExpectEditRejected([&](Json& j) { stage_json(j, 0, 0)["check"]["compared"] = ranges_json(r); },
                       kCase0, field, {"[begin, end)"});
  }
  ExpectEditRejected(
      [&](Json& j) {
        stage_json(j, 0, 0)["check"]["compared"] =
            tensor_to_json(Tensor::from<int32_t>({2}, {0, 4}));
      },
      kCase0, field, {"int64"});
  ExpectEditRejected([&](Json& j) { stage_json(j, 0, 0)["check"]["compared"] = ranges_json({}); },
                     kCase0, field, {"non-empty"});
}

TEST(FixtureLoader, RejectsAcceptSetElementOutsideComparedRanges) {
  Json j = with_accept("reachable");  // lists elements 1 and 6 of stage 0
  stage_json(j, 0, 0)["check"]["compared"] = ranges_json({0, 4});
  ExpectRejected(j, kCase0, "stages[0].check.accept.index", {"element 6", "not compared"});
  stage_json(j, 0, 0)["check"]["compared"] = ranges_json({0, 7});
  EXPECT_NO_THROW(fixture_from_text(text_of(j), kFile));
}

TEST(FixtureLoader, EmptyCasesAndEmptyInputsAreAllowed) {
  Json j = small_fixture();
  j["cases"][0]["inputs"] = Json::object();
  EXPECT_TRUE(fixture_from_text(text_of(j), kFile).cases[0].inputs.empty());
  j["cases"] = Json::array();
  EXPECT_TRUE(fixture_from_text(text_of(j), kFile).cases.empty());
}

TEST(FixtureLoader, CheckModeNamesRoundTrip) {
  for (CheckMode m : {CheckMode::kExact, CheckMode::kExactTies, CheckMode::kReachable,
                      CheckMode::kBounded, CheckMode::kSpecial})
    EXPECT_EQ(parse_check_mode(check_mode_name(m)), m);
  EXPECT_THROW(parse_check_mode("EXACT"), std::invalid_argument);
}

TEST(FixtureError, MessageNamesFileCaseAndField) {
  FixtureError e("f.json", "op/case", "stages[1].name", "duplicate stage \"x\"");
  EXPECT_STREQ(e.what(), "f.json: case op/case: field stages[1].name: duplicate stage \"x\"");
  EXPECT_EQ(e.file(), "f.json");
  EXPECT_EQ(e.case_id(), "op/case");
  EXPECT_EQ(e.field(), "stages[1].name");
  EXPECT_STREQ(FixtureError("f.json", "", "", "bad").what(), "f.json: bad");
}

// ---- top level -------------------------------------------------------------------------------

TEST(FixtureLoader, RejectsTextThatIsNotJson) {
  ExpectRejected(std::string("{\"format\": \"qconf-golden\", "), "", "", {"not valid JSON"});
  ExpectRejected(std::string(""), "", "", {"not valid JSON"});
  ExpectRejected(text_of(small_fixture()) + "}", "", "", {"not valid JSON"});
}

TEST(FixtureLoader, RejectsNanLiteralAndTrailingContent) {
  std::string text = text_of(small_fixture());
  std::string nan = text;
  nan.replace(nan.find("\"version\": 1"), 12, "\"version\": NaN");
  ExpectRejected(nan, "", "", {"not valid JSON"});
  ExpectRejected(text + "{}", "", "", {"not valid JSON"});
}

TEST(FixtureLoader, RejectsTopLevelArray) {
  ExpectRejected(std::string("[]"), "", "", {"expected a JSON object", "array"});
}

TEST(FixtureLoader, RejectsWrongFormatName) {
  ExpectEditRejected([](Json& j) { j["format"] = "qconf-golden-v2"; }, "", "format",
                     {"expected \"qconf-golden\""});
  ExpectEditRejected([](Json& j) { j["format"] = 1; }, "", "format", {"expected a string"});
  ExpectEditRejected([](Json& j) { j.erase("format"); }, "", "format", {"missing required field"});
}

TEST(FixtureLoader, RejectsVersionTwo) {
  ExpectEditRejected([](Json& j) { j["version"] = 2; }, "", "version",
                     {"unknown format version 2", "reads version 1"});
}

TEST(FixtureLoader, RejectsVersionAsString) {
  ExpectEditRejected([](Json& j) { j["version"] = "1"; }, "", "version",
                     {"unknown format version \"1\""});
}

TEST(FixtureLoader, RejectsVersionAsFloatOrZero) {
  ExpectEditRejected([](Json& j) { j["version"] = 1.0; }, "", "version",
                     {"unknown format version"});
  ExpectEditRejected([](Json& j) { j["version"] = 0; }, "", "version",
                     {"unknown format version 0"});
}

TEST(FixtureLoader, RejectsMissingVersion) {
  ExpectEditRejected([](Json& j) { j.erase("version"); }, "", "version",
                     {"missing required field"});
}

TEST(FixtureLoader, RejectsUnknownTopLevelField) {
  ExpectEditRejected([](Json& j) { j["generator"] = "me"; }, "", "generator",
                     {"unknown field", "expected one of: format, version, op"});
}

TEST(FixtureLoader, RejectsUnknownOp) {
  ExpectEditRejected([](Json& j) { j["op"] = "npu_bogus_op"; }, "", "op",
                     {"unknown op \"npu_bogus_op\""});
  ExpectEditRejected([](Json& j) { j.erase("op"); }, "", "op", {"missing required field"});
}

TEST(FixtureLoader, RejectsSourcesThatAreNotStrings) {
  ExpectEditRejected([](Json& j) { j["sources"].push_back(7); }, "", "sources",
                     {"expected an array of strings", "number"});
  ExpectEditRejected([](Json& j) { j["sources"] = "one"; }, "", "sources",
                     {"expected an array of strings"});
}

TEST(FixtureLoader, RejectsMalformedNotes) {
  ExpectEditRejected([](Json& j) { j["notes"]["NibbleOrder"]["severity"] = "high"; }, "",
                     "notes.NibbleOrder.severity", {"unknown field", "bug_type"});
  ExpectEditRejected([](Json& j) { j["notes"]["NibbleOrder"].erase("bug_type"); }, "",
                     "notes.NibbleOrder.bug_type", {"missing required field"});
  ExpectEditRejected([](Json& j) { j["notes"] = Json::array(); }, "", "notes",
                     {"expected an object"});
}

// Strict parsing: a repeated key must not silently replace the first one (here the first
// "cases" array would vanish without a word).
TEST(FixtureLoader, RejectsDuplicateJsonKeys) {
  std::string text = text_of(small_fixture());
  auto pos = text.find("\n \"cases\": [");
  ASSERT_NE(pos, std::string::npos);
  text.insert(pos + 1, " \"cases\": [],\n");
  try {
    fixture_from_text(text, kFile);
    ADD_FAILURE() << "a fixture with two \"cases\" keys loaded";
  } catch (const FixtureError& e) {
    EXPECT_EQ(e.file(), kFile);
    EXPECT_THAT(e.what(), HasSubstr("cases"));
    EXPECT_THAT(e.what(), HasSubstr("duplicate"));
  }
}

// ---- cases -------------------------------------------------------------------------------------

TEST(FixtureLoader, RejectsMissingCases) {
  ExpectEditRejected([](Json& j) { j.erase("cases"); }, "", "cases", {"missing required field"});
}

TEST(FixtureLoader, RejectsCasesThatAreNotAnArray) {
  ExpectEditRejected([](Json& j) { j["cases"] = Json::object(); }, "", "cases",
                     {"expected an array"});
}

TEST(FixtureLoader, RejectsCaseThatIsNotAnObject) {
  ExpectEditRejected([](Json& j) { j["cases"][1] = 3; }, "", "cases[1]",
                     {"expected a JSON object", "number"});
}

TEST(FixtureLoader, RejectsCaseWithoutId) {
  ExpectEditRejected([](Json& j) { j["cases"][1].erase("id"); }, "", "cases[1].id",
                     {"missing required field"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["id"] = 42; }, "", "cases[0].id",
                     {"expected a string"});
}

TEST(FixtureLoader, RejectsIdWithoutOpPrefix) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["id"] = "ascending_0_to_7"; }, "ascending_0_to_7",
                     "id", {"expected \"" + std::string(kOp) + "/<name>\""});
  ExpectEditRejected([](Json& j) { j["cases"][0]["id"] = "npu_other_op/ascending_0_to_7"; },
                     "npu_other_op/ascending_0_to_7", "id", {"/<name>"});
  // The op name alone as a prefix of a longer word is not "<op>/".
  ExpectEditRejected([](Json& j) { j["cases"][0]["id"] = std::string(kOp) + "x/y"; },
                     std::string(kOp) + "x/y", "id", {"/<name>"});
}

TEST(FixtureLoader, RejectsIdWithEmptyName) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["id"] = std::string(kOp) + "/"; },
                     std::string(kOp) + "/", "id", {"/<name>"});
}

TEST(FixtureLoader, RejectsDuplicateIdWithinFile) {
  ExpectEditRejected([](Json& j) { j["cases"][1]["id"] = kCase0; }, kCase0, "id",
                     {"duplicate case id"});
}

// The case id is known (it is in the object) and must be named, like every other error inside
// a case; the field must name the unknown key.
TEST(FixtureLoader, RejectsUnknownCaseFieldNamingTheCase) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["tolerance"] = 1; }, kCase0, EndsWith("tolerance"),
                     {"unknown field", "expected one of: id, comment"});
}

TEST(FixtureLoader, RejectsFlagNotExplainedInNotes) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["flags"].push_back("Bogus"); }, kCase0, "flags",
                     {"flag \"Bogus\" is not explained in the file's notes"});
  ExpectEditRejected([](Json& j) { j["notes"].erase("ByteOrder"); }, kCase0, "flags",
                     {"flag \"ByteOrder\""});
}

TEST(FixtureLoader, RejectsFlagsThatAreNotStrings) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["flags"] = "NibbleOrder"; }, kCase0, "flags",
                     {"expected an array of strings"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["flags"] = Json::array({1}); }, kCase0, "flags",
                     {"expected an array of strings"});
}

TEST(FixtureLoader, RejectsCommentThatIsNotAString) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["comment"] = Json::array(); }, kCase0, "comment",
                     {"expected a string"});
}

TEST(FixtureLoader, RejectsParamsThatAreNotAnObject) {
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["params"] = Json::array({1, 2});
      },
      kCase0, "params", {"expected an object"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["params"] = "group=32"; }, kCase0, "params",
                     {"expected an object"});
}

TEST(FixtureLoader, RejectsMissingInputs) {
  ExpectEditRejected([](Json& j) { j["cases"][0].erase("inputs"); }, kCase0, "inputs",
                     {"missing required field"});
}

TEST(FixtureLoader, RejectsInputsThatAreNotAnObject) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"] = Json::array(); }, kCase0, "inputs",
                     {"expected an object"});
}

// ---- tensors -----------------------------------------------------------------------------------

TEST(FixtureLoader, RejectsTensorThatIsNotAnObject) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"] = "0001"; }, kCase0,
                     "inputs.weight", {"expected a JSON object", "string"});
}

TEST(FixtureLoader, RejectsUnknownDtype) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"]["dtype"] = "int4"; }, kCase0,
                     "inputs.weight.dtype", {"unknown dtype \"int4\"", "int32"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"]["dtype"] = "Int32"; }, kCase0,
                     "inputs.weight.dtype", {"unknown dtype \"Int32\""});
}

TEST(FixtureLoader, RejectsMissingOrNonStringDtype) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"].erase("dtype"); }, kCase0,
                     "inputs.weight.dtype", {"missing required field"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"]["dtype"] = 5; }, kCase0,
                     "inputs.weight.dtype", {"expected a string"});
}

TEST(FixtureLoader, RejectsShapeThatIsNotAnArray) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"]["shape"] = 8; }, kCase0,
                     "inputs.weight.shape", {"expected an array of integers"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["inputs"]["weight"].erase("shape"); }, kCase0,
                     "inputs.weight.shape", {"missing required field"});
}

TEST(FixtureLoader, RejectsNegativeDim) {
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["inputs"]["weight"]["shape"] = {-1, -8};
      },
      kCase0, "inputs.weight.shape", {"expected non-negative integers", "-1"});
}

TEST(FixtureLoader, RejectsNonIntegerDim) {
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["inputs"]["weight"]["shape"] = {1, 8.5};
      },
      kCase0, "inputs.weight.shape", {"expected non-negative integers", "8.5"});
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["inputs"]["weight"]["shape"] = Json::array({1, "8"});
      },
      kCase0, "inputs.weight.shape", {"expected non-negative integers", "\"8\""});
  // 8.0 is a JSON float, not an integer.
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["inputs"]["weight"]["shape"] = {1, 8.0};
      },
      kCase0, "inputs.weight.shape", {"expected non-negative integers"});
}

TEST(FixtureLoader, RejectsHexTooShort) {
  ExpectEditRejected(
      [](Json& j) {
        auto& h = j["cases"][0]["inputs"]["weight"]["hex"];
        h = h.get<std::string>().substr(2);
      },
      kCase0, "inputs.weight.hex", {"length 62 hex digits, expected 64", "int32[1, 8]"});
}

TEST(FixtureLoader, RejectsHexTooLong) {
  ExpectEditRejected(
      [](Json& j) {
        auto& h = j["cases"][0]["inputs"]["weight"]["hex"];
        h = h.get<std::string>() + "00";
      },
      kCase0, "inputs.weight.hex", {"length 66 hex digits, expected 64"});
  ExpectEditRejected(
      [](Json& j) {
        auto& h = j["cases"][0]["inputs"]["weight"]["hex"];
        h = h.get<std::string>() + "0";
      },
      kCase0, "inputs.weight.hex", {"length 65 hex digits, expected 64"});
}

TEST(FixtureLoader, RejectsNonHexCharNamingOffset) {
  ExpectEditRejected(
      [](Json& j) {
        auto& h = j["cases"][0]["inputs"]["weight"]["hex"];
        std::string s = h.get<std::string>();
        s[9] = 'g';
        h = s;
      },
      kCase0, "inputs.weight.hex", {"malformed hex at offset 9", "lowercase 0-9a-f"});
}

TEST(FixtureLoader, RejectsUppercaseHexNamingFieldAndOffset) {
  // Stage packed of case 1 (-8..-1) is 0xfedcba98: hex "98badcfe".
  ExpectEditRejected(
      [](Json& j) {
        auto& h = stage_json(j, 1, 1)["tensor"]["hex"];
        ASSERT_EQ(h.get<std::string>(), "98badcfe");
        h = "98bAdcfe";
      },
      kCase1, "stages[1].tensor.hex", {"malformed hex at offset 3", "lowercase"});
}

TEST(FixtureLoader, RejectsUnknownTensorField) {
  ExpectEditRejected(
      [](Json& j) {
        j["cases"][0]["inputs"]["weight"]["strides"] = {8, 1};
      },
      kCase0, "inputs.weight.strides", {"unknown field", "expected one of: dtype, shape, hex"});
}

// A shape whose byte size overflows size_t (2^62 int32 elements = 2^64 bytes) must not be
// taken for an empty tensor that matches an empty hex string.
TEST(FixtureLoader, RejectsShapeWhoseByteSizeOverflows) {
  ExpectEditRejected(
      [](Json& j) {
        auto& w = j["cases"][0]["inputs"]["weight"];
        w["shape"] = Json::array({int64_t{1} << 62});
        w["hex"] = "";
      },
      kCase0, "inputs.weight.shape", {"too large"});
}

// The hex length is checked against the shape before any tensor is allocated: a huge shape
// with a short hex string is a FixtureError, not std::bad_alloc.
TEST(FixtureLoader, RejectsHugeShapeWithShortHexWithoutAllocating) {
  ExpectEditRejected(
      [](Json& j) {
        auto& w = j["cases"][0]["inputs"]["weight"];
        w["dtype"] = "int8";
        w["shape"] = Json::array({int64_t{1} << 61});
        w["hex"] = "00";
      },
      kCase0, "inputs.weight.shape", {"too large"});
}

// ---- stages ------------------------------------------------------------------------------------

TEST(FixtureLoader, RejectsMissingStages) {
  ExpectEditRejected([](Json& j) { j["cases"][0].erase("stages"); }, kCase0, "stages",
                     {"missing required field"});
}

TEST(FixtureLoader, RejectsEmptyStages) {
  ExpectEditRejected([](Json& j) { j["cases"][0]["stages"] = Json::array(); }, kCase0, "stages",
                     {"expected a non-empty array"});
  ExpectEditRejected([](Json& j) { j["cases"][0]["stages"] = Json::object(); }, kCase0, "stages",
                     {"expected a non-empty array"});
}

TEST(FixtureLoader, RejectsUnknownStageField) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["tolerance"] = 0; }, kCase0,
                     "stages[1].tolerance", {"unknown field", "name, output, tensor, check"});
}

TEST(FixtureLoader, RejectsStageWithoutNameTensorOrCheck) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 0).erase("name"); }, kCase0, "stages[0].name",
                     {"missing required field"});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1).erase("tensor"); }, kCase0,
                     "stages[1].tensor", {"missing required field"});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1).erase("check"); }, kCase0, "stages[1].check",
                     {"missing required field"});
}

TEST(FixtureLoader, RejectsDuplicateStageName) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["name"] = "int4_values"; }, kCase0,
                     "stages[1].name", {"duplicate stage \"int4_values\""});
}

TEST(FixtureLoader, RejectsNonBooleanOutputFlag) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["output"] = 1; }, kCase0, "stages[1].output",
                     {"expected true or false"});
}

TEST(FixtureLoader, RejectsMalformedStageTensor) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["tensor"]["dtype"] = "float8"; }, kCase0,
                     "stages[1].tensor.dtype", {"unknown dtype \"float8\""});
}

// ---- checks ------------------------------------------------------------------------------------

TEST(FixtureLoader, RejectsUnknownCheckMode) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["mode"] = "approx"; }, kCase0,
                     "stages[1].check.mode",
                     {"unknown check mode \"approx\"", "exact, exact_ties, reachable, bounded"});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["mode"] = "EXACT"; }, kCase0,
                     "stages[1].check.mode", {"unknown check mode \"EXACT\""});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"].erase("mode"); }, kCase0,
                     "stages[1].check.mode", {"missing required field"});
}

TEST(FixtureLoader, RejectsUnknownCheckField) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["ulp"] = 1; }, kCase0,
                     "stages[1].check.ulp", {"unknown field", "mode, accept, exact, bound"});
}

TEST(FixtureLoader, RejectsNonBooleanCheckFlags) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["signed_zero"] = "no"; }, kCase0,
                     "stages[1].check.signed_zero", {"expected true or false"});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["degenerate_ok"] = 0; }, kCase0,
                     "stages[1].check.degenerate_ok", {"expected true or false"});
}

TEST(FixtureLoader, RejectsExactTiesWithoutAccept) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 0)["check"]["mode"] = "exact_ties"; }, kCase0,
                     "stages[0].check.accept", {"missing required field"});
}

TEST(FixtureLoader, RejectsReachableWithoutAccept) {
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["mode"] = "reachable"; }, kCase0,
                     "stages[1].check.accept", {"missing required field"});
}

TEST(FixtureLoader, RejectsAcceptWithUnknownOrMissingField) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["weights"] = i64_json({1});
  ExpectRejected(j, kCase0, "stages[0].check.accept.weights",
                 {"unknown field", "index, offsets, values"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"].erase("offsets");
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets", {"missing required field"});
}

TEST(FixtureLoader, RejectsAcceptWithNonIncreasingIndex) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["index"] = i64_json({6, 1});
  ExpectRejected(j, kCase0, "stages[0].check.accept.index",
                 {"expected strictly increasing element indices in [0, 8)"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["index"] = i64_json({3, 3});
  ExpectRejected(j, kCase0, "stages[0].check.accept.index", {"strictly increasing"});
}

TEST(FixtureLoader, RejectsAcceptWithIndexOutOfRange) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["index"] = i64_json({1, 8});
  ExpectRejected(j, kCase0, "stages[0].check.accept.index", {"in [0, 8)"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["index"] = i64_json({-1, 6});
  ExpectRejected(j, kCase0, "stages[0].check.accept.index", {"in [0, 8)"});
}

TEST(FixtureLoader, RejectsAcceptWithOffsetsNotEndingAtValuesSize) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["offsets"] = i64_json({0, 2, 3});
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets",
                 {"expected index.size+1 offsets from 0 to values.size"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["offsets"] = i64_json({1, 3, 4});
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets", {"from 0 to values.size"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["offsets"] = i64_json({0, 4});
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets", {"index.size+1 offsets"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["offsets"] = i64_json({});
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets", {"index.size+1 offsets"});
}

TEST(FixtureLoader, RejectsAcceptListingAnElementWithOneValue) {
  Json j = with_accept();
  auto& a = stage_json(j, 0, 0)["check"]["accept"];
  a["offsets"] = i64_json({0, 1, 3});
  a["values"] = i8_json({1, 6, 5});
  ExpectRejected(j, kCase0, "stages[0].check.accept.offsets",
                 {"each listed element needs at least two acceptable values"});
}

TEST(FixtureLoader, RejectsAcceptValuesOfWrongDtype) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["values"] =
      tensor_to_json(Tensor::from<int32_t>({4}, std::vector<int32_t>{1, 2, 6, 5}));
  ExpectRejected(j, kCase0, "stages[0].check.accept.values",
                 {"expected a 1-D int8 tensor (the stage's dtype)"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["values"] =
      tensor_to_json(Tensor::from<int8_t>({2, 2}, std::vector<int8_t>{1, 2, 6, 5}));
  ExpectRejected(j, kCase0, "stages[0].check.accept.values", {"1-D int8"});
}

TEST(FixtureLoader, RejectsAcceptIndexOrOffsetsNotInt64) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["accept"]["index"] =
      tensor_to_json(Tensor::from<int32_t>({2}, std::vector<int32_t>{1, 6}));
  ExpectRejected(j, kCase0, "stages[0].check.accept", {"1-D int64"});
}

TEST(FixtureLoader, RejectsAcceptOnExactCheck) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["mode"] = "exact";
  ExpectRejected(j, kCase0, "stages[0].check.accept",
                 {"only exact_ties, reachable and row_set checks carry an accept set"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["mode"] = "special";
  ExpectRejected(j, kCase0, "stages[0].check.accept", {"only exact_ties, reachable and row_set"});
}

TEST(FixtureLoader, OrderedOnlyOnRowSetAndRoundTrips) {
  Json j = with_accept();
  stage_json(j, 0, 0)["check"]["ordered"] = true;
  ExpectRejected(j, kCase0, "stages[0].check.ordered", {"only row_set checks can be ordered"});
  j = with_accept();
  stage_json(j, 0, 0)["check"]["mode"] = "row_set";
  stage_json(j, 0, 0)["check"]["ordered"] = 1;
  ExpectRejected(j, kCase0, "stages[0].check.ordered", {"expected true or false"});
  Json r = small_fixture();
  Json& check = stage_json(r, 0, 0)["check"];
  check = Json::object();
  check["mode"] = "row_set";
  check["ordered"] = true;
  const Fixture f = fixture_from_text(r.dump(), "mem.json");
  EXPECT_TRUE(f.cases[0].stages[0].check.ordered);
  const Fixture g = fixture_from_text(fixture_to_text(f), "mem.json");
  EXPECT_TRUE(g.cases[0].stages[0].check.ordered);
  EXPECT_EQ(fixture_to_text(f), fixture_to_text(g));
}

TEST(FixtureLoader, RejectsBoundedWithoutExactOrBound) {
  Json j = with_bounded();
  stage_json(j, 0, 0)["check"].erase("exact");
  ExpectRejected(j, kCase0, "stages[0].check.exact", {"missing required field"});
  j = with_bounded();
  stage_json(j, 0, 0)["check"].erase("bound");
  ExpectRejected(j, kCase0, "stages[0].check.bound", {"missing required field"});
}

TEST(FixtureLoader, RejectsBoundedWithWrongShapeOrDtype) {
  Json j = with_bounded();
  stage_json(j, 0, 0)["check"]["exact"] = tensor_to_json(Tensor(DType::kF64, {8}));
  ExpectRejected(j, kCase0, "stages[0].check.exact", {"expected float64[1, 8], got float64[8]"});
  j = with_bounded();
  stage_json(j, 0, 0)["check"]["bound"] = tensor_to_json(Tensor(DType::kF32, {1, 8}));
  ExpectRejected(j, kCase0, "stages[0].check.bound", {"expected float64[1, 8], got float32[1, 8]"});
}

TEST(FixtureLoader, RejectsBoundedOrSpecialOnIntegerStage) {
  Json j = with_bounded();
  stage_json(j, 0, 0)["tensor"] = small_fixture()["cases"][0]["stages"][0]["tensor"];  // int8
  ExpectRejected(j, kCase0, "stages[0].check.mode", {"float stages only", "int8"});
  ExpectEditRejected([](Json& j) { stage_json(j, 0, 1)["check"]["mode"] = "special"; }, kCase0,
                     "stages[1].check.mode", {"float stages only", "int32"});
}

TEST(FixtureLoader, RejectsExactAndBoundOnNonBoundedCheck) {
  Json j = with_bounded();
  stage_json(j, 0, 0)["check"]["mode"] = "exact";
  ExpectRejected(j, kCase0, StartsWith("stages[0].check"),
                 {"only bounded checks carry exact and bound"});
}

// ---- manifest and golden directory ------------------------------------------------------------

class GoldenDir : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("qconf_fixture_loader_" + std::to_string(::getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  // Writes a fixture and returns its sha256.
  std::string put(const std::string& name, const std::string& text) {
    write_file(path(name), text);
    return sha256_hex(text);
  }
  // Expects load_golden_dir to fail naming `file`, `case_id` and `field`, saying `says`.
  void ExpectDirRejected(const std::string& file, const std::string& case_id,
                         const std::string& field, const std::vector<std::string>& says) {
    try {
      auto fixtures = load_golden_dir(dir_);
      ADD_FAILURE() << "the golden dir loaded (" << fixtures.size() << " fixtures)";
    } catch (const FixtureError& e) {
      EXPECT_EQ(e.file(), file) << e.what();
      EXPECT_EQ(e.case_id(), case_id) << e.what();
      EXPECT_EQ(e.field(), field) << e.what();
      for (const auto& s : says) EXPECT_THAT(e.what(), HasSubstr(s));
    }
  }
  std::string dir_;
};

TEST_F(GoldenDir, LoadsFixturesListedWithTheirHashes) {
  std::map<std::string, std::string> m;
  m[kFixture] = put(kFixture, text_of(small_fixture()));
  write_manifest(dir_, m);
  EXPECT_EQ(load_manifest(dir_), m);
  auto fixtures = load_golden_dir(dir_);
  ASSERT_EQ(fixtures.size(), 1u);
  EXPECT_EQ(fixtures[0].cases.size(), 2u);
  EXPECT_EQ(fixtures[0].cases[0].file, path(kFixture));
}

TEST_F(GoldenDir, RejectsCorruptedFixtureWhoseHashNoLongerMatches) {
  std::string text = text_of(small_fixture());
  std::map<std::string, std::string> m;
  m[kFixture] = sha256_hex(text);
  // Flip one hex digit of a stored output (packed of case 0: 0x76543210, hex "10325476").
  Json j = small_fixture();
  auto& h = stage_json(j, 0, 1)["tensor"]["hex"];
  ASSERT_EQ(h.get<std::string>(), "10325476");
  h = "11325476";
  std::string corrupted = text_of(j);
  ASSERT_EQ(corrupted.size(), text.size());
  // The corrupted file is still a well-formed fixture: only the hash can catch it.
  ASSERT_NO_THROW(fixture_from_text(corrupted, "x.json"));
  put(kFixture, corrupted);
  write_manifest(dir_, m);
  ExpectDirRejected(
      path(kFixture), "", "",
      {"sha256 " + sha256_hex(corrupted), "does not match MANIFEST.json", m[kFixture]});
}

TEST_F(GoldenDir, RejectsFixtureNotListedInManifest) {
  std::map<std::string, std::string> m;
  m[kFixture] = put(kFixture, text_of(small_fixture()));
  put("stray.json", text_of(small_fixture()));
  write_manifest(dir_, m);
  ExpectDirRejected(path("stray.json"), "", "", {"not listed in MANIFEST.json"});
}

TEST_F(GoldenDir, RejectsManifestThatIsNotJson) {
  put(kFixture, text_of(small_fixture()));
  write_file(path("MANIFEST.json"), "{\"format\": \"qconf-manifest\",\n");
  ExpectDirRejected(path("MANIFEST.json"), "", "", {"not valid JSON"});
}

TEST_F(GoldenDir, RejectsMissingManifest) {
  put(kFixture, text_of(small_fixture()));
  ExpectDirRejected(path("MANIFEST.json"), "", "", {"cannot open file"});
}

// Writes MANIFEST.json from a raw `files` JSON text and the given format and version texts.
void write_raw_manifest(const std::string& dir, const std::string& format,
                        const std::string& version, const std::string& files) {
  write_file(
      (fs::path(dir) / "MANIFEST.json").string(),
      "{\"format\": " + format + ", \"version\": " + version + ", \"files\": " + files + "}\n");
}

TEST_F(GoldenDir, RejectsManifestWithWrongFormatOrVersion) {
  std::string files = "{\"" + kFixture + "\": \"" + put(kFixture, text_of(small_fixture())) + "\"}";
  write_raw_manifest(dir_, "\"qconf-manifest\"", "1", files);
  ASSERT_NO_THROW(load_golden_dir(dir_));  // the control: only the edits below break it
  write_raw_manifest(dir_, "\"qconf-golden\"", "1", files);
  ExpectDirRejected(path("MANIFEST.json"), "", "format", {"expected \"qconf-manifest\""});
  write_raw_manifest(dir_, "\"qconf-manifest\"", "2", files);
  ExpectDirRejected(path("MANIFEST.json"), "", "version", {"unknown manifest version 2"});
  write_raw_manifest(dir_, "\"qconf-manifest\"", "\"1\"", files);
  ExpectDirRejected(path("MANIFEST.json"), "", "version", {"unknown manifest version \"1\""});
  write_raw_manifest(dir_, "\"qconf-manifest\"", "1", "[]");
  ExpectDirRejected(path("MANIFEST.json"), "", "files", {"expected an object"});
  write_file(path("MANIFEST.json"),
             R"({"format": "qconf-manifest", "version": 1, "files": {}, "extra": 1})");
  ExpectDirRejected(path("MANIFEST.json"), "", "extra", {"unknown field"});
}

TEST_F(GoldenDir, RejectsManifestHashThatIsNotA64DigitLowercaseHexString) {
  std::string sha = put(kFixture, text_of(small_fixture()));
  std::string upper = sha;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  ASSERT_NE(upper, sha);
  for (const std::string& bad :
       {"\"" + sha.substr(1) + "\"", "\"" + sha + "0\"", "\"" + upper + "\"", std::string("42"),
        "\"" + sha.substr(1) + "g\""}) {
    SCOPED_TRACE(bad);
    write_raw_manifest(dir_, "\"qconf-manifest\"", "1", "{\"" + kFixture + "\": " + bad + "}");
    ExpectDirRejected(path("MANIFEST.json"), "", "files." + kFixture, {"64-digit", "sha256"});
  }
}

TEST_F(GoldenDir, RejectsManifestListingAFileTwice) {
  std::string sha = put(kFixture, text_of(small_fixture()));
  write_raw_manifest(
      dir_, "\"qconf-manifest\"", "1",
      "{\"" + kFixture + "\": \"" + sha + "\", \"" + kFixture + "\": \"" + sha + "\"}");
  try {
    load_golden_dir(dir_);
    ADD_FAILURE() << "a manifest listing a file twice loaded";
  } catch (const FixtureError& e) {
    EXPECT_EQ(e.file(), path("MANIFEST.json"));
    EXPECT_THAT(e.what(), HasSubstr("duplicate"));
  }
}

TEST_F(GoldenDir, RejectsManifestListingAMissingFile) {
  std::map<std::string, std::string> m;
  m[kFixture] = sha256_hex("x");
  write_manifest(dir_, m);
  ExpectDirRejected(path(kFixture), "", "", {"cannot open file"});
}

TEST_F(GoldenDir, RejectsFixtureFileNotNamedAfterItsOp) {
  std::map<std::string, std::string> m;
  m["int4.json"] = put("int4.json", text_of(small_fixture()));
  write_manifest(dir_, m);
  ExpectDirRejected(path("int4.json"), "", "op", {"must be named " + kFixture});
}

// The same case id in two listed files is rejected, naming the second file loaded. (Files are
// named after their op and ids start with the op, so the second copy is necessarily in a file
// with the wrong name; either reason is a correct rejection.)
TEST_F(GoldenDir, RejectsSameCaseIdInTwoFiles) {
  Json one = small_fixture();
  one["cases"].erase(1);  // case 0 only
  Json two = small_fixture();
  two["cases"].erase(0);  // case 1, then case 0 again
  two["cases"].push_back(small_fixture()["cases"][0]);
  std::map<std::string, std::string> m;
  m[kFixture] = put(kFixture, text_of(one));
  m["zz_copy.json"] = put("zz_copy.json", text_of(two));
  write_manifest(dir_, m);
  try {
    load_golden_dir(dir_);
    ADD_FAILURE() << "two files with the same case id loaded";
  } catch (const FixtureError& e) {
    EXPECT_EQ(e.file(), path("zz_copy.json")) << e.what();
    EXPECT_THAT(e.what(), AnyOf(HasSubstr("duplicate case id across fixture files"),
                                HasSubstr("must be named " + kFixture)));
  }
}

TEST_F(GoldenDir, ReportsAMalformedFixtureByItsPath) {
  Json j = small_fixture();
  j["version"] = 2;
  std::map<std::string, std::string> m;
  m[kFixture] = put(kFixture, text_of(j));
  write_manifest(dir_, m);
  ExpectDirRejected(path(kFixture), "", "version", {"unknown format version 2"});
}

// ---- the real golden directory -----------------------------------------------------------------

TEST(Golden, RealGoldenDirLoadsAndEveryHashMatches) {
  auto manifest = load_manifest(kGoldenDir);
  ASSERT_FALSE(manifest.empty());
  for (const auto& [name, sha] : manifest)
    EXPECT_EQ(sha256_hex(read_file(kGoldenDir + "/" + name)), sha) << name;
  auto fixtures = load_golden_dir(kGoldenDir);
  EXPECT_EQ(fixtures.size(), manifest.size());
  bool found = false;
  for (const Fixture& f : fixtures) {
    EXPECT_FALSE(f.cases.empty()) << f.op;
    if (f.op != kOp) continue;
    found = true;
    EXPECT_EQ(f.cases[0].id, kCase0);
  }
  EXPECT_TRUE(found);
}

TEST(Golden, RealGoldenFileRoundTripsToIdenticalText) {
  for (const auto& [name, sha] : load_manifest(kGoldenDir)) {
    SCOPED_TRACE(name);
    std::string text = read_file(kGoldenDir + "/" + name);
    std::string again = fixture_to_text(fixture_from_text(text, name));
    EXPECT_TRUE(again == text) << "fixture_to_text(fixture_from_text(x)) differs from x";
  }
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// ---- tensor <-> JSON ---------------------------------------------------------------------------

Tensor tensor_of_bits(DType dt, const std::vector<uint64_t>& bits) {
  Tensor t(dt, {static_cast<int64_t>(bits.size())});
  const size_t sz = dtype_size(dt);
  for (size_t i = 0; i < bits.size(); ++i)
    std::memcpy(reinterpret_cast<unsigned char*>(t.bytes()) + i * sz, &bits[i], sz);
  return t;
}

std::vector<uint64_t> interesting_bits(DType dt) {
  switch (dt) {
    case DType::kBool:
      return {0, 1, 1, 0};
    case DType::kI8:
    case DType::kU8:
      return {0, 1, 0x7f, 0x80, 0xff, 0x5a};
    case DType::kI16:
    case DType::kU16:
      return {0, 1, 0x7fff, 0x8000, 0xffff, 0x1234};
    case DType::kI32:
    case DType::kU32:
      return {0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x12345678};
    case DType::kI64:
    case DType::kU64:  // int64 min/max, -1 (= uint64 max), a byte-order probe
      return {0,
              1,
              0x7fffffffffffffffull,
              0x8000000000000000ull,
              0xffffffffffffffffull,
              0x0123456789abcdefull};
    case DType::kF16:  // +-0, +-Inf, quiet/signalling NaNs with payloads, subnormal, max
      return {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe3f, 0x7d55, 0x0001, 0x7bff};
    case DType::kBF16:
      return {0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffc1, 0x0001, 0x3f80};
    case DType::kF32:
      return {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000,
              0x7fc00001, 0x7f800001, 0xffbfffff, 0x00000001, 0x7f7fffff};
    case DType::kF64:
      return {0x0000000000000000ull, 0x8000000000000000ull, 0x7ff0000000000000ull,
              0x7ff8000000000000ull, 0x7ff8000000000001ull, 0x7ff0000000000001ull,
              0xfff7ffffffffffffull, 0x0000000000000001ull, 0x7fefffffffffffffull};
  }
  return {};
}

TEST(TensorJson, RoundTripsEveryDtypeBitExactly) {
  ASSERT_EQ(all_dtypes().size(), 13u);
  for (DType dt : all_dtypes()) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor t = tensor_of_bits(dt, interesting_bits(dt));
    ASSERT_GT(t.numel(), 3);
    // Through JSON text, as a fixture file stores it.
    std::string text = tensor_to_json(t).dump();
    Tensor back = tensor_from_json(Json::parse(text), "t.json", "op/c", "inputs.x");
    EXPECT_TRUE(back.bit_equal(t)) << text;
    for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(back.bits_at(i), t.bits_at(i)) << i;
  }
}

TEST(TensorJson, RoundTripsScalarsAndEmptyTensors) {
  for (const Shape& s : {Shape{}, Shape{0}, Shape{3, 0, 2}}) {
    Tensor t(DType::kF16, s);
    Tensor back = tensor_from_json(Json::parse(tensor_to_json(t).dump()), "t.json", "", "x");
    EXPECT_TRUE(back.bit_equal(t)) << shape_str(s);
  }
}

TEST(TensorJson, WritesLittleEndianLowercaseHex) {
  Json j = tensor_to_json(Tensor::from<int32_t>({2}, std::vector<int32_t>{0x0a0b0c0d, -2}));
  EXPECT_EQ(j.dump(), R"({"dtype":"int32","shape":[2],"hex":"0d0c0b0afeffffff"})");
  Json u = tensor_to_json(
      Tensor::from<uint64_t>({1}, std::vector<uint64_t>{std::numeric_limits<uint64_t>::max()}));
  EXPECT_EQ(u["hex"], "ffffffffffffffff");
  Json i = tensor_to_json(
      Tensor::from<int64_t>({1}, std::vector<int64_t>{std::numeric_limits<int64_t>::min()}));
  EXPECT_EQ(i["hex"], "0000000000000080");
}

TEST(TensorJson, ErrorsArePrefixedWithTheGivenWhere) {
  Json j = tensor_to_json(Tensor(DType::kI8, {2}));
  j["hex"] = "0";
  try {
    tensor_from_json(j, "t.json", "op/c", "stages[3].tensor");
    ADD_FAILURE() << "loaded";
  } catch (const FixtureError& e) {
    EXPECT_EQ(e.file(), "t.json");
    EXPECT_EQ(e.case_id(), "op/c");
    EXPECT_EQ(e.field(), "stages[3].tensor.hex");
  }
}

}  // namespace
}  // namespace qconf::conf

// The optimized packers stream whole output lines only from a 64-byte aligned start; with
// std::vector's default allocator a large tensor (glibc serves it by mmap) starts 16 bytes past
// a page boundary, so this fails without the aligned allocator.
TEST(TensorStorage, EveryNonEmptyTensorStartsOnACacheLine) {
  for (int64_t n : {1, 3, 64, 1000, 4097, 1 << 20, 3 << 20}) {
    for (qconf::DType dt :
         {qconf::DType::kI8, qconf::DType::kBF16, qconf::DType::kF32, qconf::DType::kI64}) {
      const qconf::Tensor t(dt, {n});
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.bytes()) % qconf::Tensor::kStorageAlignment, 0u)
          << qconf::dtype_name(dt) << "[" << n << "]";
      const qconf::Tensor copy = t;  // copies keep the alignment
      EXPECT_EQ(reinterpret_cast<uintptr_t>(copy.bytes()) % qconf::Tensor::kStorageAlignment, 0u);
      EXPECT_TRUE(copy.bit_equal(t));
    }
  }
}
