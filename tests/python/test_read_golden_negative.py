#!/usr/bin/python3
"""The reader test must be able to fail: corrupts copies of golden/ and asserts that
read_golden.py rejects each one, for the intended reason.

usage: /usr/bin/python3 tests/python/test_read_golden_negative.py GOLDEN_DIR SCHEMA_DIR
"""
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(HERE))
import read_golden  # noqa: E402

INT4PACK = "npu_convert_weight_to_int4pack.json"


def write_fixture(gd, name, doc, rehash=True):
    """Writes doc in the canonical form and (by default) updates its manifest hash, so
    that only the intended check can catch the corruption."""
    text = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    (gd / name).write_bytes(text)
    if rehash:
        mpath = gd / "MANIFEST.json"
        m = json.loads(mpath.read_bytes())
        m["files"][name] = hashlib.sha256(text).hexdigest()
        mpath.write_text(json.dumps(m, indent=1) + "\n")


def flip_hex(h, i=0):
    return h[:i] + "0123456789abcdef"[int(h[i], 16) ^ 1] + h[i + 1:]


def first_output(doc):
    return next(s for s in doc["cases"][0]["stages"] if s["output"])


# Each corruption: (name, mutate(gd, doc) on a copy of the int4pack fixture, expected substring).
def c_flip_output(gd, doc):
    t = first_output(doc)["tensor"]
    t["hex"] = flip_hex(t["hex"])
    write_fixture(gd, INT4PACK, doc)


def c_flip_intermediate(gd, doc):
    t = doc["cases"][1]["stages"][0]["tensor"]
    t["hex"] = flip_hex(t["hex"], 1)
    write_fixture(gd, INT4PACK, doc)


def c_unknown_case_field(gd, doc):
    doc["cases"][2]["expected_failure"] = True
    write_fixture(gd, INT4PACK, doc)


def c_unknown_tensor_field(gd, doc):
    doc["cases"][0]["inputs"]["weight"]["endian"] = "little"
    write_fixture(gd, INT4PACK, doc)


def c_manifest_mismatch(gd, doc):
    raw = (gd / INT4PACK).read_bytes()
    (gd / INT4PACK).write_bytes(raw.replace(b"\"comment\": \"", b"\"comment\": \" ", 1))


def c_unlisted_fixture(gd, doc):
    shutil.copy(gd / INT4PACK, gd / "stray.json")


def c_uppercase_hex(gd, doc):
    t = first_output(doc)["tensor"]
    t["hex"] = t["hex"].upper() if t["hex"].upper() != t["hex"] else "AB" + t["hex"][2:]
    write_fixture(gd, INT4PACK, doc)


def c_hex_length(gd, doc):
    t = doc["cases"][0]["inputs"]["weight"]
    t["hex"] = t["hex"][:-2]
    write_fixture(gd, INT4PACK, doc)


def c_unexplained_flag(gd, doc):
    doc["cases"][0]["flags"].append("NotANote")
    write_fixture(gd, INT4PACK, doc)


def c_duplicate_id(gd, doc):
    doc["cases"][1]["id"] = doc["cases"][0]["id"]
    write_fixture(gd, INT4PACK, doc)


def c_version(gd, doc):
    doc["version"] = 2
    write_fixture(gd, INT4PACK, doc)


def c_version_float(gd, doc):
    doc["version"] = 1.0
    write_fixture(gd, INT4PACK, doc)


def c_unknown_dtype(gd, doc):
    doc["cases"][0]["inputs"]["weight"]["dtype"] = "int4"
    write_fixture(gd, INT4PACK, doc)


def c_accept_without_mode(gd, doc):
    s = first_output(doc)
    s["check"]["accept"] = accept_set(s["tensor"]["dtype"], [0], [0, 2], 2)
    write_fixture(gd, INT4PACK, doc)


def c_accept_single_value(gd, doc):
    s = first_output(doc)
    s["check"] = {"mode": "reachable",
                  "accept": accept_set(s["tensor"]["dtype"], [0], [0, 1], 1)}
    write_fixture(gd, INT4PACK, doc)


def c_bounded_without_bound(gd, doc):
    s = first_output(doc)
    n = len(s["tensor"]["hex"]) // 8
    s["check"] = {"mode": "bounded",
                  "exact": {"dtype": "float64", "shape": s["tensor"]["shape"], "hex": "00" * 8 * n}}
    write_fixture(gd, INT4PACK, doc)


def c_empty_stages(gd, doc):
    doc["cases"][0]["stages"] = []
    write_fixture(gd, INT4PACK, doc)


def c_compared_out_of_range(gd, doc):
    s = first_output(doc)
    n = 1
    for d in s["tensor"]["shape"]:
        n *= d
    r = [0, n + 1]
    s["check"]["compared"] = {"dtype": "int64", "shape": [2], "hex": b"".join(
        x.to_bytes(8, "little", signed=True) for x in r).hex()}
    write_fixture(gd, INT4PACK, doc)


def accept_set(dtype, index, offsets, nvalues):
    size = {"int32": 4, "int8": 1}[dtype]
    i64 = lambda v: {"dtype": "int64", "shape": [len(v)],
                     "hex": b"".join(x.to_bytes(8, "little", signed=True) for x in v).hex()}
    return {"index": i64(index), "offsets": i64(offsets),
            "values": {"dtype": dtype, "shape": [nvalues], "hex": "00" * size * nvalues}}


CORRUPTIONS = [
    ("flip a hex digit in a stored output", c_flip_output, "int4pack cross-check"),
    ("flip a hex digit in a stored intermediate", c_flip_intermediate, "int4pack cross-check"),
    ("unknown field in a case", c_unknown_case_field, "'expected_failure' was unexpected"),
    ("unknown field in a tensor", c_unknown_tensor_field, "'endian' was unexpected"),
    ("fixture bytes changed, manifest not updated", c_manifest_mismatch, "does not match MANIFEST"),
    ("a golden/*.json not in the manifest", c_unlisted_fixture, "not listed in MANIFEST"),
    ("uppercase hex", c_uppercase_hex, "does not match '^([0-9a-f]{2})*$'"),
    ("hex length does not match the shape", c_hex_length, "hex digits, expected"),
    ("a flag without a note", c_unexplained_flag, "not explained"),
    ("duplicate case id", c_duplicate_id, "duplicate case id"),
    ("unknown format version", c_version, "1 was expected"),
    ("version 1.0 instead of 1", c_version_float, "expected the integer 1"),
    ("unknown dtype", c_unknown_dtype, "'int4' is not one of"),
    ("accept set on an exact check", c_accept_without_mode, "field not allowed here"),
    ("accept set with one value", c_accept_single_value, "at least two acceptable values"),
    ("bounded check without bound", c_bounded_without_bound, "'bound' is a required property"),
    ("no stages", c_empty_stages, "is too short"),
    ("compared range past numel", c_compared_out_of_range, "[begin, end) int64 pairs"),
]


def main(argv):
    if len(argv) != 3:
        print("usage: test_read_golden_negative.py GOLDEN_DIR SCHEMA_DIR", file=sys.stderr)
        return 2
    golden, schema = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    if not (golden / INT4PACK).exists():
        print(f"FAIL: {golden / INT4PACK} missing: nothing to corrupt", file=sys.stderr)
        return 1
    failures = 0
    with tempfile.TemporaryDirectory(prefix="qconf_golden_neg_") as tmp:
        def fresh(tag):
            gd = pathlib.Path(tmp) / tag
            shutil.copytree(golden, gd, ignore=shutil.ignore_patterns("schema"))
            return gd

        # The unmodified copy must pass, or every rejection below proves nothing.
        gd = fresh("baseline")
        write_fixture(gd, INT4PACK, json.loads((gd / INT4PACK).read_bytes()))  # canonical rewrite
        try:
            read_golden.run(gd, schema)
        except read_golden.GoldenError as e:
            print(f"FAIL: the unmodified copy is rejected: {e}", file=sys.stderr)
            return 1

        for k, (what, mutate, expect) in enumerate(CORRUPTIONS):
            gd = fresh(f"c{k}")
            mutate(gd, json.loads((gd / INT4PACK).read_bytes()))
            try:
                read_golden.run(gd, schema)
                print(f"FAIL: {what}: accepted")
                failures += 1
            except read_golden.GoldenError as e:
                if expect in str(e):
                    print(f"ok    {what}: {str(e).replace(str(gd) + '/', '')}")
                else:
                    print(f"FAIL: {what}: rejected for another reason "
                          f"(expected '{expect}'): {e}")
                    failures += 1

        # The command line: exit 1 and a message naming file, case and field.
        gd = fresh("cli")
        c_flip_output(gd, json.loads((gd / INT4PACK).read_bytes()))
        p = subprocess.run([sys.executable, str(HERE / "read_golden.py"), str(gd), str(schema)],
                           capture_output=True, text=True)
        if p.returncode != 1 or "case " not in p.stderr or "field stages." not in p.stderr:
            print(f"FAIL: command line: exit {p.returncode}, stderr {p.stderr!r}")
            failures += 1
        else:
            print("ok    command line exits 1 naming the file, case and field")

    n = len(CORRUPTIONS) + 1
    print(f"read_golden negative: {n - failures} of {n} corruptions rejected as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
