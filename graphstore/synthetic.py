"""Synthetic SET-like runs (numpy only): for the demo, tests and benchmarks.

Step 0 is an Erdős–Rényi topology at the given density; each later step removes
the fraction `churn` of every layer's connections at random and regrows as many
at random empty positions, and perturbs surviving weights slightly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from .model import Snapshot


def _random_layer(rng: np.random.Generator, n_in: int, n_out: int, nnz: int) -> sp.csr_matrix:
    pos = rng.choice(n_in * n_out, size=nnz, replace=False)
    w = rng.standard_normal(nnz).astype(np.float32) * 0.1
    return sp.csr_matrix((w, (pos // n_out, pos % n_out)), shape=(n_in, n_out), dtype=np.float32)


def _evolve(rng: np.random.Generator, m: sp.csr_matrix, churn: float) -> sp.csr_matrix:
    n_in, n_out = m.shape
    coo = m.tocoo()
    pos = coo.row.astype(np.int64) * n_out + coo.col
    w = coo.data * (1 + 0.01 * rng.standard_normal(coo.nnz).astype(np.float32))
    k = int(round(churn * pos.size))
    keep = np.ones(pos.size, bool)
    keep[rng.choice(pos.size, size=k, replace=False)] = False
    occupied = np.zeros(n_in * n_out, bool)
    occupied[pos] = True
    empty = np.flatnonzero(~occupied)
    grown = rng.choice(empty, size=min(k, empty.size), replace=False)
    new_pos = np.concatenate([pos[keep], grown])
    new_w = np.concatenate([w[keep], rng.standard_normal(grown.size).astype(np.float32) * 0.1])
    new_w[new_w == 0] = np.float32(1e-3)
    return sp.csr_matrix((new_w, (new_pos // n_out, new_pos % n_out)), shape=m.shape, dtype=np.float32)


def synthetic_run(
    run_id: str, sizes: list[int], density: float, churn: float, steps: int, seed: int = 0, dense_last: bool = False
) -> Iterator[Snapshot]:
    """Yield steps 0..steps of a synthetic run with the given per-step churn."""
    rng = np.random.default_rng(seed)
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        d = 1.0 if dense_last and k == len(sizes) - 2 else density
        layers.append(_random_layer(rng, a, b, max(1, int(round(d * a * b)))))
    biases: list[np.ndarray | None] = [rng.standard_normal(b).astype(np.float32) * 0.01 for b in sizes[1:]]
    for step in range(steps + 1):
        if step:
            layers = [
                m if (dense_last and k == len(layers) - 1) else _evolve(rng, m, churn) for k, m in enumerate(layers)
            ]
        acc = 0.5 + 0.4 * (1 - np.exp(-step / 3))
        yield Snapshot(run_id, step, layers, biases, {"test_accuracy": float(acc)}, epoch=step)
