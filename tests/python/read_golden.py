#!/usr/bin/python3
"""An independent Python reader of qconf's golden fixtures (docs/golden-format.md).

usage: /usr/bin/python3 tests/python/read_golden.py GOLDEN_DIR SCHEMA_DIR

Checks, stopping at the first problem (exit 1, naming the file, case and field):
  - MANIFEST.json against manifest.schema.json; every golden/*.json is listed; every listed
    file's sha256 matches;
  - every fixture against golden.schema.json, plus the rules a schema cannot express (the
    same ones the C++ loader enforces): ids "<op>/<name>" unique across files, flags explained
    in notes, unique stage names, hex length = dtype size x numel, accept sets, bounded tensors;
  - every tensor decodes with numpy;
  - npu_convert_weight_to_int4pack: every case's stages recomputed from its input in numpy;
  - the reader of docs/golden-format.md ("Reading a fixture in Python") is the copy below,
    verbatim, and reads the same cases.
Uses only json, hashlib, numpy (and jsonschema for the schemas): no qconf code.
"""
import hashlib
import json
import pathlib
import re
import sys

try:
    import numpy as np
    import jsonschema
except ImportError as e:  # pragma: no cover
    sys.exit(f"read_golden: {e} (Debian: apt-get install python3-numpy python3-jsonschema; "
             "run with /usr/bin/python3)")

# ---- the reader of docs/golden-format.md ("Reading a fixture in Python") -------------------
NP = {"bool": "?", "int8": "i1", "uint8": "u1", "int16": "<i2", "uint16": "<u2",
      "int32": "<i4", "uint32": "<u4", "int64": "<i8", "uint64": "<u8",
      "float16": "<f2", "bfloat16": "<u2", "float32": "<f4", "float64": "<f8"}

def tensor(t):  # {"dtype", "shape", "hex"} -> read-only numpy array (bfloat16 as uint16 bits)
    dt = np.dtype(NP[t["dtype"]])
    raw = bytes.fromhex(t["hex"])
    assert len(raw) == dt.itemsize * int(np.prod(t["shape"], dtype=np.int64))
    return np.frombuffer(raw, dt).reshape(t["shape"])

def bf16_to_f32(u16):  # bfloat16 bits are the top half of a float32
    return (u16.astype(np.uint32) << 16).view(np.float32)

def load_golden(d):  # yields (case id, {input: array}, {stage: (array, check)})
    d = pathlib.Path(d)
    files = json.loads((d / "MANIFEST.json").read_bytes())["files"]
    for name, sha in sorted(files.items()):
        raw = (d / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == sha, f"{name}: sha256 mismatch"
        fx = json.loads(raw)
        assert fx["format"] == "qconf-golden" and fx["version"] == 1, name
        for c in fx["cases"]:
            yield (c["id"], {k: tensor(v) for k, v in c["inputs"].items()},
                   {s["name"]: (tensor(s["tensor"]), s["check"]) for s in c["stages"]})


# ---- strict checks -------------------------------------------------------------------------
class GoldenError(Exception):
    def __init__(self, file, case="", field="", what=""):
        super().__init__(f"{file}" + (f": case {case}" if case else "") +
                         (f": field {field}" if field else "") + f": {what}")


HEX = re.compile(r"[0-9a-f]*")


def strict_tensor(t, file, case, field):
    """tensor() plus the loader's checks, each failing with a located message."""
    shape = t["shape"]
    for d in shape:  # jsonschema's "integer" also accepts 2.0; the C++ loader does not
        if type(d) is not int or d < 0:
            raise GoldenError(file, case, field + ".shape", f"expected non-negative integers, "
                              f"found {d!r}")
    dt = np.dtype(NP[t["dtype"]])
    numel = 1
    for d in shape:
        numel *= d
    h = t["hex"]
    if len(h) != 2 * dt.itemsize * numel:
        raise GoldenError(file, case, field + ".hex", f"length {len(h)} hex digits, expected "
                          f"{2 * dt.itemsize * numel} for {t['dtype']}{shape}")
    if not HEX.fullmatch(h):  # bytes.fromhex alone would accept uppercase and whitespace
        raise GoldenError(file, case, field + ".hex", "malformed hex (expected lowercase 0-9a-f)")
    a = tensor(t)
    if a.nbytes != len(h) // 2:
        raise GoldenError(file, case, field, "decoded byte length differs from the hex")
    if t["dtype"] == "bfloat16":
        bf16_to_f32(a)  # the documented conversion must apply to every stored shape
    return a


def schema_error(validator, doc, file):
    err = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if err is None:
        return None
    path = list(err.absolute_path)
    case = ""
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        c = doc["cases"][path[1]]
        case = c.get("id", "") if isinstance(c, dict) and isinstance(c.get("id"), str) else ""
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    if err.schema is False:  # "accept" outside exact_ties/reachable, "exact"/"bound" outside bounded
        msg = "field not allowed here (accept: exact_ties/reachable only; exact, bound: bounded only)"
    else:
        msg = err.message if len(err.message) <= 200 else err.message[:200] + "..."
    return GoldenError(file, case, field, f"schema: {msg}")


def parse_json(raw, file):
    def no_constant(name):  # NaN/Infinity are not JSON (the C++ parser rejects them too)
        raise ValueError(f"non-JSON constant {name}")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise GoldenError(file, what=f"not valid JSON: {e}")


def check_case(fx, c, ci, file, ids, counts):
    cid = c["id"]
    op = fx["op"]
    if not cid.startswith(op + "/") or len(cid) == len(op) + 1:
        raise GoldenError(file, cid, f"cases[{ci}].id", f'expected "{op}/<name>"')
    if cid in ids:
        raise GoldenError(file, cid, "id", f"duplicate case id (also in {ids[cid]})")
    ids[cid] = file
    notes = fx.get("notes", {})
    for fl in c.get("flags", []):
        if fl not in notes:
            raise GoldenError(file, cid, "flags", f'flag "{fl}" is not explained in the notes')
    inputs = {k: strict_tensor(v, file, cid, f"inputs.{k}") for k, v in c["inputs"].items()}
    counts["tensors"] += len(inputs)
    stages = {}
    for si, s in enumerate(c["stages"]):
        w = f"stages[{si}]"
        if s["name"] in stages:
            raise GoldenError(file, cid, w + ".name", f'duplicate stage "{s["name"]}"')
        exp = strict_tensor(s["tensor"], file, cid, w + ".tensor")
        counts["tensors"] += 1
        ck = s["check"]
        if "accept" in ck:
            a = ck["accept"]
            wa = w + ".check.accept"
            idx = strict_tensor(a["index"], file, cid, wa + ".index")
            off = strict_tensor(a["offsets"], file, cid, wa + ".offsets")
            val = strict_tensor(a["values"], file, cid, wa + ".values")
            counts["tensors"] += 3
            if a["values"]["dtype"] != s["tensor"]["dtype"]:
                raise GoldenError(file, cid, wa + ".values",
                                  f'expected the stage dtype {s["tensor"]["dtype"]}')
            if len(off) != len(idx) + 1 or off[0] != 0 or off[-1] != len(val):
                raise GoldenError(file, cid, wa + ".offsets",
                                  "expected index.size+1 offsets from 0 to values.size")
            if len(idx) and (idx[0] < 0 or idx[-1] >= exp.size or np.any(np.diff(idx) <= 0)):
                raise GoldenError(file, cid, wa + ".index", "expected strictly increasing "
                                  f"element indices in [0, {exp.size})")
            if np.any(np.diff(off) < 2):
                raise GoldenError(file, cid, wa + ".offsets",
                                  "each listed element needs at least two acceptable values")
        if "compared" in ck:
            r = strict_tensor(ck["compared"], file, cid, f"{w}.check.compared")
            counts["tensors"] += 1
            if (r.dtype != np.dtype("<i8") or r.ndim != 1 or r.size == 0 or r.size % 2 or
                    r[0] < 0 or r[-1] > exp.size or np.any(np.diff(r) <= 0)):
                raise GoldenError(file, cid, f"{w}.check.compared", "expected sorted, disjoint, "
                                  f"non-empty [begin, end) int64 pairs within [0, {exp.size}]")
        for k in ("exact", "bound"):
            if k in ck:
                t = strict_tensor(ck[k], file, cid, f"{w}.check.{k}")
                counts["tensors"] += 1
                if t.shape != exp.shape:
                    raise GoldenError(file, cid, f"{w}.check.{k}",
                                      f"expected float64{list(exp.shape)}, got {list(t.shape)}")
        stages[s["name"]] = exp
    return inputs, stages


# ---- independent cross-check: npu_convert_weight_to_int4pack ------------------------------
def int4pack_numpy(w):
    """int4_values: low nibble as two's complement; packed: element 8j+t in bits [4t, 4t+3]."""
    nib = (w.astype(np.int64) & 0xF).astype(np.int8)
    int4 = np.where(nib >= 8, nib - 16, nib).astype(np.int8)
    u = (w.astype(np.int64) & 0xF).astype(np.uint32)
    u = u.reshape(w.shape[:-1] + (w.shape[-1] // 8, 8))
    words = np.bitwise_or.reduce(u << (4 * np.arange(8, dtype=np.uint32)), axis=-1)
    return {"int4_values": int4, "packed": words.astype(np.uint32).view(np.int32)}


def cross_check_int4pack(cid, inputs, stages, file):
    w = inputs.get("weight")
    if w is None or w.dtype != np.dtype("<i4") or w.ndim < 1 or w.shape[-1] % 8:
        raise GoldenError(file, cid, "inputs.weight", "expected int32 with last dim % 8 == 0")
    want = int4pack_numpy(w)
    if "packed" not in stages:
        raise GoldenError(file, cid, "stages", 'int4pack cross-check: no "packed" stage')
    for name, got in stages.items():
        if name not in want:
            raise GoldenError(file, cid, "stages", f'int4pack cross-check: unknown stage "{name}"')
        exp = want[name]
        if got.dtype != exp.dtype or got.shape != exp.shape:
            raise GoldenError(file, cid, f"stages.{name}", "int4pack cross-check: numpy gives "
                              f"{exp.dtype}{list(exp.shape)}, file has {got.dtype}{list(got.shape)}")
        bad = np.flatnonzero(got.reshape(-1) != exp.reshape(-1))
        if bad.size:
            i = int(bad[0])
            raise GoldenError(file, cid, f"stages.{name}", f"int4pack cross-check: {bad.size} "
                              f"elements differ, first at flat index {i}: numpy gives "
                              f"{exp.reshape(-1)[i]}, file has {got.reshape(-1)[i]}")


CROSS_CHECKS = {"npu_convert_weight_to_int4pack": cross_check_int4pack}


def check_doc_reader():
    """The doc's reader must be the one above, verbatim (when the doc is beside us)."""
    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "golden-format.md"
    if not doc.exists():
        return
    m = re.search(r"## Reading a fixture in Python.*?```python\n[^\n]*\n(.*?)```",
                  doc.read_text(encoding="utf-8"), re.S)
    here = pathlib.Path(__file__).read_text(encoding="utf-8")
    if not m or m.group(1) not in here:
        raise GoldenError(str(doc), field="Reading a fixture in Python",
                          what="the reader differs from tests/python/read_golden.py's copy")


# ---- driver --------------------------------------------------------------------------------
def run(golden_dir, schema_dir):
    """Checks a golden directory; returns (files, cases, tensors); raises GoldenError."""
    gd, sd = pathlib.Path(golden_dir), pathlib.Path(schema_dir)
    check_doc_reader()
    validators = {}
    for name in ("golden", "manifest"):
        p = sd / f"{name}.schema.json"
        try:
            schema = json.loads(p.read_text(encoding="utf-8"))
            jsonschema.Draft202012Validator.check_schema(schema)
        except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
            raise GoldenError(str(p), what=f"cannot use the schema: {e}")
        validators[name] = jsonschema.Draft202012Validator(schema)

    mpath = gd / "MANIFEST.json"
    try:
        manifest = parse_json(mpath.read_bytes(), str(mpath))
    except OSError as e:
        raise GoldenError(str(mpath), what=f"cannot read: {e}")
    if (err := schema_error(validators["manifest"], manifest, str(mpath))) is not None:
        raise err
    files = manifest["files"]
    for p in sorted(gd.glob("*.json")):
        if p.name != "MANIFEST.json" and p.name not in files:
            raise GoldenError(str(p), what="fixture not listed in MANIFEST.json "
                              "(run `qconf golden generate`)")

    ids, counts = {}, {"cases": 0, "tensors": 0}
    for name, sha in sorted(files.items()):
        path = gd / name
        file = str(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise GoldenError(file, what=f"cannot read: {e}")
        got = hashlib.sha256(raw).hexdigest()
        if got != sha:
            raise GoldenError(file, what=f"sha256 {got} does not match MANIFEST.json ({sha})")
        fx = parse_json(raw, file)
        if (err := schema_error(validators["golden"], fx, file)) is not None:
            raise err
        if type(fx["version"]) is not int:
            raise GoldenError(file, field="version", what=f"expected the integer 1, got {fx['version']!r}")
        if name != fx["op"] + ".json":
            raise GoldenError(file, field="op", what=f'file name must be "{fx["op"]}.json" '
                              "(as `qconf golden generate` writes it)")
        check = CROSS_CHECKS.get(fx["op"])
        for ci, c in enumerate(fx["cases"]):
            inputs, stages = check_case(fx, c, ci, file, ids, counts)
            if check:
                check(c["id"], inputs, stages, file)
            counts["cases"] += 1
    # The 25-line reader of docs/golden-format.md, verbatim above, must read the same cases.
    n_doc = sum(1 for _ in load_golden(gd))
    if n_doc != counts["cases"]:
        raise GoldenError(str(gd), what=f"the doc's reader found {n_doc} cases, expected "
                          f"{counts['cases']}")
    return len(files), counts["cases"], counts["tensors"]


def main(argv):
    if len(argv) != 3:
        print("usage: read_golden.py GOLDEN_DIR SCHEMA_DIR", file=sys.stderr)
        return 2
    try:
        n_files, n_cases, n_tensors = run(argv[1], argv[2])
    except GoldenError as e:
        print(f"read_golden: FAIL: {e}", file=sys.stderr)
        return 1
    print(f"read_golden: {n_files} files, {n_cases} cases, {n_tensors} tensors OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
