"""`import torch`: PyTorch checkpoints into the graph store, one step per checkpoint file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .torch_topology import checkpoint_files, give_producers, load_state, snapshot_of, state_layers


def import_torch_run(
    store,
    path: Path,
    run_id: str,
    name=None,
    method=None,
    dataset=None,
    progress=None,
    producers: Mapping[str, str | None] | None = None,
) -> dict:
    """Import a checkpoint file or a directory of them (natural order = step order); idempotent.

    `producers` names, by module name, the layers a layer reads where shape chaining in module
    order would not find them (None: no single producer, e.g. after a sum)."""
    from .graphstore.errors import check_run_id
    from .graphstore.model import RunInfo
    from .pipelines import import_snapshots

    check_run_id(run_id)
    files = checkpoint_files(path)

    def layers_of(file: Path):
        layers = state_layers(*load_state(file))
        if producers:
            give_producers(layers, producers)
        return layers

    first = layers_of(files[0])  # a wrong name or wiring is refused before anything is stored
    snapshots = (snapshot_of(first if step == 0 else layers_of(file), run_id, step) for step, file in enumerate(files))
    config: dict = {"source": str(Path(path).resolve()), "recorded_from": "torch checkpoints"}
    config["chain_source"] = "module-order, producers given" if producers else "module-order"
    if producers:
        config["producers_given"] = [f"{layer}={source or 'none'}" for layer, source in producers.items()]
    info = RunInfo(run_id, [], name=name, method=method, dataset=dataset, config=config)
    return import_snapshots(store, info, snapshots, len(files), progress)
