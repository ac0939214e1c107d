"""Neural Network Sparse Topology Distance (Liu et al. 2020), as the authors' code computes it.

A network is a list of layer matrices (rows = inputs, columns = outputs, every
stored entry a connection as in sparsetopo.topology; no bias row). For layer k the output
neurons of A and B are matched one to one at minimum total cost (costs: analysis.nnstd_costs);
layer distance = matched cost / number of output neurons; before layer k+1 is
compared, row j of B's next matrix becomes its row perm[j], so B's hidden
neurons carry the labels of the A neurons they were matched with. The network
distance is the mean of all layer distances.

method="exact" is the authors' computation bit for bit (the matching scipy's
linear_sum_assignment returns on the full float64 cost matrix, sums and means in
the same order); analysis.lsap computes that matching without the dense matrix.
method="sparse" reaches the same optimal cost per layer without
the dense matrix, for large layers; where optimal matchings tie it may pick
another one, so downstream layers can differ (see `tie_sensitivity`).

Networks of different widths are allowed: unmatched neurons cost 1 and a layer's
distance is divided by the larger width.

Layers that do not chain (a LayerStack's producers, sparsetopo.topology): a layer's rows are
relabelled by its producer's permutation (several layers may read one producer), and a layer
without a producer is compared as it is, without relabelling. The result's `chained` says, per
layer, whether its inputs are matched ones: the network's inputs (layer 0) or a producer's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import UserError
from ..topology import LayerStack, check_chain, connection_mask, expand_permutation, producers_of, taps_of
from .assignment import exact_layer, sparse_layer

METHODS = ("exact", "sparse")
DEFAULT_TIE_BREAKS = ("default", "reversed", "shuffle:1", "shuffle:2", "shuffle:3")


class NNSTDError(UserError, ValueError):
    """Two networks NNSTD cannot compare, or an unknown option."""


@dataclass
class NNSTDResult:
    distance: float
    layers: list[float]
    method: str = "exact"
    permutations: list[np.ndarray] = field(default_factory=list, repr=False)
    chained: list[bool] = field(default_factory=list)  # per layer: inputs matched (see the module docstring)

    def to_dict(self) -> dict:
        out = {"distance": self.distance, "layers": list(self.layers)}
        if not all(self.chained):  # only where some layer was compared unrelabelled: a chain's is as before
            out["chained"] = list(self.chained)
        return out


Network = Sequence[sp.spmatrix | np.ndarray]


def masks_of(network: Network, name: str = "network") -> list[sp.csc_matrix]:
    """Connection masks (CSC, int32) of a network, checking that its layers chain (a LayerStack
    of convolutional layers keeps its taps)."""
    check_chain(network, name, NNSTDError)
    return LayerStack([connection_mask(m) for m in network], taps_of(network), producers_of(network))


def check_comparable(masks_a: list[sp.csc_matrix], masks_b: list[sp.csc_matrix]) -> None:
    if len(masks_a) != len(masks_b):
        raise NNSTDError(f"the networks have different numbers of layers ({len(masks_a)} and {len(masks_b)})")
    if masks_a[0].shape[0] != masks_b[0].shape[0]:
        raise NNSTDError(f"the networks have different input sizes ({masks_a[0].shape[0]} and {masks_b[0].shape[0]})")
    if producers_of(masks_a) != producers_of(masks_b):
        raise NNSTDError(
            f"the networks' layers are wired differently (producers {_shown(producers_of(masks_a))} and "
            f"{_shown(producers_of(masks_b))})"
        )


def _shown(producers) -> list:
    return ["input" if p is None else p for p in producers]


def chained_layers(masks: Sequence) -> list[bool]:
    """Per layer: are its inputs matched ones, the network's inputs (layer 0) or a producer's outputs?"""
    return [k == 0 or p is not None for k, p in enumerate(producers_of(masks))]


def _producers_first(producers: Sequence[int | None]) -> list[int]:
    """Layer indices ordered so that each layer's producer comes before it (0, 1, ... for a chain)."""
    order: list[int] = []
    done: set[int] = set()
    for k in range(len(producers)):
        climb = []
        j: int | None = k
        while j is not None and j not in done:
            climb.append(j)
            j = producers[j]
        for i in reversed(climb):
            done.add(i)
            order.append(i)
    return order


def _pad_rows(mask: sp.csc_matrix, n: int) -> sp.csc_matrix:
    if mask.shape[0] == n:
        return mask
    return sp.csc_matrix((mask.data, mask.indices, mask.indptr), shape=(n, mask.shape[1]))


def _relabel_rows(mask: sp.csc_matrix, perm: np.ndarray) -> sp.csc_matrix:
    """Row r of the result is row perm[r] of `mask` (an empty row when perm[r] is a phantom)."""
    n_rows = mask.shape[0]
    csr = mask.tocsr()
    if perm.max(initial=-1) >= n_rows:
        csr = sp.vstack([csr, sp.csr_matrix((1, mask.shape[1]), dtype=mask.dtype)], format="csr")
        perm = np.minimum(perm, n_rows)
    return csr[perm].tocsc()


def nnstd_masks(
    masks_a: list[sp.csc_matrix], masks_b: list[sp.csc_matrix], method: str = "exact", tie_break: str = "default"
) -> NNSTDResult:
    """NNSTD of two networks given as connection masks (see `masks_of`)."""
    if method not in METHODS:
        raise NNSTDError(f"unknown NNSTD method '{method}'; use one of {', '.join(METHODS)}")
    check_comparable(masks_a, masks_b)
    taps = taps_of(masks_a)
    if taps != taps_of(masks_b):
        raise NNSTDError(f"the networks' layers have different taps ({list(taps)} and {list(taps_of(masks_b))})")
    solve = exact_layer if method == "exact" else sparse_layer
    producers = producers_of(masks_a)
    distances = np.zeros(len(masks_a))
    perms: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(masks_a)
    for k in _producers_first(producers):
        a, b, j = masks_a[k], masks_b[k], producers[k]
        if j is not None:
            # a convolution's rows are (input channel, tap): the channels move as blocks of taps
            rows = expand_permutation(perms[j], taps[k])
            a = _pad_rows(a, len(rows))
            b = _relabel_rows(b, rows)
        elif a.shape[0] != b.shape[0]:  # unchained inputs of networks of different widths
            a, b = _pad_rows(a, max(a.shape[0], b.shape[0])), _pad_rows(b, max(a.shape[0], b.shape[0]))
        matched, perms[k] = solve(a, b, tie_break)
        # the authors' order of operations: one pairwise sum of the matched costs in row order, then / width
        distances[k] = matched.sum() / len(perms[k])
    return NNSTDResult(float(np.mean(distances)), [float(d) for d in distances], method, perms, chained_layers(masks_a))


def nnstd(network_a: Network, network_b: Network, method: str = "exact", tie_break: str = "default") -> NNSTDResult:
    """NNSTD between two networks (lists of layer matrices, rows = inputs, columns = outputs)."""
    return nnstd_masks(
        masks_of(network_a, "the first network"), masks_of(network_b, "the second network"), method, tie_break
    )


def tie_sensitivity(network_a: Network, network_b: Network, tie_breaks: Sequence[str] = DEFAULT_TIE_BREAKS) -> dict:
    """How far layer distances move across different optimal matchings.

    Each tie-break solves every layer's assignment with rows and columns
    presented in another deterministic order: each matching is optimal for its
    layer, but where optima tie the permutation handed downstream differs. A
    spread of 0 means the result does not depend on tie-breaking for these networks.
    """
    masks_a = masks_of(network_a, "the first network")
    masks_b = masks_of(network_b, "the second network")
    results = [nnstd_masks(masks_a, masks_b, "exact", t) for t in tie_breaks]
    layers = np.array([r.layers for r in results])
    distances = np.array([r.distance for r in results])
    return {
        "tie_breaks": list(tie_breaks),
        "distance": distances.tolist(),
        "layers": layers.tolist(),
        "distance_spread": float(distances.max() - distances.min()),
        "layer_spread": (layers.max(axis=0) - layers.min(axis=0)).tolist(),
    }


def evolution_pairs(n_snapshots: int, reference: str = "initial") -> list[tuple[int, int]]:
    """(reference index, snapshot index) pairs for snapshot 1..n-1."""
    if reference == "initial":
        return [(0, i) for i in range(1, n_snapshots)]
    if reference == "previous":
        return [(i - 1, i) for i in range(1, n_snapshots)]
    raise NNSTDError(f"unknown reference '{reference}'; use initial or previous")
