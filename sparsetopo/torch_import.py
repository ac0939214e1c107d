"""`import torch`: PyTorch checkpoints into the graph store, one step per checkpoint file."""

from __future__ import annotations

from pathlib import Path

from .torch_topology import checkpoint_files, load_state, snapshot_of, state_layers


def import_torch_run(store, path: Path, run_id: str, name=None, method=None, dataset=None, progress=None) -> dict:
    """Import a checkpoint file or a directory of them (natural order = step order); idempotent."""
    from .graphstore.errors import check_run_id
    from .graphstore.model import RunInfo
    from .pipelines import import_snapshots

    check_run_id(run_id)
    files = checkpoint_files(path)
    snapshots = (snapshot_of(state_layers(*load_state(file)), run_id, step) for step, file in enumerate(files))
    config = {"source": str(Path(path).resolve()), "recorded_from": "torch checkpoints", "chain_source": "module-order"}
    info = RunInfo(run_id, [], name=name, method=method, dataset=dataset, config=config)
    return import_snapshots(store, info, snapshots, len(files), progress)
