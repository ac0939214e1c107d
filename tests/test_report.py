"""`sparsetopo report`: one self-contained HTML file with what exists for the runs."""

from __future__ import annotations

import base64
import html
import re

import pytest
from report_fixtures import populate
from typer.testing import CliRunner

from sparsetopo.cli import app
from sparsetopo.report_data import gather, sample_steps

runner = CliRunner()


def _report(tmp_path, *args):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def _section(page: str, run_id: str) -> str:
    start = page.index(f'<section class="run" id="run-{run_id}">')
    return page[start : page.index("</section>", start)]


def _figures(page: str) -> dict[str, bytes]:
    found = re.findall(
        r'<figure class="plot" data-plot="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)">', page
    )
    return {name: base64.b64decode(data) for name, data in found}


def test_sample_steps_keeps_last_and_limit():
    assert sample_steps([0, 1, 2, 3], 12) == [1, 2, 3]
    picked = sample_steps(list(range(101)), 5)
    assert len(picked) == 5 and picked[0] == 1 and picked[-1] == 100
    assert sample_steps(list(range(10)), 0) == list(range(1, 10))


@pytest.mark.neo4j
def test_report_is_self_contained_and_complete(store, tmp_path):
    runs = populate(store)
    page = _report(tmp_path, *runs)
    # No network references: every src/href is inline data or an anchor.
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [
        r for r in refs if not r.startswith(("data:", "#"))
    ]
    assert not re.search(r"url\(\s*['\"]?(?!data:)", page)
    assert "<script" not in page

    figures = _figures(page)
    for run_id in runs:
        assert f"{run_id}/accuracy-density" in figures
        assert f"{run_id}/churn" in figures
        assert f"{run_id}/evolution" in figures
    assert "set-a/network-stats" in figures and "set-a/layer-stats" in figures
    assert "compare/nnstd" in figures and "compare/accuracy" in figures
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000 for png in figures.values())

    a = _section(page, "set-a")
    assert "<td>method</td><td>set</td>" in a and "<td>learning_rate</td><td>0.01</td>" in a
    assert "sparsetopo runs show set-a" in a and "sparsetopo stats set-a" in a
    b = _section(page, "set-b")
    assert "No structural statistics are stored" in b and "set-b/network-stats" not in figures
    assert "sparsetopo report set-a set-b static-c --out" in html.unescape(page)
    assert "sparsetopo nnstd matrix set-a@5 set-b@5 static-c@5" in page and "sparsetopo nnstd evolution set-b" in b


@pytest.mark.neo4j
def test_stored_nnstd_is_shown_and_missing_is_computed(store, tmp_path):
    from sparsetopo.analysis.nnstd import nnstd

    populate(store, with_stats=False)
    data = gather(store, ["set-a", "set-b", "static-c"])
    evo = {e["step"]: e for e in data.runs[0].evolution}
    assert evo[5]["distance"] == 0.123 and evo[5]["source"] == "stored"
    expected = nnstd(store.read_snapshot("set-a", 0).layers, store.read_snapshot("set-a", 3).layers)
    assert evo[3]["distance"] == pytest.approx(expected.distance) and evo[3]["source"] == "computed"
    static = data.runs[2].evolution
    assert [e["distance"] for e in static] == [0.0] * 5  # a static run never moves away from its start
    pair = next(p for p in data.pairs if {p["run_a"], p["run_b"]} == {"set-a", "set-b"})
    cross = nnstd(store.read_snapshot("set-a", 5).layers, store.read_snapshot("set-b", 5).layers)
    assert pair["distance"] == pytest.approx(cross.distance) and pair["distance"] > 0
    # Nothing was written: only the one stored relationship exists.
    assert store.read("MATCH ()-[d:NNSTD]->() RETURN count(d) AS n")[0]["n"] == 1


@pytest.mark.neo4j
def test_no_nnstd_and_save_nnstd(store, tmp_path):
    populate(store, with_stats=False)
    page = _report(tmp_path, "set-b", "--no-nnstd")
    assert "set-b/evolution" not in _figures(page)
    assert "No NNSTD against the initial topology is stored" in page
    _report(tmp_path, "set-a", "set-b", "--save-nnstd", "--evolution-points", "2")
    rows = store.read(
        "MATCH (a:Snapshot)-[d:NNSTD]->(b:Snapshot) RETURN a.run_id AS ra, a.step AS sa, "
        "b.run_id AS rb, b.step AS sb, d.method AS m ORDER BY ra, sa, rb, sb"
    )
    keys = {(r["ra"], r["sa"], r["rb"], r["sb"]) for r in rows}
    assert ("set-b", 0, "set-b", 5) in keys and ("set-a", 5, "set-b", 5) in keys
    assert len(rows) == 1 + 1 + 2 + 1  # stored before, set-a's other sampled point, set-b's two, the cross pair


@pytest.mark.neo4j
def test_report_errors(store, tmp_path):
    populate(store, with_stats=False)
    result = runner.invoke(app, ["report", "nope", "--out", str(tmp_path / "r.html")])
    assert result.exit_code != 0 and "there is no run 'nope'" in str(result.exception)
    result = runner.invoke(app, ["report", "set-a", "--out", str(tmp_path)])
    assert "is a directory" in str(result.exception)
    result = runner.invoke(app, ["report", "set-a", "--out", str(tmp_path / "r.html"), "--nnstd-solver", "fast"])
    assert result.exit_code == 2 and "--nnstd-solver" in result.output  # the parser's usage error
    assert not (tmp_path / "r.html").exists()


@pytest.mark.neo4j
def test_report_error_is_one_sentence_on_stderr(neo4j_server, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "report", "missing-run", "--out", str(tmp_path / "x.html")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: there is no run 'missing-run'")
    assert "Traceback" not in proc.stderr


@pytest.mark.neo4j
def test_run_without_snapshots(store, tmp_path):
    from sparsetopo.graphstore.model import RunInfo

    store.create_run(RunInfo("empty", [4, 2], method="set"))
    page = _report(tmp_path, "empty")
    assert "This run has no snapshots yet." in page and not _figures(page)


@pytest.mark.neo4j
def test_runs_that_nnstd_cannot_compare(store, tmp_path):
    from sparsetopo.graphstore.model import RunInfo
    from sparsetopo.graphstore.synthetic import synthetic_run

    populate(store, with_stats=False)
    store.create_run(RunInfo("wide", [20, 10, 4], method="set"))
    for snap in synthetic_run("wide", [20, 10, 4], 0.3, 0.2, 2, seed=9):
        store.write_snapshot(snap)
    data = gather(store, ["set-a", "wide"])
    (pair,) = data.pairs
    assert pair["distance"] is None and pair["source"].startswith("not comparable")
    page = _report(tmp_path, "set-a", "wide")
    assert "No NNSTD between the final snapshots is stored" in page and "set-a and wide: not comparable" in page
    assert "wide/evolution" in _figures(page)
