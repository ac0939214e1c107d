"""Training into the real graph store: read-back equality, interrupted and failed runs, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sparsetopo.graphstore.background import recording
from sparsetopo.graphstore.npz_io import read_run_dir
from sparsetopo.trainer.data import load_dataset
from sparsetopo.trainer.loop import TrainConfig, run_info, train

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _config(method="set", **kw):
    base = dict(dataset="digits", method=method, hidden=(32, 32), epochs=3, epsilon=4.0, seed=5, delta_t=10, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _assert_same(stored, snap, epoch=True):
    assert stored.step == snap.step
    if epoch:
        assert stored.epoch == snap.epoch
    for a, b in zip(stored.layers, snap.layers):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)  # bit-exact float32
    for a, b in zip(stored.biases, snap.biases):
        np.testing.assert_array_equal(a, b)


def _train_recorded(store, config, data, run_id, progress=None, write=None):
    kept = []
    with recording(store, run_info(config, data, run_id), maxsize=2, write=write) as sink:

        def tee(snapshot):
            kept.append(snapshot)
            sink(snapshot)

        train(config, data, tee, run_id, progress)
    return kept


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_a_trained_run_read_back_equals_the_in_memory_snapshots(store, digits, method):
    snaps = _train_recorded(store, _config(method), digits, f"{method}-run")
    run = store.get_run(f"{method}-run")
    assert run["status"] == "completed"
    assert run["dataset_source"] == "scikit-learn load_digits"
    assert run["method"] == method and list(run["architecture"]) == [64, 32, 32, 10]
    listed = store.list_snapshots(f"{method}-run")
    assert [s["step"] for s in listed] == [s.step for s in snaps]
    for row, snap in zip(listed, snaps):
        for name in ("train_loss", "test_accuracy", "density", "n_synapses", "added", "removed"):
            assert row[name] == pytest.approx(snap.metrics[name])
    for snap in snaps:
        _assert_same(store.read_snapshot(f"{method}-run", snap.step), snap)


def test_connections_grown_at_zero_are_stored_counted_and_exported(store, digits, tmp_path):
    """SET's Keras recipe grows connections at weight 0: they are connections in the store, the
    lifetimes, the evolution summaries and the npz files, not holes."""
    from sparsetopo.graphstore.npz_io import read_snapshot_dir, write_snapshot_dir

    snaps = _train_recorded(store, _config("set", recipe="keras"), digits, "zeros-run")
    last = snaps[-1]
    zero_conn = sum(int((m.data == 0).sum()) for m in last.layers)
    assert zero_conn > 0 and last.metrics["added"] > 0
    stored = store.read_snapshot("zeros-run", last.step)
    _assert_same(stored, last)
    assert sum(int((m.data == 0).sum()) for m in stored.layers) == zero_conn
    rows = store.read(
        "MATCH (:Neuron)-[s:SYNAPSE {run_id: $run}]->(:Neuron) WHERE s.born <= $t AND (s.died IS NULL OR s.died > $t) "
        "RETURN count(s) AS alive, sum(CASE WHEN s.born = $t AND s.weight_born = 0.0 THEN 1 ELSE 0 END) AS born_zero",
        {"run": "zeros-run", "t": last.step},
    )
    assert rows[0]["alive"] == last.n_synapses
    # every connection the last update grew was born at 0 (and got no training after it)
    assert rows[0]["born_zero"] == last.metrics["added"]
    out = write_snapshot_dir(stored, tmp_path / "last")
    again = read_snapshot_dir(out, run_id="zeros-run", step=last.step, epoch=last.epoch)
    _assert_same(again, last)


def test_an_interrupted_run_leaves_whole_snapshots_and_is_marked_interrupted(store, digits):
    def ctrl_c(event):
        if event["kind"] == "batch" and event["t"] == 30:  # during epoch 3 (14 batches per epoch)
            raise KeyboardInterrupt

    kept = []
    config = _config("set", epochs=5)
    with pytest.raises(KeyboardInterrupt):
        with recording(store, run_info(config, digits, "cut"), maxsize=2) as sink:

            def tee(snapshot):
                kept.append(snapshot)
                sink(snapshot)

            train(config, digits, tee, "cut", ctrl_c)
    assert [s.step for s in kept] == [0, 1, 2]
    assert store.get_run("cut")["status"] == "interrupted"
    assert [s["step"] for s in store.list_snapshots("cut")] == [0, 1, 2]
    for snap in kept:
        _assert_same(store.read_snapshot("cut", snap.step), snap)


_CTRL_C_AT_CREATION = """
import os, signal
from sparsetopo.graphstore.background import recording
from sparsetopo.graphstore.store import GraphStore
from sparsetopo.trainer.data import load_dataset
from sparsetopo.trainer.loop import TrainConfig, run_info

store = GraphStore.connect()
create = store.create_run

def create_then_ctrl_c(info):
    result = create(info)
    os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, as the run's node has just committed
    return result

store.create_run = create_then_ctrl_c
config = TrainConfig(dataset="digits", method="set", hidden=(32, 32), epochs=1, epsilon=4.0, seed=5)
try:
    with recording(store, run_info(config, load_dataset("digits"), "born-cut")):
        print("body ran", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_while_a_run_is_being_created_marks_it_interrupted_and_frees_it(store):
    # its own process: a Ctrl-C and its handler are process-wide
    proc = subprocess.run(
        [sys.executable, "-c", _CTRL_C_AT_CREATION], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["interrupted"], proc.stdout + proc.stderr
    run = store.get_run("born-cut")
    assert run["status"] == "interrupted" and run["writer"] is None


def test_a_writer_failure_reaches_training_and_marks_the_run_failed(store, digits):
    class DiskFull(RuntimeError):
        pass

    def write(snapshot):
        if snapshot.step == 2:
            raise DiskFull("cannot write step 2")
        store.write_snapshot(snapshot)

    with pytest.raises(DiskFull):
        _train_recorded(store, _config("static", epochs=6), digits, "broken", write=write)
    assert store.get_run("broken")["status"] == "failed"
    assert [s["step"] for s in store.list_snapshots("broken")] == [0, 1]


def test_the_train_command_stores_the_run_and_writes_the_paper_format(store, tmp_path):
    out = tmp_path / "npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparsetopo.cli",
            "train",
            "--dataset",
            "digits",
            "--method",
            "rigl",
            "--hidden",
            "32,32",
            "--epochs",
            "2",
            "--epsilon",
            "4",
            "--delta-t",
            "8",
            "--seed",
            "2",
            "--threads",
            "1",
            "--run-id",
            "cli-run",
            "--npz-dir",
            str(out),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run_id"] == "cli-run" and summary["stored"] is True
    steps = [s["step"] for s in summary["steps"]]
    assert store.get_run("cli-run")["status"] == "completed"
    assert [s["step"] for s in store.list_snapshots("cli-run")] == steps
    from_files = list(read_run_dir(out, "cli-run"))
    assert [s.step for s in from_files] == steps
    for snap in from_files:
        # the paper's format names directories epoch_XXX; XXX is our step (RigL updates within epochs)
        _assert_same(store.read_snapshot("cli-run", snap.step), snap, epoch=False)
        assert snap.metrics["test_accuracy"] == pytest.approx(summary["steps"][snap.step]["test_accuracy"], abs=1e-6)


def test_the_train_command_says_when_it_is_waiting_for_the_store(store):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparsetopo.cli",
            "train",
            "--dataset",
            "digits",
            "--method",
            "static",
            "--hidden",
            "16",
            "--epochs",
            "1",
            "--epsilon",
            "4",
            "--threads",
            "1",
            "--run-id",
            "cli-bar",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "queued snapshot(s), finishing the run" in proc.stderr
    assert store.get_run("cli-bar")["status"] == "completed"


def test_train_command_errors_are_one_sentence(store):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparsetopo.cli",
            "train",
            "--dataset",
            "digits",
            "--method",
            "set",
            "--zeta",
            "1.5",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: zeta must be between 0 and 1 (exclusive); got 1.5"


def test_ctrl_c_on_the_train_command_leaves_a_consistent_interrupted_run(store):
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparsetopo.cli",
            "train",
            "--dataset",
            "digits",
            "--method",
            "set",
            "--hidden",
            "128,128",
            "--epochs",
            "500",
            "--epsilon",
            "8",
            "--threads",
            "1",
            "--run-id",
            "sigint",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = store.read("MATCH (s:Snapshot {run_id: 'sigint'}) RETURN count(s) AS n")
            if rows and rows[0]["n"] >= 3:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert store.get_run("sigint")["status"] == "interrupted"
    steps = [s["step"] for s in store.list_snapshots("sigint")]
    assert steps == list(range(len(steps))) and len(steps) >= 3
    first = store.read_snapshot("sigint", 0)
    for step in steps:
        snap = store.read_snapshot("sigint", step)
        assert [m.nnz for m in snap.layers] == [m.nnz for m in first.layers]  # whole snapshots only
