#!/usr/bin/python3
"""torch_sample.py [-t THREADS] [-n POINTS] [-s STEPS] [-k BATCH1_STEPS] [C_TSV]

The PyTorch side of the sampling benchmark (scripts/bench/bench_sample.c):
the same `mlp` (scripts/torch_mlp.py: width 256, depth 3, temb 64, d = 2,
a flow model on rf, so the Euler step is x += (s - t) u(x, t)), timed at
batch 1 (NFE/s) and for POINTS x STEPS Euler steps (wall seconds), with
torch.set_num_threads(THREADS).  Given the TSV that bench_sample printed,
prints both side by side with the ratio.  Needs python3-torch.
"""
import argparse
import re
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_mlp import MLP  # noqa: E402


def euler(net, x, steps):
    ts = torch.linspace(1, 0, steps + 1)
    for k in range(steps):
        t = ts[k].expand(x.shape[0])
        x = x + (ts[k + 1] - ts[k]) * net(x, t, None)
    return x


def timed(fn, reps):
    best = 1e9
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("-s", type=int, default=100)
    ap.add_argument("-k", type=int, default=20000)
    ap.add_argument("ctsv", nargs="?")
    a = ap.parse_args()
    torch.set_num_threads(a.t)
    torch.manual_seed(1)
    net = MLP(2, 256, 3, 64, 0, "field", 0.0).eval()
    with torch.no_grad():
        net.output.weight.uniform_(0, 1)
        net.output.bias.uniform_(0, 1)
        x1 = torch.randn(1, 2)
        euler(net, x1, 200)
        w1 = timed(lambda: euler(net, x1, a.k), 3)
        xn = torch.randn(a.n, 2)
        wn = timed(lambda: euler(net, xn, a.s), 2)
    nfe1 = a.k / w1
    print("torch\tbatch-1 euler\tmlp w256 d3\t%.0f NFE/s\t%.2f us/step\t"
          "%d threads\ttorch %s" % (nfe1, w1 / a.k * 1e6, a.t,
                                    torch.__version__))
    print("torch\t%d x %d euler\tmlp w256 d3\t%.3f s" % (a.n, a.s, wn))
    if not a.ctsv:
        return
    c1 = cn = None
    for line in open(a.ctsv):
        f = line.rstrip("\n").split("\t")
        if f[0] == "sample" and f[1] == "batch-1 euler":
            c1 = float(f[3].split()[0])
        elif f[0] == "sample" and re.match(r"\d+ x \d+ euler", f[1]):
            cn = float(f[3].split()[0])
    print("compare\twhat\tdm\ttorch\tdm/torch speed")
    if c1:
        print("compare\tbatch-1 NFE/s\t%.0f\t%.0f\t%.2fx" % (c1, nfe1,
                                                          c1 / nfe1))
    if cn:
        print("compare\t%d x %d wall s\t%.3f\t%.3f\t%.2fx" % (a.n, a.s, cn,
                                                          wn, wn / cn))


if __name__ == "__main__":
    main()
