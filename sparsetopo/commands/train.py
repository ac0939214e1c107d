"""`sparsetopo train`: train a dense or sparse MLP and stream every snapshot into the graph store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..choices import Backend, Dataset, Init, Method, Recipe
from ..training import DEFAULT_QUEUE, SUMMARY_COLUMNS, parse_hidden
from ._common import emit_result, json_option, workspace


def train(
    dataset: Dataset = typer.Option(
        Dataset.mnist, "--dataset", help="digits (8x8) ships with scikit-learn; the others are fetched once."
    ),
    method: Method = typer.Option(Method.set, "--method", help="The training method."),
    recipe: Optional[Recipe] = typer.Option(
        None,
        "--recipe",
        help="Reference rules to follow (default: keras-randn for set and static, keras for dense, rigl for rigl). "
        "See docs/trainer.md.",
    ),
    rule: Optional[list[str]] = typer.Option(
        None, "--rule", help="Change one rule of the recipe, NAME=VALUE (e.g. regrow_init=randn/10); repeatable."
    ),
    epsilon: float = typer.Option(
        20.0, "--epsilon", help="Erdős–Rényi sparsity: p = eps (n_in + n_out) / (n_in n_out)."
    ),
    zeta: float = typer.Option(
        0.3, "--zeta", help="Fraction removed per update (SET: per sign; RigL: initial cosine fraction)."
    ),
    epochs: int = typer.Option(10, "--epochs"),
    hidden: str = typer.Option("1000,1000,1000", "--hidden", help="Hidden layer sizes, comma-separated."),
    seed: int = typer.Option(0, "--seed", help="Makes a CPU run bit-reproducible."),
    run_id: Optional[str] = typer.Option(
        None, "--run-id", help="The run to create (default: METHOD-DATASET-TIME-RANDOM)."
    ),
    name: Optional[str] = typer.Option(None, "--name", help="A free-text name stored on the run."),
    init: Init = typer.Option(Init.er, "--init", help="Initial topology of sparse methods."),
    density: Optional[float] = typer.Option(
        None, "--density", help="Target density for erk/uniform (default: what er gives)."
    ),
    sparse_output: Optional[bool] = typer.Option(
        None, "--sparse-output/--dense-output", help="Output layer sparse or dense (default: the recipe's)."
    ),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Default: the recipe's (keras 0.3, others 0)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Default: the recipe's (0.01)."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help="Default: the recipe's (0.9)."),
    weight_decay: Optional[float] = typer.Option(
        None,
        "--weight-decay",
        help="Default: the recipe's (keras 0, sparse-python 2e-4 outside the learning rate, sparsetopo-v0 2e-4).",
    ),
    batch_size: int = typer.Option(100, "--batch-size"),
    delta_t: int = typer.Option(100, "--delta-t", help="RigL: batches between topology updates."),
    rigl_end: float = typer.Option(0.75, "--rigl-end", help="RigL: fraction of training after which updates stop."),
    npz_dir: Optional[Path] = typer.Option(
        None, "--npz-dir", help="Also write every snapshot in the paper's npz format here."
    ),
    no_store: bool = typer.Option(
        False, "--no-store", help="Do not write to the graph store (needs --npz-dir or is a dry run)."
    ),
    queue: int = typer.Option(DEFAULT_QUEUE, "--queue", min=1, help="Snapshots the background writer may fall behind."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="torch CPU threads (1 is often fastest on a busy machine)."
    ),
    backend: Backend = typer.Option(
        Backend.auto,
        "--backend",
        help="masked (dense matrices times masks), sparse (weights only "
        "at the connections) or auto (sparse when the sparse layers are at most 5 % full or would need more "
        "than 4 GiB as masked matrices).",
    ),
    initial_train_samples: Optional[int] = typer.Option(
        None,
        "--initial-train-samples",
        min=1,
        help="Step 0's training metrics from the first N training samples (default: all; later steps report "
        "the running mean over the batches trained).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = json_option('{"run_id", "dataset_source", "seconds", "stored", "steps": [...]}'),
) -> None:
    """Train an MLP with dense, static, SET or RigL connectivity; every snapshot goes into Neo4j."""
    with workspace() as ws:
        summary = ws.train(
            dataset=dataset,
            method=method,
            recipe=recipe,
            rule=rule,
            epsilon=epsilon,
            zeta=zeta,
            epochs=epochs,
            hidden=parse_hidden(hidden),
            seed=seed,
            run_id=run_id,
            name=name,
            init=init,
            density=density,
            sparse_output=sparse_output,
            dropout=dropout,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            delta_t=delta_t,
            rigl_end=rigl_end,
            npz_dir=npz_dir,
            no_store=no_store,
            queue=queue,
            threads=threads,
            backend=backend,
            initial_train_samples=initial_train_samples,
            progress=(lambda _event: None) if quiet else None,
        )
    if as_json:
        emit_result(summary, as_json=True)
        return
    emit_result(
        summary["steps"],
        columns=SUMMARY_COLUMNS,
        title=f"{method.value} on {dataset.value} ({summary['dataset_source']}), {summary['seconds']:.1f} s",
    )
    typer.echo(f"run id: {summary['run_id']}" + ("" if summary["stored"] else " (not stored)"))
