"""Every closed set of values a command or API call accepts, as enums `--help` can list.

Defined here without importing the packages that use them (torch, numpy), so `--help` stays
instant; tests/test_api.py checks each against the list its package works with.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from .errors import UsageError


class Choice(str, Enum):
    def __str__(self) -> str:
        return self.value


class Method(Choice):
    dense = "dense"
    static = "static"
    set = "set"
    rigl = "rigl"


class Dataset(Choice):
    mnist = "mnist"
    fashion_mnist = "fashion-mnist"
    digits = "digits"


class FetchableDataset(Choice):
    mnist = "mnist"
    fashion_mnist = "fashion-mnist"


class Recipe(Choice):
    keras = "keras"
    keras_randn = "keras-randn"
    sparse_python = "sparse-python"
    rigl = "rigl"
    sparsetopo_v0 = "sparsetopo-v0"


class Init(Choice):
    er = "er"
    erk = "erk"
    uniform = "uniform"


class Backend(Choice):
    auto = "auto"
    masked = "masked"
    sparse = "sparse"


class Solver(Choice):
    """How NNSTD solves each neuron matching: exact (the authors' computation) or sparse."""

    exact = "exact"
    sparse = "sparse"


class Reference(Choice):
    initial = "initial"
    previous = "previous"


class Executor(Choice):
    """Where NNSTD pairs and experiment runs are computed: this machine's processes or a Ray cluster."""

    local = "local"
    ray = "ray"


class Scale(Choice):
    tiny = "tiny"
    small = "small"
    here = "here"
    paper = "paper"


class Part(Choice):
    all = "all"
    performance = "performance"
    figure4 = "figure4"


class Flavour(Choice):
    auto = "auto"
    full = "full"
    core = "core"


C = TypeVar("C", bound=Choice)


def choice(kind: type[C], value: C | str, what: str) -> C:
    """`value` as a member of `kind` (the member itself or its string)."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(m.value for m in kind)
        raise UsageError(f"unknown {what} '{value}'; choose one of: {names}") from None


def optional_choice(kind: type[C], value: C | str | None, what: str) -> C | None:
    return None if value is None else choice(kind, value, what)
