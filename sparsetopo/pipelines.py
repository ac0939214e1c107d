"""Pipelines that compose the packages (the CLI and the Python API call these)."""
from __future__ import annotations

from pathlib import Path

from graphstore.evolution import ensure_evolution
from graphstore.model import RunInfo


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def import_npz_run(store, root: Path, run_id: str, name=None, method=None, dataset=None) -> dict:
    """Import a paper-format snapshot or run directory; idempotent, one transaction per step."""
    from graphstore.npz_io import epoch_dirs, is_snapshot_dir, read_run_dir

    root = Path(root)
    total = 1 if is_snapshot_dir(root) else len(epoch_dirs(root)) if root.is_dir() else 1
    snapshots = read_run_dir(root, run_id)
    first = next(snapshots)  # validates the format before anything is written
    store.create_run(RunInfo(run_id, first.architecture, name=name, method=method, dataset=dataset,
                             status="importing", config={"source": str(root.resolve())}))
    written = skipped = 0
    with _progress() as progress:
        task = progress.add_task(f"importing {run_id}", total=total)
        for snap in _chain(first, snapshots):
            if store.write_snapshot(snap):
                written += 1
            else:
                skipped += 1
            progress.advance(task)
    store.set_run_status(run_id, "completed")
    ensure_evolution(store, run_id)
    return {"written": written, "skipped": skipped, "architecture": first.architecture}


def _chain(first, rest):
    yield first
    yield from rest
