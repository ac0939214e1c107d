"""Recording any PyTorch model from the user's own loop, and importing its checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import sparsetopo
from sparsetopo.errors import UsageError
from sparsetopo.torch_topology import TorchTopologyError, model_layers, state_layers


def _digits():
    from sparsetopo.trainer.data import load_dataset

    data = load_dataset("digits")
    return torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 10))


def _linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def _masks(model) -> list[np.ndarray]:
    return [m.weight_mask.detach().numpy().astype(bool).T for m in _linears(model)[:2]]


def _reprune(model, amount, generator):
    """What dynamic sparse training does between snapshots: drop some connections, grow others."""
    for m in _linears(model)[:2]:
        mask = m.weight_mask.detach().clone()
        alive = mask.nonzero()
        drop = alive[torch.randperm(len(alive), generator=generator)[: int(amount * len(alive))]]
        dead = (mask == 0).nonzero()
        grow = dead[torch.randperm(len(dead), generator=generator)[: len(drop)]]
        mask[drop[:, 0], drop[:, 1]] = 0
        mask[grow[:, 0], grow[:, 1]] = 1
        with torch.no_grad():
            m.weight_orig[grow[:, 0], grow[:, 1]] = 0.0  # grown at zero, as RigL does
        prune.remove(m, "weight")
        prune.custom_from_mask(m, "weight", mask)


def _train_epoch(model, x, y, opt):
    for i in range(0, len(x), 100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
        opt.step()


# -- plain: reading topologies from modules and states -------------------------------------------


def test_a_masked_in_zero_weight_is_a_connection_and_masks_come_in_order():
    model = _mlp()
    prune.random_unstructured(model[0], "weight", amount=0.5)
    with torch.no_grad():
        model[0].weight_orig[model[0].weight_mask.bool()] = 0.0  # every connection at exactly 0
    explicit = torch.zeros(24, 32, dtype=torch.bool)
    explicit[:3, :5] = True
    layers = model_layers(model, masks={"2.weight": explicit})
    assert [(layer.name, layer.source) for layer in layers] == [("0", "prune"), ("2", "masks"), ("4", "nonzero")]
    first = layers[0].matrix()
    assert first.shape == (64, 32) and first.nnz == int(model[0].weight_mask.sum()) and not first.data.any()
    assert layers[1].matrix().nnz == 15
    with pytest.raises(TorchTopologyError, match="masks name no nn.Linear or convolution of the model: fc9"):
        model_layers(model, masks={"fc9": explicit})


def test_a_sparsifier_parametrization_is_read_as_its_mask():
    from torch.ao.pruning import WeightNormSparsifier

    model = _mlp()
    sparsifier = WeightNormSparsifier(sparsity_level=0.75, sparse_block_shape=(1, 1), zeros_per_block=1)
    sparsifier.prepare(model, [{"tensor_fqn": "0.weight"}, {"tensor_fqn": "2.weight"}])
    sparsifier.step()
    layers = model_layers(model)
    assert [layer.source for layer in layers] == ["parametrization", "parametrization", "nonzero"]
    expected = model[0].parametrizations.weight[0].mask.numpy().astype(bool).T
    assert np.array_equal(layers[0].matrix().toarray() != 0, expected & (layers[0].matrix().toarray() != 0))
    assert layers[0].matrix().nnz == int(expected.sum()) == 64 * 32 // 4


class Opaque:
    """An object a checkpoint may hold but weights_only loading refuses."""


def test_checkpoints_need_only_tensors(tmp_path):
    torch.save({"state_dict": _mlp().state_dict(), "extra": Opaque()}, tmp_path / "object.pt")
    from sparsetopo.torch_topology import load_state

    with pytest.raises(TorchTopologyError, match="weights_only=True refuses it"):
        load_state(tmp_path / "object.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TorchTopologyError, match="not a file torch.load can read"):
        load_state(tmp_path / "junk.pt")
    # layers whose shapes do not chain are stored without a producer, not refused (issue 14)
    shuffled = nn.Sequential(nn.Linear(64, 32), nn.Linear(10, 4))
    assert [layer.producer for layer in state_layers(shuffled.state_dict())] == [None, None]


# -- real loops into the real store --------------------------------------------------------------


@pytest.mark.neo4j
def test_a_pruned_loop_is_stored_step_by_step_and_its_checkpoints_import_to_the_same_run(
    store, cli, neo4j_server, tmp_path
):
    x, y = _digits()
    model = _mlp()
    for m in _linears(model)[:2]:
        prune.random_unstructured(m, "weight", amount=0.8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(1)
    seen, weights = [], []
    (tmp_path / "ckpts").mkdir()
    with sparsetopo.record(model, "own-loop", method="set", dataset="digits", settings=neo4j_server.settings()) as rec:
        for epoch in range(4):
            if epoch:
                _train_epoch(model, x, y, opt)
                _reprune(model, 0.3, generator)
            assert rec.snapshot(epoch=epoch, train_loss=1.0 / (epoch + 1)) == epoch
            seen.append(_masks(model))
            weights.append([m.weight.detach().numpy().T.copy() for m in _linears(model)])
            torch.save(model.state_dict(), tmp_path / "ckpts" / f"epoch_{epoch}.pt")
    run = store.get_run("own-loop")
    assert run["status"] == "completed" and run["layer_modules"] == ["0", "2", "4"]
    for step, (masks, dense) in enumerate(zip(seen, weights)):
        stored = store.read_snapshot("own-loop", step)
        for k in range(2):
            assert np.array_equal(stored.layers[k].toarray() != 0, masks[k] & (dense[k] != 0))
            pattern = np.zeros(masks[k].shape, dtype=bool)
            coo = stored.layers[k].tocoo()
            pattern[coo.row, coo.col] = True  # every stored entry, explicit zeros included
            assert np.array_equal(pattern, masks[k])
            assert np.array_equal(stored.layers[k].toarray(), np.where(masks[k], dense[k], 0))
    assert any((store.read_snapshot("own-loop", s).layers[0].data == 0).any() for s in range(1, 4))
    # evolution is the diff of the masks
    rows = json.loads(cli("evolution", "own-loop", "--json").stdout)
    for row in rows:
        if row["step"] == 0 or row["layer"] > 1:
            continue
        before, after = seen[row["step"] - 1][row["layer"]], seen[row["step"]][row["layer"]]
        assert row["appeared"] == int((after & ~before).sum()) and row["vanished"] == int((before & ~after).sum())
        assert row["alive"] == int(after.sum())
    # the checkpoints of the same states are the same run
    r = cli("import", "torch", tmp_path / "ckpts", "--run-id", "from-ckpts", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["written"] == 4
    from sparsetopo.graphstore.reader import snapshots_equal

    for step in range(4):
        a, b = store.read_snapshot("own-loop", step), store.read_snapshot("from-ckpts", step)
        assert all((la != lb).nnz == 0 and la.nnz == lb.nnz for la, lb in zip(a.layers, b.layers))
        b.run_id, b.metrics, b.epoch = a.run_id, a.metrics, a.epoch
        assert snapshots_equal(a, b)


@pytest.mark.neo4j
def test_explicit_masks_a_permuted_copy_at_nnstd_zero_and_a_failed_loop(store, neo4j_server):
    model = _mlp(3)
    rng = np.random.default_rng(0)
    masks = {f"{i}.weight": torch.from_numpy(rng.random(tuple(model[i].weight.shape)) < 0.2) for i in (0, 2, 4)}
    with torch.no_grad():
        model[0].weight[masks["0.weight"]] = 0.0  # connections whose weight is 0 are still connections
    with sparsetopo.connect(neo4j_server.settings()) as ws:
        with ws.record(model, "explicit", masks=masks) as rec:
            rec.snapshot()
        # the same network with its hidden neurons permuted: other connection sets, NNSTD 0
        perm1, perm2 = rng.permutation(32), rng.permutation(24)
        twin = _mlp(3)
        twin_masks = {
            "0.weight": masks["0.weight"][perm1],
            "2.weight": masks["2.weight"][perm2][:, perm1],
            "4.weight": masks["4.weight"][:, perm2],
        }
        with torch.no_grad():
            twin[0].weight.copy_(model[0].weight[perm1])
            twin[2].weight.copy_(model[2].weight[perm2][:, perm1])
            twin[4].weight.copy_(model[4].weight[:, perm2])
        with ws.record(twin, "twin", masks=twin_masks) as rec:
            rec.snapshot()
        first = store.read_snapshot("explicit", 0)
        assert first.layers[0].nnz == int(masks["0.weight"].sum()) and not first.layers[0].data.any()

        def positions(matrix):
            coo = matrix.tocoo()
            return set(zip(coo.row.tolist(), coo.col.tolist()))

        assert positions(first.layers[0]) != positions(store.read_snapshot("twin", 0).layers[0])
        assert ws.nnstd("explicit@0", "twin@0")["distance"] == 0.0
        assert ws.nnstd("explicit@0", "twin@0")["layers"] == [0.0, 0.0, 0.0]
        with pytest.raises(RuntimeError, match="diverged"):
            with ws.record(model, "broken") as rec:
                rec.snapshot()
                raise RuntimeError("diverged")
        assert store.get_run("broken")["status"] == "failed"
        rec = ws.record(model, "closed-by-hand", every=2)
        assert [rec.snapshot(), rec.snapshot(), rec.snapshot()] == [0, None, 1]
        rec.close("interrupted")
        assert store.get_run("closed-by-hand")["status"] == "interrupted"
        assert [s["step"] for s in store.list_snapshots("closed-by-hand")] == [0, 1]
        with pytest.raises(UsageError, match="is closed"):
            rec.snapshot()


@pytest.mark.neo4j
def test_every_example_of_docs_record_md_runs(store, neo4j_server, tmp_path):
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "record.md").read_text()
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(examples) == 4
    for n, code in enumerate(examples):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=600,
        )
        assert proc.returncode == 0, f"example {n + 1}:\n{proc.stderr}"
    assert store.get_run("prune-loop")["status"] == "completed"
    assert [s["step"] for s in store.list_snapshots("prune-loop")] == [0, 1, 2, 3]
    alive = [
        r["alive"]
        for r in store.read(
            "MATCH (l:LayerSnapshot {run_id: 'prune-loop', layer: 0}) RETURN l.step AS step, l.nnz AS alive ORDER BY step"
        )
    ]
    assert alive[0] > alive[1] > alive[2] > alive[3]  # each epoch pruned 10 % of what was left
    assert store.get_run("sparsifier-loop")["mask_sources"] == ["parametrization", "nonzero"]
    assert store.get_run("cnn")["architecture"] == [1, 8, 16, 10]
    assert [s["step"] for s in store.list_snapshots("from-checkpoints")] == [0, 1, 2]


def test_the_entry_points_stay_functions_after_their_modules_are_imported():
    import sparsetopo.recorder
    import sparsetopo.workspace

    assert callable(sparsetopo.record) and callable(sparsetopo.connect)
    assert sparsetopo.record.__module__ == "sparsetopo" and sparsetopo.connect.__module__ == "sparsetopo"


_INTERRUPTED_LOOP = """
import sys, time, torch
from torch import nn
import sparsetopo
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
with sparsetopo.record(model, "ctrl-c") as rec:
    for step in range(10_000):
        with torch.no_grad():
            model[0].weight[step % 32, step % 64] = 0.0  # the wiring changes a little every step
        rec.snapshot()
        if step == 2:
            print("ready", flush=True)
        time.sleep(0.05)
"""


@pytest.mark.neo4j
def test_ctrl_c_in_a_recorded_loop_marks_the_run_interrupted_with_every_stored_step_whole(store, neo4j_server):
    import os
    import signal
    import subprocess
    import sys

    from sparsetopo.graphstore.check import check_run

    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_LOOP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    run = store.get_run("ctrl-c")
    assert run["status"] == "interrupted" and run["writer"] is None
    steps = [s["step"] for s in store.list_snapshots("ctrl-c")]
    assert len(steps) >= 3 and steps == list(range(len(steps)))
    assert check_run(store, "ctrl-c")["consistent"]
