"""`sparsetopo evolution RUN`: synapses alive, appeared and vanished per step and layer."""

from __future__ import annotations

from typing import Optional

import typer

COLUMNS = ["step", "layer", "alive", "appeared", "vanished", "initial_alive", "initial_fraction"]


def check_layer(run: dict, layer: int | None) -> None:
    """Refuse a weight-layer number the run does not have."""
    from ..errors import UsageError

    n_layers = len(run["architecture"]) - 1
    if layer is not None and not 0 <= layer < n_layers:
        raise UsageError(f"run '{run['run_id']}' has weight layers 0..{n_layers - 1}; there is no layer {layer}")


def evolution(
    run: str = typer.Argument(..., help="The run id."),
    layer: Optional[int] = typer.Option(
        None, "--layer", "-l", help="Only this weight layer (0 = input -> first hidden)."
    ),
    as_json: bool = typer.Option(False, "--json", help="A JSON array with one object per step and layer."),
    as_csv: bool = typer.Option(False, "--csv"),
) -> None:
    """Per step and layer: synapses alive, appeared, vanished, and first-step synapses still alive.

    At the first step every synapse counts as appeared. Summaries of synapse lifetimes are
    computed once per step (progress bar) and stored on the run's LayerSnapshot nodes.
    """
    from sparsetopo.graphstore.evolution import ensure_evolution
    from sparsetopo.graphstore.queries import run_named

    from ..context import open_store
    from ..output import emit
    from ..progress import progress_bar

    with open_store() as store:
        check_layer(store.get_run(run), layer)
        with progress_bar("summarising synapse lifetimes") as update:
            ensure_evolution(store, run, update)
        rows = run_named(store, "evolution", {"run_id": run, "layer": layer})
    emit(rows, COLUMNS, as_json, as_csv, title=f"evolution of run {run}")
