"""`sparsetopo stats` and `sparsetopo plot` on runs in a real Neo4j."""

from __future__ import annotations

import json

import pytest

from sparsetopo.analysis.structure import snapshot_statistics
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j

SIZES = [16, 12, 10, 4]  # 16 inputs: a 4x4 "image", so the heatmap is drawn


@pytest.fixture
def run(store):
    store.create_run(RunInfo("st", SIZES))
    for snap in synthetic_run("st", SIZES, 0.3, 0.3, 4, seed=3):
        store.write_snapshot(snap)
    return "st"


def test_stats_are_stored_as_flat_properties(store, cli, run):
    r = cli("stats", run, "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["step"] for row in rows] == [0, 1, 2, 3, 4]
    for row in rows:
        net, layers = snapshot_statistics(store.read_snapshot(run, row["step"]).layers)
        for key, value in net.items():
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key
        stored = store.read(
            "MATCH (l:LayerSnapshot {run_id: $run, step: $step}) RETURN l ORDER BY l.layer",
            {"run": run, "step": row["step"]},
        )
        for k, want in enumerate(layers):
            props = stored[k]["l"]
            assert props["stat_in_degree_gini"] == pytest.approx(want["in_degree_gini"])
            assert props["stat_hub_inputs"] == want["hub_inputs"]
            assert props["stat_components"] == want["components"]
    # BI tools read them as Snapshot columns
    cols = store.read(
        "MATCH (s:Snapshot {run_id: $run, step: 4}) RETURN s.stat_kcore_max AS k, s.stat_paths_per_output AS p",
        {"run": run},
    )[0]
    assert cols["k"] == rows[-1]["kcore_max"] and len(cols["p"]) == SIZES[-1]


def test_stats_one_step_and_errors(store, cli, run):
    r = cli("stats", f"{run}@2", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["step"] == 2 and len(out["layers"]) == len(SIZES) - 1
    assert out["layers"][1]["n_in"] == SIZES[1] and out["network"]["n_neurons"] == sum(SIZES)
    r = cli("stats", f"{run}@2", "--csv")
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 1 + 1 + len(SIZES) - 1
    r = cli("stats", run)  # the human table
    assert r.exit_code == 0 and "synapses" in r.stdout
    assert str(store.list_snapshots(run)[-1]["n_synapses"]) in r.stdout and "…" not in r.stdout
    r = cli("stats", f"{run}@9")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: run 'st' has no snapshot at step 9"
    r = cli("stats", "missing")
    assert r.exit_code == 1 and r.stderr.strip().startswith("Error: there is no run 'missing'")


def test_plot_writes_labelled_pngs(store, cli, run, tmp_path):
    r = cli("plot", run, "--out", tmp_path / "figs")
    assert r.exit_code == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["accuracy_density.png", "churn.png", "degree_distributions.png", "input_degree.png"]
    for p in (tmp_path / "figs").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    (tmp_path / "file").write_text("x")
    r = cli("plot", run, "--out", tmp_path / "file")
    assert r.exit_code == 1 and "is not a directory" in r.stderr


def test_plot_without_square_input_skips_heatmap(store, cli, tmp_path):
    store.create_run(RunInfo("odd", [10, 6, 3]))
    for snap in synthetic_run("odd", [10, 6, 3], 0.5, 0.2, 2, seed=1):
        store.write_snapshot(snap)
    r = cli("plot", "odd", "--out", tmp_path)
    assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "input_degree.png").exists() and (tmp_path / "churn.png").exists()
    assert "not a square image" in r.stderr
