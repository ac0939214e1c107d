"""A dynamic-sparse-training loop over torch.nn.utils.prune masks, recorded by sparsetopo.record
(shared by the recording tests of convolutional and residual models)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

import sparsetopo


def digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (n, 1, 8, 8) images and their labels."""
    from sparsetopo.trainer.data import load_dataset

    data = load_dataset("digits")
    return torch.from_numpy(data.x_train).view(-1, 1, 8, 8), torch.from_numpy(data.y_train)


def mask_matrices(modules: Sequence[Any]) -> list[np.ndarray]:
    """Each module's prune mask in sparsetopo's matrix form: rows (input channel, tap), columns outputs."""
    out = []
    for m in modules:
        mask = m.weight_mask.detach().numpy().astype(bool)
        out.append(mask.reshape(mask.shape[0], -1).T)
    return out


def reprune(modules: Sequence[Any], generator: torch.Generator) -> None:
    """Drop a quarter of each module's connections and grow as many at weight 0 (dynamic sparse training)."""
    for m in modules:
        mask = m.weight_mask.detach().clone().flatten()
        alive, dead = mask.nonzero().ravel(), (mask == 0).nonzero().ravel()
        n = max(1, len(alive) // 4)
        drop = alive[torch.randperm(len(alive), generator=generator)[:n]]
        grow = dead[torch.randperm(len(dead), generator=generator)[:n]]
        mask[drop], mask[grow] = 0, 1
        with torch.no_grad():
            m.weight_orig.view(-1)[grow] = 0.0  # grown at zero
        prune.remove(m, "weight")
        prune.custom_from_mask(m, "weight", mask.view_as(m.weight))


def record_pruned_loop(
    model: nn.Module,
    modules: Sequence[Any],
    run_id: str,
    epochs: int,
    settings,
    after_snapshot: Callable[[int], None] | None = None,
) -> list[list[np.ndarray]]:
    """Prune `modules` (L1, 60 %), then per epoch: train one pass on digits (not before the first
    snapshot), re-prune, and record a snapshot. Returns the masks at each recorded step."""
    x, y = digits_images()
    for m in modules:
        prune.l1_unstructured(m, "weight", amount=0.6)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(3)
    seen = []
    with sparsetopo.record(model, run_id, settings=settings) as rec:
        for epoch in range(epochs):
            if epoch:
                for i in range(0, len(x), 100):
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
                    opt.step()
                reprune(modules, generator)
            rec.snapshot(epoch=epoch)
            seen.append(mask_matrices(modules))
            if after_snapshot is not None:
                after_snapshot(epoch)
    return seen
