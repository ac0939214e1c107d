"""NNSTD pairing costs from sparse products, never from loops over neuron pairs.

Output neuron j of a layer is the set of input rows connected to it in column j of the
layer's connection mask (sparsetopo.topology.connection_mask: the stored entries of a sparse
matrix, a connection at weight exactly 0 included; the nonzeros of a dense array, as the
authors' script reads its dense matrices; the paper's files store no zeros, so both readings
agree on them). The cost of pairing neuron a of network A with neuron b of network B
is the normalized edit distance (|a| + |b| - 2|a∩b|) / |a∪b| (0 when both are
empty), computed as one float64 division of exact integer counts so it equals,
bit for bit, the authors' Python `int / int`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def fan_in(mask: sp.csc_matrix) -> np.ndarray:
    """|set| of every output neuron (column)."""
    return np.diff(mask.indptr).astype(np.int64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # int64 -> float64 is exact below 2**53, so true_divide rounds exactly like Python's int / int
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def dense_costs(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, block: int = 1024) -> np.ndarray:
    """The full (n_out_a, n_out_b) float64 cost matrix, as the authors build it.

    Built in blocks of rows so that temporaries stay small next to the result.
    """
    n_a, n_b = mask_a.shape[1], mask_b.shape[1]
    out = np.empty((n_a, n_b))
    size_a, size_b = fan_in(mask_a), fan_in(mask_b)
    inter_all = (mask_a.T @ mask_b).tocsr()
    for start in range(0, n_a, block):
        stop = min(start + block, n_a)
        inter = inter_all[start:stop].toarray().astype(np.int64, copy=False)
        size = size_a[start:stop, None] + size_b[None, :]
        out[start:stop] = _divide(size - 2 * inter, size - inter)
    return out


def sparse_costs(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR-style (indptr over A's neurons, B's neurons, costs) of the pairs that share at least one
    input; every other cost is exactly 1 (or 0 when both neurons are empty)."""
    inter = (mask_a.T @ mask_b).tocsr()
    inter.sort_indices()
    cols = inter.indices
    # in place where possible: at 10,000 neurons there are tens of millions of pairs
    size = np.repeat(fan_in(mask_a), np.diff(inter.indptr))
    size += fan_in(mask_b)[cols]
    den = size - inter.data
    size -= 2 * inter.data.astype(np.int64)
    return inter.indptr.astype(np.int64, copy=False), cols, _divide(size, den)


def explicit_costs(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every cost that is not exactly 1, as CSR (indptr, columns sorted per row, costs) over
    N = max(n_a, n_b) rows: the pairs that share an input (< 1) and the pairs of two empty
    neurons (0). Everything else, phantom neurons of a padded square included, costs exactly 1."""
    n_a, n_b = mask_a.shape[1], mask_b.shape[1]
    n = max(n_a, n_b)
    indptr, cols, costs = sparse_costs(mask_a, mask_b)
    cols = cols.astype(np.int64, copy=False)
    empty_a = np.flatnonzero(fan_in(mask_a) == 0)
    empty_b = np.flatnonzero(fan_in(mask_b) == 0)
    counts = np.zeros(n, dtype=np.int64)
    counts[:n_a] = np.diff(indptr)
    if len(empty_a) and len(empty_b):
        # an empty neuron shares no input, so its row has no other explicit entry
        row_of = np.repeat(np.arange(n_a), counts[:n_a])
        row_of = np.concatenate([row_of, np.repeat(empty_a, len(empty_b))])
        cols = np.concatenate([cols, np.tile(empty_b, len(empty_a))])
        costs = np.concatenate([costs, np.zeros(len(empty_a) * len(empty_b))])
        by_row = np.argsort(row_of, kind="stable")
        cols, costs = cols[by_row], costs[by_row]
        counts[empty_a] = len(empty_b)
    full_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=full_indptr[1:])
    return full_indptr, cols, costs


def pair_costs(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Costs of the given (row of A, column of B) pairs only."""
    if len(rows) == 0:
        return np.zeros(0)
    common = np.asarray(mask_a[:, rows].multiply(mask_b[:, cols]).sum(axis=0), dtype=np.int64).ravel()
    size = fan_in(mask_a)[rows] + fan_in(mask_b)[cols]
    return _divide(size - 2 * common, size - common)
