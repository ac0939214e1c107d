"""The `ray` executor: NNSTD pairs and experiment runs as Ray tasks (docs/scale.md).

Ray is an optional extra (`pip install 'sparsetopo[ray]'`), imported when the executor is opened.
It connects to the cluster named by its address (or RAY_ADDRESS); without one it starts a local
Ray instance for the command and stops it at the end. A Ray session the caller opened already
(`ray.init()` in a notebook) is used as it is and left running.

Pairs: the masks go to the object store once (`ray.put`); each task receives a chunk of pair
indices, as the local pool's workers do, and computes it with `analysis.executors.compute_chunk`,
so the results are the local executor's bits. Workers keep the masks they fetched for the next
chunk. Runs: one task per run (`map_tasks`), never retried by Ray: a retry would meet the lease
of the writer that died, and the sweep resumes the run when the command is run again.
Interrupting (Ctrl-C, or an error in the caller) cancels every task not finished.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

from .analysis.executors import Masks, Pair, PairsFailed, PairValue, Progress, chunks, compute_chunk, default_workers
from .errors import UsageError

INSTALL = "pip install 'sparsetopo[ray]'"
# how long interrupted training tasks get to mark their runs interrupted before they are killed
GRACE_SECONDS = 20.0
# ray.wait returns at least this often, so that Ctrl-C reaches the waiting thread
_POLL_SECONDS = 0.2


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"the ray executor needs Ray, which is not installed; install it with `{INSTALL}`") from None
    return ray


class RayExecutor:
    """A context manager: entering connects to (or starts) Ray, leaving stops what it started."""

    name = "ray"

    def __init__(self, address: str | None = None, log: Callable[[str], None] | None = None):
        self.address = address
        self.log = log or (lambda _message: None)
        self.owns_session = False
        self.cpus = 0
        self._ray: Any = None
        self._remotes: dict[str, Any] = {}

    # -- the session ----------------------------------------------------------------------------
    def __enter__(self) -> RayExecutor:
        ray = self._ray = import_ray()
        if ray.is_initialized():
            where = "the Ray session already open in this process"
        else:
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            if address:
                _check_listening(address)
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                    where = f"the Ray cluster at {address}"
                else:
                    # "local": a new instance, never one some other `ray start` left on this machine
                    ray.init(
                        address="local",
                        num_cpus=default_workers(),
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.ERROR,
                    )
                    where = "a local Ray instance started for this command"
            except ConnectionError as exc:
                hint = (
                    "; if the cluster uses token authentication, set RAY_AUTH_MODE=token here too"
                    if not os.environ.get("RAY_AUTH_MODE")
                    else ""
                )
                raise UsageError(f"could not connect to the Ray cluster at {address} ({exc}){hint}") from None
            except BaseException:
                ray.shutdown()  # Ctrl-C while starting: no half-started instance left behind
                raise
            self.owns_session = True
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.log(f"ray: {where} ({self.cpus} CPUs)")
        return self

    def __exit__(self, *exc) -> None:
        if self.owns_session and self._ray is not None:
            import signal
            import threading

            # a second Ctrl-C must not leave a half-stopped instance behind
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self._ray.shutdown()
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
            self.owns_session = False

    def _remote(self, fn: Callable[..., Any], **options: Any):
        key = f"{fn.__module__}.{fn.__qualname__}:{sorted(options.items())}"
        if key not in self._remotes:
            self._remotes[key] = self._ray.remote(**options)(fn)
        return self._remotes[key]

    def check_reachable(self, uri: str) -> None:
        """Refuse a graph store on this machine's loopback address when tasks may run on other nodes."""
        import ipaddress
        from urllib.parse import urlsplit

        host = urlsplit(uri).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return
        here = self._ray.util.get_node_ip_address()
        others = {n["NodeManagerAddress"] for n in self._ray.nodes() if n.get("Alive")} - {here}
        if others:
            raise UsageError(
                f"the graph store at {uri} is on this machine, which Ray workers on {len(others)} other "
                "node(s) cannot reach; set NEO4J_URI to a Neo4j server every node can reach (docs/scale.md)"
            )

    # -- work -------------------------------------------------------------------------------------
    def _stream(
        self, remote, calls: Sequence[tuple], window: int, grace: float
    ) -> Generator[tuple[int, Any, BaseException | None], None, None]:
        """Submit calls with at most `window` in flight; yield (index, value, Ray error) as they finish.
        Leaving early (Ctrl-C, an error in the consumer) cancels every task not finished."""
        ray = self._ray
        pending: dict[Any, int] = {}
        submitted = 0
        try:
            while submitted < len(calls) or pending:
                while submitted < len(calls) and len(pending) < window:
                    pending[remote.remote(*calls[submitted])] = submitted
                    submitted += 1
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_SECONDS)
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        value, error = ray.get(ref), None
                    except ray.exceptions.RayError as exc:
                        value, error = None, exc
                    yield index, value, error
        finally:
            if pending:
                self._cancel(list(pending), grace)

    def _cancel(self, refs: list, grace: float) -> None:
        ray = self._ray
        if grace > 0:
            for ref in refs:
                ray.cancel(ref)  # KeyboardInterrupt in the task: it can clean up
            deadline = time.monotonic() + grace
            try:
                while refs and time.monotonic() < deadline:
                    _, refs = ray.wait(refs, num_returns=len(refs), timeout=_POLL_SECONDS)
            except KeyboardInterrupt:
                pass  # another Ctrl-C: stop them now
        for ref in refs:
            ray.cancel(ref, force=True)

    def map_pairs(
        self, masks: Sequence[Masks], pairs: Sequence[Pair], method: str, workers: int | None, on_progress: Progress
    ) -> list[PairValue]:
        total = len(pairs)
        workers = max(1, min(workers or self.cpus, total))
        parts = chunks(pairs, workers)
        # in a list, so that tasks get the reference itself and fetch the masks once per worker
        box = [self._ray.put(list(masks))]
        remote = self._remote(_pairs_task, num_cpus=1)
        self.log(f"ray: {total} NNSTD pair(s) in {len(parts)} task(s), {workers} at a time")
        out: list[PairValue] = []
        # closing: a failed chunk cancels the others now, not when the generator is collected
        with contextlib.closing(self._stream(remote, [(box, part, method) for part in parts], workers, 0.0)) as done:
            for index, values, error in done:
                if error is not None:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, PairsFailed):
                        raise cause from None
                    raise PairsFailed(parts[index], _one_line(error), "a Ray task") from None
                out.extend(values)
                on_progress(len(out), total)
        return out

    def map_tasks(
        self, fn: Callable[..., Any], calls: Sequence[tuple], workers: int | None
    ) -> Generator[tuple[int, Any, str | None], None, None]:
        remote = self._remote(fn, num_cpus=1, max_retries=0)
        with contextlib.closing(self._stream(remote, calls, workers or self.cpus, GRACE_SECONDS)) as done:
            for index, value, error in done:
                yield index, value, None if error is None else _one_line(error)


def _check_listening(address: str) -> None:
    """Fail in one sentence when nothing listens at a host:port address: ray.init would retry for minutes."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray resolves them
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(
            f"nothing answers at the Ray address {address} ({exc.strerror or exc}); "
            "start the cluster, or correct --ray-address or RAY_ADDRESS"
        ) from None


def _one_line(error: BaseException) -> str:
    """A Ray error as `Kind: message`, without the worker's traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


# -- on the workers -------------------------------------------------------------------------------

_FETCHED: tuple[Any, Sequence[Masks]] | None = None


def _pairs_task(box: list, chunk: list[Pair], method: str) -> list[PairValue]:
    global _FETCHED
    import ray

    key = box[0].hex()
    if _FETCHED is None or _FETCHED[0] != key:
        _FETCHED = None  # the previous call's masks go before the next ones arrive
        _FETCHED = (key, ray.get(box[0]))
    return compute_chunk(_FETCHED[1], chunk, method)
