"""Which neurons carry signal from inputs to outputs, by sparse matrix products.

`adj` is the list of 0/1 CSR layer matrices (see structure.binary_layers). Path
counts are float64: exact up to 2**53 paths per neuron, approximate beyond
(a dense 784-1000-1000-1000-10 network has about 7.8e12 paths per output).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def forward_reach(adj: list[sp.csr_matrix]) -> list[np.ndarray]:
    """Per neuron layer: True where some input neuron has a path to the neuron."""
    reach = [np.ones(adj[0].shape[0], dtype=bool)]
    for a in adj:
        reach.append(np.asarray(a.T @ reach[-1].astype(np.float64)).ravel() > 0)
    return reach


def backward_reach(adj: list[sp.csr_matrix]) -> list[np.ndarray]:
    """Per neuron layer: True where the neuron has a path to some output neuron."""
    reach = [np.ones(adj[-1].shape[1], dtype=bool)]
    for a in reversed(adj):
        reach.append(np.asarray(a @ reach[-1].astype(np.float64)).ravel() > 0)
    return reach[::-1]


def path_counts(adj: list[sp.csr_matrix]) -> np.ndarray:
    """Number of distinct input->output paths ending at each output neuron."""
    p = np.ones(adj[0].shape[0], dtype=np.float64)
    for a in adj:
        p = np.asarray(a.T @ p).ravel()
    return p


def flow_statistics(adj: list[sp.csr_matrix]) -> dict:
    fwd, bwd = forward_reach(adj), backward_reach(adj)
    hidden_off = sum(int((~(f & b)).sum()) for f, b in zip(fwd[1:-1], bwd[1:-1]))
    paths = path_counts(adj)
    return {
        "n_inputs_without_path": int((~bwd[0]).sum()),
        "n_outputs_unreached": int((~fwd[-1]).sum()),
        "n_hidden_off_path": hidden_off,
        "paths_per_output": [float(x) for x in paths],
        "paths_per_output_min": float(paths.min()) if paths.size else 0.0,
        "paths_per_output_mean": float(paths.mean()) if paths.size else 0.0,
        "paths_per_output_max": float(paths.max()) if paths.size else 0.0,
    }
