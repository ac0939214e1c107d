"""The graph store under concurrent writers, concurrent readers, kill -9 and Ctrl-C (issue 12).

Every multi-process case runs real `sparsetopo` processes against the session's real Neo4j
server; chunks are made tiny (SPARSETOPO_WRITE_CHUNK) so a step spans many transactions.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsetopo.graphstore.check import check_run
from sparsetopo.graphstore.evolution import ensure_evolution
from sparsetopo.graphstore.npz_io import write_snapshot_dir
from sparsetopo.graphstore.queries import run_named
from sparsetopo.graphstore.reader import snapshots_equal
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    env = os.environ | {"PYTHONPATH": str(ROOT), "SPARSETOPO_WRITE_CHUNK": "15"}
    return env | {k: str(v) for k, v in extra.items()}


def _cli(*args):
    return [sys.executable, "-m", "sparsetopo.cli", *map(str, args)]


def _npz_run(root, run_id="r", steps=6, sizes=(60, 40, 10), seed=4):
    snaps = list(synthetic_run(run_id, list(sizes), 0.3, 0.3, steps, seed=seed))
    for s in snaps:
        write_snapshot_dir(s, root / f"epoch_{s.step + 1:03d}")
    return snaps


def _wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _one_line_error(proc) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def _during_import(store, root, run_id, action):
    """Start `import npz` in its own process, run action() while it holds the run, let it finish.

    Returns (action's result, the import's stdout, its stderr, its exit status)."""
    writer = subprocess.Popen(
        _cli("import", "npz", root, "--run-id", run_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        _wait_for(lambda: _lease(store, run_id), what=f"the import of {run_id} to take the run")
        result = action()
        assert writer.poll() is None, "the import ended before the action; make its steps slower"
        out, err = writer.communicate(timeout=600)
    finally:
        if writer.poll() is None:
            writer.kill()
    return result, out, err, writer.returncode


def _lease(store, run_id):
    rows = store.read("MATCH (r:Run {run_id: $r}) RETURN r.writer_token AS token", {"r": run_id})
    return rows[0]["token"] if rows else None


def _incomplete(store, run_id):
    rows = store.read(
        "MATCH (s:Snapshot {run_id: $r}) WHERE s.complete IS NOT NULL RETURN s.step AS step", {"r": run_id}
    )
    return rows[0]["step"] if rows else None


def _state(store, run_id) -> dict:
    """Everything of a run that a refused writer could have changed."""
    q = {
        "nodes": "MATCH (n {run_id: $r}) RETURN labels(n)[0] AS k, count(*) AS n ORDER BY k",
        "synapses": "MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $r AND s.born IS NOT NULL "
        "RETURN count(s) AS n, sum(s.born) AS born, sum(coalesce(s.died, -1)) AS died, "
        "count(s.weight) AS weights",
        "run": "MATCH (r:Run {run_id: $r}) RETURN properties(r) AS p",
        "complete": "MATCH (s:Snapshot {run_id: $r}) RETURN s.step AS step, s.complete AS c ORDER BY step",
    }
    return {k: store.read(v, {"r": run_id}) for k, v in q.items()}


def assert_consistent(store, run_id, snaps):
    """No synapse born or dead at a step without a complete Snapshot, no overlapping lifetimes per
    neuron pair, every synapse with a weight, every step equal to what was written."""
    steps = {s["step"] for s in store.list_snapshots(run_id)}
    assert steps == {s.step for s in snaps}
    assert _incomplete(store, run_id) is None
    rows = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron) WHERE s.run_id = $r AND s.born IS NOT NULL "
        "RETURN s.layer AS k, a.index AS i, b.index AS j, s.born AS born, s.died AS died, s.weight AS w "
        "ORDER BY k, i, j, born",
        {"r": run_id},
    )
    assert rows
    assert all(r["born"] in steps and (r["died"] is None or r["died"] in steps) for r in rows)
    assert all(r["w"] is not None for r in rows)
    for prev, cur in zip(rows, rows[1:]):
        if (prev["k"], prev["i"], prev["j"]) == (cur["k"], cur["i"], cur["j"]):
            assert prev["died"] is not None and prev["died"] <= cur["born"], (prev, cur)
    for s in snaps:
        assert snapshots_equal(store.read_snapshot(run_id, s.step), s)
    report = check_run(store, run_id)
    assert report["consistent"], report["problems"]


# -- one writer per run ------------------------------------------------------------------------


def test_a_second_writer_of_a_live_run_is_refused_and_the_first_completes(store, tmp_path):
    # long enough that the second process (interpreter start included) runs while the first writes
    snaps = _npz_run(tmp_path / "run", "twice", steps=24, sizes=(120, 80, 10))
    second, out, err, code = _during_import(
        store,
        tmp_path / "run",
        "twice",
        lambda: subprocess.run(
            _cli("import", "npz", tmp_path / "run", "--run-id", "twice"),
            capture_output=True,
            text=True,
            env=_env(),
            timeout=300,
        ),
    )
    assert "is being written by another process" in _one_line_error(second)
    assert code == 0, err
    assert f"imported {len(snaps)} new snapshot(s)" in out
    assert store.get_run("twice")["status"] == "completed"
    assert _lease(store, "twice") is None  # released when the import finished
    assert_consistent(store, "twice", snaps)


def test_a_killed_writer_keeps_its_run_until_its_lease_expires_then_a_new_writer_resumes(store, tmp_path):
    snaps = _npz_run(tmp_path / "run", "dead", steps=5)
    env = _env(SPARSETOPO_WRITER_LEASE=8)
    first = subprocess.Popen(
        _cli("import", "npz", tmp_path / "run", "--run-id", "dead"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for(lambda: (_incomplete(store, "dead") or 0) >= 1, what="a chunked step in the middle of being written")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    half = _incomplete(store, "dead")
    assert half is not None
    before = _state(store, "dead")
    # The lease is still fresh: a second writer is refused and changes nothing.
    refused = subprocess.run(
        _cli("import", "npz", tmp_path / "run", "--run-id", "dead"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "is being written by another process" in _one_line_error(refused)
    assert _state(store, "dead") == before
    assert store.get_run("dead")["writer"] == "alive"
    # Readers skip the half-written step meanwhile.
    assert store.get_run("dead")["last_step"] == half - 1
    # No heartbeat: the run shows its writer gone, and a later writer rolls back and resumes.
    _wait_for(lambda: store.get_run("dead")["writer"] == "gone", timeout=30, what="the lease to expire")
    again = subprocess.run(
        _cli("import", "npz", tmp_path / "run", "--run-id", "dead"),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert store.get_run("dead")["status"] == "completed"
    assert store.get_run("dead")["writer"] is None
    assert_consistent(store, "dead", snaps)


# -- readers during a write ----------------------------------------------------------------------


def _expected_summaries(snaps):
    """Per (step, layer): connections alive, and the fraction of the first step's still in their first lifetime."""
    out = {}
    for k in range(len(snaps[0].layers)):
        first = {tuple(p) for p in zip(*snaps[0].layers[k].nonzero())}
        survivors = set(first)
        for s in snaps:
            now = {tuple(p) for p in zip(*s.layers[k].nonzero())}
            survivors &= now
            out[(s.step, k)] = (len(now), len(survivors) / len(first))
    return out


def test_readers_during_a_chunked_import_never_see_or_store_an_incomplete_step(store, tmp_path):
    snaps = _npz_run(tmp_path / "run", "busy", steps=8)
    writer = subprocess.Popen(
        _cli("import", "npz", tmp_path / "run", "--run-id", "busy"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    seen_incomplete = 0
    cli_evolution = None
    try:
        _wait_for(lambda: _lease(store, "busy"), what="the import to start")
        while writer.poll() is None:
            half = _incomplete(store, "busy")
            listed = next(r for r in store.list_runs() if r["run_id"] == "busy")
            complete = store.read(
                "MATCH (s:Snapshot {run_id: 'busy'}) WHERE s.complete IS NULL RETURN max(s.step) AS last, count(s) AS n"
            )[0]
            # runs list counts complete steps only
            assert listed["last_step"] is None or listed["last_step"] <= complete["last"]
            assert listed["snapshots"] <= complete["n"]
            ensure_evolution(store, "busy")  # what `sparsetopo evolution` does, against a live writer
            if half is not None:
                seen_incomplete += 1
                churn = run_named(store, "churn_at_step", {"run_id": "busy", "step": half})
                assert all(
                    r["appeared"] == r["stored_appeared"] and r["vanished"] == r["stored_vanished"] for r in churn
                )
                ages = run_named(store, "ages", {"run_id": "busy"})
                if ages:
                    last = store.read(
                        "MATCH (s:Snapshot {run_id: 'busy'}) WHERE s.complete IS NULL RETURN max(s.step) AS t"
                    )[0]["t"]
                    assert sum(r["synapses"] for r in ages) <= sum(m.nnz for m in snaps[last].layers)
            if cli_evolution is None and half is not None:
                cli_evolution = subprocess.Popen(
                    _cli("evolution", "busy", "--json"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=_env(),
                )
        out, err = writer.communicate(timeout=600)
        assert writer.returncode == 0, err
        if cli_evolution is not None:
            _, err = cli_evolution.communicate(timeout=300)
            assert cli_evolution.returncode == 0, err
    finally:
        for proc in (writer, cli_evolution):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert seen_incomplete > 0, "never caught the import in the middle of a step"
    expected = _expected_summaries(snaps)
    stored = store.read(
        "MATCH (l:LayerSnapshot {run_id: 'busy'}) RETURN l.step AS t, l.layer AS k, "
        "l.nnz AS nnz, l.evo_alive AS alive, l.evo_initial_fraction AS f"
    )
    assert len(stored) == len(expected)
    for r in stored:
        n, fraction = expected[(r["t"], r["k"])]
        assert r["nnz"] == n and r["alive"] == n, r
        assert r["f"] == pytest.approx(fraction, abs=1e-12), r
    printed = subprocess.run(
        _cli("evolution", "busy", "--json"), capture_output=True, text=True, env=_env(), timeout=300
    )
    for row in json.loads(printed.stdout):
        assert row["initial_fraction"] == pytest.approx(expected[(row["step"], row["layer"])][1], abs=1e-12)
    assert_consistent(store, "busy", snaps)


# -- runs check --------------------------------------------------------------------------------


def _stored_run(store, run_id, steps=5):
    from sparsetopo.graphstore.model import RunInfo

    snaps = list(synthetic_run(run_id, [20, 12, 4], 0.4, 0.3, steps, seed=8))
    store.create_run(RunInfo(run_id, snaps[0].architecture))
    for s in snaps:
        store.write_snapshot(s)
    store.set_run_status(run_id, "completed")
    return snaps


def test_check_finds_corrupted_summaries_counts_and_weights_and_repair_fixes_them(store, cli):
    snaps = _stored_run(store, "sick")
    assert cli("runs", "check", "sick").exit_code == 0
    store.write(
        "MATCH (l:LayerSnapshot {run_id: 'sick', step: 3, layer: 0}) "
        "SET l.evo_alive = l.evo_alive + 1000, l.evo_initial_fraction = 0.8245, l.appeared = 0"
    )
    store.write("MATCH ()-[s:SYNAPSE {run_id: 'sick'}]->() WITH s LIMIT 3 REMOVE s.weight")
    store.write("MATCH ()-[s:SYNAPSE {run_id: 'sick'}]->() WHERE s.died IS NOT NULL WITH s LIMIT 2 SET s.weight = 99.0")
    found = cli("runs", "check", "sick", "--json")
    assert found.exit_code == 1
    report = json.loads(found.stdout)
    assert not report["consistent"] and all(p["repairable"] for p in report["problems"])
    what = " ".join(p["problem"] for p in report["problems"])
    assert (
        "lifetime summaries" in what and "stored counts" in what and "5 synapse(s) without their latest weight" in what
    )
    assert "--repair" in found.stderr.strip().splitlines()[-1]
    fixed = cli("runs", "check", "sick", "--repair")
    assert fixed.exit_code == 0, fixed.stderr
    assert "is consistent" in fixed.stdout
    assert cli("runs", "check", "sick").exit_code == 0
    # the repaired run answers like a healthy one
    rows = {(r["step"], r["layer"]): r for r in run_named(store, "evolution", {"run_id": "sick", "layer": None})}
    expected = _expected_summaries(snaps)
    assert rows[(3, 0)]["initial_fraction"] == pytest.approx(expected[(3, 0)][1])
    assert rows[(3, 0)]["appeared"] == len(
        set(zip(*snaps[3].layers[0].nonzero())) - set(zip(*snaps[2].layers[0].nonzero()))
    )
    assert_consistent(store, "sick", snaps)


def test_check_reports_lifetimes_it_cannot_rebuild_and_exits_non_zero(store, cli):
    _stored_run(store, "broken")
    store.write("MATCH ()-[s:SYNAPSE {run_id: 'broken', born: 0}]->() WITH s LIMIT 1 DELETE s")
    for args in (("runs", "check", "broken"), ("runs", "check", "broken", "--repair")):
        r = cli(*args)
        assert r.exit_code == 1
        assert "delete it and write it again" in r.stderr
        assert "Traceback" not in r.stderr


def test_lifetimes_that_contradict_themselves_show_their_traceback_not_one_sentence(store, cli):
    _stored_run(store, "damaged")
    # synapses that died at step 1 now claim a later birth: the summaries cannot be rebuilt
    store.write("MATCH (l:LayerSnapshot {run_id: 'damaged'}) REMOVE l.evo_alive_born")
    store.write("MATCH ()-[s:SYNAPSE {run_id: 'damaged', died: 1}]->() SET s.born = 3")
    r = cli("evolution", "damaged", "--json")
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "LifetimeInconsistency" in r.stderr, r.stderr
    assert cli("runs", "show", "nosuchrun").stderr.strip().startswith("Error: there is no run 'nosuchrun'")


def test_an_import_that_fails_half_way_marks_its_run_failed(store, tmp_path):
    snaps = _npz_run(tmp_path / "run", "halfway", steps=4, sizes=(20, 12, 4))
    (tmp_path / "run" / "epoch_003" / "weight_l1.npz").write_bytes(b"not an npz file")
    r = subprocess.run(
        _cli("import", "npz", tmp_path / "run", "--run-id", "halfway"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    _one_line_error(r)
    run = store.get_run("halfway")
    assert run["status"] == "failed" and run["writer"] is None
    assert run["snapshots"] == 2
    assert_consistent(store, "halfway", snaps[:2])
