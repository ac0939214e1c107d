"""`sparsetopo import` and `sparsetopo export`."""
import typer

import_app = typer.Typer(no_args_is_help=True, help="Import topologies into the graph store.")
export_app = typer.Typer(no_args_is_help=True, help="Export topologies from the graph store.")
