"""`sparsetopo query NAME [RUN]`: run one of the named Cypher queries (graphstore/queries.py)."""

from __future__ import annotations

from typing import Optional

import typer

from ._common import csv_option, emit_result, json_option, workspace


def query(
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="The query's name; see --list."),
    run: Optional[str] = typer.Argument(None, metavar="RUN", help="The run id (sets parameter run_id)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="name=value, repeatable."),
    list_: bool = typer.Option(False, "--list", help="Describe every named query and its parameters."),
    as_json: bool = json_option("an array, one object per row"),
    as_csv: bool = csv_option(),
) -> None:
    """Run a named, parameterised evolution query in a read-only transaction."""
    from ..context import parse_params
    from ..errors import UsageError

    if list_:
        from ..workspace import Workspace

        emit_result(Workspace().queries(), as_json, as_csv, ["name", "parameters", "description"], "named queries")
        return
    if not name:
        raise UsageError("give a query name, or --list to see them")
    params = parse_params(param)
    from ..graphstore.queries import bind

    bind(name, params | ({"run_id": run} if run is not None else {}))  # refuses mistakes before connecting
    with workspace() as ws:
        rows = ws.query(name, run, params)
    emit_result(rows, as_json, as_csv, title=name)
