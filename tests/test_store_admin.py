"""The read-only `cypher` command cannot administer the server, and LOAD CSV reaches neither
files nor the network (issue 12, item 8). Against the session's real server; the import that an
administration command once killed runs in another process."""

import http.server
import subprocess
import threading

import pytest
from test_store_faults import _cli, _during_import, _env, _npz_run, _one_line_error, assert_consistent

from sparsetopo.graphstore.cypher_guard import AdministrationRefused

pytestmark = pytest.mark.neo4j

REFUSED = [
    "SHOW TRANSACTIONS",
    "SHOW TRANSACTIONS YIELD transactionId AS txId, currentQuery WHERE currentQuery CONTAINS 'SYNAPSE' "
    "TERMINATE TRANSACTIONS txId",
    "terminate transactions 'neo4j-transaction-1'",
    "CALL dbms.killConnections(['bolt-1'])",
    "CALL `dbms`.`killConnection`('bolt-1')",
    "MATCH (n) CALL { CALL dbms.listConnections() YIELD connectionId RETURN connectionId } RETURN connectionId",
    "CALL db.createLabel('Evil')",
    "CALL db.clearQueryCaches()",
    "SHOW USERS",
    "USE system SHOW DATABASES",
    "ALTER USER neo4j SET PASSWORD 'x'",
]


@pytest.mark.parametrize("query", REFUSED)
def test_administration_commands_and_procedures_are_refused(store, query):
    with pytest.raises(AdministrationRefused) as exc:
        store.query(query)
    assert "nothing was run" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (n) RETURN n.show AS show LIMIT 1",
        "RETURN 'SHOW TRANSACTIONS' AS s, 1 AS terminate // CALL dbms.killConnections()",
        "CALL db.labels() YIELD label RETURN label",
        "MATCH (n) CALL (n) { RETURN n.index AS i } RETURN i LIMIT 1",
    ],
)
def test_ordinary_reads_still_run(store, query):
    store.query(query)


def test_terminate_transactions_through_cypher_cannot_kill_a_running_import(store, tmp_path):
    snaps = _npz_run(tmp_path / "run", "victim", steps=24, sizes=(120, 80, 10))  # outlasts the attack's start
    attack, _, err, code = _during_import(
        store,
        tmp_path / "run",
        "victim",
        lambda: subprocess.run(_cli("cypher", REFUSED[1]), capture_output=True, text=True, env=_env(), timeout=300),
    )
    assert "administration command" in _one_line_error(attack)
    assert code == 0, err
    assert store.get_run("victim")["status"] == "completed"
    assert_consistent(store, "victim", snaps)


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        body = b"a,b\n1,2\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _cypher(*args):
    return subprocess.run(_cli("cypher", *args), capture_output=True, text=True, env=_env(), timeout=300)


def test_load_csv_reaches_neither_the_network_nor_the_file_system(store, neo4j_server):
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/x.csv"
        r = _cypher("LOAD CSV FROM $url AS row RETURN row", "-p", f'url="{url}"')
        _one_line_error(r)
        assert _Counting.hits == 0
    finally:
        httpd.shutdown()
    (neo4j_server.home / "import" / "x.csv").write_text("a,b\n1,2\n")
    for url in ("file:///x.csv", f"file://{neo4j_server.password_file}"):
        r = _cypher("LOAD CSV FROM $url AS row RETURN row", "-p", f'url="{url}"')
        _one_line_error(r)
        assert neo4j_server.password() not in r.stdout + r.stderr
