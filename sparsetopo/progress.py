"""Progress bars on stderr for long work (stdout stays clean for --json/--csv)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yields update(done, total); the bar appears on the first update and is removed at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task(description, total=total)
            progress.update(task, completed=done, total=total)

        yield update


class TrainingBar:
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
