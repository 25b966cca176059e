#!/usr/bin/python3
"""pot_emd_bench.py DIR — the problem of scripts/bench/bench_lap.c in POT:
exact OT between DIR/x.npy and DIR/y.npy (uniform weights, squared
Euclidean cost), timed as the whole computation: ot.dist for the cost
matrix, then ot.emd2 (network simplex).  Best of 5, wall and CPU time of
the process.

Prints one TSV line like bench_lap: emd2, N, setting, wall milliseconds,
CPU milliseconds, mean cost.
"""
import sys
import time

import numpy as np
import ot


def main():
    d = sys.argv[1]
    x = np.load(d + "/x.npy").astype(np.float64)
    y = np.load(d + "/y.npy").astype(np.float64)
    n = x.shape[0]
    a = np.full(n, 1.0 / n)
    best, best_cpu, cost = 1e30, 1e30, 0.0
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        M = ot.dist(x, y)
        cost = ot.emd2(a, a, M, numItermax=10**8)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print("emd2\t%d\tPOT %s ot.dist + ot.emd2\t%.1f ms\t%.1f ms CPU\t"
          "cost %.6f" % (n, ot.__version__, best * 1e3, best_cpu * 1e3, cost))


if __name__ == "__main__":
    main()
