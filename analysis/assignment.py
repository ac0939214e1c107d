"""One-to-one matching of the output neurons of two layers.

Every solver returns `(matched, perm)` over N = max(n_a, n_b) slots: A's neuron
r (a phantom when r >= n_a) is paired with B's neuron perm[r] (a phantom when
perm[r] >= n_b), and matched[r] is that pair's cost. Pairs with a phantom cost
1: in networks of different widths an unmatched neuron costs 1.

- `exact_assignment`: scipy's linear_sum_assignment on the full float64 cost
  matrix (padded with 1 when rectangular). With the default tie-break this is
  the authors' computation bit for bit; other tie-breaks solve the same matrix
  with rows and columns reordered, giving another optimal matching.
- `lsap_assignment`: the same result as `exact_assignment` with the default
  tie-break (same permutation, same matched costs) from the costs that are not
  1 alone, by analysis.lsap; what the exact method uses.
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

from ..errors import UserError
from . import lsap
from .nnstd_costs import dense_costs, explicit_costs, pair_costs, sparse_costs

TIE_BREAKS_HELP = (
    "'default' (the solver's own order; the authors' with the exact method), 'reversed', or 'shuffle:SEED'"
)


class TieBreakError(UserError, ValueError):
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


def lsap_assignment(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
    """`exact_assignment(dense_costs(mask_a, mask_b))` without the dense matrix: the same
    permutation, decision for decision (analysis.lsap), and the same matched costs."""
    n = max(mask_a.shape[1], mask_b.shape[1])
    indptr, cols, costs = explicit_costs(mask_a, mask_b)
    perm = lsap.solve(n, 1.0, indptr, cols, costs)
    matched = np.ones(n)
    # each row's columns are sorted: find (r, perm[r]) among the explicit entries, else the cost is 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    keys = rows * n + cols
    want = np.arange(n, dtype=np.int64) * n + perm
    at = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    hit = (keys[at] == want) if len(keys) else np.zeros(n, dtype=bool)
    matched[hit] = costs[at[hit]]
    return matched, perm


def exact_layer(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, tie_break: str = "default"):
    if tie_break == "default":
        return lsap_assignment(mask_a, mask_b)
    return exact_assignment(dense_costs(mask_a, mask_b), tie_break)


def scipy_exact_layer(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, tie_break: str = "default"):
    """`exact_layer` through scipy on the dense matrix: the reference the tests compare with."""
    return exact_assignment(dense_costs(mask_a, mask_b), tie_break)


def _doubled_graph(n_a: int, n_b: int, indptr: np.ndarray, cols: np.ndarray, costs: np.ndarray) -> sp.csr_matrix:
    """The sparse doubled graph of `sparse_assignment`, built directly in sorted CSR form."""
    edges = len(cols)
    rows = np.repeat(np.arange(n_a, dtype=np.int32 if n_a < 2**31 else np.int64), np.diff(indptr))
    by_col = np.argsort(cols, kind="stable")  # the transposed pairs, rows ascending within each column
    deg_a = np.diff(indptr) + 1  # an A row: its pairs, then its "stay single" column
    deg_b = np.bincount(cols, minlength=n_b) + 1  # a B copy row: its own column, then its pairs' copies
    g_indptr = np.r_[0, np.cumsum(np.concatenate([deg_a, deg_b]))]
    nnz = int(g_indptr[-1])
    index_type = np.int32 if nnz < 2**31 and n_a + n_b < 2**31 else np.int64
    g_cols = np.empty(nnz, dtype=index_type)
    weights = np.ones(nnz)
    a_single = g_indptr[1 : n_a + 1] - 1
    a_pairs = np.arange(edges) + rows  # pair e sits after one "single" slot per earlier row
    g_cols[a_pairs], weights[a_pairs] = cols, 1.0 + costs
    g_cols[a_single], weights[a_single] = n_b + np.arange(n_a), 2.0
    b_start = g_indptr[n_a : n_a + n_b]
    g_cols[b_start] = np.arange(n_b)
    # pair t of the transposed order sits after its column's own slot and the earlier pairs
    b_pairs = np.arange(edges) + cols[by_col] + 1 + int(g_indptr[n_a])
    g_cols[b_pairs] = n_b + rows[by_col]
    return sp.csr_matrix((weights, g_cols, g_indptr.astype(index_type)), shape=(n_a + n_b, n_b + n_a))


def _pair_identical(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix, perm: np.ndarray) -> None:
    """Pair neurons with identical input sets (cost 0), first with first, in index order.

    Always optimal: the cost is a metric (Jaccard distance), so if a = b as sets,
    c(a', b') <= c(a', b) + c(a, b') and swapping a and b into a pair never costs
    more. It covers empty neurons, and keeps identical networks at distance 0.
    """
    mask_a, mask_b = mask_a.sorted_indices(), mask_b.sorted_indices()
    ind_a, ind_b = mask_a.indices.astype(np.int64), mask_b.indices.astype(np.int64)  # same bytes for same sets
    twins: dict[bytes, list[int]] = {}
    for j in range(mask_b.shape[1]):
        twins.setdefault(ind_b[mask_b.indptr[j] : mask_b.indptr[j + 1]].tobytes(), []).append(j)
    for group in twins.values():
        group.reverse()  # pop() then hands out the lowest index first
    for i in range(mask_a.shape[1]):
        twin = twins.get(ind_a[mask_a.indptr[i] : mask_a.indptr[i + 1]].tobytes())
        if twin:
            perm[i] = twin.pop()


def sparse_assignment(mask_a: sp.csc_matrix, mask_b: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
    """An optimal matching from the pairs that share an input, without the dense cost matrix.

    Every cost is 1 except for pairs sharing an input (< 1) and pairs of empty
    neurons (0). So: pair neurons with identical input sets, empty ones
    included (always optimal, see `_pair_identical`), find a maximum-weight
    matching of the remaining neurons on the sparse graph of shared-input pairs
    with weight 1 - cost, and pair everyone left over at cost exactly 1
    (two leftovers sharing an input would contradict maximality).

    The maximum-weight matching is a minimum-cost perfect matching of a sparse
    doubled graph, solved by scipy's LAPJVsp (on this square form it runs about
    2.5 times faster than on the rectangular "stay single" form): rows are A's
    neurons then a copy of B's, columns are B's neurons then a copy of A's.
    A-neuron i takes B-neuron j at 1 + cost or stays single (i -> copy i) at 2;
    B-neuron j stays single via (copy j -> j) at 1; (copy j -> copy i) at 1
    exists for each shared-input pair (i, j), so the copies of a matched pair
    can pair with each other. Every perfect matching has n_a + n_b edges, so the
    +1 shift (LAPJVsp needs nonzero weights) changes no comparison.
    """
    n_a, n_b = mask_a.shape[1], mask_b.shape[1]
    n = max(n_a, n_b)
    perm = np.full(n, -1, dtype=np.int64)

    _pair_identical(mask_a, mask_b, perm)
    indptr, cols, costs = sparse_costs(mask_a, mask_b)
    if len(cols):
        # neurons already paired with an identical twin take no further part
        free_a = perm[:n_a] < 0
        free_b = np.ones(n_b, dtype=bool)
        free_b[perm[perm >= 0]] = False
        rows = np.repeat(np.arange(n_a), np.diff(indptr))
        keep = free_a[rows] & free_b[cols]
        indptr = np.r_[0, np.cumsum(np.bincount(rows[keep], minlength=n_a))]
        cols, costs = cols[keep], costs[keep]
    if len(cols):
        graph = _doubled_graph(n_a, n_b, indptr, cols, costs)
        _, match = min_weight_full_bipartite_matching(graph)
        match = match[:n_a]
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
