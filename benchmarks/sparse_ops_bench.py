"""Milliseconds per training step: masked dense layers against trainer.sparse_ops.sparse_linear.

    python benchmarks/sparse_ops_bench.py [--threads 1,2] [--steps 100] [--repeats 3]

One step = forward, cross-entropy, backward and an SGD step (momentum 0.9, weight decay 2e-4,
as the trainer's defaults) on a batch of 100 random MNIST-shaped samples. Networks:
- 784-784-784-784-10 with 3,700 connections in each hidden layer (~0.6 % density);
- 784-1000-1000-1000-10 at epsilon 20 (round(20 (n_in + n_out)) connections per hidden layer).
The output layer is a dense nn.Linear in both backends. "masked" multiplies a dense weight by
its mask in every forward (F.linear(x, weight * mask)); "sparse" keeps only the values.
Reported: the best of `repeats` runs of `steps` steps each (the machine is shared). Results it
gave, and the kernel choices they led to: CHANGELOG.md ("Measured") and docs/trainer.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

from sparsetopo.trainer.sparse_ops import SparseStructure, sparse_linear

BATCH = 100


def _positions(n_out: int, n_in: int, count: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randperm(n_out * n_in, generator=gen)[:count].sort().values


class MaskedMLP(nn.Module):
    def __init__(self, sizes, structures, gen):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.keep = [None if s is None else s.mask().to(torch.float32) for s in structures]
        with torch.no_grad():
            for lin, s in zip(self.linears, structures):
                b = math.sqrt(6.0 / max(1.0, (lin.weight.numel() if s is None else s.nnz) / lin.out_features))
                lin.weight.uniform_(-b, b, generator=gen)
                lin.bias.zero_()

    def forward(self, x):
        last = len(self.linears) - 1
        for k, (lin, keep) in enumerate(zip(self.linears, self.keep)):
            x = lin(x) if keep is None else F.linear(x, lin.weight * keep, lin.bias)
            if k < last:
                x = torch.relu(x)
        return x


class SparseMLP(nn.Module):
    def __init__(self, sizes, structures, gen):
        super().__init__()
        self.structures = structures[:-1]
        self.values = nn.ParameterList()
        self.biases = nn.ParameterList()
        for s in self.structures:
            b = math.sqrt(6.0 / max(1.0, s.nnz / s.n_out))
            self.values.append(nn.Parameter(torch.empty(s.nnz).uniform_(-b, b, generator=gen)))
            self.biases.append(nn.Parameter(torch.zeros(s.n_out)))
        self.out = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x):
        for s, v, b in zip(self.structures, self.values, self.biases):
            x = torch.relu(sparse_linear(x, v, s, b))
        return self.out(x)


def ms_per_step(model: nn.Module, steps: int, repeats: int, gen: torch.Generator) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)
    xs = torch.rand(10, BATCH, 784, generator=gen)
    ys = torch.randint(0, 10, (10, BATCH), generator=gen)

    def run(n):
        for i in range(n):
            opt.zero_grad(set_to_none=False)
            loss = F.cross_entropy(model(xs[i % 10]), ys[i % 10])
            loss.backward()
            opt.step()

    run(10)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(steps)
        best = min(best, (time.perf_counter() - t0) / steps * 1e3)
    return best


def networks():
    gen = torch.Generator().manual_seed(0)
    a = [784, 784, 784, 784, 10]
    yield (
        "784-784x3-10, 3,700/layer",
        a,
        [SparseStructure(n_out, n_in, _positions(n_out, n_in, 3700, gen)) for n_in, n_out in zip(a[:-2], a[1:-1])],
    )
    b = [784, 1000, 1000, 1000, 10]
    yield (
        "784-1000x3-10, eps 20",
        b,
        [
            SparseStructure(n_out, n_in, _positions(n_out, n_in, round(20 * (n_in + n_out)), gen))
            for n_in, n_out in zip(b[:-2], b[1:-1])
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"batch {BATCH}, best of {args.repeats} x {args.steps} steps, ms per training step")
    print(f"{'network':28s} {'threads':>7s} {'masked':>8s} {'sparse':>8s} {'speed-up':>8s}")
    for name, sizes, structures in networks():
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            gen = torch.Generator().manual_seed(1)
            masked = ms_per_step(MaskedMLP(sizes, structures + [None], gen), args.steps, args.repeats, gen)
            sparse = ms_per_step(SparseMLP(sizes, structures + [None], gen), args.steps, args.repeats, gen)
            print(f"{name:28s} {threads:7d} {masked:8.2f} {sparse:8.2f} {masked / sparse:7.1f}x", flush=True)


if __name__ == "__main__":
    main()
