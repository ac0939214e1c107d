"""`sparsetopo train` refusals and Ctrl-C, with real processes and real SIGINT (issue 12, items 4 and 5)."""

import signal
import subprocess
import time

import pytest
from test_store_faults import _cli, _env, _incomplete, _one_line_error, _wait_for

from sparsetopo.graphstore.check import check_run

pytestmark = pytest.mark.neo4j


def _train(*extra, run_id, env=None, **kw):
    args = [
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
        "--quiet",
        "--run-id",
        run_id,
        *extra,
    ]
    return subprocess.run(_cli(*args), capture_output=True, text=True, env=env or _env(), timeout=600, **kw)


def test_a_refused_train_does_not_touch_the_run_it_refused(store):
    assert _train("--seed", "1", run_id="taken").returncode == 0
    before = store.get_run("taken")
    assert before["status"] == "completed"
    steps = store.list_snapshots("taken")
    # the same run id with another topology: another initial topology, then other layer sizes
    for extra in (("--seed", "2"), ("--seed", "1", "--hidden", "8")):
        refused = _train(*extra, run_id="taken")
        assert "taken" in _one_line_error(refused)
        after = store.get_run("taken")
        assert after["status"] == "completed"
        assert after == before
        assert store.list_snapshots("taken") == steps


def test_repeated_ctrl_c_during_train_leaves_every_step_complete_and_the_final_weights_right(store):
    # Tiny chunks: every step takes many transactions, so the signals land while one is in flight.
    env = _env(SPARSETOPO_WRITE_CHUNK=10)
    proc = subprocess.Popen(
        _cli(
            "train",
            "--dataset",
            "digits",
            "--method",
            "set",
            "--hidden",
            "32,32",
            "--epochs",
            "30",
            "--epsilon",
            "4",
            "--threads",
            "1",
            "--quiet",
            "--seed",
            "3",
            "--run-id",
            "ctrl-c",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for(
            lambda: len(store.list_snapshots("ctrl-c")) >= 2 if _run_exists(store, "ctrl-c") else False,
            what="two stored steps",
        )
        _wait_for(lambda: _incomplete(store, "ctrl-c") is not None, what="a step being written")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    run = store.get_run("ctrl-c")
    assert run["status"] == "interrupted"
    assert run["writer"] is None
    assert _incomplete(store, "ctrl-c") is None
    # every stored step complete, lifetimes and summaries right, survivors carry the last step's weight
    report = check_run(store, "ctrl-c")
    assert report["consistent"], report["problems"]


def _run_exists(store, run_id):
    return bool(store.read("MATCH (r:Run {run_id: $r}) RETURN r", {"r": run_id}))
