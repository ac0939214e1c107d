"""`sparsetopo query NAME`: run one of the named Cypher queries (graphstore/queries.py)."""

from __future__ import annotations

from typing import Optional

import typer


def query(
    name: Optional[str] = typer.Argument(None, help="The query's name; see --list."),
    run: Optional[str] = typer.Option(None, "--run", "-r", help="The run id (sets parameter run_id)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="name=value, repeatable."),
    list_: bool = typer.Option(False, "--list", help="Describe every named query and its parameters."),
    as_json: bool = typer.Option(False, "--json", help="A JSON array with one object per row."),
    as_csv: bool = typer.Option(False, "--csv"),
) -> None:
    """Run a named, parameterised evolution query in a read-only transaction."""
    from sparsetopo.graphstore.queries import QUERIES, bind, run_named

    from ..context import parse_params
    from ..errors import UsageError
    from ..output import emit

    if list_:
        rows = [
            {
                "name": q.name,
                "description": q.description,
                "parameters": ", ".join(
                    p.name + ("" if p.required else f"={p.default}" if p.default is not None else "=") for p in q.params
                ),
            }
            for q in QUERIES.values()
        ]
        emit(rows, ["name", "parameters", "description"], as_json, as_csv, title="named queries")
        return
    if not name:
        raise UsageError("give a query name, or --list to see them")
    params = parse_params(param)
    if run is not None:
        params["run_id"] = run
    bound = bind(name, params)  # refuses unknown names and parameters before connecting
    from ..context import open_store

    with open_store() as store:
        if bound.get("run_id") is not None:
            store.get_run(bound["run_id"])  # an unknown run is an error, not an empty table
        rows = run_named(store, name, bound)
        if QUERIES[name].needs_summaries and bound.get("run_id") is not None:
            from sparsetopo.graphstore.evolution import summaries_missing

            if summaries_missing(store, bound["run_id"]):
                typer.echo(
                    f"note: some steps of run '{bound['run_id']}' have no lifetime summaries yet, so "
                    f"their evo columns are empty; `sparsetopo evolution {bound['run_id']}` computes them",
                    err=True,
                )
    emit(rows, None, as_json, as_csv, title=name)
