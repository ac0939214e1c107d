"""`sparsetopo report RUN [RUN ...] --out report.html`: one self-contained HTML file to share."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer


def report(
    runs: list[str] = typer.Argument(..., help="One or more run ids."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write."),
    nnstd: bool = typer.Option(
        True,
        "--nnstd/--no-nnstd",
        help="Compute NNSTD the store lacks (final snapshots of the runs; steps against step 0).",
    ),
    method: str = typer.Option("exact", "--nnstd-method", help="exact (the paper's) or sparse (large layers)."),
    points: int = typer.Option(
        12,
        "--evolution-points",
        min=0,
        help="At most this many later steps compared with the initial topology (0 = all).",
    ),
    save: bool = typer.Option(False, "--save-nnstd", help="Store the NNSTD computed for the report in the graph."),
) -> None:
    """Configuration, accuracy and density, churn, structural statistics, NNSTD heatmaps and evolution of runs."""
    from ..context import open_store
    from ..errors import UsageError
    from ..progress import progress_bar
    from ..report import render
    from ..report_data import gather

    if out.exists() and out.is_dir():
        raise UsageError(f"{out} is a directory; give a file name such as {out / 'report.html'}")
    if not out.parent.exists():
        raise UsageError(f"the directory {out.parent} does not exist")
    if method not in ("exact", "sparse"):
        raise UsageError(f"unknown NNSTD method '{method}'; use exact or sparse")
    with open_store() as store:
        with progress_bar("NNSTD for the report") as update:
            data = gather(
                store, runs, compute=nnstd, method=method, evolution_points=points, save=save, progress=update
            )
    command = " ".join(
        ["sparsetopo", "report", *map(shlex.quote, dict.fromkeys(runs)), "--out", shlex.quote(str(out))]
        + ([] if nnstd else ["--no-nnstd"])
        + ([] if method == "exact" else ["--nnstd-method", method])
        + ([] if points == 12 else ["--evolution-points", str(points)])
    )
    out.write_text(render(data, command), encoding="utf-8")
    typer.echo(str(out))
