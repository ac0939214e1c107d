"""`sparsetopo import npz` and `sparsetopo export npz`: the paper's file format."""
from __future__ import annotations

from pathlib import Path

import typer

import_app = typer.Typer(no_args_is_help=True, help="Import topologies into the graph store.")
export_app = typer.Typer(no_args_is_help=True, help="Export topologies from the graph store.")


@import_app.command("npz")
def import_npz(
    root: Path = typer.Argument(..., help="A snapshot directory (weight_l*.npz) or a run directory of epoch_XXX/ ones."),
    run_id: str = typer.Option(..., "--run-id", help="The run these snapshots belong to."),
    name: str = typer.Option(None, help="A human name for the run."),
    method: str = typer.Option(None, help="How the topologies were made (e.g. set)."),
    dataset: str = typer.Option(None),
) -> None:
    """Import the paper's .npz topologies; each epoch directory becomes a step, in epoch order."""
    from ..context import open_store
    from ..pipelines import import_npz_run

    with open_store() as store:
        summary = import_npz_run(store, root, run_id, name=name, method=method, dataset=dataset)
    typer.echo(
        f"imported {summary['written']} new snapshot(s) of run '{run_id}' "
        f"({summary['skipped']} already stored), architecture {summary['architecture']}"
    )


@export_app.command("npz")
def export_npz(
    run_id: str = typer.Argument(...),
    step: int = typer.Option(..., "--step"),
    out: Path = typer.Option(..., "--out", help="Directory to write weight_l*.npz into."),
) -> None:
    """Write one stored snapshot in the paper's format (last row of each file = bias)."""
    from graphstore.npz_io import write_snapshot_dir

    from ..context import open_store

    with open_store() as store:
        snapshot = store.read_snapshot(run_id, step)
    write_snapshot_dir(snapshot, out)
    typer.echo(f"wrote {len(snapshot.layers)} layer file(s) of {run_id}@{step} to {out}")
