"""The graph store: topology model, Neo4j server lifecycle, schema, writer, reader, named queries, npz I/O.

Heavy modules (the neo4j driver) are imported by the submodules that need them, not here.
"""

from .model import RunInfo, Snapshot, TopologyError  # noqa: F401
