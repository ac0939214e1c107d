"""Structural statistics of a sparse layered network, from plain sparse matrices.

Input: the weight matrices of one topology, matrix k of shape (n_k, n_{k+1})
(row = input neuron, column = output neuron); a connection is a stored entry, explicit
zeros included (sparsetopo.topology).
Output: flat dicts of numbers (and short lists of numbers) so callers can store
them as database properties or print them as table columns.

Conventions (documented here because several choices are possible):
- The whole network is the layered directed graph of all neurons. Its in-degree
  distribution covers the neurons that can have inputs (layers 1..L), its
  out-degree distribution the neurons that can have outputs (layers 0..L-1), so
  the input layer's structural zeros do not dilute the in-degree statistics.
- Degree assortativity is the Pearson correlation, over synapses, of the source
  neuron's out-degree and the target neuron's in-degree (igraph's directed
  definition); None when it is undefined (no synapses or constant degrees).
- k-core numbers ignore direction (igraph coreness, mode "all").
- Hubs: the `hubs` neurons with the highest degree, ties broken by lower index.
- Layers that do not chain (a LayerStack's producers, sparsetopo.topology): the network is the
  graph of its neuron groups, each layer joining its input group to its outputs, so degrees,
  components, k-cores and hubs (`hubs_layer{g}` per group g) cover every layer. Paths need a
  chain: they are counted along the chain that ends at the last layer (follow producers back from
  it), whose layers `flow_layers` lists; the inputs of `n_inputs_without_path` are then that
  chain's first layer's inputs. A chain network has no `flow_layers` (its paths start at the input).
- Input-degree maps: for a layer with taps > 1, `tap_out_degrees` lists the out-degree (output
  channels reached) of each row, i.e. of each (input channel, tap), row-major: input channel c's map
  is entries c * taps .. (c + 1) * taps - 1, laid out as `tap_shape` when it is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import UserError
from ..topology import (
    LayerStack,
    check_chain,
    connection_mask,
    input_groups,
    is_chain,
    neuron_groups,
    neuron_layers,
    producers_of,
    taps_of,
)
from .reachability import flow_statistics


class StructureError(UserError, ValueError):
    """Matrices that do not form a layered network."""


def binary_layers(layers: Sequence[sp.spmatrix]) -> list[sp.csr_matrix]:
    """0/1 float64 CSR adjacency between the neurons of each layer (every stored entry, explicit zeros
    included; a convolution's channels are joined when any kernel tap is); checks that shapes chain."""
    check_chain(layers, error=StructureError)
    return neuron_layers(layers)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 = all equal, (n-1)/n = all in one."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


def degree_summary(degrees: np.ndarray, name: str) -> dict[str, float]:
    """mean, std, max and Gini of one degree distribution, keyed `{name}_mean` etc."""
    d = np.asarray(degrees, dtype=np.float64)
    if d.size == 0:
        return {f"{name}_mean": 0.0, f"{name}_std": 0.0, f"{name}_max": 0, f"{name}_gini": 0.0}
    return {
        f"{name}_mean": float(d.mean()),
        f"{name}_std": float(d.std()),
        f"{name}_max": int(d.max()),
        f"{name}_gini": gini(d),
    }


def top_indices(degrees: np.ndarray, count: int) -> list[int]:
    """Indices of the `count` largest degrees, highest first, ties by lower index."""
    d = np.asarray(degrees)
    order = np.lexsort((np.arange(d.size), -d))
    return [int(i) for i in order[:count]]


def out_degrees(a: sp.csr_matrix) -> np.ndarray:
    return np.diff(a.indptr).astype(np.int64)


def in_degrees(a: sp.csr_matrix) -> np.ndarray:
    return np.bincount(a.indices, minlength=a.shape[1]).astype(np.int64)


def neuron_degrees(
    adj: list[sp.csr_matrix], sources: Sequence[int] | None = None, sizes: Sequence[int] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per neuron group (layer l = 0..L in a chain): (in-degrees, out-degrees); zeros where a group
    has no such side. `sources`: each layer's input group (a chain's: 0..L-1); `sizes`: each group's neurons."""
    sources = list(range(len(adj))) if sources is None else list(sources)
    if sizes is None:
        sizes = [adj[0].shape[0]] + [a.shape[1] for a in adj]
    ins = [np.zeros(n, dtype=np.int64) for n in sizes]
    outs = [np.zeros(n, dtype=np.int64) for n in sizes]
    for k, a in enumerate(adj):
        outs[sources[k]] += out_degrees(a)
        ins[k + 1] += in_degrees(a)
    return ins, outs


def _graph(adj: list[sp.csr_matrix], sources: Sequence[int] | None = None, sizes: Sequence[int] | None = None):
    """The directed igraph graph of the neuron groups; vertex id = group offset + neuron index."""
    import igraph as ig

    sources = list(range(len(adj))) if sources is None else list(sources)
    if sizes is None:
        sizes = [adj[0].shape[0]] + [a.shape[1] for a in adj]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parts = []
    for k, a in enumerate(adj):
        coo = a.tocoo()
        parts.append(np.column_stack([coo.row + offsets[sources[k]], coo.col + offsets[k + 1]]))
    edges = np.concatenate(parts) if parts else np.empty((0, 2), dtype=np.int64)
    return ig.Graph(n=int(offsets[-1]), edges=edges.astype(np.int64).tolist(), directed=True)


def output_chain(producers: Sequence[int | None]) -> list[int]:
    """The layers of the chain that ends at the last layer, first layer first (all layers in a chain)."""
    chain: list[int] = []
    k: int | None = len(producers) - 1
    while k is not None and k not in chain:
        chain.append(k)
        k = producers[k]
    return chain[::-1]


def _graph_statistics(graph) -> dict[str, float | int | None]:
    """Components, assortativity and k-cores of one igraph graph."""
    comps = graph.connected_components(mode="weak")
    sizes = comps.sizes()
    nonsingle = [s for s in sizes if s > 1]
    assort = graph.assortativity_degree(directed=True) if graph.ecount() else float("nan")
    core = np.asarray(graph.coreness(mode="all"), dtype=np.int64) if graph.vcount() else np.zeros(0, np.int64)
    return {
        "components": len(sizes),
        "components_nontrivial": len(nonsingle),
        "largest_component": int(max(sizes)) if sizes else 0,
        "assortativity": None if assort is None or math.isnan(assort) else float(assort),
        "kcore_max": int(core.max()) if core.size else 0,
        "kcore_mean": float(core.mean()) if core.size else 0.0,
    }


def layer_statistics(matrix: sp.spmatrix, hubs: int = 5, taps: int = 1, tap_shape: Sequence[int] | None = None) -> dict:
    """Statistics of one weight matrix as a bipartite directed graph (inputs -> outputs); with taps
    (a convolution) between channels, an edge where any kernel tap connects them, and the
    input-degree map of every input channel (`tap_out_degrees`, `tap_shape`: module docstring)."""
    (a,) = binary_layers(LayerStack([matrix], [taps]))
    n_in, n_out = a.shape
    outs, ins = out_degrees(a), in_degrees(a)
    stats: dict = {
        "n_in": n_in,
        "n_out": n_out,
        "nnz": int(a.nnz),
        "density": a.nnz / (n_in * n_out) if n_in * n_out else 0.0,
    }
    if taps > 1:
        stats["taps"] = taps
        rows = connection_mask(matrix, "csr")
        stats["connections"] = int(rows.nnz)  # kernel entries, not channel pairs
        stats["tap_out_degrees"] = [int(d) for d in np.diff(rows.indptr)]
        if tap_shape is not None:
            stats["tap_shape"] = [int(d) for d in tap_shape]
    stats.update(degree_summary(outs, "out_degree"))
    stats.update(degree_summary(ins, "in_degree"))
    stats["n_inputs_without_outputs"] = int((outs == 0).sum())
    stats["n_outputs_without_inputs"] = int((ins == 0).sum())
    stats.update(_graph_statistics(_graph([a])))
    stats["hub_inputs"] = top_indices(outs, hubs)
    stats["hub_input_degrees"] = [int(outs[i]) for i in stats["hub_inputs"]]
    stats["hub_outputs"] = top_indices(ins, hubs)
    stats["hub_output_degrees"] = [int(ins[i]) for i in stats["hub_outputs"]]
    return stats


def network_statistics(layers: Sequence[sp.spmatrix], hubs: int = 5) -> dict:
    """Statistics of the whole network as one directed graph of its neuron groups (layered, for a chain)."""
    adj = binary_layers(layers)
    producers = producers_of(layers)
    sources = input_groups(producers)
    sizes = neuron_groups(layers)
    ins, outs = neuron_degrees(adj, sources, sizes)
    n_syn = int(sum(a.nnz for a in adj))
    possible = sum(a.shape[0] * a.shape[1] for a in adj)
    # in-degrees of the groups some layer feeds, out-degrees of the groups some layer reads
    has_inputs = np.concatenate([ins[k + 1] for k in range(len(adj))])
    has_outputs = np.concatenate([outs[g] for g in sorted(set(sources))])
    total = [i + o for i, o in zip(ins, outs)]
    stats: dict = {
        "n_layers": len(adj),
        "n_neurons": int(sum(sizes)),
        "n_synapses": n_syn,
        "density": n_syn / possible if possible else 0.0,
    }
    stats.update(degree_summary(has_inputs, "in_degree"))
    stats.update(degree_summary(has_outputs, "out_degree"))
    stats["n_neurons_without_inputs"] = int((has_inputs == 0).sum())
    stats["n_neurons_without_outputs"] = int((has_outputs == 0).sum())
    stats["n_isolated_neurons"] = int(sum(int((t == 0).sum()) for t in total))
    if is_chain(producers):
        stats.update(flow_statistics(adj))
    else:
        chain = output_chain(producers)
        stats["flow_layers"] = chain  # paths are counted along this chain only
        stats.update(flow_statistics([adj[k] for k in chain]))
    stats.update(_graph_statistics(_graph(adj, sources, sizes)))
    for layer, deg in enumerate(total):
        stats[f"hubs_layer{layer}"] = top_indices(deg, hubs)
        stats[f"hub_degrees_layer{layer}"] = [int(deg[i]) for i in stats[f"hubs_layer{layer}"]]
    return stats


def snapshot_statistics(
    layers: Sequence[sp.spmatrix], hubs: int = 5, tap_shapes: Sequence[Sequence[int] | None] | None = None
) -> tuple[dict, list[dict]]:
    """(whole-network statistics, one dict per weight matrix). For a convolution, neurons are channels."""
    shapes = list(tap_shapes) if tap_shapes is not None else [None] * len(layers)
    return network_statistics(layers, hubs), [
        layer_statistics(m, hubs, taps, shape) for m, taps, shape in zip(layers, taps_of(layers), shapes)
    ]
