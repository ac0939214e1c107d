"""BI access through Neo4j's real JDBC driver (JPype, java.sql), authentication on.

The same numbers as the Python API for a filter, an ordering and a join of Run and
Snapshot; the Cypher behind every view in graphstore/jdbc/views.json. SQL
translation and querying views by name need the driver's default translator (the
full bundle); those tests skip, saying so, when only the core driver could be gathered.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsetopo.graphstore import bi
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.synthetic import synthetic_run

pytestmark = pytest.mark.neo4j

VIEWS = json.loads(bi.VIEWS.read_text())


@pytest.fixture(scope="module")
def jdbc_lib():
    pytest.importorskip("jpype", reason="JPype1 is needed to drive the JDBC driver from Python (pip install JPype1)")
    try:
        lib = bi.ensure_jdbc_driver()
    except bi.JdbcDriverUnavailable as exc:
        pytest.skip(f"the Neo4j JDBC driver is not installed and cannot be gathered: {exc}")
    from jdbc_client import start_jvm

    start_jvm(bi.classpath(lib))
    return lib


@pytest.fixture
def runs(store):
    """Two SET-like runs and a static one, with accuracies; returns the store."""
    for run_id, method, seed in (("set-a", "set", 1), ("set-b", "set", 2), ("static-c", "static", 3)):
        store.create_run(RunInfo(run_id, [30, 12, 4], method=method, dataset="synthetic"))
        churn = 0.0 if method == "static" else 0.25
        for snap in synthetic_run(run_id, [30, 12, 4], 0.3, churn, 4, seed=seed):
            snap.metrics["train_accuracy"] = 0.1 * seed + 0.01 * snap.step
            store.write_snapshot(snap)
        store.set_run_status(run_id, "completed")
    return store


def _connect(store, sql_translation=False, password=None):
    from jdbc_client import JdbcConnection

    s = store.settings
    return JdbcConnection(
        bi.jdbc_url(s, sql_translation=sql_translation),
        s.user,
        s.password if password is None else password,
        bi.DRIVER_CLASS,
    )


def _needs_translator(lib):
    if not bi.has_sql_translator(lib):
        pytest.skip(
            "SQL translation needs org.neo4j:neo4j-jdbc-full-bundle, which this machine's Maven registry "
            "does not serve; only the core driver (Cypher) is installed"
        )


def test_jdbc_url_shape(store):
    url = bi.jdbc_url(store.settings)
    host_port = store.settings.uri.split("://", 1)[1]
    assert url.startswith(f"jdbc:neo4j://{host_port}/neo4j?enableSQLTranslation=true&viewDefinitions=file:/")
    assert url.endswith("graphstore/jdbc/views.json")


def test_wrong_password_is_refused(runs, jdbc_lib):
    # A first connection loads the driver's classes; on a busy machine that alone can outlast the
    # driver's 1 s connection-initialisation timeout, which is not what this test is about.
    with _connect(runs) as con:
        con.query("RETURN 1 AS one", [])
    for attempt in range(5):  # the 1 s initialisation timeout can still fire under load; it is retried
        with pytest.raises(Exception) as refused:
            _connect(runs, password="not-the-password")
        if "Unable to initialise connection" not in str(refused.value) or attempt == 4:
            break
    assert refused.match("unauthorized|authentication")


def test_filter_and_order_match_python_api(runs, jdbc_lib):
    expected = [(s["step"], s["n_synapses"], s["density"]) for s in runs.list_snapshots("set-b")]
    with _connect(runs) as con:
        cols, rows = con.query(
            "MATCH (s:Snapshot) WHERE s.run_id = $1 RETURN s.step AS step, s.n_synapses AS n_synapses, "
            "s.density AS density ORDER BY step DESC",
            ["set-b"],
        )
    assert cols == ["step", "n_synapses", "density"]
    assert rows == expected[::-1]
    assert len(rows) == 5


def test_join_of_run_and_snapshot_matches_python_api(runs, jdbc_lib):
    expected = sorted(
        (r["run_id"], s["step"], s["test_accuracy"], s["train_accuracy"])
        for r in runs.list_runs()
        if r.get("method") == "set"
        for s in runs.list_snapshots(r["run_id"])
    )
    with _connect(runs) as con:
        _, rows = con.query(
            "MATCH (r:Run)-[:HAS_SNAPSHOT]->(s:Snapshot) WHERE r.method = $1 "
            "RETURN r.run_id AS run_id, s.step AS step, s.test_accuracy AS test_accuracy, "
            "s.train_accuracy AS train_accuracy ORDER BY run_id, step",
            ["set"],
        )
    assert rows == expected
    assert {r[0] for r in rows} == {"set-a", "set-b"}


def _view(name):
    return next(v for v in VIEWS if v["name"] == name)


def _run_view(con, name, where="", params=None):
    """The view's Cypher the way the driver runs it: inside CALL {}, then filtered and ordered."""
    view = _view(name)
    cols = [c["name"] for c in view["columns"]]
    return con.query(
        f"CALL {{ {view['query']} }} WITH * {where} RETURN {', '.join(cols)} ORDER BY {', '.join(cols[:3])}", params
    )


def test_every_view_returns_its_declared_columns(runs, jdbc_lib):
    with _connect(runs) as con:
        for view in VIEWS:
            cols, rows = _run_view(con, view["name"])
            assert cols == [c["name"] for c in view["columns"]], view["name"]
            if view["name"] != "v_nnstd_pairs":
                assert rows, view["name"]


def _positions(matrix):
    coo = matrix.tocoo()
    return set((coo.row.astype(np.int64) * matrix.shape[1] + coo.col).tolist())


def test_churn_view_matches_the_snapshots(runs, jdbc_lib):
    snaps = [runs.read_snapshot("set-a", s["step"]) for s in runs.list_snapshots("set-a")]
    expected = []
    for prev, cur in zip([None] + snaps[:-1], snaps):
        appeared = vanished = 0
        for k, m in enumerate(cur.layers):
            now = _positions(m)
            before = _positions(prev.layers[k]) if prev else set()
            appeared += len(now - before)
            vanished += len(before - now)
        expected.append(("set-a", cur.step, appeared, vanished, cur.n_synapses))
    with _connect(runs) as con:
        _, rows = _run_view(con, "v_step_churn", "WHERE run_id = $1", ["set-a"])
    assert [r[:5] for r in rows] == expected
    assert all(r[2] > 0 for r in rows[1:])  # SET-like churn really happens
    assert rows[1][5] == pytest.approx(rows[1][2] / rows[1][4])
    with _connect(runs) as con:
        _, static = _run_view(con, "v_step_churn", "WHERE run_id = $1", ["static-c"])
    assert [r[2] for r in static[1:]] == [0] * 4


def test_layer_stats_view_shows_structural_statistics(runs, jdbc_lib):
    runs.set_layer_properties("set-b", 2, 1, {"stat_out_degree_mean": 1.25, "stat_components": 3})
    snap = runs.read_snapshot("set-b", 2)
    with _connect(runs) as con:
        cols, rows = _run_view(con, "v_layer_stats", "WHERE run_id = $1 AND step = $2", ["set-b", 2])
    by_layer = {r[cols.index("layer")]: dict(zip(cols, r)) for r in rows}
    assert sorted(by_layer) == [0, 1]
    for k, m in enumerate(snap.layers):
        assert by_layer[k]["nnz"] == m.nnz
        assert (by_layer[k]["n_in"], by_layer[k]["n_out"]) == m.shape
    assert by_layer[1]["stat_out_degree_mean"] == 1.25
    assert by_layer[1]["stat_components"] == 3
    assert by_layer[0]["stat_components"] is None


def test_nnstd_view_lists_pairs_both_ways(runs, jdbc_lib):
    runs.write_nnstd("set-b", 4, "set-a", 4, 0.625, [0.5, 0.75], "exact", purpose="report")
    runs.write_nnstd("set-a", 0, "set-a", 4, 0.25, [0.25, 0.25], "exact", purpose="evolution-initial")
    with _connect(runs) as con:
        _, rows = _run_view(con, "v_nnstd_pairs", "WHERE run_a = $1", ["set-a"])
    got = {(r[0], r[1], r[2], r[3]): tuple(r[4:]) for r in rows}
    evolution = (0.25, [0.25, 0.25], "exact", "evolution-initial", "set-a@0", "set-a@4")
    assert got == {
        ("set-a", 0, "set-a", 4): evolution,
        ("set-a", 4, "set-a", 0): evolution,
        ("set-a", 4, "set-b", 4): (0.625, [0.5, 0.75], "exact", "report", "set-b@4", "set-a@4"),
    }


def test_sql_filter_order_and_join(runs, jdbc_lib):
    _needs_translator(jdbc_lib)
    expected = [(s["step"], s["n_synapses"]) for s in runs.list_snapshots("set-a")]
    with _connect(runs, sql_translation=True) as con:
        _, rows = con.query("SELECT step, n_synapses FROM Snapshot WHERE run_id = ? ORDER BY step", ["set-a"])
        assert rows == expected
        _, joined = con.query(
            "SELECT r.run_id, s.step, s.test_accuracy FROM Run r JOIN Snapshot s USING (HAS_SNAPSHOT) "
            "WHERE r.method = ? ORDER BY r.run_id, s.step",
            ["set"],
        )
    assert joined == sorted(
        (r, s["step"], s["test_accuracy"]) for r in ("set-a", "set-b") for s in runs.list_snapshots(r)
    )


def test_sql_on_views(runs, jdbc_lib):
    _needs_translator(jdbc_lib)
    with _connect(runs, sql_translation=True) as con:
        md = con.metadata()
        rs = md.getTables(None, None, "v_%", None)
        names = set()
        while rs.next():
            names.add(str(rs.getString("TABLE_NAME")))
        rs.close()
        assert names >= {v["name"] for v in VIEWS}
        _, rows = con.query(
            "SELECT step, appeared, vanished FROM v_step_churn WHERE run_id = ? ORDER BY step", ["static-c"]
        )
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
    assert [r[1] for r in rows[1:]] == [0, 0, 0, 0]
