"""Errors of the graph store: user mistakes (GraphStoreError) and damaged data (RunInconsistentError)."""

from ..errors import IntegrityError, UserError


class GraphStoreError(UserError):
    """Base of the graph store's user-facing errors."""


class ServerUnavailable(GraphStoreError):
    """The Neo4j server cannot be reached or started."""


class BlankRunIdError(GraphStoreError):
    def __init__(self, run_id):
        super().__init__(f"a run id must have a visible character; {run_id!r} has none")


def check_run_id(run_id) -> str:
    """A run id a user can see and type again: '' and '  ' are refused."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise BlankRunIdError(run_id)
    return run_id


class UnknownRunError(GraphStoreError):
    def __init__(self, run_id: str):
        super().__init__(f"there is no run '{run_id}' in the graph store (see `sparsetopo runs list`)")
        self.run_id = run_id


class UnknownSnapshotError(GraphStoreError):
    def __init__(self, run_id: str, step: int):
        super().__init__(f"run '{run_id}' has no snapshot at step {step}")


class ReadOnlyViolation(GraphStoreError):
    """A write attempted through a read-only entry point."""


class RunConflictError(GraphStoreError):
    """A write that disagrees with what the run already stores (e.g. another architecture)."""


class RunBusyError(GraphStoreError):
    """Another live process holds the run's writer lease; nothing was changed."""


class LeaseLostError(GraphStoreError):
    """This process's writer lease was taken over (it stopped heartbeating); it must stop writing."""


class RunInconsistentError(IntegrityError):
    """Stored data that contradicts the run's per-step matrices (what `runs check` looks for)."""
