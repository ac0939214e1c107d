"""Structural statistics of a run's snapshots, computed once and stored as stat_* properties.

Network-wide numbers go onto (:Snapshot) and per-layer numbers onto (:LayerSnapshot), as flat
properties prefixed `stat_` so BI tools see them as columns next to the writer's own properties.
"""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "stat_"


def prefixed(stats: dict) -> dict:
    return {PREFIX + k: v for k, v in stats.items()}


def unprefixed(props: dict) -> dict:
    return {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}


def compute_run_statistics(
    store, run_id: str, hubs: int = 5, recompute: bool = False, progress: Callable[[int, int], None] | None = None
) -> int:
    """Compute and store the statistics of every snapshot lacking them; returns how many were computed."""
    from .analysis.structure import snapshot_statistics

    snaps = store.list_snapshots(run_id)
    todo = [s["step"] for s in snaps if recompute or PREFIX + "n_neurons" not in s]
    for i, step in enumerate(todo, start=1):
        snapshot = store.read_snapshot(run_id, step)
        network, layers = snapshot_statistics(snapshot.layers, hubs, snapshot.tap_shapes)
        store.set_snapshot_properties(run_id, step, prefixed(network) | {PREFIX + "hubs": hubs})
        for k, layer_stats in enumerate(layers):
            store.set_layer_properties(run_id, step, k, prefixed(layer_stats))
        if progress:
            progress(i, len(todo))
    return len(todo)


def run_statistics(store, run_id: str) -> list[dict]:
    """One row per snapshot: its step and every stored statistic."""
    return [{"step": s["step"]} | unprefixed(s) for s in store.list_snapshots(run_id)]


def with_input_degree_map(layer: dict) -> dict:
    """`input_degree_map` beside a layer's stored `tap_out_degrees`: one entry per input channel, the
    out-degree of each of its taps, laid out as `tap_shape` (kernel rows, spatial rows) when known."""
    degrees = layer.get("tap_out_degrees")
    if degrees is None or not layer.get("taps"):
        return layer
    import numpy as np

    shape = list(layer.get("tap_shape") or [layer["taps"]])
    layer["input_degree_map"] = np.asarray(degrees, dtype=np.int64).reshape([-1, *shape]).tolist()
    return layer


def snapshot_statistics(store, run_id: str, step: int) -> dict:
    """{"step", "network": {...}, "layers": [{...}, ...]} of one snapshot."""
    snaps = store.list_snapshots(run_id)
    network = {"step": step} | next(unprefixed(s) for s in snaps if s["step"] == step)
    layers = [
        with_input_degree_map({"layer": r["layer"]} | unprefixed(r["props"]))
        for r in store.read(
            "MATCH (l:LayerSnapshot {run_id: $run, step: $step}) RETURN l.layer AS layer, properties(l) AS props "
            "ORDER BY layer",
            {"run": run_id, "step": step},
        )
    ]
    return {"step": step, "network": network, "layers": layers}
