"""NNSTD for many pairs of networks, on this machine's cores or on a cluster.

The pairs are computed by an executor (analysis.executors): the local process pool by default,
or Ray (sparsetopo.ray_executor). Networks are checked here, once, before any work is sent out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .executors import Executor, PairsFailed, current, default_workers
from .nnstd import METHODS, Network, NNSTDError, NNSTDResult, chained_layers, check_comparable, masks_of

__all__ = ["NNSTDTaskError", "default_workers", "matrix_pairs", "nnstd_matrix", "nnstd_pairs"]


class NNSTDTaskError(RuntimeError):
    """A pair (or a chunk of pairs) whose computation failed on a worker; says which and where.
    `details` holds the worker's traceback when there is one."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message + (f"\n\nOn the worker:\n{details}" if details else ""))
        self.details = details


def nnstd_pairs(
    networks: Sequence[Network],
    pairs: Sequence[tuple[int, int]],
    method: str = "exact",
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
    executor: Executor | None = None,
) -> list[NNSTDResult]:
    """NNSTD(networks[i], networks[j]) for each (i, j) in `pairs`, in that order.

    on_progress(done, total) is called in this process as pairs finish. `executor` (default: the
    one `analysis.executors.using` installed, else this machine's process pool) computes them.
    """
    if method not in METHODS:
        raise NNSTDError(f"unknown NNSTD method '{method}'; use one of {', '.join(METHODS)}")
    names = list(names) if names is not None else [f"network {k}" for k in range(len(networks))]
    masks = [masks_of(net, names[k]) for k, net in enumerate(networks)]
    for i, j in pairs:
        try:
            check_comparable(masks[i], masks[j])
        except NNSTDError as exc:
            raise NNSTDError(f"{names[i]} and {names[j]}: {exc}") from None
    if not pairs:
        return []
    executor = executor or current()
    try:
        values = executor.map_pairs(masks, pairs, method, workers, on_progress or (lambda _done, _total: None))
    except PairsFailed as exc:
        i, j = exc.pairs[0]
        what = f"NNSTD({names[i]}, {names[j]})"
        if len(exc.pairs) > 1:
            what = f"a task of {len(exc.pairs)} NNSTD pairs, from {what},"
        raise NNSTDTaskError(f"{what} failed in {exc.where}: {exc.error}", exc.details) from None
    results = {
        (i, j): NNSTDResult(distance, layers, method, chained=chained_layers(masks[i]))
        for i, j, distance, layers in values
    }
    return [results[(i, j)] for i, j in pairs]


def matrix_pairs(n: int) -> list[tuple[int, int]]:
    """The unordered pairs of a distance matrix, in the authors' orientation: NNSTD(later, earlier)."""
    return [(i, j) for i in range(n) for j in range(i)]


def nnstd_matrix(
    networks: Sequence[Network],
    method: str = "exact",
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
    executor: Executor | None = None,
) -> dict:
    """All-pairs NNSTD: {"distance": (n, n) array, "layers": (n, n, L) array, "chained": [bool per layer]},
    symmetric, zero diagonal.

    Like the authors' script, each unordered pair is computed once, as
    NNSTD(networks[i], networks[j]) with i > j, and mirrored.
    """
    n = len(networks)
    pairs = matrix_pairs(n)
    results = nnstd_pairs(networks, pairs, method, workers, on_progress, names, executor)
    n_layers = len(networks[0]) if n else 0
    distance = np.zeros((n, n))
    layers = np.zeros((n, n, n_layers))
    for (i, j), r in zip(pairs, results):
        distance[i, j] = distance[j, i] = r.distance
        layers[i, j] = layers[j, i] = r.layers
    chained = chained_layers(masks_of(networks[0], names[0] if names else "network 0")) if n else []
    return {"distance": distance, "layers": layers, "chained": chained}
