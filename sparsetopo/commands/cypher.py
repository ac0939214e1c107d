"""`sparsetopo cypher "QUERY"`: read-only Cypher with parameters."""

from __future__ import annotations

from typing import Optional

import typer


def cypher(
    query: str = typer.Argument(..., help="The Cypher query; it runs in a read-only transaction."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="name=value (JSON values keep their type)."),
    as_json: bool = typer.Option(False, "--json", help="A JSON array with one object per row."),
    as_csv: bool = typer.Option(False, "--csv"),
) -> None:
    """Run a read-only Cypher query; writes, administration commands and procedures are refused."""
    from ..context import open_store, parse_params
    from ..output import emit

    params = parse_params(param)
    with open_store() as store:
        rows = store.query(query, params)
    emit(rows, None, as_json, as_csv)
