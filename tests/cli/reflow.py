"""reflow.py — the NumPy side of tests/cli/test-reflow.sh.

Files are read and written with lora.py's independent safetensors code.
Every check prints "ok" or "FAIL: what differed" and exits 0 or 1.

    reflow.py linpairs PAIRS X1 N SEED   pairs of the linear OT map
                                         x0 = A x1 + b (A symmetric positive
                                         definite: the Brenier map between
                                         N(0, I) and N(b, A^2)), and fresh
                                         source points x1 as tensor x of X1
    reflow.py maperr SAMPLES X1 TOL      mean |s - (A x1 + b)|^2 is below
                                         TOL times the transport cost
    reflow.py source PAIRS               x1 of the pairs looks like N(0, I)
    reflow.py x0 PAIRS SAMPLES RTOL      x0 of the pairs = SAMPLES' x
    reflow.py prefix SMALL LARGE         the pairs of SMALL are the first
                                         rows of LARGE
    reflow.py mismatch IN OUT            drop x1's last row
"""
import sys

import numpy as np

from lora import read, relmax, result, write

A = np.array([[1.2, 0.4], [0.4, 0.6]])
B = np.array([1.5, -1.0])


def linmap(x1):
    return x1 @ A.T + B


def main():
    a = sys.argv[1:]
    c = a[0]
    if c == "linpairs":
        n, seed = int(a[3]), int(a[4])
        rng = np.random.default_rng(seed)
        x1 = rng.standard_normal((n, 2))
        write(a[1], {"x0": linmap(x1), "x1": x1}, {"dm.kind": "pairs"})
        write(a[2], {"x": rng.standard_normal((n, 2))}, {"dm.kind": "data"})
        result(True, "")
    elif c == "maperr":
        s = read(a[1])[0]["x"].astype(np.float64)
        x1 = read(a[2])[0]["x"].astype(np.float64)
        want = linmap(x1)
        err = np.mean(np.sum((s - want) ** 2, axis=1))
        cost = np.mean(np.sum((want - x1) ** 2, axis=1))
        print("# map error %.4g, cost %.4g" % (err, cost))
        result(err < float(a[3]) * cost, "map error %g of cost %g" %
               (err, cost))
    elif c == "source":
        x1 = read(a[1])[0]["x1"].astype(np.float64)
        n = len(x1)
        m, cov = x1.mean(axis=0), np.cov(x1.T)
        tol = 5 / np.sqrt(n)
        result(np.all(np.abs(m) < tol) and
               np.all(np.abs(cov - np.eye(2)) < 2 * tol),
               "mean %s cov %s" % (m, cov))
    elif c == "x0":
        x0 = read(a[1])[0]["x0"].astype(np.float64)
        s = read(a[2])[0]["x"].astype(np.float64)
        e = relmax(x0, s)
        result(e <= float(a[3]), "differ by %g (relative)" % e)
    elif c == "prefix":
        p, q = read(a[1])[0], read(a[2])[0]
        n = len(p["x0"])
        result(all(np.array_equal(p[k], q[k][:n]) for k in ("x0", "x1")),
               "the first %d rows differ" % n)
    elif c == "mismatch":
        t, meta = read(a[1])
        t["x1"] = t["x1"][:-1]
        write(a[2], t, meta)
        result(True, "")
    else:
        sys.exit("reflow.py: unknown command " + c)


if __name__ == "__main__":
    main()
