"""`sparsetopo train`: train a dense or sparse MLP and stream every snapshot into the graph store."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import typer

from ..errors import UsageError

_SUMMARY_COLUMNS = [
    "step",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "density",
    "n_synapses",
    "added",
    "removed",
    "regrown_in_place",
]


def parse_hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise UsageError(f"--hidden expects comma-separated positive layer sizes such as 1000,1000,1000; got '{text}'")
    return sizes


def default_run_id(method: str, dataset: str) -> str:
    return f"{method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class NpzRunWriter:
    """The paper's file format: DIR/epoch_XXX/weight_l*.npz with XXX = step, and testacc.txt."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.accuracies: list[float] = []

    def __call__(self, snapshot) -> None:
        from sparsetopo.graphstore.npz_io import write_snapshot_dir

        write_snapshot_dir(snapshot, self.root / f"epoch_{snapshot.step:03d}")
        self.accuracies.append(float(snapshot.metrics.get("test_accuracy", float("nan"))))
        (self.root / "testacc.txt").write_text("\n".join(f"{a:.6f}" for a in self.accuracies) + "\n")


class _Bar:
    """The progress bar on stderr: epoch, batch, loss, accuracy, density, churn."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f} density {task.fields[density]:.4f} "
                "churn {task.fields[churn]}"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task = None
        self.epochs = self.batches = 0
        self.last = 0.0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self.epochs, self.batches = event["epochs"], event["batches"]
            self.task = self.progress.add_task(
                f"epoch 1/{self.epochs}",
                total=event["epochs"] * event["batches"],
                loss=float("nan"),
                acc=float("nan"),
                density=1.0,
                churn=0,
            )
        elif kind == "batch":
            now = time.monotonic()
            if now - self.last < 0.1:  # rich redraws at ~10 Hz anyway
                return
            self.last = now
            self.progress.update(
                self.task,
                completed=event["t"],
                description=f"epoch {event['epoch']}/{self.epochs} batch {event['batch']}/{self.batches}",
                loss=event["loss"],
                acc=event["accuracy"],
                density=event["density"],
                churn=event["churn"],
            )
        elif kind == "snapshot" and self.task is not None:
            self.progress.update(self.task, density=event["density"])
        elif kind == "end" and self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[0].total)
        elif kind == "storing" and self.task is not None:
            # A dense run's last seconds go to the store: queued snapshots, then every latest weight.
            self.progress.update(
                self.task, description=f"storing {event['pending']} queued snapshot(s), finishing the run"
            )


def train(
    dataset: str = typer.Option("mnist", "--dataset", help="mnist, fashion-mnist or digits (8x8, no fetch)."),
    method: str = typer.Option("set", "--method", help="dense, static, set or rigl."),
    recipe: str = typer.Option(
        None,
        "--recipe",
        help="Reference rules to follow: keras (default of set, static, "
        "dense), sparse-python, sparsetopo-v0, rigl (default of rigl). See docs/trainer.md.",
    ),
    rule: list[str] = typer.Option(
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
    run_id: str = typer.Option(None, "--run-id", help="Default: METHOD-DATASET-TIME-RANDOM."),
    name: str = typer.Option(None, "--name", help="A free-text name stored on the run."),
    init: str = typer.Option("er", "--init", help="Initial topology of sparse methods: er, erk or uniform."),
    density: float = typer.Option(None, "--density", help="Target density for erk/uniform (default: what er gives)."),
    sparse_output: bool = typer.Option(
        None, "--sparse-output/--dense-output", help="Output layer sparse or dense (default: the recipe's)."
    ),
    dropout: float = typer.Option(None, "--dropout", help="Default: the recipe's (keras 0.3, others 0)."),
    lr: float = typer.Option(None, "--lr", help="Default: the recipe's (0.01)."),
    momentum: float = typer.Option(None, "--momentum", help="Default: the recipe's (0.9)."),
    weight_decay: float = typer.Option(
        None,
        "--weight-decay",
        help="Default: the recipe's (keras 0, sparse-python 2e-4 outside the learning rate, sparsetopo-v0 2e-4).",
    ),
    batch_size: int = typer.Option(100, "--batch-size"),
    delta_t: int = typer.Option(100, "--delta-t", help="RigL: batches between topology updates."),
    rigl_end: float = typer.Option(0.75, "--rigl-end", help="RigL: fraction of training after which updates stop."),
    npz_dir: Path = typer.Option(None, "--npz-dir", help="Also write every snapshot in the paper's npz format here."),
    no_store: bool = typer.Option(
        False, "--no-store", help="Do not write to the graph store (needs --npz-dir or is a dry run)."
    ),
    # graphstore.background.DEFAULT_QUEUE, not imported here: `--help` must not load numpy and scipy.
    queue_size: int = typer.Option(8, "--queue", help="Snapshots the background writer may fall behind."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (1 is often fastest on a busy machine)."),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="masked (dense matrices times masks), sparse (weights only "
        "at the connections) or auto (sparse when the sparse layers are at most 5 % full).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Train an MLP with dense, static, SET or RigL connectivity; every snapshot goes into Neo4j."""
    from sparsetopo.trainer.data import check_name, load_dataset
    from sparsetopo.trainer.loop import TrainConfig, run_info
    from sparsetopo.trainer.loop import train as train_loop
    from sparsetopo.trainer.recipes import parse_rule

    from ..output import emit

    config = TrainConfig(
        dataset=check_name(dataset),
        method=method,
        recipe=recipe,
        hidden=parse_hidden(hidden),
        epochs=epochs,
        epsilon=epsilon,
        zeta=zeta,
        init=init,
        density=density,
        sparse_output=sparse_output,
        dropout=dropout,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        rules=dict(parse_rule(r) for r in rule or []),
        batch_size=batch_size,
        seed=seed,
        delta_t=delta_t,
        rigl_end=rigl_end,
        threads=threads,
        backend=backend,
    )
    config.validate()
    if queue_size < 1:
        raise UsageError(f"--queue must be at least 1; got {queue_size}")
    if run_id is not None:
        from sparsetopo.graphstore.errors import check_run_id

        check_run_id(run_id)  # before the data set is loaded
    data = load_dataset(dataset, log=lambda m: typer.echo(m, err=True))
    run_id = run_id or default_run_id(method, dataset)
    info = run_info(config, data, run_id, name)
    npz = NpzRunWriter(npz_dir) if npz_dir is not None else None

    started = time.perf_counter()
    try:
        with _Bar() if not quiet else _Quiet() as bar:
            if no_store:
                result = _train_without_store(config, data, run_id, bar, npz, queue_size, train_loop)
            else:
                result = _train_into_store(config, data, info, bar, npz, queue_size, train_loop)
    except KeyboardInterrupt:
        import signal

        # Everything is stored and marked by now: a further Ctrl-C while the process unwinds would
        # only end it by the signal (status -2 instead of 130).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        typer.echo(f"run {run_id} interrupted", err=True)
        raise
    seconds = time.perf_counter() - started

    if as_json:
        from ..output import json_text

        print(
            json_text(
                {
                    "run_id": run_id,
                    "dataset_source": data.source,
                    "seconds": seconds,
                    "stored": not no_store,
                    "steps": result.steps,
                }
            )
        )
        return
    emit(result.steps, _SUMMARY_COLUMNS, title=f"{method} on {dataset} ({data.source}), {seconds:.1f} s")
    typer.echo(f"run id: {run_id}" + ("" if not no_store else " (not stored)"))


class _Quiet:
    def __enter__(self):
        return lambda _event: None

    def __exit__(self, *exc):
        return None


def _train_into_store(config, data, info, progress, npz, queue_size, train_loop):
    from sparsetopo.graphstore.background import recording

    from ..context import open_store

    with open_store() as store:

        def write_both(snapshot):
            npz(snapshot)
            return store.write_snapshot(snapshot)  # False (nothing stored) keeps a refused run untouched

        write = store.write_snapshot if npz is None else write_both
        with recording(store, info, queue_size, write) as sink:
            result = train_loop(config, data, sink, info.run_id, progress)
            progress({"kind": "storing", "pending": sink.pending})
            return result


def _train_without_store(config, data, run_id, progress, npz, queue_size, train_loop):
    from sparsetopo.graphstore.background import BackgroundWriter

    if npz is None:
        return train_loop(config, data, lambda _snapshot: None, run_id, progress)
    with BackgroundWriter(npz, queue_size) as sink:
        return train_loop(config, data, sink, run_id, progress)
