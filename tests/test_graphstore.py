"""The graph store against a real Neo4j: lossless round trips, synapse lifetimes, idempotency, delete."""

import itertools
import logging

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsetopo.graphstore.errors import RunConflictError, UnknownRunError, UnknownSnapshotError
from sparsetopo.graphstore.model import RunInfo, Snapshot
from sparsetopo.graphstore.reader import snapshots_equal
from sparsetopo.graphstore.store import GraphStore
from sparsetopo.graphstore.synthetic import synthetic_run
from sparsetopo.topology import connection_keys

pytestmark = pytest.mark.neo4j
_ids = itertools.count()

SUBNORMALS = np.array([1e-45, -1e-45, 1.17e-38, -3e-39], dtype=np.float32)


@st.composite
def topologies(draw):
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 25), min_size=n_layers + 1, max_size=n_layers + 1))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers, biases = [], []
    for a, b in zip(sizes[:-1], sizes[1:]):
        density = draw(st.sampled_from([0.0, 0.05, 0.3, 0.8, 1.0]))
        m = (rng.random((a, b)) < density) * rng.standard_normal((a, b)).astype(np.float32)
        if m.size and draw(st.booleans()):
            flat = m.ravel()
            picks = rng.choice(flat.size, size=min(flat.size, 3), replace=False)
            flat[picks] = rng.choice(SUBNORMALS, size=picks.size)
        if a > 1 and draw(st.booleans()):
            m[0, :] = 0  # an input neuron with no outgoing synapse
        if b > 1 and draw(st.booleans()):
            m[:, -1] = 0  # an output neuron with no incoming synapse
        layers.append(sp.csr_matrix(m.astype(np.float32)))
        biases.append(None if draw(st.booleans()) else rng.standard_normal(b).astype(np.float32))
    return layers, biases


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topologies())
def test_random_topologies_round_trip_bit_exactly(store, topo):
    layers, biases = topo
    run_id = f"hyp-{next(_ids)}"
    snap = Snapshot(run_id, 0, layers, biases, {"test_accuracy": 0.25})
    store.create_run(RunInfo(run_id, snap.architecture))
    store.write_snapshot(snap)
    back = store.read_snapshot(run_id, 0)
    assert snapshots_equal(back, snap)
    assert back.metrics["test_accuracy"] == 0.25
    n_syn = store.read("MATCH ()-[s:SYNAPSE {run_id: $r}]->() RETURN count(s) AS n", {"r": run_id})[0]["n"]
    assert n_syn == snap.n_synapses


def _alive(store, run_id, step, layer):
    rows = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE {run_id: $r, layer: $l}]->(b:Neuron) "
        "WHERE s.born <= $t AND (s.died IS NULL OR s.died > $t) RETURN a.index AS i, b.index AS j",
        {"r": run_id, "l": layer, "t": step},
    )
    return {(r["i"], r["j"]) for r in rows}


def _pairs(m):
    c = m.tocoo()
    return set(zip(c.row.tolist(), c.col.tolist()))


def _stored_run(store, run_id, sizes, density, churn, steps, seed, written=None):
    """A synthetic run's snapshots, the first `written` of them (all by default) stored."""
    snaps = list(synthetic_run(run_id, sizes, density, churn, steps, seed=seed))
    store.create_run(RunInfo(run_id, snaps[0].architecture))
    for s in snaps[:written]:
        store.write_snapshot(s)
    return snaps


def _counts(store):
    return store.read("MATCH (n) WITH count(n) AS nodes MATCH ()-[r]->() RETURN nodes, count(r) AS rels")[0]


def test_lifetimes_agree_with_stored_matrices_at_every_step(store):
    snaps = list(synthetic_run("churn", [30, 20, 20, 5], 0.2, 0.3, 6, seed=3))
    store.create_run(RunInfo("churn", snaps[0].architecture, method="set"))
    for s in snaps:
        assert store.write_snapshot(s)
    store.set_run_status("churn", "completed")
    for t, s in enumerate(snaps):
        back = store.read_snapshot("churn", t)
        assert snapshots_equal(back, s)
        for k, m in enumerate(s.layers):
            assert _alive(store, "churn", t, k) == _pairs(m)
            appeared = store.read(
                "MATCH ()-[s:SYNAPSE {run_id:'churn', layer:$l}]->() WHERE s.born = $t RETURN count(s) AS n",
                {"l": k, "t": t},
            )[0]["n"]
            vanished = store.read(
                "MATCH ()-[s:SYNAPSE {run_id:'churn', layer:$l}]->() WHERE s.died = $t RETURN count(s) AS n",
                {"l": k, "t": t},
            )[0]["n"]
            prev = _pairs(snaps[t - 1].layers[k]) if t else set()
            assert appeared == len(_pairs(m) - prev)
            assert vanished == len(prev - _pairs(m))
    # Neurons once per run; NEXT chain links consecutive steps.
    assert store.read("MATCH (n:Neuron {run_id:'churn'}) RETURN count(n) AS n")[0]["n"] == 75
    chain = store.read("MATCH (a:Snapshot {run_id:'churn'})-[:NEXT]->(b) RETURN a.step AS a, b.step AS b ORDER BY a")
    assert [(r["a"], r["b"]) for r in chain] == [(t, t + 1) for t in range(6)]
    # Surviving synapses carry the final weight once the run is finished.
    last = snaps[-1].layers[0].tocoo()
    rows = store.read(
        "MATCH (a)-[s:SYNAPSE {run_id:'churn', layer:0}]->(b) WHERE s.died IS NULL RETURN a.index AS i, b.index AS j, s.weight AS w"
    )
    final = {(i, j): w for i, j, w in zip(last.row.tolist(), last.col.tolist(), last.data.tolist())}
    assert {(r["i"], r["j"]): r["w"] for r in rows} == final
    # Dead synapses carry their last weight while alive, not the weight they were born with.
    dead = store.read(
        "MATCH (a)-[s:SYNAPSE {run_id:'churn', layer:0}]->(b) WHERE s.died IS NOT NULL "
        "RETURN a.index AS i, b.index AS j, s.died AS died, s.weight AS w, s.weight_born AS wb"
    )
    assert dead and any(r["w"] != r["wb"] for r in dead)
    for r in dead:
        assert r["w"] == float(snaps[r["died"] - 1].layers[0][r["i"], r["j"]])


def _reweighted(m: sp.csr_matrix, factor: float) -> sp.csr_matrix:
    """The same connections with different weights (what a dense or static step looks like)."""
    out = m.copy()
    out.data = (out.data * np.float32(factor)).astype(np.float32)
    return out


@pytest.mark.parametrize("chunked", [False, True])
def test_unchanged_connections_are_stored_at_every_step(store, chunked, monkeypatch):
    import sparsetopo.graphstore.writer as writer

    if chunked:
        monkeypatch.setattr(writer, "CHUNK", 25)
        monkeypatch.setattr(writer, "BATCH", 10)
    run_id = f"same-{chunked}"
    snaps = list(synthetic_run(run_id, [12, 9, 4], 0.5, 0.3, 3, seed=21))
    # Layer 0 keeps its connections from step 1 on (weights change); layer 1 churns.
    for t in range(2, 4):
        snaps[t].layers[0] = _reweighted(snaps[1].layers[0], 1.0 + t)
    store.create_run(RunInfo(run_id, snaps[0].architecture))
    for s in snaps:
        store.write_snapshot(s)
    store.set_run_status(run_id, "completed")
    _check_run(store, run_id, snaps)
    rows = store.read(
        "MATCH (l:LayerSnapshot {run_id: $r, layer: 0}) RETURN l.step AS t, l.positions AS p, "
        "l.appeared AS a, l.vanished AS v ORDER BY t",
        {"r": run_id},
    )
    expected = [connection_keys(s.layers[0]).tolist() for s in snaps]
    assert [r["p"] for r in rows] == expected
    assert [(r["a"], r["v"]) for r in rows][2:] == [(0, 0), (0, 0)]
    # One lifetime per connection of layer 0 since step 1, each with the final weight.
    final = snaps[-1].layers[0].tocoo()
    alive = store.read(
        "MATCH (a)-[s:SYNAPSE {run_id: $r, layer: 0}]->(b) WHERE s.died IS NULL "
        "RETURN a.index AS i, b.index AS j, s.born AS born, s.weight AS w",
        {"r": run_id},
    )
    assert {(r["i"], r["j"]): r["w"] for r in alive} == dict(
        zip(zip(final.row.tolist(), final.col.tolist()), final.data.tolist())
    )
    assert max(r["born"] for r in alive) <= 1
    # A writer on a new connection resumes from the copied positions.
    more = Snapshot(run_id, 4, [_reweighted(snaps[-1].layers[0], 0.5), snaps[-1].layers[1]], snaps[-1].biases)
    with GraphStore.connect(store.settings) as other:
        assert other.write_snapshot(more)
    assert snapshots_equal(store.read_snapshot(run_id, 4), more)


def test_regrown_connection_gets_a_new_synapse_and_lifetimes_never_overlap(store):
    on = sp.csr_matrix(np.array([[1.5, 0.0], [0.0, -2.0]], dtype=np.float32))
    off = sp.csr_matrix(np.array([[0.0, 0.0], [0.0, -2.0]], dtype=np.float32))
    store.create_run(RunInfo("regrow", [2, 2]))
    for t, m in enumerate([on, off, on]):
        store.write_snapshot(Snapshot("regrow", t, [m]))
    rows = store.read(
        "MATCH (a:Neuron {index:0})-[s:SYNAPSE {run_id:'regrow'}]->(b:Neuron {index:0}) "
        "RETURN s.born AS born, s.died AS died ORDER BY born"
    )
    assert [(r["born"], r["died"]) for r in rows] == [(0, 1), (2, None)]


def test_writing_a_stored_step_again_changes_nothing(store):
    snaps = _stored_run(store, "idem", [10, 8, 3], 0.4, 0.3, 3, seed=5)
    before = _counts(store)
    for s in snaps:
        assert store.write_snapshot(s) is False
    # A fresh connection (new process) resuming the run sees the same thing.
    with GraphStore.connect(store.settings) as other:
        assert other.write_snapshot(snaps[1]) is False
    assert _counts(store) == before


def test_conflicting_rewrite_is_refused_and_stores_nothing(store):
    snaps = _stored_run(store, "conf", [10, 8, 3], 0.4, 0.3, 2, seed=5)
    before = _counts(store)
    changed = Snapshot("conf", 1, [m * 2 for m in snaps[1].layers], snaps[1].biases)
    with pytest.raises(RunConflictError):
        store.write_snapshot(changed)
    wrong_shape = Snapshot(
        "conf",
        3,
        [
            sp.random(10, 9, density=0.3, format="csr", dtype=np.float32),
            sp.random(9, 3, density=0.3, format="csr", dtype=np.float32),
        ],
    )
    with pytest.raises(RunConflictError):
        store.write_snapshot(wrong_shape)
    assert _counts(store) == before


def test_resuming_a_run_from_a_new_connection_continues_lifetimes(store):
    snaps = _stored_run(store, "resume", [12, 10, 4], 0.3, 0.4, 5, seed=9, written=3)
    with GraphStore.connect(store.settings) as other:
        for s in snaps[3:]:
            other.write_snapshot(s)
    for t, s in enumerate(snaps):
        for k, m in enumerate(s.layers):
            assert _alive(store, "resume", t, k) == _pairs(m)


def test_delete_removes_one_run_and_nothing_else(store):
    keep = list(synthetic_run("keep", [10, 6, 3], 0.5, 0.3, 2, seed=1))
    gone = list(synthetic_run("gone", [10, 6, 3], 0.5, 0.3, 2, seed=2))
    for snaps in (keep, gone):
        store.create_run(RunInfo(snaps[0].run_id, snaps[0].architecture))
        for s in snaps:
            store.write_snapshot(s)
    store.write_nnstd("keep", 0, "gone", 0, 0.5, [0.5, 0.5], "test", purpose="test")
    store.write_nnstd("keep", 0, "keep", 2, 0.25, [0.25, 0.25], "test", purpose="test")
    counts = store.delete_run("gone")
    assert counts["runs"] == 1 and counts["snapshots"] == 3
    assert store.read("MATCH (n {run_id:'gone'}) RETURN count(n) AS n")[0]["n"] == 0
    assert store.read("MATCH ()-[r {run_id:'gone'}]->() RETURN count(r) AS n")[0]["n"] == 0
    for s in keep:
        assert snapshots_equal(store.read_snapshot("keep", s.step), s)
    assert store.read("MATCH ()-[d:NNSTD]->() RETURN count(d) AS n")[0]["n"] == 1
    with pytest.raises(UnknownRunError):
        store.get_run("gone")


def test_unknown_run_and_step_errors(store):
    with pytest.raises(UnknownRunError):
        store.read_snapshot("nope", 0)
    store.create_run(RunInfo("one", [2, 2]))
    store.write_snapshot(Snapshot("one", 0, [sp.eye(2, dtype=np.float32, format="csr")]))
    with pytest.raises(UnknownSnapshotError):
        store.read_snapshot("one", 7)
    with pytest.raises(UnknownRunError):
        store.write_snapshot(Snapshot("never-created", 0, [sp.eye(2, dtype=np.float32, format="csr")]))


def test_read_refuses_writes(store):
    from sparsetopo.graphstore.errors import ReadOnlyViolation

    with pytest.raises(ReadOnlyViolation):
        store.read("CREATE (:Sneaky)")
    assert store.read("MATCH (n:Sneaky) RETURN count(n) AS n")[0]["n"] == 0


@pytest.fixture
def small_chunks(monkeypatch):
    """Make every snapshot 'too large' so it is written in many small transactions."""
    import sparsetopo.graphstore.writer as writer

    monkeypatch.setattr(writer, "CHUNK", 25)
    monkeypatch.setattr(writer, "BATCH", 10)
    return writer


def _check_run(store, run_id, snaps):
    for t, s in enumerate(snaps):
        assert snapshots_equal(store.read_snapshot(run_id, t), s)
        for k, m in enumerate(s.layers):
            assert _alive(store, run_id, t, k) == _pairs(m)


def test_large_snapshots_are_written_in_chunks_with_the_same_result(store, small_chunks):
    snaps = _stored_run(store, "chunks", [30, 20, 5], 0.3, 0.3, 4, seed=11)
    _check_run(store, "chunks", snaps)
    assert (
        store.read("MATCH (s:Snapshot {run_id:'chunks'}) WHERE s.complete IS NOT NULL RETURN count(s) AS n")[0]["n"]
        == 0
    )


def test_a_failed_chunked_step_is_rolled_back_and_can_be_written_again(store, small_chunks, monkeypatch):
    snaps = _stored_run(store, "fail", [30, 20, 5], 0.3, 0.3, 3, seed=12, written=2)
    before = _counts(store)
    calls = {"n": 0}
    original = small_chunks.SnapshotWriter._apply

    def failing_apply(tx, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure in the middle of a step")
        return original(tx, *args)

    monkeypatch.setattr(small_chunks.SnapshotWriter, "_apply", staticmethod(failing_apply))
    with pytest.raises(RuntimeError):
        store.write_snapshot(snaps[2])
    assert calls["n"] == 3
    assert _counts(store) == before  # nothing of step 2 is left
    monkeypatch.setattr(small_chunks.SnapshotWriter, "_apply", staticmethod(original))
    store.write_snapshot(snaps[2])
    _check_run(store, "fail", snaps[:3])


def test_a_writer_resuming_after_a_crash_rolls_back_the_half_written_step(store, small_chunks, monkeypatch):
    snaps = _stored_run(store, "crash", [30, 20, 5], 0.3, 0.3, 3, seed=13, written=2)
    original = small_chunks.SnapshotWriter._apply
    calls = {"n": 0}

    def dying_apply(tx, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process dies mid-step...
        return original(tx, *args)

    def no_rollback(self, run_id, step):  # ...before it can clean up
        return False

    monkeypatch.setattr(small_chunks.SnapshotWriter, "_apply", staticmethod(dying_apply))
    monkeypatch.setattr(small_chunks.SnapshotWriter, "rollback_incomplete", no_rollback)
    with pytest.raises(KeyboardInterrupt):
        store.write_snapshot(snaps[2])
    monkeypatch.undo()
    small_chunks.CHUNK, small_chunks.BATCH = 25, 10
    # The half-written step is invisible to readers...
    assert [s["step"] for s in store.list_snapshots("crash")] == [0, 1]
    with pytest.raises(UnknownSnapshotError):
        store.read_snapshot("crash", 2)
    # ...and a new writer (another process) rolls it back before continuing.
    with GraphStore.connect(store.settings) as other:
        other.write_snapshot(snaps[2])
    _check_run(store, "crash", snaps[:3])


def test_a_synapse_whose_neuron_cannot_be_found_fails_the_step_and_stores_nothing_of_it(store):
    from sparsetopo.graphstore.errors import GraphStoreError

    snaps = _stored_run(store, "gone", [10, 8, 3], 0.5, 0.5, 2, seed=3, written=1)
    # the writer remembers neurons by element id; make one of the step's new synapses point nowhere
    born = sorted(_pairs(snaps[1].layers[0]) - _pairs(snaps[0].layers[0]))
    cursor = store.writer.cursor("gone")
    real = cursor.neuron_ids[1][born[0][1]]
    cursor.neuron_ids[1][born[0][1]] = real.rsplit(":", 1)[0] + ":999999"
    before = _counts(store)
    with pytest.raises(GraphStoreError, match="missing"):
        store.write_snapshot(snaps[1])
    assert _counts(store) == before
    assert [s["step"] for s in store.list_snapshots("gone")] == [0]


def test_finishing_a_large_run_on_two_sessions_gives_every_surviving_synapse_its_final_weight(
    store, small_chunks, caplog
):
    snaps = _stored_run(store, "fin", [30, 20, 5], 0.3, 0.3, 3, seed=13)
    with caplog.at_level(logging.WARNING, logger="neo4j"):
        store.writer.finish("fin", workers=2)  # CHUNK = 25: dozens of independent transactions
    # sessions that share neurons deadlock and are retried: the schedule must never let them meet
    assert "DeadlockDetected" not in caplog.text
    for k, m in enumerate(snaps[-1].layers):
        last = m.tocoo()
        rows = store.read(
            "MATCH (a)-[s:SYNAPSE {run_id:'fin', layer:$k}]->(b) WHERE s.died IS NULL "
            "RETURN a.index AS i, b.index AS j, s.weight AS w",
            {"k": k},
        )
        final = {(i, j): w for i, j, w in zip(last.row.tolist(), last.col.tolist(), last.data.tolist())}
        assert {(r["i"], r["j"]): r["w"] for r in rows} == final


def test_finishing_never_runs_layers_that_share_neurons_at_once():
    from sparsetopo.graphstore.writer import finishing_rounds

    for n in range(1, 8):
        rounds = finishing_rounds([10 * (k % 3 + 1) for k in range(n)])
        assert sorted(k for r in rounds for k in r) == list(range(n))
        for r in rounds:
            assert all(abs(a - b) > 1 for a in r for b in r if a != b)
    assert finishing_rounds([5, 9, 7, 1]) == [[2, 0], [1, 3]]
    # a layer fed by layer 0's outputs (group 1, like a shortcut) meets neither layer 0 nor layer 1
    rounds = finishing_rounds([5, 5, 5, 5], input_groups=[0, 1, 2, 1])
    groups = {0: {0, 1}, 1: {1, 2}, 2: {2, 3}, 3: {1, 4}}
    for r in rounds:
        assert all(not groups[a] & groups[b] for a in r for b in r if a != b)
    assert sorted(k for r in rounds for k in r) == [0, 1, 2, 3]
