"""Pipelines that compose the packages (the CLI and the Python API call these)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from sparsetopo.graphstore.model import RunInfo, Snapshot


def import_npz_run(store, root: Path, run_id: str, name=None, method=None, dataset=None, progress=None) -> dict:
    """Import a paper-format snapshot or run directory; idempotent, one transaction per step."""
    from sparsetopo.graphstore.errors import check_run_id
    from sparsetopo.graphstore.npz_io import epoch_dirs, is_snapshot_dir, read_run_dir

    check_run_id(run_id)  # before reading any file
    root = Path(root)
    total = 1 if is_snapshot_dir(root) else len(epoch_dirs(root)) if root.is_dir() else 1
    info = RunInfo(run_id, [], name=name, method=method, dataset=dataset, config={"source": str(root.resolve())})
    return import_snapshots(store, info, read_run_dir(root, run_id), total, progress)


def import_snapshots(store, info: RunInfo, snapshots: Iterator[Snapshot], total: int, progress=None) -> dict:
    """Store the snapshots of an import as the run `info` describes; idempotent (stored steps are skipped).

    The first snapshot is read (and so validated) before the run is created; the run is
    `importing` until its last snapshot is stored, then `completed`."""
    first = next(snapshots)
    store.create_run(replace(info, architecture=first.architecture, status="importing"))
    written = skipped = 0
    for n, snap in enumerate(itertools.chain([first], snapshots), start=1):
        if store.write_snapshot(snap):
            written += 1
        else:
            skipped += 1
        if progress:
            progress(n, total)
    store.set_run_status(info.run_id, "completed")
    return {"written": written, "skipped": skipped, "architecture": first.architecture}


def nnstd_evolution(
    store,
    run_id: str,
    reference: str = "initial",
    method: str = "exact",
    workers: int | None = None,
    on_progress=None,
    purpose: str | None = None,
    executor=None,
) -> list[dict]:
    """Python API: NNSTD of each snapshot of a stored run to its reference, written as NNSTD relationships.

    The reference plays network A. Each relationship's purpose is `purpose`, by default
    "evolution-initial" or "evolution-previous". Returns one row per compared snapshot: step,
    epoch, reference_step, distance, layers, and chained (per layer: False for a layer compared as
    it is, without a producer) when some layer does not chain.
    """
    from sparsetopo.analysis.nnstd import evolution_pairs
    from sparsetopo.analysis.nnstd_parallel import nnstd_pairs

    from .errors import UsageError

    if reference not in ("initial", "previous"):
        raise UsageError(f"unknown reference '{reference}'; use initial or previous")
    store.get_run(run_id)  # unknown run: one clear sentence
    snapshots = sorted(store.list_snapshots(run_id), key=lambda s: s["step"])
    if len(snapshots) < 2:
        raise UsageError(f"run '{run_id}' has {len(snapshots)} snapshot(s); NNSTD evolution needs at least two")
    steps = [s["step"] for s in snapshots]
    nets = [store.read_snapshot(run_id, step).layers for step in steps]
    pairs = evolution_pairs(len(steps), reference)
    results = nnstd_pairs(
        nets,
        pairs,
        method,
        workers=workers,
        on_progress=on_progress,
        names=[f"{run_id}@{s}" for s in steps],
        executor=executor,
    )
    rows = []
    for (i, j), r in zip(pairs, results):
        store.write_nnstd(
            run_id,
            steps[i],
            run_id,
            steps[j],
            r.distance,
            r.layers,
            method,
            purpose=purpose or f"evolution-{reference}",
        )
        rows.append(
            {
                "step": steps[j],
                "epoch": snapshots[j].get("epoch"),
                "reference_step": steps[i],
                "distance": r.distance,
                "layers": r.layers,
            }
            | ({} if all(r.chained) else {"chained": r.chained})
        )
    return rows
