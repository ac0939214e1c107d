"""Topology algorithms built from parts: a pruner, a grower and a schedule.

- dense:  no masks, never updated.
- static: the initial sparse topology, never updated.
- SET:    after every epoch but the last, remove the fraction zeta of the smallest positive
          weights and, separately, of the largest negative weights (those closest to zero),
          then grow as many connections at uniformly random empty positions.
- RigL:   every delta_t batches until rigl_end of all batches, remove the fraction f(t) of the
          active weights with the smallest magnitude and grow as many where the dense gradient
          of the current batch has the largest magnitude; f(t) = zeta/2 (1 + cos(pi t / T_end)).

Shared rules (one update of one layer):
- the number of connections stays exactly the same (k removed, k grown);
- growth happens only at positions that were empty before the update, so a connection is never
  pruned and regrown in the same update and `added`/`removed` are exact topology changes;
- grown weights are drawn from the layer's initialisation distribution U(-b, b) (SET does the
  same; RigL's paper starts them at zero, but in the topology model a zero weight is an absent
  connection, so a fresh weight must be nonzero to exist);
- the optimizer state (momentum) of removed and grown entries is reset to zero;
- ties (equal magnitudes or gradients) are broken by position, so updates are deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ConfigError
from .model import SparseMLP, init_bound

METHODS = ("dense", "static", "set", "rigl")


# --- pruners: which active connections to remove --------------------------------------------------

def _smallest(values: torch.Tensor, positions: torch.Tensor, k: int) -> torch.Tensor:
    """The k positions with the smallest values; ties go to the lower position (stable sort)."""
    if k <= 0:
        return positions[:0]
    order = torch.sort(values, stable=True).indices
    return positions[order[:k]]


class SignedMagnitudePruner:
    """SET: floor(f * n_pos) smallest positive and floor(f * n_neg) largest negative weights."""

    def select(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        pos = torch.nonzero(m & (w > 0)).squeeze(1)
        neg = torch.nonzero(m & (w < 0)).squeeze(1)
        # Active entries that are exactly zero count as the weakest of all.
        zero = torch.nonzero(m & (w == 0)).squeeze(1)
        k_pos = math.floor(fraction * (len(pos) + len(zero)))
        k_neg = math.floor(fraction * len(neg))
        from_zero = zero[: min(k_pos, len(zero))]
        chosen = [
            from_zero,
            _smallest(w[pos], pos, k_pos - len(from_zero)),
            _smallest(-w[neg], neg, k_neg),
        ]
        return torch.cat(chosen)


class MagnitudePruner:
    """RigL: floor(f * n_active) active weights with the smallest magnitude."""

    def select(self, weight: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
        w, m = weight.reshape(-1), mask.reshape(-1)
        active = torch.nonzero(m).squeeze(1)
        return _smallest(w[active].abs(), active, math.floor(fraction * len(active)))


# --- growers: where to add connections ---------------------------------------------------------

class RandomGrower:
    """SET: uniformly random empty positions."""

    needs_gradient = False

    def select(self, empty: torch.Tensor, k: int, generator: torch.Generator, grad: torch.Tensor | None) -> torch.Tensor:
        return empty[torch.randperm(len(empty), generator=generator)[:k]]


class GradientGrower:
    """RigL: the empty positions with the largest dense-gradient magnitude."""

    needs_gradient = True

    def select(self, empty: torch.Tensor, k: int, generator: torch.Generator, grad: torch.Tensor | None) -> torch.Tensor:
        if grad is None:
            raise ValueError("gradient growth needs the dense gradient")
        return _smallest(-grad.reshape(-1)[empty].abs(), empty, k)


# --- schedules: when to update and by how much --------------------------------------------------

class NeverSchedule:
    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return None

    def at_batch(self, t: int) -> float | None:
        return None


class EpochSchedule:
    """After every epoch except the last (no training follows it, as in SET)."""

    def __init__(self, fraction: float):
        self.fraction = fraction

    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return self.fraction if epoch < epochs else None

    def at_batch(self, t: int) -> float | None:
        return None


class CosineSchedule:
    """Every delta_t batches while t < t_end; fraction alpha/2 (1 + cos(pi t / t_end))."""

    def __init__(self, alpha: float, delta_t: int, t_end: int):
        self.alpha, self.delta_t, self.t_end = alpha, delta_t, t_end

    def at_epoch_end(self, epoch: int, epochs: int) -> float | None:
        return None

    def at_batch(self, t: int) -> float | None:
        if t <= 0 or t % self.delta_t or t >= self.t_end:
            return None
        return self.alpha / 2 * (1 + math.cos(math.pi * t / self.t_end))


@dataclass
class Algorithm:
    name: str
    pruner: object | None
    grower: object | None
    schedule: object

    @property
    def sparse(self) -> bool:
        return self.name != "dense"

    @property
    def needs_gradient(self) -> bool:
        return bool(getattr(self.grower, "needs_gradient", False))


def make_algorithm(method: str, zeta: float, total_batches: int = 0, delta_t: int = 100, rigl_end: float = 0.75) -> Algorithm:
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if method in ("set", "rigl") and not 0 < zeta < 1:
        raise ConfigError(f"zeta must be between 0 and 1 (exclusive); got {zeta}")
    if method == "dense":
        return Algorithm("dense", None, None, NeverSchedule())
    if method == "static":
        return Algorithm("static", None, None, NeverSchedule())
    if method == "set":
        return Algorithm("set", SignedMagnitudePruner(), RandomGrower(), EpochSchedule(zeta))
    if delta_t < 1:
        raise ConfigError(f"delta_t must be at least 1 batch; got {delta_t}")
    if not 0 < rigl_end <= 1:
        raise ConfigError(f"rigl_end must be a fraction of training in (0, 1]; got {rigl_end}")
    return Algorithm("rigl", MagnitudePruner(), GradientGrower(), CosineSchedule(zeta, delta_t, int(rigl_end * total_batches)))


# --- one update ---------------------------------------------------------------------------------

@dataclass
class LayerChange:
    layer: int
    removed: int
    added: int


@torch.no_grad()
def update_layer(
    weight: torch.Tensor,
    mask: torch.Tensor,
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grad: torch.Tensor | None = None,
    momentum: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune and regrow one layer in place; return the flat positions removed and added."""
    m = mask.view(-1)
    w = weight.view(-1)
    removed = algorithm.pruner.select(weight, mask, fraction)
    empty = torch.nonzero(~m).squeeze(1)  # empty before this update
    if len(removed) > len(empty):  # a nearly dense layer: keep the count exact
        removed = removed[: len(empty)]
    added = algorithm.grower.select(empty, len(removed), generator, grad)
    bound = init_bound(mask, weight.shape[1], weight.shape[0])
    m[removed] = False
    w[removed] = 0.0
    m[added] = True
    fresh = torch.empty(len(added), dtype=weight.dtype).uniform_(-bound, bound, generator=generator)
    fresh[fresh == 0] = bound / 2  # a zero weight would be an absent connection
    w[added] = fresh
    if momentum is not None:
        mom = momentum.view(-1)
        mom[removed] = 0.0
        mom[added] = 0.0
    return removed, added


def update_topology(
    model: SparseMLP,
    optimizer: torch.optim.Optimizer,
    algorithm: Algorithm,
    fraction: float,
    generator: torch.Generator,
    grads: list[torch.Tensor | None] | None = None,
) -> list[LayerChange]:
    changes = []
    for k, (lin, mask) in enumerate(zip(model.linears, model.masks)):
        if mask is None:
            continue
        state = optimizer.state.get(lin.weight, {})
        removed, added = update_layer(
            lin.weight.data, mask, algorithm, fraction, generator,
            grad=None if grads is None else grads[k],
            momentum=state.get("momentum_buffer"),
        )
        changes.append(LayerChange(k, len(removed), len(added)))
    model.masks_changed()
    return changes
