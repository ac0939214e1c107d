"""The Python API and the CLI are one interface: same names, same results, same errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer

import sparsetopo
from sparsetopo import choices
from sparsetopo.errors import IntegrityError, UsageError, UserError
from sparsetopo.workspace import COMMANDS, Workspace

ROOT = Path(__file__).resolve().parents[1]


def _cli_commands() -> dict:
    from sparsetopo.cli import app

    def walk(group, path):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, [*path, name])
            else:
                yield " ".join([*path, name]), command

    return dict(walk(typer.main.get_command(app), []))


# -- plain checks, no server ---------------------------------------------------------------------


def test_every_command_that_prints_data_has_its_workspace_method():
    commands = _cli_commands()
    with_json = {name for name, c in commands.items() if any(p.name == "as_json" for p in c.params)}
    assert with_json <= set(COMMANDS), with_json - set(COMMANDS)
    assert set(COMMANDS) <= set(commands), set(COMMANDS) - set(commands)
    for method in COMMANDS.values():
        assert callable(getattr(Workspace, method))


def test_options_and_keyword_arguments_have_the_same_names():
    import inspect

    # output and confirmation options have no API counterpart; repeated --param name=value (and
    # --producer layer=source) is a dict; `query --list` is ws.queries()
    cli_only = {"as_json", "as_csv", "quiet", "yes", "help", "list_"}
    renamed = {"param": "params", "producer": "producers"}
    commands = _cli_commands()
    for name, method in COMMANDS.items():
        accepted = set(inspect.signature(getattr(Workspace, method)).parameters) - {"self"}
        for param in commands[name].params:
            if param.name not in cli_only:
                keyword = renamed.get(param.name, param.name)
                assert keyword in accepted, f"`{name}` has {param.name}, ws.{method} does not"


def test_choices_are_the_values_their_packages_work_with():
    from sparsetopo.analysis.nnstd import METHODS as SOLVERS
    from sparsetopo.executors import EXECUTORS
    from sparsetopo.experiment import PARTS, SCALES
    from sparsetopo.graphstore.bi import FLAVOURS
    from sparsetopo.trainer.algorithms import METHODS
    from sparsetopo.trainer.data import DATASETS
    from sparsetopo.trainer.model import BACKENDS
    from sparsetopo.trainer.recipes import RECIPES
    from sparsetopo.trainer.sparse import INITS

    def values(kind):
        return [m.value for m in kind]

    assert values(choices.Method) == list(METHODS)
    assert values(choices.Dataset) == list(DATASETS)
    assert set(values(choices.FetchableDataset)) == set(DATASETS) - {"digits"}
    assert set(values(choices.Recipe)) == set(RECIPES)
    assert set(values(choices.Init)) == set(INITS) - {"dense"}  # dense is --method dense
    assert values(choices.Backend) == ["auto", *BACKENDS]
    assert values(choices.Solver) == list(SOLVERS)
    assert set(values(choices.Scale)) == set(SCALES)
    assert values(choices.Part) == list(PARTS)
    assert values(choices.Flavour) == ["auto", *FLAVOURS]
    assert values(choices.Executor) == list(EXECUTORS)


def test_help_lists_the_choices():
    from typer.testing import CliRunner

    from sparsetopo.cli import app

    text = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).stdout
    assert "dense|static|set|rigl" in text and "auto|masked|sparse" in text


def test_docs_cli_md_is_generated_from_the_commands():
    from sparsetopo.cli_docs import render

    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "docs/cli.md is out of date; regenerate it with `python -m sparsetopo.cli_docs > docs/cli.md`"
    )


def test_a_bad_choice_is_one_usage_error_sentence_in_the_api():
    ws = Workspace()
    with pytest.raises(UsageError, match=r"^unknown method 'sett'; choose one of: dense, static, set, rigl$"):
        ws.train(method="sett", no_store=True)
    with pytest.raises(UsageError, match="unknown NNSTD solver"):
        ws.nnstd("a", "b", solver="fast")


def test_user_errors_and_integrity_errors_are_different_kinds():
    from sparsetopo.analysis.nnstd import NNSTDError
    from sparsetopo.cli import user_error_message
    from sparsetopo.graphstore.errors import RunInconsistentError, UnknownRunError
    from sparsetopo.graphstore.evolution import LifetimeInconsistency
    from sparsetopo.graphstore.npz_io import NpzFormatError
    from sparsetopo.trainer.errors import ConfigError

    for user in (UnknownRunError("r"), NpzFormatError("bad file"), NNSTDError("shapes"), ConfigError("epochs")):
        assert isinstance(user, UserError) and user_error_message(user) == str(user)
    for damaged in (LifetimeInconsistency("x"), RunInconsistentError("y")):
        assert isinstance(damaged, IntegrityError) and not isinstance(damaged, UserError)
        assert user_error_message(damaged) is None  # the CLI shows the traceback
    assert user_error_message(RuntimeError("bug")) is None


def test_the_api_without_a_store_never_starts_a_server(tmp_path, monkeypatch):
    from sparsetopo.graphstore.npz_io import write_snapshot_dir
    from sparsetopo.graphstore.synthetic import synthetic_run

    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.setenv("SPARSETOPO_HOME", str(tmp_path / "home"))
    a, b = list(synthetic_run("x", [12, 8, 3], 0.4, 0.3, 2, seed=1))[:2]
    write_snapshot_dir(a, tmp_path / "a")
    write_snapshot_dir(b, tmp_path / "b")
    with sparsetopo.connect() as ws:
        assert ws.nnstd(tmp_path / "a", tmp_path / "a")["distance"] == 0.0
        assert 0 < ws.nnstd(str(tmp_path / "a"), str(tmp_path / "b"))["distance"] <= 1
        summary = ws.train(dataset="digits", method="set", epochs=1, hidden=[16], no_store=True, npz_dir=tmp_path / "n")
        assert ws._store is None
    assert summary["stored"] is False and len(summary["steps"]) == 2
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["epoch_000", "epoch_001", "testacc.txt"]
    assert not (tmp_path / "home" / "neo4j").exists()  # no server was created


# -- the same results through both doors ---------------------------------------------------------


def _json(cli, *args):
    r = cli(*args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.neo4j
def test_train_through_the_api_owns_the_whole_run(store, neo4j_server):
    with sparsetopo.connect(neo4j_server.settings()) as ws:
        summary = ws.train(dataset="digits", method="set", epochs=2, hidden=[20, 20], seed=3, run_id="api-set")
        assert summary["run_id"] == "api-set" and summary["stored"] is True
        shown = ws.show_run("api-set")
        assert shown["run"]["status"] == "completed"
        assert [s["step"] for s in shown["snapshots"]] == [r["step"] for r in summary["steps"]]
        rows = ws.evolution("api-set")
        assert {r["step"] for r in rows} == {0, 1, 2}
        # the latest weight of every live synapse is stored at completion (not its birth weight)
        final = store.read_snapshot("api-set", 2)
        weights = store.read(
            "MATCH ()-[s:SYNAPSE {run_id: 'api-set', layer: 0}]->() WHERE s.died IS NULL RETURN s.weight AS w"
        )
        assert sorted(r["w"] for r in weights) == pytest.approx(sorted(final.layers[0].data.tolist()))


@pytest.mark.neo4j
def test_every_json_output_is_what_the_workspace_returns(store, cli, neo4j_server, tmp_path):
    from sparsetopo.graphstore.npz_io import write_snapshot_dir
    from sparsetopo.graphstore.synthetic import synthetic_run

    snaps = list(synthetic_run("p", [24, 16, 4], 0.3, 0.3, 4, seed=9))
    for s in snaps:
        write_snapshot_dir(s, tmp_path / "run" / f"epoch_{s.step:03d}")
    with sparsetopo.connect(neo4j_server.settings()) as ws:
        imported = ws.import_npz(tmp_path / "run")  # the run is named after its directory
        n = len(snaps)
        assert imported == {"run_id": "run", "written": n, "skipped": 0, "architecture": [24, 16, 4]}
        assert _json(cli, "import", "npz", tmp_path / "run") == imported | {"written": 0, "skipped": n}
        cypher = "MATCH (s:Snapshot {run_id: $r}) RETURN s.step AS step ORDER BY step"
        pairs = [  # each API call right before its command, so both see the same store
            (("runs", "show", "run"), lambda: ws.show_run("run")),
            (("stats", "run"), lambda: ws.stats("run")),
            (("stats", "run@2"), lambda: ws.stats("run@2")),
            (("runs", "show", "run"), lambda: ws.show_run("run")),
            (("evolution", "run", "--layer", "1"), lambda: ws.evolution("run", layer=1)),
            (("query", "lifetimes", "run"), lambda: ws.query("lifetimes", "run")),
            (("cypher", cypher, "-p", "r=run"), lambda: ws.cypher(cypher, {"r": "run"})),
            (("nnstd", "pair", "run@0", "run@3"), lambda: ws.nnstd("run@0", "run@3")),
            (
                ("nnstd", "matrix", "run@0", "run@1", "run@3", "--workers", "1"),
                lambda: ws.nnstd_matrix(["run@0", "run@1", "run@3"], workers=1),
            ),
            (("nnstd", "evolution", "run", "--workers", "1"), lambda: ws.nnstd_evolution("run", workers=1)),
            (("export", "npz", "run@1", "--out", tmp_path / "e"), lambda: ws.export_npz("run@1", tmp_path / "e")),
        ]
        for args, api in pairs:
            expected = json.loads(json.dumps(api(), default=str))
            assert _json(cli, *args) == expected, args
        runs = ws.runs()
    assert [r["run_id"] for r in _json(cli, "runs", "list")] == [r["run_id"] for r in runs] == ["run"]
    nnstd = store.read("MATCH (:Snapshot)-[d:NNSTD]->(:Snapshot) RETURN d.distance AS d, d.layers AS layers")
    assert nnstd and all(np.isfinite(r["d"]) for r in nnstd)
