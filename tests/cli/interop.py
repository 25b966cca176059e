"""interop.py — the NumPy side of tests/cli/test-interop.sh.

    interop.py gen DIR      write the input files and DIR/cases (one per line)
    interop.py check DIR    check the outputs dm-info wrote; one line per check:
                            "ok NAME" or "FAIL NAME: what differed"

Safetensors is read and written here with a few lines of json and struct,
independently of libdm, so that the files are checked by another reader.
"""
import io
import json
import os
import struct
import sys

import numpy as np

DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]
NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
      "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
META = {"dm.kind": "data", "note": "quote \" backslash \\ tab \t é ✓",
        "empty": ""}


def awkward(dt):
    """Values at the edges of each dtype: signed zeros, subnormals, extremes,
    infinities, NaNs with payloads (quiet and signalling)."""
    if dt == "F64":
        bits = [0, 1 << 63, 1, (1 << 63) | 0x000fffffffffffff,
                0x7fefffffffffffff, 0xfff0000000000000, 0x7ff0000000000000,
                0x7ff0000000000001, 0xfff8000000000123, 0x3fd5555555555555,
                0x0010000000000000, 0xbff0000000000000]
        return np.array(bits, dtype="<u8").view("<f8").reshape(3, 4)
    if dt == "F32":
        bits = [0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0xff800000,
                0x7f800000, 0x7f800001, 0xffc00123, 0x3eaaaaab, 0x00800000,
                0xbf800000]
        return np.array(bits, dtype="<u4").view("<f4").reshape(3, 4)
    if dt == "F16":
        bits = [0, 0x8000, 1, 0x83ff, 0x7bff, 0xfc00, 0x7c00, 0x7c01,
                0xfe23, 0x3555, 0x0400, 0xbc00]
        return np.array(bits, dtype="<u2").view("<f2").reshape(3, 4)
    if dt == "BF16":   # bit patterns, kept as uint16
        bits = [0, 0x8000, 1, 0x807f, 0x7f7f, 0xff80, 0x7f80, 0x7f81,
                0xffc3, 0x3eab, 0x0080, 0xbf80]
        return np.array(bits, dtype="<u2").reshape(3, 4)
    if dt == "BOOL":
        return np.array([True, False, False, True, True, False],
                        dtype="?").reshape(2, 3)
    info = np.iinfo(NP[dt])
    v = [info.min, info.max, 0, 1, -1 if info.min < 0 else 2, info.max - 1,
         info.min + 1, 7]
    if dt == "I64":
        v += [2**53 + 1, -(2**53 + 1), 2**62 + 1, -(2**62) - 3]
    else:
        v += [3, 5, 9, 11]
    return np.array(v, dtype=NP[dt]).reshape(2, 6)


def st_write(path, tensors, meta):
    """tensors: list of (name, dtype, array)."""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dt, a in tensors:
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, ensure_ascii=False).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    """-> (dict name -> (dtype, shape, bytes), metadata dict or None)."""
    with open(path, "rb") as f:
        d = f.read()
    n = struct.unpack("<Q", d[:8])[0]
    h = json.loads(d[8:8 + n].decode())
    base, meta, out = 8 + n, h.pop("__metadata__", None), {}
    ends = []
    for name, e in h.items():
        s, t = e["data_offsets"]
        out[name] = (e["dtype"], list(e["shape"]), d[base + s:base + t])
        ends.append(t)
    if max(ends, default=0) != len(d) - base:
        raise ValueError("data section is %d bytes, tensors end at %d"
                         % (len(d) - base, max(ends, default=0)))
    return out, meta


def inputs():
    """The safetensors inputs: name -> list of (tensor, dtype, array)."""
    files = {}
    for dt in DTYPES:
        a = awkward(dt)
        scalar = a.reshape(-1)[4:5].reshape(())
        files["st_" + dt] = [("w.a", dt, a), ("w.b", dt, scalar)]
    return files


def npy_inputs():
    """np.save inputs: name -> (array, version or None)."""
    r = np.arange(24)
    return {
        "npy_f8": (np.array([-0.0, 1e-310, np.inf, 1.5]), None),
        "npy_f4_2d": ((r.reshape(4, 6) / 7).astype("<f4"), None),
        "npy_f2": (awkward("F16"), None),
        "npy_i8": (awkward("I64"), None),
        "npy_i2": (awkward("I16"), None),
        "npy_i1": (awkward("I8"), None),
        "npy_u1": (awkward("U8"), None),
        "npy_b1": (awkward("BOOL"), None),
        "npy_be_f8": (awkward("F64").astype(">f8"), None),
        "npy_be_i4": (awkward("I32").astype(">i4"), None),
        "npy_be_f2": (awkward("F16").astype(">f2"), None),
        "npy_fortran_2d": (np.asfortranarray(r.reshape(4, 6).astype("<i4")),
                           None),
        "npy_fortran_3d": (np.asfortranarray(r.reshape(2, 3, 4) * 1.25),
                           None),
        "npy_fortran_be": (np.asfortranarray(
            r.reshape(3, 8).astype(">i8") - 5), None),
        "npy_scalar": (np.array(2.5, dtype="<f4"), None),
        "npy_empty": (np.zeros((3, 0), dtype="<i2"), None),
        "npy_v2": (r.astype("<i4"), (2, 0)),
        "npy_v3": (r.reshape(6, 4).astype("<f8"), (3, 0)),
    }


NPY_TO_ST = {"f8": "F64", "f4": "F32", "f2": "F16", "i8": "I64", "i4": "I32",
             "i2": "I16", "i1": "I8", "u1": "U8", "b1": "BOOL"}


def gen(d):
    cases = []
    for name, ts in inputs().items():
        st_write(os.path.join(d, name + ".st"), ts, META)
        cases.append("st " + name)
        dt = ts[0][1]
        # one tensor for .npy output
        st_write(os.path.join(d, name + ".one.st"), ts[:1], None)
        cases.append(("stnpy_bad " if dt == "BF16" else "stnpy ") + name)
    for name, (a, version) in npy_inputs().items():
        p = os.path.join(d, name + ".npy")
        if version is None:
            np.save(p, a)
        else:
            with open(p, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
        cases.append("npy " + name)
    with open(os.path.join(d, "cases"), "w") as f:
        f.write("\n".join(cases) + "\n")


def as_f64(dt, a):
    if dt == "BF16":
        w = (a.reshape(-1).astype("<u4") << 16).view("<f4")
        return w.astype("<f8").reshape(a.shape)
    return a.astype("<f8")


def same_f64(got, want):
    """Bit-identical, except that a NaN need only be a NaN of the same sign
    (converting a signalling NaN may quiet it)."""
    g = np.frombuffer(got, dtype="<f8")
    w = want.reshape(-1)
    if g.shape != w.shape:
        return "%d values, want %d" % (g.size, w.size)
    gb, wb = g.view("<u8"), w.view("<u8")
    nan = np.isnan(w)
    bad = ~nan & (gb != wb)
    bad |= nan & ~(np.isnan(g) & (np.signbit(g) == np.signbit(w)))
    if bad.any():
        i = int(np.argmax(bad))
        return "value %d: got %r (0x%016x), want %r (0x%016x)" % (
            i, g[i], gb[i], w[i], wb[i])
    return None


class Checker:
    def __init__(self):
        self.lines = []

    def check(self, name, fn):
        try:
            why = fn()
        except Exception as e:  # a malformed output is a failure, not a crash
            why = "%s: %s" % (type(e).__name__, e)
        self.lines.append("ok " + name if why is None
                          else "FAIL %s: %s" % (name, why))


def check_st_copy(d, name, ts):
    out, meta = st_read(os.path.join(d, name + ".out.st"))
    if meta != META:
        return "metadata %r, want %r" % (meta, META)
    if sorted(out) != sorted(t[0] for t in ts):
        return "tensors %r" % sorted(out)
    for tname, dt, a in ts:
        gdt, shape, b = out[tname]
        if gdt != dt or shape != list(a.shape):
            return "%s: %s %r, want %s %r" % (tname, gdt, shape, dt,
                                              list(a.shape))
        if b != np.ascontiguousarray(a).tobytes():
            return "%s: bytes differ" % tname
    return None


def check_st_f64(d, name, ts):
    out, meta = st_read(os.path.join(d, name + ".f64.st"))
    if meta != META:
        return "metadata %r, want %r" % (meta, META)
    for tname, dt, a in ts:
        gdt, shape, b = out[tname]
        if gdt != "F64" or shape != list(a.shape):
            return "%s: %s %r, want F64 %r" % (tname, gdt, shape,
                                               list(a.shape))
        why = same_f64(b, as_f64(dt, a))
        if why:
            return "%s: %s" % (tname, why)
    return None


def check_npy_read(d, name, a):
    out, _ = st_read(os.path.join(d, name + ".st"))
    if list(out) != ["x"]:
        return "tensors %r, want ['x']" % list(out)
    dt, shape, b = out["x"]
    want_dt = NPY_TO_ST[a.dtype.str[1:]]
    if dt != want_dt or shape != list(a.shape):
        return "%s %r, want %s %r" % (dt, shape, want_dt, list(a.shape))
    want = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    if b != want.tobytes(order="C"):
        return "bytes differ"
    return None


def check_st_npy(d, name, ts):
    _, dt, a = ts[0]
    p = os.path.join(d, name + ".out.npy")
    got = np.load(p)
    if got.dtype != a.dtype or got.shape != a.shape:
        return "%s %r, want %s %r" % (got.dtype, got.shape, a.dtype, a.shape)
    if got.tobytes() != a.tobytes():
        return "values differ"
    # and the file is byte for byte what np.save writes
    buf = io.BytesIO()
    np.save(buf, a)
    with open(p, "rb") as f:
        if f.read() != buf.getvalue():
            return "file differs from np.save's bytes"
    return None


def check(d):
    c = Checker()
    files = inputs()
    arrays = npy_inputs()
    with open(os.path.join(d, "cases")) as f:
        cases = [line.split() for line in f if line.strip()]
    for kind, name in cases:
        if kind == "st":
            ts = files[name]
            c.check(name + " copy", lambda: check_st_copy(d, name, ts))
            c.check(name + " --dtype f64", lambda: check_st_f64(d, name, ts))
        elif kind == "stnpy":
            c.check(name + " to npy",
                    lambda: check_st_npy(d, name, files[name]))
        elif kind == "npy":
            c.check(name + " read", lambda: check_npy_read(
                d, name, arrays[name][0]))
    print("\n".join(c.lines))


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]](sys.argv[2])
