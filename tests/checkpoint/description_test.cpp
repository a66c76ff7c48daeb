// quant_model_description.json parsing, the layer lookup (packed modules, expert 0, errors, the
// prefix-match skip rule) and the compressed-tensors detection rules.
#include "qconf/schemes/description.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ckpt_builder.h"
#include "qconf/schemes/scheme.h"

namespace {

using namespace ckpt_test;
using namespace qconf::schemes;
using ::testing::HasSubstr;

QuantDescription desc(const json& j) {
  return parse_description(j, "quant_model_description.json");
}

DescErrorKind lookup_error(const QuantDescription& d, const std::string& prefix,
                           const std::string& lt, std::string* msg = nullptr) {
  try {
    lookup_layer(d, prefix, lt, full_packed_mapping());
  } catch (const DescriptionError& e) {
    if (msg) *msg = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no error for " << prefix;
  return DescErrorKind::kBadValue;
}

TEST(Description, EveryGlobalKeyIsParsed) {
  QuantDescription d = desc({{"group_size", 0},
                             {"fa_quant_type", "FAKQuant"},
                             {"indexer_quant_type", "INT8_DYNAMIC"},
                             {"kv_cache_type", "C8"},
                             {"is_rot_used", true},
                             {"max_supported_tp", 8},
                             {"version", "1.0.0"},
                             {"ascend_quant_method", "compressed-tensors"},
                             {"model_quant_type", "W8A8_DYNAMIC"},
                             {"model.layers.3.self_attn.indexer.quant_type", "INT8_DYNAMIC"},
                             {"a.weight", "W8A8_DYNAMIC"}});
  EXPECT_EQ(d.group_size, 0);
  EXPECT_EQ(d.fa_quant_type, "FAKQuant");
  EXPECT_EQ(d.indexer_quant_type, "INT8_DYNAMIC");
  EXPECT_EQ(d.kv_cache_type, "C8");
  EXPECT_EQ(d.is_rot_used, true);
  EXPECT_EQ(d.max_supported_tp, 8);
  EXPECT_EQ(d.version, "1.0.0");
  EXPECT_EQ(d.ascend_quant_method, "compressed-tensors");
  EXPECT_EQ(d.indexer_layers.at("model.layers.3.self_attn.indexer.quant_type"), "INT8_DYNAMIC");
  EXPECT_EQ(d.types.size(), 1u);  // global keys are not tensors
}

TEST(Description, GlobalKeyOfTheWrongTypeNamesTheKey) {
  try {
    desc({{"group_size", "32"}});
    FAIL();
  } catch (const DescriptionError& e) {
    EXPECT_EQ(e.key(), "group_size");
    EXPECT_EQ(e.kind(), DescErrorKind::kBadValue);
    EXPECT_THAT(e.what(), HasSubstr("integer"));
  }
}

TEST(Description, RewritingAddsSharedHeadAndWeightPackedKeys) {
  QuantDescription d = desc({{"model.layers.61.shared_head.head.weight", "W8A8_DYNAMIC"},
                             {"model.layers.0.mlp.experts.0.gate_proj.weight_packed", "W4A16"}});
  EXPECT_EQ(d.types.at("model.layers.61.head.weight"), "W8A8_DYNAMIC");
  EXPECT_EQ(d.types.at("model.layers.0.mlp.experts.0.gate_proj.weight"), "W4A16");
  EXPECT_EQ(d.added.at("model.layers.61.head.weight"), "model.layers.61.shared_head.head.weight");
  EXPECT_EQ(d.types.count("model.layers.61.shared_head.head.weight"), 1u);  // original kept
}

TEST(Description, DeepSeekV4KeysAreRenamed) {
  QuantDescription d = desc({{"hc_head_fn", "FLOAT"},
                             {"layers.0.attn.wq.weight", "W8A8_DYNAMIC"},
                             {"layers.0.ffn.experts.0.w1.weight", "W4A8_DYNAMIC"},
                             {"embed.weight", "FLOAT"}});
  EXPECT_EQ(d.types.count("model.layers.0.self_attn.wq.weight"), 1u);
  EXPECT_EQ(d.types.count("model.layers.0.mlp.experts.0.gate_proj.weight"), 1u);
  EXPECT_EQ(d.types.count("model.embed_tokens.weight"), 1u);
}

TEST(Description, MissingFileListsTheJsonFilesPresent) {
  TempDir d("nodesc");
  write_text(d.path / "config.json", "{}");
  try {
    load_description(d.str());
    FAIL();
  } catch (const DescriptionError& e) {
    EXPECT_EQ(e.kind(), DescErrorKind::kMissingFile);
    EXPECT_THAT(e.what(), HasSubstr("config.json"));
    EXPECT_THAT(e.what(), HasSubstr("quant_model_description.json"));
  }
}

TEST(Lookup, FusedLayersTakeTheShardsType) {
  QuantDescription d = desc({{"m.q_proj.weight", "W8A8_DYNAMIC"},
                             {"m.k_proj.weight", "W8A8_DYNAMIC"},
                             {"m.v_proj.weight", "W8A8_DYNAMIC"},
                             {"m.q_a_proj.weight", "W8A8"},
                             {"m.kv_a_proj_with_mqa.weight", "W8A8"},
                             {"m.gate_proj.weight", "FLOAT"},
                             {"m.up_proj.weight", "FLOAT"}});
  LayerLookup q = lookup_layer(d, "m.qkv_proj", "linear", full_packed_mapping());
  EXPECT_TRUE(q.fused);
  EXPECT_EQ(q.quant_type, "W8A8_DYNAMIC");
  EXPECT_EQ(lookup_layer(d, "m.fused_qkv_a_proj", "linear", full_packed_mapping()).quant_type,
            "W8A8");
  EXPECT_TRUE(lookup_layer(d, "m.gate_up_proj", "linear", full_packed_mapping()).skipped);
}

TEST(Lookup, ExpertZeroAloneDecidesTheMoeType) {
  QuantDescription d = desc({{"l.experts.0.gate_proj.weight", "W4A8_DYNAMIC"},
                             {"l.experts.0.up_proj.weight", "W4A8_DYNAMIC"},
                             {"l.experts.0.down_proj.weight", "W4A8_DYNAMIC"},
                             {"l.experts.1.gate_proj.weight", "W8A8_DYNAMIC"}});
  LayerLookup r = lookup_layer(d, "l.experts", "moe", full_packed_mapping());
  EXPECT_EQ(r.quant_type, "W4A8_DYNAMIC");
  for (const auto& k : r.keys) EXPECT_THAT(k, HasSubstr("experts.0."));
}

TEST(Lookup, ShardsThatDisagreeAreMixedShards) {
  std::string msg;
  QuantDescription d = desc({{"m.q_proj.weight", "W8A8_DYNAMIC"},
                             {"m.k_proj.weight", "W8A16"},
                             {"m.v_proj.weight", "W8A8_DYNAMIC"}});
  EXPECT_EQ(lookup_error(d, "m.qkv_proj", "linear", &msg), DescErrorKind::kMixedShards);
  EXPECT_THAT(msg, HasSubstr("m.k_proj.weight"));
  EXPECT_THAT(msg, HasSubstr("W8A16"));
  EXPECT_THAT(msg, HasSubstr("ValueError"));
}

TEST(Lookup, PartialFloatIsAnError) {
  std::string msg;
  QuantDescription d =
      desc({{"m.gate_proj.weight", "W8A8_DYNAMIC"}, {"m.up_proj.weight", "FLOAT"}});
  EXPECT_EQ(lookup_error(d, "m.gate_up_proj", "linear", &msg), DescErrorKind::kPartialFloat);
  EXPECT_THAT(msg, HasSubstr("m.up_proj.weight is FLOAT"));
}

TEST(Lookup, MissingKeyIsKeyError) {
  std::string msg;
  QuantDescription d =
      desc({{"m.q_proj.weight", "W8A8_DYNAMIC"}, {"m.k_proj.weight", "W8A8_DYNAMIC"}});
  EXPECT_EQ(lookup_error(d, "m.qkv_proj", "linear", &msg), DescErrorKind::kMissingKey);
  EXPECT_THAT(msg, HasSubstr("m.v_proj.weight"));
  EXPECT_THAT(msg, HasSubstr("KeyError"));
  EXPECT_EQ(lookup_error(d, "m.o_proj", "linear"), DescErrorKind::kMissingKey);
}

TEST(Lookup, UnregisteredPairNamesWhatExists) {
  std::string msg;
  QuantDescription d = desc({{"m.o_proj.weight", "W4A8_DYNAMIC"}, {"m.x.weight", "W9A9"}});
  EXPECT_EQ(lookup_error(d, "m.o_proj", "linear", &msg), DescErrorKind::kUnregistered);
  EXPECT_THAT(msg, HasSubstr("(W4A8_DYNAMIC, linear)"));
  EXPECT_THAT(msg, HasSubstr("exists for moe"));
  EXPECT_EQ(lookup_error(d, "m.x", "linear", &msg), DescErrorKind::kUnregistered);
  EXPECT_THAT(msg, HasSubstr("unknown quant type"));
}

// The gotcha: vllm-ascend's skip test is key.startswith(prefix), not a component match.
TEST(PrefixGotcha, FullLinearPrefixesOfLayers1And10DoNotCollide) {
  // layers.1 FLOAT, layers.10 quantized: "model.layers.10.mlp.down_proj" does not start with
  // "model.layers.1.mlp.down_proj", so both rules keep layers.10 quantized.
  QuantDescription d = desc({{"model.layers.1.mlp.down_proj.weight", "FLOAT"},
                             {"model.layers.10.mlp.down_proj.weight", "W8A8_DYNAMIC"}});
  for (SkipRule r : {SkipRule::kVllmAscendPrefix, SkipRule::kExactComponent}) {
    LayerLookup l10 = lookup_layer(d, "model.layers.10.mlp.down_proj", "linear", {}, r);
    EXPECT_FALSE(l10.skipped);
    EXPECT_FALSE(l10.prefix_gotcha);
    EXPECT_TRUE(lookup_layer(d, "model.layers.1.mlp.down_proj", "linear", {}, r).skipped);
  }
}

TEST(PrefixGotcha, PrefixEndingAtLayers1MatchesLayers10) {
  // A module whose prefix ends at "layers.1" (no FLOAT key of its own) is skipped by the prefix
  // rule because a key of layers.10 is FLOAT; the component rule keeps it quantized.
  QuantDescription d = desc({{"model.layers.1.weight", "W8A8_DYNAMIC"},
                             {"model.layers.10.mlp.down_proj.weight", "FLOAT"}});
  LayerLookup v = lookup_layer(d, "model.layers.1", "linear", {}, SkipRule::kVllmAscendPrefix);
  LayerLookup e = lookup_layer(d, "model.layers.1", "linear", {}, SkipRule::kExactComponent);
  EXPECT_TRUE(v.skipped);
  EXPECT_FALSE(e.skipped);
  EXPECT_EQ(e.quant_type, "W8A8_DYNAMIC");
  EXPECT_TRUE(v.prefix_gotcha);
  EXPECT_EQ(v.gotcha_key, "model.layers.10.mlp.down_proj.weight");
}

TEST(PrefixGotcha, RouterGateMatchesAFloatGateProj) {
  QuantDescription d = desc({{"model.layers.2.mlp.gate.weight", "W8A8_DYNAMIC"},
                             {"model.layers.2.mlp.gate_proj.weight", "FLOAT"}});
  EXPECT_TRUE(lookup_layer(d, "model.layers.2.mlp.gate", "linear", {}).skipped);
  EXPECT_TRUE(lookup_layer(d, "model.layers.2.mlp.gate", "linear", {}).prefix_gotcha);
  EXPECT_FALSE(
      lookup_layer(d, "model.layers.2.mlp.gate", "linear", {}, SkipRule::kExactComponent).skipped);
}

TEST(Lookup, AttentionUsesFaQuantType) {
  QuantDescription d = desc({{"fa_quant_type", "FAKQuant"}});
  EXPECT_EQ(lookup_layer(d, "model.layers.0.self_attn", "attention", {}).quant_type, "FAKQuant");
}

// ---- compressed-tensors ---------------------------------------------------------------------
json group(json weights, json acts, json targets = json::array({"Linear"})) {
  return {{"targets", targets}, {"weights", weights}, {"input_activations", acts}};
}
std::string detect(json weights, json acts) {
  json qc = {{"quant_method", "compressed-tensors"},
             {"config_groups", {{"group_0", group(weights, acts)}}}};
  return parse_ct_config(qc, "config.json").groups.at(0).quant_type;
}

TEST(CompressedTensors, DetectionFollowsTheAscendOrder) {
  const json w8c = {{"num_bits", 8}, {"type", "int"}, {"strategy", "channel"}, {"symmetric", true}};
  const json a8t = {{"num_bits", 8},
                    {"type", "int"},
                    {"strategy", "tensor"},
                    {"dynamic", false},
                    {"symmetric", true}};
  const json a8tok = {{"num_bits", 8}, {"type", "int"}, {"strategy", "token"}, {"dynamic", true}};
  EXPECT_EQ(detect(w8c, a8t), "W8A8");
  EXPECT_EQ(detect(w8c, a8tok), "W8A8_DYNAMIC");
  json w8f = w8c, a8f = a8tok;
  w8f["type"] = "float";
  a8f["type"] = "float";
  EXPECT_EQ(detect(w8f, a8f), "W8A8FP8_DYNAMIC");
  const json w4c = {{"num_bits", 4}, {"type", "int"}, {"strategy", "channel"}};
  EXPECT_EQ(detect(w4c, a8tok), "W4A8_DYNAMIC");
  const json w4g = {{"num_bits", 4},
                    {"type", "int"},
                    {"strategy", "group"},
                    {"group_size", 128},
                    {"dynamic", false}};
  EXPECT_EQ(detect(w4g, nullptr), "W4A16");
}

TEST(CompressedTensors, W4A8DetectionWritesItsSideEffects) {
  json qc = {{"config_groups",
              {{"g", group({{"num_bits", 4}, {"strategy", "channel"}},
                           {{"num_bits", 8}, {"strategy", "token"}, {"dynamic", true}})}}}};
  CtConfig c = parse_ct_config(qc, "config.json");
  EXPECT_EQ(c.description_side_effects.at("version"), "0");
  EXPECT_EQ(c.description_side_effects.at("ascend_quant_method"), "compressed-tensors");
  EXPECT_EQ(c.description_side_effects.at("weight_strategy"), "channel");
}

TEST(CompressedTensors, UnsupportedGroupNamesTheGroup) {
  json qc = {
      {"config_groups", {{"group_7", group({{"num_bits", 2}, {"strategy", "channel"}}, nullptr)}}}};
  try {
    parse_ct_config(qc, "config.json");
    FAIL();
  } catch (const DescriptionError& e) {
    EXPECT_EQ(e.kind(), DescErrorKind::kUnsupportedCt);
    EXPECT_EQ(e.field(), "config_groups.group_7");
    EXPECT_THAT(e.what(), HasSubstr("NotImplementedError"));
  }
}

TEST(CompressedTensors, IgnoreAndTargetsDecideTheLayerScheme) {
  json qc = {{"ignore", {"lm_head", "re:.*mlp\\.gate$"}},
             {"config_groups",
              {{"g", group({{"num_bits", 4}, {"strategy", "group"}, {"group_size", 32}}, nullptr,
                           json::array({"re:.*experts.*"}))}}}};
  CtConfig c = parse_ct_config(qc, "config.json");
  EXPECT_EQ(ct_scheme_for_layer(c, "model.layers.0.mlp.experts", "moe"), "W4A16");
  EXPECT_FALSE(ct_scheme_for_layer(c, "lm_head", "linear").has_value());
  EXPECT_FALSE(ct_scheme_for_layer(c, "model.layers.0.mlp.gate", "linear").has_value());
  EXPECT_FALSE(ct_scheme_for_layer(c, "model.layers.0.self_attn.o_proj", "linear").has_value());
}

}  // namespace
