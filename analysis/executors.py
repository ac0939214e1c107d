"""Where NNSTD pairs and other independent work are computed: an executor.

An executor has two operations:

- `map_pairs(masks, pairs, method, workers, on_progress)`: NNSTD of each pair of networks (given
  as their connection masks, see `nnstd.masks_of`) as (i, j, distance, layers) values, in the
  order they finish; on_progress(done, total) is called in the caller's process. Every worker holds
  the masks of all networks and receives only chunks of pair indices; each chunk is computed by
  `compute_chunk`, so every executor returns the same bits.
- `map_tasks(fn, calls, workers)`: fn(*call) for each call, one task each (a training run of an
  experiment); yields (index, value, error) as tasks finish, error a one-line text or None;
  closing the generator early stops the tasks not finished.

`LocalExecutor` is this machine's process pool. `sparsetopo.ray_executor.RayExecutor` sends the
same chunks to a Ray cluster. Code that computes pairs takes `executor=`; without one it uses the
executor `using()` installed (so a whole command's analyses go to one executor without threading
an argument through every function), else a LocalExecutor.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import traceback
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import scipy.sparse as sp

from .nnstd import nnstd_masks

Pair = tuple[int, int]
Masks = list[sp.csc_matrix]  # one network: a connection mask per layer
Progress = Callable[[int, int], None]
# (i, j, network distance, layer distances)
PairValue = tuple[int, int, float, list[float]]


class PairsFailed(Exception):
    """NNSTD could not be computed for `pairs` (one pair when its computation raised, a whole chunk
    when the worker holding it was lost). Every field is in args, so it pickles across processes."""

    def __init__(self, pairs: list[Pair], error: str, where: str, details: str = ""):
        super().__init__(pairs, error, where, details)
        self.pairs, self.error, self.where, self.details = pairs, error, where, details

    def __str__(self) -> str:
        return f"{len(self.pairs)} pair(s) from {self.pairs[0]} failed in {self.where}: {self.error}"


class Executor(Protocol):
    name: str

    def map_pairs(
        self, masks: Sequence[Masks], pairs: Sequence[Pair], method: str, workers: int | None, on_progress: Progress
    ) -> list[PairValue]: ...

    def map_tasks(
        self, fn: Callable[..., Any], calls: Sequence[tuple], workers: int | None
    ) -> Generator[tuple[int, Any, str | None], None, None]: ...


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def compute_chunk(masks: Sequence[Masks], chunk: Sequence[Pair], method: str) -> list[PairValue]:
    """The body of every executor's task."""
    out = []
    for i, j in chunk:
        try:
            r = nnstd_masks(masks[i], masks[j], method)
        except Exception as exc:  # noqa: BLE001 - named with its pair and worker in the driver
            where = f"process {os.getpid()} on {socket.gethostname()}"
            raise PairsFailed([(i, j)], f"{type(exc).__name__}: {exc}", where, traceback.format_exc()) from None
        out.append((i, j, r.distance, r.layers))
    return out


def chunks(pairs: Sequence[Pair], workers: int) -> list[list[Pair]]:
    # small chunks keep every worker busy to the end and the progress bar moving
    size = max(1, len(pairs) // (workers * 12))
    return [list(pairs[k : k + size]) for k in range(0, len(pairs), size)]


_CURRENT: ContextVar[Executor | None] = ContextVar("sparsetopo_executor", default=None)


@contextmanager
def using(executor: Executor) -> Iterator[Executor]:
    """Make `executor` the one pair computations without an explicit executor use, within the block."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


def current() -> Executor:
    return _CURRENT.get() or LocalExecutor()


# -- the local process pool ---------------------------------------------------------------------

_MASKS: Sequence[Masks] = []
_METHOD = "exact"


def _init(masks: Sequence[Masks], method: str) -> None:
    global _MASKS, _METHOD
    _MASKS, _METHOD = masks, method


def _work(chunk: list[Pair]) -> list[PairValue]:
    return compute_chunk(_MASKS, chunk, _METHOD)


class LocalExecutor:
    """This machine's cores. Pair workers come from a fork server: forking the main process while
    a progress bar thread runs is avoided, and numpy/scipy (and the compiled assignment solver of
    analysis.lsap) are loaded once, in the server. Each worker receives every network's masks once,
    at start-up, then only chunks of pair indices."""

    name = "local"

    def map_pairs(
        self, masks: Sequence[Masks], pairs: Sequence[Pair], method: str, workers: int | None, on_progress: Progress
    ) -> list[PairValue]:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        total = len(pairs)
        workers = max(1, min(workers or default_workers(), total))
        if workers == 1 or total < 4:
            out = []
            for done, pair in enumerate(pairs, 1):
                out.extend(compute_chunk(masks, [pair], method))
                on_progress(done, total)
            return out
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sparsetopo.analysis.nnstd", "sparsetopo.analysis._lsap_preload"])
        out, done = [], 0
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(masks, method)) as pool:
            futures = [pool.submit(_work, chunk) for chunk in chunks(pairs, workers)]
            for fut in as_completed(futures):
                values = fut.result()
                out.extend(values)
                done += len(values)
                on_progress(done, total)
        return out

    def map_tasks(
        self, fn: Callable[..., Any], calls: Sequence[tuple], workers: int | None
    ) -> Generator[tuple[int, Any, str | None], None, None]:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fresh interpreter per task process, no forked driver connections or torch thread pools
        with ProcessPoolExecutor(workers or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(fn, *call): k for k, call in enumerate(calls)}
            for fut in as_completed(futures):
                exc = fut.exception()
                if exc is None:
                    yield futures[fut], fut.result(), None
                else:
                    yield futures[fut], None, f"{type(exc).__name__}: {exc}"
