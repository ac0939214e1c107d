"""Truly sparse linear layers: cost that follows the connections, not n_in x n_out (issue 16).

A layer's weights live only at its connections, as a 1-D `values` tensor aligned with the
layer's sorted flat positions (row-major in torch's Linear orientation: out * n_in + in).
`SparseStructure` holds the fixed connectivity and the index tensors the kernels need; it is
built once per topology, so a training step only wraps `values` around cached indices.

Kernels (CPU, chosen by measurement at 784x784 / 3,700 connections and 1000x1000 / 40,000,
batch 100; see benchmarks/sparse_ops_bench.py):
- forward y = x @ W^T as W @ x^T with W in CSR (torch.sparse.mm, MKL);
- grad_x = grad_y @ W as W^T @ grad_y^T with a cached CSR of W^T whose values are values[perm];
  multiplying a dense matrix by a CSR on the right is several times slower;
- grad_values = (grad_y^T @ x) sampled at the connections, by torch.sparse.sampled_addmm on the
  CSR pattern; a gather-multiply-sum over the batch is 3x slower at 3,700 connections and
  ~70x slower at 40,000 (it materialises batch x connections products);
- dense operands in row-major (n, batch) layout, see _SparseLinear.forward.
`dense_gradient` gives the full weight gradient (RigL's growth criterion) in row blocks so a
layer whose dense form does not fit in memory can still be scored; its numbers do not depend on
the block size (each is computed in the same fixed chunk of rows), so a top-k over blocks picks
what a top-k over the whole matrix picks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch

__all__ = ["SparseStructure", "sparse_linear", "dense_gradient", "gradient_chunk_rows", "LayerGradient"]

# torch warns once per process that CSR support is "beta"; the few ops used here are checked
# against dense references in tests/test_sparse_ops.py, so the warning would only be noise.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    torch.sparse_csr_tensor(
        torch.zeros(2, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0),
        (1, 1),
        check_invariants=False,
    )


class SparseStructure:
    """The fixed connectivity of one (n_out, n_in) layer and the CSR indices of W and W^T.

    Immutable: after a topology change build a new one (SparseStructure(n_out, n_in, positions)).
    Attributes:
      positions: sorted unique flat positions out * n_in + in (int64), the order of `values`;
      rows, cols: the out and in index of each connection, in that order;
      crow, col: CSR of W (n_out, n_in); its value order is the positions order;
      t_crow, t_col: CSR of W^T (n_in, n_out); its values are values[perm].
    """

    def __init__(self, n_out: int, n_in: int, positions: torch.Tensor):
        positions = torch.as_tensor(positions).reshape(-1)
        if positions.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"positions must be an integer tensor, got {positions.dtype}")
        positions = positions.to(device="cpu", dtype=torch.int64).contiguous()
        self.n_out, self.n_in = int(n_out), int(n_in)
        if self.n_out < 0 or self.n_in < 0:
            raise ValueError(f"negative layer shape ({n_out}, {n_in})")
        # Strictly increasing: the values order is defined as the sorted positions order.
        if positions.numel() > 1 and not bool((positions[1:] > positions[:-1]).all()):
            raise ValueError("positions must be sorted and unique")
        if positions.numel() and (int(positions[0]) < 0 or int(positions[-1]) >= self.n_out * self.n_in):
            raise ValueError(f"positions outside a {self.n_out}x{self.n_in} layer")
        self.positions = positions
        n_in_div = max(self.n_in, 1)
        self.rows = torch.div(positions, n_in_div, rounding_mode="floor")
        self.cols = positions - self.rows * self.n_in
        self.crow = _crow(self.rows, self.n_out)
        self.col = self.cols
        # Row-major order already has rows ascending within each column, so a stable sort by
        # column alone yields W^T's row-major (CSR) order.
        self.perm = torch.sort(self.cols, stable=True).indices
        self.t_crow = _crow(self.cols, self.n_in)
        self.t_col = self.rows[self.perm].contiguous()
        # sampled_addmm computes beta * input + alpha * (a @ b) and propagates NaN from the
        # input's values even with beta=0, so it samples on a pattern with zeros.
        self._pattern: dict[torch.dtype, torch.Tensor] = {}

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> SparseStructure:
        """From a bool (n_out, n_in) mask (torch Linear orientation)."""
        if mask.dim() != 2:
            raise ValueError(f"mask must be 2-D (n_out, n_in), got shape {tuple(mask.shape)}")
        positions = torch.nonzero(mask.reshape(-1).to(torch.bool), as_tuple=False).reshape(-1)
        return cls(mask.shape[0], mask.shape[1], positions)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in)

    @property
    def nnz(self) -> int:
        return self.positions.numel()

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        return f"SparseStructure(n_out={self.n_out}, n_in={self.n_in}, nnz={self.nnz})"

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        """W as a sparse CSR tensor sharing `values` (no copy)."""
        return torch.sparse_csr_tensor(self.crow, self.col, values, self.shape, check_invariants=False)

    def csr_t(self, values: torch.Tensor) -> torch.Tensor:
        """W^T (n_in, n_out) as a sparse CSR tensor: a gather of `values`, no re-sort."""
        # index_select, not values[perm]: advanced indexing is ~10x slower for a 1-D gather.
        return torch.sparse_csr_tensor(
            self.t_crow,
            self.t_col,
            values.index_select(0, self.perm),
            (self.n_in, self.n_out),
            check_invariants=False,
        )

    def pattern(self, dtype: torch.dtype) -> torch.Tensor:
        """W's CSR pattern with zero values (the sampling mask of the weight gradient)."""
        p = self._pattern.get(dtype)
        if p is None:
            p = self.csr(torch.zeros(self.nnz, dtype=dtype))
            self._pattern[dtype] = p
        return p

    def mask(self) -> torch.Tensor:
        """The (n_out, n_in) bool mask (dense: only for layers that fit in memory)."""
        m = torch.zeros(self.n_out * self.n_in, dtype=torch.bool)
        m[self.positions] = True
        return m.view(self.n_out, self.n_in)

    def to_dense(self, values: torch.Tensor) -> torch.Tensor:
        """The dense (n_out, n_in) weight with `values` at the connections, zero elsewhere."""
        w = torch.zeros(self.n_out * self.n_in, dtype=values.dtype)
        w[self.positions] = values.detach()
        return w.view(self.n_out, self.n_in)

    def values_from_dense(self, weight: torch.Tensor) -> torch.Tensor:
        """The values of a dense (n_out, n_in) weight at the connections, in positions order."""
        if tuple(weight.shape) != self.shape:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, structure {self.shape}")
        return weight.detach().reshape(-1)[self.positions].clone()


def _crow(index: torch.Tensor, n: int) -> torch.Tensor:
    crow = torch.zeros(n + 1, dtype=torch.int64)
    if index.numel():
        crow[1:] = torch.bincount(index, minlength=n).cumsum(0)
    return crow


class _SparseLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, values, bias, structure):
        # The MKL kernels are fastest when every dense operand is row-major (n, batch), and copy
        # any other layout first; writing into a column-major result is several times slower.
        # So y is returned as the transpose of the row-major (n_out, batch) product, and chained
        # layers (ReLU and its backward keep strides) then pass x.t() and grad_y.t() without copies.
        if bias is None:
            y = torch.sparse.mm(structure.csr(values), x.t()).t()
        else:
            y = torch.addmm(bias.unsqueeze(1), structure.csr(values), x.t()).t()
        ctx.structure = structure
        ctx.save_for_backward(x, values)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, values = ctx.saved_tensors
        s = ctx.structure
        grad_x = grad_values = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.sparse.mm(s.csr_t(values), grad_y.t()).t()
        if ctx.needs_input_grad[1]:
            grad_values = torch.sparse.sampled_addmm(s.pattern(grad_y.dtype), grad_y.t(), x, beta=0.0).values()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum(0)
        return grad_x, grad_values, grad_bias, None


def sparse_linear(
    x: torch.Tensor, values: torch.Tensor, structure: SparseStructure, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """y = x @ W^T + bias, W the (n_out, n_in) matrix with `values` at `structure`'s positions.

    x: (..., n_in); values: (nnz,) aligned with structure.positions, same dtype as x.
    Differentiable in x, values and bias (grad_values is per connection, never dense).
    For 2-D x the result (and grad_x) is a column-major (batch, n_out) tensor, i.e. not
    .is_contiguous(): that layout makes the next sparse layer copy-free; call .contiguous() if a
    consumer needs row-major.
    """
    if values.dim() != 1 or values.numel() != structure.nnz:
        raise ValueError(f"values must be 1-D with {structure.nnz} entries, got shape {tuple(values.shape)}")
    if x.shape[-1] != structure.n_in:
        raise ValueError(f"x has {x.shape[-1]} features, the layer {structure.n_in} inputs")
    if x.dtype != values.dtype:
        raise TypeError(f"x is {x.dtype}, values {values.dtype}")
    lead = x.shape[:-1]
    y = _SparseLinear.apply(x.reshape(-1, structure.n_in), values, bias, structure)
    return y.reshape(*lead, structure.n_out)


# A matrix product's rounding depends on its shape, so the gradient is always computed in chunks
# of the same rows whatever block a caller asks for; a chunk holds at most this many entries.
GRADIENT_CHUNK_ELEMENTS = 2**20
GRADIENT_CHUNK_MAX_ROWS = 256


def gradient_chunk_rows(n_in: int) -> int:
    """Rows of one product of dense_gradient for a layer of n_in inputs (fixed per layer shape)."""
    return max(1, min(GRADIENT_CHUNK_MAX_ROWS, GRADIENT_CHUNK_ELEMENTS // max(1, n_in)))


@torch.no_grad()
def dense_gradient(
    x: torch.Tensor, grad_y: torch.Tensor, block: int | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """The full weight gradient grad_y^T @ x, (n_out, n_in), summed over the batch.

    Yields (first_row, rows) with rows = gradient rows first_row .. first_row + len(rows) - 1,
    at most `block` rows each, rounded up to a whole number of chunks (block=None: one block with
    all rows), so a caller can score growth candidates of a layer whose dense gradient does not
    fit in memory. The numbers are the same whatever the block.
    """
    x2 = x.reshape(-1, x.shape[-1])
    g2 = grad_y.reshape(-1, grad_y.shape[-1])
    if x2.shape[0] != g2.shape[0]:
        raise ValueError(f"x has {x2.shape[0]} samples, grad_y {g2.shape[0]}")
    n_out = g2.shape[1]
    if block is not None and int(block) <= 0 and n_out > 0:
        raise ValueError(f"block must be positive, got {block}")
    chunk = gradient_chunk_rows(x2.shape[1])
    step = n_out if block is None else int(block)
    step = max(chunk, -(-step // chunk) * chunk)
    gt = g2.t()
    for start in range(0, n_out, step):
        stop = min(n_out, start + step)
        parts = [gt[c : min(stop, c + chunk)] @ x2 for c in range(start, stop, chunk)]
        yield start, parts[0] if len(parts) == 1 else torch.cat(parts)


class LayerGradient:
    """A layer's dense weight gradient, kept as its input and output gradient until scored in blocks."""

    def __init__(self, x: torch.Tensor, grad_y: torch.Tensor):
        self.x = x.detach()
        self.grad_y = grad_y.detach()
        self.shape = (self.grad_y.shape[-1], self.x.shape[-1])  # (n_out, n_in)

    def blocks(self, block: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        return dense_gradient(self.x, self.grad_y, block)

    def dense(self) -> torch.Tensor:
        """All of it (the same numbers as the blocks): for layers that fit in memory."""
        return next(self.blocks())[1]
