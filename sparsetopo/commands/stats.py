"""`sparsetopo stats RUN | RUN@STEP`: structural statistics, stored on the graph (sparsetopo/statistics.py)."""

from __future__ import annotations

import typer

from ._common import csv_option, emit_result, json_option, workspace

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


def _short(value):
    return float(f"{value:.3g}") if isinstance(value, float) else value


def stats(
    target: str = typer.Argument(
        ..., metavar="RUN | RUN@STEP", help="A run (one row per snapshot), or one snapshot in full."
    ),
    hubs: int = typer.Option(5, "--hubs", min=0, help="How many hub neurons to record per layer."),
    recompute: bool = typer.Option(False, "--recompute", help="Recompute snapshots that have statistics already."),
    as_json: bool = json_option('an array per step; for RUN@STEP {"step", "network", "layers"}'),
    as_csv: bool = csv_option(),
) -> None:
    """Structural statistics of every snapshot: degrees, dead neurons, components, paths, k-cores, hubs.

    Computed once per snapshot (progress bar), stored as stat_* properties, then read from the graph.
    """
    from ..output import emit, emit_object
    from ..refs import parse_snapshot

    parse_snapshot(target)  # a malformed RUN@STEP is refused before the store is opened
    with workspace() as ws:
        result = ws.stats(target, hubs=hubs, recompute=recompute)
    if as_json:
        emit_result(result, as_json=True)
    elif isinstance(result, list):
        rows = result if as_csv else [{label: _short(r.get(key)) for key, label in SUMMARY.items()} for r in result]
        emit(rows, as_csv=as_csv, title=f"structure of run {target}")
    elif as_csv:
        emit(
            [{"scope": "network"} | result["network"]]
            + [{"scope": f"layer {r['layer']}", "step": result["step"]} | r for r in result["layers"]],
            as_csv=True,
        )
    else:
        emit_object(result["network"], title=f"{target}: whole network")
        emit(
            [{label: _short(r.get(key)) for key, label in LAYER_SUMMARY.items()} for r in result["layers"]],
            title=f"{target}: per weight layer (all columns: --json)",
        )
