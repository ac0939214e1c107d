"""The named-query registry, `sparsetopo query`, and docs/cypher.md staying in step with them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sparsetopo.graphstore.queries import QUERIES, QueryError, bind

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cypher.md"


def test_every_parameter_is_a_cypher_parameter():
    for q in QUERIES.values():
        used = set(re.findall(r"\$(\w+)", q.cypher))
        assert used == {p.name for p in q.params}, q.name
        assert "{}" not in q.cypher and "%s" not in q.cypher, q.name


def test_bind_fills_defaults_and_converts_text():
    assert bind("appeared_at", {"run_id": "r", "step": "3"}) == {"run_id": "r", "step": 3, "layer": None, "limit": 100}
    assert bind("evolution", {"run_id": 7}) == {"run_id": "7", "layer": None}


@pytest.mark.parametrize(
    "name, values, message",
    [
        ("nope", {}, "there is no query named 'nope'"),
        ("evolution", {}, "query 'evolution' needs parameter 'run_id'"),
        ("evolution", {"run_id": "r", "steps": 1}, "query 'evolution' has no parameter 'steps'"),
        ("appeared_at", {"run_id": "r", "step": "three"}, "parameter 'step' of query 'appeared_at' must be an integer"),
        ("appeared_at", {"run_id": "r", "step": 1.5}, "must be an integer, not 1.5"),
    ],
)
def test_bind_errors(name, values, message):
    with pytest.raises(QueryError, match=re.escape(message)):
        bind(name, values)


def test_docs_show_every_query_verbatim():
    text = DOCS.read_text()
    for q in QUERIES.values():
        assert f"### `{q.name}`" in text, q.name
        assert q.cypher in text, (
            f"docs/cypher.md is out of date for {q.name}; regenerate it with `python -m sparsetopo.graphstore.queries > docs/cypher.md`"
        )


@pytest.mark.neo4j
def test_query_command(store, cli):
    from sparsetopo.graphstore.model import RunInfo
    from sparsetopo.graphstore.synthetic import synthetic_run

    store.create_run(RunInfo("q", [9, 6, 3]))
    for snap in synthetic_run("q", [9, 6, 3], 0.4, 0.3, 3, seed=2):
        store.write_snapshot(snap)

    r = cli("query", "--list", "--json")
    assert r.exit_code == 0, r.stderr
    assert [q["name"] for q in json.loads(r.stdout)] == list(QUERIES)

    r = cli("query", "degrees", "q", "--param", "step=2", "--json")
    assert r.exit_code == 0, r.stderr
    m = store.read_snapshot("q", 2).layers[0]
    want = {i: int(d) for i, d in enumerate((m != 0).sum(axis=1).A1) if d}
    assert {row["neuron"]: row["degree"] for row in json.loads(r.stdout)} == want

    r = cli("query", "appeared_at", "q", "-p", "step=1", "-p", "limit=3", "--csv")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "layer,source,target,weight_born,died" and len(lines) == 4

    # summaries missing: the query still answers, and says how to fill them
    r = cli("query", "lifetimes", "q", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == [] and "sparsetopo evolution q" in r.stderr
    assert cli("evolution", "q").exit_code == 0
    r = cli("query", "lifetimes", "q", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) and r.stderr == ""

    # a value that looks like Cypher stays a value
    r = cli("query", "evolution", "q' OR 1=1 //", "--json")
    assert r.exit_code == 1 and "there is no run" in r.stderr

    for args, message in [
        (("query", "nope", "q"), "Error: there is no query named 'nope'"),
        (("query", "degrees", "q"), "Error: query 'degrees' needs parameter 'step'"),
        (("query", "degrees", "q", "-p", "step"), "Error: --param expects name=value"),
        (("query", "degrees", "zz", "-p", "step=1"), "Error: there is no run 'zz'"),
        (("query",), "Error: give a query name, or --list"),
    ]:
        r = cli(*args)
        assert r.exit_code == 1, args
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), r.stderr
