"""`sparsetopo evolution RUN`: synapses alive, appeared and vanished per step and layer."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import csv_option, emit_result, json_option, run_argument, workspace

COLUMNS = ["step", "layer", "alive", "appeared", "vanished", "initial_alive", "initial_fraction"]


def evolution(
    run: str = run_argument(),
    layer: Optional[int] = typer.Option(
        None, "--layer", "-l", help="Only this weight layer (0 = input -> first hidden)."
    ),
    as_json: bool = json_option("an array, one object per step and layer"),
    as_csv: bool = csv_option(),
) -> None:
    """Per step and layer: synapses alive, appeared, vanished, and first-step synapses still alive.

    At the first step every synapse counts as appeared. Summaries of synapse lifetimes are
    computed once per step (progress bar) and stored on the run's LayerSnapshot nodes.
    """
    with workspace() as ws:
        rows = ws.evolution(run, layer=layer)
    emit_result(rows, as_json, as_csv, COLUMNS, title=f"evolution of run {run}")
