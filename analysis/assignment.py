"""One-to-one matching of the output neurons of two layers.

Every solver returns `(matched, perm)` over N = max(n_a, n_b) slots: A's neuron
r (a phantom when r >= n_a) is paired with B's neuron perm[r] (a phantom when
perm[r] >= n_b), and matched[r] is that pair's cost. Pairs with a phantom cost
1: in networks of different widths an unmatched neuron costs 1.

- `exact_assignment`: scipy's linear_sum_assignment on the full float64 cost
  matrix (padded with 1 when rectangular). With the default tie-break this is
  the authors' computation bit for bit; other tie-breaks solve the same matrix
  with rows and columns reordered, giving another optimal matching.
- `sparse_assignment`: the same optimal total without the dense matrix, for
  large layers where nearly every cost is exactly 1 and the dense solver slows
  sharply. Its matching (so the permutation handed to the next layer) may be a
  different optimum than scipy's dense one.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from .nnstd_costs import dense_costs, fan_in, pair_costs, sparse_costs

TIE_BREAKS_HELP = "'default' (the solver's own order; the authors' with the exact method), 'reversed', or 'shuffle:SEED'"


class TieBreakError(ValueError):
    """An unknown tie-break name."""


def _orders(tie_break: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column orders presented to the solver for a tie-break."""
    if tie_break == "reversed":
        rev = np.arange(n)[::-1].copy()
        return rev, rev
    if tie_break.startswith("shuffle:"):
        try:
            seed = int(tie_break.split(":", 1)[1])
        except ValueError:
            raise TieBreakError(f"tie-break '{tie_break}' needs an integer seed, e.g. shuffle:1") from None
        rng = np.random.default_rng(seed)
        return rng.permutation(n), rng.permutation(n)
    raise TieBreakError(f"unknown tie-break '{tie_break}'; use {TIE_BREAKS_HELP}")


def exact_assignment(costs: np.ndarray, tie_break: str = "default") -> tuple[np.ndarray, np.ndarray]:
    n_a, n_b = costs.shape
    n = max(n_a, n_b)
    if n_a != n_b:
        square = np.ones((n, n))
        square[:n_a, :n_b] = costs
        costs = square
    if tie_break == "default":
        _, perm = linear_sum_assignment(costs)
    else:
        rows, cols = _orders(tie_break, n)
        r, c = linear_sum_assignment(costs[np.ix_(rows, cols)])
        perm = np.empty(n, dtype=np.int64)
        perm[rows[r]] = cols[c]
    perm = np.asarray(perm, dtype=np.int64)
    return costs[np.arange(n), perm], perm


def exact_layer(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, tie_break: str = "default"):
    return exact_assignment(dense_costs(mask_a, mask_b), tie_break)


def sparse_assignment(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
    """An optimal matching from the pairs that share an input, without the dense cost matrix.

    Every cost is 1 except for pairs sharing an input (< 1) and pairs of empty
    neurons (0). So: pair empty with empty (always optimal: swapping an
    empty-nonempty pair with them never costs more), find a maximum-weight
    matching of the remaining neurons on the sparse graph of shared-input pairs
    with weight 1 - cost, and pair everyone left over at cost exactly 1
    (two leftovers sharing an input would contradict maximality).

    The maximum-weight matching is a minimum-cost full matching of a sparse
    graph, solved by scipy's LAPJVsp: rows are A's neurons, columns are B's
    neurons plus one "stay single" column per A neuron. A-neuron i takes B-neuron
    j at 1 + cost or stays single at 2; every row takes exactly one edge, so the
    +1 shift (LAPJVsp needs nonzero weights) adds the same n_a to every matching
    and the optimum is the maximum of sum(1 - cost) over matched pairs.
    """
    n_a, n_b = mask_a.shape[1], mask_b.shape[1]
    n = max(n_a, n_b)
    perm = np.full(n, -1, dtype=np.int64)

    empty_a = np.flatnonzero(fan_in(mask_a) == 0)
    empty_b = np.flatnonzero(fan_in(mask_b) == 0)
    k = min(len(empty_a), len(empty_b))
    perm[empty_a[:k]] = empty_b[:k]

    indptr, cols, costs = sparse_costs(mask_a, mask_b)  # empty neurons have no such pairs
    if len(cols):
        # each row: its shared-input pairs, then its own "stay single" column (sorted CSR built directly)
        per_row = np.diff(indptr) + 1
        g_indptr = np.r_[0, np.cumsum(per_row)]
        single = g_indptr[1:] - 1
        pairs = np.ones(g_indptr[-1], dtype=bool)
        pairs[single] = False
        g_cols = np.empty(g_indptr[-1], dtype=np.int64)
        g_cols[pairs], g_cols[single] = cols, n_b + np.arange(n_a)
        weights = np.empty(g_indptr[-1])
        weights[pairs], weights[single] = 1.0 + costs, 2.0
        graph = sp.csr_matrix((weights, g_cols, g_indptr), shape=(n_a, n_b + n_a))
        _, match = min_weight_full_bipartite_matching(graph)
        real = np.flatnonzero((match < n_b) & (perm[:n_a] < 0))
        perm[real] = match[real]

    # leftovers (and phantoms) in increasing order: deterministic, every such pair costs exactly 1
    taken = np.zeros(n, dtype=bool)
    taken[perm[perm >= 0]] = True
    free_rows = np.flatnonzero(perm < 0)
    perm[free_rows] = np.flatnonzero(~taken)

    matched = np.ones(n)
    real = np.flatnonzero((np.arange(n) < n_a) & (perm < n_b))
    matched[real] = pair_costs(mask_a, mask_b, real, perm[real])
    return matched, perm


def sparse_layer(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, tie_break: str = "default"):
    if tie_break != "default":
        raise TieBreakError("tie-breaks other than 'default' need the exact method")
    return sparse_assignment(mask_a, mask_b)
