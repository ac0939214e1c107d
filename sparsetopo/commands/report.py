"""`sparsetopo report RUN [RUN ...] --out report.html`: one self-contained HTML file to share."""

from __future__ import annotations

from pathlib import Path

import typer

from ..choices import Solver
from ._common import emit_result, json_option, workspace


def report(
    runs: list[str] = typer.Argument(..., metavar="RUN", help="One or more run ids."),
    out: Path = typer.Option(..., "--out", "-o", help="The HTML file to write."),
    nnstd: bool = typer.Option(
        True,
        "--nnstd/--no-nnstd",
        help="Compute NNSTD the store lacks (final snapshots of the runs; steps against step 0).",
    ),
    nnstd_solver: Solver = typer.Option(
        Solver.exact, "--nnstd-solver", help="exact (the paper's) or sparse (large layers)."
    ),
    evolution_points: int = typer.Option(
        12,
        "--evolution-points",
        min=0,
        help="At most this many later steps compared with the initial topology (0 = all).",
    ),
    save_nnstd: bool = typer.Option(
        False, "--save-nnstd", help="Store the NNSTD computed for the report in the graph."
    ),
    as_json: bool = json_option('{"out", "runs"}'),
) -> None:
    """Configuration, accuracy and density, churn, structural statistics, NNSTD heatmaps and evolution of runs."""
    with workspace() as ws:
        result = ws.report(
            runs, out, nnstd=nnstd, nnstd_solver=nnstd_solver, evolution_points=evolution_points, save_nnstd=save_nnstd
        )
    if as_json:
        emit_result(result, as_json=True)
    else:
        typer.echo(result["out"])
