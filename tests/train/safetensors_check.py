#!/usr/bin/env python3
"""Independent reader of the safetensors format (github.com/huggingface/safetensors, README "Format"),
standard library only: used by the train tests when the `safetensors` package cannot be installed.
Checks the rules the reference loader enforces and prints a JSON summary: tensor names, dtypes, shapes
and, for F32/F64 tensors, the sum and first value of each.
usage: safetensors_check.py FILE"""
import json
import math
import struct
import sys

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
         "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}


def fail(msg):
    print("INVALID: " + msg)
    sys.exit(1)


def main(path):
    # the reference loader tries the real package first: use it when it happens to be installed
    try:
        from safetensors import safe_open  # noqa: F401
        have_pkg = True
    except ImportError:
        have_pkg = False
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail("header length %d beyond the file" % n)
    raw = blob[8:8 + n]
    if not raw.startswith(b"{"):
        fail("header does not start with '{'")
    header = json.loads(raw.decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            fail("__metadata__ must map strings to strings")
    spans = []
    out = {"metadata": meta, "tensors": {}, "checked_with_package": have_pkg}
    for name, t in header.items():
        if set(t.keys()) != {"dtype", "shape", "data_offsets"}:
            fail("tensor %s has keys %s" % (name, sorted(t.keys())))
        dtype, shape, (b, e) = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in SIZES:
            fail("tensor %s: unknown dtype %s" % (name, dtype))
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                fail("tensor %s: bad shape %s" % (name, shape))
            count *= d
        if not (0 <= b <= e <= len(data)) or e - b != count * SIZES[dtype]:
            fail("tensor %s: offsets %s do not match shape %s of %s" % (name, [b, e], shape, dtype))
        spans.append((b, e))
        info = {"dtype": dtype, "shape": shape}
        if dtype in ("F32", "F64"):
            fmt = "<%d%s" % (count, "f" if dtype == "F32" else "d")
            vals = struct.unpack(fmt, data[b:e])
            info["sum"] = math.fsum(vals)
            info["first"] = vals[0] if vals else None
        out["tensors"][name] = info
    at = 0
    for b, e in sorted(spans):
        if b != at:
            fail("gap or overlap at byte %d" % at)
        at = e
    if at != len(data):
        fail("%d trailing bytes after the last tensor" % (len(data) - at))
    if have_pkg:
        from safetensors.numpy import load_file
        loaded = load_file(path)
        if sorted(loaded.keys()) != sorted(out["tensors"].keys()):
            fail("the safetensors package sees other tensors")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
