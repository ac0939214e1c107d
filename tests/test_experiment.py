"""`sparsetopo experiment paper` end to end at the tiny scale (digits), and its pure parts."""

import json

from sparsetopo.experiment import SCALES, figure4_masks, plan


def test_figure4_masks_change_one_percent_each_step():
    series = figure4_masks([64, 50, 40, 10], density=0.2, count=4, change=0.01, seed=7)
    assert len(series) == 4
    for prev, nxt in zip(series, series[1:]):
        assert prev[-1] is None and nxt[-1] is None  # the output layer stays dense
        for a, b in zip(prev[:-1], nxt[:-1]):
            assert a.sum() == b.sum()  # same number of connections
            moved = int((a & ~b).sum())
            assert moved == max(1, round(0.01 * int(a.sum())))
    assert int(series[0][0].sum()) == round(0.2 * 64 * 50)


def test_plan_covers_methods_seeds_and_epsilons():
    scale = SCALES["small"]
    specs = plan(scale)
    perf = [s for s in specs if s.part == "performance"]
    assert len(perf) == len(scale.datasets) * len(scale.seeds) * (1 + 2 * len(scale.epsilons))
    assert len([s for s in specs if s.part == "figure4"]) == 10
    assert len({s.run_id for s in specs}) == len(specs)
    assert {s.seed for s in specs if s.part == "figure4"} == {0}  # the ten differ only by their start
    assert plan(scale, "figure4") == [s for s in specs if s.part == "figure4"]
    # changing one part's definition keeps the other part's run ids (and so its stored runs)
    from dataclasses import replace

    longer = plan(replace(scale, fig4_epochs=scale.fig4_epochs + 1))
    assert [s.run_id for s in longer if s.part == "performance"] == [s.run_id for s in perf]
    assert not {s.run_id for s in longer if s.part == "figure4"} & {s.run_id for s in specs}


def test_tiny_experiment_stores_everything_and_resumes(store, cli, tmp_path):
    out = tmp_path / "paper"
    r = cli("experiment", "paper", "--scale", "tiny", "--out", out, "--workers", "1")
    assert r.exit_code == 0, r.stderr
    results = (out / "results.md").read_text()
    verdicts = ("**held**", "**did not hold**", "**inconclusive at this budget**")
    assert sum(results.count(v) for v in verdicts) == 3
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "figures" / "fig4_layer0_initial.png").exists()
    summary = json.loads((out / "results.json").read_text())
    f4 = summary["figure4"]
    assert f4["dataset"] == "digits" and f4["epochs"] == 3 and f4["recipe"] == "keras-randn"
    assert set(f4["layer_mean"]) == {"0", "1", "2"} and set(f4["layer_mean"]["0"]) == {"0", "1"}
    assert set(f4["random_reference"]) == {"0", "1", "2"}
    assert f4["survival"]["0"]["0"] == 1.0 and 0 < f4["survival"]["0"]["1"] < 1
    # ten similar starts are far closer to each other than independent random topologies
    assert f4["initial_layer_mean"]["0"] < 0.5 * f4["random_reference"]["0"]
    rows = summary["finding1"]
    assert {(r["method"], r["epsilon"]) for r in rows} == {("dense", None), ("static", 4.0), ("set", 4.0)}
    assert all(r["seeds"] == 2 and r["epochs"] == 2 and 0 < r["final_acc_mean"] <= 1 for r in rows)
    runs = {x["run_id"]: x for x in json.loads(cli("runs", "list", "--json").stdout)}
    expected = {s.run_id for s in plan(SCALES["tiny"])}
    assert expected <= set(runs)
    assert all(runs[r]["status"] == "completed" for r in expected)
    purposes = {row["p"] for row in store.read("MATCH ()-[d:NNSTD]->() RETURN DISTINCT d.purpose AS p")}
    assert {"evolution-initial", "independent-initial", "independent-final", "figure4"} <= purposes
    # Figure 4's initial topologies are 1 % apart, so their stored NNSTD is small but not zero.
    init = store.read("MATCH (a:Snapshot {step: 0})-[d:NNSTD {purpose: 'figure4'}]->(b) RETURN d.distance AS d")
    assert len(init) == 3  # the pairs of the three initial topologies
    assert init and all(0 < row["d"] < 0.2 for row in init)

    # A second run skips every completed run; a run left 'running' is trained again.
    again = next(
        s.run_id for s in plan(SCALES["tiny"]) if s.method == "set" and s.seed == 2 and s.part == "performance"
    )
    store.write("MATCH (r:Run {run_id: $r}) SET r.status = 'running'", {"r": again})
    r = cli("experiment", "paper", "--scale", "tiny", "--out", out, "--workers", "1")
    assert r.exit_code == 0, r.stderr
    trained = [line for line in r.stderr.splitlines() if line.startswith("trained ")]
    assert len(trained) == 1 and again in trained[0]


def test_unknown_scale_is_one_sentence(cli, tmp_path):
    r = cli("experiment", "paper", "--scale", "huge", "--out", tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "Error: Invalid value for '--scale': 'huge' is not one of 'tiny', 'small', 'here', 'paper' "
        "(see `python -m sparsetopo.cli experiment paper --help`)."
    )
