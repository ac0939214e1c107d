"""The one place a neo4j driver is created."""
from __future__ import annotations

from .settings import ConnectionSettings


def open_driver(settings: ConnectionSettings):
    from neo4j import GraphDatabase

    # Server notifications (e.g. "label does not exist yet" on an empty store) are noise for users.
    return GraphDatabase.driver(
        settings.uri, auth=(settings.user, settings.password), notifications_min_severity="OFF"
    )
