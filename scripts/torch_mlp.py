#!/usr/bin/python3
"""torch_mlp.py MODEL IO — the `mlp` of lib/mlp.c written as a PyTorch
module: loads a dm model file (safetensors) with load_state_dict(strict),
runs it on the x, t, y of IO and compares with IO's `out` (written by the
C forward).  Prints the largest absolute difference; exit status 1 if it is
over 1e-5.  Needs python3-torch and python3-numpy; not part of `make check`.

    mkdir -p /tmp/mx && DM_MODEL_EXPORT=/tmp/mx build/tests/unit/run model_export
    /usr/bin/python3 scripts/torch_mlp.py /tmp/mx/mlp.st /tmp/mx/io.st
"""
import json
import math
import struct
import sys

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64,
          "F16": np.float16, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, d in header.items():
        a, b = d["data_offsets"]
        arr = np.frombuffer(data[base + a:base + b], dtype=DTYPES[d["dtype"]])
        tensors[name] = arr.reshape(d["shape"]).copy()
    return tensors, meta


def timestep_embedding(t, dim, scale=1000.0):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64)
                  / half)
    arg = scale * t.double()[:, None] * f[None, :]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1).float()


class Block(nn.Module):
    def __init__(self, width, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h, se):
        u = self.fc1(nn.functional.silu(self.norm(h))) + self.emb(se)
        return h + self.fc2(self.drop(nn.functional.silu(u)))


class MLP(nn.Module):
    def __init__(self, d, width, depth, temb, classes, head, dropout):
        super().__init__()
        self.temb = temb
        self.time_embed = nn.Sequential(nn.Linear(temb, width), nn.SiLU(),
                                        nn.Linear(width, width))
        self.cond = classes > 0 and head == "field"
        if self.cond:
            self.class_embed = nn.Embedding(classes + 1, width)
        self.input = nn.Linear(d, width)
        self.blocks = nn.ModuleList(Block(width, dropout)
                                    for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, classes if head == "classifier" else d)

    def forward(self, x, t, y):
        e = self.time_embed(timestep_embedding(t, self.temb))
        if self.cond:
            e = e + self.class_embed(y)
        se = nn.functional.silu(e)
        h = self.input(x)
        for b in self.blocks:
            h = b(h, se)
        return self.output(nn.functional.silu(self.out_norm(h)))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torch_mlp.py MODEL IO")
    weights, meta = read_safetensors(sys.argv[1])
    io, _ = read_safetensors(sys.argv[2])
    if meta.get("dm.arch") != "mlp":
        sys.exit("torch_mlp.py: %s is not an mlp model" % sys.argv[1])
    cfg = dict(kv.split("=") for kv in meta["dm.config"].split(","))
    d = int(meta["dm.shape"].strip("[]"))
    net = MLP(d, int(cfg["width"]), int(cfg["depth"]), int(cfg["temb"]),
              int(meta.get("dm.classes", "0")), cfg.get("head", "field"),
              float(cfg.get("dropout", "0")))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()},
                        strict=True)
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(io["x"]), torch.from_numpy(io["t"]),
                  torch.from_numpy(io["y"]))
    diff = float(np.max(np.abs(out.numpy() - io["out"])))
    scale = float(np.max(np.abs(io["out"])))
    print("torch %s: %d parameters, %d rows, max |out| %.4g, "
          "max abs difference %.3g" % (torch.__version__,
          sum(p.numel() for p in net.parameters()), out.shape[0], scale, diff))
    sys.exit(0 if diff <= 1e-5 else 1)


if __name__ == "__main__":
    main()
