"""`sparsetopo data fetch|list`: the training data sets and their local, checksummed cache."""

from __future__ import annotations

import typer

from ..choices import FetchableDataset
from ._common import csv_option, emit_result, json_option

app = typer.Typer(no_args_is_help=True, help="Fetch and inspect the data sets the trainer uses.")

_COLUMNS = ["dataset", "status", "source", "n_train", "n_test", "split", "path"]


def _workspace():
    from ..workspace import connect

    return connect(console=True)  # no store is opened: data sets live in the user's data directory


@app.command()
def fetch(
    dataset: FetchableDataset = typer.Argument(
        ..., metavar="DATASET", help="The data set (digits ships with scikit-learn)."
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even if a verified copy is cached."),
    canonical: bool = typer.Option(
        True, "--canonical/--no-canonical", help="Try the canonical download location first."
    ),
    as_json: bool = json_option('{"dataset", "status", "source", "n_train", "n_test", "split", "path"}'),
) -> None:
    """Download a data set once into the user's data directory, with checksums."""
    row = _workspace().fetch_dataset(dataset, force=force, canonical=canonical)
    emit_result(row, as_json, title=f"Data set {row['dataset']}")


@app.command("list")
def list_datasets(
    as_json: bool = json_option("an array, one object per data set"), as_csv: bool = csv_option()
) -> None:
    """The data sets, whether they are cached, and where they came from."""
    emit_result(_workspace().datasets(), as_json, as_csv, _COLUMNS, title="Data sets")
