"""scipy's `linear_sum_assignment`, decision for decision, on costs that are mostly one value.

NNSTD's exact method must return the very permutation scipy returns, because
the matching relabels the next layer. scipy
(scipy/optimize/rectangular_lsap/rectangular_lsap.cpp, the same source in every
release from 1.11 to 1.17.1; 1.9 stopped subtracting the matrix minimum first
and so changed the arithmetic) solves a square problem
with Crouse's shortest augmenting path. For each row `cur` in order it runs a
Dijkstra search over the columns, with a `remaining` list that starts as
n-1, ..., 0 and loses each selected entry by swap-removal
(`remaining[index] = remaining[--num_remaining]`). A step scans row i over all
remaining columns j in that order,

    r = ((minVal + cost[i, j]) - u[i]) - v[j];  if r < spc[j]: spc[j] = r, path[j] = i

and selects the column with the lowest spc, a later column replacing an equal
one only when it is free (row4col == -1); minVal becomes that spc. A free
column ends the search; a matched one continues the search from its row. Then
u[cur] += minVal, u[i] += minVal - spc[col4row[i]] for the other scanned rows,
v[j] -= minVal - spc[j] for the selected columns, and the path is augmented.
Every step costs O(n), so a late row whose search visits most columns costs
O(n^2). On NNSTD's 784-neuron layers the searches total some 55,000 steps.

`solve` makes the same decisions and computes every value that can influence
one (spc and path of the selected columns, minVal, u, v) with scipy's floating
point operations in scipy's order. The matrix is a background value `bg`
(NNSTD: 1.0, about 97 % of the entries) except for explicit entries that
are <= bg. The argument:

1. Background entries. For a background entry r = C_i - v[j], where
   C_i = (minVal + bg) - u[i] is one number per scanned row. Rounding is
   monotone, so over the rows scanned so far min_i fl(C_i - v[j]) equals
   fl(Cmin - v[j]), where Cmin = min_i C_i. An explicit entry is never above its
   row's background value (c <= bg, and every operation is monotone). So
   spc[j] = min(fl(Cmin - v[j]), T[j]), where T[j] is the least explicit value.
2. Free columns have v == +0.0 exactly: v[j] only changes by minVal - spc[j],
   and for the column that ends a search that is x - x = +0.0. At least one
   column is free during every search, so the lowest spc is <= Cmin. A column
   with v[j] <= 0 has fl(Cmin - v[j]) >= Cmin, so below Cmin only its explicit
   values count. Columns with v[j] > 0 exist: rounding makes minVal dip now and
   then, leaving a few such columns per search. They are listed and evaluated at
   every row exactly as scipy evaluates them, so their T is their spc. (Their
   background value is offered before the row's explicit entries; an explicit
   entry for the same column is never larger and comes later, so it is the one
   that stays.)
3. Selection. If the least T is below Cmin, the columns with that T are exactly
   the ones with the lowest spc. A queue ordered by (T, key) gives scipy's choice,
   where the key puts free columns first, the latest in scan order first among
   them, and otherwise the earliest in scan order (positions are tracked
   through the swap-removals). Otherwise the lowest spc is Cmin, every free
   column attains it, and scipy takes the free column latest in scan order.
4. path and spc. spc is updated only on strict <, so path[j] is the first
   scanned row that attains the minimum. For a queue pick that is the first row
   whose evaluated value reached T[j] (a background value there is >= Cmin > T).
   For a free pick at Cmin it is the earlier of the first row with C_i == Cmin
   and the first explicit row that reaches Cmin, and spc is that row's value.
   The duals and the augmentation use only these values, with scipy's
   operations. Each u[i] and v[j] is one independent update, so the order over
   rows and columns does not matter.

So a search step costs the scanned row's explicit entries plus queue work,
instead of a pass over all remaining columns (benchmarks/nnstd_bench.py times
both on NNSTD's layers). The queue (see `_solve`) keeps coarse buckets of T in
front of a binary heap on (T, key). Entries are only ever added, and an entry
counts while it still holds its column's T and key. The bucketing is monotone,
so the heap's least valid entry is the least (T, key) of the queue. Costs must
be finite; the dense matrix is never built.

The first call in a fresh environment compiles with numba, which takes seconds.
`cache=True` keeps the machine code in __pycache__ next to this file, so later
processes only load it (benchmarks/nnstd_bench.py, part 0, times both); the
parallel NNSTD workers are forked from a server that has loaded it
(analysis/_lsap_preload.py).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# Helpers that take arrays and allocate nothing are compiled without numba's reference
# counting (as numba compiles its own such helpers): otherwise every call pays atomic
# increments and decrements for each array argument, more than the work itself.
# numba's type hints leave out these two options (internal, but what its own helpers use).
_helper = nb.njit(cache=True, no_cpython_wrapper=True, _nrt=False)  # type: ignore[call-overload]

_WORDS = 64  # bitmap words over the coarse buckets
_BUCKETS = 64 * _WORDS
_LOW32 = 0xFFFFFFFF


@nb.njit(cache=True, inline="always")
def _bucket_of(val, lo, scale):
    """Coarse bucket of a T: monotone in T (every operation is), whatever lo and scale > 0."""
    x = (val - lo) * scale
    if x < 0.0:
        return 0
    if x >= _BUCKETS:
        return _BUCKETS - 1
    return int(x)


@nb.njit(cache=True, inline="always")
def _lowest_bit(w):
    """Index of the lowest set bit of a nonzero uint64 (an exact power of two through frexp)."""
    return math.frexp(float(w & (~w + np.uint64(1))))[1] - 1


@_helper
def _sift_up(hval, hpk, k, val, pk):
    """Place (val, pk) at hole k or above it, moving greater parents down."""
    while k > 0:
        parent = (k - 1) >> 1
        pv = hval[parent]
        if not (val < pv or (val == pv and pk < hpk[parent])):
            break
        hval[k], hpk[k] = pv, hpk[parent]
        k = parent
    hval[k], hpk[k] = val, pk


@_helper
def _heap_push(hval, hpk, size, val, pk):
    """Binary heap on (value, packed) with packed = position key << 32 | column."""
    _sift_up(hval, hpk, size, val, pk)


@_helper
def _heap_pop(hval, hpk, size):
    """Remove the top of a heap of `size` entries (Floyd: the hole goes down along the lesser
    children, chosen without branches, and the last entry sifts up from there)."""
    size -= 1
    val, pk = hval[size], hpk[size]
    k = 0
    while True:
        c = 2 * k + 1
        if c >= size:
            break
        if c + 1 < size:
            v1, v2 = hval[c], hval[c + 1]
            c += (v2 < v1) | ((v2 == v1) & (hpk[c + 1] < hpk[c]))
        hval[k], hpk[k] = hval[c], hpk[c]
        k = c
    _sift_up(hval, hpk, k, val, pk)


@_helper
def _key(j, n, pos, row4col):
    """Position key: free columns first, the latest in scan order first; then the earliest."""
    return n - 1 - pos[j] if row4col[j] == -1 else n + pos[j]


@_helper
def _heap_compact(hval, hpk, size, n, best, pos, row4col):
    """Drop the entries that no longer count (at most one per column remains) and re-heapify;
    returns the new size."""
    m = 0
    for k in range(size):
        g = hpk[k] & _LOW32
        if hval[k] == best[g] and (hpk[k] >> 32) == _key(g, n, pos, row4col):
            hval[m], hpk[m] = hval[k], hpk[k]
            m += 1
    for k in range(m):  # re-insert in place: a prefix of a heap is a heap
        val, pk = hval[k], hpk[k]
        _heap_push(hval, hpk, k, val, pk)
    return m


@_helper
def _pool_compact(pool_col, pool_next, head, bits, qb, keep):
    """Rebuild the bucket lists from their live entries (at most one per column); returns
    the number of entries."""
    n_keep = 0
    for w in range(_WORDS):
        x = bits[w]
        while x != 0:
            b = (w << 6) + _lowest_bit(x)
            x &= ~(np.uint64(1) << np.uint64(b & 63))
            e = head[b]
            while e >= 0:
                if qb[pool_col[e]] == b:
                    keep[n_keep] = pool_col[e]
                    n_keep += 1
                e = pool_next[e]
            head[b] = -1
        bits[w] = 0
    for e in range(n_keep):
        g = keep[e]
        b = qb[g]
        pool_col[e] = g
        pool_next[e] = head[b]
        if head[b] < 0:
            bits[b >> 6] |= np.uint64(1) << np.uint64(b & 63)
        head[b] = e
    return n_keep


@nb.njit(cache=True)
def _solve(n, bg, indptr, indices, data, cap):
    u = np.zeros(n)
    v = np.zeros(n)
    col4row = np.full(n, -1, np.int64)
    row4col = np.full(n, -1, np.int64)
    path = np.full(n, -1, np.int64)
    spc = np.full(n, np.inf)  # scipy's spc, for the columns selected in this search
    # T[j] (least explicit value) and its first row; -inf once j is selected, so that
    # `r < best[j]` also skips selected columns
    best = np.full(n, np.inf)
    best_row = np.full(n, -1, np.int64)
    selected = np.empty(n, np.int64)
    cand = np.empty(2 * n, np.uint32)  # unsigned indices: no negative-index handling in hot loops
    cand_r = np.empty(2 * n)
    # scipy's `remaining` and each column's position in it
    remaining = np.empty(n, np.int64)
    pos = np.empty(n, np.int64)
    for it in range(n):
        remaining[it] = n - 1 - it
        pos[n - 1 - it] = it
    written = np.empty(n, np.int64)  # slots of `remaining` overwritten in this search
    moved = np.empty(n, np.int64)  # columns moved in this search
    is_moved = np.zeros(n, np.bool_)
    scanned = np.empty(n, np.int64)  # rows in scan order
    order = np.full(n, -1, np.int64)  # scan index of a row in this search
    c_of = np.empty(n)  # C of each scanned row, by scan index
    # columns with v > 0, evaluated at every row
    in_pos = np.zeros(n, np.bool_)
    pos_cols = np.empty(n, np.int64)
    n_pos = 0
    # free columns: a doubly linked list in index order
    free_next = np.arange(1, n + 1, dtype=np.int64)
    free_prev = np.arange(-1, n - 1, dtype=np.int64)
    free_head = 0
    # The queue of the columns with T < Cmin, lazy: entries are only ever added, and an entry
    # counts only while it still describes its column. Coarse buckets above `front` hold
    # unsorted entries in singly linked lists (qb[j]: bucket of j's live bucket entry, or -1);
    # entries of buckets <= front are in a binary heap on (T, position key), valid while the
    # value is best[j] (T strictly decreases, so each value occurs once per search; selected
    # columns hold -inf) and the key is the column's current one. A bucket holds strictly
    # larger T than any lower bucket, so the heap's least valid entry is the queue's least.
    head = np.full(_BUCKETS, -1, np.int64)
    bits = np.zeros(_WORDS, np.uint64)
    qb = np.full(n, -1, np.int64)
    # fixed capacities, cap > n (numba keeps reference counting out of the hot loop only if no
    # array is ever reassigned): when full, compaction leaves at most n entries
    pool_col = np.empty(cap, np.int64)
    pool_next = np.empty(cap, np.int64)
    keep = np.empty(n, np.int64)
    hval = np.empty(cap)
    hpk = np.empty(cap, np.int64)

    for cur in range(n):
        min_val = 0.0
        i = cur
        n_rem = n
        c_min = np.inf
        c_min_scan = -1
        n_scan = 0
        n_sel = 0
        n_written = 0
        n_moved = 0
        sink = -1
        lo = 0.0
        scale = 1.0
        front = -1  # buckets <= front live in the heap
        size = 0  # heap entries
        n_pool = 0  # bucket entries
        while sink == -1:
            scanned[n_scan] = i
            order[i] = n_scan
            ui = u[i]
            c = (min_val + bg) - ui
            c_of[n_scan] = c
            if n_scan == 0:
                # bucket range: from minVal = 0 to this first C, above every T that is queued;
                # any finite positive scale keeps the bucketing monotone
                scale = _BUCKETS / c if c > 0.0 else 1.0
                if not scale < np.inf:
                    scale = 1.0
            if c < c_min:
                c_min = c
                c_min_scan = n_scan
            n_scan += 1

            # candidates: the entries that improve best[j], collected without branches; first the
            # background entries of the columns with v > 0, then the explicit entries. A column
            # can be in both lists only if it has an explicit entry here: that value is <= the
            # background one and comes later, so it is the one that stays, as in scipy.
            m = 0
            for q in range(n_pos):
                pc = pos_cols[q]
                r = c - v[pc]
                cand[m] = pc
                cand_r[m] = r
                m += r < best[pc]
            for e in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
                col = indices[e]
                r = ((min_val + data[e]) - ui) - v[col]
                cand[m] = col
                cand_r[m] = r
                m += r < best[col]
            for q in range(m):
                col = cand[q]
                r = cand_r[q]
                best[col] = r
                best_row[col] = i
                if r < c_min:
                    b = _bucket_of(r, lo, scale)
                    if b <= front:
                        qb[col] = -1
                        if size == cap:
                            size = _heap_compact(hval, hpk, size, n, best, pos, row4col)
                        _heap_push(hval, hpk, size, r, (_key(col, n, pos, row4col) << 32) | col)
                        size += 1
                    elif qb[col] != b:
                        qb[col] = b
                        if n_pool == cap:
                            n_pool = _pool_compact(pool_col, pool_next, head, bits, qb, keep)
                        pool_col[n_pool] = col
                        pool_next[n_pool] = head[b]
                        if head[b] < 0:
                            bits[b >> 6] |= np.uint64(1) << np.uint64(b & 63)
                        head[b] = n_pool
                        n_pool += 1

            # the least valid heap entry, after moving the next bucket in while the heap is empty
            while True:
                while size > 0:
                    g = np.uint32(hpk[0] & _LOW32)
                    if hval[0] == best[g] and (hpk[0] >> 32) == _key(g, n, pos, row4col):
                        break
                    _heap_pop(hval, hpk, size)
                    size -= 1
                if size > 0:
                    break
                w = (front + 1) >> 6
                while w < _WORDS and bits[w] == 0:
                    w += 1
                if w == _WORDS:
                    break
                front = (w << 6) + _lowest_bit(bits[w])
                bits[w] &= ~(np.uint64(1) << np.uint64(front & 63))
                e = head[front]
                head[front] = -1
                while e >= 0:
                    g = pool_col[e]
                    if qb[g] == front:
                        qb[g] = -1
                        if size == cap:
                            size = _heap_compact(hval, hpk, size, n, best, pos, row4col)
                        _heap_push(hval, hpk, size, best[g], (_key(g, n, pos, row4col) << 32) | g)
                        size += 1
                    e = pool_next[e]

            if size > 0 and hval[0] < c_min:
                j = hpk[0] & _LOW32
                _heap_pop(hval, hpk, size)
                size -= 1
                spc[j] = best[j]
                path[j] = best_row[j]
            else:
                # the lowest spc is c_min, reached by every free column: scipy takes the free
                # column latest in scan order, the lowest unmoved one or a moved one
                j = -1
                far = -1
                f = free_head
                while f < n and is_moved[f]:
                    f = free_next[f]
                if f < n:
                    j, far = f, pos[f]
                for q in range(n_moved):
                    g = moved[q]
                    if row4col[g] == -1 and pos[g] > far:
                        j, far = g, pos[g]
                first = c_min_scan
                if best[j] == c_min and order[best_row[j]] <= first:
                    path[j] = best_row[j]
                    spc[j] = best[j]
                else:
                    path[j] = scanned[first]
                    spc[j] = c_of[first] - v[j]
            min_val = spc[j]
            best[j] = -np.inf
            selected[n_sel] = j
            n_sel += 1
            # swap-removal from `remaining`
            index = pos[j]
            n_rem -= 1
            last = remaining[n_rem]
            if last != j:
                remaining[index] = last
                pos[last] = index
                written[n_written] = index
                n_written += 1
                if not is_moved[last]:
                    is_moved[last] = True
                    moved[n_moved] = last
                    n_moved += 1
                if best[last] < c_min and qb[last] < 0:
                    # queued in the heap: its key changed, so add an entry with the new key
                    # (the old one no longer counts)
                    if size == cap:
                        size = _heap_compact(hval, hpk, size, n, best, pos, row4col)
                    _heap_push(hval, hpk, size, best[last], (_key(last, n, pos, row4col) << 32) | last)
                    size += 1
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]

        # dual updates, scipy's operations: u[cur], the other scanned rows, the selected columns
        u[cur] += min_val
        for s in range(1, n_scan):
            r_i = scanned[s]
            u[r_i] += min_val - spc[col4row[r_i]]
        for s in range(n_sel):
            j = selected[s]
            v[j] -= min_val - spc[j]
            if v[j] > 0:
                if not in_pos[j]:
                    in_pos[j] = True
                    pos_cols[n_pos] = j
                    n_pos += 1
            elif in_pos[j]:
                in_pos[j] = False
        if n_pos:
            kept = 0
            for q in range(n_pos):
                if in_pos[pos_cols[q]]:
                    pos_cols[kept] = pos_cols[q]
                    kept += 1
            n_pos = kept

        # augment
        j = sink
        while True:
            r_i = path[j]
            row4col[j] = r_i
            col4row[r_i], j = j, col4row[r_i]
            if r_i == cur:
                break
        # the sink is no longer free
        if free_prev[sink] >= 0:
            free_next[free_prev[sink]] = free_next[sink]
        else:
            free_head = free_next[sink]
        if free_next[sink] < n:
            free_prev[free_next[sink]] = free_prev[sink]

        # reset this search's state
        best[:] = np.inf
        qb[:] = -1
        for s in range(n_scan):
            order[scanned[s]] = -1
        for w in range(_WORDS):
            while bits[w] != 0:
                b = (w << 6) + _lowest_bit(bits[w])
                head[b] = -1
                bits[w] &= ~(np.uint64(1) << np.uint64(b & 63))
        for s in range(n_written):
            remaining[written[s]] = n - 1 - written[s]
        for s in range(n_moved):
            g = moved[s]
            pos[g] = n - 1 - g
            is_moved[g] = False
    return col4row


def solve(
    n: int, background: float, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, capacity: int | None = None
) -> np.ndarray:
    """scipy's `linear_sum_assignment(cost)[1]` for the n x n matrix that is `background` except
    for the explicit CSR entries (indptr, indices, data), each <= background. Finite values only;
    no duplicate columns within a row. `capacity` (> n, default 2n + 1) sizes the queue's
    arrays; a small one only makes compaction frequent (the tests use that)."""
    if n >= 2**31:
        raise ValueError("too many rows")
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.asarray(indices)
    data = np.ascontiguousarray(data, dtype=np.float64)
    background = float(background)
    if len(indptr) != n + 1 or indptr[0] != 0 or indptr[-1] != len(indices) or len(data) != len(indices):
        raise ValueError("malformed CSR structure")
    if len(indices) and (np.min(indices) < 0 or np.max(indices) >= n):
        raise ValueError("malformed CSR structure")
    indices = np.ascontiguousarray(indices, dtype=np.uint32)
    if not (np.isfinite(background) and np.isfinite(data).all()):
        raise ValueError("costs must be finite")
    if (data > background).any():
        raise ValueError("explicit costs must not exceed the background value")
    capacity = 2 * n + 1 if capacity is None else int(capacity)
    if capacity <= n:
        raise ValueError("capacity must exceed n")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    return _solve(n, background, indptr, indices, data, capacity)


def solve_dense(cost: np.ndarray, capacity: int | None = None) -> np.ndarray:
    """`linear_sum_assignment(cost)[1]` for a square finite matrix, through `solve`
    (background = the largest entry, explicit entries = all the others)."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError("solve_dense needs a square matrix")
    n = cost.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    background = cost.max()
    rows, cols = np.nonzero(cost != background)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return solve(n, background, indptr, cols, cost[rows, cols], capacity)


def warm_up() -> None:
    """Compile the solver (or load it from numba's cache) now rather than at the first layer."""
    solve(2, 1.0, np.array([0, 1, 1]), np.array([1]), np.array([0.5]))
