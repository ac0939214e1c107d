"""`sparsetopo plot RUN --out DIR`: PNG figures of how a run's wiring evolved."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import emit_result, json_option, run_argument, workspace


def plot(
    run: str = run_argument(),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the PNG files (created if missing)."),
    as_json: bool = json_option('{"run", "files": [...], "skipped": {figure: why}}'),
) -> None:
    """PNG figures: churn, degree distributions, input-degree heatmaps, accuracy and density.

    The input-degree heatmaps (first and last step) need a square input, e.g. 28x28 MNIST.
    """
    with workspace() as ws:
        result = ws.plot(run, out)
    if as_json:
        emit_result(result, as_json=True)
        return
    for figure, why in result["skipped"].items():
        typer.echo(f"no {figure.replace('_', '-')} heatmap: {why}", err=True)
    for path in result["files"]:
        typer.echo(path)
