"""torch's CPU generator (MT19937), replayed in numba so a kernel can draw torch's own numbers.

torch's `bernoulli_(p)` on a CPU tensor draws one 64-bit number per element, serially, from the
global generator: two MT19937 outputs (high word first), kept when their low 53 bits times 2^-53
are below p. That stream is what makes F.dropout reproducible from torch.manual_seed, and it is
slow (~9 ns per element). `Mt19937` reads the generator's state (torch.get_rng_state), lets a
numba kernel draw the same numbers in the same order, and writes the advanced state back, so
torch's next draw is the one it would have made.

The state's byte layout is torch's (CPUGeneratorImplState: seed, `left`, `seeded`, `next`, 624
words as uint64, the normal-sample caches). `replays_torch()` checks it once per process against
bernoulli_ itself; where it does not hold (another torch build), callers use torch's bernoulli_.
Not thread-safe against other threads drawing from the global generator at the same time.
"""

from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np
import torch

N, M = 624, 397
_MATRIX_A = np.uint32(0x9908B0DF)
_UPPER = np.uint32(0x80000000)
_LOWER = np.uint32(0x7FFFFFFF)
_STATE_BYTES = 5056
_LEFT, _NEXT, _WORDS = slice(8, 12), slice(16, 24), slice(24, 24 + N * 8)
MASK53 = np.uint64((1 << 53) - 1)


@nb.njit(inline="always")
def _twist(u, v):
    y = (u & _UPPER) | (v & _LOWER)
    return (y >> np.uint32(1)) ^ (_MATRIX_A if v & np.uint32(1) else np.uint32(0))


@nb.njit(inline="always")
def temper(y):
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    return y ^ (y >> np.uint32(18))


@nb.njit(cache=True, nogil=True)
def refill(words, tempered):
    """The next 624 words in place (MT19937's twist), and their tempered outputs."""
    for j in range(N - M):
        words[j] = words[j + M] ^ _twist(words[j], words[j + 1])
    for j in range(N - M, N - 1):
        words[j] = words[j + M - N] ^ _twist(words[j], words[j + 1])
    words[N - 1] = words[M - 1] ^ _twist(words[N - 1], words[0])
    for j in range(N):
        tempered[j] = temper(words[j])


@nb.njit(cache=True, nogil=True)
def _temper_from(words, tempered, start):
    for j in range(start, N):
        tempered[j] = temper(words[j])


class Mt19937:
    """The global generator's state while a kernel draws from it (a context manager).

    Inside, `words` (uint32[624]), `tempered` (their outputs) and `position` describe the stream:
    the next output is tempered[position], and position == 624 means a refill comes first.
    A kernel returns its new position; on exit the state goes back into torch.
    """

    def __enter__(self) -> Mt19937:
        self._raw = torch.get_rng_state().numpy().copy()
        self.words = self._raw[_WORDS].view(np.uint64).astype(np.uint32)
        # torch's engine decrements `left` before each output and refills when it reaches 0, so
        # left = 625 - (outputs since the last refill); a freshly seeded state has left = 1.
        self.position = N + 1 - int(self._raw[_LEFT].view(np.int32)[0])
        self.tempered = np.empty(N, dtype=np.uint32)
        _temper_from(self.words, self.tempered, self.position)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            return  # a failed kernel leaves torch's generator where it was
        self._raw[_LEFT].view(np.int32)[0] = N + 1 - self.position
        self._raw[_NEXT].view(np.uint64)[0] = self.position
        self._raw[_WORDS].view(np.uint64)[:] = self.words
        torch.set_rng_state(torch.from_numpy(self._raw))


def bernoulli_threshold(p: float) -> np.uint64:
    """T such that torch's draw (low 53 bits m of a 64-bit number) is kept, m * 2^-53 < p, iff m < T.

    Exact: scaling by 2^53 rounds nothing, and m is an integer."""
    return np.uint64(min(max(math.ceil(p * 2.0**53), 0), 2**53))


@nb.njit(cache=True, nogil=True)
def draw_bernoulli(out, threshold, words, tempered, position):
    """out[i] = torch's i-th next bernoulli_(p) draw (threshold = bernoulli_threshold(p)), for a
    1-D bool `out`; returns the new position."""
    i, size = 0, out.size
    while i < size:
        if position == N:
            refill(words, tempered)
            position = 0
        if position == N - 1:  # the draw's two words straddle a refill
            hi = np.uint64(tempered[N - 1])
            refill(words, tempered)
            out[i] = ((hi << np.uint64(32)) | np.uint64(tempered[0])) & MASK53 < threshold
            position, i = 1, i + 1
            continue
        m = min((N - position) // 2, size - i)
        # Through slices: indexing the whole arrays with offsets does not vectorise (4x slower).
        kept, words_used = out[i : i + m], tempered[position : position + 2 * m]
        for k in range(m):
            draw = (np.uint64(words_used[2 * k]) << np.uint64(32)) | np.uint64(words_used[2 * k + 1])
            kept[k] = draw & MASK53 < threshold
        position += 2 * m
        i += m
    return position


def bernoulli(n: int, p: float) -> np.ndarray:
    """n draws of torch.empty(n).bernoulli_(p) as bools, advancing torch's generator alike."""
    out = np.empty(n, dtype=np.bool_)
    with Mt19937() as mt:
        mt.position = draw_bernoulli(out, bernoulli_threshold(p), mt.words, mt.tempered, mt.position)
    return out


@functools.cache
def replays_torch() -> bool:
    """Whether this torch build's generator is the one replayed here (checked once per process)."""
    if torch.get_rng_state().numel() != _STATE_BYTES:
        return False
    saved = torch.get_rng_state()
    try:
        torch.manual_seed(20201)
        torch.rand(7)  # start mid-block; 1,500 draws then cross several refills
        start = torch.get_rng_state()
        want = torch.empty(1500, dtype=torch.float64).bernoulli_(0.61).numpy().astype(bool)
        after_torch = torch.get_rng_state()
        torch.set_rng_state(start)
        got = bernoulli(1500, 0.61)
        return bool(np.array_equal(got, want) and torch.equal(torch.get_rng_state(), after_torch))
    finally:
        torch.set_rng_state(saved)
