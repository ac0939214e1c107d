"""Test fixtures: one real, throw-away Neo4j server per test session.

The server runs from the project's own build on free ports with a temporary
home; the user's data directory is never touched (SPARSETOPO_HOME points to a
temporary directory too). NEO4J_URI and friends are exported so CLI commands
invoked by tests talk to this server.

A test that uses the server (`neo4j_server`, directly or through `store` or `cli`) is marked
`neo4j` here, so `pytest -m "not neo4j"` (`make test-fast`) runs exactly the tests that need no
server. Tests that start servers of their own (test_store_server.py) carry the mark by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

# Tests Ctrl-C the processes they start. A shell without job control starts a background job
# with SIGINT ignored, a child inherits that, and Python then never raises KeyboardInterrupt:
# with a handler here, the children start with the default action (exec resets handled signals).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="sparsetopo-tests-"))
os.environ["SPARSETOPO_HOME"] = str(_SESSION_HOME / "home")
for _var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
    os.environ.pop(_var, None)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(items):
    for item in items:
        if "neo4j_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.neo4j)


@pytest.fixture(scope="session")
def neo4j_server():
    from sparsetopo.graphstore.server import TEST_MEMORY, LocalServer, free_port

    server = LocalServer(_SESSION_HOME / "neo4j", TEST_MEMORY)
    settings = server.start(bolt_port=free_port(), http_port=free_port())
    os.environ["NEO4J_URI"] = settings.uri
    os.environ["NEO4J_USER"] = settings.user
    os.environ["NEO4J_PASSWORD"] = settings.password
    try:
        yield server
    finally:
        for var in ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"):
            os.environ.pop(var, None)
        server.stop()
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture
def store(neo4j_server):
    """A GraphStore on the session's server, emptied before the test."""
    from sparsetopo.graphstore.store import GraphStore

    gs = GraphStore.connect(neo4j_server.settings())
    with gs.driver.session() as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
    try:
        yield gs
    finally:
        gs.close()


class CliResult:
    def __init__(self, proc):
        self.exit_code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr


@pytest.fixture
def cli(neo4j_server):
    """Run the real `sparsetopo` entry point in a subprocess against the session's server."""
    import subprocess
    import sys

    def run(*args, env: dict | None = None, input: str | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "sparsetopo.cli", *map(str, args)],
            capture_output=True,
            text=True,
            env=os.environ | (env or {}),
            input=input,
            timeout=600,
        )
        return CliResult(proc)

    return run
