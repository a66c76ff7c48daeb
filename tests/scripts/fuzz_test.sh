#!/bin/bash
# libFuzzer on the two parsers that read untrusted files: golden fixtures (fixture_from_text)
# and `qconf check` results files (results_from_text). Builds a small clang build of just those
# parsers with -fsanitize=fuzzer,address,undefined (the main build uses g++), replays the
# committed regression vectors (tests/fuzz/regressions/), then fuzzes each target for a bounded
# time from a seed corpus made of the committed goldens (cut to two cases each) and results files
# derived from them. Any crash, sanitizer report, leak or unexpected exception fails the test;
# libFuzzer writes the input to WORK/artifacts/. A new finding: fix the parser, then commit the
# input under tests/fuzz/regressions/<target>/ with a .expect file (the error message it must
# give), which the g++ unit test tests/conformance/fuzz_regressions_test.cpp also replays.
#
# usage: fuzz_test.sh SOURCE_DIR WORK_DIR [SECONDS_PER_TARGET (default 20)] [PYTHON3]
set -euo pipefail
src=$1
work=$2
secs=${3:-20}
py=${4:-/usr/bin/python3}
cxx=${QCONF_FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || { echo "fuzz_test: $cxx not installed (make deps installs clang)"; exit 1; }
mkdir -p "$work/obj" "$work/artifacts"

common=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
        -fno-sanitize-recover=undefined -I"$src/reference/include" -I"$src/conformance/include"
        -DQCONF_FUZZ_GOLDEN_DIR="\"$src/golden\"")
# libFuzzer itself ships in libclang-rt-14-dev on Debian bookworm (make deps installs it).
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  > "$work/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer "$work/probe.cpp" -o "$work/probe" 2>"$work/probe.log"; then
  cat "$work/probe.log"
  echo "fuzz_test: $cxx cannot link libFuzzer (make deps installs libclang-rt-14-dev)"; exit 1
fi

# Only the parsers and what they link; objects are rebuilt when their source changes.
t0=$(date +%s)
sources=(conformance/src/fixture.cpp conformance/src/exchange.cpp reference/src/tensor.cpp
         conformance/src/op.cpp)
pids=()
for s in "${sources[@]}"; do
  o="$work/obj/$(basename "$s" .cpp).o"
  if [ ! -e "$o" ] || [ "$src/$s" -nt "$o" ] || [ -n "$(find "$src/reference/include" \
       "$src/conformance/include" -newer "$o" -name '*.h' | head -1)" ]; then
    "$cxx" "${common[@]}" -fsanitize=fuzzer-no-link -c "$src/$s" -o "$o" &
    pids+=($!)
  fi
  if [ ${#pids[@]} -ge 2 ]; then  # two compilers at a time (the machine has two cores)
    for p in "${pids[@]}"; do wait "$p"; done
    pids=()
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
objs=("$work"/obj/{tensor,fixture,op,exchange}.o)
pids=()
for t in fixture results; do
  "$cxx" "${common[@]}" -fsanitize=fuzzer -I"$src/tests/fuzz" "$src/tests/fuzz/fuzz_$t.cpp" \
    "${objs[@]}" -lcrypto -o "$work/fuzz_$t" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "fuzz_test: built in $(( $(date +%s) - t0 )) s"

# Seeds: every golden fixture cut to its first two cases, and results files answering them.
rm -rf "$work/seeds" && mkdir -p "$work/seeds/fixture" "$work/seeds/results"
"$py" - "$src/golden" "$work/seeds" <<'PY'
import json, os, sys
golden, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(golden)):
    if not name.endswith(".json") or name == "MANIFEST.json":
        continue
    f = json.load(open(os.path.join(golden, name)))
    f["cases"] = f["cases"][:2]
    json.dump(f, open(os.path.join(out, "fixture", name), "w"), indent=1)
    results = [{"id": c["id"], "status": "ok",
                "outputs": {s["name"]: s["tensor"] for s in c["stages"]}} for c in f["cases"]]
    results.append({"id": f["cases"][0]["id"], "status": "unimplemented", "message": "x"})
    doc = {"format": "qconf-results", "version": 1, "implementation": "seed", "results": results}
    json.dump(doc, open(os.path.join(out, "results", name), "w"), indent=1)
PY

status=0
for t in fixture results; do
  reg=("$src"/tests/fuzz/regressions/$t/*.json)
  if [ -e "${reg[0]}" ]; then
    "$work/fuzz_$t" "${reg[@]}" >"$work/replay_$t.log" 2>&1 || {
      tail -40 "$work/replay_$t.log"; echo "fuzz_test: a $t regression vector fails again"; status=1; }
  fi
  rm -rf "$work/corpus_$t" && cp -r "$work/seeds/$t" "$work/corpus_$t"
  if "$work/fuzz_$t" "$work/corpus_$t" -dict="$src/tests/fuzz/json.dict" \
       -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/$t-" >"$work/fuzz_$t.log" 2>&1; then
    echo "fuzz_test: $t: $(grep -E '^stat::number_of_executed_units' "$work/fuzz_$t.log" | \
      awk '{print $2}') inputs in ${secs} s, no finding"
  else
    tail -60 "$work/fuzz_$t.log"
    echo "fuzz_test: $t: FINDING, input saved under $work/artifacts/ (see the log above)"
    status=1
  fi
done
exit $status
