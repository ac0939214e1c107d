"""`sparsetopo db start|stop|status`: the project's own Neo4j server."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Manage the project's Neo4j server (or show the external one).")


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@app.command()
def start() -> None:
    """Start the server (detached, 127.0.0.1 only) and wait until Bolt answers."""
    from sparsetopo.graphstore.server import LocalServer
    from sparsetopo.graphstore.settings import external_settings

    external = external_settings()
    if external is not None:
        typer.echo(f"NEO4J_URI is set ({external.uri}); that server is used and nothing is started.")
        return
    server = LocalServer()
    if server.pid:
        typer.echo(f"already running: {server.uri} (pid {server.pid})")
        return
    typer.echo("starting Neo4j (the first start gathers the server from Maven Central)...", err=True)
    settings = server.start()
    typer.echo(f"running: {settings.uri} (pid {server.pid}); password in {server.password_file}")


@app.command()
def stop() -> None:
    """Stop the project's server."""
    from sparsetopo.graphstore.server import LocalServer

    server = LocalServer()
    typer.echo("stopped" if server.stop() else "not running")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print a JSON object.")) -> None:
    """URI, version, pid, data directory and store size of the server in use."""
    from ..output import emit_object, json_text
    from ..workspace import Workspace

    info = Workspace().db_status()
    if as_json:
        print(json_text(info))
    else:
        shown = dict(info)
        if "store_size_bytes" in shown:
            shown["store_size"] = _human_bytes(shown.pop("store_size_bytes"))
        emit_object(shown, title="Neo4j")
    if not info["running"]:
        raise typer.Exit(3)
