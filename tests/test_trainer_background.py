"""The background snapshot sink's queue discipline (plain write callables; the store itself is
exercised against real Neo4j in test_trainer_store.py)."""

import threading
import time

import pytest
import scipy.sparse as sp

from sparsetopo.graphstore.background import BackgroundWriter
from sparsetopo.graphstore.model import Snapshot


def _snap(step):
    return Snapshot(
        run_id="r", step=step, layers=[sp.random(4, 3, density=0.5, format="csr", random_state=step) + sp.eye(4, 3)]
    )


def test_everything_queued_is_written_in_order_on_close():
    written = []

    def slow_write(s):
        time.sleep(0.01)
        written.append(s.step)

    with BackgroundWriter(slow_write, maxsize=2) as sink:
        for step in range(10):
            sink(_snap(step))
    assert written == list(range(10))
    assert sink.written == 10 and sink.dropped == 0


def test_training_blocks_only_when_the_queue_is_full():
    release = threading.Event()
    written = []

    def blocked_write(s):
        release.wait(5)
        written.append(s.step)

    sink = BackgroundWriter(blocked_write, maxsize=2)
    sink(_snap(0))  # taken by the writer thread, which now blocks
    time.sleep(0.1)
    sink(_snap(1))
    sink(_snap(2))  # queue holds 2: still no waiting
    assert sink.wait_seconds < 0.1
    threading.Timer(0.3, release.set).start()
    sink(_snap(3))  # must wait until the writer frees a slot
    assert sink.wait_seconds >= 0.2
    sink.close()
    assert written == [0, 1, 2, 3]


def test_a_writer_error_surfaces_in_the_training_thread():
    class Boom(RuntimeError):
        pass

    def failing_write(s):
        if s.step == 1:
            raise Boom("database went away")

    sink = BackgroundWriter(failing_write, maxsize=1)
    sink(_snap(0))
    sink(_snap(1))
    with pytest.raises(Boom, match="database went away"):
        for step in range(2, 50):  # a later hand-over raises the writer's error
            sink(_snap(step))
            time.sleep(0.01)
    sink.close()  # raised once already: closing is quiet
    assert sink.written == 1


def test_an_error_at_the_end_is_raised_by_close():
    def failing_write(s):
        raise ValueError("no space left")

    sink = BackgroundWriter(failing_write)
    sink(_snap(0))
    with pytest.raises(ValueError, match="no space"):
        sink.close()


def test_close_without_drain_drops_whole_queued_snapshots_only():
    started, release = threading.Event(), threading.Event()
    written = []

    def write(s):
        started.set()
        release.wait(5)
        written.append(s.step)

    sink = BackgroundWriter(write, maxsize=5)
    for step in range(4):
        sink(_snap(step))
    started.wait(5)
    threading.Timer(0.2, release.set).start()
    sink.close(drain=False)
    assert written == [0]  # the transaction in flight finishes; the queued ones are dropped whole
    assert sink.dropped == 3
