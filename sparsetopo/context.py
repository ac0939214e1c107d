"""Opening the graph store for a command (starting the project's server on demand)."""
from __future__ import annotations


def open_store():
    from graphstore.store import GraphStore

    return GraphStore.connect()


def parse_params(pairs: list[str] | None) -> dict:
    """--param name=value pairs; values that parse as JSON (numbers, lists, true/null) keep their type."""
    import json

    from .errors import UsageError

    params = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param expects name=value, got '{pair}'")
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw
    return params
