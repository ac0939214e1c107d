"""One writer per run: a lease stored on the (:Run) node.

A process that writes a run (snapshots, its status, a repair) first takes the run's lease: the
properties `writer_token` (random, one per SnapshotWriter), `writer_process` (host:pid:nonce),
`writer_pid`, `writer_host`, `writer_heartbeat` (server time in ms) and `writer_lease_ms`. A
thread of the holding process refreshes the heartbeat every third of the lease; a lease whose
heartbeat is older than its `writer_lease_ms` belongs to a dead (or hung) process and may be
taken over. Server time is used throughout, so clocks of different machines do not matter.

Every write transaction of a step starts with `fence`, which locks the Run node and checks the
token: a writer whose lease was taken over cannot write another byte, and a takeover cannot slip
between two statements of one transaction. Taking, fencing and refreshing all lock the Run node
first, so they are serialised by Neo4j.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading

from .errors import LeaseLostError, RunBusyError

DEFAULT_SECONDS = 45.0
# host:pid plus a nonce, so a recycled pid is another process.
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def lease_seconds() -> float:
    """The lease length a writer promises to refresh within (SPARSETOPO_WRITER_LEASE, seconds)."""
    raw = os.environ.get("SPARSETOPO_WRITER_LEASE")
    try:
        value = float(raw) if raw else DEFAULT_SECONDS
    except ValueError:
        value = DEFAULT_SECONDS
    return value if value > 0 else DEFAULT_SECONDS


# The SET ... REMOVE takes the Run node's write lock before the lease is read, so two
# processes taking the same lease are serialised and the second sees the first's token.
_ACQUIRE = (
    "MATCH (r:Run {run_id: $run}) SET r.writer_lock = true REMOVE r.writer_lock "
    "WITH r, timestamp() AS now "
    "WITH r, now, r.writer_token AS holder, r.writer_pid AS pid, r.writer_host AS host, "
    "     r.writer_heartbeat AS beat, r.writer_lease_ms AS lease_ms, "
    "     r.writer_token IS NULL OR r.writer_token = $token OR r.writer_process = $process "
    "     OR r.writer_heartbeat IS NULL OR r.writer_heartbeat + r.writer_lease_ms < now AS free "
    "FOREACH (_ IN CASE WHEN free THEN [1] ELSE [] END | "
    "  SET r.writer_token = $token, r.writer_process = $process, r.writer_pid = $pid, "
    "      r.writer_host = $host, r.writer_heartbeat = now, r.writer_lease_ms = $lease_ms) "
    "RETURN free, holder, pid, host, now - beat AS age_ms, lease_ms"
)
_FENCE = (
    "MATCH (r:Run {run_id: $run}) WHERE r.writer_token = $token "
    "SET r.writer_heartbeat = timestamp() RETURN count(r) AS n"
)
_RELEASE = (
    "MATCH (r:Run {run_id: $run}) WHERE r.writer_token = $token "
    "REMOVE r.writer_token, r.writer_process, r.writer_pid, r.writer_host, r.writer_heartbeat, r.writer_lease_ms"
)
# For readers: whether a run's writer is alive, gone (heartbeat expired), or there is none.
WRITER_STATE = (
    "CASE WHEN r.writer_token IS NULL THEN null "
    "WHEN r.writer_heartbeat + r.writer_lease_ms >= timestamp() THEN 'alive' ELSE 'gone' END"
)


class WriterLeases:
    """The leases one SnapshotWriter holds, and the thread that keeps them alive."""

    def __init__(self, driver, database: str | None = None, seconds: float | None = None):
        self.driver = driver
        self.database = database
        self.seconds = seconds or lease_seconds()
        self.token = secrets.token_hex(16)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holds(self, run_id: str) -> bool:
        return run_id in self._held

    def acquire(self, run_id: str) -> None:
        """Take the run's lease, or raise RunBusyError (nothing changed) if a live process holds it."""
        if run_id in self._held:
            return
        host, pid = socket.gethostname(), os.getpid()
        records, _, _ = self.driver.execute_query(
            _ACQUIRE,
            run=run_id,
            token=self.token,
            process=PROCESS,
            pid=pid,
            host=host,
            lease_ms=int(self.seconds * 1000),
            database_=self.database,
        )
        if not records:
            from .errors import UnknownRunError

            raise UnknownRunError(run_id)
        r = records[0]
        if not r["free"]:
            age = (r["age_ms"] or 0) / 1000
            left = max(0.0, (r["lease_ms"] or 0) / 1000 - age)
            raise RunBusyError(
                f"run '{run_id}' is being written by another process (pid {r['pid']} on {r['host']}, "
                f"last heartbeat {age:.0f} s ago), so nothing was changed; wait for it to finish, or, "
                f"if that process died, until its lease expires in {left:.0f} s"
            )
        with self._lock:
            self._held.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="writer-lease", daemon=True)
                self._thread.start()

    def fence(self, tx, run_id: str) -> None:
        """First statement of every write transaction: lock the Run, check the lease, refresh it."""
        if tx.run(_FENCE, run=run_id, token=self.token).single()["n"] != 1:
            self._held.discard(run_id)
            raise LeaseLostError(
                f"this process lost its lease on run '{run_id}' (no heartbeat for longer than the lease, "
                "and another writer took the run over); it stopped writing, and nothing of the current step was stored"
            )

    def check(self, tx, run_id: str) -> None:
        """Like fence, without taking the Run's lock (for idempotent work done on parallel sessions)."""
        records = tx.run(
            "MATCH (r:Run {run_id: $run}) WHERE r.writer_token = $token RETURN count(r) AS n",
            run=run_id,
            token=self.token,
        ).single()
        if records["n"] != 1:
            self.fence(tx, run_id)  # raises LeaseLostError

    def release(self, run_id: str) -> None:
        with self._lock:
            if run_id not in self._held:
                return
            self._held.discard(run_id)
        self.driver.execute_query(_RELEASE, run=run_id, token=self.token, database_=self.database)

    def release_all(self) -> None:
        self._stop.set()
        for run_id in list(self._held):
            try:
                self.release(run_id)
            except Exception:  # noqa: BLE001 - the server is gone: the lease expires by itself
                self._held.discard(run_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            for run_id in list(self._held):
                try:
                    records, _, _ = self.driver.execute_query(
                        _FENCE, run=run_id, token=self.token, database_=self.database
                    )
                    if records[0]["n"] != 1:
                        self._held.discard(run_id)  # taken over: the next fence refuses to write
                except Exception:  # noqa: BLE001 - a missed beat; the next one, or the lease expiry, decides
                    pass
