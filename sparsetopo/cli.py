"""The `sparsetopo` command line.

Each command group lives in sparsetopo/commands/<group>.py and imports its heavy
libraries (torch, igraph, neo4j) inside the command bodies, so `--help` stays fast.
User mistakes surface as sparsetopo.errors.UserError; `main` turns them into one
sentence on stderr and a non-zero exit status. Damaged data (IntegrityError) and bugs
keep their traceback.
"""

from __future__ import annotations

import sys

import typer

from .commands import bi, cypher, data, db, evolution, experiment, io, nnstd, plot, query, report, runs, stats, train

app = typer.Typer(
    name="sparsetopo",
    help="Study how sparse neural networks are wired and how that wiring evolves during training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(runs.app, name="runs")
app.add_typer(io.import_app, name="import")
app.add_typer(io.export_app, name="export")
app.command("cypher")(cypher.cypher)
app.command("train")(train.train)
app.add_typer(data.app, name="data")
app.command("stats")(stats.stats)
app.command("evolution")(evolution.evolution)
app.command("query")(query.query)
app.command("plot")(plot.plot)
app.command("report")(report.report)
app.add_typer(bi.app, name="bi")
app.add_typer(nnstd.app, name="nnstd")
app.add_typer(experiment.app, name="experiment")


def user_error_message(exc: BaseException) -> str | None:
    """The one-sentence message for an error a user can cause, or None for a bug or damaged data
    (an IntegrityError), whose traceback is shown."""
    from .errors import UserError

    if isinstance(exc, UserError):
        return str(exc)
    if type(exc).__module__.split(".")[0] == "neo4j":
        from .graphstore.driver import server_gone

        name = type(exc).__name__
        if server_gone(exc):
            return (
                f"cannot reach the Neo4j server, or it stopped answering ({name}); start it with "
                "`sparsetopo db start`: every step a run committed before is complete, and "
                "`sparsetopo runs check RUN` verifies it"
            )
        if name in {"AuthError", "Unauthorized"}:
            return "Neo4j refused the credentials; check NEO4J_USER / NEO4J_PASSWORD"
        if name == "CypherSyntaxError":
            return f"Cypher syntax error: {getattr(exc, 'message', exc)}"
        if name in {"ClientError", "ConstraintError", "TransientError", "DatabaseError"}:
            return f"Neo4j error: {getattr(exc, 'message', exc)}"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return f"{exc.strerror}: {exc.filename}"
    return None


def main() -> None:
    import logging

    from typer._click import exceptions as click_errors

    # The driver logs every retry of a transaction and every lost connection; the error that
    # ends them is what the user needs, as one sentence.
    logging.getLogger("neo4j").setLevel(logging.CRITICAL)
    try:
        # Not standalone: usage errors come here and are printed as one sentence, like ours.
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        message = exc.format_message().replace("Value error, ", "").rstrip(".")
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"Error: {message}{hint}.", err=True)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        typer.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted; nothing was changed.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        sentence = user_error_message(exc)
        if sentence is None:
            raise
        typer.echo(f"Error: {sentence}", err=True)
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C into exit status 130
        import signal

        # More Ctrl-C while the interpreter shuts down would kill it by the signal (status -2, not 130).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        typer.echo("interrupted; everything stored so far is complete.", err=True)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
