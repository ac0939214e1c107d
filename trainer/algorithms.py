"""Topology algorithms built from parts: a pruner, a grower and a schedule, configured by a recipe.

- dense:  no masks, never updated.
- static: the initial sparse topology, never updated.
- SET:    after every epoch (the last one too, or not: the recipe's `update_after_last_epoch`),
          remove the weakest positive and the weakest negative weights, then grow connections at
          uniformly random positions until the layer has its number of connections again.
- RigL:   every delta_t optimizer steps until rigl_end of training, remove the fraction f of the
          connections with the smallest magnitude and grow as many where the dense gradient of the
          current batch is largest; f = zeta/2 (1 + cos(pi t / T_end)).

The rules that decide which connections go, where new ones land and what weight they start
with are the recipe's (trainer/recipes.py); docs/trainer.md lists them against the reference
lines. Whatever the recipe, each layer keeps its number of connections, the optimizer state
(momentum) of removed and newly grown connections is zero, and the random choices come from
the generator passed in, so an update is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError
from .model import SparseMLP, draw_weights
from .recipes import RECIPES, Recipe

METHODS = ("dense", "static", "set", "rigl")
RIGL_NOISE_STD = 1e-5  # rigl/sparse_optimizers.py: generic_mask_update(noise_std=1e-5)


def _smallest(values: torch.Tensor, positions: torch.Tensor, k: int) -> torch.Tensor:
    """The k positions with the smallest values; ties go to the lower position (stable sort)."""
    if k <= 0:
        return positions[:0]
    order = torch.sort(values, stable=True).indices
    return positions[order[:k]]


# --- pruners: which connections stay -------------------------------------------------------------


def reference_thresholds(values: torch.Tensor, n_zero_entries: int, zeta: float) -> tuple[float, float]:
    """SET's two thresholds (largestNegative, smallestPositive), as both reference codes compute them.

    The references sort a value list, find the first and the last entry closest to zero
    (find_first_pos / find_last_pos) and read the thresholds at fractions zeta into the
    negative and the positive side. `values` are the connections' nonzero weights and
    `n_zero_entries` the zeros in the reference's list: the Keras code sorts the whole dense
    matrix (every absent connection is a zero), the sparse-Python code only the stored weights.
    The sorted list is never materialised: negatives, a block of zeros, positives.
    """
    neg = torch.sort(values[values < 0]).values
    pos = torch.sort(values[values > 0]).values
    n_neg, n_pos, z = len(neg), len(pos), n_zero_entries
    n = n_neg + z + n_pos
    if n == 0:
        return 0.0, 0.0

    def at(i: int) -> float:
        if i < n_neg:
            return float(neg[i])
        if i < n_neg + z:
            return 0.0
        return float(pos[i - n_neg - z])

    if z > 0:
        first, last = n_neg, n_neg + z  # first zero; one past the last zero
    else:
        full = torch.cat([neg, pos])
        mag = full.abs()
        first = int(torch.argmin(mag))  # torch.argmin, like numpy's, returns the first minimum
        last = n - int(torch.argmin(mag.flip(0)))
    largest_negative = at(int((1 - zeta) * first))
    smallest_positive = at(int(min(n - 1, last + zeta * (n - last))))
    return largest_negative, smallest_positive


class ReferenceSETPruner:
    """Both SET references: keep the weights above smallestPositive or below largestNegative."""

    def __init__(self, all_entries: bool):
        self.all_entries = all_entries

    def keep(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        conn = w[m]
        zeros = int((conn == 0).sum()) + (int((~m).sum()) if self.all_entries else 0)
        lo, hi = reference_thresholds(conn[conn != 0], zeros, fraction)
        return m & ((w > hi) | (w < lo))


class FloorPerSignPruner:
    """sparsetopo-v0: floor(f * n_pos) smallest positive and floor(f * n_neg) largest negative weights go."""

    def keep(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        pos = torch.nonzero(m & (w > 0)).squeeze(1)
        neg = torch.nonzero(m & (w < 0)).squeeze(1)
        zero = torch.nonzero(m & (w == 0)).squeeze(1)  # connections at exactly zero are the weakest
        k_pos = math.floor(fraction * (len(pos) + len(zero)))
        k_neg = math.floor(fraction * len(neg))
        from_zero = zero[: min(k_pos, len(zero))]
        removed = torch.cat([from_zero, _smallest(w[pos], pos, k_pos - len(from_zero)), _smallest(-w[neg], neg, k_neg)])
        keep = m.clone()
        keep[removed] = False
        return keep


class MagnitudePruner:
    """sparsetopo-v0's RigL: floor(f * n) connections with the smallest magnitude go."""

    def keep(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        active = torch.nonzero(m).squeeze(1)
        removed = _smallest(w[active].abs(), active, math.floor(fraction * len(active)))
        keep = m.clone()
        keep[removed] = False
        return keep


class RigLPruner:
    """SparseRigLOptimizer._get_update_op: the n_keep best of |masked weight| (+ noise) over all positions.

    n_prune = int(float32(n_ones) * drop_fraction). With noise, an absent position can outscore a
    connection whose weight is exactly 0 and be kept in its place (as in the reference).
    """

    def __init__(self, noise: bool):
        self.noise = noise

    def keep(
        self, weight: torch.Tensor, mask: torch.Tensor, fraction: float, generator: torch.Generator
    ) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        n_ones = int(m.sum())
        n_prune = int(np.float32(n_ones) * np.float32(fraction))
        score = (w * m).abs()
        if self.noise:
            score = score + torch.randn(score.shape, generator=generator) * RIGL_NOISE_STD
        # top_k puts equal scores in index order: a stable sort of the negated scores does the same.
        kept = torch.sort(-score, stable=True).indices[: n_ones - n_prune]
        keep = torch.zeros_like(m)
        keep[kept] = True
        return keep


# --- growers: where new connections land -------------------------------------------------------------


class RandomGrower:
    """SET: uniformly random positions among the candidates."""

    needs_gradient = False

    def select(
        self, candidates: torch.Tensor, k: int, generator: torch.Generator, grad: torch.Tensor | None
    ) -> torch.Tensor:
        return candidates[torch.randperm(len(candidates), generator=generator)[:k]]


class GradientGrower:
    """RigL: the candidates with the largest dense-gradient magnitude (ties: lower position first)."""

    needs_gradient = True

    def select(
        self, candidates: torch.Tensor, k: int, generator: torch.Generator, grad: torch.Tensor | None
    ) -> torch.Tensor:
        if grad is None:
            raise ValueError("gradient growth needs the dense gradient")
        return _smallest(-grad.reshape(-1)[candidates].abs(), candidates, k)


# --- schedules: when to update and by how much ------------------------------------------------------


class NeverSchedule:
    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return None

    def at_step(self, t: int) -> float | None:
        return None


class EpochSchedule:
    """After every epoch; after the last one only if the recipe says so."""

    def __init__(self, fraction: float, after_last: bool = False):
        self.fraction, self.after_last = fraction, after_last

    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return self.fraction if epoch < epochs or self.after_last else None

    def at_step(self, t: int) -> float | None:
        return None


class CosineSchedule:
    """sparsetopo-v0's RigL: t = batches seen, including this one; updates while 0 < t < t_end."""

    def __init__(self, alpha: float, delta_t: int, t_end: int):
        self.alpha, self.delta_t, self.t_end = alpha, delta_t, t_end

    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return None

    def at_step(self, t: int) -> float | None:
        if t <= 0 or t % self.delta_t or t >= self.t_end:
            return None
        return self.alpha / 2 * (1 + math.cos(math.pi * t / self.t_end))


class RigLReferenceSchedule:
    """SparseRigLOptimizer with begin_step 0: t = optimizer steps applied so far (an update step applies
    none, so it does not count); an update when t % delta_t == 0 and t <= t_end, the first one before
    any training; drop fraction = tf cosine_decay(alpha, t, t_end) = alpha/2 (1 + cos(pi min(t, t_end) / t_end))."""

    def __init__(self, alpha: float, delta_t: int, t_end: int):
        self.alpha, self.delta_t, self.t_end = alpha, delta_t, max(1, t_end)

    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return None

    def at_step(self, t: int) -> float | None:
        if t % self.delta_t or t > self.t_end:
            return None
        return self.alpha / 2 * (1 + math.cos(math.pi * min(t, self.t_end) / self.t_end))


@dataclass
class Algorithm:
    name: str
    recipe: Recipe
    pruner: object | None
    grower: object | None
    schedule: object

    @property
    def sparse(self) -> bool:
        return self.name != "dense"

    @property
    def needs_gradient(self) -> bool:
        return bool(getattr(self.grower, "needs_gradient", False))

    @property
    def counts_applied_steps(self) -> bool:
        """The schedule counts optimizer steps applied so far, not batches seen (RigL reference)."""
        return isinstance(self.schedule, RigLReferenceSchedule)


def make_algorithm(
    method: str,
    zeta: float,
    total_batches: int = 0,
    delta_t: int = 100,
    rigl_end: float = 0.75,
    recipe: Recipe | None = None,
) -> Algorithm:
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if method in ("set", "rigl") and not 0 < zeta < 1:
        raise ConfigError(f"zeta must be between 0 and 1 (exclusive); got {zeta}")
    recipe = recipe or RECIPES["rigl" if method == "rigl" else "keras"]
    if method in ("dense", "static"):
        return Algorithm(method, recipe, None, None, NeverSchedule())
    if method == "set":
        if recipe.prune_rule == "reference-thresholds":
            pruner = ReferenceSETPruner(recipe.threshold_values == "all-entries")
        else:
            pruner = FloorPerSignPruner()
        return Algorithm("set", recipe, pruner, RandomGrower(), EpochSchedule(zeta, recipe.update_after_last_epoch))
    if delta_t < 1:
        raise ConfigError(f"delta_t must be at least 1 batch; got {delta_t}")
    if not 0 < rigl_end <= 1:
        raise ConfigError(f"rigl_end must be a fraction of training in (0, 1]; got {rigl_end}")
    t_end = int(rigl_end * total_batches)
    if recipe.rigl_prune_rule == "rigl-magnitude":
        return Algorithm(
            "rigl",
            recipe,
            RigLPruner(recipe.rigl_drop_noise),
            GradientGrower(),
            RigLReferenceSchedule(zeta, delta_t, t_end),
        )
    return Algorithm("rigl", recipe, MagnitudePruner(), GradientGrower(), CosineSchedule(zeta, delta_t, t_end))


# --- one update ---------------------------------------------------------------------------------


@dataclass
class LayerChange:
    layer: int
    removed: int  # connections gone from the topology
    added: int  # connections new in the topology
    regrown_in_place: int = 0  # pruned and grown again at the same position by this update


@torch.no_grad()
def update_layer(
    weight: torch.Tensor,
    mask: torch.Tensor,
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grad: torch.Tensor | None = None,
    momentum: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Prune and regrow one layer in place; return the flat positions removed and added, and how many
    positions were pruned and grown again."""
    recipe = algorithm.recipe
    m = mask.view(-1)
    w = weight.view(-1)
    before = m.clone()
    if isinstance(algorithm.pruner, RigLPruner):
        keep = algorithm.pruner.keep(weight, mask, fraction, generator)
    else:
        keep = algorithm.pruner.keep(weight, mask, fraction)
    n_grow = int(before.sum()) - int(keep.sum())
    if recipe.regrow_positions == "any-not-kept":
        candidates = torch.nonzero(~keep).squeeze(1)
    else:  # empty-before-update: a layer too full to regrow elsewhere keeps some of what it pruned
        candidates = torch.nonzero(~before).squeeze(1)
        if n_grow > len(candidates):
            pruned = torch.nonzero(before & ~keep).squeeze(1)
            keep[pruned[len(candidates) :]] = True
            n_grow = len(candidates)
    grown = algorithm.grower.select(candidates, n_grow, generator, grad)
    new_mask = keep.clone()
    new_mask[grown] = True
    removed = torch.nonzero(before & ~new_mask).squeeze(1)
    added = torch.nonzero(~before & new_mask).squeeze(1)
    # A RigL connection dropped and grown back keeps its weight and momentum
    # (new_connections = grown & old mask == 0); SET's references regrow it from scratch.
    fresh_at = added if isinstance(algorithm.pruner, RigLPruner) else grown
    in_place = int((before[grown]).sum())
    m.copy_(new_mask)
    w[~new_mask] = 0.0
    n_in, n_out = weight.shape[1], weight.shape[0]
    w[fresh_at] = draw_weights(recipe.regrow_init, len(fresh_at), n_in, n_out, mask, generator)
    if momentum is not None:
        mom = momentum.view(-1)
        mom[~new_mask] = 0.0
        mom[fresh_at] = 0.0
    return removed, added, in_place


def update_topology(
    model: SparseMLP,
    optimizer: torch.optim.Optimizer,
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grads: list[torch.Tensor | None] | None = None,
) -> list[LayerChange]:
    changes = []
    for k, mask in enumerate(model.masks):
        if mask is None:
            continue
        weight = model.dense_weight(k)  # masked backend: the weight itself, updated in place
        momentum = model.momentum_dense(k, optimizer)
        removed, added, in_place = update_layer(
            weight,
            mask,
            algorithm,
            fraction,
            generator,
            grad=None if grads is None else grads[k],
            momentum=momentum,
        )
        model.set_layer(k, weight, optimizer, momentum)
        changes.append(LayerChange(k, len(removed), len(added), in_place))
    model.masks_changed()
    return changes
