"""`sparsetopo bi ...`: connecting BI tools (DBeaver, Tableau, ...) through Neo4j's JDBC driver."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Connect BI tools to the graph store through Neo4j's JDBC driver.")


@app.command()
def url(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
    show_password: bool = typer.Option(False, "--show-password", help="Print the password itself."),
) -> None:
    """JDBC URL, driver class, user and password location of the server in use, and where the driver's jars are."""
    from sparsetopo.graphstore.bi import connection_info
    from sparsetopo.graphstore.server import LocalServer
    from sparsetopo.graphstore.settings import external_settings

    from ..errors import UsageError
    from ..output import emit_object

    settings = external_settings()
    password_file = None
    if settings is None:
        server = LocalServer()
        if not server.bolt_port or not server.password_file.exists():
            raise UsageError("the project's Neo4j server has not been created yet; run `sparsetopo db start` first")
        settings = server.settings()
        password_file = str(server.password_file)
    info = connection_info(settings, password_file)
    if show_password:
        info["password"] = settings.password
    if as_json:
        emit_object(info, as_json=True)
        return
    # Plain lines, never truncated: the URL is meant to be copied into a connection dialog.
    width = max(map(len, info))
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {'' if value is None else value}")


@app.command("install-driver")
def install_driver(
    flavour: str = typer.Option(
        "auto", "--flavour", help="full (with SQL translation), core, or auto (full, else core)."
    ),
) -> None:
    """Gather the Neo4j JDBC driver from Maven Central into the cache (also installs it in ~/.m2)."""
    from sparsetopo.graphstore.bi import ensure_jdbc_driver, has_sql_translator, installed_flavour

    typer.echo("gathering the Neo4j JDBC driver with Maven...", err=True)
    lib = ensure_jdbc_driver(flavour)
    translator = "with" if has_sql_translator(lib) else "without"
    typer.echo(f"{lib} ({installed_flavour(lib)} driver, {translator} SQL translation)")
