"""A throw-away Neo4j for benchmarks (or the server named by NEO4J_URI)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def benchmark_store():
    from sparsetopo.graphstore.server import DEFAULT_MEMORY, LocalServer, free_port
    from sparsetopo.graphstore.settings import external_settings
    from sparsetopo.graphstore.store import GraphStore

    if external_settings():
        with GraphStore.connect() as store:
            yield store
        return
    home = Path(tempfile.mkdtemp(prefix="sparsetopo-bench-"))
    server = LocalServer(home / "neo4j", DEFAULT_MEMORY)
    try:
        settings = server.start(bolt_port=free_port(), http_port=free_port())
        with GraphStore.connect(settings) as store:
            store.bench_server_pid = server.pid  # for benchmarks that read the server's CPU and GC time
            yield store
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
