"""Grouped and depthwise convolutions: recorded as the dense convolution's matrix, where positions
across groups are simply not connections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import sparsetopo
from sparsetopo.torch_topology import model_layers, snapshot_of

CONVS = (0, 2, 4, 7)  # stem, grouped (groups=2), depthwise (groups=8), the Linear after the flatten


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, groups=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )


def test_a_grouped_convolution_is_the_dense_matrix_without_the_cross_group_positions():
    model = _model()
    prune.random_unstructured(model[2], "weight", amount=0.3)
    layers = model_layers(model)
    assert [layer.producer for layer in layers] == [None, 0, 1, 2]
    snap = snapshot_of(layers, "g", 0)
    assert [m.shape for m in snap.layers] == [(9, 4), (36, 8), (72, 8), (32, 10)]
    assert snap.taps == [9, 9, 9, 4] and snap.architecture == [1, 4, 8, 8, 10]
    grouped = snap.layers[1].toarray()
    pattern = np.zeros(grouped.shape, dtype=bool)
    coo = snap.layers[1].tocoo()
    pattern[coo.row, coo.col] = True
    w = model[2].weight.detach().numpy()  # (8, 2, 3, 3): outputs 0-3 read channels 0-1, 4-7 read 2-3
    mask = model[2].weight_mask.detach().numpy().astype(bool)
    for o in range(8):
        g = o // 4
        for c in range(4):
            rows = slice(c * 9, (c + 1) * 9)
            if c // 2 == g:
                assert np.array_equal(pattern[rows, o], mask[o, c - 2 * g].ravel())
                assert np.array_equal(grouped[rows, o], (w[o, c - 2 * g] * mask[o, c - 2 * g]).ravel())
            else:
                assert not pattern[rows, o].any()  # across groups: no connection, not a zero weight
    depthwise = snap.layers[2].tocoo()
    assert snap.layers[2].nnz == 8 * 9 and np.array_equal(depthwise.row // 9, depthwise.col)


def test_masks_given_in_the_modules_own_shape_are_expanded_too():
    model = _model()
    keep = torch.zeros(8, 1, 3, 3, dtype=torch.bool)
    keep[:, 0, 1, 1] = True  # the depthwise convolution keeps only its centre taps
    (layer,) = [x for x in model_layers(model, masks={"4": keep}) if x.name == "4"]
    assert layer.source == "masks" and layer.mask.shape == (8, 8, 3, 3)
    m = layer.matrix().tocoo()
    assert sorted(zip(m.row.tolist(), m.col.tolist())) == [(c * 9 + 4, c) for c in range(8)]


@pytest.mark.neo4j
def test_a_pruned_grouped_cnn_is_stored_and_read_back(store, cli, neo4j_server):
    model = _model()
    for i in CONVS:
        prune.l1_unstructured(model[i], "weight", amount=0.4)
    seen = []
    with sparsetopo.record(model, "grouped", settings=neo4j_server.settings()) as rec:
        for step in range(2):
            if step:
                prune.l1_unstructured(model[2], "weight", amount=0.3)
            rec.snapshot()
            seen.append(snapshot_of(model_layers(model), "grouped", step))
    for step, expected in enumerate(seen):
        stored = store.read_snapshot("grouped", step)
        for a, b in zip(stored.layers, expected.layers):
            assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert seen[1].layers[1].nnz < seen[0].layers[1].nnz
    assert cli("runs", "check", "grouped").exit_code == 0
