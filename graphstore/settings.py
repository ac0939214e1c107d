"""Where the graph store lives: the user's data directory and the connection settings.

Precedence: values the CLI passes down, then environment variables, then defaults.
With NEO4J_URI set, that server is used and nothing is started locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ServerUnavailable


def data_home() -> Path:
    """The user's sparsetopo data directory (SPARSETOPO_HOME, else XDG data home)."""
    explicit = os.environ.get("SPARSETOPO_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "sparsetopo"


def cache_home() -> Path:
    """Where gathered jars live (shared by every instance and test session): XDG cache home."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sparsetopo"


# The project's own server runs below the user's processes by default: a training run that
# records into it then keeps its cores, and the server writes with what training leaves (a
# background writer's queue is bounded, so it catches up whenever training waits on it).
DEFAULT_SERVER_NICE = 10


def server_niceness() -> int:
    """The nice value the project's own server starts with: SPARSETOPO_SERVER_NICE (0 to 19)."""
    raw = os.environ.get("SPARSETOPO_SERVER_NICE")
    if raw is None or not raw.strip():
        return DEFAULT_SERVER_NICE
    try:
        value = int(raw)
    except ValueError:
        raise ServerUnavailable(f"SPARSETOPO_SERVER_NICE must be a whole number from 0 to 19, got '{raw}'") from None
    if not 0 <= value <= 19:
        raise ServerUnavailable(f"SPARSETOPO_SERVER_NICE must be a whole number from 0 to 19, got {value}")
    return value


@dataclass(frozen=True)
class ConnectionSettings:
    uri: str
    user: str
    password: str
    database: str | None = None
    external: bool = True  # False when the project's own server provides these


def external_settings() -> ConnectionSettings | None:
    """Connection settings of a server named by NEO4J_URI, or None to use the embedded default."""
    uri = os.environ.get("NEO4J_URI")
    if not uri:
        return None
    return ConnectionSettings(
        uri=uri,
        user=os.environ.get("NEO4J_USER", "neo4j"),
        password=os.environ.get("NEO4J_PASSWORD", ""),
        database=os.environ.get("NEO4J_DATABASE") or None,
    )
