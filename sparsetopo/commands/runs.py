"""`sparsetopo runs list|show|delete`."""
from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="List, inspect and delete stored runs.")

_LIST_COLUMNS = ["run_id", "method", "dataset", "architecture", "status", "snapshots", "last_step"]
_SNAPSHOT_COLUMNS = ["step", "epoch", "n_synapses", "density", "test_accuracy", "train_loss", "added", "removed"]


@app.command("list")
def list_runs(as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """Every run in the store."""
    from ..context import open_store
    from ..output import emit

    with open_store() as store:
        rows = store.list_runs()
    emit(rows, None if as_json else _LIST_COLUMNS, as_json, as_csv, title="Runs")


@app.command()
def show(run_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A run's configuration and its snapshots."""
    import json

    from ..context import open_store
    from ..output import emit, emit_object

    with open_store() as store:
        run = store.get_run(run_id)
        snaps = store.list_snapshots(run_id)
    if as_json:
        print(json.dumps({"run": run, "snapshots": snaps}, default=str))
        return
    emit_object(run, title=f"Run {run_id}")
    cols = [c for c in _SNAPSHOT_COLUMNS if any(c in s for s in snaps)]
    emit(snaps, cols, title="Snapshots")


@app.command()
def delete(run_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete one run completely (and nothing else)."""
    from ..context import open_store

    with open_store() as store:
        run = store.get_run(run_id)
        if not yes:
            typer.confirm(f"Delete run '{run_id}' with {run['snapshots']} snapshots?", abort=True)
        counts = store.delete_run(run_id)
    typer.echo(f"deleted run '{run_id}': " + ", ".join(f"{v} {k}" for k, v in counts.items()))
