"""The store's CLI end to end: import/export, runs, cypher, and the error paths users hit."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.graphstore.npz_io import read_snapshot_dir, write_snapshot_dir
from sparsetopo.graphstore.reader import snapshots_equal
from sparsetopo.graphstore.server import free_port
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j


def _write_run_dir(root, run_id="x", steps=3, sizes=(20, 12, 4)):
    snaps = list(synthetic_run(run_id, list(sizes), 0.3, 0.3, steps, seed=4))
    for s in snaps:
        write_snapshot_dir(s, root / f"epoch_{s.step + 1:03d}")
    (root / "testacc.txt").write_text(" ".join(str(0.5 + 0.1 * t) for t in range(len(snaps))))
    return snaps


def _one_line_error(result):
    assert result.exit_code != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_import_export_round_trip_and_runs_commands(store, cli, tmp_path):
    snaps = _write_run_dir(tmp_path / "run")
    r = cli("import", "npz", tmp_path / "run", "--run-id", "paper")
    assert r.exit_code == 0, r.stderr
    assert "imported 4 new snapshot" in r.stdout
    r = cli("import", "npz", tmp_path / "run", "--run-id", "paper")
    assert "0 new snapshot(s)" in r.stdout and "4 already stored" in r.stdout
    runs = json.loads(cli("runs", "list", "--json").stdout)
    assert [(x["run_id"], x["snapshots"]) for x in runs] == [("paper", 4)]
    shown = json.loads(cli("runs", "show", "paper", "--json").stdout)
    assert [s["epoch"] for s in shown["snapshots"]] == [1, 2, 3, 4]
    assert [s["test_accuracy"] for s in shown["snapshots"]] == pytest.approx([0.5, 0.6, 0.7, 0.8])
    for step, s in enumerate(snaps):
        out = tmp_path / f"out{step}"
        r = cli("export", "npz", f"paper@{step}", "--out", out)
        assert r.exit_code == 0, r.stderr
        again = read_snapshot_dir(out, run_id="x", step=s.step)
        assert snapshots_equal(again, s)
        for k in range(len(s.layers)):
            a = sp.load_npz(tmp_path / "run" / f"epoch_{step + 1:03d}" / f"weight_l{k}.npz")
            b = sp.load_npz(out / f"weight_l{k}.npz")
            assert a.shape == b.shape and (a != b).nnz == 0
    # The bias row is a bias, not synapses.
    n = store.read("MATCH ()-[s:SYNAPSE {run_id:'paper', born:0}]->() RETURN count(s) AS n")[0]["n"]
    assert n == snaps[0].n_synapses


def test_cypher_json_and_params(store, cli, tmp_path):
    _write_run_dir(tmp_path / "run")
    cli("import", "npz", tmp_path / "run", "--run-id", "q")
    r = cli(
        "cypher",
        "MATCH (s:Snapshot {run_id: $run}) WHERE s.step >= $from RETURN s.step AS step ORDER BY step",
        "--param",
        "run=q",
        "--param",
        "from=2",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == [{"step": 2}, {"step": 3}]
    r = cli("cypher", "MATCH (s:Snapshot {run_id: 'q'}) RETURN s.step AS step ORDER BY step LIMIT 2", "--csv")
    assert r.stdout.splitlines() == ["step", "0", "1"]


def test_write_through_cypher_is_refused_and_changes_nothing(store, cli, tmp_path):
    _write_run_dir(tmp_path / "run")
    cli("import", "npz", tmp_path / "run", "--run-id", "ro")
    before = store.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
    for query in ["CREATE (:Evil)", "MATCH (n) DETACH DELETE n", "MATCH (s:Snapshot) SET s.step = -1"]:
        line = _one_line_error(cli("cypher", query))
        assert "only reads" in line
    assert store.read("MATCH (n) RETURN count(n) AS n")[0]["n"] == before
    assert store.read("MATCH (s:Snapshot) WHERE s.step < 0 RETURN count(s) AS n")[0]["n"] == 0


def test_runs_delete(store, cli, tmp_path):
    _write_run_dir(tmp_path / "a")
    cli("import", "npz", tmp_path / "a", "--run-id", "a")
    cli("import", "npz", tmp_path / "a", "--run-id", "b")
    r = cli("runs", "delete", "a", input="n\n")
    assert r.exit_code != 0
    assert {x["run_id"] for x in json.loads(cli("runs", "list", "--json").stdout)} == {"a", "b"}
    r = cli("runs", "delete", "a", "--yes")
    assert r.exit_code == 0, r.stderr
    assert [x["run_id"] for x in json.loads(cli("runs", "list", "--json").stdout)] == ["b"]


def test_unknown_run(store, cli, tmp_path):
    for args in (
        ["runs", "show", "ghost"],
        ["runs", "delete", "ghost", "--yes"],
        ["export", "npz", "ghost@0", "--out", tmp_path / "o"],
    ):
        assert "no run 'ghost'" in _one_line_error(cli(*args))


def test_missing_and_malformed_npz(store, cli, tmp_path):
    assert "does not exist" in _one_line_error(cli("import", "npz", tmp_path / "missing", "--run-id", "m"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "weight_l0.npz").write_bytes(b"this is not a zip file")
    assert "not a readable scipy sparse" in _one_line_error(cli("import", "npz", bad, "--run-id", "m"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "neither weight_l" in _one_line_error(cli("import", "npz", empty, "--run-id", "m"))
    assert store.read("MATCH (r:Run) RETURN count(r) AS n")[0]["n"] == 0


def test_layer_shapes_that_do_not_chain(store, cli, tmp_path):
    d = tmp_path / "chain"
    d.mkdir()
    sp.save_npz(
        d / "weight_l0.npz", sp.random(11, 8, density=0.5, format="csr", dtype=np.float32)
    )  # 10 inputs + bias, 8 outputs
    sp.save_npz(d / "weight_l1.npz", sp.random(6, 3, density=0.5, format="csr", dtype=np.float32))  # expects 5 inputs
    line = _one_line_error(cli("import", "npz", d, "--run-id", "c"))
    assert "do not chain" in line
    assert store.read("MATCH (r:Run) RETURN count(r) AS n")[0]["n"] == 0


def test_server_down_is_one_clear_sentence(cli, tmp_path):
    env = {"NEO4J_URI": f"bolt://127.0.0.1:{free_port()}", "NEO4J_PASSWORD": "whatever"}
    for args in (["runs", "list"], ["cypher", "RETURN 1"]):
        line = _one_line_error(cli(*args, env=env))
        assert "cannot reach the Neo4j server" in line


def test_db_status_json_names_credentials(cli, neo4j_server):
    r = cli("db", "status", "--json", env={"NEO4J_URI": ""})
    info = json.loads(r.stdout)
    assert {"uri", "user", "password_file"} <= set(info)


def test_password_file_is_private(neo4j_server):
    import stat

    mode = stat.S_IMODE(neo4j_server.password_file.stat().st_mode)
    assert mode == 0o600
