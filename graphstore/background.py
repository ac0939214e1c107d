"""A snapshot sink that writes on a background thread, so training rarely waits on the database.

Snapshots pass through a bounded queue: training only blocks when the writer is `maxsize`
snapshots behind. Each snapshot is one transaction (store.write_snapshot), so the store only
ever holds whole snapshots. An error in the writer thread is raised in the training thread at
its next hand-over (or at close); after an error the writer discards what is still queued.
On exit the queue is drained (queued snapshots are complete, so they are worth keeping); a
second Ctrl-C while draining drops the rest, whole snapshots only. Further Ctrl-C never cut short
the transaction in flight or the marking of the run: the training thread waits for both.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .driver import server_gone
from .errors import RunConflictError
from .model import RunInfo, Snapshot

_STOP = object()
# Snapshots the writer may fall behind. A dense MNIST network's first step (2.8M new lifetimes)
# takes the server far longer than a later one, and training goes on meanwhile; each queued
# snapshot of such a network holds ~23 MB (2.8M float32 weights and int32 indices).
DEFAULT_QUEUE = 8


class BackgroundWriter:
    """Call it with a Snapshot to queue it; use as a context manager (or call close())."""

    def __init__(self, write: Callable[[Snapshot], object], maxsize: int = DEFAULT_QUEUE):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._error: BaseException | None = None
        self._error_raised = False
        self._drop = threading.Event()
        self._closed = False
        self._stop_sent = False
        self.written = 0
        self.stored = 0  # writes that stored something (a write returning False stored nothing)
        self._finished = threading.Event()
        self.dropped = 0
        self.wait_seconds = 0.0  # time the training thread spent blocked on a full queue
        self.write_seconds = 0.0  # time the writer thread spent in transactions
        self.finish_seconds = 0.0  # time recording() spent marking the run (latest weights, summaries)
        self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._finished.set()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is not None or self._drop.is_set():
                    self.dropped += 1
                    continue
                started = time.perf_counter()
                try:
                    if self._write(item) is not False:
                        self.stored += 1
                    self.written += 1
                except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                    self._error = exc
                    self.dropped += 1
                finally:
                    self.write_seconds += time.perf_counter() - started
            finally:
                self._queue.task_done()

    def _raise_pending(self) -> None:
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise self._error

    def __call__(self, snapshot: Snapshot) -> None:
        if self._closed:
            raise RuntimeError("this snapshot writer is closed")
        self._raise_pending()
        started = time.perf_counter()
        while True:
            try:
                self._queue.put(snapshot, timeout=0.2)
                break
            except queue.Full:
                self._raise_pending()  # the writer may have failed while we wait
        self.wait_seconds += time.perf_counter() - started

    @property
    def error(self) -> BaseException | None:
        """The writer thread's error, if it failed."""
        return self._error

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, drain: bool = True) -> None:
        """Stop the thread after writing (drain) or discarding what is queued; raise a writer error."""
        if not self._closed:
            self._closed = True
            if not drain:
                self._drop.set()
            try:
                self._join()
            except KeyboardInterrupt:
                # A second Ctrl-C: keep only the transaction in flight, drop whole queued snapshots.
                self._drop.set()
                wait_through_interrupts(self._join)
                raise
        self._raise_pending()

    def _join(self) -> None:
        # Not Thread.join()/is_alive(): in Python 3.11 a KeyboardInterrupt that interrupts join()
        # leaves is_alive() False while the thread is still inside a transaction.
        while not self._stop_sent and not self._finished.is_set():
            try:
                self._queue.put(_STOP, timeout=0.2)
                self._stop_sent = True
            except queue.Full:
                continue
        while not self._finished.wait(0.2):
            pass

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close(drain=True)
            return
        # The body failed: keep what is queued, but let the body's exception win.
        try:
            self.close(drain=True)
        except BaseException:  # noqa: BLE001
            pass


def wait_through_interrupts(work: Callable[[], object]) -> bool:
    """Run `work` to its end on this thread's behalf even if Ctrl-C is pressed meanwhile.

    `work` runs on a helper thread (KeyboardInterrupt only ever reaches the main thread); returns
    whether Ctrl-C was pressed while waiting. work's own exception is re-raised."""
    done = threading.Event()
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="uninterruptible", daemon=True).start()
    interrupted = False
    while True:
        try:
            if done.wait(0.2):
                break
        except KeyboardInterrupt:
            interrupted = True
    if "error" in outcome:
        raise outcome["error"]
    return interrupted


@contextmanager
def recording(
    store, info: RunInfo, maxsize: int = DEFAULT_QUEUE, write: Callable[[Snapshot], object] | None = None
) -> Iterator[BackgroundWriter]:
    """Create the run, yield a background sink for its snapshots, and mark how the run ended.

    `write` replaces store.write_snapshot, e.g. to also write files from the writer thread.

    completed: the body finished and every snapshot was written; interrupted: Ctrl-C;
    failed: any other error (in training or in the writer). Stored snapshots are always whole.
    """
    existed = _run_exists(store, info.run_id)

    def begin() -> None:
        store.create_run(info)
        # One writer per run: refused here (RunBusyError), before training, with nothing changed.
        store.claim_run(info.run_id)

    # To its end even through Ctrl-C: a run created but left before the `try` below would stay
    # "running" with its lease held (a sweep's Ctrl-C lands anywhere in a run's start).
    interrupted_at_start = wait_through_interrupts(begin)
    status = "failed"
    writer = None
    refused = False
    try:
        if interrupted_at_start:
            raise KeyboardInterrupt
        with BackgroundWriter(write or store.write_snapshot, maxsize) as writer:
            yield writer
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except RunConflictError:
        refused = True
        raise
    finally:
        # A refusal (the first step conflicts with the stored run) does not touch the run it refused.
        untouched = refused and existed and (writer is None or writer.stored == 0)
        started = time.perf_counter()
        try:
            if untouched:
                store.writer.release(info.run_id)
            elif writer is not None and writer.error is not None and server_gone(writer.error):
                # The server is gone: marking the run would only retry for the driver's 30 s. Its
                # lease stops beating, so readers see the writer as gone; committed steps are whole.
                pass
            else:
                # The latest weights and the status are written to their end, whatever Ctrl-C says.
                interrupted = wait_through_interrupts(lambda: store.set_run_status(info.run_id, status))
                if writer is not None:
                    writer.finish_seconds = time.perf_counter() - started
                if interrupted and status == "completed":
                    raise KeyboardInterrupt
        except Exception:
            if status == "completed":
                raise
            # The original error matters more than a failed status update (e.g. the server is gone).


def _run_exists(store, run_id: str) -> bool:
    from .errors import UnknownRunError

    try:
        store.get_run(run_id)
    except UnknownRunError:
        return False
    return True
