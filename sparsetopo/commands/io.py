"""`sparsetopo import npz` and `sparsetopo export npz`: the paper's file format."""

from __future__ import annotations

from pathlib import Path

import typer

from ..context import int64_option

import_app = typer.Typer(no_args_is_help=True, help="Import topologies into the graph store.")
export_app = typer.Typer(no_args_is_help=True, help="Export topologies from the graph store.")


@import_app.command("npz")
def import_npz(
    root: Path = typer.Argument(
        ..., help="A snapshot directory (weight_l*.npz) or a run directory of epoch_XXX/ ones."
    ),
    run_id: str = typer.Option(..., "--run-id", help="The run these snapshots belong to."),
    name: str = typer.Option(None, help="A human name for the run."),
    method: str = typer.Option(None, help="How the topologies were made (e.g. set)."),
    dataset: str = typer.Option(None),
) -> None:
    """Import the paper's .npz topologies; each epoch directory becomes a step, in epoch order."""
    from ..context import open_store
    from ..pipelines import import_npz_run

    with open_store() as store:
        try:
            summary = import_npz_run(store, root, run_id, name=name, method=method, dataset=dataset)
        except KeyboardInterrupt:
            _mark_ended(store, run_id, "interrupted")
            raise
        except Exception as exc:
            from sparsetopo.graphstore.errors import RunConflictError

            if not isinstance(exc, RunConflictError):  # a refusal does not touch the run it refused
                _mark_ended(store, run_id, "failed")
            raise
    typer.echo(
        f"imported {summary['written']} new snapshot(s) of run '{run_id}' "
        f"({summary['skipped']} already stored), architecture {summary['architecture']}"
    )


@export_app.command("npz")
def export_npz(
    run_id: str = typer.Argument(...),
    step: int = typer.Option(..., "--step", callback=int64_option),
    out: Path = typer.Option(..., "--out", help="Directory to write weight_l*.npz into."),
) -> None:
    """Write one stored snapshot in the paper's format (last row of each file = bias)."""
    from sparsetopo.graphstore.npz_io import write_snapshot_dir

    from ..context import open_store

    with open_store() as store:
        snapshot = store.read_snapshot(run_id, step)
    write_snapshot_dir(snapshot, out)
    typer.echo(f"wrote {len(snapshot.layers)} layer file(s) of {run_id}@{step} to {out}")


def _mark_ended(store, run_id: str, status: str) -> None:
    """Mark a run this process was writing as failed/interrupted instead of leaving it 'importing'."""
    if not store.writer.lease.holds(run_id):
        return  # never became its writer (refused, or failed before the first step): not ours to mark
    try:
        store.set_run_status(run_id, status)
    except Exception:  # noqa: BLE001 - the original error matters more (e.g. the server is gone)
        pass
