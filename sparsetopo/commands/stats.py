"""`sparsetopo stats RUN`: structural statistics of every snapshot, stored on the graph.

Network-wide numbers go onto (:Snapshot) and per-layer numbers onto (:LayerSnapshot),
as flat properties prefixed `stat_` so BI tools see them as columns next to the
writer's own properties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import typer

from ..context import int64_option

PREFIX = "stat_"
# The human table shows a few columns under short headers (80-column terminals); --json/--csv show all.
SUMMARY = {
    "step": "step",
    "n_synapses": "synapses",
    "in_degree_gini": "in-deg. Gini",
    "n_inputs_without_path": "dead inputs",
    "n_outputs_unreached": "unfed outputs",
    "components": "parts",
    "kcore_max": "max core",
    "assortativity": "assort.",
}
LAYER_SUMMARY = {
    "layer": "layer",
    "nnz": "nnz",
    "density": "density",
    "out_degree_gini": "out Gini",
    "in_degree_gini": "in Gini",
    "n_inputs_without_outputs": "idle inputs",
    "n_outputs_without_inputs": "unfed outputs",
    "assortativity": "assort.",
}


def _prefixed(stats: dict) -> dict:
    return {PREFIX + k: v for k, v in stats.items()}


def _unprefixed(props: dict) -> dict:
    return {k[len(PREFIX) :]: v for k, v in props.items() if k.startswith(PREFIX)}


def _short(value):
    return float(f"{value:.3g}") if isinstance(value, float) else value


def compute_run_statistics(
    store, run_id: str, hubs: int = 5, recompute: bool = False, progress: Callable[[int, int], None] | None = None
) -> int:
    """Compute and store the statistics of every snapshot lacking them; returns how many were computed."""
    from sparsetopo.analysis.structure import snapshot_statistics

    snaps = store.list_snapshots(run_id)
    todo = [s["step"] for s in snaps if recompute or PREFIX + "n_neurons" not in s]
    for i, step in enumerate(todo, start=1):
        snapshot = store.read_snapshot(run_id, step)
        network, layers = snapshot_statistics(snapshot.layers, hubs)
        store.set_snapshot_properties(run_id, step, _prefixed(network) | {PREFIX + "hubs": hubs})
        for k, layer_stats in enumerate(layers):
            store.set_layer_properties(run_id, step, k, _prefixed(layer_stats))
        if progress:
            progress(i, len(todo))
    return len(todo)


def stats(
    run: str = typer.Argument(..., help="The run id."),
    step: Optional[int] = typer.Option(
        None, "--step", "-s", help="Show one snapshot in full, network and per layer.", callback=int64_option
    ),
    hubs: int = typer.Option(5, "--hubs", min=0, help="How many hub neurons to record per layer."),
    recompute: bool = typer.Option(False, "--recompute", help="Recompute snapshots that have statistics already."),
    as_json: bool = typer.Option(False, "--json", help="JSON: an array per step, or one object with --step."),
    as_csv: bool = typer.Option(False, "--csv"),
) -> None:
    """Structural statistics of every snapshot: degrees, dead neurons, components, paths, k-cores, hubs.

    Computed once per snapshot (progress bar), stored as stat_* properties, then read from the graph.
    """
    from sparsetopo.graphstore.errors import UnknownSnapshotError
    from sparsetopo.graphstore.evolution import ensure_evolution

    from ..context import open_store
    from ..output import emit, emit_object
    from ..progress import progress_bar

    with open_store() as store:
        if step is not None and step not in {s["step"] for s in store.list_snapshots(run)}:
            raise UnknownSnapshotError(run, step)
        with progress_bar("structural statistics") as update:
            compute_run_statistics(store, run, hubs, recompute, update)
        with progress_bar("summarising synapse lifetimes") as update:
            ensure_evolution(store, run, update)
        snaps = store.list_snapshots(run)
        if step is None:
            rows = [{"step": s["step"]} | _unprefixed(s) for s in snaps]
            if not (as_json or as_csv):
                rows = [{label: _short(r.get(key)) for key, label in SUMMARY.items()} for r in rows]
            emit(rows, None, as_json, as_csv, title=f"structure of run {run}")
            return
        network = {"step": step} | next(_unprefixed(s) for s in snaps if s["step"] == step)
        layers = [
            {"layer": r["layer"]} | _unprefixed(r["props"])
            for r in store.read(
                "MATCH (l:LayerSnapshot {run_id: $run, step: $step}) RETURN l.layer AS layer, properties(l) AS props "
                "ORDER BY layer",
                {"run": run, "step": step},
            )
        ]
    if as_json:
        emit_object({"step": step, "network": network, "layers": layers}, as_json=True)
    elif as_csv:
        emit(
            [{"scope": "network"} | network] + [{"scope": f"layer {r['layer']}", "step": step} | r for r in layers],
            None,
            as_csv=True,
        )
    else:
        emit_object(network, title=f"run {run}, step {step}: whole network")
        emit(
            [{label: _short(r.get(key)) for key, label in LAYER_SUMMARY.items()} for r in layers],
            title=f"run {run}, step {step}: per weight layer (all columns: --json)",
        )
