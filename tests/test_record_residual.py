"""Layers that do not chain: a residual CNN recorded from a real torch loop, its producers from the
traced dataflow, stored and read back, compared by NNSTD with the unchained layer named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pruned_loop import record_pruned_loop
from torch import nn
from torch.nn.utils import prune

import sparsetopo
from sparsetopo.torch_topology import model_layers, snapshot_of

ORDER = ["stem", "conv1", "conv2", "shortcut", "head"]
PRODUCERS = [None, 0, 1, 0, None]  # conv2 + shortcut is a sum: the head reads no single layer
TAPS = [9, 9, 9, 1, 64]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        # declared out of call order on purpose: layers are stored in the order forward calls them
        self.head = nn.Linear(8 * 8 * 8, 10)
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.conv1 = nn.Conv2d(6, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.shortcut = nn.Conv2d(6, 8, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        out = torch.relu(self.conv2(torch.relu(self.conv1(x)))) + self.shortcut(x)
        return self.head(torch.flatten(out, 1))


class Untraceable(Residual):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return super().forward(x)
        return super().forward(-x)


def _model(seed=0, cls=Residual):
    torch.manual_seed(seed)
    return cls()


def _modules(model):
    return [getattr(model, name) for name in ORDER]


def _permuted_masks(model, p_stem, p_conv1, p_sum):
    """The model's masks with the output channels of stem, conv1 and the sum (conv2, shortcut) permuted."""
    w = {name: getattr(model, name).weight_mask for name in ORDER}
    return {
        "stem": w["stem"][p_stem],
        "conv1": w["conv1"][p_conv1][:, p_stem],
        "conv2": w["conv2"][p_sum][:, p_conv1],
        "shortcut": w["shortcut"][p_sum][:, p_stem],
        "head": w["head"].view(10, 8, 64)[:, p_sum].reshape(10, 512),
    }


def test_producers_follow_the_dataflow_and_the_matrices_keep_their_form():
    model = _model()
    layers = model_layers(model)
    assert [layer.name for layer in layers] == ORDER
    assert [layer.producer for layer in layers] == PRODUCERS
    assert [layer.taps for layer in layers] == TAPS  # the head sees the sum's 8 channels at 64 positions
    snap = snapshot_of(layers, "res", 0)
    assert snap.architecture == [1, 6, 8, 8, 8, 10] and not snap.chained
    assert snap.neuron_groups == [1, 6, 8, 8, 8, 10, 8]  # the head's inputs: a group of their own
    w = model.shortcut.weight.detach().numpy()  # (8, 6, 1, 1): rows are stem's 6 channels
    assert snap.layers[3].shape == (6, 8) and snap.layers[3].toarray()[4, 2] == w[2, 4, 0, 0]
    lin = model.head.weight.detach().numpy()
    assert snap.layers[4].toarray()[3 * 64 + 17, 9] == lin[9, 3 * 64 + 17]


def test_a_model_fx_cannot_trace_is_chained_by_shapes_in_module_order():
    from sparsetopo.torch_dataflow import trace_dataflow

    model = _model(cls=Untraceable)
    assert trace_dataflow(model, ORDER) is None
    layers = model_layers(model)
    assert [layer.name for layer in layers] == ["head", "stem", "conv1", "conv2", "shortcut"]
    # module order: the head comes first and reads the input; the shortcut's 6 inputs are not
    # conv2's 8 outputs, so it has no producer instead of being refused
    assert [layer.producer for layer in layers] == [None, None, 1, 2, None]
    assert [layer.taps for layer in layers] == [1, 9, 9, 9, 1]


def test_a_channel_permuted_copy_is_at_nnstd_zero_where_chaining_allows_it(tmp_path):
    from sparsetopo.analysis.nnstd import nnstd
    from sparsetopo.graphstore.npz_io import read_snapshot_dir, write_snapshot_dir
    from sparsetopo.graphstore.reader import snapshots_equal

    model = _model(1)
    for m in _modules(model):
        prune.random_unstructured(m, "weight", amount=0.6)
    a = snapshot_of(model_layers(model), "a", 0)
    g = torch.Generator().manual_seed(5)
    p_stem, p_conv1, p_sum = (torch.randperm(n, generator=g) for n in (6, 8, 8))
    # stem's and conv1's channels are matched through their consumers: all at 0
    same = snapshot_of(model_layers(_model(2), _permuted_masks(model, p_stem, p_conv1, torch.arange(8))), "b", 0)
    assert any((x != y).nnz for x, y in zip(a.layers, same.layers))
    result = nnstd(a.layers, same.layers)
    assert result.layers == [0.0] * 5
    assert result.chained == [True, True, True, True, False]
    # the sum's channels reach the head through no single layer: the head is compared unrelabelled
    moved = snapshot_of(model_layers(_model(2), _permuted_masks(model, p_stem, p_conv1, p_sum)), "c", 0)
    result = nnstd(a.layers, moved.layers)
    assert result.layers[:4] == [0.0] * 4 and result.layers[4] > 0
    assert result.to_dict()["chained"] == [True, True, True, True, False]
    # the npz round trip keeps the producers (topology.json) and the kernel shapes
    write_snapshot_dir(a, tmp_path / "a")
    assert json.loads((tmp_path / "a" / "topology.json").read_text())["producers"] == PRODUCERS
    again = read_snapshot_dir(tmp_path / "a", run_id="a")
    assert again.producers == PRODUCERS and again.tap_shapes == [[3, 3], [3, 3], [3, 3], None, None]
    assert snapshots_equal(again, a)


def test_npz_files_that_declare_a_bad_wiring_are_refused(tmp_path):
    from sparsetopo.graphstore.npz_io import NpzFormatError, read_snapshot_dir, write_snapshot_dir

    model = _model()
    write_snapshot_dir(snapshot_of(model_layers(model), "a", 0), tmp_path / "a")
    topology = tmp_path / "a" / "topology.json"
    topology.write_text(json.dumps({"producers": [None, 0, 1, 2, None]}))  # the shortcut's 6 rows are not conv2's 8
    with pytest.raises(NpzFormatError, match="do not chain: layer 2 has 8 outputs but layer 3 has 6 inputs"):
        read_snapshot_dir(tmp_path / "a")
    topology.write_text(json.dumps({"producers": [None, 0, 1]}))
    with pytest.raises(NpzFormatError, match="'producers' must list a layer index or null for each of the 5"):
        read_snapshot_dir(tmp_path / "a")


@pytest.mark.neo4j
def test_a_pruned_residual_cnn_loop_is_stored_with_its_producers(store, cli, neo4j_server, tmp_path):
    from sparsetopo.graphstore.npz_io import read_snapshot_dir

    model = _model()
    seen = record_pruned_loop(model, _modules(model), "res-loop", 3, neo4j_server.settings())
    run = store.get_run("res-loop")
    assert run["layer_modules"] == ORDER and run["chain_source"] == "traced"
    assert run["architecture"] == [1, 6, 8, 8, 8, 10]
    for step, masks in enumerate(seen):
        stored = store.read_snapshot("res-loop", step)
        assert stored.producers == PRODUCERS and stored.taps == TAPS
        for k, mask in enumerate(masks):
            coo = stored.layers[k].tocoo()
            pattern = np.zeros(mask.shape, dtype=bool)
            pattern[coo.row, coo.col] = True
            assert np.array_equal(pattern, mask)
    # synapses join the neurons the dataflow says: the shortcut reads stem's outputs (neuron layer 1),
    # the head its own input group (neuron layer 6, after the last layer's outputs)
    groups = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE {run_id: 'res-loop'}]->(b:Neuron) "
        "RETURN s.layer AS layer, collect(DISTINCT a.layer) AS source, collect(DISTINCT b.layer) AS target "
        "ORDER BY layer"
    )
    assert [(g["source"], g["target"]) for g in groups] == [([0], [1]), ([1], [2]), ([2], [3]), ([1], [4]), ([6], [5])]
    assert [r["n"] for r in store.read("MATCH (n:Neuron {run_id: 'res-loop', layer: 6}) RETURN count(n) AS n")] == [8]
    producers = store.read(
        "MATCH (l:LayerSnapshot {run_id: 'res-loop', step: 0}) "
        "RETURN coalesce(l.producer, l.layer - 1) AS producer ORDER BY l.layer"
    )
    assert [r["producer"] for r in producers] == [-1, 0, 1, 0, -1]
    rows = json.loads(cli("evolution", "res-loop", "--json").stdout)
    assert len(rows) == 3 * 5
    for r in rows:
        after = seen[r["step"]][r["layer"]]
        before = seen[r["step"] - 1][r["layer"]] if r["step"] else np.zeros_like(after)
        assert (r["appeared"], r["vanished"], r["alive"]) == (
            int((after & ~before).sum()),
            int((before & ~after).sum()),
            int(after.sum()),
        )
    check = cli("runs", "check", "res-loop", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["consistent"], check.stdout
    # NNSTD over the stored run names the layer it could not chain
    pair = cli("nnstd", "pair", "res-loop@0", "res-loop@2", "--json")
    assert pair.exit_code == 0, pair.stderr
    result = json.loads(pair.stdout)
    assert result["chained"] == [True, True, True, True, False] and 0 < result["distance"] < 1
    evolution = json.loads(cli("nnstd", "evolution", "res-loop", "--json").stdout)
    assert [r["chained"] for r in evolution] == [[True, True, True, True, False]] * 2
    # a copy of the last step with permuted channels, recorded as its own run: at 0 where chaining
    # allows it (stem, conv1 and their consumers), not at the head, which reads the permuted sum
    g = torch.Generator().manual_seed(11)
    p_stem, p_conv1, p_sum = (torch.randperm(n, generator=g) for n in (6, 8, 8))
    twin_masks = _permuted_masks(model, p_stem, p_conv1, p_sum)
    with sparsetopo.record(_model(4), "res-twin", masks=twin_masks, settings=neo4j_server.settings()) as rec:
        rec.snapshot()
    assert store.read_snapshot("res-twin", 0).producers == PRODUCERS
    twin = json.loads(cli("nnstd", "pair", "res-loop@2", "res-twin@0", "--json").stdout)
    assert twin["layers"][:4] == [0.0] * 4 and twin["layers"][4] > 0
    assert twin["chained"] == [True, True, True, True, False]
    table = cli("nnstd", "pair", "res-loop@0", "res-loop@2")
    assert "no (not relabelled)" in table.stdout
    # paths follow the chain that ends at the head; it starts at the sum
    stats = json.loads(cli("stats", "res-loop@2", "--json").stdout)
    assert stats["network"]["flow_layers"] == [4]
    assert stats["network"]["n_neurons"] == 1 + 6 + 8 + 8 + 8 + 10 + 8
    # export and import through npz keep the wiring
    assert cli("export", "npz", "res-loop@2", "--out", tmp_path / "res2").exit_code == 0
    assert read_snapshot_dir(tmp_path / "res2").producers == PRODUCERS
    imported = cli("import", "npz", tmp_path / "res2", "--run-id", "res-npz")
    assert imported.exit_code == 0, imported.stderr
    assert store.read_snapshot("res-npz", 0).producers == PRODUCERS
    assert cli("runs", "check", "res-npz").exit_code == 0


@pytest.mark.neo4j
def test_the_residual_example_of_docs_record_md_runs(store, neo4j_server, tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "record.md").read_text()
    (code,) = re.findall(r"```python residual\n(.*?)```", text, re.S)  # test_record.py runs the others
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=os.environ.copy(), timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["traced", "[True, True, True, True, False]", "[4]"]


@pytest.mark.neo4j
def test_a_residual_checkpoint_is_imported_with_the_producers_its_user_names(store, cli, tmp_path):
    model = _model()
    for module in _modules(model):
        prune.random_unstructured(module, "weight", amount=0.5)
    path = tmp_path / "res.pt"
    torch.save(model.state_dict(), path)
    # a state_dict is in declaration order (head, stem, conv1, conv2, shortcut), and shapes alone
    # cannot see that the shortcut reads the stem
    plain = cli("import", "torch", path, "--run-id", "res-plain")
    assert plain.exit_code == 0, plain.stderr
    assert store.read_snapshot("res-plain", 0).producers == [None, None, 1, 2, None]
    given = cli(
        "import", "torch", path, "--run-id", "res-given", "--producer", "shortcut=stem", "--producer", "head=none"
    )
    assert given.exit_code == 0, given.stderr
    snap = store.read_snapshot("res-given", 0)
    assert snap.producers == [None, None, 1, 2, 1] and snap.taps == [1, 9, 9, 9, 1]
    run = store.get_run("res-given")
    assert run["chain_source"] == "module-order, producers given"
    assert run["producers_given"] == ["shortcut=stem", "head=none"]
    # the shortcut's synapses leave the stem's outputs, as in the traced recording
    groups = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE {run_id: 'res-given', layer: 4}]->(b:Neuron) "
        "RETURN collect(DISTINCT a.layer) AS source, collect(DISTINCT b.layer) AS target"
    )
    assert (groups[0]["source"], groups[0]["target"]) == ([2], [5])
    traced = snapshot_of(model_layers(model), "traced", 0)
    assert traced.producers == PRODUCERS
    for k, name in enumerate(["head", "stem", "conv1", "conv2", "shortcut"]):
        assert (snap.layers[k] != traced.layers[ORDER.index(name)]).nnz == 0, name
    check = cli("runs", "check", "res-given", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["consistent"], check.stdout
    # names and wirings that do not fit: one sentence each, and nothing stored
    for args, message in [
        (
            ["shortcut=stemm"],
            "the checkpoint has no weight layer 'stemm'; its layers are head, stem, conv1, conv2, shortcut",
        ),
        (["conv2=stem"], "'conv2' reads 8 channels, but 'stem' has 6 outputs"),
        (
            ["head=stem"],
            "'head' has 512 inputs, not a whole number of positions for each of 'stem''s 6 output channels",
        ),
        (["conv1=conv1"], "layer 'conv1' cannot be its own producer"),
        (["shortcut"], "--producer takes LAYER=SOURCE"),
        (["conv1=shortcut"], "'conv1' reads 6 channels, but 'shortcut' has 8 outputs"),
    ]:
        bad = cli("import", "torch", path, "--run-id", "res-bad", *[a for x in args for a in ("--producer", x)])
        lines = [line for line in bad.stderr.strip().splitlines() if line.strip()]
        assert bad.exit_code != 0 and len(lines) == 1 and message in lines[0], bad.stderr
    assert "res-bad" not in [r["run_id"] for r in store.list_runs()]


def test_producers_that_form_a_cycle_are_refused():
    from sparsetopo.torch_topology import TorchLayer, TorchTopologyError, give_producers

    square = np.ones((4, 4), dtype=np.float32)
    layers = [TorchLayer(name, square, square != 0, None, "nonzero") for name in ("a", "b", "c")]
    with pytest.raises(TorchTopologyError, match="the producers form a cycle: b -> c -> b"):
        give_producers(layers, {"b": "c", "c": "b"})
    assert [layer.producer for layer in layers] == [None, None, None]  # nothing changed
    give_producers(layers, {"c": "a", "b": "a"})
    assert [layer.producer for layer in layers] == [None, 0, 0]
