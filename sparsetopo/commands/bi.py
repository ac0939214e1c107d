"""`sparsetopo bi ...`: connecting BI tools (DBeaver, Tableau, ...) through Neo4j's JDBC driver."""

from __future__ import annotations

import typer

from ..choices import Flavour

app = typer.Typer(no_args_is_help=True, help="Connect BI tools to the graph store through Neo4j's JDBC driver.")


@app.command()
def url(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
    show_password: bool = typer.Option(False, "--show-password", help="Print the password itself."),
) -> None:
    """JDBC URL, driver class, user and password location of the server in use, and where the driver's jars are."""
    from ..output import json_text
    from ..workspace import Workspace

    info = Workspace().bi_url(show_password=show_password)
    if as_json:
        print(json_text(info))
        return
    # Plain lines, never truncated: the URL is meant to be copied into a connection dialog.
    width = max(map(len, info))
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {'' if value is None else value}")


@app.command("install-driver")
def install_driver(
    flavour: Flavour = typer.Option(
        Flavour.auto, "--flavour", help="full (with SQL translation), core, or auto (full, else core)."
    ),
) -> None:
    """Gather the Neo4j JDBC driver from Maven Central into the cache (also installs it in ~/.m2)."""
    from sparsetopo.graphstore.bi import ensure_jdbc_driver, has_sql_translator, installed_flavour

    typer.echo("gathering the Neo4j JDBC driver with Maven...", err=True)
    lib = ensure_jdbc_driver(flavour.value)
    translator = "with" if has_sql_translator(lib) else "without"
    typer.echo(f"{lib} ({installed_flavour(lib)} driver, {translator} SQL translation)")
