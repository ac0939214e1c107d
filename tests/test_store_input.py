"""Hostile input at the store's boundary (issue 12, items 10-12): values float32 cannot hold, blank
run ids, JSON output, huge integers and shapes, and a layer of a million inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.graphstore.errors import GraphStoreError
from sparsetopo.graphstore.model import Snapshot, TopologyError
from sparsetopo.graphstore.synthetic import synthetic_run

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _npz_dir(path: Path, weights: np.ndarray, bias: np.ndarray) -> Path:
    """A paper-format snapshot directory written in float64, as a user's own tools would."""
    path.mkdir(parents=True)
    full = sp.vstack([sp.csr_matrix(weights), sp.csr_matrix(bias.reshape(1, -1))], format="csr", dtype=np.float64)
    sp.save_npz(path / "weight_l0.npz", full)
    return path


BAD_VALUES = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "overflow": 1e39, "underflow": 1e-46}


@pytest.mark.parametrize("where", ["weight", "bias"])
@pytest.mark.parametrize("name", list(BAD_VALUES))
def test_values_float32_cannot_hold_are_refused_by_a_snapshot(name, where):
    w = np.array([[0.5, 0.0], [0.0, -1.5], [2.0, 0.25]])
    b = np.array([0.1, -0.2])
    if where == "weight":
        w[1, 1] = BAD_VALUES[name]
    else:
        b[0] = BAD_VALUES[name]
    with pytest.raises(TopologyError) as exc:
        Snapshot("r", 3, [sp.csr_matrix(w)], [b])
    message = str(exc.value)
    assert "step 3 of run 'r'" in message and ("the bias of layer 0" in message) == (where == "bias")
    assert "\n" not in message


def test_stored_zeros_and_small_float32_values_stay_connections():
    m = sp.csr_matrix((np.array([0.0, 1e-40, -3.0]), (np.array([0, 1, 2]), np.array([0, 1, 0]))), shape=(3, 2))
    snap = Snapshot("r", 0, [m], [np.array([0.0, 1e-40])])
    assert snap.layers[0].nnz == 3 and snap.layers[0].dtype == np.float32
    assert snap.layers[0][1, 1] != 0  # a float32 subnormal, not lost


@pytest.mark.neo4j
@pytest.mark.parametrize("value", [np.nan, 1e-46])
def test_import_refuses_a_weight_float32_cannot_hold_and_stores_nothing(store, cli, tmp_path, value):
    w = np.array([[0.5, 0.0], [value, -1.5]])
    path = _npz_dir(tmp_path / "snap", w, np.array([0.0, 0.1]))
    line = _one_line_error(cli("import", "npz", path, "--run-id", "bad"))
    assert "layer 0" in line and ("not finite" in line if np.isnan(value) else "float32 cannot hold" in line)
    assert store.list_runs() == []


@pytest.mark.neo4j
@pytest.mark.parametrize("run_id", ["", " ", "\t"])
def test_blank_run_ids_are_refused(store, cli, tmp_path, run_id):
    snaps = list(synthetic_run("x", [6, 4], 0.5, 0.3, 0, seed=1))
    path = _npz_dir(tmp_path / "snap", snaps[0].layers[0].toarray(), np.zeros(4))
    line = _one_line_error(cli("import", "npz", path, "--run-id", run_id))
    assert "run id" in line
    snap = Snapshot(run_id, 0, snaps[0].layers, snaps[0].biases)
    with pytest.raises(GraphStoreError):
        store.write_snapshot(snap)
    assert store.list_runs() == []


@pytest.mark.neo4j
def test_json_output_is_valid_json_when_values_are_not_finite(store, cli):
    from sparsetopo.graphstore.model import RunInfo

    snap = next(iter(synthetic_run("nanrun", [6, 4], 0.5, 0.3, 0, seed=1)))
    snap.metrics = {"train_loss": float("nan"), "test_loss": float("inf"), "test_accuracy": 0.5}
    store.create_run(RunInfo("nanrun", snap.architecture, epsilon=float("-inf")))
    store.write_snapshot(snap)
    shown = _strict_json(cli("runs", "show", "nanrun", "--json").stdout)
    assert shown["snapshots"][0]["train_loss"] is None and shown["snapshots"][0]["test_loss"] is None
    assert shown["run"]["epsilon"] is None
    listed = _strict_json(cli("runs", "list", "--json").stdout)
    assert listed[0]["run_id"] == "nanrun"
    rows = _strict_json(cli("cypher", "RETURN 0.0 / 0.0 AS nan, -1.0 / 0.0 AS ninf, [1.0 / 0.0] AS l", "--json").stdout)
    assert rows == [{"nan": None, "ninf": None, "l": [None]}]


def _cli_run(*args):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", *map(str, args)], env=env, capture_output=True, text=True, timeout=300
    )
    proc.exit_code = proc.returncode
    return proc


@pytest.mark.neo4j
@pytest.mark.parametrize(
    "args",
    [
        ("export", "npz", f"r@{2**64}", "--out", "OUT"),
        ("stats", f"r@{2**63}"),
        ("query", "ages", "r", "--param", f"step={2**64}"),
        ("query", "ages", "r", "-p", f"step={-(2**63) - 1}"),
        ("cypher", "RETURN $n AS n", "-p", f"n=[1, {2**70}]"),
    ],
)
def test_integers_beyond_64_bits_are_refused_in_one_sentence(store, neo4j_server, tmp_path, args):
    line = _one_line_error(_cli_run(*(str(tmp_path / "out") if a == "OUT" else a for a in args)))
    assert "64-bit" in line


@pytest.mark.neo4j
@pytest.mark.parametrize("shape", [(2**33, 3), (3, 2**33)])
def test_a_coo_npz_declaring_a_huge_shape_is_refused_in_one_sentence(store, tmp_path, shape):
    path = tmp_path / "snap"
    path.mkdir()
    coo = sp.coo_matrix((np.array([1.0]), (np.array([0]), np.array([0]))), shape=shape)
    sp.save_npz(path / "weight_l0.npz", coo, compressed=False)
    proc = _cli_run("import", "npz", path, "--run-id", "huge")
    line = _one_line_error(proc)
    assert "weight_l0.npz" in line and str(2**33) in line
    assert store.list_runs() == []


@pytest.mark.neo4j
def test_a_layer_of_a_million_inputs_can_be_imported(store, tmp_path):
    from sparsetopo.graphstore.reader import snapshots_equal

    rng = np.random.default_rng(3)
    n_in, n_out, nnz = 1_000_000, 10, 3000
    rows, cols = rng.integers(0, n_in, nnz), rng.integers(0, n_out, nnz)
    layer = sp.csr_matrix((rng.standard_normal(nnz), (rows, cols)), shape=(n_in, n_out))
    snap = Snapshot("wide", 0, [layer], [rng.standard_normal(n_out)])
    path = tmp_path / "snap"
    from sparsetopo.graphstore.npz_io import write_snapshot_dir

    write_snapshot_dir(snap, path)
    proc = _cli_run("import", "npz", path, "--run-id", "wide")
    assert proc.returncode == 0, proc.stderr
    counted = store.read("MATCH (n:Neuron {run_id: 'wide'}) RETURN count(n) AS n")[0]["n"]
    assert counted == n_in + n_out
    assert snapshots_equal(store.read_snapshot("wide", 0), snap)
