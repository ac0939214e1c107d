"""The topology model shared by the trainer, the graph store and the CLI.

A network with layer sizes [n0, ..., nL] has L weight matrices; matrix k has
shape (n_k, n_{k+1}): row = input neuron, column = output neuron. Weights are
float32 and a connection exists exactly where the sparse matrix stores an entry, whatever
its value: a connection grown at weight 0 (SET's Keras code, RigL) is stored as an explicit
zero. A dense array has no stored zeros, so converting one keeps only its nonzeros. The
connection sets and the chaining check are sparsetopo.topology's, shared with analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..topology import (
    LayerStack,
    TopologyError,
    check_chain,
    is_chain,
    layer_sizes,
    neuron_groups,
    producers_of,
    taps_of,
)


def as_float32(values: Any, what: str) -> np.ndarray:
    """`values` as float32, or TopologyError when one is not finite or float32 cannot hold it
    (it would overflow to inf, or a nonzero would become 0: a stored value silently changed)."""
    source = np.asarray(values)
    if source.dtype.kind not in "fiub":
        raise TopologyError(f"{what} must be numbers, not {source.dtype}")
    bad = ~np.isfinite(source) if source.dtype.kind == "f" else np.zeros(source.shape, dtype=bool)
    if bad.any():
        raise TopologyError(
            f"{what} holds {bad.sum()} value(s) that are not finite numbers "
            f"(first: {source[bad].ravel()[0]}); weights and biases must be finite"
        )
    with np.errstate(over="ignore", under="ignore"):
        out = source.astype(np.float32)
    lost = ~np.isfinite(out) | ((out == 0) & (source != 0))
    if lost.any():
        raise TopologyError(
            f"{what} holds {lost.sum()} value(s) that float32 cannot hold "
            f"(first: {source[lost].ravel()[0]!r}); weights and biases are stored as float32"
        )
    return out


def as_layer_matrix(matrix: Any, what: str = "a weight matrix") -> sp.csr_matrix:
    """Canonical form of one layer: CSR, float32, sorted indices, one entry per connection.

    Stored zeros are kept: they are connections whose weight is exactly 0. Duplicate entries
    of one position are one connection (their values add up). Values float32 cannot hold are
    refused (TopologyError), never rounded to inf or to 0.
    """
    m = sp.csr_matrix(matrix, copy=True)
    m.sum_duplicates()
    m.data = as_float32(m.data, what)  # after summing: the stored value is the sum
    m = m.astype(np.float32, copy=False)
    m.sort_indices()
    return m


@dataclass
class Snapshot:
    """One topology of one run at one evolution step."""

    run_id: str
    step: int
    layers: list[sp.csr_matrix]
    biases: list[np.ndarray | None] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None
    taps: list[int] | None = None  # rows per input neuron of each layer (convolutions; sparsetopo.topology)
    # the layer whose outputs each layer reads (None: the network input, or no single layer's output)
    producers: list[int | None] | None = None
    # the shape of each layer's taps where known (a kernel's (kh, kw)); metadata, not topology
    tap_shapes: list[list[int] | None] | None = None

    def __post_init__(self) -> None:
        where = f"step {self.step} of run '{self.run_id}'"
        if self.taps is None:
            self.taps = list(taps_of(self.layers))
        self.taps = [int(t) for t in self.taps]
        if self.producers is None:
            self.producers = list(producers_of(self.layers))
        self.layers = LayerStack(
            [as_layer_matrix(m, f"layer {k} of {where}") for k, m in enumerate(self.layers)],
            self.taps,
            self.producers,
        )
        self.producers = list(self.layers.producers)
        self.tap_shapes = _checked_tap_shapes(self.tap_shapes, self.taps, where)
        if not self.biases:
            self.biases = [None] * len(self.layers)
        self.biases = [
            None if b is None else as_float32(b, f"the bias of layer {k} of {where}").ravel()
            for k, b in enumerate(self.biases)
        ]
        validate_layers(self.layers, self.biases, where)

    @property
    def architecture(self) -> list[int]:
        return layer_sizes(self.layers)

    @property
    def neuron_groups(self) -> list[int]:
        """Neurons of each group: the architecture, then the input groups of unchained layers."""
        return neuron_groups(self.layers)

    @property
    def chained(self) -> bool:
        return is_chain(self.producers or [])

    @property
    def n_synapses(self) -> int:
        return int(sum(m.nnz for m in self.layers))

    @property
    def density(self) -> float:
        possible = sum(m.shape[0] * m.shape[1] for m in self.layers)
        return self.n_synapses / possible if possible else 0.0


def _checked_tap_shapes(shapes, taps: list[int], where: str) -> list[list[int] | None]:
    if shapes is None:
        return [None] * len(taps)
    if len(shapes) != len(taps):
        raise TopologyError(f"{len(shapes)} tap shapes given for the {len(taps)} layers of {where}")
    out: list[list[int] | None] = []
    for k, (shape, t) in enumerate(zip(shapes, taps)):
        if shape is None:
            out.append(None)
            continue
        shape = [int(d) for d in shape]
        if not shape or any(d < 1 for d in shape) or int(np.prod(shape)) != t:
            raise TopologyError(f"the tap shape {shape} of layer {k} of {where} does not hold its {t} taps")
        out.append(shape)
    return out


@dataclass
class RunInfo:
    """What a run is: stored once on its (:Run) node."""

    run_id: str
    architecture: list[int]
    name: str | None = None
    method: str | None = None
    dataset: str | None = None
    epsilon: float | None = None
    zeta: float | None = None
    seed: int | None = None
    status: str = "running"
    config: dict[str, Any] = field(default_factory=dict)  # any further flat scalar settings


def validate_layers(
    layers: list[sp.spmatrix], biases: list[np.ndarray | None] | None = None, name: str = "the snapshot"
) -> None:
    """Raise TopologyError unless consecutive layers chain and biases fit their layer."""
    check_chain(layers, name)
    if biases is not None:
        if len(biases) != len(layers):
            raise TopologyError(f"{len(biases)} bias vectors given for {len(layers)} layers")
        for k, (m, b) in enumerate(zip(layers, biases)):
            if b is not None and b.shape != (m.shape[1],):
                raise TopologyError(f"bias of layer {k} has {b.size} values but the layer has {m.shape[1]} outputs")


# A LayerSnapshot stores `producer` only where it differs from a chain's (layer k - 1; none for
# layer 0), and -1 for "no producer" (Neo4j lists and Cypher comparisons have no use for null):
# coalesce(l.producer, l.layer - 1) is every layer's producer, -1 meaning none.
def stored_producer(layer: int, producer: int | None) -> int | None:
    chain = None if layer == 0 else layer - 1
    if producer == chain:
        return None
    return -1 if producer is None else producer


def read_producer(layer: int, stored: int | None) -> int | None:
    value = layer - 1 if stored is None else stored
    return None if value < 0 else value
