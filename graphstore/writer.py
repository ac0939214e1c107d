"""Writing snapshots as synapse lifetimes.

Each snapshot is diffed against the run's previous one, layer by layer:
connections that appear get a new SYNAPSE (born = step), connections that vanish
get died = step on their open SYNAPSE. The exact weights and bias of every layer at
every step go onto its LayerSnapshot, which is what reads reconstruct from.

The writer keeps, per run, the previous step's connections, the element ids of
the run's neurons and the ids of its open synapses, so each step costs id seeks
only. The cursor is rebuilt from
the store when a process resumes a run, and only advanced after the snapshot's
transaction commits.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..topology import connection_keys, input_groups
from .errors import GraphStoreError, RunConflictError, RunInconsistentError, UnknownRunError, check_run_id
from .lease import WriterLeases
from .model import Snapshot, read_producer, stored_producer


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


# Synapse changes per transaction; a step beyond this is written in several (see _write_in_chunks).
# Neo4j holds ~1.5 KB of transaction state per new relationship, and state that outlives several
# young collections is expensive to collect: a dense network's step in larger transactions costs
# the server much more garbage collection, smaller ones gain nothing (CHANGELOG.md, 0.1.0).
# SPARSETOPO_WRITE_CHUNK makes chunks small, so tests can have a step span many transactions.
CHUNK = _env_int("SPARSETOPO_WRITE_CHUNK", 50_000)
BATCH = min(20_000, CHUNK)  # rows per UNWIND statement
FINISH_WORKERS = 2  # sessions setting latest weights at the end of a run (see SnapshotWriter.finish)


@dataclass
class LayerState:
    positions: np.ndarray  # sorted linear positions alive at the last written step
    weights: np.ndarray  # float32, aligned with positions
    synapse_ids: np.ndarray  # int64 ids of the open SYNAPSE at each position


@dataclass
class RunCursor:
    run_id: str
    architecture: list[int]
    neuron_ids: list[list[str]]
    last_step: int | None = None
    layers: list[LayerState] | None = None
    taps: list[int] | None = None  # of the last stored step's layers
    producers: list[int | None] | None = None  # of the last stored step's layers


@dataclass
class LayerDiff:
    positions: np.ndarray
    weights: np.ndarray
    new: np.ndarray  # bool mask over positions: appeared at this step
    survivor_ids: np.ndarray  # synapse ids of the positions that did not appear (aligned with ~new)
    vanished_ids: np.ndarray
    vanished_weights: np.ndarray

    @property
    def unchanged(self) -> bool:
        """The same connections as the previous step (weights may differ)."""
        return self.vanished_ids.size == 0 and self.survivor_ids.size == self.positions.size

    @property
    def appeared(self) -> np.ndarray:
        return self.positions[self.new]

    @property
    def appeared_weights(self) -> np.ndarray:
        return self.weights[self.new]


def diff_layer(previous: LayerState | None, current: sp.csr_matrix) -> LayerDiff:
    pos = connection_keys(current)  # aligned with current.data: Snapshot layers are canonical CSR
    w = current.data.astype(np.float32, copy=False)
    empty = np.empty(0, dtype=np.int64)
    if previous is None:
        return LayerDiff(pos, w, np.ones(pos.size, bool), empty, empty, np.empty(0, np.float32))
    if np.array_equal(pos, previous.positions):
        # Same connections (every step of dense and static runs): no set operations needed.
        return LayerDiff(pos, w, np.zeros(pos.size, bool), previous.synapse_ids, empty, np.empty(0, np.float32))
    new = ~np.isin(pos, previous.positions, assume_unique=True)
    gone = ~np.isin(previous.positions, pos, assume_unique=True)
    survivors = np.searchsorted(previous.positions, pos[~new])
    return LayerDiff(pos, w, new, previous.synapse_ids[survivors], previous.synapse_ids[gone], previous.weights[gone])


# A synapse is created between its two neurons (element-id seeks) and remembered by
# its relationship id, so closing it later is one id seek, whatever the neurons' history:
# closing by an expand-into between the two neurons slows down as they collect dead lifetimes.
# `weight` (the latest weight) starts as the weight at birth and is overwritten when the
# synapse dies or its run finishes. Overwriting is cheap; adding the property at the end is
# not, with run ids of realistic length: the property records are full by then. The price is
# paid at creation, while training runs, instead of after it (timings: CHANGELOG.md, 0.1.0).
CREATE_SYNAPSES = (
    "UNWIND range(0, size($src) - 1) AS i "
    "MATCH (a) WHERE elementId(a) = $src_ids[$src[i]] MATCH (b) WHERE elementId(b) = $dst_ids[$dst[i]] "
    "CREATE (a)-[s:SYNAPSE {run_id: $run, layer: $layer, born: $step, weight_born: $w[i], weight: $w[i]}]->(b) "
    # One record of two aligned lists: with a record per synapse, decoding Bolt records was most of the write.
    "RETURN collect(i) AS k, collect(id(s)) AS id"
)
CREATE_TAPPED_SYNAPSES = CREATE_SYNAPSES.replace("weight: $w[i]}", "weight: $w[i], tap: $tap[i]}")
CLOSE_SYNAPSES = (
    "UNWIND range(0, size($ids) - 1) AS i MATCH ()-[s:SYNAPSE]->() WHERE id(s) = $ids[i] AND s.run_id = $run "
    "SET s.died = $step, s.weight = $w[i] RETURN count(s) AS n"
)
SET_LATEST_WEIGHT = (
    "UNWIND range(0, size($ids) - 1) AS i MATCH ()-[s:SYNAPSE]->() WHERE id(s) = $ids[i] AND s.run_id = $run "
    "SET s.weight = $w[i] RETURN count(s) AS n"
)


class Column(list):
    """A parameter list whose repr is short: the driver (neo4j 6.x) formats every RUN's parameters
    with repr() for a debug log line even when debug logging is off, which was most of the client's
    CPU time."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} values>"


def column(values) -> Column:
    return Column(values.tolist() if isinstance(values, np.ndarray) else values)


def finishing_rounds(layer_synapses: list[int], input_groups: list[int] | None = None) -> list[list[int]]:
    """The layers `finish` may work on at once, round after round: no two layers of a round share a
    neuron group (layer k joins its input group, k in a chain, with group k + 1). Greedy in layer
    order, which gives a chain its two rounds of even and odd layers; largest first within a round
    so it ends with small layers in parallel."""
    inputs = list(range(len(layer_synapses))) if input_groups is None else list(input_groups)
    rounds: list[list[int]] = []
    used: list[set[int]] = []
    for k in range(len(layer_synapses)):
        groups = {inputs[k], k + 1}
        for r, taken in enumerate(used):
            if not groups & taken:
                rounds[r].append(k)
                taken |= groups
                break
        else:
            rounds.append([k])
            used.append(set(groups))
    return [sorted(r, key=lambda k: -layer_synapses[k]) for r in rounds]


def _slices(n: int):
    for lo in range(0, n, BATCH):
        yield lo, min(n, lo + BATCH)


def _run_counted(tx, query: str, ids: list, **params) -> None:
    # Columns, not rows: flat lists pack several times faster than thousands of small lists.
    n = tx.run(query, ids=ids, **params).single()["n"]
    if n != len(ids):
        raise GraphStoreError(
            f"{len(ids) - n} open synapse(s) of run '{params.get('run')}' were changed by someone else while it was "
            "being written; nothing of this step was stored"
        )


class SnapshotWriter:
    """Appends snapshots of runs to the store; one transaction per snapshot."""

    def __init__(self, driver, database: str | None = None, lease_seconds: float | None = None):
        self.driver = driver
        self.database = database
        self._cursors: dict[str, RunCursor] = {}
        self.lease = WriterLeases(driver, database, lease_seconds)

    def forget(self, run_id: str) -> None:
        self._cursors.pop(run_id, None)

    def release(self, run_id: str) -> None:
        """Give up the run: its lease, and the cursor that only a lease holder may trust."""
        self._cursors.pop(run_id, None)
        self.lease.release(run_id)

    # -- cursor ------------------------------------------------------------------
    def cursor(self, run_id: str) -> RunCursor:
        """The run's cursor; the first call takes the run's writer lease (RunBusyError if a live
        process holds it) and only then rolls back a step a dead writer left incomplete."""
        check_run_id(run_id)
        if run_id in self._cursors and self.lease.holds(run_id):
            return self._cursors[run_id]
        self._cursors.pop(run_id, None)
        self.lease.acquire(run_id)
        records, _, _ = self.driver.execute_query(
            "MATCH (r:Run {run_id: $run}) OPTIONAL MATCH (r)-[:HAS_SNAPSHOT]->(s:Snapshot) "
            "RETURN r.architecture AS architecture, max(s.step) AS last_step",
            run=run_id,
            database_=self.database,
        )
        if not records:
            raise UnknownRunError(run_id)
        architecture = list(records[0]["architecture"])
        last_step = records[0]["last_step"]
        if last_step is not None and self.rollback_incomplete(run_id, last_step):
            return self.cursor(run_id)
        cursor = RunCursor(run_id, architecture, self._neuron_ids(run_id, architecture), last_step)
        if last_step is not None:
            cursor.layers, cursor.taps, cursor.producers = self._load_state(run_id, last_step, architecture)
        self._cursors[run_id] = cursor
        return cursor

    def _neuron_ids(self, run_id: str, architecture: list[int]) -> list[list[str]]:
        records, _, _ = self.driver.execute_query(
            "MATCH (n:Neuron {run_id: $run}) RETURN n.layer AS layer, n.index AS index, elementId(n) AS id",
            run=run_id,
            database_=self.database,
        )
        if not records:
            return []
        # the chain's groups by the architecture; the input groups of unchained layers by what is stored
        sizes = list(architecture)
        for r in records:
            if r["layer"] >= len(architecture):
                sizes.extend([0] * (r["layer"] + 1 - len(sizes)))
                sizes[r["layer"]] = max(sizes[r["layer"]], r["index"] + 1)
        ids = [[""] * size for size in sizes]
        for r in records:
            ids[r["layer"]][r["index"]] = r["id"]
        return ids

    def _load_state(
        self, run_id: str, step: int, architecture: list[int]
    ) -> tuple[list[LayerState], list[int], list[int | None]]:
        records, _, _ = self.driver.execute_query(
            "MATCH (l:LayerSnapshot {run_id: $run, step: $step}) "
            "RETURN l.layer AS layer, l.positions AS positions, l.weights AS weights, coalesce(l.taps, 1) AS taps, "
            "l.producer AS producer ORDER BY layer",
            run=run_id,
            step=step,
            database_=self.database,
        )
        states = []
        for r in records:
            positions = np.asarray(r["positions"], dtype=np.int64)
            states.append(
                LayerState(
                    positions, np.asarray(r["weights"], dtype=np.float32), np.full(positions.size, -1, dtype=np.int64)
                )
            )
        opened, _, _ = self.driver.execute_query(
            "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron) WHERE s.run_id = $run AND s.born IS NOT NULL AND s.died IS NULL "
            "RETURN s.layer AS layer, a.index AS i, coalesce(s.tap, 0) AS tap, b.index AS j, id(s) AS id",
            run=run_id,
            database_=self.database,
        )
        taps = [r["taps"] for r in records]
        producers = [read_producer(r["layer"], r["producer"]) for r in records]
        for r in opened:
            k = r["layer"]
            state = states[k]
            row = r["i"] * taps[k] + r["tap"]
            at = np.searchsorted(state.positions, row * architecture[k + 1] + r["j"])
            state.synapse_ids[at] = r["id"]
        if any((st.synapse_ids < 0).any() for st in states):
            raise RunInconsistentError(
                f"run '{run_id}' is inconsistent: step {step} lists connections without an open synapse"
            )
        return states, taps, producers

    # -- writing -----------------------------------------------------------------
    def write(self, snapshot: Snapshot) -> bool:
        """Store a snapshot; False when that exact step was stored already (nothing written)."""
        from .errors import LeaseLostError

        try:
            return self._write(snapshot)
        except LeaseLostError:
            self._cursors.pop(snapshot.run_id, None)
            raise

    def _write(self, snapshot: Snapshot) -> bool:
        cursor = self.cursor(snapshot.run_id)
        if snapshot.architecture != cursor.architecture:
            raise RunConflictError(
                f"snapshot layer sizes {snapshot.architecture} differ from run '{snapshot.run_id}' "
                f"architecture {cursor.architecture}"
            )
        if cursor.taps is not None and list(snapshot.taps or []) != cursor.taps:
            raise RunConflictError(
                f"snapshot taps per layer {snapshot.taps} differ from run '{snapshot.run_id}''s {cursor.taps}"
            )
        if cursor.producers is not None and list(snapshot.producers or []) != cursor.producers:
            raise RunConflictError(
                f"snapshot producers per layer {snapshot.producers} differ from run '{snapshot.run_id}''s "
                f"{cursor.producers}"
            )
        if cursor.last_step is not None and snapshot.step <= cursor.last_step:
            return self._check_already_stored(snapshot)
        diffs = [diff_layer(cursor.layers[k] if cursor.layers else None, m) for k, m in enumerate(snapshot.layers)]
        new_ids = [np.empty(int(d.new.sum()), dtype=np.int64) for d in diffs]
        changes = sum(ids.size + d.vanished_ids.size for ids, d in zip(new_ids, diffs))
        with self.driver.session(database=self.database, fetch_size=-1) as session:
            groups = snapshot.neuron_groups
            if [len(ids) for ids in cursor.neuron_ids] != groups or any("" in ids for ids in cursor.neuron_ids):
                cursor.neuron_ids = self._ensure_neurons(session, snapshot.run_id, groups)
            if changes <= CHUNK:
                cursor.neuron_ids = session.execute_write(self._single_tx, snapshot, cursor, diffs, new_ids)
            else:
                self._write_in_chunks(session, snapshot, cursor, diffs, new_ids)
        # Only a committed snapshot moves the cursor.
        layers = []
        for d, ids in zip(diffs, new_ids):
            synapse_ids = np.empty(d.positions.size, dtype=np.int64)
            synapse_ids[d.new] = ids
            synapse_ids[~d.new] = d.survivor_ids
            layers.append(LayerState(d.positions, d.weights, synapse_ids))
        cursor.layers = layers
        cursor.last_step = snapshot.step
        cursor.taps = list(snapshot.taps or [])
        cursor.producers = list(snapshot.producers or [])
        return True

    def _single_tx(self, tx, snapshot, cursor, diffs, new_ids):
        self.lease.fence(tx, snapshot.run_id)
        neuron_ids = self._head(tx, snapshot, cursor, diffs, complete=True)
        self._apply(
            tx,
            snapshot.run_id,
            snapshot.step,
            self._synapse_batches(diffs, cursor.architecture, neuron_ids, snapshot.taps, snapshot.producers),
            new_ids,
        )
        return neuron_ids

    def _write_in_chunks(self, session, snapshot, cursor, diffs, new_ids) -> None:
        """A snapshot too large for one transaction (e.g. a dense MNIST network, 2.8M synapses).

        The Snapshot is marked complete = false until its last chunk commits; a failure here, or a
        writer that finds such a snapshot when it resumes the run, rolls the step back entirely.
        """
        run, step = snapshot.run_id, snapshot.step
        cursor.neuron_ids = session.execute_write(self._fenced_head, snapshot, cursor, diffs)
        try:
            group, rows = [], 0
            batches = self._synapse_batches(
                diffs, cursor.architecture, cursor.neuron_ids, snapshot.taps, snapshot.producers
            )
            for batch in batches:
                group.append(batch)
                rows += len(batch[3]["w"])
                if rows >= CHUNK:
                    session.execute_write(self._fenced_apply, run, step, group, new_ids)
                    group, rows = [], 0
            if group:
                session.execute_write(self._fenced_apply, run, step, group, new_ids)
            session.execute_write(self._fenced_complete, run, step)
        except BaseException:
            try:
                # Only while this process still holds the lease: after a takeover the step is the new writer's.
                self.rollback_incomplete(run, step)
            except Exception:  # noqa: BLE001 - the next writer of this run rolls back instead
                pass
            raise

    def _fenced_head(self, tx, snapshot, cursor, diffs):
        self.lease.fence(tx, snapshot.run_id)
        return self._head(tx, snapshot, cursor, diffs, complete=False)

    def _fenced_apply(self, tx, run, step, group, new_ids):
        self.lease.fence(tx, run)
        self._apply(tx, run, step, group, new_ids)

    def _fenced_complete(self, tx, run, step):
        self.lease.fence(tx, run)
        tx.run("MATCH (s:Snapshot {run_id: $run, step: $step}) REMOVE s.complete", run=run, step=step).consume()

    def rollback_incomplete(self, run_id: str, step: int) -> bool:
        """Remove every trace of a partially written step; False if that step is not incomplete.

        Only the holder of the run's lease rolls back, and every statement re-checks the lease:
        an incomplete step of a live writer is that writer's, not garbage."""
        guard = "MATCH (r:Run {run_id: $run}) WHERE r.writer_token = $token "
        records, _, _ = self.driver.execute_query(
            guard + "MATCH (s:Snapshot {run_id: $run, step: $step}) RETURN s.complete = false AS incomplete",
            run=run_id,
            step=step,
            token=self.lease.token,
            database_=self.database,
        )
        if not records or not records[0]["incomplete"]:
            return False
        with self.driver.session(database=self.database) as session:
            for query in (
                guard + "MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run AND s.born = $step "
                "CALL (s) { DELETE s } IN TRANSACTIONS OF 50000 ROWS",
                # Reopened: `weight` of a live synapse is its weight at birth until the run is finished.
                guard + "MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run AND s.died = $step "
                "CALL (s) { REMOVE s.died SET s.weight = s.weight_born } IN TRANSACTIONS OF 50000 ROWS",
                guard
                + "MATCH (s:Snapshot {run_id: $run, step: $step}) OPTIONAL MATCH (s)-[:HAS_LAYER]->(l:LayerSnapshot) "
                "DETACH DELETE l, s",
            ):
                session.run(query, run=run_id, step=step, token=self.lease.token).consume()
        self._cursors.pop(run_id, None)
        return True

    def _check_already_stored(self, snapshot: Snapshot) -> bool:
        from .errors import UnknownSnapshotError
        from .reader import read_snapshot, snapshots_equal

        try:
            stored = read_snapshot(self.driver, snapshot.run_id, snapshot.step, self.database)
        except UnknownSnapshotError:
            raise RunConflictError(
                f"run '{snapshot.run_id}' already stores steps up to {self._cursors[snapshot.run_id].last_step}; "
                f"step {snapshot.step} cannot be inserted before them"
            ) from None
        if not snapshots_equal(stored, snapshot):
            raise RunConflictError(
                f"step {snapshot.step} of run '{snapshot.run_id}' is already stored with a different topology; "
                "delete the run to write it again"
            )
        return False

    def _head(self, tx, snapshot: Snapshot, cursor: RunCursor, diffs: list[LayerDiff], complete: bool):
        """Neurons (first step only), the Snapshot with its metrics, and its LayerSnapshots."""
        run, step = snapshot.run_id, snapshot.step
        neuron_ids = cursor.neuron_ids  # created before the step (_ensure_neurons)
        props = {"epoch": snapshot.epoch, "n_synapses": snapshot.n_synapses, "density": snapshot.density}
        props.update({k: v for k, v in snapshot.metrics.items() if v is not None})
        if not complete:
            props["complete"] = False
        tx.run(
            "MATCH (r:Run {run_id: $run}) "
            "CREATE (s:Snapshot {run_id: $run, step: $step}) SET s += $props "
            "CREATE (r)-[:HAS_SNAPSHOT]->(s) "
            "WITH s OPTIONAL MATCH (p:Snapshot {run_id: $run, step: $prev}) "
            "FOREACH (_ IN CASE WHEN p IS NULL THEN [] ELSE [1] END | CREATE (p)-[:NEXT]->(s))",
            run=run,
            step=step,
            props=props,
            prev=cursor.last_step,
        ).consume()
        layer_rows, unchanged = [], []
        producers = snapshot.producers or [None] * len(snapshot.layers)
        shapes = snapshot.tap_shapes or [None] * len(snapshot.layers)
        for k, (m, bias, d, taps) in enumerate(zip(snapshot.layers, snapshot.biases, diffs, snapshot.taps or [])):
            same = cursor.last_step is not None and d.unchanged
            if same:
                unchanged.append(k)
            layer_rows.append(
                {
                    "layer": k,
                    "n_in": m.shape[0],
                    "n_out": m.shape[1],
                    "taps": None if taps == 1 else taps,
                    "producer": stored_producer(k, producers[k]),  # absent for a chain
                    "tap_shape": shapes[k],
                    "nnz": int(m.nnz),
                    "density": m.nnz / (m.shape[0] * m.shape[1]),
                    "appeared": int(d.new.sum()),
                    "vanished": int(d.vanished_ids.size),
                    # Unchanged connections are copied on the server from the previous step's layer:
                    # turning a dense network's 2.8M positions into a list and packing it would hold
                    # the GIL, which the training thread needs, at every step (CHANGELOG.md, 0.1.0).
                    "positions": None if same else column(d.positions),
                    "weights": column(d.weights),
                    "bias": None if bias is None else column(bias),
                }
            )
        tx.run(
            "MATCH (s:Snapshot {run_id: $run, step: $step}) UNWIND $rows AS row "
            "CREATE (l:LayerSnapshot {run_id: $run, step: $step}) SET l += row "
            "CREATE (s)-[:HAS_LAYER]->(l)",
            run=run,
            step=step,
            rows=layer_rows,
        ).consume()
        if unchanged:
            copied = tx.run(
                "UNWIND $layers AS k MATCH (p:LayerSnapshot {run_id: $run, step: $prev, layer: k}) "
                "MATCH (l:LayerSnapshot {run_id: $run, step: $step, layer: k}) "
                "SET l.positions = p.positions RETURN count(p.positions) AS n",
                run=run,
                step=step,
                prev=cursor.last_step,
                layers=unchanged,
            ).single()["n"]
            if copied != len(unchanged):
                raise GraphStoreError(
                    f"step {cursor.last_step} of run '{run}' lost its layer snapshots while step {step} was "
                    "written; nothing of this step was stored"
                )
        return neuron_ids

    @staticmethod
    def _synapse_batches(
        diffs: list[LayerDiff],
        architecture: list[int],
        neuron_ids: list[list[str]],
        taps: list[int],
        producers: list[int | None] | None = None,
    ):
        """("close" | "create", layer, offset, columns) statements for every synapse that vanished or appeared.

        A layer with taps > 1 (a convolution) joins input neuron row // taps and carries tap = row % taps;
        its input neurons are those of its input group (its producer's outputs; sparsetopo.topology)."""
        sources = input_groups(producers if producers is not None else [None, *range(len(diffs) - 1)])
        for k, d in enumerate(diffs):
            for lo, hi in _slices(d.vanished_ids.size):
                yield "close", k, lo, {"ids": column(d.vanished_ids[lo:hi]), "w": column(d.vanished_weights[lo:hi])}
            n_out = architecture[k + 1]
            appeared, weights = d.appeared, d.appeared_weights
            for lo, hi in _slices(appeared.size):
                pos = appeared[lo:hi]
                rows = pos // n_out
                extra = {} if taps[k] == 1 else {"tap": column(rows % taps[k])}
                yield (
                    "create",
                    k,
                    lo,
                    extra
                    | {
                        "src": column(rows // taps[k]),
                        "dst": column(pos % n_out),
                        "w": column(weights[lo:hi]),
                        "src_ids": column(neuron_ids[sources[k]]),
                        "dst_ids": column(neuron_ids[k + 1]),
                    },
                )

    @staticmethod
    def _apply(tx, run: str, step: int, batches, new_ids: list[np.ndarray]) -> None:
        for kind, k, offset, columns in batches:
            if kind == "close":
                _run_counted(tx, CLOSE_SYNAPSES, run=run, step=step, **columns)
            else:
                query = CREATE_TAPPED_SYNAPSES if "tap" in columns else CREATE_SYNAPSES
                record = tx.run(query, run=run, layer=k, step=step, **columns).single()
                created = np.asarray(record["k"], dtype=np.int64)
                if created.size != len(columns["w"]):
                    raise GraphStoreError(
                        f"{len(columns['w']) - created.size} neuron(s) of run '{run}' were missing while step "
                        f"{step} was written; nothing of this step was stored"
                    )
                new_ids[k][offset + created] = np.asarray(record["id"], dtype=np.int64)

    def _ensure_neurons(self, session, run: str, groups: list[int]) -> list[list[str]]:
        """The run's neurons, created in transactions of CHUNK like synapses, so a layer of any width
        fits a transaction's memory. MERGE: a crash between chunks leaves neurons that the next
        writer reuses."""

        def work(tx, layer, lo, hi):
            self.lease.fence(tx, run)
            record = tx.run(
                "UNWIND range($lo, $hi - 1) AS i MERGE (n:Neuron {run_id: $run, layer: $layer, index: i}) "
                "RETURN collect(i) AS i, collect(elementId(n)) AS id",
                lo=lo,
                hi=hi,
                run=run,
                layer=layer,
            ).single()
            return record["i"], record["id"]

        ids = []
        for layer, size in enumerate(groups):
            layer_ids = [""] * size
            for lo in range(0, size, CHUNK):
                for i, element_id in zip(*session.execute_write(work, layer, lo, min(size, lo + CHUNK))):
                    layer_ids[i] = element_id
            ids.append(layer_ids)
        return ids

    def finish(self, run_id: str, workers: int = FINISH_WORKERS) -> None:
        """Give every synapse still alive its latest weight (dead ones got theirs when they died).

        Idempotent, so it runs as independent transactions of up to CHUNK synapses on up to
        `workers` sessions at once: it runs after training, when the cores are free (timings:
        CHANGELOG.md; benchmarks/train_bench.py reports the finish time). Setting a relationship's
        property locks its neurons too, so two sessions on one layer, or on layers k and k+1
        (which share layer k+1's neurons), deadlock and retry; concurrent sessions therefore only
        ever work on layers with no neuron in common (finishing_rounds), one session per layer."""
        cursor = self.cursor(run_id)
        states = cursor.layers
        if not states:
            return

        def set_part(ids: np.ndarray, weights: np.ndarray) -> None:
            def work(tx):
                # Checked without locking the Run: the finishing sessions run in parallel.
                self.lease.check(tx, run_id)
                for a, b in _slices(ids.size):
                    _run_counted(tx, SET_LATEST_WEIGHT, column(ids[a:b]), w=column(weights[a:b]), run=run_id)

            with self.driver.session(database=self.database) as session:
                session.execute_write(work)

        def set_layer(k: int) -> None:
            state = states[k]
            for lo in range(0, state.synapse_ids.size, CHUNK):
                set_part(state.synapse_ids[lo : lo + CHUNK], state.weights[lo : lo + CHUNK])

        producers = cursor.producers or [k - 1 if k else None for k in range(len(states))]
        rounds = finishing_rounds([state.synapse_ids.size for state in states], input_groups(producers))
        if workers <= 1:
            for k in range(len(states)):
                set_layer(k)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for layers in rounds:
                list(pool.map(set_layer, layers))  # re-raises the first failure
