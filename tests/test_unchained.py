"""Layers that do not chain, on hand-built matrices: producers in the topology core, NNSTD relabelling
by producer, statistics over neuron groups; and the input-degree maps of layers with taps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.analysis.nnstd import NNSTDError, nnstd
from sparsetopo.analysis.structure import layer_statistics, network_statistics
from sparsetopo.statistics import with_input_degree_map
from sparsetopo.topology import LayerStack, TopologyError, check_chain, input_groups, neuron_groups

RNG = np.random.default_rng(7)


def _distinct_columns(n_in: int, n_out: int, density: float = 0.5) -> np.ndarray:
    """A 0/1 matrix whose columns are distinct and non-empty (so matchings are unique)."""
    while True:
        m = (RNG.random((n_in, n_out)) < density).astype(np.float32)
        cols = {m[:, j].tobytes() for j in range(n_out)}
        if len(cols) == n_out and m.sum(axis=0).min() > 0:
            return m


def _branching():
    """Layer 0: 5 -> 4; layers 1 and 2 both read layer 0 (4 -> 3, 4 -> 6); layer 3 reads a sum (3 -> 2)."""
    mats = [_distinct_columns(5, 4), _distinct_columns(4, 3), _distinct_columns(4, 6), _distinct_columns(3, 2)]
    return LayerStack([sp.csr_matrix(m) for m in mats], producers=[None, 0, 0, None])


def test_producers_declare_what_the_shapes_must_agree_with():
    net = _branching()
    check_chain(net)  # layer 2's 4 rows are layer 0's outputs, not layer 1's 3
    assert input_groups(net.producers) == [0, 1, 1, 5]
    assert neuron_groups(net) == [5, 4, 3, 6, 2, 3]
    with pytest.raises(TopologyError, match="do not chain: layer 1 has 3 outputs but layer 2 has 4 inputs"):
        check_chain(LayerStack(list(net), producers=[None, 0, 1, None]))
    with pytest.raises(TopologyError, match="form a cycle through layer 1"):
        LayerStack(list(net), producers=[None, 2, 1, None])
    with pytest.raises(TopologyError, match="layer 2's producer must be another layer"):
        LayerStack(list(net), producers=[None, 0, 2, None])
    assert LayerStack([np.zeros((2, 2))] * 3).producers == (None, 0, 1)


def test_nnstd_relabels_every_consumer_by_its_producer_and_leaves_unchained_layers_alone():
    a = _branching()
    perm = RNG.permutation(4)  # layer 0's output neurons, as both of its consumers see them
    moved = [m.toarray() for m in a]
    moved[0], moved[1], moved[2] = moved[0][:, perm], moved[1][perm], moved[2][perm]
    b = LayerStack([sp.csr_matrix(m) for m in moved], producers=a.producers)
    assert any((x != y).nnz for x, y in zip(a, b))
    result = nnstd(a, b)
    assert result.layers == [0.0, 0.0, 0.0, 0.0]
    assert result.to_dict()["chained"] == [True, True, True, False]
    # layer 3's inputs are not one layer's outputs: a relabelling of them is not undone
    shuffled = [m.toarray() for m in b]
    shuffled[3] = shuffled[3][[2, 0, 1]]
    c = LayerStack([sp.csr_matrix(m) for m in shuffled], producers=a.producers)
    assert nnstd(a, c).layers[3] > 0
    # the same shapes wired otherwise (layer 3 reading layer 1's 3 outputs) are not comparable
    with pytest.raises(NNSTDError, match=r"wired differently \(producers \['input', 0, 0, 'input'\] and"):
        nnstd(a, LayerStack(list(b), producers=[None, 0, 0, 1]))


def test_a_chain_keeps_its_statistics_and_a_branching_network_counts_paths_along_the_last_chain():
    chain = [sp.csr_matrix(_distinct_columns(5, 4)), sp.csr_matrix(_distinct_columns(4, 3))]
    assert list(nnstd(chain, chain).to_dict()) == ["distance", "layers"]  # a chain's result is as before
    plain = network_statistics(chain)
    assert "flow_layers" not in plain and plain["n_neurons"] == 12
    net = _branching()
    s = network_statistics(net, hubs=2)
    assert s["flow_layers"] == [3]  # the last layer reads a sum: its chain is itself
    assert s["n_neurons"] == 5 + 4 + 3 + 6 + 2 + 3
    assert s["n_synapses"] == sum(int(m.nnz) for m in net)
    rows = [np.asarray(m.sum(axis=1)).ravel().astype(int) for m in net]
    cols = [np.asarray(m.sum(axis=0)).ravel().astype(int) for m in net]
    # layer 0's outputs (group 1) send to both consumers; the out-degrees cover the groups layers read
    outs = {0: rows[0], 1: rows[1] + rows[2], 5: rows[3]}
    every_out = np.concatenate([outs[0], outs[1], outs[5]])
    assert s["out_degree_max"] == int(every_out.max())
    assert s["out_degree_mean"] == pytest.approx(every_out.mean())
    assert s["n_neurons_without_outputs"] == int((every_out == 0).sum())
    assert s["hub_degrees_layer1"] == sorted((cols[0] + outs[1]).tolist(), reverse=True)[:2]
    # groups 2 and 3 (outputs of layers 1, 2) feed no stored layer; group 5 (the sum) has no inputs
    assert s["hub_degrees_layer5"] == sorted(rows[3].tolist(), reverse=True)[:2]
    assert s["paths_per_output"] == [float(v) for v in cols[3]]


def test_input_degree_maps_give_each_input_channel_the_out_degree_of_each_tap():
    # 2 input channels x 4 taps (a 2x2 kernel), 3 output channels
    m = np.zeros((8, 3), dtype=np.float32)
    m[0 * 4 + 0, [0, 1, 2]] = 1  # channel 0, tap (0, 0): all three outputs
    m[0 * 4 + 3, 1] = 1  # channel 0, tap (1, 1): one
    m[1 * 4 + 2, [0, 2]] = 1  # channel 1, tap (1, 0): two
    stats = layer_statistics(sp.csr_matrix(m), taps=4, tap_shape=[2, 2])
    assert stats["tap_out_degrees"] == [3, 0, 0, 1, 0, 0, 2, 0] and stats["tap_shape"] == [2, 2]
    shown = with_input_degree_map({"layer": 0, "taps": 4} | stats)
    assert shown["input_degree_map"] == [[[3, 0], [0, 1]], [[0, 0], [2, 0]]]
    # a tap shape that is not known (a Linear after a flatten of unknown size): one row per channel
    flat = with_input_degree_map({"layer": 1} | layer_statistics(sp.csr_matrix(m), taps=4))
    assert flat["input_degree_map"] == [[3, 0, 0, 1], [0, 0, 2, 0]]
    assert "tap_out_degrees" not in layer_statistics(sp.csr_matrix(m[:2]))  # no taps, no map
