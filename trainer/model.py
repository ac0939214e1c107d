"""A multilayer perceptron whose layers may carry a connectivity mask.

Hidden layers use ReLU (optional dropout after each); the last layer gives logits.
Masked weights are kept exactly zero: gradients are masked before every optimizer step
(so momentum never builds up there) and the weights are masked again after it.
Initial weights (`weight_init`; biases always start at zero):
- glorot-uniform: U(-l, l), l = sqrt(6 / (n_in + n_out)) of the full matrix, then masked
  (Keras's default kernel initialiser, which SET's Keras code uses under its mask);
- randn/10: N(0, 1) / 10 at every connection (SET's sparse-Python code);
- he-uniform-sparse: U(-b, b), b = sqrt(6 / fan_in) with fan_in the layer's mean number of
  incoming connections per output neuron (sparsetopo-v0).
A connection is a mask entry (or any entry of a layer without a mask), whatever its weight:
a connection grown at weight 0 is in every snapshot.

Backends (the same algorithm either way; they differ only in float rounding):
- masked: every layer is a dense torch Linear; a sparse layer's weight is multiplied by its mask.
- sparse: a sparse layer holds its weights only at its connections (`values`, aligned with the
  sorted positions of its SparseStructure) and multiplies with CSR kernels (trainer/sparse_ops.py),
  so a step costs what the connections cost. Topology updates still see the dense weight of the
  layer (built for the update, once per update), so layers must fit in memory densely.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from sparsetopo.graphstore.model import Snapshot

from .sparse_ops import SparseStructure, dense_gradient, sparse_linear

BACKENDS = ("masked", "sparse")


WEIGHT_INITS = ("glorot-uniform", "randn/10", "he-uniform-sparse")


def init_bound(mask: torch.Tensor | None, n_in: int, n_out: int) -> float:
    """he-uniform-sparse's bound."""
    connections = n_in * n_out if mask is None else int(mask.sum())
    fan_in = max(1.0, connections / n_out)
    return math.sqrt(6.0 / fan_in)


def draw_weights(
    kind: str, count: int, n_in: int, n_out: int, mask: torch.Tensor | None, generator: torch.Generator | None
) -> torch.Tensor:
    """`count` fresh weights of a (n_out, n_in) layer under the initialisation `kind`."""
    if kind == "zero":
        return torch.zeros(count)
    if kind == "randn/10":
        return torch.randn(count, generator=generator) / 10
    if kind == "glorot-uniform":
        limit = math.sqrt(6.0 / (n_in + n_out))
        return torch.empty(count).uniform_(-limit, limit, generator=generator)
    if kind == "he-uniform-sparse":
        b = init_bound(mask, n_in, n_out)
        fresh = torch.empty(count).uniform_(-b, b, generator=generator)
        fresh[fresh == 0] = b / 2  # this rule's connections were defined by nonzero weights
        return fresh
    raise ValueError(f"unknown weight initialisation '{kind}'")


class SparseMLP(nn.Module):
    def __init__(
        self,
        sizes: list[int],
        masks: list[torch.Tensor | None],
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
        weight_init: str = "he-uniform-sparse",
        mask_initial_weights: bool = True,
        backend: str = "masked",
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
                n = lin.weight.numel()
                w = draw_weights(weight_init, n, lin.in_features, lin.out_features, mask, generator)
                lin.weight.copy_(w.view_as(lin.weight))
                lin.bias.zero_()
        self.backend = backend
        self.structures: dict[int, SparseStructure] = {}
        self.values = nn.ParameterDict()
        self._dense_first: dict[int, torch.Tensor] = {}  # off-mask initial weights for a dense first batch
        self._capture: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.masks_changed()
        if backend == "sparse":
            for k, (lin, mask) in enumerate(zip(self.linears, self.masks)):
                if mask is None:
                    continue
                structure = SparseStructure.from_mask(mask)
                w = lin.weight.detach()
                self.structures[k] = structure
                self.values[str(k)] = nn.Parameter(structure.values_from_dense(w))
                if not mask_initial_weights:
                    self._dense_first[k] = (w * ~mask).clone()
                del lin.weight  # the values are the weights now; no dense copy to keep in step
                lin.register_parameter("weight", None)
        elif backend != "masked":
            raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
        if mask_initial_weights:
            self.apply_masks()

    # --- the weights of layer k, whichever the backend --------------------------------------------

    def weight_param(self, k: int) -> nn.Parameter:
        """The parameter the optimizer updates for layer k's weights (values on the sparse backend)."""
        return self.values[str(k)] if k in self.structures else self.linears[k].weight

    def weight_params(self) -> list[nn.Parameter]:
        return [self.weight_param(k) for k in range(len(self.linears))]

    @torch.no_grad()
    def dense_weight(self, k: int) -> torch.Tensor:
        """Layer k's (n_out, n_in) weight; on the sparse backend a fresh dense tensor."""
        if k in self.structures:
            return self.structures[k].to_dense(self.values[str(k)])
        return self.linears[k].weight.detach()

    @torch.no_grad()
    def set_layer(
        self,
        k: int,
        weight: torch.Tensor,
        optimizer: torch.optim.Optimizer | None = None,
        momentum: torch.Tensor | None = None,
    ) -> None:
        """After a topology update of layer k (masks[k] changed): rebuild its structure and values."""
        if k not in self.structures:
            return
        structure = SparseStructure.from_mask(self.masks[k])
        self.structures[k] = structure
        param = self.values[str(k)]
        new = structure.values_from_dense(weight)
        if new.numel() == param.numel():
            param.copy_(new)
        else:
            param.data = new
        if optimizer is not None and momentum is not None and param in optimizer.state:
            optimizer.state[param]["momentum_buffer"] = structure.values_from_dense(momentum)

    def momentum_dense(self, k: int, optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
        """Layer k's momentum as a dense (n_out, n_in) tensor (a view on the masked backend)."""
        buf = optimizer.state.get(self.weight_param(k), {}).get("momentum_buffer")
        if buf is None or k not in self.structures:
            return buf
        return self.structures[k].to_dense(buf)

    def capture_for_gradients(self) -> None:
        """Keep the next forward pass's layer inputs and outputs, so dense_gradients() can follow."""
        self._capture = {}

    def dense_gradients(self) -> list[torch.Tensor]:
        """Each layer's full (n_out, n_in) weight gradient of the last backward pass (RigL's growth score)."""
        out = []
        for k, lin in enumerate(self.linears):
            if k in self.structures:
                x, y = self._capture[k]
                out.append(next(dense_gradient(x, y.grad))[1].clone())
            else:
                out.append(lin.weight.grad.detach().clone())
        self._capture = None
        return out

    def masks_changed(self) -> None:
        """Refresh the float copies of the masks (multiplying is cheaper than masked_fill with ~mask)."""
        self._keep = [None if m is None else m.to(torch.float32) for m in self.masks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for k, lin in enumerate(self.linears):
            x_in = x
            structure = self.structures.get(k)
            if structure is None:
                x = lin(x)
            elif k in self._dense_first:
                dense = self._dense_first[k].reshape(-1).scatter(0, structure.positions, self.values[str(k)])
                x = F.linear(x, dense.view(structure.shape), lin.bias)
            else:
                x = sparse_linear(x, self.values[str(k)], structure, lin.bias)
            if self._capture is not None and structure is not None:
                x.retain_grad()
                self._capture[k] = (x_in.detach(), x)
            if k < last:
                if structure is not None and self.training and isinstance(self.dropout, nn.Dropout):
                    # dropout draws its mask in memory order: the sparse kernels' transposed layout
                    # would drop other units than the masked backend does for the same seed
                    x = x.contiguous()
                x = self.dropout(torch.relu(x))
        return x

    @torch.no_grad()
    def apply_masks(self) -> None:
        self._dense_first.clear()  # the sparse backend's way of masking its dense first batch
        for lin, keep in zip(self.linears, self._keep):
            if keep is not None and lin.weight is not None:
                lin.weight.mul_(keep)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for lin, keep in zip(self.linears, self._keep):
            if keep is not None and lin.weight is not None and lin.weight.grad is not None:
                lin.weight.grad.mul_(keep)

    def n_connections(self) -> list[int]:
        return [
            lin.in_features * lin.out_features if m is None else int(m.sum())
            for lin, m in zip(self.linears, self.masks)
        ]

    def density(self) -> float:
        return sum(self.n_connections()) / sum(lin.in_features * lin.out_features for lin in self.linears)


def layer_matrix(weight: np.ndarray, mask: np.ndarray | None) -> sp.csr_matrix:
    """(n_in, n_out) CSR of a torch (n_out, n_in) weight whose stored entries are exactly the
    connections: the mask's entries (zeros included), or every entry of a layer without a mask."""
    wt = np.ascontiguousarray(weight.T)
    keep = np.ones(wt.shape, dtype=bool) if mask is None else np.ascontiguousarray(mask.T)
    counts = keep.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cols = np.nonzero(keep)[1]
    return sp.csr_matrix((wt[keep].astype(np.float32), cols, indptr), shape=wt.shape)


@torch.no_grad()
def to_snapshot(model: SparseMLP, run_id: str, step: int, epoch: int | None, metrics: dict) -> Snapshot:
    """The model's topology as a Snapshot: matrix k is (n_in, n_out), the transpose of torch's weight."""
    layers, biases = [], []
    for k, (lin, mask) in enumerate(zip(model.linears, model.masks)):
        structure = model.structures.get(k)
        if structure is not None:  # straight from the connections: rows = inputs, columns = outputs
            values = model.values[str(k)].detach().numpy().astype(np.float32)
            layers.append(
                sp.csr_matrix(
                    (values, (structure.cols.numpy(), structure.rows.numpy())),
                    shape=(lin.in_features, lin.out_features),
                )
            )
        else:
            w = lin.weight.detach().cpu().numpy()
            layers.append(layer_matrix(w, None if mask is None else mask.cpu().numpy()))
        biases.append(lin.bias.detach().cpu().numpy().copy())
    return Snapshot(run_id=run_id, step=step, layers=layers, biases=biases, metrics=dict(metrics), epoch=epoch)
