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

Layers larger than DENSE_LIMIT positions (n_in x n_out) are drawn without a dense tensor
(`initial_topology`), whatever the backend; smaller layers keep the dense draws above:
- exact (and erk, uniform): `count` distinct positions drawn uniformly (sample_absent: random
  positions, the ones already drawn rejected), instead of the first `count` of a randperm;
- bernoulli: the count from Binomial(n_in n_out, p), then that many distinct uniform positions:
  the same distribution as one Bernoulli(p) per position. SET's Keras createWeightsMask draws a
  dense uniform matrix and keeps the entries below p, as `er_mask` does;
- with-replacement: the same randint draws as the dense path (createSparseWeights draws
  random (row, column) pairs), so the topology is identical at every size.
"""

from __future__ import annotations

import torch

from .errors import ConfigError
from .sparse_ops import SparseStructure

INITS = ("er", "erk", "uniform", "dense")
ER_SAMPLINGS = ("exact", "bernoulli", "with-replacement")
# Layers with more positions than this are drawn and updated on their connection lists: the
# dense draws of a larger layer (a randperm of int64, a float64 uniform matrix) would no longer
# fit beside the model. Dense layers of 4096 x 4096 positions still follow the dense draws.
DENSE_LIMIT = 2**24


def dense_limit(limit: int | None = None) -> int:
    """The element count up to which a layer follows the dense draws (None: DENSE_LIMIT)."""
    return DENSE_LIMIT if limit is None else int(limit)


def fits_dense(n_out: int, n_in: int, limit: int | None = None) -> bool:
    return n_out * n_in <= dense_limit(limit)


def isin_sorted(ref: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """For each entry of x, whether it is in the sorted 1-D tensor ref."""
    if ref.numel() == 0:
        return torch.zeros(x.shape, dtype=torch.bool)
    idx = torch.searchsorted(ref, x).clamp_(max=ref.numel() - 1)
    return ref[idx] == x


def first_occurrences(x: torch.Tensor) -> torch.Tensor:
    """x without repeats, each value where it first occurs (the order of x kept)."""
    if x.numel() < 2:
        return x
    uniq, inv = torch.unique(x, return_inverse=True)
    first = torch.full((uniq.numel(),), x.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inv, torch.arange(x.numel()), reduce="amin")
    keep = torch.zeros(x.numel(), dtype=torch.bool)
    keep[first] = True
    return x[keep]


def complement(total: int, present: torch.Tensor, limit: int | None = None) -> torch.Tensor:
    """The positions of [0, total) absent from the sorted `present`, ascending (at most `limit` of them:
    the smallest); memory follows len(present) + the result, not total."""
    n_free = total - present.numel()
    want = n_free if limit is None else min(n_free, int(limit))
    if want <= 0:
        return torch.zeros(0, dtype=torch.int64)
    # The k-th absent position is k plus the number of present positions at or below it.
    # Present positions shifted by their rank (present[i] - i) give, for each gap, how many
    # absent positions precede it.
    k = torch.arange(want, dtype=torch.int64)
    before = present - torch.arange(present.numel(), dtype=torch.int64)
    return k + torch.searchsorted(before, k, right=True)


def sample_absent(total: int, k: int, present: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """k distinct positions of [0, total) that are not in the sorted `present`, uniformly, in the
    order drawn (a uniformly random ordered sample without replacement, like randperm(...)[:k]).

    Uniform positions are drawn and those present or drawn before are rejected; when the free
    positions are few (at most 4 k), they are listed and permuted instead.
    """
    n_free = total - present.numel()
    if not 0 <= k <= n_free:
        raise ConfigError(f"cannot place {k} connections among {n_free} free positions")
    if k == 0:
        return torch.zeros(0, dtype=torch.int64)
    if n_free <= 4 * k:
        free = complement(total, present)
        return free[torch.randperm(n_free, generator=generator)[:k]]
    out = torch.zeros(0, dtype=torch.int64)
    while out.numel() < k:
        need = k - out.numel()
        draw = torch.randint(0, total, (int(need * total / n_free * 1.1) + 16,), generator=generator)
        draw = draw[~isin_sorted(present, draw)]
        out = first_occurrences(torch.cat([out, draw]))[:k]
    return out


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


def random_structure(
    n_out: int, n_in: int, count: int, generator: torch.Generator, limit: int | None = None
) -> SparseStructure:
    """`count` connections at uniformly random positions: random_mask's draws for a layer that fits
    densely, sample_absent's above the limit."""
    if fits_dense(n_out, n_in, limit):
        return SparseStructure.from_mask(random_mask(n_out, n_in, count, generator))
    total = n_out * n_in
    if not 0 <= count <= total:
        raise ConfigError(f"cannot place {count} connections in a {n_in}x{n_out} layer")
    empty = torch.zeros(0, dtype=torch.int64)
    return SparseStructure(n_out, n_in, torch.sort(sample_absent(total, count, empty, generator)).values)


def er_structure(
    n_out: int, n_in: int, epsilon: float, sampling: str, generator: torch.Generator, limit: int | None = None
) -> SparseStructure:
    """An Erdős–Rényi layer as a SparseStructure: er_mask's draws for a layer that fits densely, the
    sparse samplers of the module docstring above the limit."""
    total = n_out * n_in
    if sampling == "with-replacement":  # the same draws at every size
        draws = int(epsilon * (n_in + n_out))
        return SparseStructure(n_out, n_in, torch.unique(torch.randint(0, total, (draws,), generator=generator)))
    if fits_dense(n_out, n_in, limit):
        return SparseStructure.from_mask(er_mask(n_out, n_in, epsilon, sampling, generator))
    if sampling == "exact":
        return random_structure(n_out, n_in, er_connections(epsilon, n_in, n_out), generator, limit)
    if sampling == "bernoulli":
        p = min(1.0, er_probability(epsilon, n_in, n_out))
        n = torch.tensor([float(total)], dtype=torch.float64)
        count = int(torch.binomial(n, torch.tensor([p], dtype=torch.float64), generator=generator)[0])
        return random_structure(n_out, n_in, count, generator, limit)
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


def initial_topology(
    sizes: list[int],
    init: str,
    epsilon: float,
    generator: torch.Generator,
    density: float | None = None,
    sparse_output: bool = False,
    er_sampling: str = "exact",
    limit: int | None = None,
) -> list[SparseStructure | None]:
    """Each layer's initial connections (None = dense layer), drawn densely up to `limit` positions
    (None: DENSE_LIMIT) and on connection lists above it (see the module docstring)."""
    if epsilon <= 0:
        raise ConfigError(f"epsilon must be positive; got {epsilon}")
    counts = layer_counts(sizes, init, epsilon, density, sparse_output)
    out: list[SparseStructure | None] = []
    for k, c in enumerate(counts):
        n_in, n_out = sizes[k], sizes[k + 1]
        if c is None:
            out.append(None)
        elif init == "er" and er_sampling != "exact":
            out.append(er_structure(n_out, n_in, epsilon, er_sampling, generator, limit))
        else:
            out.append(random_structure(n_out, n_in, c, generator, limit))
    return out


def initial_masks(
    sizes: list[int],
    init: str,
    epsilon: float,
    generator: torch.Generator,
    density: float | None = None,
    sparse_output: bool = False,
    er_sampling: str = "exact",
) -> list[torch.Tensor | None]:
    """initial_topology as dense bool masks (for layers that fit in memory)."""
    topology = initial_topology(sizes, init, epsilon, generator, density, sparse_output, er_sampling)
    return [None if s is None else s.mask() for s in topology]
