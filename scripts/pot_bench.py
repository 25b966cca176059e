#!/usr/bin/python3
"""pot_bench.py BUILD — dm-sinkhorn against POT (Python Optimal Transport) on
the same problems: 2-D Gaussian clouds X ~ N(0, I), Y ~ N((1, 0), diag(1,
1/4)), n = m, uniform weights, squared Euclidean cost, epsilon = reg x the
largest cost (POT's examples divide the cost matrix by its maximum and use
reg; dm-sinkhorn --eps-rel reg is the same problem).

Times are the best of REPEATS (default 3): for POT the call plus building
the cost matrix (ot.dist, divided by its maximum), for dm-sinkhorn the
whole process, reading the two .npy files included.  Stopping: POT
ot.sinkhorn(stopThr=1e-9) stops when the L2 norm of the column marginal's
error is below 1e-9 (checked every 10 iterations); dm-sinkhorn --tol 1e-9
when the L1 norm of both marginals' errors is, which is the stricter test
(L1 >= L2).  Peak memory of dm-sinkhorn: max RSS of the process, read by
GNU time (/usr/bin/time) when it is there: a child of this process would
count this process's own memory (the RSS of a forked process before its
exec stays in its maximum).  On a
machine that other jobs load, a line of CPU seconds follows each row
(least of the repeats; dm-sinkhorn's over all its threads, so the ratio
understates its advantage in wall time on idle cores).

Environment: POT_BENCH_SIZES (default "1000 5000"), POT_BENCH_REGS
("0.05 0.01"), POT_BENCH_BIG (the n of the dm-only run at reg 0.01,
default 20000; 0 skips it), POT_BENCH_LOG_MAX (largest n for
ot.sinkhorn_log, default 5000), POT_BENCH_EMD_MAX (for ot.emd2, 2000).
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import ot

B = sys.argv[1] if len(sys.argv) > 1 else "build"
REPEATS = int(os.environ.get("POT_BENCH_REPEATS", "3"))
SIZES = [int(s) for s in os.environ.get("POT_BENCH_SIZES", "1000 5000").split()]
REGS = [float(s) for s in os.environ.get("POT_BENCH_REGS", "0.05 0.01").split()]
BIG = int(os.environ.get("POT_BENCH_BIG", "20000"))
LOG_MAX = int(os.environ.get("POT_BENCH_LOG_MAX", "5000"))
EMD_MAX = int(os.environ.get("POT_BENCH_EMD_MAX", "2000"))
DM = os.path.join(B, "bin", "dm-sinkhorn")


def clouds(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = rng.standard_normal((n, 2)).astype(np.float32)
    y[:, 0] += 1
    y[:, 1] *= 0.5
    return x, y


CPU = {}


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def best(fn, key=None):
    """Best wall time of REPEATS calls; the least CPU time (this process's
    and its children's) goes to CPU[key]."""
    t, c, out = 1e30, 1e30, None
    for _ in range(REPEATS):
        t0, c0 = time.perf_counter(), time.process_time() + children_cpu()
        out = fn()
        t = min(t, time.perf_counter() - t0)
        c = min(c, time.process_time() + children_cpu() - c0)
    if key is not None:
        CPU[key] = c
    return t, out


def dm_run(xf, yf, reg, tol="1e-9"):
    cmd = [DM, "--eps-rel", repr(reg), "--tol", tol, "--max-iter", "1000000",
           xf, yf]
    def one():
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode not in (0, 3):
            sys.exit("pot_bench: %s: %s" % (" ".join(cmd), p.stderr.strip()))
        head, row = p.stdout.strip().split("\n")
        return dict(zip(head.split("\t"), row.split("\t")))
    t, r = best(one, "dm")
    return t, r


def dm_peak_rss(xf, yf, reg):
    """Peak RSS of one dm-sinkhorn run in MiB, or None without GNU time."""
    if not os.access("/usr/bin/time", os.X_OK):
        return None
    out = os.path.join(os.path.dirname(xf), "rss.txt")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", out, DM, "--eps-rel", repr(reg),
           "--tol", "1e-9", "--max-iter", "1000000", xf, yf]
    if subprocess.run(cmd, capture_output=True).returncode not in (0, 3):
        return None
    with open(out) as f:
        return int(f.read().split()[-1]) / 1024


def pot_cost(x, y):
    M = ot.dist(x.astype(np.float64), y.astype(np.float64))
    return M / M.max(), M.max()


def main():
    w = tempfile.mkdtemp(prefix="dm-pot-")
    print("# POT %s, numpy %s; times in seconds, best of %d" %
          (ot.__version__, np.__version__, REPEATS))
    print("n\treg\tPOT M build\tsinkhorn\t(it, cost)\tsinkhorn_log\t"
          "emd2\tdm-sinkhorn\t(it, cost)\tvs sinkhorn+M\tvs sinkhorn_log+M")
    for n in SIZES:
        x, y = clouds(n)
        xf, yf = os.path.join(w, "x%d.npy" % n), os.path.join(w, "y%d.npy" % n)
        np.save(xf, x)
        np.save(yf, y)
        a = np.full(n, 1.0 / n)
        tm, (M, mmax) = best(lambda: pot_cost(x, y), "M")
        te = float("nan")
        if n <= EMD_MAX:
            te, _ = best(lambda: ot.emd2(a, a, M, numItermax=10**7))
            te += tm
        for reg in REGS:
            def sk():
                return ot.sinkhorn(a, a, M, reg, stopThr=1e-9,
                                   numItermax=10**6, log=True)
            ts, (G, log) = best(sk, "sk")
            its = len(log["err"]) * 10
            pc = float((G * M).sum() * mmax)       # in the raw cost's units
            tl = float("nan")
            if n <= LOG_MAX:
                tl, _ = best(lambda: ot.sinkhorn(
                    a, a, M, reg, method="sinkhorn_log", stopThr=1e-9,
                    numItermax=10**6), "log")
                tl += tm
            td, r = dm_run(xf, yf, reg)
            cpu = "cpu s: POT sinkhorn+M %.3f, dm-sinkhorn %.3f (%.1fx)" % (
                CPU["sk"] + CPU["M"], CPU["dm"],
                (CPU["sk"] + CPU["M"]) / CPU["dm"])
            if n <= LOG_MAX:
                cpu += ", sinkhorn_log+M %.3f (%.1fx)" % (
                    CPU["log"] + CPU["M"], (CPU["log"] + CPU["M"]) / CPU["dm"])
            print("%d\t%g\t%.3f\t%.3f\t(%d, %.6g)\t%.3f\t%.3f\t%.3f\t(%s, %s)"
                  "\t%.1fx\t%.1fx" % (
                      n, reg, tm, ts + tm, its, pc, tl, te, td,
                      r["iterations"], r["cost"], (ts + tm) / td, tl / td),
                  flush=True)
            print("#\t" + cpu, flush=True)
    # tiny epsilon: POT's kernel underflows, the log domain does not
    x, y = clouds(1000)
    xf, yf = os.path.join(w, "x1000.npy"), os.path.join(w, "y1000.npy")
    np.save(xf, x)
    np.save(yf, y)
    td, r = dm_run(xf, yf, 1e-4, tol="1e-5")
    print("1000\t1e-4\tdm-sinkhorn --tol 1e-5: %.3f s, %s iterations, cost %s,"
          " converged %s" % (td, r["iterations"], r["cost"], r["converged"]))
    if BIG > 0:
        x, y = clouds(BIG)
        xf, yf = os.path.join(w, "xb.npy"), os.path.join(w, "yb.npy")
        np.save(xf, x)
        np.save(yf, y)
        td, r = dm_run(xf, yf, 0.01)
        rss = dm_peak_rss(xf, yf, 0.01)
        print("%d\t0.01\tdm-sinkhorn: %.3f s, %s iterations, cost %s, "
              "converged %s, peak RSS %s (an n x n matrix of doubles "
              "would be %.0f MiB)" % (BIG, td, r["iterations"], r["cost"],
                                      r["converged"], "not measured (no "
                                      "/usr/bin/time)" if rss is None else
                                      "%.0f MiB" % rss,
                                      BIG * BIG * 8 / 2**20))
    subprocess.run(["rm", "-rf", w])


if __name__ == "__main__":
    main()
