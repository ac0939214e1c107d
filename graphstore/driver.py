"""The one place a neo4j driver is created."""

from __future__ import annotations

from .settings import ConnectionSettings

# Names of the driver's errors that mean the server went away (killed, stopped, network gone).
SERVER_GONE = frozenset({"ServiceUnavailable", "SessionExpired", "IncompleteCommit"})


def server_gone(exc: BaseException) -> bool:
    """Whether an error means the server stopped answering (by type name: neo4j is imported lazily)."""
    return type(exc).__module__.split(".")[0] == "neo4j" and type(exc).__name__ in SERVER_GONE


def open_driver(settings: ConnectionSettings):
    from neo4j import GraphDatabase

    # Server notifications (e.g. "label does not exist yet" on an empty store) are noise for users.
    return GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password), notifications_min_severity="OFF")
