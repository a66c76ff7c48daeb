// qconf: the conformance runner's command line.
//   qconf list [ops|cases|variants]
//   qconf run --impl reference|optimized [--filter GLOB] [--json FILE] [--junit FILE]
//             [--html FILE] [--shard i/n]
//   qconf golden generate|verify
//   qconf describe CASE_ID
//   qconf identify-format PRODUCED [--input FILE] [--offset FILE]
//   qconf list schemes [--tensors]
//   qconf checkpoint DIR [--layer PREFIX [--run --out DIR --seed S --tokens M
//                         --tp-size N --tp-rank R --router-sigma-log2 S]]
// Exit codes: 0 success, 1 a FAIL/CRASH/TIMEOUT/UNIMPLEMENTED verdict or golden drift,
// 2 bad usage or a fixture that cannot be loaded. identify-format: 0 one encoding identified,
// 1 none, 3 ambiguous (several remain), 2 bad usage or unreadable input.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "qconf/conformance/checkpoint_cmd.h"
#include "qconf/conformance/exchange.h"
#include "qconf/conformance/golden.h"
#include "qconf/conformance/identify.h"
#include "qconf/conformance/identify_format.h"
#include "qconf/conformance/op.h"
#include "qconf/conformance/runner.h"

#ifndef QCONF_DEFAULT_GOLDEN_DIR
#define QCONF_DEFAULT_GOLDEN_DIR "golden"
#endif

namespace {

using namespace qconf;
using namespace qconf::conf;

std::string default_golden_dir() {
  if (const char* e = std::getenv("QCONF_GOLDEN_DIR")) return e;
  if (std::filesystem::exists("golden/MANIFEST.json")) return "golden";
  return QCONF_DEFAULT_GOLDEN_DIR;
}

void print_tensor_values(const Tensor& t, const char* indent) {
  const int64_t n = t.numel();
  const int64_t shown = std::min<int64_t>(n, 64);
  std::printf("%s", indent);
  for (int64_t i = 0; i < shown; ++i)
    std::printf("%s%s", i ? ", " : "", format_element(t, i).c_str());
  if (shown < n) std::printf(", ... (%lld more)", static_cast<long long>(n - shown));
  std::printf("\n");
}

int cmd_list(const std::string& what, const std::string& dir, const std::string& filter,
             bool tensors) {
  if (what == "schemes") {
    list_schemes(stdout, tensors);
    return 0;
  }
  if (what == "ops") {
    for (const OpDef* d : OpRegistry::instance().all())
      std::printf("%-40s %s\n", d->name.c_str(), d->optimized ? "" : "(reference only)");
    return 0;
  }
  if (what == "variants") {
    for (const OpDef* d : OpRegistry::instance().all()) {
      std::printf("%s\n", d->name.c_str());
      if (d->variants.empty()) std::printf("  (no variant axes: one reading)\n");
      for (const auto& v : d->variants) {
        std::string vals;
        for (const auto& s : v.values) vals += (vals.empty() ? "" : " | ") + s;
        std::printf("  %s = %s\n      %s\n", v.param.c_str(), vals.c_str(), v.description.c_str());
      }
    }
    return 0;
  }
  if (what == "cases") {
    RunOptions o;
    o.filter = filter;
    auto fixtures = load_golden_dir(dir);
    for (const Case* c : select_cases(fixtures, o)) {
      std::string flags;
      for (const auto& f : c->flags) flags += (flags.empty() ? "" : ",") + f;
      std::printf("%-56s %s\n", c->id.c_str(), flags.c_str());
    }
    return 0;
  }
  std::fprintf(stderr, "qconf list: expected ops, cases, variants or schemes, got \"%s\"\n",
               what.c_str());
  return 2;
}

int cmd_describe(const std::string& id, const std::string& dir) {
  auto fixtures = load_golden_dir(dir);
  for (const Fixture& f : fixtures)
    for (const Case& c : f.cases) {
      if (c.id != id) continue;
      std::printf("case    %s\nop      %s\nfile    %s\n", c.id.c_str(), c.op.c_str(),
                  c.file.c_str());
      if (!c.comment.empty()) std::printf("comment %s\n", c.comment.c_str());
      std::printf("params  %s\n", c.params.dump().c_str());
      std::printf("flags:\n");
      for (const auto& fl : c.flags) {
        const Note& n = f.notes.at(fl);
        std::printf("  %s [%s]\n    tests:  %s\n", fl.c_str(), n.bug_type.c_str(),
                    n.description.c_str());
        if (!n.effect.empty()) std::printf("    effect: %s\n", n.effect.c_str());
      }
      std::printf("inputs:\n");
      for (const auto& [name, t] : c.inputs) {
        std::printf("  %s: %s\n", name.c_str(), t.describe().c_str());
        print_tensor_values(t, "    ");
      }
      std::printf("stages:\n");
      for (const Stage& s : c.stages) {
        std::printf("  %s%s: %s, check %s%s\n", s.name.c_str(), s.output ? "" : " (intermediate)",
                    s.expected.describe().c_str(),
                    std::string(check_mode_name(s.check.mode)).c_str(),
                    s.check.accept.empty() ? ""
                                           : (" (" + std::to_string(s.check.accept.index.size()) +
                                              " elements with several acceptable values)")
                                                 .c_str());
        print_tensor_values(s.expected, "    ");
      }
      if (!f.sources.empty()) {
        std::printf("sources:\n");
        for (const auto& s : f.sources) std::printf("  %s\n", s.c_str());
      }
      return 0;
    }
  std::fprintf(stderr, "qconf describe: no case \"%s\" in %s (see `qconf list cases`)\n",
               id.c_str(), dir.c_str());
  return 2;
}

// The command line, for the HTML report's header.
std::string command_line(int argc, char** argv) {
  std::string s = "qconf";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

// Writes the HTML report when asked for; names the golden set by its MANIFEST.json hash.
void write_html(const std::string& path, const std::vector<CaseResult>& results,
                const std::string& impl, const std::string& golden_dir,
                const std::string& command) {
  if (path.empty()) return;
  HtmlReportInfo info;
  info.implementation = impl;
  info.golden_dir = golden_dir;
  info.command = command;
  info.golden_set = sha256_hex(read_file(golden_dir + "/MANIFEST.json"));
  write_file(path, html_report(results, info));
}

int cmd_run(const std::string& impl_name, RunOptions o, const std::string& json_path,
            const std::string& junit_path, const std::string& html_path, const std::string& command,
            bool quiet, int isolate) {
  Implementation impl = builtin_implementation(impl_name);
  if (isolate > 0) impl.isolate = true;
  if (isolate < 0) impl.isolate = false;
  auto fixtures = load_golden_dir(o.golden_dir);
  auto cases = select_cases(fixtures, o);
  if (cases.empty()) {
    std::fprintf(stderr, "qconf run: no case matches filter \"%s\"%s\n", o.filter.c_str(),
                 o.shard_count > 1 ? " in this shard" : "");
    if (o.shard_count <= 1) return 2;  // a filter that selects nothing is a mistake
  }
  auto results = run_all(cases, impl, o);
  if (!quiet || any_failure(results)) print_console_report(results, impl.name, stdout);
  if (!json_path.empty()) write_file(json_path, json_report(results, impl.name));
  if (!junit_path.empty()) write_file(junit_path, junit_report(results, impl.name));
  write_html(html_path, results, impl.name, o.golden_dir, command);
  return any_failure(results) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"qconf: numerical reference and conformance suite for quantized LLM kernels"};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--golden-dir) may follow the subcommand
  std::string golden_dir = default_golden_dir();
  app.add_option("--golden-dir", golden_dir, "directory holding the fixtures and MANIFEST.json");

  auto* list = app.add_subcommand("list", "list ops, cases or variants");
  std::string list_what = "ops", list_filter;
  list->add_option("what", list_what, "ops | cases | variants | schemes")
      ->check(CLI::IsMember({"ops", "cases", "variants", "schemes"}));
  list->add_option("--filter", list_filter, "comma-separated globs over case ids");
  bool list_tensors = false;
  list->add_flag("--tensors", list_tensors, "schemes: also the checkpoint tensors each declares");

  auto* ckpt_cmd = app.add_subcommand(
      "checkpoint",
      "validate a quantized checkpoint directory (ModelSlim or compressed-tensors), list the "
      "scheme of every layer, run a layer's pipeline on seeded activations. Exit 0 ok, 1 "
      "problems, 2 usage, 3 pipeline not implemented yet");
  std::string ckpt_dir, ckpt_skip = "vllm_ascend_prefix", ckpt_pdt;
  ckpt::CheckpointOptions ckpt_opts;
  CheckpointRunOptions ckpt_run;
  ckpt_cmd->add_option("dir", ckpt_dir, "checkpoint directory")->required();
  ckpt_cmd->add_option("--layer", ckpt_run.layer, "a layer prefix from the report");
  ckpt_cmd->add_flag("--run", ckpt_run.run, "run the layer's pipeline and write a fixture");
  ckpt_cmd->add_option("--seed", ckpt_run.seed, "seed of the activations (default 0)");
  ckpt_cmd->add_option("--tokens", ckpt_run.tokens, "rows of activations (default 4)");
  ckpt_cmd->add_option("--tp-size", ckpt_run.tp_size,
                       "--run: produce the vectors of one tensor-parallel rank of this many "
                       "(default 1)");
  ckpt_cmd->add_option("--tp-rank", ckpt_run.tp_rank, "--run: that rank (default 0)");
  ckpt_cmd->add_option("--router-sigma-log2", ckpt_run.router_sigma_log2,
                       "MoE layers: router_logits ~ N(0, (2^S)^2) (default 0: N(0, 1))");
  ckpt_cmd->add_option("--out", ckpt_run.out_dir, "fixture directory for `qconf run --golden-dir`");
  ckpt_cmd->add_option("--skip-rule", ckpt_skip, "vllm_ascend_prefix (default) | exact_component")
      ->check(CLI::IsMember({"vllm_ascend_prefix", "exact_component"}));
  ckpt_cmd->add_option("--params-dtype", ckpt_pdt, "bfloat16 | float16 (default: config.json)")
      ->check(CLI::IsMember({"bfloat16", "float16"}));
  ckpt_cmd->add_option("--tp", ckpt_opts.tp, "tensor-parallel size for shape rules (default 1)");
  ckpt_cmd->add_option("--model-type", ckpt_opts.model_type,
                       "model_type for the packed-module mapping (default: config.json)");

  auto* run = app.add_subcommand("run", "run golden cases through an implementation");
  std::string impl = "optimized", json_path, junit_path, html_path, shard;
  RunOptions ro;
  bool quiet = false, no_progress = false;
  run->add_option("--impl", impl, "reference | optimized | plugin:PATH.so")->required();
  bool isolate = false, no_isolate = false;
  run->add_flag("--isolate", isolate, "run cases in child processes (default for plugins)");
  run->add_flag("--no-isolate", no_isolate, "run plugins in-process (easier to debug)");
  run->add_option("--timeout", ro.timeout_s, "seconds per case when isolated (default 60)");
  run->add_option("--filter", ro.filter, "comma-separated globs over case ids, e.g. 'npu_*/rand*'");
  run->add_option("--json", json_path, "write a JSON report");
  run->add_option("--junit", junit_path, "write a JUnit XML report");
  run->add_option("--html", html_path,
                  "write a self-contained HTML report (verdict matrix, failures, bound charts)");
  run->add_option("--shard", shard, "run shard i of n (i/n); GTEST_SHARD_INDEX/TOTAL also work");
  run->add_flag("--quiet", quiet, "print only failures");
  run->add_flag("--no-progress", no_progress, "no progress line on a terminal");

  auto* golden = app.add_subcommand("golden", "generate or verify the golden fixtures");
  golden->require_subcommand(1);
  auto* gen = golden->add_subcommand("generate", "regenerate golden/ from the reference");
  auto* ver = golden->add_subcommand("verify", "regenerate in memory and fail on any drift");

  auto* exp = app.add_subcommand("export", "write the inputs of selected cases for a harness");
  std::string export_filter, export_dir;
  exp->add_option("--filter", export_filter, "comma-separated globs over case ids");
  exp->add_option("dir", export_dir, "output directory (cases.json is written there)")->required();

  auto* check = app.add_subcommand("check", "check a results file written by any harness");
  std::string results_path, check_json, check_junit, check_html, check_filter;
  bool check_all = false;
  check->add_option("results", results_path, "a qconf-results JSON file")->required();
  check->add_option("--json", check_json, "write a JSON report");
  check->add_option("--junit", check_junit, "write a JUnit XML report");
  check->add_option("--html", check_html, "write a self-contained HTML report");
  check->add_option("--filter", check_filter,
                    "cases expected in the results (default: all it holds)");
  check->add_flag("--require-all", check_all,
                  "cases selected by --filter but absent from the results fail (UNIMPLEMENTED)");

  auto* ident = app.add_subcommand("identify", "which documented variant each op follows");
  std::string ident_impl, ident_filter;
  ident->add_option("--impl", ident_impl, "reference | optimized | plugin:PATH.so")->required();
  ident->add_option("--filter", ident_filter, "comma-separated globs over case ids");

  auto* fmt =
      app.add_subcommand("identify-format",
                         "which documented packing / scale encoding produced a tensor (exit 0 "
                         "identified, 1 none, 3 ambiguous, 2 usage)");
  std::string fmt_produced, fmt_input, fmt_offset;
  std::string fmt_pdtype, fmt_pshape, fmt_idtype, fmt_ishape;
  fmt->add_option("produced", fmt_produced,
                  "the packed int32 words or int64 scale words (.json tensor, .npy or raw .bin)")
      ->required();
  fmt->add_option("--input", fmt_input,
                  "the logical input: int weight (int8/int32), W4A16 compressed-tensors words, "
                  "or float scales; without it only consistency with the words is checked");
  fmt->add_option("--offset", fmt_offset,
                  "float32 offsets given to npu_trans_quant_param (raw files: float32)");
  fmt->add_option("--produced-dtype", fmt_pdtype, "dtype of a raw PRODUCED file (e.g. int32)");
  fmt->add_option("--produced-shape", fmt_pshape, "shape of a raw PRODUCED file, e.g. 4,2");
  fmt->add_option("--input-dtype", fmt_idtype, "dtype of a raw --input file (e.g. int8)");
  fmt->add_option("--input-shape", fmt_ishape, "shape of a raw --input file, e.g. 4,16");

  auto* describe = app.add_subcommand("describe", "print a case, its flags and what they test");
  std::string case_id;
  describe->add_option("case_id", case_id, "a case id from `qconf list cases`")->required();

  CLI11_PARSE(app, argc, argv);

  try {
    if (*list) return cmd_list(list_what, golden_dir, list_filter, list_tensors);
    if (*ckpt_cmd) {
      ckpt_opts.skip_rule = schemes::parse_skip_rule(ckpt_skip);
      if (!ckpt_pdt.empty()) ckpt_opts.params_dtype = ckpt_pdt == "float16" ? "F16" : "BF16";
      // --tp-size also sets the validator's tp (its shape rules, e.g. W4A8's 16 / tp) unless
      // --tp is above 1.
      if (ckpt_run.tp_size > 1 && ckpt_opts.tp == 1) ckpt_opts.tp = ckpt_run.tp_size;
      return checkpoint_command(ckpt_dir, ckpt_opts, ckpt_run, stdout, stderr);
    }
    if (*describe) return cmd_describe(case_id, golden_dir);
    if (*gen) {
      for (const auto& f : golden_generate(golden_dir)) std::printf("wrote %s\n", f.c_str());
      std::printf("wrote %s/MANIFEST.json\n", golden_dir.c_str());
      return 0;
    }
    if (*ver) {
      auto drift = golden_verify(golden_dir);
      for (const auto& d : drift) std::printf("DRIFT %s\n", d.c_str());
      std::printf("golden verify: %s (%zu drift%s)\n", drift.empty() ? "OK" : "FAIL", drift.size(),
                  drift.size() == 1 ? "" : "s");
      return drift.empty() ? 0 : 1;
    }
    if (*ident) {
      auto fixtures = load_golden_dir(golden_dir);
      RunOptions o;
      o.filter = ident_filter;
      o.golden_dir = golden_dir;
      Implementation impl = builtin_implementation(ident_impl);
      std::fputs(identity_report(identify(fixtures, impl, o)).c_str(), stdout);
      return 0;
    }
    if (*fmt) {
      auto opt = [](const std::string& s) {
        return s.empty() ? std::nullopt : std::optional<std::string>(s);
      };
      std::optional<Tensor> input, offset;
      try {
        const Tensor produced = load_tensor_file(fmt_produced, opt(fmt_pdtype), opt(fmt_pshape));
        if (!fmt_input.empty())
          input = load_tensor_file(fmt_input, opt(fmt_idtype), opt(fmt_ishape));
        else if (!fmt_idtype.empty() || !fmt_ishape.empty())
          throw std::invalid_argument("--input-dtype/--input-shape given without --input");
        if (!fmt_offset.empty()) {
          const bool raw = fmt_offset.find(".json") == std::string::npos &&
                           fmt_offset.find(".npy") == std::string::npos;
          offset = load_tensor_file(fmt_offset, raw ? opt("float32") : std::nullopt, std::nullopt);
        }
        const FormatIdentification id =
            identify_format(produced, input ? &*input : nullptr, offset ? &*offset : nullptr);
        std::fputs(format_identification_report(id).c_str(), stdout);
        return static_cast<int>(id.outcome);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "qconf identify-format: %s\n", e.what());
        return 2;
      }
    }
    if (*exp) {
      auto fixtures = load_golden_dir(golden_dir);
      RunOptions o;
      o.filter = export_filter;
      auto cases = select_cases(fixtures, o);
      if (cases.empty()) {
        std::fprintf(stderr, "qconf export: no case matches filter \"%s\"\n",
                     export_filter.c_str());
        return 2;
      }
      std::printf("wrote %zu cases to %s\n", cases.size(), export_cases(cases, export_dir).c_str());
      return 0;
    }
    if (*check) {
      auto fixtures = load_golden_dir(golden_dir);
      auto results = std::make_shared<ResultsFile>(load_results(results_path));
      if (auto unknown = unknown_result_ids(*results, fixtures); !unknown.empty()) {
        std::fprintf(stderr, "qconf check: %s: result for unknown case \"%s\" (%zu unknown)\n",
                     results_path.c_str(), unknown[0].c_str(), unknown.size());
        return 2;
      }
      RunOptions o;
      o.filter = check_filter;
      o.golden_dir = golden_dir;
      std::vector<const Case*> cases;
      for (const Case* c : select_cases(fixtures, o))
        if (check_all || results->entries.count(c->id)) cases.push_back(c);
      Implementation impl = results_implementation(results);
      auto res = run_all(cases, impl, o);
      if (check_all)
        for (auto& r : res)
          if (r.verdict == Verdict::kSkipped) {
            r.verdict = Verdict::kUnimplemented;
            r.message = "required by --require-all, absent from the results";
          }
      const std::string label =
          results->implementation.empty() ? impl.name : results->implementation;
      print_console_report(res, label, stdout);
      if (!check_json.empty()) write_file(check_json, json_report(res, label));
      if (!check_junit.empty()) write_file(check_junit, junit_report(res, label));
      write_html(check_html, res, label, golden_dir, command_line(argc, argv));
      if (res.empty()) {
        std::fprintf(stderr, "qconf check: no case checked\n");
        return 2;
      }
      return any_failure(res) ? 1 : 0;
    }
    if (*run) {
      ro.golden_dir = golden_dir;
      ro.progress = !no_progress;
      shard_from_env(ro);
      if (!shard.empty()) parse_shard(shard, ro);
      return cmd_run(impl, ro, json_path, junit_path, html_path, command_line(argc, argv), quiet,
                     isolate      ? 1
                     : no_isolate ? -1
                                  : 0);
    }
  } catch (const FixtureError& e) {
    std::fprintf(stderr, "qconf: fixture error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qconf: error: %s\n", e.what());
    return 2;
  }
  return 2;
}
