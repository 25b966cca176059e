#!/usr/bin/python3
"""eval_ref.py — a NumPy/SciPy reading of what dm-eval(1) reports, for
tests/cli/test-eval.sh.

    eval_ref.py raw SAMPLES REF          Fréchet distance of the rows
    eval_ref.py mlp MODEL T SAMPLES REF  accuracy on SAMPLES' y and the
                                         Fréchet distance of the features
                                         of an mlp classifier at time T

The mlp is rebuilt from its weights as documented in lib/mlp.c; the
matrix square root is scipy.linalg.sqrtm, not an eigendecomposition."""
import json
import struct
import sys

import numpy as np
import scipy.linalg

DT = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def load(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    out = {}
    for k, d in h.items():
        s, e = d["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], DT[d["dtype"]])
        out[k] = a.reshape(d["shape"]).astype(np.float64 if
                                               d["dtype"] != "I64" else np.int64)
    return out


def fd(a, b):
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    r = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * r))


def silu(x):
    return x / (1 + np.exp(-x))


def layernorm(x, w, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * w + b


def mlp(p, x, t):
    lin = lambda name, v: v @ p[name + ".weight"].T + p[name + ".bias"]
    T = p["time_embed.0.weight"].shape[1]
    f = np.exp(-np.log(10000.0) * np.arange(T // 2) / (T // 2))
    arg = 1000.0 * t * f
    s = np.tile(np.concatenate([np.cos(arg), np.sin(arg)]), (len(x), 1))
    se = silu(lin("time_embed.2", silu(lin("time_embed.0", s))))
    h = lin("input", x)
    i = 0
    while "blocks.%d.fc1.weight" % i in p:
        q = "blocks.%d." % i
        u = lin(q + "fc1", silu(layernorm(h, p[q + "norm.weight"],
                                          p[q + "norm.bias"])))
        u = u + lin(q + "emb", se)
        h = h + lin(q + "fc2", silu(u))
        i += 1
    feat = silu(layernorm(h, p["out_norm.weight"], p["out_norm.bias"]))
    return feat, lin("output", feat)


if sys.argv[1] == "raw":
    a, b = load(sys.argv[2])["x"], load(sys.argv[3])["x"]
    print("%.10g" % fd(a.reshape(len(a), -1), b.reshape(len(b), -1)))
else:
    p = load(sys.argv[2])
    t = float(sys.argv[3])
    s, r = load(sys.argv[4]), load(sys.argv[5])
    fs, ls = mlp(p, s["x"], t)
    fr, _ = mlp(p, r["x"], t)
    acc = float((ls.argmax(1) == s["y"]).mean())
    print("%.10g\t%.10g" % (acc, fd(fs, fr)))
