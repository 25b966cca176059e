#!/usr/bin/python3
"""torch_bench.py [-t THREADS] [-s SECONDS] WORKLOAD — the workloads of
scripts/bench/bench_train.c in PyTorch, for `make bench` to compare with.

The networks are those of lib/mlp.c (scripts/torch_mlp.py) and lib/unet.c,
with the same sizes, batch, objective and optimizer as dm-train's defaults:
AdamW (lr 2e-3, betas 0.9/0.999, eps 1e-8, no weight decay), global-norm
clipping at 1, an EMA of the weights (0.999) updated every step, and the
noising of the batch (t uniform, eps normal) done in the step.

Prints one TSV line like bench_train: workload, rate, unit, "-", "-", "-",
peak RSS MiB, RSS MiB before the model was made, parameters.
"""
import math
import os
import resource
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mlp import MLP, timestep_embedding  # noqa: E402


class ResBlock(nn.Module):
    def __init__(self, cin, cout, E, G):
        super().__init__()
        self.norm1 = nn.GroupNorm(G, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(E, cout)
        self.norm2 = nn.GroupNorm(G, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, se):
        a = self.conv1(F.silu(self.norm1(x))) + self.emb(se)[:, :, None, None]
        a = self.conv2(F.silu(self.norm2(a)))
        return a + (x if self.skip is None else self.skip(x))


class Attention(nn.Module):
    def __init__(self, C, G, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(G, C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x):
        B, C, H, W = x.shape
        T, nh = H * W, self.heads
        n = self.norm(x).reshape(B, C, T).transpose(1, 2)
        q, k, v = self.qkv(n).reshape(B, T, 3, nh, C // nh).permute(
            2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // nh), -1)
        o = (att @ v).transpose(1, 2).reshape(B, T, C)
        return x + self.proj(o).transpose(1, 2).reshape(B, C, H, W)


class Down(nn.Module):
    def __init__(self):
        super().__init__()
        self.res = nn.ModuleList()


class UNet(nn.Module):
    """lib/unet.c: field head, no classes."""

    def __init__(self, C=1, ch=32, mult=(1, 2, 4), nres=1, attn=True,
                 heads=4, groups=8, temb=32):
        super().__init__()
        E, G, L = 4 * ch, groups, len(mult)
        self.temb, self.L, self.nres = temb, L, nres
        self.time_embed = nn.Sequential(nn.Linear(temb, E), nn.SiLU(),
                                        nn.Linear(E, E))
        self.conv_in = nn.Conv2d(C, ch, 3, padding=1)
        cl = [ch * m for m in mult]
        cur = ch
        self.down = nn.ModuleList()
        for lv in range(L):
            d = Down()
            for _ in range(nres):
                d.res.append(ResBlock(cur, cl[lv], E, G))
                cur = cl[lv]
            if lv < L - 1:
                d.down = nn.Conv2d(cur, cur, 3, stride=2, padding=1)
            self.down.append(d)
        self.mid = nn.Module()
        self.mid.res1 = ResBlock(cur, cur, E, G)
        self.mid.attn = Attention(cur, G, heads) if attn else None
        self.mid.res2 = ResBlock(cur, cur, E, G)
        self.up = nn.ModuleList([Down() for _ in range(L)])
        for lv in reversed(range(L)):
            u = self.up[lv]
            for _ in range(nres):
                u.res.append(ResBlock(cur + cl[lv], cl[lv], E, G))
                cur = cl[lv]
            if lv > 0:
                u.up = nn.Conv2d(cur, cur, 3, padding=1)
        self.out_norm = nn.GroupNorm(G, cur)
        self.conv_out = nn.Conv2d(cur, C, 3, padding=1)

    def forward(self, x, t):
        se = F.silu(self.time_embed(timestep_embedding(t, self.temb)))
        h = self.conv_in(x)
        skips = []
        for lv in range(self.L):
            for r in self.down[lv].res:
                h = r(h, se)
                skips.append(h)
            if lv < self.L - 1:
                h = self.down[lv].down(h)
        h = self.mid.res1(h, se)
        if self.mid.attn is not None:
            h = self.mid.attn(h)
        h = self.mid.res2(h, se)
        for lv in reversed(range(self.L)):
            for r in self.up[lv].res:
                h = r(torch.cat([h, skips.pop()], 1), se)
            if lv > 0:
                h = self.up[lv].up(F.interpolate(h, scale_factor=2.0,
                                                 mode="nearest"))
        return self.conv_out(F.silu(self.out_norm(h)))


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def best_rate(fn, secs):
    """Best calls per second of windows of >= 3 calls and 0.25 s."""
    end, best = time.perf_counter() + secs, 0
    while True:
        t0, n = time.perf_counter(), 0
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if n >= 3 and dt >= 0.25:
                break
        best = max(best, n / dt)
        if time.perf_counter() >= end:
            return best


def main():
    args, threads, secs = sys.argv[1:], 2, 3.0
    while args and args[0] in ("-t", "-s"):
        if args[0] == "-t":
            threads = int(args[1])
        else:
            secs = float(args[1])
        args = args[2:]
    if len(args) != 1:
        sys.exit("usage: torch_bench.py [-t THREADS] [-s SECONDS] WORKLOAD")
    w = args[0]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss0 = rss_mib()
    unet = w.startswith("unet")
    if unet:
        net, shape, B = UNet(), (1, 28, 28), 64
    else:
        net = MLP(2, 1024 if w == "mlp1024" else 256, 3, 64, 0, "field", 0.0)
        shape, B = (2,), 1024
    if w in ("unet-nfe1", "mlp-nfe1"):
        B = 1
    elif w == "unet-nfe256":
        B = 256
    elif w not in ("mlp256", "mlp1024", "unet"):
        sys.exit("torch_bench.py: unknown workload " + w)
    nparams = sum(p.numel() for p in net.parameters())
    data = torch.randn(4096, *shape)

    if w in ("mlp256", "mlp1024", "unet"):
        params = list(net.parameters())
        opt = torch.optim.AdamW(params, lr=2e-3, betas=(0.9, 0.999),
                                eps=1e-8, weight_decay=0.0)
        ema = [p.detach().clone() for p in params]
        tb = torch.linspace(1e-4, 0.02, 1000)

        def step():
            x0 = data[torch.randint(0, data.shape[0], (B,))]
            eps = torch.randn_like(x0)
            t = torch.rand(B)
            tt = t.view(-1, *([1] * len(shape)))
            if unet:
                # linear DDPM schedule: alpha_bar from the cumulative betas
                i = (t * 999).long()
                ab = torch.cumprod(1 - tb, 0)[i].view_as(tt)
                xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
                target = eps
            else:
                xt = (1 - tt) * x0 + tt * eps
                target = eps - x0
            loss = F.mse_loss(net(xt, t, None) if not unet else net(xt, t),
                              target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_mul_(ema, 0.999)
                torch._foreach_add_(ema, params, alpha=0.001)

        for _ in range(3):
            step()
        rate = best_rate(step, secs)
        unit = "images/s" if unet else "steps/s"
        if unet:
            rate *= B
    else:
        net.eval()
        x = torch.randn(B, *shape)
        t = torch.full((B,), 0.5)

        def fwd():
            with torch.no_grad():
                net(x, t) if unet else net(x, t, None)

        for _ in range(3):
            fwd()
        rate = best_rate(fwd, secs) * B
        unit = "NFE/s"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("%s\t%.6g\t%s\t-\t-\t-\t%.1f\t%.1f\t%d" % (w, rate, unit, peak,
                                                    rss0, nparams))


if __name__ == "__main__":
    main()
