"""Structural statistics against hand-worked examples and brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetopo.analysis.reachability import backward_reach, forward_reach, path_counts
from sparsetopo.analysis.structure import (
    StructureError,
    binary_layers,
    gini,
    layer_statistics,
    network_statistics,
    snapshot_statistics,
    top_indices,
)


def m(rows):
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


# 3 inputs -> 2 hidden -> 2 outputs.
# input 2 has no synapse; hidden 1 feeds nothing; output 1 receives only from hidden 1.
W0 = m([[0.5, 0.0], [-1.0, 2.0], [0.0, 0.0]])
W1 = m([[1.0, 0.0], [0.0, 0.0]])


def test_gini_extremes():
    assert gini(np.array([3, 3, 3, 3])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)
    assert gini(np.array([0, 0])) == 0.0
    # mean absolute difference / (2 * mean) for [1, 2, 3]: (8/9) / (2 * 2) = 2/9
    assert gini(np.array([1, 2, 3])) == pytest.approx(2 / 9)


def test_top_indices_ties_break_to_lower_index():
    assert top_indices(np.array([1, 5, 5, 0, 7]), 3) == [4, 1, 2]


def test_binary_layers_reject_shapes_that_do_not_chain():
    with pytest.raises(StructureError, match="layer 0 has 2 outputs but layer 1 has 3 inputs"):
        binary_layers([W0, sp.csr_matrix((3, 2))])


def test_binary_layers_keep_explicit_zeros_as_connections():
    a = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    (b,) = binary_layers([a])
    assert b.nnz == 2 and b.toarray().tolist() == [[1.0, 1.0]]


def test_hand_worked_network():
    s = network_statistics([W0, W1], hubs=2)
    assert s["n_neurons"] == 7
    assert s["n_synapses"] == 4
    assert s["density"] == pytest.approx(4 / 10)
    # in-degrees of hidden+outputs: [2, 1, 1, 0]; out-degrees of inputs+hidden: [1, 2, 0, 1, 0]
    assert s["in_degree_mean"] == pytest.approx(1.0)
    assert s["in_degree_max"] == 2
    assert s["out_degree_mean"] == pytest.approx(4 / 5)
    assert s["n_neurons_without_inputs"] == 1  # output 1
    assert s["n_neurons_without_outputs"] == 2  # input 2, hidden 1
    assert s["n_isolated_neurons"] == 2  # input 2, output 1
    assert s["n_inputs_without_path"] == 1  # input 2 (input 1 reaches output 0 via hidden 0)
    assert s["n_outputs_unreached"] == 1  # output 1
    assert s["n_hidden_off_path"] == 1  # hidden 1
    assert s["paths_per_output"] == [2.0, 0.0]  # 0->h0->o0, 1->h0->o0
    # components: {in0, in1, h0, h1, o0}, {in2}, {o1}
    assert s["components"] == 3
    assert s["components_nontrivial"] == 1
    assert s["largest_component"] == 5
    assert s["kcore_max"] == 1
    assert s["hubs_layer1"] == [0, 1] and s["hub_degrees_layer1"] == [3, 1]
    assert s["hubs_layer0"] == [1, 0]


def test_hand_worked_layer():
    s = layer_statistics(W0, hubs=1)
    assert (s["n_in"], s["n_out"], s["nnz"]) == (3, 2, 3)
    assert s["out_degree_max"] == 2 and s["in_degree_max"] == 2
    assert s["n_inputs_without_outputs"] == 1
    assert s["n_outputs_without_inputs"] == 0
    assert s["components"] == 2 and s["largest_component"] == 4
    assert s["hub_inputs"] == [1] and s["hub_input_degrees"] == [2]
    assert s["hub_outputs"] == [0]


def test_assortativity_undefined_is_none():
    empty = sp.csr_matrix((3, 2), dtype=np.float32)
    assert layer_statistics(empty)["assortativity"] is None
    assert network_statistics([empty])["components"] == 5


def test_statistics_are_flat():
    net, per_layer = snapshot_statistics([W0, W1])
    assert len(per_layer) == 2
    for d in [net, *per_layer]:
        for key, value in d.items():
            if isinstance(value, list):
                assert all(isinstance(v, (int, float)) for v in value), key
            else:
                assert value is None or isinstance(value, (int, float)), key


# ---- brute-force references on random small networks ----------------------------


@st.composite
def networks(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        mask = draw(st.lists(st.booleans(), min_size=a * b, max_size=a * b))
        layers.append(sp.csr_matrix(np.array(mask, dtype=np.float32).reshape(a, b) * 0.5))
    return layers


def all_paths(layers):
    """Enumerate every input->output path by brute force: count per output neuron."""
    counts = np.zeros(layers[-1].shape[1])
    dense = [lay.toarray() != 0 for lay in layers]
    for path in itertools.product(*[range(lay.shape[0]) for lay in layers], range(layers[-1].shape[1])):
        if all(dense[k][path[k], path[k + 1]] for k in range(len(layers))):
            counts[path[-1]] += 1
    return counts


def pearson_assortativity(layers):
    adj = [lay.toarray() != 0 for lay in layers]
    ins = [np.zeros(adj[0].shape[0])] + [a.sum(axis=0) for a in adj]
    outs = [a.sum(axis=1) for a in adj] + [np.zeros(adj[-1].shape[1])]
    x, y = [], []
    for k, a in enumerate(adj):
        for i, j in zip(*np.nonzero(a)):
            x.append(outs[k][i])
            y.append(ins[k + 1][j])
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def union_find_components(layers):
    sizes = [layers[0].shape[0]] + [lay.shape[1] for lay in layers]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    parent = list(range(int(offsets[-1])))

    def find(v):
        while parent[v] != v:
            v = parent[v]
        return v

    for k, lay in enumerate(layers):
        for i, j in zip(*np.nonzero(lay.toarray())):
            parent[find(int(offsets[k] + i))] = find(int(offsets[k + 1] + j))
    roots = [find(v) for v in range(len(parent))]
    return len(set(roots)), max(roots.count(r) for r in set(roots))


def peel_coreness(layers):
    """k-core numbers by repeatedly removing vertices of degree < k (undirected)."""
    sizes = [layers[0].shape[0]] + [lay.shape[1] for lay in layers]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    nbrs = {v: set() for v in range(int(offsets[-1]))}
    for k, lay in enumerate(layers):
        for i, j in zip(*np.nonzero(lay.toarray())):
            u, v = int(offsets[k] + i), int(offsets[k + 1] + j)
            nbrs[u].add(v)
            nbrs[v].add(u)
    core = {}
    alive = set(nbrs)
    k = 0
    while alive:
        removed = True
        while removed:
            removed = False
            for v in list(alive):
                if len(nbrs[v] & alive) <= k:
                    core[v] = k
                    alive.discard(v)
                    removed = True
        k += 1
    return [core[v] for v in sorted(core)]


@settings(max_examples=60, deadline=None)
@given(networks())
def test_against_brute_force(layers):
    s = network_statistics(layers)
    adj = binary_layers(layers)
    assert np.array_equal(path_counts(adj), all_paths(layers))
    fwd, bwd = forward_reach(adj), backward_reach(adj)
    assert s["n_outputs_unreached"] == int((all_paths(layers) == 0).sum())
    # an input has a path to an output iff removing all other inputs leaves some path
    for i in range(layers[0].shape[0]):
        only_i = layers[0].toarray().copy()
        only_i[np.arange(only_i.shape[0]) != i] = 0
        assert bwd[0][i] == (all_paths([sp.csr_matrix(only_i), *layers[1:]]).sum() > 0)
    assert fwd[0].all() and bwd[-1].all()
    assert (s["components"], s["largest_component"]) == union_find_components(layers)
    expected = pearson_assortativity(layers)
    if expected is None:
        assert s["assortativity"] is None
    else:
        assert s["assortativity"] == pytest.approx(expected, abs=1e-9)
    core = peel_coreness(layers)
    assert s["kcore_max"] == max(core)
    assert s["kcore_mean"] == pytest.approx(np.mean(core))
    assert s["n_synapses"] == sum(int((lay.toarray() != 0).sum()) for lay in layers)
