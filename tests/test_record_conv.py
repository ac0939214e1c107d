"""Convolutional topologies: recorded from a real torch loop, stored with their taps, compared by NNSTD."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pruned_loop import record_pruned_loop
from torch import nn
from torch.nn.utils import prune

from sparsetopo.torch_topology import model_layers, snapshot_of

CONVS = (0, 2)  # module indices of the two convolutions; 5 is the Linear after the flatten


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Conv2d(6, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)
    )


def _layers(model):
    return [model[i] for i in (*CONVS, 5)]


def test_the_matrix_form_of_a_convolution_and_the_linear_after_its_flatten():
    model = _cnn()
    layers = model_layers(model)
    snap = snapshot_of(layers, "cnn", 0)
    assert [m.shape for m in snap.layers] == [(9, 6), (54, 8), (128, 10)]
    assert snap.taps == [9, 9, 16] and snap.architecture == [1, 6, 8, 10]
    w = model[2].weight.detach().numpy()  # (out 8, in 6, 3, 3)
    dense = snap.layers[1].toarray()
    assert dense[4 * 9 + 2 * 3 + 1, 5] == w[5, 4, 2, 1]  # row = input channel * taps + kernel position
    lin = model[5].weight.detach().numpy()  # flatten order: channel * 16 + spatial position
    assert snap.layers[2].toarray()[3 * 16 + 7, 9] == lin[9, 3 * 16 + 7]


def test_a_copy_with_permuted_channels_is_at_nnstd_zero_and_the_npz_round_trip_is_exact(tmp_path):
    from sparsetopo.analysis.nnstd import nnstd
    from sparsetopo.graphstore.npz_io import read_snapshot_dir, write_snapshot_dir
    from sparsetopo.graphstore.reader import snapshots_equal

    model = _cnn(1)
    for i in (*CONVS, 5):
        prune.random_unstructured(model[i], "weight", amount=0.7)
    p1, p2 = torch.randperm(6), torch.randperm(8)
    twin = _cnn(2)
    masks = {
        "0": model[0].weight_mask[p1],
        "2": model[2].weight_mask[p2][:, p1],
        "5": model[5].weight_mask.view(10, 8, 16)[:, p2].reshape(10, 128),
    }
    a = snapshot_of(model_layers(model), "a", 0)
    b = snapshot_of(model_layers(twin, masks=masks), "b", 0)
    assert any((x != y).nnz for x, y in zip(a.layers, b.layers))  # other connection sets ...
    assert nnstd(a.layers, b.layers).layers == [0.0, 0.0, 0.0]  # ... the same topology
    write_snapshot_dir(a, tmp_path / "a")
    again = read_snapshot_dir(tmp_path / "a", run_id="a")
    assert again.taps == [9, 9, 16] and snapshots_equal(again, a)


@pytest.mark.neo4j
def test_a_pruned_cnn_loop_is_stored_with_its_channels_and_its_checkpoints_import_to_the_same_run(
    store, cli, neo4j_server, tmp_path
):
    from sparsetopo.graphstore.reader import snapshots_equal

    model = _cnn()
    (tmp_path / "ckpts").mkdir()

    def save_checkpoint(epoch):
        torch.save({"state_dict": model.state_dict()}, tmp_path / "ckpts" / f"epoch_{epoch}.pt")

    seen = record_pruned_loop(model, _layers(model), "cnn-loop", 4, neo4j_server.settings(), save_checkpoint)
    run = store.get_run("cnn-loop")
    assert run["architecture"] == [1, 6, 8, 10] and run["layer_modules"] == ["0", "2", "5"]
    for step, masks in enumerate(seen):
        stored = store.read_snapshot("cnn-loop", step)
        assert stored.taps == [9, 9, 16]
        for k, mask in enumerate(masks):
            coo = stored.layers[k].tocoo()
            pattern = np.zeros(mask.shape, dtype=bool)
            pattern[coo.row, coo.col] = True  # explicit zeros (grown at 0) are connections too
            assert np.array_equal(pattern, mask)
    # a synapse joins two channels and carries its kernel position
    row = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE {run_id: 'cnn-loop', layer: 1}]->(b:Neuron) WHERE s.born = 0 "
        "RETURN a.index AS i, s.tap AS tap, b.index AS j LIMIT 1"
    )[0]
    assert 0 <= row["i"] < 6 and 0 <= row["tap"] < 9 and 0 <= row["j"] < 8
    assert seen[0][1][row["i"] * 9 + row["tap"], row["j"]]
    # evolution is the diff of the masks
    rows = json.loads(cli("evolution", "cnn-loop", "--json").stdout)
    for r in rows:
        if r["step"]:
            before, after = seen[r["step"] - 1][r["layer"]], seen[r["step"]][r["layer"]]
            assert (r["appeared"], r["vanished"], r["alive"]) == (
                int((after & ~before).sum()),
                int((before & ~after).sum()),
                int(after.sum()),
            )
    assert cli("runs", "check", "cnn-loop").exit_code == 0
    stats = json.loads(cli("stats", "cnn-loop@3", "--json").stdout)
    assert [layer["n_in"] for layer in stats["layers"]] == [1, 6, 8]  # per channel
    assert stats["layers"][1]["connections"] == int(seen[3][1].sum())
    # the checkpoints of the same states are the same run
    r = cli("import", "torch", tmp_path / "ckpts", "--run-id", "cnn-ckpts", "--json")
    assert r.exit_code == 0, r.stderr
    for step in range(4):
        a, b = store.read_snapshot("cnn-loop", step), store.read_snapshot("cnn-ckpts", step)
        b.run_id, b.metrics, b.epoch = a.run_id, a.metrics, a.epoch
        assert snapshots_equal(a, b)
    assert json.loads(cli("nnstd", "pair", "cnn-loop@0", "cnn-ckpts@0", "--json").stdout)["distance"] == 0.0
