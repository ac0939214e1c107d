"""What every command shares: how a run and a snapshot are named, the output options, the workspace."""

from __future__ import annotations

from typing import Any

import typer

from ..context import int64_option  # noqa: F401 - re-exported for the commands


def run_argument(help: str = "A run id (see `sparsetopo runs list`).") -> Any:
    return typer.Argument(..., metavar="RUN", help=help)


def snapshot_argument(help: str = "A snapshot: RUN@STEP.") -> Any:
    return typer.Argument(..., metavar="RUN@STEP", help=help)


def json_option(shape: str = "") -> Any:
    return typer.Option(False, "--json", help="Print JSON" + (f": {shape}." if shape else "."))


def csv_option() -> Any:
    return typer.Option(False, "--csv", help="Print CSV.")


def workers_option() -> Any:
    return typer.Option(
        None, "--workers", min=1, help="Processes to use (default: all cores; with --executor ray, the cluster's CPUs)."
    )


def executor_option(what: str = "the NNSTD pairs") -> Any:
    from ..choices import Executor

    return typer.Option(
        Executor.local,
        "--executor",
        help=f"Where {what} are computed: local (this machine's processes) or ray (a Ray cluster; "
        "needs pip install 'sparsetopo[ray]').",
    )


def ray_address_option() -> Any:
    return typer.Option(
        None,
        "--ray-address",
        help="The Ray cluster for --executor ray (default: RAY_ADDRESS, else a local Ray instance "
        "started for the command and stopped after it).",
    )


def workspace():
    """The Python API's workspace, as the CLI runs it (progress bars and notes on stderr)."""
    from ..workspace import connect

    return connect(console=True)


def emit_result(result, as_json: bool = False, as_csv: bool = False, columns=None, title: str | None = None) -> None:
    """--json prints the API's result as it is; otherwise a table (rows) or a two-column record."""
    from ..output import emit, emit_object, json_text

    if as_json:
        print(json_text(result))
    elif isinstance(result, list):
        emit(result, columns, as_csv=as_csv, title=title)
    else:
        emit_object(result, title=title)
