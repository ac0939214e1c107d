"""A multilayer perceptron whose layers may carry a connectivity mask.

Hidden layers use ReLU (optional dropout after each); the last layer gives logits.
Masked weights are kept exactly zero: gradients are masked before every optimizer step
(so momentum never builds up there) and the weights are masked again after it.
Weights are drawn from U(-b, b), b = sqrt(6 / fan_in), with fan_in the layer's mean number
of incoming connections per output neuron (He initialisation that accounts for sparsity);
biases start at zero.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from graphstore.model import Snapshot


def init_bound(mask: torch.Tensor | None, n_in: int, n_out: int) -> float:
    connections = n_in * n_out if mask is None else int(mask.sum())
    fan_in = max(1.0, connections / n_out)
    return math.sqrt(6.0 / fan_in)


class SparseMLP(nn.Module):
    def __init__(
        self,
        sizes: list[int],
        masks: list[torch.Tensor | None],
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if len(masks) != len(sizes) - 1:
            raise ValueError("one mask (or None) per layer")
        self.sizes = list(sizes)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.masks: list[torch.Tensor | None] = []
        for k, (lin, mask) in enumerate(zip(self.linears, masks)):
            if mask is not None:
                mask = mask.to(torch.bool).clone()
                if mask.shape != lin.weight.shape:
                    raise ValueError(f"mask {k} has shape {tuple(mask.shape)}, layer {tuple(lin.weight.shape)}")
                self.register_buffer(f"mask_{k}", mask)
            self.masks.append(mask)
        with torch.no_grad():
            for lin, mask in zip(self.linears, self.masks):
                b = init_bound(mask, lin.in_features, lin.out_features)
                lin.weight.uniform_(-b, b, generator=generator)
                lin.bias.zero_()
        self.masks_changed()
        self.apply_masks()

    def masks_changed(self) -> None:
        """Refresh the float copies of the masks (multiplying is cheaper than masked_fill with ~mask)."""
        self._keep = [None if m is None else m.to(torch.float32) for m in self.masks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for k, lin in enumerate(self.linears):
            x = lin(x)
            if k < last:
                x = self.dropout(torch.relu(x))
        return x

    @torch.no_grad()
    def apply_masks(self) -> None:
        for lin, keep in zip(self.linears, self._keep):
            if keep is not None:
                lin.weight.mul_(keep)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for lin, keep in zip(self.linears, self._keep):
            if keep is not None and lin.weight.grad is not None:
                lin.weight.grad.mul_(keep)

    def n_connections(self) -> list[int]:
        return [lin.weight.numel() if m is None else int(m.sum()) for lin, m in zip(self.linears, self.masks)]

    def density(self) -> float:
        return sum(self.n_connections()) / sum(lin.weight.numel() for lin in self.linears)


@torch.no_grad()
def to_snapshot(model: SparseMLP, run_id: str, step: int, epoch: int | None, metrics: dict) -> Snapshot:
    """The model's topology as a Snapshot: matrix k is (n_in, n_out), the transpose of torch's weight."""
    layers, biases = [], []
    for lin in model.linears:
        w = lin.weight.detach().cpu().numpy()
        layers.append(sp.csr_matrix(np.ascontiguousarray(w.T)))
        biases.append(lin.bias.detach().cpu().numpy().copy())
    return Snapshot(run_id=run_id, step=step, layers=layers, biases=biases, metrics=dict(metrics), epoch=epoch)
