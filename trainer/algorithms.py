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

Two implementations of one update, chosen by the layer's size, never by the backend:
- update_layer works on the dense (n_out, n_in) weight and mask (layers of at most
  trainer/sparse.py DENSE_LIMIT positions): the draws the tests and earlier runs fix;
- update_connections works on the connection list (sorted positions, weights, momentum), for
  larger layers, in memory that follows the connections. Pruning is the same computation on the
  same values (a pruner's `keep_connections`), so it removes exactly what update_layer removes.
  Where update_layer draws over every position, it draws the same distribution sparsely: SET's
  growth takes uniformly random free positions by rejection (sparse.sample_absent) instead of a
  randperm of all candidates; RigL's drop noise is drawn for the connections, and for the absent
  positions only their largest values, as the top order statistics of n_absent N(0, 1e-5^2)
  draws; RigL's growth scores the gradient in row blocks (top-k over blocks, the same positions
  as over the whole matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .errors import ConfigError
from .model import SparseMLP, draw_weights
from .recipes import RECIPES, Recipe
from .sparse import complement, isin_sorted, sample_absent
from .sparse_ops import LayerGradient

# RigL's gradient is scored in blocks of rows of at most this many entries above the dense limit.
GRADIENT_BLOCK_ELEMENTS = 2**24

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

    def keep_connections(
        self, values: torch.Tensor, positions: torch.Tensor, total: int, fraction: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """keep() on a connection list (values in positions order): the same thresholds, the same result."""
        zeros = int((values == 0).sum()) + (total - values.numel() if self.all_entries else 0)
        lo, hi = reference_thresholds(values[values != 0], zeros, fraction)
        return (values > hi) | (values < lo), positions[:0]


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

    def keep_connections(
        self, values: torch.Tensor, positions: torch.Tensor, total: int, fraction: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # positions are sorted, so connection indices order ties exactly as flat positions do
        keep = self.keep(values, torch.ones(values.shape, dtype=torch.bool), fraction)
        return keep, positions[:0]


class MagnitudePruner:
    """sparsetopo-v0's RigL: floor(f * n) connections with the smallest magnitude go."""

    def keep(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        active = torch.nonzero(m).squeeze(1)
        removed = _smallest(w[active].abs(), active, math.floor(fraction * len(active)))
        keep = m.clone()
        keep[removed] = False
        return keep

    def keep_connections(
        self, values: torch.Tensor, positions: torch.Tensor, total: int, fraction: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keep(values, torch.ones(values.shape, dtype=torch.bool), fraction), positions[:0]


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

    def keep_connections(
        self, values: torch.Tensor, positions: torch.Tensor, total: int, fraction: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """keep() on a connection list: (which connections stay, absent positions kept in their place).

        Without noise every absent position scores 0, as in keep(), and ties go to the lower
        position. With noise the connections get the same N(0, 1e-5^2) terms as in keep(), and the
        absent positions are represented by the largest of their n_absent noise values only
        (absent_noise_kept): the same distribution as keep()'s n_in x n_out draws, not the same draws.
        """
        n_ones = values.numel()
        n_keep = n_ones - int(np.float32(n_ones) * np.float32(fraction))
        n_absent = total - n_ones
        score = values.abs()
        if self.noise:
            score = score + torch.randn(score.shape, generator=generator) * RIGL_NOISE_STD
        order = torch.sort(-score, stable=True).indices
        keep = torch.zeros(n_ones, dtype=torch.bool)
        if self.noise:
            j = absent_noise_kept(score[order], n_keep, n_absent, generator)
            keep[order[: n_keep - j]] = True
            return keep, torch.sort(sample_absent(total, j, positions, generator)).values
        n_positive = int((score > 0).sum())
        if n_keep <= n_positive:
            keep[order[:n_keep]] = True
            return keep, positions[:0]
        # Every positive score stays; the rest are the lowest positions scoring 0, present or absent.
        keep[score > 0] = True
        low = complement(total, positions[score > 0], n_keep - n_positive)
        present = isin_sorted(positions, low)
        keep[torch.searchsorted(positions, low[present])] = True
        return keep, low[~present]


def absent_noise_kept(scores_desc: torch.Tensor, n_keep: int, n_absent: int, generator: torch.Generator) -> int:
    """How many absent positions rank among the n_keep best scores when each scores N(0, s^2)
    (s = RIGL_NOISE_STD) and the connections score `scores_desc` (sorted, largest first).

    The absent scores are drawn largest first as the top order statistics of n_absent normal
    draws: with V_i the i-th largest of n uniforms, log V_i = log V_{i-1} + log(U_i) / (n - i + 1)
    (U_i uniform), and the score is s * Phi^-1(V_i), computed from the tail 1 - V_i = -expm1(log V_i)
    so that it keeps its precision for n in the billions. The i-th largest is kept while it beats
    the connection it would displace; they are drawn in growing batches until one does not.
    """
    limit = min(n_keep, n_absent)
    j, log_v, batch = 0, 0.0, 16
    while j < limit:
        m = min(batch, limit - j)
        i = torch.arange(m, dtype=torch.float64)
        u = torch.rand(m, generator=generator, dtype=torch.float64).clamp_min_(torch.finfo(torch.float64).tiny)
        logs = log_v + torch.cumsum(torch.log(u) / (n_absent - j - i), 0)
        values = -RIGL_NOISE_STD * torch.special.ndtri(-torch.expm1(logs))
        bound = scores_desc[n_keep - 1 - j - torch.arange(m)].to(torch.float64)
        beaten = values > bound
        if not bool(beaten.all()):
            return j + int(torch.argmin(beaten.to(torch.int8)))
        j += m
        log_v = float(logs[-1])
        batch *= 2
    return j


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
        if isinstance(grad, LayerGradient):
            grad = grad.dense()
        return _smallest(-grad.reshape(-1)[candidates].abs(), candidates, k)


def top_gradient_positions(
    grad: torch.Tensor | LayerGradient, excluded: torch.Tensor, k: int, block: int | None = None
) -> torch.Tensor:
    """GradientGrower.select over the positions not in the sorted `excluded`, a block of rows at a time.

    The k positions with the largest |grad|, ties to the lower position, in that order: each
    block's best k are merged with the best so far by a stable sort in which the earlier (lower)
    positions come first, so the result is the unblocked one. `grad`: a dense (n_out, n_in) tensor
    or a LayerGradient (whose blocks are computed when needed); block = rows per block.
    """
    if isinstance(grad, LayerGradient):
        blocks = grad.blocks(block)
    else:
        step = grad.shape[0] if block is None else max(1, int(block))
        blocks = ((r, grad[r : r + step]) for r in range(0, grad.shape[0], step))
    best_pos = torch.zeros(0, dtype=torch.int64)
    best_score = torch.zeros(0)
    if k <= 0:
        return best_pos
    for first_row, rows in blocks:
        base = first_row * rows.shape[1]
        lo, hi = torch.searchsorted(excluded, torch.tensor([base, base + rows.numel()])).tolist()
        free = torch.ones(rows.numel(), dtype=torch.bool)
        free[excluded[lo:hi] - base] = False
        idx = torch.nonzero(free).squeeze(1)
        score = -rows.reshape(-1)[idx].abs()
        top = torch.sort(score, stable=True).indices[:k]
        pos = torch.cat([best_pos, idx[top] + base])
        score = torch.cat([best_score.to(score.dtype), score[top]])
        order = torch.sort(score, stable=True).indices[:k]
        best_pos, best_score = pos[order], score[order]
    return best_pos


# --- the parts' interfaces ---------------------------------------------------------------------------


class MaskPruner(Protocol):
    """A pruner whose dense rule needs no random draws (every pruner but RigLPruner)."""

    def keep(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor: ...

    def keep_connections(
        self, values: torch.Tensor, positions: torch.Tensor, total: int, fraction: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


Pruner = MaskPruner | RigLPruner  # RigLPruner.keep also takes the generator


class Grower(Protocol):
    @property
    def needs_gradient(self) -> bool: ...

    def select(
        self, candidates: torch.Tensor, k: int, generator: torch.Generator, grad: torch.Tensor | None
    ) -> torch.Tensor: ...


class Schedule(Protocol):
    def at_epoch_end(self, epoch: int, epochs: int) -> float | None: ...

    def at_step(self, t: int) -> float | None: ...


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
    pruner: Pruner | None
    grower: Grower | None
    schedule: Schedule

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
        pruner: Pruner
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


def _parts(algorithm: Algorithm) -> tuple[Pruner, Grower]:
    """The pruner and grower of an algorithm that updates its topology (SET, RigL)."""
    if algorithm.pruner is None or algorithm.grower is None:
        raise ValueError(f"the '{algorithm.name}' method never updates its topology")
    return algorithm.pruner, algorithm.grower


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
    pruner, grower = _parts(algorithm)
    m = mask.view(-1)
    w = weight.view(-1)
    before = m.clone()
    if isinstance(pruner, RigLPruner):
        keep = pruner.keep(weight, mask, fraction, generator)
    else:
        keep = pruner.keep(weight, mask, fraction)
    n_grow = int(before.sum()) - int(keep.sum())
    if recipe.regrow_positions == "any-not-kept":
        candidates = torch.nonzero(~keep).squeeze(1)
    else:  # empty-before-update: a layer too full to regrow elsewhere keeps some of what it pruned
        candidates = torch.nonzero(~before).squeeze(1)
        if n_grow > len(candidates):
            pruned = torch.nonzero(before & ~keep).squeeze(1)
            keep[pruned[len(candidates) :]] = True
            n_grow = len(candidates)
    grown = grower.select(candidates, n_grow, generator, grad)
    new_mask = keep.clone()
    new_mask[grown] = True
    removed = torch.nonzero(before & ~new_mask).squeeze(1)
    added = torch.nonzero(~before & new_mask).squeeze(1)
    # A RigL connection dropped and grown back keeps its weight and momentum
    # (new_connections = grown & old mask == 0); SET's references regrow it from scratch.
    fresh_at = added if isinstance(pruner, RigLPruner) else grown
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


@torch.no_grad()
def update_connections(
    positions: torch.Tensor,
    values: torch.Tensor,
    shape: tuple[int, int],
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grad: torch.Tensor | LayerGradient | None = None,
    momentum: torch.Tensor | None = None,
    gradient_block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int, int, int]:
    """update_layer on a connection list of a (n_out, n_in) layer: sorted flat positions, their
    weights and momentum. Nothing of size n_in x n_out is built (RigL's gradient is scored in blocks
    of `gradient_block` rows). Returns the new positions (sorted), weights and momentum, and the
    number removed, added and pruned-and-grown-again."""
    recipe = algorithm.recipe
    n_out, n_in = shape
    total = n_out * n_in
    pruner = algorithm.pruner
    if pruner is None:
        raise ValueError(f"the '{algorithm.name}' method never updates its topology")
    keep_conn, extra = pruner.keep_connections(values, positions, total, fraction, generator)
    kept = torch.sort(torch.cat([positions[keep_conn], extra])).values
    n_grow = positions.numel() - kept.numel()
    if recipe.regrow_positions == "any-not-kept":
        excluded = kept
    else:  # empty-before-update: a layer too full to regrow elsewhere keeps some of what it pruned
        excluded = positions
        n_free = total - positions.numel()
        if n_grow > n_free:
            pruned = positions[~keep_conn]
            kept = torch.sort(torch.cat([kept, pruned[n_free:]])).values
            n_grow = n_free
    if algorithm.needs_gradient:
        if grad is None:
            raise ValueError("gradient growth needs the dense gradient")
        grown = top_gradient_positions(grad, excluded, n_grow, gradient_block)
    else:
        grown = sample_absent(total, n_grow, excluded, generator)
    new_pos = torch.sort(torch.cat([kept, grown])).values
    was_there = isin_sorted(positions, new_pos)
    removed = positions.numel() - int(was_there.sum())
    added = new_pos.numel() - int(was_there.sum())
    in_place = int(isin_sorted(positions, grown).sum())
    # A RigL connection dropped and grown back keeps its weight and momentum (see update_layer).
    if isinstance(pruner, RigLPruner):
        fresh_at = new_pos[~was_there]
    else:
        fresh_at = grown
    fresh = torch.zeros(new_pos.numel(), dtype=torch.bool)
    fresh[torch.searchsorted(new_pos, fresh_at)] = True
    old_index = torch.searchsorted(positions, new_pos).clamp_(max=max(0, positions.numel() - 1))
    carried = was_there & ~fresh
    new_values = torch.zeros(new_pos.numel(), dtype=values.dtype)
    new_values[carried] = values[old_index[carried]]
    fresh_index = torch.searchsorted(new_pos, fresh_at)
    new_values[fresh_index] = draw_weights(
        recipe.regrow_init, fresh_at.numel(), n_in, n_out, new_pos.numel(), generator
    ).to(values.dtype)
    new_momentum = None
    if momentum is not None:
        new_momentum = torch.zeros(new_pos.numel(), dtype=momentum.dtype)
        new_momentum[carried] = momentum[old_index[carried]]
    return new_pos, new_values, new_momentum, removed, added, in_place


def update_topology(
    model: SparseMLP,
    optimizer: torch.optim.Optimizer,
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grads: list | None = None,
) -> list[LayerChange]:
    changes = []
    for k, lin in enumerate(model.layers()):
        if not model.is_sparse(k):
            continue
        grad = None if grads is None else grads[k]
        if model.fits_dense(k):
            weight = model.dense_weight(k)  # masked backend: the weight itself, updated in place
            mask = model.dense_mask(k)
            momentum = model.momentum_dense(k, optimizer)
            if isinstance(grad, LayerGradient):
                grad = grad.dense()
            removed, added, in_place = update_layer(
                weight, mask, algorithm, fraction, generator, grad=grad, momentum=momentum
            )
            model.set_layer(k, weight, optimizer, momentum, mask)
            changes.append(LayerChange(k, len(removed), len(added), in_place))
            continue
        positions, values, momentum = model.connections(k, optimizer)
        n_in = lin.in_features
        new_pos, new_values, new_momentum, n_removed, n_added, n_in_place = update_connections(
            positions,
            values,
            (lin.out_features, n_in),
            algorithm,
            fraction,
            generator,
            grad=grad,
            momentum=momentum,
            gradient_block=max(1, GRADIENT_BLOCK_ELEMENTS // max(1, n_in)),
        )
        model.set_connections(k, new_pos, new_values, optimizer, new_momentum)
        changes.append(LayerChange(k, n_removed, n_added, n_in_place))
    model.masks_changed()
    return changes
