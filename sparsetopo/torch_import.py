"""`import torch`: PyTorch checkpoints into the graph store, one step per checkpoint file."""

from __future__ import annotations

from pathlib import Path

from .torch_topology import checkpoint_files, load_state, snapshot_of, state_layers


def import_torch_run(store, path: Path, run_id: str, name=None, method=None, dataset=None, progress=None) -> dict:
    """Import a checkpoint file or a directory of them (natural order = step order); idempotent."""
    from .graphstore.errors import check_run_id
    from .graphstore.model import RunInfo

    check_run_id(run_id)
    files = checkpoint_files(path)
    first = snapshot_of(state_layers(*load_state(files[0])), run_id, 0)  # refuses a bad first file before writing
    store.create_run(
        RunInfo(
            run_id,
            first.architecture,
            name=name,
            method=method,
            dataset=dataset,
            status="importing",
            config={"source": str(Path(path).resolve()), "recorded_from": "torch checkpoints"},
        )
    )
    written = skipped = 0
    for step, file in enumerate(files):
        snap = first if step == 0 else snapshot_of(state_layers(*load_state(file)), run_id, step)
        if store.write_snapshot(snap):
            written += 1
        else:
            skipped += 1
        if progress:
            progress(step + 1, len(files))
    store.set_run_status(run_id, "completed")
    return {"written": written, "skipped": skipped, "architecture": first.architecture}
