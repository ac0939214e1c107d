"""`sparsetopo nnstd pair|matrix|evolution` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.analysis.nnstd import nnstd
from sparsetopo.graphstore.model import RunInfo, Snapshot
from sparsetopo.graphstore.npz_io import write_snapshot_dir


def run_cli(*args):
    """The CLI in a subprocess, for commands that read only files (no graph store)."""
    return subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )


def one_line_error(result, status: int = 1) -> str:
    """The one error line; status 1 for a mistake in a value, 2 for one the command line parser finds."""
    code = result.returncode if hasattr(result, "returncode") else result.exit_code
    assert code == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def make_network(seed, sizes=(30, 20, 15, 4), density=0.15):
    rng = np.random.default_rng(seed)
    return [
        sp.random(sizes[k], sizes[k + 1], density=density, random_state=rng, format="csr", dtype=np.float32)
        for k in range(len(sizes) - 1)
    ]


def write_dir(tmp_path, name, layers, seed=0):
    rng = np.random.default_rng(seed)
    # nonzero biases: the bias row of the files must not be read as a neuron
    snap = Snapshot(run_id="", step=0, layers=layers, biases=[rng.standard_normal(m.shape[1]) for m in layers])
    return write_snapshot_dir(snap, tmp_path / name)


def test_pair_json_is_exact_and_ignores_bias_rows(tmp_path):
    a, b = make_network(1), make_network(2)
    da, db = write_dir(tmp_path, "a", a, 1), write_dir(tmp_path, "b", b, 2)
    r = run_cli("nnstd", "pair", da, db, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["distance", "layers"]
    expected = nnstd(a, b)
    assert out["distance"] == expected.distance and out["layers"] == expected.layers  # full float precision
    human = run_cli("nnstd", "pair", da, db, "--tie-sensitivity")
    assert human.returncode == 0 and "network (mean)" in human.stdout and "tie-breaks" in human.stdout


def test_matrix_json_csv_and_heatmap(tmp_path):
    nets = [make_network(s) for s in range(3)]
    dirs = [write_dir(tmp_path, f"n{k}", net, k) for k, net in enumerate(nets)]
    png = tmp_path / "heat.png"
    r = run_cli("nnstd", "matrix", *dirs, "--json", "--figure", png, "--workers", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["labels", "distance", "layers"]
    assert out["labels"] == [str(d) for d in dirs]
    d = np.array(out["distance"])
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    assert d[2][0] == nnstd(nets[2], nets[0]).distance
    assert out["layers"][1][0] == nnstd(nets[1], nets[0]).layers
    assert np.array(out["layers"]).shape == (3, 3, 3)
    assert png.read_bytes()[:4] == b"\x89PNG"
    csv_out = run_cli("nnstd", "matrix", *dirs, "--csv")
    rows = csv_out.stdout.strip().splitlines()
    assert len(rows) == 4 and float(rows[3].split(",")[1]) == d[2][0]


def test_user_mistakes_are_one_sentence(tmp_path):
    a = write_dir(tmp_path, "a", make_network(1))
    shallow = write_dir(tmp_path, "shallow", make_network(2, sizes=(30, 4)))
    wide_input = write_dir(tmp_path, "wide", make_network(3, sizes=(31, 20, 15, 4)))
    assert "different numbers of layers" in one_line_error(run_cli("nnstd", "pair", a, shallow))
    assert "different input sizes" in one_line_error(run_cli("nnstd", "pair", a, wide_input))
    assert "neither a directory" in one_line_error(run_cli("nnstd", "pair", a, tmp_path / "missing"))
    assert "must be an integer" in one_line_error(run_cli("nnstd", "pair", a, "run@last"))
    assert "'quick' is not one of 'exact', 'sparse'" in one_line_error(
        run_cli("nnstd", "pair", a, a, "--solver", "quick"), status=2
    )
    assert "at least two" in one_line_error(run_cli("nnstd", "matrix", a))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "weight_l" in one_line_error(run_cli("nnstd", "pair", a, empty))


def _store_run(store, run_id, steps=4, seed=0):
    rng = np.random.default_rng(seed)
    store.create_run(RunInfo(run_id=run_id, architecture=[30, 20, 15, 4], method="set"))
    nets = []
    net = make_network(seed)
    for step in range(steps):
        nets.append(net)
        store.write_snapshot(Snapshot(run_id=run_id, step=step, layers=net, epoch=step))
        # evolve: drop some connections and grow others
        net = [
            sp.csr_matrix(
                ((m.toarray() != 0) & (rng.random(m.shape) > 0.3) | (rng.random(m.shape) < 0.05)).astype(np.float32)
            )
            for m in net
        ]
    return nets


@pytest.mark.neo4j
def test_pair_reads_run_at_step_from_the_store(store, cli, tmp_path):
    nets = _store_run(store, "r1")
    r = cli("nnstd", "pair", "r1@0", "r1@3", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == nnstd(nets[0], nets[3]).to_dict()
    mixed = cli("nnstd", "pair", write_dir(tmp_path, "d", nets[1]), "r1@2", "--json")
    assert json.loads(mixed.stdout) == nnstd(nets[1], nets[2]).to_dict()
    assert "r1" in one_line_error(cli("nnstd", "pair", "r1@0", "r1@9"))
    assert "nope" in one_line_error(cli("nnstd", "pair", "r1@0", "nope@0"))


@pytest.mark.neo4j
@pytest.mark.parametrize("reference", ["initial", "previous"])
def test_evolution_stores_nnstd_relationships(store, cli, tmp_path, reference):
    nets = _store_run(store, "evo", steps=4, seed=5)
    plot = tmp_path / "evo.png"
    r = cli("nnstd", "evolution", "evo", "--reference", reference, "--json", "--figure", plot)
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    refs = [0, 0, 0] if reference == "initial" else [0, 1, 2]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert [row["reference_step"] for row in rows] == refs
    for row, ref in zip(rows, refs):
        expected = nnstd(nets[ref], nets[row["step"]])
        assert row["distance"] == expected.distance and row["layers"] == expected.layers
    stored = store.read(
        "MATCH (a:Snapshot {run_id: 'evo'})-[d:NNSTD]->(b:Snapshot {run_id: 'evo'}) "
        "RETURN a.step AS a, b.step AS b, d.distance AS distance, d.layers AS layers, d.method AS method ORDER BY b"
    )
    assert [(s["a"], s["b"]) for s in stored] == list(zip(refs, [1, 2, 3]))
    assert [s["distance"] for s in stored] == [row["distance"] for row in rows]
    assert all(s["method"] == "exact" for s in stored)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # running it again updates, never duplicates
    cli("nnstd", "evolution", "evo", "--reference", reference, "--json", "--figure", plot)
    assert store.read("MATCH (:Snapshot {run_id: 'evo'})-[d:NNSTD]->() RETURN count(d) AS n")[0]["n"] == 3


@pytest.mark.neo4j
def test_evolution_errors(store, cli):
    assert "ghost" in one_line_error(cli("nnstd", "evolution", "ghost"))
    _store_run(store, "single", steps=1)
    assert "at least two" in one_line_error(cli("nnstd", "evolution", "single"))
    _store_run(store, "ok", steps=2)
    assert "'first' is not one of 'initial', 'previous'" in one_line_error(
        cli("nnstd", "evolution", "ok", "--reference", "first"), status=2
    )
    from sparsetopo.errors import UsageError
    from sparsetopo.workspace import Workspace

    with pytest.raises(UsageError, match="unknown reference 'first'; choose one of: initial, previous"):
        Workspace().nnstd_evolution("ok", reference="first")
