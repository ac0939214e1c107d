"""`sparsetopo experiment paper`: reproduce the paper's findings with one command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..choices import Executor, Part, Scale
from ._common import emit_result, executor_option, json_option, ray_address_option, workers_option, workspace

app = typer.Typer(no_args_is_help=True, help="Reproduce studies end to end (training, graph store, NNSTD, report).")


@app.command()
def paper(
    scale: Scale = typer.Option(
        Scale.small,
        "--scale",
        help="tiny (digits, for tests), small (~15 min), here (Figure 4 at "
        "the paper's size, findings 1-2 at width 300; ~2.5 h with --jobs 2) or paper (days).",
    ),
    part: Part = typer.Option(Part.all, "--part", help="all, performance (findings 1 and 2) or figure4."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for results.md, results.json, report.html, figures/."),
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        min=1,
        help="Runs trained side by side, one core each (default: 1; with --executor ray, the cluster's CPUs).",
    ),
    workers: Optional[int] = workers_option(),
    executor: Executor = executor_option("the runs and the NNSTD analyses"),
    ray_address: Optional[str] = ray_address_option(),
    as_json: bool = json_option('{"results", "json", "report", "verdicts": [...], "held"}'),
) -> None:
    """Performance, topological evolution and Figure 4 of Liu et al. 2020, measured; resumable."""
    with workspace() as ws:
        result = ws.experiment(
            scale=scale,
            part=part,
            out=out,
            jobs=jobs,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
        )
    if as_json:
        emit_result(result, as_json=True)
        return
    typer.echo(f"results: {result['results']} and {result['json']}")
    typer.echo(f"report:  {result['report']}")
    typer.echo(
        f"claims held: {result['held']} of {len(result['verdicts'])} (see results.md for each, with its numbers)"
    )
    sys.stdout.flush()
