"""`sparsetopo experiment paper`: reproduce the paper's findings with one command."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Reproduce studies end to end (training, graph store, NNSTD, report).")


@app.command()
def paper(
    scale: str = typer.Option(
        "small",
        "--scale",
        help="tiny (digits, for tests), small (~15 min), here (Figure 4 at "
        "the paper's size, findings 1-2 at width 300; ~1 h with --jobs 2) or paper (days).",
    ),
    part: str = typer.Option("all", "--part", help="all, performance (findings 1 and 2) or figure4."),
    out: Path = typer.Option(
        Path("out/paper"), "--out", help="Directory for results.md, results.json, report.html, figures/."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Runs trained side by side in separate processes (one core each)."),
    workers: int = typer.Option(None, "--workers", help="Processes for NNSTD matrices (default: all cores)."),
) -> None:
    """Performance, topological evolution and Figure 4 of Liu et al. 2020, measured; resumable."""
    from ..context import open_store
    from ..errors import UsageError
    from ..experiment import PARTS, SCALES, run_experiment
    from ..experiment_results import analyse, verdicts
    from ..experiment_writeup import write_outputs
    from ..progress import progress_bar

    if scale not in SCALES:
        raise UsageError(f"unknown scale '{scale}'; choose one of: {', '.join(SCALES)}")
    if part not in PARTS:
        raise UsageError(f"unknown part '{part}'; choose one of: {', '.join(PARTS)}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1; got {jobs}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        ["sparsetopo", "experiment", "paper", "--scale", scale, "--part", part, "--out", shlex.quote(str(out))]
        + (["--jobs", str(jobs)] if jobs > 1 else [])
    )
    log = lambda message: typer.echo(message, err=True)  # noqa: E731
    started = time.perf_counter()
    with open_store() as store:
        with progress_bar(f"paper ({scale}): runs") as update:
            state = run_experiment(
                store, SCALES[scale], out, log, progress=lambda n, total, _name: update(n, total), part=part, jobs=jobs
            )
        if state.failed:
            raise UsageError(
                f"{len(state.failed)} run(s) failed ({', '.join(state.failed)}); run the command again to train them"
            )
        findings = analyse(store, state, log, workers)
        paths = write_outputs(store, state, findings, time.perf_counter() - started, command, log)
    typer.echo(f"results: {paths['results']} and {paths['json']}")
    typer.echo(f"report:  {paths['report']}")
    held = verdicts(findings)
    typer.echo(f"claims held: {held.count('held')} of {len(held)} (see results.md for each, with its numbers)")
    sys.stdout.flush()
