"""NNSTD for many pairs of networks on all cores.

Each worker receives the connection masks of every network once (at start-up)
and then only pair indices, so the per-pair cost is the computation itself.
Workers come from a fork server: forking the main process while a progress bar
thread runs is avoided, and numpy/scipy (and the compiled assignment solver of
analysis.lsap) are loaded once, in the server.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

from .nnstd import METHODS, Network, NNSTDError, NNSTDResult, check_comparable, masks_of, nnstd_masks

_MASKS: list = []
_METHOD = "exact"


def _init(masks: list, method: str) -> None:
    global _MASKS, _METHOD
    _MASKS, _METHOD = masks, method


def _work(pairs: list[tuple[int, int]]) -> list[tuple[int, int, float, list[float]]]:
    out = []
    for i, j in pairs:
        r = nnstd_masks(_MASKS[i], _MASKS[j], _METHOD)
        out.append((i, j, r.distance, r.layers))
    return out


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def nnstd_pairs(
    networks: Sequence[Network],
    pairs: Sequence[tuple[int, int]],
    method: str = "exact",
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
) -> list[NNSTDResult]:
    """NNSTD(networks[i], networks[j]) for each (i, j) in `pairs`, in that order.

    on_progress(done, total) is called in this process as pairs finish.
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
    total = len(pairs)
    results: dict[tuple[int, int], NNSTDResult] = {}
    workers = max(1, min(workers or default_workers(), total))
    if workers == 1 or total < 4:
        for done, (i, j) in enumerate(pairs, 1):
            results[(i, j)] = nnstd_masks(masks[i], masks[j], method)
            if on_progress:
                on_progress(done, total)
    else:
        # small chunks keep both cores busy to the end and the progress bar moving
        size = max(1, total // (workers * 12))
        chunks = [list(pairs[k : k + size]) for k in range(0, total, size)]
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sparsetopo.analysis.nnstd", "sparsetopo.analysis._lsap_preload"])
        done = 0
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(masks, method)) as pool:
            futures = [pool.submit(_work, chunk) for chunk in chunks]
            for fut in as_completed(futures):
                for i, j, distance, layers in fut.result():
                    results[(i, j)] = NNSTDResult(distance, layers, method)
                    done += 1
                if on_progress:
                    on_progress(done, total)
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
) -> dict:
    """All-pairs NNSTD: {"distance": (n, n) array, "layers": (n, n, L) array}, symmetric, zero diagonal.

    Like the authors' script, each unordered pair is computed once, as
    NNSTD(networks[i], networks[j]) with i > j, and mirrored.
    """
    n = len(networks)
    pairs = matrix_pairs(n)
    results = nnstd_pairs(networks, pairs, method, workers, on_progress, names)
    n_layers = len(networks[0]) if n else 0
    distance = np.zeros((n, n))
    layers = np.zeros((n, n, n_layers))
    for (i, j), r in zip(pairs, results):
        distance[i, j] = distance[j, i] = r.distance
        layers[i, j] = layers[j, i] = r.layers
    return {"distance": distance, "layers": layers}
