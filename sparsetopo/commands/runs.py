"""`sparsetopo runs list|show|delete|check`."""

from __future__ import annotations

import typer

from ._common import csv_option, emit_result, json_option, run_argument, workspace

app = typer.Typer(no_args_is_help=True, help="List, inspect, check and delete stored runs.")

# writer: alive while a process holds the run's lease, gone when its heartbeat expired (it died).
_LIST_COLUMNS = ["run_id", "method", "dataset", "architecture", "status", "writer", "snapshots", "last_step"]
_SNAPSHOT_COLUMNS = ["step", "epoch", "n_synapses", "density", "test_accuracy", "train_loss", "added", "removed"]


@app.command("list")
def list_runs(as_json: bool = json_option("an array, one object per run"), as_csv: bool = csv_option()) -> None:
    """Every run in the store."""
    with workspace() as ws:
        rows = ws.runs()
    emit_result(rows, as_json, as_csv, None if as_csv else _LIST_COLUMNS, title="Runs")


@app.command()
def show(run: str = run_argument(), as_json: bool = json_option('{"run": {...}, "snapshots": [...]}')) -> None:
    """A run's configuration and its snapshots."""
    from ..output import emit, emit_object

    with workspace() as ws:
        result = ws.show_run(run)
    if as_json:
        emit_result(result, as_json=True)
        return
    emit_object(result["run"], title=f"Run {run}")
    snaps = result["snapshots"]
    emit(snaps, [c for c in _SNAPSHOT_COLUMNS if any(c in s for s in snaps)], title="Snapshots")


@app.command()
def delete(
    run: str = run_argument(),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = json_option('{"run": id, "deleted": {what: count}}'),
) -> None:
    """Delete one run completely (and nothing else)."""
    with workspace() as ws:
        if not yes:
            info = ws.store.get_run(run)
            typer.confirm(f"Delete run '{run}' with {info['snapshots']} snapshots?", abort=True)
        result = ws.delete_run(run)
    if as_json:
        emit_result(result, as_json=True)
    else:
        typer.echo(f"deleted run '{run}': " + ", ".join(f"{v} {k}" for k, v in result["deleted"].items()))


@app.command()
def check(
    run: str = run_argument(),
    repair: bool = typer.Option(False, "--repair", help="Recompute what can be recomputed from the per-step matrices."),
    as_json: bool = json_option('{"consistent", "problems": [...], "repaired": [...]}'),
) -> None:
    """Verify a run against its per-step matrices: lifetimes, weights, counts, summaries.

    Exit status 1 when the run is inconsistent (and, with --repair, could not be repaired)."""
    from ..output import emit

    with workspace() as ws:
        report = ws.check_run(run, repair=repair)
    if as_json:
        emit_result(report, as_json=True)
    else:
        if report["repaired"]:
            emit(report["repaired"], ["step", "layer", "problem"], title=f"Repaired in run {run}")
        if report["problems"]:
            emit(report["problems"], ["step", "layer", "problem", "repairable"], title=f"Problems of run {run}")
        if report["consistent"]:
            typer.echo(f"run '{run}' is consistent with its per-step matrices")
    if not report["consistent"]:
        fixable = all(p["repairable"] for p in report["problems"])
        typer.echo(
            f"Error: run '{run}' is inconsistent with its per-step matrices; "
            + (
                "`sparsetopo runs check --repair` can repair it"
                if fixable and not repair
                else "delete it and write it again from its files"
            ),
            err=True,
        )
        raise typer.Exit(1)
