"""`sparsetopo import npz|torch` and `sparsetopo export npz`: the paper's file format, PyTorch checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import Dataset, Method
from ..errors import UsageError
from ._common import emit_result, json_option, snapshot_argument, workspace

import_app = typer.Typer(no_args_is_help=True, help="Import topologies into the graph store.")
export_app = typer.Typer(no_args_is_help=True, help="Export topologies from the graph store.")


_RUN_ID_HELP = "The run to create or extend (default: the {what}'s name)."
_NAME = "A human name for the run."
_METHOD = "The training method that made the topologies."
_DATASET = "The data set they were trained on."
_SUMMARY = '{"run_id", "written", "skipped", "architecture"}'


def _report_import(summary: dict, as_json: bool) -> None:
    if as_json:
        emit_result(summary, as_json=True)
        return
    typer.echo(
        f"imported {summary['written']} new snapshot(s) of run '{summary['run_id']}' "
        f"({summary['skipped']} already stored), architecture {summary['architecture']}"
    )


@import_app.command("npz")
def import_npz(
    path: Path = typer.Argument(
        ..., metavar="DIR", help="A snapshot directory (weight_l*.npz) or a run directory of epoch_XXX/ ones."
    ),
    run_id: Optional[str] = typer.Option(None, "--run-id", help=_RUN_ID_HELP.format(what="directory")),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME),
    method: Optional[Method] = typer.Option(None, "--method", help=_METHOD),
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help=_DATASET),
    as_json: bool = json_option(_SUMMARY),
) -> None:
    """Import the paper's .npz topologies; each epoch directory becomes a step, in epoch order."""
    with workspace() as ws:
        _report_import(ws.import_npz(path, run_id=run_id, name=name, method=method, dataset=dataset), as_json)


@import_app.command("torch")
def import_torch(
    path: Path = typer.Argument(
        ..., metavar="CKPT", help="A state_dict or checkpoint file (torch.save), or a directory of them."
    ),
    run_id: Optional[str] = typer.Option(None, "--run-id", help=_RUN_ID_HELP.format(what="file's or directory")),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME),
    method: Optional[Method] = typer.Option(None, "--method", help=_METHOD),
    dataset: Optional[Dataset] = typer.Option(None, "--dataset", help=_DATASET),
    producer: Optional[list[str]] = typer.Option(
        None,
        "--producer",
        metavar="LAYER=SOURCE",
        help="The layer LAYER reads SOURCE's outputs (module names), or none (after a sum, a "
        "concatenation); repeatable. Layers are otherwise chained by shapes in module order.",
    ),
    as_json: bool = json_option(_SUMMARY),
) -> None:
    """Import PyTorch checkpoints: each file is a step (natural order); masks from prune buffers,
    a `masks` entry, or the nonzero weights. Loaded with weights_only=True: nothing is unpickled."""
    producers = _producer_pairs(producer or [])
    with workspace() as ws:
        summary = ws.import_torch(path, run_id=run_id, name=name, method=method, dataset=dataset, producers=producers)
        _report_import(summary, as_json)


def _producer_pairs(values: list[str]) -> dict[str, str | None]:
    pairs: dict[str, str | None] = {}
    for value in values:
        layer, sep, source = (part.strip() for part in value.partition("="))
        if not sep or not layer or not source:
            raise UsageError(f"--producer takes LAYER=SOURCE (module names, or SOURCE none), got '{value}'")
        if layer in pairs:
            raise UsageError(f"--producer names layer '{layer}' twice")
        pairs[layer] = None if source.lower() == "none" else source
    return pairs


@export_app.command("npz")
def export_npz(
    snapshot: str = snapshot_argument(),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write weight_l*.npz into (created if missing)."),
    as_json: bool = json_option('{"snapshot", "out", "layers"}'),
) -> None:
    """Write one stored snapshot in the paper's format (last row of each file = bias)."""
    with workspace() as ws:
        result = ws.export_npz(snapshot, out)
    if as_json:
        emit_result(result, as_json=True)
    else:
        typer.echo(f"wrote {result['layers']} layer file(s) of {result['snapshot']} to {result['out']}")
