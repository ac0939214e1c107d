"""Initial sparse topologies: which connections of each layer exist before training.

Masks are bool tensors in torch's Linear orientation (out, in); None means a dense layer.

- er: Erdős–Rényi with SET's epsilon, p = eps (n_in + n_out) / (n_in n_out), drawn three ways
  (`er_sampling`): `exact` gives exactly round(eps (n_in + n_out)) connections at uniformly
  random positions (capped at a full layer); `bernoulli` keeps each position with probability p
  (SET's Keras code, createWeightsMask); `with-replacement` draws int(eps (n_in + n_out))
  positions with replacement, so repeats collapse (SET's sparse-Python code, createSparseWeights).
- erk: for an MLP, Erdős–Rényi-Kernel reduces to the same per-layer scaling
  (n_in + n_out) / (n_in n_out); the scale is solved so the sparse layers together reach the
  target density, and layers that would exceed density 1 are made dense and the rest re-solved.
- uniform: every sparse layer has the same density.
- dense: no masks.
Without an explicit target density, erk and uniform use the overall density that er gives
with the same epsilon, so the methods are comparable at equal parameter counts.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

INITS = ("er", "erk", "uniform", "dense")
ER_SAMPLINGS = ("exact", "bernoulli", "with-replacement")


def er_probability(epsilon: float, n_in: int, n_out: int) -> float:
    return epsilon * (n_in + n_out) / (n_in * n_out)


def er_connections(epsilon: float, n_in: int, n_out: int) -> int:
    """The exact number of connections an ER layer gets."""
    return max(1, min(n_in * n_out, round(epsilon * (n_in + n_out))))


def random_mask(n_out: int, n_in: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """A (n_out, n_in) bool mask with exactly `count` True entries at uniformly random positions."""
    total = n_out * n_in
    if not 0 <= count <= total:
        raise ConfigError(f"cannot place {count} connections in a {n_in}x{n_out} layer")
    mask = torch.zeros(total, dtype=torch.bool)
    mask[torch.randperm(total, generator=generator)[:count]] = True
    return mask.view(n_out, n_in)


def er_mask(n_out: int, n_in: int, epsilon: float, sampling: str, generator: torch.Generator) -> torch.Tensor:
    """An Erdős–Rényi (n_out, n_in) mask drawn the way `sampling` names (see the module docstring)."""
    if sampling == "exact":
        return random_mask(n_out, n_in, er_connections(epsilon, n_in, n_out), generator)
    if sampling == "bernoulli":
        p = er_probability(epsilon, n_in, n_out)
        return torch.rand(n_out, n_in, generator=generator, dtype=torch.float64) < p
    if sampling == "with-replacement":
        draws = int(epsilon * (n_in + n_out))
        mask = torch.zeros(n_out * n_in, dtype=torch.bool)
        mask[torch.randint(0, n_out * n_in, (draws,), generator=generator)] = True
        return mask.view(n_out, n_in)
    raise ConfigError(f"unknown er-sampling '{sampling}'; choose one of: {', '.join(ER_SAMPLINGS)}")


def sparse_layer_flags(n_layers: int, sparse_output: bool) -> list[bool]:
    """Which layers are sparse: all but the output layer unless sparse_output (as in SET)."""
    return [k < n_layers - 1 or sparse_output for k in range(n_layers)]


def _er_counts(sizes: list[int], epsilon: float, flags: list[bool]) -> list[int | None]:
    return [er_connections(epsilon, sizes[k], sizes[k + 1]) if s else None for k, s in enumerate(flags)]


def _default_density(sizes: list[int], epsilon: float, flags: list[bool]) -> float:
    counts = _er_counts(sizes, epsilon, flags)
    total = sum(sizes[k] * sizes[k + 1] for k, s in enumerate(flags) if s)
    return sum(c for c in counts if c is not None) / total


def erk_counts(sizes: list[int], density: float, flags: list[bool]) -> list[int | None]:
    """Connection counts of the sparse layers under ERK at the given overall density of those layers."""
    shapes = {k: (sizes[k], sizes[k + 1]) for k, s in enumerate(flags) if s}
    budget = density * sum(a * b for a, b in shapes.values())
    dense: set[int] = set()
    while True:
        rest = {k: v for k, v in shapes.items() if k not in dense}
        remaining = budget - sum(a * b for k, (a, b) in shapes.items() if k in dense)
        # density of layer k = scale * (n_in + n_out) / (n_in n_out), so its count = scale * (n_in + n_out)
        scale = remaining / max(1, sum(a + b for a, b in rest.values()))
        over = {k for k, (a, b) in rest.items() if scale * (a + b) / (a * b) > 1}
        if not over:
            break
        dense |= over
    counts: list[int | None] = [None] * len(flags)
    for k, (a, b) in shapes.items():
        counts[k] = a * b if k in dense else max(1, min(a * b, round(scale * (a + b))))
    return counts


def layer_counts(
    sizes: list[int], init: str, epsilon: float, density: float | None, sparse_output: bool
) -> list[int | None]:
    """Connections per layer (None = dense layer) for an initial topology."""
    if init not in INITS:
        raise ConfigError(f"unknown initial topology '{init}'; choose one of: {', '.join(INITS)}")
    n_layers = len(sizes) - 1
    if init == "dense":
        return [None] * n_layers
    flags = sparse_layer_flags(n_layers, sparse_output)
    if init == "er":
        if density is not None:
            raise ConfigError("--density applies to erk and uniform topologies; er is set by --epsilon")
        return _er_counts(sizes, epsilon, flags)
    if density is None:
        density = _default_density(sizes, epsilon, flags)
    if not 0 < density <= 1:
        raise ConfigError(f"density must be in (0, 1]; got {density}")
    if init == "erk":
        return erk_counts(sizes, density, flags)
    return [max(1, round(density * sizes[k] * sizes[k + 1])) if s else None for k, s in enumerate(flags)]


def initial_masks(
    sizes: list[int],
    init: str,
    epsilon: float,
    generator: torch.Generator,
    density: float | None = None,
    sparse_output: bool = False,
    er_sampling: str = "exact",
) -> list[torch.Tensor | None]:
    if epsilon <= 0:
        raise ConfigError(f"epsilon must be positive; got {epsilon}")
    counts = layer_counts(sizes, init, epsilon, density, sparse_output)
    if init == "er" and er_sampling != "exact":
        return [
            None if c is None else er_mask(sizes[k + 1], sizes[k], epsilon, er_sampling, generator)
            for k, c in enumerate(counts)
        ]
    return [None if c is None else random_mask(sizes[k + 1], sizes[k], c, generator) for k, c in enumerate(counts)]
