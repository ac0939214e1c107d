"""Pipelines that compose the packages (the CLI and the Python API call these)."""
from __future__ import annotations

from pathlib import Path

from graphstore.evolution import ensure_evolution
from graphstore.model import RunInfo

from .progress import progress_bar


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
    with progress_bar(f"importing {run_id}") as update:
        for n, snap in enumerate(_chain(first, snapshots), start=1):
            if store.write_snapshot(snap):
                written += 1
            else:
                skipped += 1
            update(n, total)
    store.set_run_status(run_id, "completed")
    ensure_evolution(store, run_id)
    return {"written": written, "skipped": skipped, "architecture": first.architecture}


def _chain(first, rest):
    yield first
    yield from rest
