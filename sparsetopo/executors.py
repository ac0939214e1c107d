"""Opening the executor a command asked for (`--executor local|ray`, `--ray-address`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from .choices import Executor as Kind
from .choices import choice
from .errors import UsageError

EXECUTORS = ("local", "ray")


def executor_kind(executor: Kind | str, ray_address: str | None = None) -> Kind:
    """The executor asked for, checked with its options before any work starts."""
    kind = choice(Kind, executor, "executor")
    if kind is Kind.local and ray_address is not None:
        raise UsageError("a Ray address needs the ray executor (--executor ray)")
    return kind


@contextlib.contextmanager
def open_executor(
    executor: Kind | str = "local", ray_address: str | None = None, log: Callable[[str], None] | None = None
) -> Iterator:
    """The executor for one command: this machine's process pool, or a Ray session that is closed
    (a local instance started for it stopped) when the block ends."""
    if executor_kind(executor, ray_address) is Kind.local:
        from .analysis.executors import LocalExecutor

        yield LocalExecutor()
        return
    from .ray_executor import RayExecutor

    with RayExecutor(ray_address, log) as ray:
        yield ray
