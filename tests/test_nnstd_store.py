"""Every way NNSTD reaches the graph store records which snapshot played A and B, why, and how."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.queries import run_named
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j

SIZES = [12, 8, 4]


def _runs(store, ids: list[str], steps: int = 3) -> None:
    for seed, run_id in enumerate(ids, start=1):
        store.create_run(RunInfo(run_id, SIZES, method="set"))
        for snap in synthetic_run(run_id, SIZES, 0.4, 0.3, steps, seed=seed):
            store.write_snapshot(snap)


def _stored(store) -> list[dict]:
    return store.read(
        "MATCH (x:Snapshot)-[d:NNSTD]->(y:Snapshot) RETURN x.run_id + '@' + toString(x.step) AS low, "
        "y.run_id + '@' + toString(y.step) AS high, d.a AS a, d.b AS b, d.purpose AS purpose, d.method AS method, "
        "d.distance AS distance, d.layers AS layers, keys(d) AS keys"
    )


def _layers(store, ref: str):
    run, _, step = ref.rpartition("@")
    return store.read_snapshot(run, int(step)).layers


def test_every_write_path_records_orientation_purpose_and_method(store, tmp_path):
    from sparsetopo.analysis.nnstd import nnstd
    from sparsetopo.experiment import SCALES, RunSpec
    from sparsetopo.experiment_results import Findings, evolution_and_pairs, figure4
    from sparsetopo.pipelines import nnstd_evolution
    from sparsetopo.report_data import gather

    _runs(store, ["evo", "rep-a", "rep-b"])
    nnstd_evolution(store, "evo", "previous", "sparse", workers=1)
    nnstd_evolution(store, "evo", "initial", "exact", workers=1)
    gather(store, ["rep-a", "rep-b"], save=True, evolution_points=1)
    perf = [RunSpec(f"perf-{i}", "digits", "set", i, 4.0, "performance") for i in (1, 2)]
    fig4 = [RunSpec(f"fig4-{i}", "digits", "set", 0, None, "figure4", fig4_index=i) for i in range(3)]
    _runs(store, [s.run_id for s in perf + fig4])
    evolution_and_pairs(store, perf, Findings(), print, workers=1)
    scale = replace(SCALES["tiny"], fig4_report=(0, 1), fig4_count=3, fig4_density=0.3)
    figure4(store, scale, fig4, Findings(), tmp_path, workers=1)

    rows = _stored(store)
    purposes = {}
    for r in rows:
        assert {"a", "b", "purpose", "method", "distance", "layers", "computed_at"} <= set(r["keys"]), r
        assert sorted([r["a"], r["b"]]) == sorted([r["low"], r["high"]]), r
        purposes.setdefault(r["purpose"], []).append(r)
        # a and b tell the truth: recomputed in that orientation, the distance is the stored one
        again = nnstd(_layers(store, r["a"]), _layers(store, r["b"]), method=r["method"])
        assert (again.distance, again.layers) == (r["distance"], r["layers"]), r
    assert sorted(purposes) == [
        "evolution-initial",
        "evolution-previous",
        "figure4",
        "independent-final",
        "independent-initial",
        "report",
    ]
    # the two evolutions share the pair (0, 1) per method: one relationship per pair and method
    evo = [r for r in rows if r["low"].startswith("evo@")]
    assert {(r["a"], r["b"], r["method"], r["purpose"]) for r in evo} == {
        ("evo@0", "evo@1", "sparse", "evolution-previous"),
        ("evo@1", "evo@2", "sparse", "evolution-previous"),
        ("evo@2", "evo@3", "sparse", "evolution-previous"),
        ("evo@0", "evo@1", "exact", "evolution-initial"),
        ("evo@0", "evo@2", "exact", "evolution-initial"),
        ("evo@0", "evo@3", "exact", "evolution-initial"),
    }
    assert {(r["a"], r["b"]) for r in purposes["report"]} == {
        ("rep-a@0", "rep-a@3"),
        ("rep-b@0", "rep-b@3"),
        ("rep-a@3", "rep-b@3"),
    }
    assert {(r["a"], r["b"]) for r in purposes["independent-initial"]} == {("perf-1@0", "perf-2@0")}
    assert {(r["a"], r["b"]) for r in purposes["independent-final"]} == {("perf-1@3", "perf-2@3")}
    # Figure 4's matrix computes NNSTD(later, earlier), as the authors' script does
    assert {(r["a"], r["b"]) for r in purposes["figure4"]} == {
        (f"fig4-{j}@{step}", f"fig4-{i}@{step}") for step in (0, 1, 2) for i, j in [(0, 1), (0, 2), (1, 2)]
    }

    # The named query and the report read the same properties back.
    named = run_named(store, "nnstd", {"run_id": "evo", "purpose": "evolution-initial"})
    assert [(q["a"], q["b"], q["method"]) for q in named] == [("evo@0", f"evo@{t}", "exact") for t in (1, 2, 3)]
    assert len(run_named(store, "nnstd", {"run_id": "evo"})) == 6
    data = gather(store, ["rep-a", "rep-b"], compute=False)
    point = data.runs[0].evolution[0]
    assert (point["purpose"], point["a"], point["b"], point["source"]) == ("report", "rep-a@0", "rep-a@3", "stored")


def test_a_rewrite_replaces_every_property_and_a_purpose_is_required(store):
    _runs(store, ["w"], steps=1)
    store.write_nnstd("w", 1, "w", 0, 0.5, [0.5, 0.5], "exact", purpose="first")
    store.write_nnstd("w", 0, "w", 1, 0.25, [0.25, 0.25], "exact", purpose="second")
    (r,) = _stored(store)
    assert (r["a"], r["b"], r["purpose"], r["distance"]) == ("w@0", "w@1", "second", 0.25)
    for purpose in ("", "  ", None):
        with pytest.raises(ValueError, match="needs a purpose"):
            store.write_nnstd("w", 0, "w", 1, 0.25, [0.25, 0.25], "exact", purpose=purpose)
    with pytest.raises(TypeError):
        store.write_nnstd("w", 0, "w", 1, 0.25, [0.25, 0.25], "exact")
    with pytest.raises(ValueError, match="needs a method"):
        store.write_nnstd("w", 0, "w", 1, 0.25, [0.25, 0.25], "", purpose="x")
