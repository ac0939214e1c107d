"""`sparsetopo cypher "QUERY"`: read-only Cypher with parameters."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import csv_option, emit_result, json_option, workspace


def cypher(
    query: str = typer.Argument(..., metavar="QUERY", help="The Cypher query; it runs in a read-only transaction."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="name=value (JSON values keep their type)."),
    as_json: bool = json_option("an array, one object per row"),
    as_csv: bool = csv_option(),
) -> None:
    """Run a read-only Cypher query; writes, administration commands and procedures are refused."""
    from ..context import parse_params

    params = parse_params(param)
    with workspace() as ws:
        rows = ws.cypher(query, params)
    emit_result(rows, as_json, as_csv)
