"""sparsetopo: the application layer (Typer CLI, pipelines) over graphstore, trainer and analysis."""

__version__ = "0.1.0"
