"""`sparsetopo evolution` and the lifetime summaries against a diff of the stored matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.analysis.churn import churn_table
from sparsetopo.graphstore.evolution import ensure_evolution
from sparsetopo.graphstore.model import RunInfo, Snapshot
from sparsetopo.graphstore.queries import run_named
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j

SIZES = [16, 12, 10, 4]
# Non-consecutive steps: lifetimes and ages are measured in step numbers, not snapshot counts.
STEPS = [0, 1, 3, 4, 7, 8]


def churned_snapshots(run_id: str = "churn") -> list[Snapshot]:
    """A synthetic SET-like run (random prune + regrow, so some connections regrow later),
    renumbered onto STEPS, with a step where layer 2 loses every synapse and one where it regrows."""
    snaps = list(synthetic_run(run_id, SIZES, 0.35, 0.3, len(STEPS) - 1, seed=7))
    out = []
    for snap, step in zip(snaps, STEPS):
        layers = list(snap.layers)
        if step == 4:
            layers[2] = sp.csr_matrix(layers[2].shape, dtype=np.float32)
        out.append(Snapshot(run_id, step, layers, snap.biases, snap.metrics, epoch=step))
    return out


def write_run(store, snaps: list[Snapshot]) -> None:
    store.create_run(RunInfo(snaps[0].run_id, snaps[0].architecture, method="synthetic"))
    for s in snaps:
        store.write_snapshot(s)


def stored_matrices(store, run_id: str) -> tuple[list[int], list[list[sp.csr_matrix]]]:
    steps = [s["step"] for s in store.list_snapshots(run_id)]
    return steps, [store.read_snapshot(run_id, t).layers for t in steps]


def lifetimes_from_matrices(steps, matrices):
    from sparsetopo.analysis.churn import lifetimes

    return lifetimes(steps, matrices)


@pytest.fixture
def churn_run(store):
    snaps = churned_snapshots()
    write_run(store, snaps)
    return snaps


def test_evolution_json_equals_diff_of_stored_matrices(store, cli, churn_run):
    r = cli("evolution", "churn", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    steps, matrices = stored_matrices(store, "churn")
    expected = churn_table(steps, matrices)
    assert len(rows) == len(STEPS) * (len(SIZES) - 1)
    assert any(e["appeared"] and e["vanished"] for e in expected[len(SIZES) :])  # the run really churns
    for got, want in zip(rows, expected):
        assert {k: got[k] for k in ("step", "layer", "alive", "appeared", "vanished", "initial_alive")} == {
            k: want[k] for k in ("step", "layer", "alive", "appeared", "vanished", "initial_alive")
        }
        assert got["initial_fraction"] == pytest.approx(want["initial_fraction"])
    # at the first step every synapse counts as appeared
    assert all(r["appeared"] == r["alive"] and r["vanished"] == 0 for r in rows if r["step"] == 0)


def test_evolution_layer_filter_and_csv(store, cli, churn_run):
    r = cli("evolution", "churn", "--layer", "2", "--csv")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "step,layer,alive,appeared,vanished,initial_alive,initial_fraction"
    assert len(lines) == 1 + len(STEPS)
    assert all(line.split(",")[1] == "2" for line in lines[1:])
    # the step where layer 2 lost everything
    row4 = next(line.split(",") for line in lines[1:] if line.startswith("4,"))
    assert row4[2] == "0" and row4[5] == "0"


def test_evolution_errors_are_one_sentence(store, cli, churn_run):
    r = cli("evolution", "nope")
    assert r.exit_code == 1 and r.stderr.strip().startswith("Error: there is no run 'nope'")
    r = cli("evolution", "churn", "--layer", "3")
    assert r.exit_code == 1
    assert r.stderr.strip() == "Error: run 'churn' has weight layers 0..2; there is no layer 3"


def test_summaries_from_lifetimes_agree_with_matrices(store, churn_run):
    ensure_evolution(store, "churn")
    steps, matrices = stored_matrices(store, "churn")
    lives = lifetimes_from_matrices(steps, matrices)
    last = steps[-1]
    # straight from the SYNAPSE relationships, step by step
    table = churn_table(steps, matrices)
    for t in steps:
        (got,) = run_named(store, "churn_at_step", {"run_id": "churn", "step": t})
        want = [r for r in table if r["step"] == t]
        assert (got["appeared"], got["vanished"], got["alive"]) == (
            sum(r["appeared"] for r in want),
            sum(r["vanished"] for r in want),
            sum(r["alive"] for r in want),
        )
        assert (got["stored_appeared"], got["stored_vanished"]) == (got["appeared"], got["vanished"])
    # lifetime distribution of completed lifetimes
    want = {}
    for layer, _, _, born, died in lives:
        if died is not None:
            want[(layer, died - born)] = want.get((layer, died - born), 0) + 1
    got = {(r["layer"], r["lifetime"]): r["synapses"] for r in run_named(store, "lifetimes", {"run_id": "churn"})}
    assert got == want and got
    # ages of the synapses alive at the last step and at step 3
    for step in (None, 3):
        t = last if step is None else step
        want = {}
        for layer, _, _, born, died in lives:
            if born <= t and (died is None or died > t):
                want[(layer, t - born)] = want.get((layer, t - born), 0) + 1
        got = {
            (r["layer"], r["age"]): r["synapses"] for r in run_named(store, "ages", {"run_id": "churn", "step": step})
        }
        assert got == want
    stored = store.read("MATCH (l:LayerSnapshot {run_id: 'churn'}) RETURN l.nnz AS nnz, l.evo_alive AS alive")
    assert all(r["nnz"] == r["alive"] for r in stored)


def test_summaries_are_incremental(store):
    snaps = churned_snapshots("grow")
    write_run(store, snaps[:3])
    assert ensure_evolution(store, "grow") == 3
    assert ensure_evolution(store, "grow") == 0
    for s in snaps[3:]:
        store.write_snapshot(s)
    assert ensure_evolution(store, "grow") == len(snaps) - 3
    steps, matrices = stored_matrices(store, "grow")
    got = run_named(store, "evolution", {"run_id": "grow"})
    assert [r["initial_alive"] for r in got] == [r["initial_alive"] for r in churn_table(steps, matrices)]


def test_synapse_lists_match_lifetimes(store, churn_run):
    steps, matrices = stored_matrices(store, "churn")
    lives = lifetimes_from_matrices(steps, matrices)
    big = 10**6
    for t in steps[1:]:
        got = {
            (r["layer"], r["source"], r["target"], r["died"])
            for r in run_named(store, "appeared_at", {"run_id": "churn", "step": t, "limit": big})
        }
        assert got == {(lay, i, j, d) for lay, i, j, b, d in lives if b == t}
        got = {
            (r["layer"], r["source"], r["target"], r["born"])
            for r in run_named(store, "vanished_at", {"run_id": "churn", "step": t, "layer": 1, "limit": big})
        }
        assert got == {(lay, i, j, b) for lay, i, j, b, d in lives if d == t and lay == 1}
    got = {
        (r["layer"], r["source"], r["target"]) for r in run_named(store, "survivors", {"run_id": "churn", "limit": big})
    }
    assert got == {(lay, i, j) for lay, i, j, b, d in lives if b == steps[0] and d is None}
    assert {lay for lay, _, _ in got} == {0, 1}  # layer 2 lost all its synapses at step 4 (layer 3: by chance)
    assert run_named(store, "survivors", {"run_id": "churn", "layer": 2}) == []
    assert len(run_named(store, "appeared_at", {"run_id": "churn", "step": steps[1], "limit": 2})) == 2
    # one hidden neuron's history: every lifetime into or out of neuron 3 of layer 1
    got = sorted(
        (r["direction"], r["other_index"], r["born"], r["died"])
        for r in run_named(store, "neuron_history", {"run_id": "churn", "layer": 1, "index": 3})
    )
    want = sorted(
        [("in", i, b, d) for lay, i, j, b, d in lives if lay == 0 and j == 3]
        + [("out", j, b, d) for lay, i, j, b, d in lives if lay == 1 and i == 3]
    )
    assert got == want and got


def test_degree_queries_match_matrices(store, churn_run):
    steps, matrices = stored_matrices(store, "churn")
    first = np.diff(matrices[0][0].indptr)
    last = np.diff(matrices[-1][0].indptr)
    got = run_named(store, "degrees", {"run_id": "churn", "step": steps[-1]})
    assert {r["neuron"]: r["degree"] for r in got} == {i: int(d) for i, d in enumerate(last) if d}
    got = run_named(store, "degree_change", {"run_id": "churn", "limit": 100})
    change = last - first
    want = sorted((i for i in range(first.size) if first[i] or last[i]), key=lambda i: (-abs(change[i]), i))
    assert [r["neuron"] for r in got] == want
    assert all(r["change"] == change[r["neuron"]] and r["from_step"] == 0 and r["to_step"] == steps[-1] for r in got)
