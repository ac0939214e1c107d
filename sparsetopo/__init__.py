"""sparsetopo: how sparse neural networks are wired, and how that wiring evolves during training.

    import sparsetopo
    with sparsetopo.connect() as ws:
        summary = ws.train(dataset="digits", method="set", epochs=5, hidden=[64, 64])
        ws.evolution(summary["run_id"])

The Workspace's methods are the CLI's commands (docs/api.md); `sparsetopo.graphstore`,
`sparsetopo.trainer` and `sparsetopo.analysis` are the packages underneath.
"""

__version__ = "0.1.0"


def connect(settings=None, **options):
    """A Workspace on the graph store (NEO4J_URI, else the project's own server); see sparsetopo.workspace."""
    from .workspace import connect as _connect

    return _connect(settings, **options)


def record(model, run_id=None, *, masks=None, name=None, every=None, method=None, dataset=None, settings=None):
    """Record `model`'s topology from your own training loop (a context manager; docs/record.md).

    Opens its own connection to the graph store (`settings`, else NEO4J_URI, else the project's
    server) and closes it with the recording."""
    from .workspace import Workspace

    workspace = Workspace(settings)
    try:
        return workspace.record(
            model, run_id, masks=masks, name=name, every=every, method=method, dataset=dataset, owns_store=True
        )
    except BaseException:
        workspace.close()
        raise


__all__ = ["connect", "record", "__version__"]
