"""`sparsetopo nnstd pair|matrix|evolution`: Neural Network Sparse Topology Distance.

A network argument is a directory in the paper's format (weight_l*.npz) or RUN@STEP, a
snapshot in the graph store. The computation lives in sparsetopo.analysis.nnstd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..choices import Executor, Reference, Solver
from ._common import (
    csv_option,
    emit_result,
    executor_option,
    json_option,
    ray_address_option,
    run_argument,
    workers_option,
    workspace,
)

app = typer.Typer(no_args_is_help=True, help="Neural Network Sparse Topology Distance (NNSTD) between sparse networks.")

_SOLVER_HELP = (
    "exact: the authors' computation bit for bit (scipy's dense assignment); "
    "sparse: the same optimal cost per layer from the shared-input pairs only, "
    "much faster on large layers, but tied optima may be broken differently"
)
_NETWORK = "a weight_l*.npz directory or RUN@STEP"


def _solver_option() -> Any:
    return typer.Option(Solver.exact, "--solver", help=_SOLVER_HELP)


def _figure_option(what: str) -> Any:
    return typer.Option(None, "--figure", help=f"Also write {what} to this PNG file.")


@app.command("pair")
def pair(
    a: str = typer.Argument(..., metavar="A", help=f"First network: {_NETWORK}."),
    b: str = typer.Argument(..., metavar="B", help=f"Second network: {_NETWORK}."),
    solver: Solver = _solver_option(),
    tie_sensitivity: bool = typer.Option(
        False, "--tie-sensitivity", help="Also report how layer distances move across several optimal matchings."
    ),
    as_json: bool = json_option('{"distance", "layers": [...]} (and "chained", "tie_sensitivity")'),
) -> None:
    """NNSTD between two networks: the network distance and one distance per layer."""
    from ..output import emit

    with workspace() as ws:
        result = ws.nnstd(a, b, solver=solver, tie_sensitivity=tie_sensitivity)
    if as_json:
        emit_result(result, as_json=True)
        return
    report = result.get("tie_sensitivity")
    rows = [{"layer": k, "distance": d} for k, d in enumerate(result["layers"])]
    if "chained" in result:  # say which layers were compared without relabelling
        for row, chained in zip(rows, result["chained"]):
            row["chained"] = "yes" if chained else "no (not relabelled)"
    rows.append({"layer": "network (mean)", "distance": result["distance"]})
    if report is not None:
        for row, spread in zip(rows, report["layer_spread"] + [report["distance_spread"]]):
            row["spread across tie-breaks"] = spread
    emit(rows, title=f"NNSTD({a}, {b}) [{solver.value}]")
    if report is not None:
        verdict = "unambiguous" if report["distance_spread"] == 0 else "depends on tie-breaking"
        typer.echo(
            f"tie-breaks {', '.join(report['tie_breaks'])}: the distance {verdict} "
            f"(range {min(report['distance']):.6g} .. {max(report['distance']):.6g})"
        )


@app.command("matrix")
def matrix(
    networks: list[str] = typer.Argument(..., metavar="NETWORK", help=f"Two or more networks: {_NETWORK}."),
    solver: Solver = _solver_option(),
    workers: Optional[int] = workers_option(),
    figure: Optional[Path] = _figure_option("a heatmap (the paper's Figure 4 style)"),
    executor: Executor = executor_option(),
    ray_address: Optional[str] = ray_address_option(),
    as_json: bool = json_option('{"labels": [...], "distance": [[...]], "layers": [[[...]]]} (and "chained")'),
    as_csv: bool = typer.Option(False, "--csv", help="Print the distance matrix as CSV."),
) -> None:
    """All-pairs NNSTD among networks, computed in parallel: symmetric, zero diagonal."""
    with workspace() as ws:
        result = ws.nnstd_matrix(
            networks, solver=solver, workers=workers, figure=figure, executor=executor, ray_address=ray_address
        )
    labels, distance = result["labels"], result["distance"]
    if as_json:
        emit_result(result, as_json=True)
    elif as_csv:
        import csv
        import sys

        writer = csv.writer(sys.stdout)
        writer.writerow([""] + labels)
        for label, row in zip(labels, distance):
            writer.writerow([label] + [repr(v) for v in row])
    else:
        rows = [{"network": label} | dict(zip(labels, row)) for label, row in zip(labels, distance)]
        emit_result(rows, title=f"NNSTD ({solver.value})")
        if figure is not None:
            typer.echo(f"heatmap written to {figure}", err=True)


@app.command("evolution")
def evolution(
    run: str = run_argument(),
    reference: Reference = typer.Option(
        Reference.initial, "--reference", help="Compare each snapshot with the initial one or the previous one."
    ),
    solver: Solver = _solver_option(),
    workers: Optional[int] = workers_option(),
    figure: Optional[Path] = _figure_option("the curve of network and layer distances"),
    executor: Executor = executor_option(),
    ray_address: Optional[str] = ray_address_option(),
    as_json: bool = json_option("an array, one object per compared snapshot"),
    as_csv: bool = csv_option(),
) -> None:
    """NNSTD of every snapshot of a run to the initial (or previous) one; stored as NNSTD relationships."""
    with workspace() as ws:
        rows = ws.nnstd_evolution(
            run,
            reference=reference,
            solver=solver,
            workers=workers,
            figure=figure,
            executor=executor,
            ray_address=ray_address,
        )
    emit_result(
        rows,
        as_json,
        as_csv,
        ["step", "epoch", "reference_step", "distance", "layers"],
        title=f"NNSTD of {run} to the {reference.value} snapshot",
    )
    if not as_json and not as_csv:
        typer.echo(
            f"stored {len(rows)} NNSTD relationship(s)" + (f"; plot written to {figure}" if figure else ""), err=True
        )
