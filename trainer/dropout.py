"""ReLU followed by dropout, with the two ways of drawing the dropout mask (rule `dropout_draw`).

Both draw the same distribution: each unit kept with probability 1 - p and scaled by
1 / (1 - p) (inverted dropout: Keras's `Dropout(p)` in SET's reference code, torch's F.dropout).
They differ in the random stream, and in cost:

- torch-bernoulli: torch's `bernoulli_(1 - p)` on a tensor of the activations' shape, drawn in
  row-major (batch, unit) order on both backends; F.dropout's draws, bit for bit, leaving torch's
  generator where F.dropout leaves it. torch's own CPU kernel draws one number at a time (~9 ns
  per unit), so the draws are replayed from its state in numba (trainer/torch_mt.py) and fused
  with the ReLU and the scaling: ~0.5 ns per unit row-major, ~1 ns column-major. Where this torch
  build's generator is not the one replayed, torch's bernoulli_ draws them (same numbers).
- counter-hash: unit (b, j) of a call is kept when the top 24 bits of SplitMix64's output
  number b * n + j, in a stream seeded by one draw from torch's global generator, are below
  round((1 - p) * 2^24). Counter-based, so the mask is computed in the same pass as the ReLU and
  the scaling, in either memory layout; the backward pass reads the output instead of a stored
  mask. Under 1 ns per unit. The keep probability is (1 - p) rounded to a multiple of 2^-24.
Either way, given the same kept units, the outputs and gradients are bit-identical
(ReLU's gradient where the input is > 0, times the same float32 scale).
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np
import torch

from . import torch_mt

DROPOUT_DRAWS = ("torch-bernoulli", "counter-hash")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@nb.njit(inline="always")
def _splitmix64(state: np.uint64) -> np.uint64:
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def _kept(seed: np.uint64, index: np.uint64, threshold: np.uint64) -> bool:
    # Output number `index` of SplitMix64 seeded with `seed`: the state advances by the golden gamma.
    return (_splitmix64(seed + (index + np.uint64(1)) * _GOLDEN) >> np.uint64(40)) < threshold


@nb.njit(cache=True, nogil=True)
def _forward(x, out, seed, threshold, scale, transposed):
    # x, out: 2-D C-contiguous; transposed: they hold (n, batch), the unit (b, j) at [j, b].
    rows, cols = x.shape
    n = rows if transposed else cols
    for r in range(rows):
        for c in range(cols):
            v = x[r, c]
            index = np.uint64(c * n + r) if transposed else np.uint64(r * n + c)
            if v > 0 and _kept(seed, index, threshold):
                out[r, c] = v * scale
            else:
                out[r, c] = 0


@nb.njit(cache=True, nogil=True)
def _backward(grad, out, grad_in, scale):
    # A unit passed gradient iff its output is > 0: kept, and its input was > 0 (a positive
    # float32 times the scale never rounds to 0).
    rows, cols = grad.shape
    for r in range(rows):
        for c in range(cols):
            grad_in[r, c] = grad[r, c] * scale if out[r, c] > 0 else 0


def _as_rows(t: torch.Tensor) -> tuple[np.ndarray, bool]:
    """A 2-D tensor as a C-contiguous numpy view and whether that view is its transpose."""
    if t.is_contiguous():
        return t.numpy(), False
    if t.t().is_contiguous():
        return t.t().numpy(), True
    return t.contiguous().numpy(), False


@nb.njit(inline="always")
def _apply_noise(x, out, kept, scale):
    # 1-D slices (loops over whole-array offsets do not vectorise)
    zero = np.float32(0)
    for j in range(x.size):
        v = x[j]
        r = v if (v > 0 or v != v) else zero
        out[j] = r * (scale if kept[j] else zero)


_DRAW_ROWS = 16  # batch rows drawn ahead: a column-major layer then reads 16 adjacent values


@nb.njit(cache=True, nogil=True)
def _torch_forward(x, out, threshold, scale, transposed, words, tempered, position):
    # torch's bernoulli_ draws, in row-major (batch, unit) order (trainer.torch_mt), a block of
    # batch rows at a time. out = relu(x) * noise with noise in {0, scale}, as the unfused ops
    # compute it (a dropped NaN or inf stays NaN).
    rows, cols = x.shape
    batch, n = (cols, rows) if transposed else (rows, cols)
    kept = np.empty((_DRAW_ROWS, n), dtype=np.bool_)
    for b0 in range(0, batch, _DRAW_ROWS):
        block = min(_DRAW_ROWS, batch - b0)
        for i in range(block):
            position = torch_mt.draw_bernoulli(kept[i], threshold, words, tempered, position)
        if transposed:
            for j in range(n):
                _apply_noise(x[j, b0 : b0 + block], out[j, b0 : b0 + block], kept[:block, j], scale)
        else:
            for i in range(block):
                _apply_noise(x[b0 + i], out[b0 + i], kept[i], scale)
    return position


def _counter_hash_fill(p: float, scale: np.float32):
    seed = np.uint64(int(torch.randint(0, 2**62, (1,)).item()))
    threshold = np.uint64(round((1.0 - p) * 2**24))

    def fill(xa, oa, transposed):
        _forward(xa, oa, seed, threshold, scale, transposed)

    return fill


def _torch_bernoulli_fill(p: float, scale: np.float32):
    def fill(xa, oa, transposed):
        with torch_mt.Mt19937() as mt:
            mt.position = _torch_forward(
                xa, oa, torch_mt.bernoulli_threshold(1.0 - p), scale, transposed, mt.words, mt.tempered, mt.position
            )

    return fill


@functools.lru_cache(maxsize=64)
def _noise_scale(p: float) -> np.float32:
    """F.dropout's kept-unit value, noise.div_(1 - p), computed by torch itself."""
    return np.float32(torch.ones(1).div_(1 - p).item())


class _FusedReluDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, fill):
        x2 = x.detach()
        if not (x2.is_contiguous() or x2.t().is_contiguous()):
            x2 = x2.contiguous()
        out = torch.empty_like(x2)  # the same strides: a column-major input stays column-major
        xa, transposed = _as_rows(x2)
        oa, _ = _as_rows(out)
        fill(xa, oa, transposed)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        if grad.stride() != out.stride():
            grad = torch.empty_like(out).copy_(grad)
        grad_in = torch.empty_like(out)
        ga, _ = _as_rows(grad)
        oa, _ = _as_rows(out)
        ia, _ = _as_rows(grad_in)
        _backward(ga, oa, ia, ctx.scale)
        return grad_in, None, None


def relu_dropout(x: torch.Tensor, p: float, draw: str, training: bool = True) -> torch.Tensor:
    """dropout(relu(x)) for 2-D x (batch, units) in either layout, keeping the layout.

    Outside training, or at p = 0, just the ReLU. `draw` is the rule (DROPOUT_DRAWS); both draw
    from torch's global generator, so a seed set by torch.manual_seed decides the masks.
    """
    if not training or p == 0:
        return torch.relu(x)
    if p >= 1:
        return torch.relu(x) * 0
    fused = x.dim() == 2 and x.dtype == torch.float32 and x.device.type == "cpu"
    if draw == "torch-bernoulli" and fused and torch_mt.replays_torch():
        scale = _noise_scale(float(p))
        return _FusedReluDropout.apply(x, scale, _torch_bernoulli_fill(float(p), scale))
    if draw == "torch-bernoulli":
        # F.dropout draws in the memory order of its input; drawing row-major keeps the masked
        # backend's (row-major) and the sparse backend's (column-major) activations alike.
        y = torch.relu(x)
        noise = torch.empty(y.shape, dtype=y.dtype).bernoulli_(1 - p)
        noise.div_(1 - p)
        return y * noise
    if draw == "counter-hash":
        if not fused:
            raise ValueError(
                f"counter-hash dropout takes a 2-D float32 CPU tensor, got a {x.dim()}-D {x.dtype} tensor on {x.device}"
            )
        scale = np.float32(1.0) / np.float32(1.0 - p)
        return _FusedReluDropout.apply(x, scale, _counter_hash_fill(float(p), scale))
    raise ValueError(f"unknown dropout draw '{draw}'; choose one of: {', '.join(DROPOUT_DRAWS)}")


def prepare(draw: str) -> None:
    """Load a draw's kernels now (numba's cache, the generator check: ~0.3 s once per process),
    so the first training step does not pay for it. Leaves torch's generator untouched."""
    if draw not in DROPOUT_DRAWS:
        raise ValueError(f"unknown dropout draw '{draw}'; choose one of: {', '.join(DROPOUT_DRAWS)}")
    state = torch.get_rng_state()
    try:
        for x in (torch.ones(2, 3), torch.ones(3, 2).t()):
            x.requires_grad_(True)
            relu_dropout(x, 0.5, draw).sum().backward()
    finally:
        torch.set_rng_state(state)
