"""Reading runs and snapshots back, bit-exactly."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .errors import UnknownRunError, UnknownSnapshotError
from .lease import WRITER_STATE
from .model import Snapshot, read_producer

# Properties of a Snapshot node that are not metrics.
_SNAPSHOT_KEYS = {"run_id", "step", "epoch"}


def run_exists(driver, run_id: str, database: str | None = None) -> bool:
    records, _, _ = driver.execute_query(
        "MATCH (r:Run {run_id: $run}) RETURN count(r) AS n", run=run_id, database_=database
    )
    return records[0]["n"] > 0


def read_snapshot(driver, run_id: str, step: int, database: str | None = None) -> Snapshot:
    records, _, _ = driver.execute_query(
        "MATCH (s:Snapshot {run_id: $run, step: $step}) WHERE s.complete IS NULL "
        "OPTIONAL MATCH (s)-[:HAS_LAYER]->(l:LayerSnapshot) "
        "WITH s, l ORDER BY l.layer "
        "RETURN properties(s) AS snapshot, collect(l {.layer, .n_in, .n_out, .positions, .weights, .bias, .taps, .producer, .tap_shape}) AS layers",
        run=run_id,
        step=step,
        database_=database,
    )
    if not records:
        if not run_exists(driver, run_id, database):
            raise UnknownRunError(run_id)
        raise UnknownSnapshotError(run_id, step)
    props = dict(records[0]["snapshot"])
    layers, biases, taps, producers, shapes = [], [], [], [], []
    for layer in records[0]["layers"]:
        taps.append(layer["taps"] or 1)
        producers.append(read_producer(layer["layer"], layer["producer"]))
        shapes.append(layer["tap_shape"])
        n_in, n_out = layer["n_in"], layer["n_out"]
        positions = np.asarray(layer["positions"], dtype=np.int64)
        weights = np.asarray(layer["weights"], dtype=np.float64).astype(np.float32)
        m = sp.csr_matrix((weights, (positions // n_out, positions % n_out)), shape=(n_in, n_out), dtype=np.float32)
        layers.append(m)
        biases.append(None if layer["bias"] is None else np.asarray(layer["bias"], dtype=np.float64).astype(np.float32))
    metrics = {k: v for k, v in props.items() if k not in _SNAPSHOT_KEYS and v is not None}
    metrics.pop("n_synapses", None)
    metrics.pop("density", None)
    return Snapshot(
        run_id=run_id,
        step=step,
        layers=layers,
        biases=biases,
        metrics=metrics,
        epoch=props.get("epoch"),
        taps=taps,
        producers=producers,
        tap_shapes=shapes,
    )


def snapshots_equal(a: Snapshot, b: Snapshot) -> bool:
    """Same shapes, taps and producers, same connections, same float32 bits of every weight and bias
    (tap shapes are descriptive metadata, not compared)."""
    if a.architecture != b.architecture or list(a.taps or []) != list(b.taps or []):
        return False
    if list(a.producers or []) != list(b.producers or []):
        return False
    for ma, mb in zip(a.layers, b.layers):
        if ma.nnz != mb.nnz or not np.array_equal(ma.indptr, mb.indptr) or not np.array_equal(ma.indices, mb.indices):
            return False
        if not np.array_equal(ma.data.view(np.uint32), mb.data.view(np.uint32)):
            return False
    for ba, bb in zip(a.biases, b.biases):
        if ba is None or bb is None:
            if ba is not bb:
                return False
        elif not np.array_equal(ba.view(np.uint32), bb.view(np.uint32)):
            return False
    return True


# Only complete snapshots count (a chunked step being written is skipped), and `writer` says
# whether the run's writer is alive, gone (its lease heartbeat expired) or absent (see lease.py).
_RUN_SUMMARY = (
    "OPTIONAL MATCH (r)-[:HAS_SNAPSHOT]->(s:Snapshot) WHERE s.complete IS NULL "
    "WITH r, count(s) AS snapshots, max(s.step) AS last_step "
    "RETURN properties(r) AS run, snapshots, last_step, " + WRITER_STATE + " AS writer"
)
_LEASE_KEYS = {"writer_token", "writer_process", "writer_pid", "writer_host", "writer_heartbeat", "writer_lease_ms"}


def _run_row(record) -> dict:
    run = {k: v for k, v in dict(record["run"]).items() if k not in _LEASE_KEYS}
    return run | {"snapshots": record["snapshots"], "last_step": record["last_step"], "writer": record["writer"]}


def list_runs(driver, database: str | None = None) -> list[dict]:
    records, _, _ = driver.execute_query(
        "MATCH (r:Run) " + _RUN_SUMMARY + " ORDER BY r.created_at, r.run_id",
        database_=database,
    )
    return [_run_row(r) for r in records]


def get_run(driver, run_id: str, database: str | None = None) -> dict:
    records, _, _ = driver.execute_query(
        "MATCH (r:Run {run_id: $run}) " + _RUN_SUMMARY,
        run=run_id,
        database_=database,
    )
    if not records:
        raise UnknownRunError(run_id)
    return _run_row(records[0])


def list_snapshots(driver, run_id: str, database: str | None = None) -> list[dict]:
    if not run_exists(driver, run_id, database):
        raise UnknownRunError(run_id)
    records, _, _ = driver.execute_query(
        "MATCH (s:Snapshot {run_id: $run}) WHERE s.complete IS NULL RETURN properties(s) AS s ORDER BY s.step",
        run=run_id,
        database_=database,
    )
    return [dict(r["s"]) for r in records]
