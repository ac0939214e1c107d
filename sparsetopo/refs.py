"""How commands and the API name what they work on: a run, a snapshot (RUN@STEP), a network."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError


def parse_snapshot(spec: str) -> tuple[str, int] | None:
    """'RUN@STEP' -> (run, step); None when `spec` has no '@STEP' part."""
    run, sep, step = str(spec).rpartition("@")
    if not sep or not run:
        return None
    try:
        number = int(step)
    except ValueError:
        raise UsageError(f"'{spec}' is not RUN@STEP: the step after '@' must be an integer") from None
    from .context import check_int64

    return run, check_int64(number, f"the step of '{spec}'")


def snapshot(spec: str) -> tuple[str, int]:
    """'RUN@STEP' -> (run, step), refusing anything else."""
    ref = parse_snapshot(spec)
    if ref is None:
        raise UsageError(f"'{spec}' names no snapshot; write RUN@STEP, e.g. {spec}@0")
    return ref


def snapshot_name(run: str, step: int) -> str:
    return f"{run}@{step}"


def load_networks(specs: list[str], open_store) -> list[list]:
    """Layer matrices for each network: a directory of weight_l*.npz files, or RUN@STEP in the store.

    `open_store()` is called only when some network is in the store."""
    from .graphstore.npz_io import read_snapshot_dir

    networks = []
    for spec in specs:
        if Path(spec).exists():
            networks.append(read_snapshot_dir(spec).layers)
            continue
        ref = parse_snapshot(spec)
        if ref is None:
            raise UsageError(f"'{spec}' is neither a directory of weight_l*.npz files nor RUN@STEP")
        networks.append(open_store().read_snapshot(*ref).layers)
    return networks
