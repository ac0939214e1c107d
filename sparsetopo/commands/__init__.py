"""One module per command group; each defines `app` (a typer.Typer) or plain command functions."""
