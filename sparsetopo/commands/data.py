"""`sparsetopo data fetch|list`: the training data sets and their local, checksummed cache."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Fetch and inspect the data sets the trainer uses.")

_COLUMNS = ["dataset", "status", "source", "n_train", "n_test", "split", "path"]


@app.command()
def fetch(
    name: str = typer.Argument(..., help="mnist or fashion-mnist (digits ships with scikit-learn)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if a verified copy is cached."),
    canonical: bool = typer.Option(
        True, "--canonical/--no-canonical", help="Try the canonical download location first."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Download a data set once into the user's data directory, with checksums."""
    from sparsetopo.trainer.data import check_name, dataset_dir
    from sparsetopo.trainer.data import fetch as fetch_dataset

    from ..output import emit_object

    check_name(name, fetchable_only=True)
    meta = fetch_dataset(name, force=force, try_canonical=canonical, log=lambda m: typer.echo(m, err=True))
    row = {
        "dataset": name,
        "status": "already cached (checksums verified)" if meta["cached"] else "fetched",
        "source": meta["source"],
        "n_train": meta["n_train"],
        "n_test": meta["n_test"],
        "split": meta["split"],
        "path": str(dataset_dir(name)),
    }
    emit_object(row, as_json=as_json, title=f"Data set {name}")


@app.command("list")
def list_datasets(as_json: bool = typer.Option(False, "--json"), as_csv: bool = typer.Option(False, "--csv")) -> None:
    """The data sets, whether they are cached, and where they came from."""
    from sparsetopo.trainer.data import DATASETS, DIGITS_SPLIT, dataset_dir, verified_meta

    from ..output import emit

    rows = []
    for name in DATASETS:
        if name == "digits":
            rows.append(
                {
                    "dataset": name,
                    "status": "built in",
                    "source": "scikit-learn load_digits",
                    "n_train": 1347,
                    "n_test": 450,
                    "split": DIGITS_SPLIT,
                    "path": None,
                }
            )
            continue
        meta = verified_meta(name)
        d = dataset_dir(name)
        if meta is None:
            status = "corrupt (will be fetched again)" if (d / "meta.json").exists() else "not fetched"
            rows.append({"dataset": name, "status": status, "path": str(d)})
        else:
            rows.append(
                {
                    "dataset": name,
                    "status": "cached",
                    "source": meta["source"],
                    "n_train": meta["n_train"],
                    "n_test": meta["n_test"],
                    "split": meta["split"],
                    "path": str(d),
                }
            )
    emit(rows, _COLUMNS, as_json, as_csv, title="Data sets")
