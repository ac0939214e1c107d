"""A slow, obviously correct NNSTD: Python sets and loops over every neuron pair.

It follows the definition (and the authors' script) literally: dense matrices,
one set of input indices per output neuron, a full float64 cost matrix filled
pair by pair, scipy's linear_sum_assignment, matched cost / width, B's next
matrix rows reordered by the matching, mean over layers. Networks of different
widths are padded with phantom neurons that cost 1 against anything.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def neuron_sets(dense: np.ndarray) -> list[set[int]]:
    return [set(int(i) for i in np.nonzero(dense[:, j])[0]) for j in range(dense.shape[1])]


def edit_cost(a: set[int], b: set[int]) -> float:
    if not a and not b:
        return 0
    return (len(a) + len(b) - 2 * len(a & b)) / len(a | b)


def reference_nnstd(network_a, network_b) -> tuple[float, list[float]]:
    dense_a = [np.asarray(m.toarray() if hasattr(m, "toarray") else m) for m in network_a]
    dense_b = [np.asarray(m.toarray() if hasattr(m, "toarray") else m) for m in network_b]
    distances = np.zeros(len(dense_a))
    perm = None
    for k, (a, b) in enumerate(zip(dense_a, dense_b)):
        if perm is not None:
            n = len(perm)
            a = np.vstack([a, np.zeros((n - a.shape[0], a.shape[1]))])
            b = np.vstack([b, np.zeros((1, b.shape[1]))])  # phantom rows read as empty
            b = b[[p if p < b.shape[0] - 1 else b.shape[0] - 1 for p in perm]]
        sets_a, sets_b = neuron_sets(a), neuron_sets(b)
        n = max(len(sets_a), len(sets_b))
        cost = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                if i < len(sets_a) and j < len(sets_b):
                    cost[i, j] = edit_cost(sets_a[i], sets_b[j])
                else:
                    cost[i, j] = 1
        rows, cols = linear_sum_assignment(cost)
        distances[k] = cost[rows, cols].sum() / n
        perm = list(cols)
    return float(np.mean(distances)), [float(d) for d in distances]
