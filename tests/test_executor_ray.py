"""`--executor ray` (issue 15), on a local Ray instance of 2 CPUs: the same bits as the local
executor for matrix and evolution, failing tasks named, a sweep that goes on past a failed run,
and a real Ctrl-C that cancels the tasks, stops the instance and stores nothing.

Tests in this process share one Ray instance (the executor uses a session that is already open
and leaves it running); the CLI tests start their own, as a user's command does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.analysis.executors import LocalExecutor
from sparsetopo.analysis.nnstd_parallel import NNSTDTaskError, nnstd_matrix, nnstd_pairs
from sparsetopo.errors import UsageError
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.npz_io import write_snapshot_dir
from sparsetopo.graphstore.synthetic import synthetic_run

ray: Any
try:
    import ray
except ImportError:  # the test set-up installs the ray extra; a bare environment skips these
    ray = None


def requires_ray(test):
    skip = pytest.mark.skipif(
        ray is None, reason="ray is not installed: pip install 'sparsetopo[ray]' (make setup-test)"
    )
    return pytest.mark.ray(skip(test))


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance with 2 CPUs for the tests of this process."""
    assert ray is not None
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init installs its own
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        yield
    finally:
        if started:
            ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture
def ray_executor(ray_session):
    from sparsetopo.ray_executor import RayExecutor

    with RayExecutor() as ex:
        yield ex


def random_network(sizes, density, rng):
    return [
        sp.random(sizes[k], sizes[k + 1], density=density, random_state=rng, format="csr", dtype=np.float32)
        for k in range(len(sizes) - 1)
    ]


def _cli(*args):
    return [sys.executable, "-m", "sparsetopo.cli", *map(str, args)]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_for_task(proc, name: str, timeout: float = 120.0) -> None:
    """Until one of proc's Ray workers executes the task `name` (Ray names the process after it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended first"
        for pid in _descendants(proc.pid):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(f"ray::{name}".encode()):
                    return
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no Ray worker ran {name}")


def _assert_gone(pids: set[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pids), f"processes the command started outlived it: {sorted(_alive(pids))}"


# -- without Ray ---------------------------------------------------------------------------------


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch):
    from sparsetopo.workspace import Workspace

    dirs = []
    for snap in synthetic_run("x", [12, 8, 4], 0.3, 0.3, 1, seed=1):
        dirs.append(str(write_snapshot_dir(snap, tmp_path / f"s{snap.step}")))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(UsageError, match=r"install it with `pip install 'sparsetopo\[ray\]'`$"):
        Workspace().nnstd_matrix(dirs, executor="ray")
    code = "import sys; sys.modules['ray'] = None; from sparsetopo.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "nnstd", "matrix", *dirs, "--executor", "ray"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error: the ray executor needs Ray, which is not installed; install it with `pip install 'sparsetopo[ray]'`"
    )


def test_a_ray_address_needs_the_ray_executor():
    from sparsetopo.workspace import Workspace

    with pytest.raises(UsageError, match="needs the ray executor"):
        Workspace().nnstd_matrix(["a", "b"], ray_address="10.0.0.1:6379")
    with pytest.raises(UsageError, match="unknown executor 'dask'; choose one of: local, ray"):
        Workspace().nnstd_matrix(["a", "b"], executor="dask")


def test_a_store_on_loopback_is_refused_when_tasks_may_run_on_other_nodes():
    from types import SimpleNamespace

    from sparsetopo.ray_executor import RayExecutor

    ex = RayExecutor()
    nodes = [{"Alive": True, "NodeManagerAddress": "10.0.0.1"}, {"Alive": True, "NodeManagerAddress": "10.0.0.2"}]
    ex._ray = SimpleNamespace(util=SimpleNamespace(get_node_ip_address=lambda: "10.0.0.1"), nodes=lambda: nodes)
    with pytest.raises(UsageError, match=r"bolt://127.0.0.1:7687 is on this machine.*1 other node"):
        ex.check_reachable("bolt://127.0.0.1:7687")
    ex.check_reachable("neo4j://neo4j.internal:7687")  # a shared server: fine
    nodes.pop()
    ex.check_reachable("bolt://localhost:7687")  # one node: the workers are on this machine


# -- NNSTD on Ray, no graph store ------------------------------------------------------------------


@requires_ray
@pytest.mark.parametrize("method", ["exact", "sparse"])
@pytest.mark.parametrize("workers", [1, 2])
def test_matrix_on_ray_is_bit_for_bit_the_local_matrix(ray_executor, method, workers):
    rng = np.random.default_rng(21)
    # different hidden widths (unmatched neurons) and small 0/1 layers with many tied costs
    nets = [random_network([40, 30, 20, 5], 0.15, rng) for _ in range(5)]
    nets += [random_network([40, 24, 20, 5], 0.2, rng) for _ in range(2)]
    nets += [[(m != 0).astype(np.float32) for m in random_network([40, 6, 6, 5], 0.5, rng)] for _ in range(2)]
    seen = []
    on_ray = nnstd_matrix(nets, method, workers, lambda d, t: seen.append((d, t)), executor=ray_executor)
    local = nnstd_matrix(nets, method, 2, executor=LocalExecutor())
    assert np.array_equal(on_ray["distance"], local["distance"])
    assert np.array_equal(on_ray["layers"], local["layers"])
    assert seen[-1] == (36, 36) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # arbitrary pairs, repeated ones included, come back in the order asked
    pairs = [(3, 1), (0, 8), (3, 1), (7, 2)]
    assert nnstd_pairs(nets, pairs, method, executor=ray_executor) == nnstd_pairs(nets, pairs, method, workers=1)


@requires_ray
def test_using_sends_pairs_without_an_explicit_executor_to_ray(ray_executor, monkeypatch):
    from sparsetopo.analysis import executors

    rng = np.random.default_rng(3)
    nets = [random_network([20, 10, 4], 0.3, rng) for _ in range(4)]
    calls = []
    real = ray_executor.map_pairs
    monkeypatch.setattr(ray_executor, "map_pairs", lambda *a: calls.append(len(a[1])) or real(*a))
    with executors.using(ray_executor):
        inside = nnstd_matrix(nets)
    assert calls == [6]
    assert np.array_equal(inside["distance"], nnstd_matrix(nets, workers=1)["distance"])


@requires_ray
def test_a_failing_pair_task_names_its_pair_and_worker(ray_executor):
    rng = np.random.default_rng(4)
    nets = [random_network([20, 10, 8, 4], 0.3, rng) for _ in range(3)]

    class Damaging:
        """Loses network 1's last layer on the way to the workers, so its pairs fail there."""

        name = "damaging"

        def map_pairs(self, masks, pairs, method, workers, on_progress):
            damaged = [m if k != 1 else m[:-1] for k, m in enumerate(masks)]
            return ray_executor.map_pairs(damaged, pairs, method, workers, on_progress)

    with pytest.raises(NNSTDTaskError) as info:
        nnstd_pairs(nets, [(2, 0), (1, 0)], names=["a", "b", "c"], executor=Damaging())
    message = str(info.value).splitlines()[0]
    assert message.startswith("NNSTD(b, a) failed in process ")
    assert message.endswith("NNSTDError: the networks have different numbers of layers (2 and 3)")
    assert "nnstd_masks" in info.value.details  # the worker's traceback


@requires_ray
def test_a_task_whose_worker_dies_is_reported_and_the_others_finish(ray_executor):
    def job(k):
        if k == 2:
            os._exit(3)  # the worker process dies mid-task
        if k == 4:
            raise ValueError("bad input 4")
        return k * k

    results = {
        index: (value, error) for index, value, error in ray_executor.map_tasks(job, [(k,) for k in range(6)], 2)
    }
    assert sorted(results) == list(range(6))
    assert {k: v for k, (v, e) in results.items() if e is None} == {0: 0, 1: 1, 3: 9, 5: 25}
    assert results[4][1] == "ValueError: bad input 4"
    assert results[2][1].startswith("WorkerCrashedError")


@requires_ray
def test_the_cli_matrix_on_ray_prints_what_the_local_one_prints_and_stops_its_instance(tmp_path):
    dirs = [str(write_snapshot_dir(s, tmp_path / f"s{s.step}")) for s in synthetic_run("x", [30, 20, 8], 0.2, 0.3, 4)]
    local = subprocess.run(_cli("nnstd", "matrix", *dirs, "--json"), capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    env = os.environ.copy()
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        _cli("nnstd", "matrix", *dirs, "--json", "--executor", "ray"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = set()
    while proc.poll() is None:
        seen |= _descendants(proc.pid)
        time.sleep(0.1)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert out == local.stdout
    assert "ray: a local Ray instance started for this command (2 CPUs)" in err
    assert seen, "the command started no Ray processes"
    _assert_gone(seen)


# -- with the graph store --------------------------------------------------------------------------


def _store_synthetic(store, run_id, sizes, density, churn, steps, seed=0):
    snaps = list(synthetic_run(run_id, sizes, density, churn, steps, seed=seed))
    store.create_run(RunInfo(run_id=run_id, architecture=sizes, method="set"))
    for s in snaps:
        store.write_snapshot(s)
    return snaps


def _stored_nnstd(store, run_id):
    return store.read(
        "MATCH (a:Snapshot {run_id: $r})-[d:NNSTD]->(b:Snapshot {run_id: $r}) "
        "RETURN a.step AS a, b.step AS b, d.distance AS distance, d.layers AS layers, d.method AS method "
        "ORDER BY a, b",
        {"r": run_id},
    )


@requires_ray
@pytest.mark.parametrize("reference", ["initial", "previous"])
def test_evolution_on_ray_stores_what_the_local_executor_stores(store, ray_session, reference):
    import sparsetopo

    _store_synthetic(store, "evo-ray", [50, 40, 30, 10], 0.15, 0.3, 6, seed=2)
    with sparsetopo.connect() as ws:
        on_ray = ws.nnstd_evolution("evo-ray", reference=reference, executor="ray", workers=2)
        stored_ray = _stored_nnstd(store, "evo-ray")
        local = ws.nnstd_evolution("evo-ray", reference=reference, executor="local", workers=2)
    assert on_ray == local
    assert len(stored_ray) == 6 and stored_ray == _stored_nnstd(store, "evo-ray")
    assert [(r["a"], r["b"]) for r in stored_ray] == sorted((r["reference_step"], r["step"]) for r in local)
    assert [r["distance"] for r in stored_ray] == [r["distance"] for r in sorted(local, key=lambda r: r["step"])]


@requires_ray
def test_a_sweep_on_ray_reports_each_failed_run_and_trains_the_rest(store, ray_executor, tmp_path):
    from sparsetopo.experiment import SCALES, plan, run_experiment

    # epsilon -1: the trainer refuses it on the worker, after the run was claimed
    scale = dataclasses.replace(SCALES["tiny"], name="tiny-failing", seeds=(1,), epsilons=(4, -1), epochs=1)
    specs = plan(scale, "performance")
    bad = {s.run_id for s in specs if s.epsilon == -1}
    good = {s.run_id for s in specs} - bad
    assert len(bad) == 2 and len(good) == 3
    lines = []
    state = run_experiment(store, scale, tmp_path, lines.append, part="performance", executor=ray_executor)
    assert set(state.failed) == bad and set(state.trained) == good
    for run_id in bad:
        assert f"run {run_id} failed: ConfigError: epsilon must be positive; got -1" in lines
    assert all(store.get_run(r)["status"] == "completed" for r in good)
    assert all(store.get_run(r)["writer"] is None for r in good | bad)
    # resumable: the finished runs are skipped, the failed ones tried again
    lines.clear()
    again = run_experiment(store, scale, tmp_path, lines.append, part="performance", executor=ray_executor)
    assert set(again.skipped) == good and set(again.failed) == bad and again.trained == []


@requires_ray
def test_the_experiment_on_ray_gives_the_local_numbers(store, ray_session, tmp_path):
    import sparsetopo

    with sparsetopo.connect() as ws:
        on_ray = ws.experiment(scale="tiny", part="figure4", out=tmp_path / "ray", executor="ray")
        runs = {r["run_id"]: r for r in ws.runs()}
        local = ws.experiment(scale="tiny", part="figure4", out=tmp_path / "local", workers=1)
    assert len(runs) == 3 and all(r["status"] == "completed" for r in runs.values())
    f4_ray = json.loads(Path(on_ray["json"]).read_text())["figure4"]
    f4_local = json.loads(Path(local["json"]).read_text())["figure4"]
    for key in ("layer_mean", "initial_layer_mean", "random_reference", "survival"):
        assert f4_ray[key] == f4_local[key], key
    assert "--executor ray" in (tmp_path / "ray" / "results.md").read_text()


@requires_ray
def test_ctrl_c_during_evolution_on_ray_cancels_the_tasks_and_stores_nothing(store, tmp_path):
    # pairs of about half a second each (few snapshots: writing them is what takes time here)
    _store_synthetic(store, "slow", [2000, 2000, 10], 0.025, 0.01, 8, seed=1)
    figure = tmp_path / "evo.png"
    env = os.environ.copy()
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        _cli("nnstd", "evolution", "slow", "--executor", "ray", "--figure", figure),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        err = ""
        assert proc.stderr is not None
        while "NNSTD pair(s)" not in err:
            line = proc.stderr.readline()
            assert line, f"the command ended before computing: {err}"
            err += line
        _wait_for_task(proc, "_pairs_task")  # the pairs are being computed
        started = _descendants(proc.pid)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
    err += rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert took < 10, f"the command took {took:.1f} s to stop"
    assert _stored_nnstd(store, "slow") == []
    assert not figure.exists()
    _assert_gone(started)


@requires_ray
def test_ctrl_c_during_a_sweep_on_ray_marks_the_runs_in_flight_interrupted(store, tmp_path):
    from sparsetopo.graphstore.check import check_run

    env = os.environ.copy()
    env.pop("RAY_ADDRESS", None)
    cmd = ("experiment", "paper", "--scale", "tiny", "--part", "performance", "--out", tmp_path, "--executor", "ray")
    proc = subprocess.Popen(_cli(*cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not store.read("MATCH (s:Snapshot) RETURN s LIMIT 1") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        started = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    from sparsetopo.experiment import SCALES, plan

    runs = store.list_runs()
    statuses = [r["status"] for r in runs]
    assert runs and set(statuses) <= {"completed", "interrupted"}, runs
    # The sweep stopped: a run in flight was marked interrupted, or (when the signal landed between
    # two tiny runs) the runs not yet started were never begun.
    assert "interrupted" in statuses or statuses.count("completed") < len(plan(SCALES["tiny"], "performance"))
    assert all(r["writer"] is None for r in runs)
    for r in runs:
        report = check_run(store, r["run_id"])
        assert report["consistent"], report["problems"]
    _assert_gone(started)
