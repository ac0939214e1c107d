"""How connections appear and vanish between consecutive topologies, from matrices alone.

This is the matrix-side definition of evolution that the graph store's SYNAPSE
lifetimes must agree with: a connection is alive at a step when its matrix
stores an entry (sparsetopo.topology.connection_keys; a connection grown at 0 is alive);
a lifetime is a maximal run of consecutive steps in which it is alive (pruned then regrown = two lifetimes); `born` is the first step of a lifetime and
`died` the first later step without it (None while alive at the last step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..topology import connection_keys


def churn_table(steps: Sequence[int], snapshots: Sequence[Sequence[sp.spmatrix]]) -> list[dict]:
    """One row per (step, layer): alive, appeared, vanished, initial_alive, initial_fraction.

    `snapshots[i]` is the list of layer matrices at `steps[i]`; steps ascend. At the
    first step every connection counts as appeared. `initial_alive` counts the
    first step's connections whose first lifetime has lasted until this step.
    """
    if len(steps) != len(snapshots):
        raise ValueError("one list of layer matrices per step is needed")
    rows: list[dict] = []
    prev: list[np.ndarray] | None = None
    initial: list[np.ndarray] = []
    initial_size: list[int] = []
    for step, layers in zip(steps, snapshots):
        keys = [connection_keys(m) for m in layers]
        for k, cur in enumerate(keys):
            if prev is None:
                appeared, vanished = cur.size, 0
                initial.append(cur)
                initial_size.append(cur.size)
            else:
                appeared = np.setdiff1d(cur, prev[k], assume_unique=True).size
                vanished = np.setdiff1d(prev[k], cur, assume_unique=True).size
                initial[k] = np.intersect1d(initial[k], cur, assume_unique=True)
            n0 = initial_size[k]
            rows.append(
                {
                    "step": int(step),
                    "layer": k,
                    "alive": int(cur.size),
                    "appeared": int(appeared),
                    "vanished": int(vanished),
                    "initial_alive": int(initial[k].size),
                    "initial_fraction": initial[k].size / n0 if n0 else 0.0,
                }
            )
        prev = keys
    return rows


def lifetimes(
    steps: Sequence[int], snapshots: Sequence[Sequence[sp.spmatrix]]
) -> list[tuple[int, int, int, int, int | None]]:
    """Every lifetime as (layer, row, col, born, died), died None if alive at the last step."""
    open_: list[dict[int, int]] = []
    out: list[tuple[int, int, int, int, int | None]] = []
    for step, layers in zip(steps, snapshots):
        for k, m in enumerate(layers):
            if len(open_) <= k:
                open_.append({})
            cur = set(connection_keys(m).tolist())
            alive = open_[k]
            for key in [key for key in alive if key not in cur]:
                out.append((k, key // m.shape[1], key % m.shape[1], alive.pop(key), int(step)))
            for key in cur:
                alive.setdefault(key, int(step))
    for k, alive in enumerate(open_):
        n_cols = snapshots[-1][k].shape[1]
        out.extend((k, key // n_cols, key % n_cols, born, None) for key, born in alive.items())
    return sorted(out, key=lambda t: (t[0], t[1], t[2], t[3]))
