"""The graph's constraints and indexes (Neo4j 5 Community), created idempotently."""

from __future__ import annotations

STATEMENTS = [
    "CREATE CONSTRAINT run_key IF NOT EXISTS FOR (r:Run) REQUIRE r.run_id IS UNIQUE",
    "CREATE CONSTRAINT snapshot_key IF NOT EXISTS FOR (s:Snapshot) REQUIRE (s.run_id, s.step) IS UNIQUE",
    "CREATE CONSTRAINT neuron_key IF NOT EXISTS FOR (n:Neuron) REQUIRE (n.run_id, n.layer, n.index) IS UNIQUE",
    "CREATE CONSTRAINT layer_snapshot_key IF NOT EXISTS FOR (l:LayerSnapshot) REQUIRE (l.run_id, l.step, l.layer) IS UNIQUE",
    # Seeks for "appeared at t" / "vanished at t" / "alive at t".
    "CREATE INDEX synapse_born IF NOT EXISTS FOR ()-[s:SYNAPSE]-() ON (s.run_id, s.born)",
    "CREATE INDEX synapse_died IF NOT EXISTS FOR ()-[s:SYNAPSE]-() ON (s.run_id, s.died)",
    # Whole-run synapse scans seek (run_id, born) with `born IS NOT NULL`: no third SYNAPSE index to maintain.
    "CREATE INDEX neuron_run IF NOT EXISTS FOR (n:Neuron) ON (n.run_id)",
    "CREATE INDEX snapshot_run IF NOT EXISTS FOR (s:Snapshot) ON (s.run_id)",
    "CREATE INDEX layer_snapshot_run IF NOT EXISTS FOR (l:LayerSnapshot) ON (l.run_id)",
]


OBSOLETE = ["DROP INDEX synapse_run IF EXISTS"]


def ensure_schema(driver, database: str | None = None) -> None:
    for statement in OBSOLETE + STATEMENTS:
        driver.execute_query(statement, database_=database)
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
