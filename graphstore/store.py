"""GraphStore: the Python API of the graph store (the CLI is a thin layer over it)."""

from __future__ import annotations

import time
from typing import Any

from . import reader
from .errors import ReadOnlyViolation, RunConflictError, ServerUnavailable, check_run_id
from .model import RunInfo, Snapshot
from .schema import ensure_schema
from .settings import ConnectionSettings, external_settings
from .writer import SnapshotWriter

_RUN_FIELDS = ("name", "method", "dataset", "epsilon", "zeta", "seed", "status")


def resolve_settings(settings: ConnectionSettings | None = None, start: bool = True) -> ConnectionSettings:
    """Explicit settings, else NEO4J_URI from the environment, else the project's own server (started on demand)."""
    if settings is not None:
        return settings
    external = external_settings()
    if external is not None:
        return external
    from .server import LocalServer

    server = LocalServer()
    if server.pid:
        return server.settings()
    if not start:
        raise ServerUnavailable("the sparsetopo Neo4j server is not running; start it with `sparsetopo db start`")
    return server.start()


class GraphStore:
    def __init__(self, driver, database: str | None = None, settings: ConnectionSettings | None = None):
        self.driver = driver
        self.database = database
        self.settings = settings
        self.writer = SnapshotWriter(driver, database)

    @classmethod
    def connect(cls, settings: ConnectionSettings | None = None, start: bool = True, schema: bool = True) -> GraphStore:
        from neo4j.exceptions import AuthError, ServiceUnavailable

        from .driver import open_driver

        settings = resolve_settings(settings, start)
        driver = open_driver(settings)
        try:
            driver.verify_connectivity()
        except ServiceUnavailable:
            driver.close()
            raise ServerUnavailable(f"cannot reach the Neo4j server at {settings.uri}; is it running?") from None
        except AuthError:
            driver.close()
            raise ServerUnavailable(
                f"the Neo4j server at {settings.uri} rejected user '{settings.user}' and its password"
            ) from None
        store = cls(driver, settings.database, settings)
        if schema:
            ensure_schema(driver, settings.database)
        return store

    def close(self) -> None:
        try:
            self.writer.lease.release_all()  # runs left unfinished can be taken over at once
        finally:
            self.driver.close()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs ----------------------------------------------------------------------
    def create_run(self, info: RunInfo) -> dict:
        """Create the run, or return it if it exists with the same architecture."""
        check_run_id(info.run_id)
        props: dict[str, Any] = {k: v for k, v in info.config.items() if v is not None}
        props.update({k: getattr(info, k) for k in _RUN_FIELDS if getattr(info, k) is not None})
        records, _, _ = self.driver.execute_query(
            "MERGE (r:Run {run_id: $run}) "
            "ON CREATE SET r += $props, r.architecture = $arch, r.created_at = $now "
            "RETURN r.architecture AS arch",
            run=info.run_id,
            props=props,
            arch=list(info.architecture),
            now=time.time(),
            database_=self.database,
        )
        stored = list(records[0]["arch"])
        if stored != list(info.architecture):
            raise RunConflictError(
                f"run '{info.run_id}' already exists with architecture {stored}, not {list(info.architecture)}"
            )
        return self.get_run(info.run_id)

    def claim_run(self, run_id: str) -> None:
        """Become the run's one writer (its lease): RunBusyError, with nothing changed, while another
        live process writes it; a step a dead writer left incomplete is rolled back now."""
        self.get_run(run_id)
        self.writer.cursor(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run (as its writer: see claim_run); a finished run also gets the latest weight on
        its surviving synapses and its per-step lifetime summaries (graphstore.evolution), and its
        lease is given up."""
        from .evolution import ensure_evolution

        self.claim_run(run_id)
        final = status in {"completed", "interrupted", "failed"}
        if final:
            self.writer.finish(run_id)
            ensure_evolution(self, run_id)
        self.driver.execute_query(
            "MATCH (r:Run {run_id: $run}) WHERE r.writer_token = $token SET r.status = $status, r.updated_at = $now",
            run=run_id,
            status=status,
            now=time.time(),
            token=self.writer.lease.token,
            database_=self.database,
        )
        if final:
            self.writer.release(run_id)

    def get_run(self, run_id: str) -> dict:
        return reader.get_run(self.driver, run_id, self.database)

    def list_runs(self) -> list[dict]:
        return reader.list_runs(self.driver, self.database)

    def delete_run(self, run_id: str) -> dict:
        """Delete a run and everything that carries its run_id; returns counts of what went."""
        self.get_run(run_id)
        self.writer.forget(run_id)
        self.writer.lease.acquire(run_id)  # not while another process writes it; works on an inconsistent run
        counts = {}
        # Mark first: an interrupted delete leaves a run visibly 'deleting' that a second delete finishes.
        self.driver.execute_query(
            "MATCH (r:Run {run_id: $run}) SET r.status = 'deleting'", run=run_id, database_=self.database
        )
        with self.driver.session(database=self.database) as session:
            for key, query in [
                (
                    "synapses",
                    "MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run AND s.born IS NOT NULL CALL (s) { DELETE s } IN TRANSACTIONS OF 50000 ROWS",
                ),
                (
                    "nnstd",
                    "MATCH (:Snapshot {run_id: $run})-[d:NNSTD]-() CALL (d) { DELETE d } IN TRANSACTIONS OF 50000 ROWS",
                ),
                (
                    "neurons",
                    "MATCH (n:Neuron {run_id: $run}) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 20000 ROWS",
                ),
                (
                    "layer_snapshots",
                    "MATCH (l:LayerSnapshot {run_id: $run}) CALL (l) { DETACH DELETE l } IN TRANSACTIONS OF 1000 ROWS",
                ),
                (
                    "snapshots",
                    "MATCH (s:Snapshot {run_id: $run}) CALL (s) { DETACH DELETE s } IN TRANSACTIONS OF 1000 ROWS",
                ),
                ("runs", "MATCH (r:Run {run_id: $run}) DETACH DELETE r"),
            ]:
                summary = session.run(query, run=run_id).consume()
                c = summary.counters
                counts[key] = c.relationships_deleted if key in {"synapses", "nnstd"} else c.nodes_deleted
        self.writer.release(run_id)
        return counts

    # -- snapshots -----------------------------------------------------------------
    def write_snapshot(self, snapshot: Snapshot) -> bool:
        """Append a snapshot (one transaction); False if that exact step was stored already."""
        return self.writer.write(snapshot)

    def read_snapshot(self, run_id: str, step: int) -> Snapshot:
        return reader.read_snapshot(self.driver, run_id, step, self.database)

    def list_snapshots(self, run_id: str) -> list[dict]:
        return reader.list_snapshots(self.driver, run_id, self.database)

    def set_snapshot_properties(self, run_id: str, step: int, props: dict[str, Any]) -> None:
        self._set_props(
            "MATCH (x:Snapshot {run_id: $run, step: $step})", {"run": run_id, "step": step}, props, run_id, step
        )

    def set_layer_properties(self, run_id: str, step: int, layer: int, props: dict[str, Any]) -> None:
        self._set_props(
            "MATCH (x:LayerSnapshot {run_id: $run, step: $step, layer: $layer})",
            {"run": run_id, "step": step, "layer": layer},
            props,
            run_id,
            step,
        )

    def _set_props(self, match: str, keys: dict, props: dict, run_id: str, step: int) -> None:
        from .errors import UnknownSnapshotError

        records, _, _ = self.driver.execute_query(
            match + " SET x += $props RETURN count(x) AS n", keys | {"props": props}, database_=self.database
        )
        if records[0]["n"] == 0:
            if not reader.run_exists(self.driver, run_id, self.database):
                raise reader.UnknownRunError(run_id)
            raise UnknownSnapshotError(run_id, step)

    # -- NNSTD -----------------------------------------------------------------------
    def write_nnstd(
        self,
        run_a: str,
        step_a: int,
        run_b: str,
        step_b: int,
        distance: float,
        layers: list[float],
        method: str,
        *,
        purpose: str,
    ) -> None:
        """Store NNSTD(A, B) of snapshot A = (run_a, step_a) and B = (run_b, step_b), computed for `purpose`.

        One relationship per unordered pair and method, directed from the smaller (run_id, step); its
        `a` and `b` ("RUN@STEP") say which snapshot played A and which B, since tie-breaking makes
        NNSTD depend on the orientation. Writing a pair again replaces every property.
        """
        from .errors import UnknownSnapshotError

        for what, value in (("method", method), ("purpose", purpose)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"an NNSTD relationship needs a {what}, not {value!r}")
        (ra, sa), (rb, sb) = sorted([(run_a, step_a), (run_b, step_b)])
        props = {
            "distance": float(distance),
            "layers": [float(x) for x in layers],
            "method": method,
            "purpose": purpose,
            "a": f"{run_a}@{step_a}",
            "b": f"{run_b}@{step_b}",
            "computed_at": time.time(),
        }
        records, _, _ = self.driver.execute_query(
            "MATCH (a:Snapshot {run_id: $ra, step: $sa}) MATCH (b:Snapshot {run_id: $rb, step: $sb}) "
            "MERGE (a)-[d:NNSTD {method: $method}]->(b) SET d = $props RETURN count(d) AS n",
            ra=ra,
            sa=sa,
            rb=rb,
            sb=sb,
            method=method,
            props=props,
            database_=self.database,
        )
        if not records or records[0]["n"] == 0:
            for run, step in ((ra, sa), (rb, sb)):
                self.read_snapshot(run, step)  # raises the precise error
            raise UnknownSnapshotError(ra, sa)

    # -- queries -----------------------------------------------------------------------
    def read(self, query: str, params: dict[str, Any] | None = None) -> list[dict]:
        """Run Cypher in a read-only transaction; a write is refused and changes nothing."""
        from neo4j.exceptions import ClientError

        def work(tx):
            result = tx.run(query, params or {})
            keys = result.keys()
            # Record.data() and paged fetching measured ~3x slower on thousands of rows.
            return [dict(zip(keys, record.values())) for record in result]

        try:
            with self.driver.session(database=self.database, default_access_mode="READ", fetch_size=-1) as session:
                return session.execute_read(work)
        except ClientError as exc:
            code = exc.code or ""
            if (
                "AccessMode" in code
                or "ForbiddenOnReadOnlyDatabase" in code
                or "WriteOnReadOnlyAccessDbException" in code
            ):
                raise ReadOnlyViolation(
                    "the query tries to write, and this command only reads; nothing was changed"
                ) from None
            raise

    def query(self, query: str, params: dict[str, Any] | None = None) -> list[dict]:
        """A user's query: read-only, and refused (AdministrationRefused, nothing run) when it holds an
        administration command or calls a procedure that writes or administers."""
        from .cypher_guard import refuse_administration

        def mode(name: str) -> str | None:
            records, _, _ = self.driver.execute_query(
                "SHOW PROCEDURES YIELD name, mode WHERE name = $name RETURN mode", name=name, database_=self.database
            )
            return records[0]["mode"] if records else None

        refuse_administration(query, mode)
        return self.read(query, params)

    def write(self, query: str, params: dict[str, Any] | None = None) -> list[dict]:
        with self.driver.session(database=self.database) as session:
            return session.execute_write(lambda tx: [r.data() for r in tx.run(query, params or {})])
