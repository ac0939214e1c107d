"""`sparsetopo runs list|show|delete|check`."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="List, inspect and delete stored runs.")

# writer: alive while a process holds the run's lease, gone when its heartbeat expired (it died).
_LIST_COLUMNS = ["run_id", "method", "dataset", "architecture", "status", "writer", "snapshots", "last_step"]
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

    from ..context import open_store
    from ..output import emit, emit_object, json_text

    with open_store() as store:
        run = store.get_run(run_id)
        snaps = store.list_snapshots(run_id)
    if as_json:
        print(json_text({"run": run, "snapshots": snaps}))
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


@app.command()
def check(
    run_id: str,
    repair: bool = typer.Option(False, "--repair", help="Recompute what can be recomputed from the per-step matrices."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Verify a run against its per-step matrices: lifetimes, weights, counts, summaries.

    Exit status 1 when the run is inconsistent (and, with --repair, could not be repaired)."""

    from sparsetopo.graphstore.check import check_run

    from ..context import open_store
    from ..output import emit, json_text

    with open_store() as store:
        report = check_run(store, run_id, repair=repair)
    if as_json:
        print(json_text(report))
    else:
        if report["repaired"]:
            emit(report["repaired"], ["step", "layer", "problem"], title=f"Repaired in run {run_id}")
        if report["problems"]:
            emit(report["problems"], ["step", "layer", "problem", "repairable"], title=f"Problems of run {run_id}")
        if report["consistent"]:
            typer.echo(f"run '{run_id}' is consistent with its per-step matrices")
    if not report["consistent"]:
        fixable = all(p["repairable"] for p in report["problems"])
        typer.echo(
            f"Error: run '{run_id}' is inconsistent with its per-step matrices; "
            + (
                "`sparsetopo runs check --repair` can repair it"
                if fixable and not repair
                else "delete it and write it again from its files"
            ),
            err=True,
        )
        raise typer.Exit(1)
