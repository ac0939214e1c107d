"""Training one run end to end: settings checked, data loaded, run created, snapshots stored, run finished."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError

SUMMARY_COLUMNS = [
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
DEFAULT_QUEUE = 8  # = graphstore.background.DEFAULT_QUEUE; not imported: `--help` must not load numpy


def parse_hidden(hidden) -> tuple[int, ...]:
    """Hidden layer sizes from '1000,1000,1000' or a sequence of integers."""
    try:
        if isinstance(hidden, str):
            sizes = tuple(int(part) for part in hidden.replace(" ", "").split(",") if part)
        else:
            sizes = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise UsageError(f"hidden expects positive layer sizes such as 1000,1000,1000; got '{hidden}'")
    return sizes


def parse_rules(rule) -> dict:
    """Rule changes from ['NAME=VALUE', ...] (the CLI's repeated --rule) or a dict."""
    from .trainer.recipes import parse_rule

    if rule is None:
        return {}
    if isinstance(rule, dict):
        return dict(parse_rule(f"{k}={v}") for k, v in rule.items())
    if isinstance(rule, str):
        rule = [rule]
    return dict(parse_rule(r) for r in rule)


def default_run_id(method: str, dataset: str) -> str:
    return f"{method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class NpzRunWriter:
    """The paper's file format: DIR/epoch_XXX/weight_l*.npz with XXX = step, and testacc.txt."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.accuracies: list[float] = []

    def __call__(self, snapshot) -> None:
        from .graphstore.npz_io import write_snapshot_dir

        write_snapshot_dir(snapshot, self.root / f"epoch_{snapshot.step:03d}")
        self.accuracies.append(float(snapshot.metrics.get("test_accuracy", float("nan"))))
        (self.root / "testacc.txt").write_text("\n".join(f"{a:.6f}" for a in self.accuracies) + "\n")


def train_run(
    config,
    run_id: str | None,
    name: str | None,
    open_store: Callable | None,
    npz_dir: Path | None,
    queue: int,
    progress: Callable[[dict], None],
    log: Callable[[str], None],
) -> dict:
    """Train `config` (a trainer.loop.TrainConfig); `open_store` None trains without the graph store.

    Returns the run's summary: run_id, dataset_source, seconds, stored, steps (one row per snapshot)."""
    from .graphstore.errors import check_run_id
    from .trainer.data import load_dataset
    from .trainer.loop import run_info

    config.validate()
    if queue < 1:
        raise UsageError(f"queue must be at least 1; got {queue}")
    if run_id is not None:
        check_run_id(run_id)  # before the data set is loaded
    data = load_dataset(config.dataset, log=log)
    run_id = run_id or default_run_id(config.method, config.dataset)
    info = run_info(config, data, run_id, name)
    npz = NpzRunWriter(npz_dir) if npz_dir is not None else None
    started = time.perf_counter()
    if open_store is None:
        result = _train_without_store(config, data, run_id, progress, npz, queue)
    else:
        result = _train_into_store(config, data, info, progress, npz, queue, open_store())
    return {
        "run_id": run_id,
        "dataset_source": data.source,
        "seconds": time.perf_counter() - started,
        "stored": open_store is not None,
        "steps": result.steps,
    }


def _train_into_store(config, data, info, progress, npz, queue, store):
    from .graphstore.background import recording
    from .trainer.loop import train

    def write_both(snapshot):
        npz(snapshot)
        return store.write_snapshot(snapshot)  # False (nothing stored) keeps a refused run untouched

    write = store.write_snapshot if npz is None else write_both
    with recording(store, info, queue, write) as sink:
        result = train(config, data, sink, info.run_id, progress)
        progress({"kind": "storing", "pending": sink.pending})
        return result


def _train_without_store(config, data, run_id, progress, npz, queue):
    from .graphstore.background import BackgroundWriter
    from .trainer.loop import train

    if npz is None:
        return train(config, data, lambda _snapshot: None, run_id, progress)
    with BackgroundWriter(npz, queue) as sink:
        return train(config, data, sink, run_id, progress)
