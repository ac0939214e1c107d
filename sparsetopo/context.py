"""Opening the graph store for a command (starting the project's server on demand)."""

from __future__ import annotations

import typer


def open_store():
    from sparsetopo.graphstore.store import GraphStore

    return GraphStore.connect()


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # Neo4j's integers


def check_int64(value, what: str):
    """`value`, or UsageError if it holds an integer Neo4j cannot store (the driver would raise
    OverflowError while packing it)."""
    from .errors import UsageError

    if isinstance(value, dict):
        for v in value.values():
            check_int64(v, what)
    elif isinstance(value, list):
        for v in value:
            check_int64(v, what)
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        raise UsageError(f"{what} is {value}, beyond the 64-bit integers Neo4j stores (-2^63 to 2^63-1)")
    return value


def int64_option(param: typer.CallbackParam, value):
    """Typer callback for integer options that reach Neo4j."""
    return value if value is None else check_int64(value, "/".join(param.opts))


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
        check_int64(params[name], f"parameter '{name}'")
    return params
