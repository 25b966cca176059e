"""lora.py — the NumPy side of tests/cli/test-lora.sh.

Reads and writes safetensors with json and struct (independently of
libdm) and checks adapter arithmetic in float64.  Every check prints
"ok" or "FAIL: what differed" and exits 0 or 1.

    lora.py only-adapter ADAPTER            keys are lora_A/lora_B/alpha only
    lora.py merged BASE MERGED A[:w]...     MERGED = BASE + sum w dW
    lora.py not-factor-sum BASE MERGED A1:w1 A2:w2
                                            MERGED is not W + (a/r)(sum wB)(sum wA)
    lora.py same F1 F2 RTOL                 every tensor equal to RTOL (of max|.|)
    lora.py samples F1 F2 RTOL              tensor x equal to RTOL
    lora.py delta ADAPTER BASE TUNED RTOL   the adapter's dW = TUNED - BASE
    lora.py eckart-young BASE TUNED R REPORT
                                            reported rel. errors = SVD tail
    lora.py kohya|peft IN OUT               rename an adapter's tensors
    lora.py drop IN OUT NAME                remove a tensor
    lora.py bad-shape IN OUT NAME           make a tensor's last axis 1 longer
"""
import json
import struct
import sys

import numpy as np

NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8"}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__", {})
    out = {}
    for k, v in head.items():
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        out[k] = np.frombuffer(buf, dtype=NP[v["dtype"]]).reshape(v["shape"])
    return out, meta


def write(path, tensors, meta):
    head, blobs, off = {}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        b = a.tobytes()
        head[k] = {"dtype": "F32", "shape": list(a.shape),
                   "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        head["__metadata__"] = meta
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def split(arg):
    if ":" in arg:
        p, w = arg.rsplit(":", 1)
        return p, float(w)
    return arg, 1.0


def deltas(path):
    """{weight name: dW (float64, the weight's shape without k x k folded)}"""
    t, meta = read(path)
    out = {}
    for k in t:
        if not k.endswith(".lora_A.weight"):
            continue
        layer = k[:-len(".lora_A.weight")]
        A = t[k].astype(np.float64)
        B = t[layer + ".lora_B.weight"].astype(np.float64)
        r = A.shape[0]
        alpha = float(t[layer + ".alpha"]) if layer + ".alpha" in t else \
            float(meta.get("dm.lora.alpha", r))
        d = (alpha / r) * (B.reshape(B.shape[0], r) @ A.reshape(r, -1))
        out[layer + ".weight"] = (d, A, B, alpha / r)
    return out


def result(ok, msg):
    print("ok" if ok else "FAIL: " + msg)
    sys.exit(0 if ok else 1)


def relmax(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def cmd_merged(base, merged, adapters, naive=False):
    B, _ = read(base)
    M, _ = read(merged)
    want = {k: v.astype(np.float64).copy() for k, v in B.items()}
    if naive:
        (p1, w1), (p2, w2) = adapters
        d1, d2 = deltas(p1), deltas(p2)
        for k in d1:
            _, A1, B1, c = d1[k]
            _, A2, B2, _ = d2[k]
            Bs = w1 * B1.reshape(B1.shape[0], -1) + w2 * B2.reshape(B2.shape[0], -1)
            As = w1 * A1.reshape(A1.shape[0], -1) + w2 * A2.reshape(A2.shape[0], -1)
            want[k] += (c * Bs @ As).reshape(want[k].shape)
        # relative to the merged change itself
        worst = max(float(np.max(np.abs(M[k] - want[k])) /
                    max(np.max(np.abs(M[k] - B[k].astype(np.float64))), 1e-30))
                    for k in d1)
        result(worst > 1e-3, "the merge equals the sum of the factors "
               "(%g)" % worst)
    for p, w in adapters:
        for k, (d, _, _, _) in deltas(p).items():
            want[k] += w * d.reshape(want[k].shape)
    worst, where = 0.0, ""
    for k in want:
        e = relmax(M[k].astype(np.float64), want[k])
        if e > worst:
            worst, where = e, k
    result(worst < 1e-6, "%s off by %g (relative)" % (where, worst))


def main():
    a = sys.argv[1:]
    c = a[0]
    if c == "only-adapter":
        t, meta = read(a[1])
        bad = [k for k in t if not (k.endswith(".lora_A.weight") or
               k.endswith(".lora_B.weight") or k.endswith(".alpha"))]
        result(not bad and meta.get("dm.kind") == "adapter" and
               len(meta.get("dm.lora.base", "")) == 16, "keys %s meta %s" %
               (bad, meta))
    elif c == "merged":
        cmd_merged(a[1], a[2], [split(x) for x in a[3:]])
    elif c == "not-factor-sum":
        cmd_merged(a[1], a[2], [split(x) for x in a[3:]], naive=True)
    elif c in ("same", "samples"):
        t1, _ = read(a[1])
        t2, _ = read(a[2])
        keys = ["x"] if c == "samples" else list(t2)
        worst = max(relmax(t1[k].astype(np.float64), t2[k].astype(np.float64))
                    for k in keys)
        result(worst <= float(a[3]), "differ by %g (relative)" % worst)
    elif c == "delta":
        B, _ = read(a[2])
        T, _ = read(a[3])
        d = deltas(a[1])
        worst = 0.0
        for k in B:
            want = T[k].astype(np.float64) - B[k]
            got = d[k][0].reshape(want.shape) if k in d else 0 * want
            scale = max(np.max(np.abs(want)), np.max(np.abs(B[k])), 1e-30)
            worst = max(worst, float(np.max(np.abs(got - want)) / scale))
        result(worst <= float(a[4]), "dW off by %g" % worst)
    elif c == "eckart-young":
        B, _ = read(a[1])
        T, _ = read(a[2])
        r = int(a[3])
        rows = [l.split("\t") for l in open(a[4]).read().splitlines()]
        rows = [x for x in rows if len(x) == 3 and x[0] not in ("layer",)]
        tot_tail = tot_all = 0.0
        worst, n = 0.0, 0
        for name, rank, rel in rows:
            if name == "total":
                continue
            k = name + ".weight"
            d = (T[k].astype(np.float64) - B[k]).reshape(T[k].shape[0], -1)
            s = np.linalg.svd(d, compute_uv=False)
            tail, all_ = float(np.sum(s[r:] ** 2)), float(np.sum(s ** 2))
            tot_tail += tail
            tot_all += all_
            want = np.sqrt(tail / all_)
            worst = max(worst, abs(float(rel) - want) / max(want, 1e-3))
            n += 1
        tot = [x for x in rows if x[0] == "total"]
        tw = np.sqrt(tot_tail / tot_all)
        te = abs(float(tot[0][2]) - tw) / tw if tot else 1
        result(n > 0 and worst < 1e-3 and te < 1e-3, "%d layers, worst "
               "relative deviation from the SVD tail %g, total %g vs %g" %
               (n, worst, float(tot[0][2]) if tot else -1, tw))
    elif c in ("kohya", "peft"):
        t, meta = read(a[1])
        out = {}
        for k, v in t.items():
            for suf, ks, ps in ((".lora_A.weight", ".lora_down.weight",
                                 ".lora_A.weight"),
                                (".lora_B.weight", ".lora_up.weight",
                                 ".lora_B.weight"),
                                (".alpha", ".alpha", None)):
                if k.endswith(suf):
                    layer = k[:-len(suf)]
                    if c == "kohya":
                        out["lora_unet_" + layer.replace(".", "_") + ks] = v
                    elif ps is not None:
                        out["base_model.model." + layer + ps] = v
        # PEFT keeps alpha in its config: scale B so that alpha = r holds
        if c == "peft":
            for k in list(out):
                if k.endswith(".lora_B.weight"):
                    layer = k[len("base_model.model."):-len(".lora_B.weight")]
                    r = out[k].shape[1]
                    out[k] = out[k] * (float(t[layer + ".alpha"]) / r)
        write(a[2], out, {"format": "pt"})
        result(True, "")
    elif c == "drop":
        t, meta = read(a[1])
        del t[a[3]]
        write(a[2], t, meta)
        result(True, "")
    elif c == "bad-shape":
        t, meta = read(a[1])
        v = t[a[3]]
        t[a[3]] = np.zeros(v.shape[:-1] + (v.shape[-1] + 1,), np.float32)
        write(a[2], t, meta)
        result(True, "")
    else:
        sys.exit("lora.py: unknown command " + c)


if __name__ == "__main__":
    main()
