"""A multilayer perceptron whose layers may carry a connectivity mask.

Hidden layers use ReLU (optional dropout after each, trainer/dropout.py); the last layer gives logits.
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
- masked: every layer is a dense torch Linear; a sparse layer's weight is multiplied by its mask
  (`masks[k]`, a bool (n_out, n_in) tensor).
- sparse: a sparse layer holds its weights only at its connections (`values`, aligned with the
  sorted positions of its SparseStructure, `masks[k]` on this backend) and multiplies with CSR
  kernels (trainer/sparse_ops.py), so a step costs what the connections cost. No sparse layer
  larger than the dense limit (trainer/sparse.py DENSE_LIMIT) is ever held densely: its initial
  weights are drawn at the connections only, topology updates work on its connection list
  (trainer/algorithms.py update_connections), RigL's gradient is scored in row blocks and
  snapshots come straight from the CSR structure. Smaller layers keep the dense draws and
  updates (a dense copy exists only during an update), so both backends stay identical there.
Whatever the backend, a sparse layer above the dense limit is built without torch's Linear
initialisation (which would draw n_in x n_out numbers from the global generator), draws its
initial weights at its connections only and, under `first_batch_dense`, still masks its first
batch (the dense initial matrix is what cannot be held).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from sparsetopo.graphstore.model import Snapshot

from . import sparse as topology
from .dropout import prepare as prepare_dropout
from .dropout import relu_dropout
from .sparse_ops import LayerGradient, SparseStructure, dense_gradient, sparse_linear

BACKENDS = ("masked", "sparse")


WEIGHT_INITS = ("glorot-uniform", "randn/10", "he-uniform-sparse")


def init_bound(mask: torch.Tensor | int | None, n_in: int, n_out: int) -> float:
    """he-uniform-sparse's bound; `mask` is the layer's mask or its number of connections."""
    if mask is None:
        connections = n_in * n_out
    elif isinstance(mask, int):
        connections = mask
    else:
        connections = int(mask.sum())
    fan_in = max(1.0, connections / n_out)
    return math.sqrt(6.0 / fan_in)


def draw_weights(
    kind: str,
    count: int,
    n_in: int,
    n_out: int,
    mask: torch.Tensor | int | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """`count` fresh weights of a (n_out, n_in) layer under the initialisation `kind` (`mask`: the
    layer's mask or connection count, for he-uniform-sparse)."""
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


Topology = torch.Tensor | SparseStructure | None  # a bool (n_out, n_in) mask, connections, or dense


def topology_nnz(t: torch.Tensor | SparseStructure) -> int:
    return t.nnz if isinstance(t, SparseStructure) else int(t.sum())


def topology_shape(t: torch.Tensor | SparseStructure) -> tuple[int, ...]:
    """(n_out, n_in); a mask tensor's shape as it is (a wrong one is reported, not unpacked)."""
    return t.shape if isinstance(t, SparseStructure) else tuple(t.shape)


class SparseMLP(nn.Module):
    def __init__(
        self,
        sizes: list[int],
        masks: Sequence[Topology],
        dropout: float = 0.0,
        dropout_draw: str = "torch-bernoulli",
        generator: torch.Generator | None = None,
        weight_init: str = "he-uniform-sparse",
        mask_initial_weights: bool = True,
        backend: str = "masked",
        dense_limit: int | None = None,
    ):
        super().__init__()
        if len(masks) != len(sizes) - 1:
            raise ValueError("one mask (or None) per layer")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
        self.sizes = list(sizes)
        self.backend = backend
        self.dense_limit = topology.dense_limit(dense_limit)
        shapes = list(zip(sizes[1:], sizes[:-1]))  # (n_out, n_in)
        for k, (t, shape) in enumerate(zip(masks, shapes)):
            if t is not None and topology_shape(t) != shape:
                raise ValueError(f"mask {k} has shape {topology_shape(t)}, layer {shape}")
        # A sparse layer above the dense limit: no dense weight is drawn, so torch's initialisation is
        # skipped (on the meta device), on both backends alike.
        self.big = [
            t is not None and not topology.fits_dense(*shape, self.dense_limit) for t, shape in zip(masks, shapes)
        ]
        linears = []
        for (n_out, n_in), big in zip(shapes, self.big):
            if big:
                lin = nn.Linear(n_in, n_out, device="meta")
                lin.bias = nn.Parameter(torch.zeros(n_out))
                if backend == "masked":
                    lin.weight = nn.Parameter(torch.zeros(n_out, n_in))
            else:
                lin = nn.Linear(n_in, n_out)
            linears.append(lin)
        self.linears = nn.ModuleList(linears)
        self.dropout = float(dropout)
        self.dropout_draw = dropout_draw
        if self.dropout > 0:
            prepare_dropout(dropout_draw)
        self.masks: list[Topology] = []
        self.structures: dict[int, SparseStructure] = {}
        self.values = nn.ParameterDict()
        self._dense_first: dict[int, torch.Tensor] = {}  # off-mask initial weights for a dense first batch
        self._capture: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None
        with torch.no_grad():
            for k, (lin, t, big) in enumerate(zip(linears, masks, self.big)):
                n_out, n_in = shapes[k]
                lin.bias.zero_()
                if t is None:
                    lin.weight.copy_(
                        draw_weights(weight_init, n_out * n_in, n_in, n_out, None, generator).view(n_out, n_in)
                    )
                    self.masks.append(None)
                    continue
                if backend == "sparse":
                    structure = t if isinstance(t, SparseStructure) else SparseStructure.from_mask(t.to(torch.bool))
                    if big:
                        values = draw_weights(weight_init, structure.nnz, n_in, n_out, structure.nnz, generator)
                    else:
                        w = draw_weights(weight_init, n_out * n_in, n_in, n_out, structure.nnz, generator)
                        values = w[structure.positions].clone()
                        if not mask_initial_weights:
                            keep = structure.mask().view(-1)
                            self._dense_first[k] = (w * ~keep).view(n_out, n_in)
                        del lin.weight  # the values are the weights now; no dense copy to keep in step
                    lin.register_parameter("weight", None)
                    self.structures[k] = structure
                    self.values[str(k)] = nn.Parameter(values)
                    self.masks.append(structure)
                    continue
                mask = t.mask() if isinstance(t, SparseStructure) else t.to(torch.bool).clone()
                self.register_buffer(f"mask_{k}", mask)
                self.masks.append(mask)
                if big:
                    positions = torch.nonzero(mask.view(-1)).squeeze(1)
                    fresh = draw_weights(weight_init, positions.numel(), n_in, n_out, positions.numel(), generator)
                    lin.weight.view(-1)[positions] = fresh
                else:
                    lin.weight.copy_(
                        draw_weights(weight_init, n_out * n_in, n_in, n_out, mask, generator).view(n_out, n_in)
                    )
        self.masks_changed()
        if mask_initial_weights:
            self.apply_masks()

    # --- the layers ----------------------------------------------------------------------------------

    def linear(self, k: int) -> nn.Linear:
        """Layer k's Linear (`linears[k]`, typed: nn.ModuleList's items are plain Modules to mypy)."""
        return cast(nn.Linear, self.linears[k])

    def layers(self) -> list[nn.Linear]:
        """Every layer's Linear, in order (`list(linears)`, typed)."""
        return [cast(nn.Linear, lin) for lin in self.linears]

    def _mask_tensor(self, k: int) -> torch.Tensor:
        """Layer k's bool mask on the masked backend (a sparse layer outside `structures`)."""
        mask = self.masks[k]
        if not isinstance(mask, torch.Tensor):
            raise ValueError(f"layer {k} has no mask tensor (a dense layer, or one on the sparse backend)")
        return mask

    # --- the weights of layer k, whichever the backend --------------------------------------------

    def weight_param(self, k: int) -> nn.Parameter:
        """The parameter the optimizer updates for layer k's weights (values on the sparse backend)."""
        if k in self.structures:
            return cast(nn.Parameter, self.values[str(k)])
        # nn.Linear declares `weight: Tensor`; it is the Parameter its __init__ registered
        return cast(nn.Parameter, self.linear(k).weight)

    def weight_params(self) -> list[nn.Parameter]:
        return [self.weight_param(k) for k in range(len(self.linears))]

    def is_sparse(self, k: int) -> bool:
        return self.masks[k] is not None

    def fits_dense(self, k: int) -> bool:
        """Whether layer k's updates follow the dense draws (its positions are at most the dense limit)."""
        return not self.big[k]

    @torch.no_grad()
    def dense_weight(self, k: int) -> torch.Tensor:
        """Layer k's (n_out, n_in) weight; on the sparse backend a fresh dense tensor."""
        if k in self.structures:
            return self.structures[k].to_dense(self.values[str(k)])
        return self.linear(k).weight.detach()

    def dense_mask(self, k: int) -> torch.Tensor:
        """Layer k's bool (n_out, n_in) mask: the mask itself on the masked backend, a fresh one on the sparse."""
        m = self.masks[k]
        if m is None:
            raise ValueError(f"layer {k} is dense: it has no mask")
        return m.mask() if isinstance(m, SparseStructure) else m

    @torch.no_grad()
    def set_layer(
        self,
        k: int,
        weight: torch.Tensor,
        optimizer: torch.optim.Optimizer | None = None,
        momentum: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """After a dense topology update of layer k: rebuild its structure and values from the dense
        weight, momentum and mask (None: the mask dense_mask gave, updated in place)."""
        if k not in self.structures:
            return
        if mask is None:
            raise ValueError("the sparse backend needs the updated mask")
        structure = SparseStructure.from_mask(mask)
        self._set_structure(k, structure, structure.values_from_dense(weight), optimizer, momentum, dense=True)

    def _set_structure(self, k, structure, values, optimizer, momentum, dense: bool) -> None:
        self.structures[k] = structure
        self.masks[k] = structure
        param = self.values[str(k)]
        if values.numel() == param.numel():
            param.copy_(values)
        else:
            param.data = values
        if optimizer is not None and momentum is not None and param in optimizer.state:
            buf = structure.values_from_dense(momentum) if dense else momentum
            optimizer.state[param]["momentum_buffer"] = buf

    @torch.no_grad()
    def connections(
        self, k: int, optimizer: torch.optim.Optimizer | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Layer k as a connection list: sorted flat positions (out * n_in + in), their weights and
        their momentum (None without optimizer state)."""
        buf = None if optimizer is None else optimizer.state.get(self.weight_param(k), {}).get("momentum_buffer")
        if k in self.structures:
            return self.structures[k].positions, self.values[str(k)].detach(), buf
        positions = torch.nonzero(self._mask_tensor(k).view(-1)).squeeze(1)
        weight = self.linear(k).weight.detach().view(-1)
        return positions, weight[positions], None if buf is None else buf.view(-1)[positions]

    @torch.no_grad()
    def set_connections(
        self,
        k: int,
        positions: torch.Tensor,
        values: torch.Tensor,
        optimizer: torch.optim.Optimizer | None = None,
        momentum: torch.Tensor | None = None,
    ) -> None:
        """Replace layer k's connections (sorted positions), their weights and momentum."""
        if k in self.structures:
            n_out, n_in = self.structures[k].shape
            self._set_structure(k, SparseStructure(n_out, n_in, positions), values, optimizer, momentum, dense=False)
            return
        mask, weight = self._mask_tensor(k).view(-1), self.linear(k).weight.detach().view(-1)
        mask.zero_()
        mask[positions] = True
        weight.zero_()
        weight[positions] = values
        buf = None if optimizer is None else optimizer.state.get(self.linear(k).weight, {}).get("momentum_buffer")
        if buf is not None and momentum is not None:
            flat = buf.view(-1)
            flat.zero_()
            flat[positions] = momentum

    def momentum_dense(self, k: int, optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
        """Layer k's momentum as a dense (n_out, n_in) tensor (a view on the masked backend)."""
        buf = optimizer.state.get(self.weight_param(k), {}).get("momentum_buffer")
        if buf is None or k not in self.structures:
            return buf
        return self.structures[k].to_dense(buf)

    def capture_for_gradients(self) -> None:
        """Keep the next forward pass's layer inputs and outputs, so dense_gradients() can follow."""
        self._capture = {}

    def dense_gradients(self) -> list[torch.Tensor | LayerGradient]:
        """Each layer's full (n_out, n_in) weight gradient of the last backward pass (RigL's growth
        score); for a sparse-backend layer above the dense limit a LayerGradient that computes it in
        row blocks when asked."""
        out: list[torch.Tensor | LayerGradient] = []
        for k, lin in enumerate(self.layers()):
            if k in self.structures:
                if self._capture is None:
                    raise RuntimeError("dense_gradients() needs capture_for_gradients() before the forward pass")
                x, y = self._capture[k]
                if y.grad is None:
                    raise RuntimeError(f"layer {k}'s output has no gradient: backward() first")
                grad = LayerGradient(x, y.grad)
                out.append(grad if self.big[k] else next(dense_gradient(x, y.grad))[1])
            else:
                if lin.weight.grad is None:
                    raise RuntimeError(f"layer {k}'s weight has no gradient: backward() first")
                out.append(lin.weight.grad.detach().clone())
        self._capture = None
        return out

    def masks_changed(self) -> None:
        """Refresh the float copies of the masks (multiplying is cheaper than masked_fill with ~mask)."""
        self._keep = [m.to(torch.float32) if isinstance(m, torch.Tensor) else None for m in self.masks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for k, lin in enumerate(self.layers()):
            x_in = x
            structure = self.structures.get(k)
            if structure is None and x.dim() == 2 and not x.is_contiguous() and x.t().is_contiguous():
                # A dense layer after a sparse one gets its column-major activations; MKL multiplies
                # those ~5x faster as W @ x^T than as x @ W^T, which would copy them first.
                x = torch.addmm(lin.bias.unsqueeze(1), lin.weight, x.t()).t()
            elif structure is None:
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
                x = relu_dropout(x, self.dropout, self.dropout_draw, self.training)
        return x

    @torch.no_grad()
    def apply_masks(self) -> None:
        self._dense_first.clear()  # the sparse backend's way of masking its dense first batch
        for lin, keep in zip(self.layers(), self._keep):
            if keep is not None and lin.weight is not None:
                lin.weight.mul_(keep)

    @torch.no_grad()
    def mask_grads(self) -> None:
        for lin, keep in zip(self.layers(), self._keep):
            if keep is not None and lin.weight is not None and lin.weight.grad is not None:
                lin.weight.grad.mul_(keep)

    def n_connections(self) -> list[int]:
        return [
            lin.in_features * lin.out_features if m is None else topology_nnz(m)
            for lin, m in zip(self.layers(), self.masks)
        ]

    def density(self) -> float:
        return sum(self.n_connections()) / sum(lin.in_features * lin.out_features for lin in self.layers())


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
    for k, (lin, mask) in enumerate(zip(model.layers(), model.masks)):
        structure = model.structures.get(k)
        if structure is not None:  # rows = inputs: the structure's CSR of W^T, as it is
            values = model.values[str(k)].detach().index_select(0, structure.perm)
            layers.append(
                sp.csr_matrix(
                    (values.numpy().astype(np.float32, copy=False), structure.t_col.numpy(), structure.t_crow.numpy()),
                    shape=(lin.in_features, lin.out_features),
                )
            )
        else:
            w = lin.weight.detach().cpu().numpy()
            layers.append(layer_matrix(w, None if mask is None else model.dense_mask(k).cpu().numpy()))
        biases.append(lin.bias.detach().cpu().numpy().copy())
    return Snapshot(run_id=run_id, step=step, layers=layers, biases=biases, metrics=dict(metrics), epoch=epoch)
