#!/bin/bash
# The example Python harness end to end: export -> harness (numpy) -> check. Then a broken
# harness (nibble order swapped) must fail the check.
set -euo pipefail
qconf=$1 src=$2 py=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
"$qconf" export --golden-dir "$src/golden" \
  --filter 'npu_convert_weight_to_int4pack/*,npu_dynamic_quant/*mul_reciprocal*,npu_dynamic_quant/doc_example' "$work"
"$py" "$src/examples/python/harness.py" "$work/cases.json" "$work/results.json"
"$qconf" check --golden-dir "$src/golden" "$work/results.json" --html "$work/check.html" | tail -6
grep -q 'id="qconf-matrix"' "$work/check.html" || { echo "harness_test: no HTML report"; exit 1; }
# A harness with the nibble order swapped must be caught.
sed 's/words |= nib\[..., t\] << np.uint32(4 \* t)/words |= nib[..., t ^ 1] << np.uint32(4 * t)/' \
  "$src/examples/python/harness.py" > "$work/bad_harness.py"
grep -q 't ^ 1' "$work/bad_harness.py" || { echo "harness_test: could not build the broken harness"; exit 1; }
"$py" "$work/bad_harness.py" "$work/cases.json" "$work/bad_results.json"
if "$qconf" check --golden-dir "$src/golden" "$work/bad_results.json" \
     --html "$work/bad_check.html" > "$work/bad.log"; then
  echo "harness_test: a nibble-swapped harness passed"; exit 1
fi
grep -q "FAIL npu_convert_weight_to_int4pack/ascending_0_to_7" "$work/bad.log"
grep -q 'data-case="npu_convert_weight_to_int4pack/ascending_0_to_7"' "$work/bad_check.html"
echo "harness_test: OK"
