"""The topology core every package shares: which connections a layer matrix holds, and whether layers chain.

A layer k is a matrix of shape (n_k, n_{k+1}): row = input neuron, column = output neuron.
A connection is a stored entry of a sparse matrix, whatever its value: a connection grown at
weight 0 is an explicit zero. Duplicate entries of one position are one connection. A dense
array stores no zeros, so its connections are its nonzeros.

Convolutional layers keep this form with `taps`: a Conv2d of weight (out, in, kh, kw) is the
matrix of shape (in * kh * kw, out) whose row `c * taps + t` is input channel c at kernel
position t (taps = kh * kw); a Linear after a flatten has taps = the spatial positions of each
channel (flatten order: row `c * taps + t`). Neurons are channels: layer k's n_k neurons are its
rows // taps. A LayerStack is a list of layer matrices that carries its layers' taps.

Layers that do not chain (residual branches, concatenations): each layer k has a producer, the
index j of the layer whose outputs are its input neurons (k - 1 in a chain), or None (the network
input for layer 0; for a later layer, an input that is not one layer's output, such as the sum of
two branches). Neuron groups: group 0 is layer 0's inputs, group k + 1 the outputs of layer k, and
each layer k > 0 without a producer has its own input group, numbered L, L + 1, ... after the
last layer's outputs (in layer order). A LayerStack carries the producers too; a plain chain's are
(None, 0, 1, ..., L - 2), so nothing about a chain changes.

A leaf module (numpy, scipy and sparsetopo.errors only), so graphstore, analysis and trainer
can all import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import UserError


class TopologyError(UserError, ValueError):
    """A topology that cannot be a network: shapes that do not chain, bad biases."""


def _canonical_csr(matrix: Any) -> sp.csr_matrix:
    """CSR with sorted indices and one entry per connection; the matrix itself when it is already so."""
    if sp.issparse(matrix) and matrix.format == "csr" and matrix.has_canonical_format:
        return matrix  # no copy: the writer calls this on every layer of every step
    m = sp.csr_matrix(matrix, copy=True)
    m.sum_duplicates()
    return m


def connection_keys(matrix: Any, nonzero: bool = False) -> np.ndarray:
    """Ascending int64 row-major positions `row * n_cols + col` of a layer's connections.

    With `nonzero`, only the connections whose weight is not 0 (what a file of nonzero weights
    would show). For a CSR matrix in canonical form (graphstore.model's layers), `keys[i]` is
    the position of `matrix.data[i]`.
    """
    m = _canonical_csr(matrix)
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    keys = rows * m.shape[1] + m.indices.astype(np.int64)
    return keys[m.data != 0] if nonzero else keys


def connection_mask(matrix: Any, fmt: str = "csc", dtype: Any = np.int32) -> sp.csc_matrix | sp.csr_matrix:
    """0/1 mask of a layer's connections (explicit zeros and NaN included), sorted indices.

    CSC suits NNSTD (a column is an output neuron's input set), CSR the structural statistics.
    """
    if fmt not in ("csc", "csr"):
        raise ValueError(f"a connection mask is csc or csr, not {fmt!r}")
    kind = sp.csc_matrix if fmt == "csc" else sp.csr_matrix
    m = kind(matrix, copy=True)
    m.sum_duplicates()  # sorts the indices too
    return kind((np.ones(m.nnz, dtype=dtype), m.indices, m.indptr), shape=m.shape)


Producers = tuple[int | None, ...]


def chain_producers(n_layers: int) -> Producers:
    """The producers of a plain chain: layer k reads layer k - 1's outputs."""
    return tuple(None if k == 0 else k - 1 for k in range(n_layers))


def _checked_producers(producers: Sequence[int | None], n_layers: int) -> Producers:
    out = tuple(None if p is None else int(p) for p in producers)
    if len(out) != n_layers:
        raise TopologyError(f"{len(out)} producers given for {n_layers} layers")
    for k, p in enumerate(out):
        if p is not None and not (0 <= p < n_layers and p != k):
            raise TopologyError(f"layer {k}'s producer must be another layer (0..{n_layers - 1}) or None; got {p}")
    for k in range(n_layers):  # each layer has at most one producer: following them must end
        seen, j = {k}, out[k]
        while j is not None:
            if j in seen:
                raise TopologyError(f"the producers {list(out)} form a cycle through layer {k}")
            seen.add(j)
            j = out[j]
    return out


class LayerStack(list):
    """Layer matrices with the taps of each layer (1: one row per input neuron) and its producers."""

    def __init__(
        self,
        layers: Sequence[Any] = (),
        taps: Sequence[int] | None = None,
        producers: Sequence[int | None] | None = None,
    ):
        super().__init__(layers)
        taps = tuple(int(t) for t in taps) if taps is not None else (1,) * len(self)
        if len(taps) != len(self):
            raise TopologyError(f"{len(taps)} taps given for {len(self)} layers")
        if any(t < 1 for t in taps):
            raise TopologyError(f"taps must be positive; got {list(taps)}")
        self.taps = taps
        self.producers = chain_producers(len(self)) if producers is None else _checked_producers(producers, len(self))


def taps_of(layers: Sequence[Any]) -> tuple[int, ...]:
    """Each layer's taps: those a LayerStack carries, else 1 per layer."""
    taps = getattr(layers, "taps", None)
    return tuple(taps) if taps is not None else (1,) * len(layers)


def producers_of(layers: Sequence[Any]) -> Producers:
    """Each layer's producer: those a LayerStack carries, else a plain chain's."""
    producers = getattr(layers, "producers", None)
    return tuple(producers) if producers is not None else chain_producers(len(layers))


def is_chain(producers: Sequence[int | None]) -> bool:
    return tuple(producers) == chain_producers(len(producers))


def with_taps(layers: Sequence[Any], taps: Sequence[int]) -> LayerStack:
    return LayerStack(list(layers), taps, producers_of(layers))


def input_groups(producers: Sequence[int | None]) -> list[int]:
    """The neuron group of each layer's inputs: 0 for layer 0, j + 1 for producer j, and a group of
    its own (numbered after the last layer's outputs, in layer order) for a later layer without one."""
    groups, extra = [], len(producers) + 1
    for k, p in enumerate(producers):
        if p is not None:
            groups.append(p + 1)
        elif k == 0:
            groups.append(0)
        else:
            groups.append(extra)
            extra += 1
    return groups


def layer_sizes(layers: Sequence[Any]) -> list[int]:
    """Neurons [n0, n1, ..., nL]: layer 0's inputs, then each layer's outputs (matrix k has shape
    (n_k * taps_k, n_{k+1}) in a chain). The input groups of unchained layers: `neuron_groups`."""
    if not layers:
        return []
    return [layers[0].shape[0] // taps_of(layers)[0]] + [m.shape[1] for m in layers]


def neuron_groups(layers: Sequence[Any]) -> list[int]:
    """Neurons of every group (see the module docstring): layer_sizes, then the input groups of the
    layers without a producer after layer 0. A chain's are its layer_sizes."""
    sizes = layer_sizes(layers)
    taps = taps_of(layers)
    producers = producers_of(layers)
    return sizes + [layers[k].shape[0] // taps[k] for k in range(1, len(layers)) if producers[k] is None]


def expand_permutation(perm: np.ndarray, taps: int) -> np.ndarray:
    """Rows of a layer with `taps` rows per input neuron, relabelled as the neurons are by `perm`."""
    perm = np.asarray(perm, dtype=np.int64)
    if taps == 1:
        return perm
    return (perm[:, None] * taps + np.arange(taps, dtype=np.int64)).ravel()


def neuron_layers(layers: Sequence[Any]) -> list[sp.csr_matrix]:
    """0/1 float64 CSR adjacency between neurons: a layer with taps joins input neuron r // taps to
    an output neuron when any of its taps is connected (channels, for convolutions)."""
    out = []
    for m, t in zip(layers, taps_of(layers)):
        mask = connection_mask(m, "csr", np.float64)
        if t > 1:
            coo = mask.tocoo()
            mask = sp.csr_matrix((np.ones(coo.nnz), (coo.row // t, coo.col)), shape=(mask.shape[0] // t, mask.shape[1]))
            mask.sum_duplicates()
            mask.data[:] = 1.0
        out.append(mask)
    return out


def check_chain(layers: Sequence[Any], name: str = "the network", error: type[Exception] = TopologyError) -> None:
    """Raise `error` unless there is a layer and each layer's inputs are its producer's outputs
    (the previous layer's, in a chain); a layer declared without a producer only needs whole
    input neurons (rows a multiple of its taps).

    Each package raises its own error type (TopologyError, NNSTDError, StructureError) with the
    same sentence; `name` says which network it is about.
    """
    if len(layers) == 0:
        raise error(f"{name} has no layers; a network needs at least one weight matrix")
    taps = taps_of(layers)
    producers = producers_of(layers)
    for k in range(len(layers)):
        j, n_in = producers[k], layers[k].shape[0]
        if j is None:
            if n_in % taps[k]:
                raise error(f"layer {k} of {name} has {n_in} rows, not a multiple of its {taps[k]} taps")
            continue
        n_out = layers[j].shape[1]
        if n_out * taps[k] != n_in:
            per = f" ({taps[k]} taps per input)" if taps[k] > 1 else ""
            raise error(
                f"the layers of {name} do not chain: layer {j} has {n_out} outputs but layer {k} has {n_in} inputs{per}"
            )
