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
    scale: str = typer.Option("small", "--scale", help="small (≤30 min on 2 cores, width 300), full (paper-sized, hours) or tiny (digits, for tests)."),
    out: Path = typer.Option(Path("out/paper"), "--out", help="Directory for results.md, report.html and figures/."),
    workers: int = typer.Option(None, "--workers", help="Processes for NNSTD matrices (default: all cores)."),
) -> None:
    """Performance, topological evolution and Figure 4 of Liu et al. 2020, measured; resumable."""
    from ..errors import UsageError
    from ..context import open_store
    from ..experiment import SCALES, run_experiment
    from ..experiment_results import analyse, write_outputs
    from ..progress import progress_bar

    if scale not in SCALES:
        raise UsageError(f"unknown scale '{scale}'; choose one of: {', '.join(SCALES)}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["sparsetopo", "experiment", "paper", "--scale", scale, "--out", shlex.quote(str(out))])
    log = lambda message: typer.echo(message, err=True)  # noqa: E731
    started = time.perf_counter()
    with open_store() as store:
        with progress_bar(f"paper ({scale}): runs") as update:
            state = run_experiment(store, SCALES[scale], out, log, progress=lambda n, total, _name: update(n, total))
        findings = analyse(store, state, log, workers)
        paths = write_outputs(store, state, findings, time.perf_counter() - started, command, log)
    typer.echo(f"results: {paths['results']}")
    typer.echo(f"report:  {paths['report']}")
    held = [v["held"] for v in findings.claim1] + [c["held"] for c in findings.claim2] + [findings.claim3["held"]]
    typer.echo(f"claims held: {sum(held)} of {len(held)} (see results.md for each, with its numbers)")
    sys.stdout.flush()
