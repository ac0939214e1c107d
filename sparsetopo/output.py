"""Printing results: a rich table for people, JSON or CSV for machines."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable
from typing import Any


def plain(value: Any) -> Any:
    """JSON-ready form of values the driver and numpy hand back (nodes, relationships, numpy scalars)."""
    if hasattr(value, "items") and not isinstance(value, dict):  # neo4j Node / Relationship
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "nodes") and hasattr(value, "relationships"):  # Path
        return {"nodes": [plain(n) for n in value.nodes], "relationships": [plain(r) for r in value.relationships]}
    if hasattr(value, "tolist"):  # numpy
        return value.tolist()
    if hasattr(value, "iso_format"):  # neo4j temporal
        return value.iso_format()
    return value


def _finite(value: Any) -> Any:
    """NaN and ±inf as null: JSON has no such numbers (json.dumps would print NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Valid JSON for any result (NaN/±inf become null)."""
    return json.dumps(_finite(plain(value)), default=str, allow_nan=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(_cell(v) for v in value[:8])}, … ({len(value)})]"
    return str(value)


def emit(
    rows: list[dict],
    columns: Iterable[str] | None = None,
    as_json: bool = False,
    as_csv: bool = False,
    title: str | None = None,
) -> None:
    """Print rows as JSON (an array of objects), CSV, or a table."""
    rows = [plain(r) for r in rows]
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    if as_json:
        sys.stdout.write(json_text([{c: r.get(c) for c in cols} for r in rows]) + "\n")
        return
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(cols)
        for r in rows:
            writer.writerow(
                [
                    "" if r.get(c) is None else (json.dumps(r[c]) if isinstance(r.get(c), (list, dict)) else r[c])
                    for c in cols
                ]
            )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in cols))
    Console().print(table)


def emit_object(obj: dict, as_json: bool = False, title: str | None = None) -> None:
    """Print one record: JSON object, or a two-column table."""
    obj = plain(obj)
    if as_json:
        print(json_text(obj))
        return
    emit([{"field": k, "value": v} for k, v in obj.items()], ["field", "value"], title=title)
