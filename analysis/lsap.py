"""scipy's `linear_sum_assignment`, decision for decision, on costs that are mostly one value.

NNSTD's exact method must return the very permutation scipy 1.17.1 returns,
because the matching relabels the next layer. scipy
(scipy/optimize/rectangular_lsap/rectangular_lsap.cpp) solves a square problem
with Crouse's shortest augmenting path: for each row `cur` in order, a
Dijkstra search over the columns with a `remaining` list that starts as
n-1, ..., 0 and loses its selected entry by swap-removal
(`remaining[index] = remaining[--num_remaining]`). Each step scans row i over
all remaining columns j,

    r = ((minVal + cost[i, j]) - u[i]) - v[j];  if r < spc[j]: spc[j] = r, path[j] = i

and selects, in that scan order, the column with the lowest spc, a later
column replacing an equal one only when it is free (row4col == -1); minVal
becomes that spc. A free column ends the search; a matched one continues with
its row. Then u[cur] += minVal, u[i] += minVal - spc[col4row[i]] for the other
scanned rows, v[j] -= minVal - spc[j] for the selected columns, and the path is
augmented. Every step is O(n), so a late row whose search visits most columns
costs O(n²): on NNSTD's 784-neuron layers the searches total some 55,000 steps.

`solve` makes the same decisions and the same floating-point operations on the
values that matter, where cost[i, j] is a "background" value `bg` (NNSTD: 1.0,
about 97 % of entries) except for explicit entries that must be <= bg:

1. For a background entry r = C_i - v[j] with C_i = (minVal + bg) - u[i], one
   number per scanned row. Rounding is monotone, so over the rows scanned so far
   min_i fl(C_i - v[j]) = fl(Cmin - v[j]) with Cmin = min_i C_i; an explicit
   entry is never above the background value of its row (c <= bg, monotone), so
   spc[j] = min(fl(Cmin - v[j]), T[j]), T[j] being the least explicit value.
2. Free columns have v == +0.0 exactly (v[j] only ever changes by
   minVal - spc[j], which is x - x = +0.0 for the column that ends a search),
   and at least one free column remains in every search. So min spc <= Cmin.
   Columns with v[j] <= 0 have fl(Cmin - v[j]) >= Cmin: below Cmin only their
   explicit values count. Columns with v[j] > 0 (rounding makes minVal dip now
   and then, a few columns per search) are kept in a list and evaluated at every
   row exactly as scipy does, so their T is their spc.
3. Hence the selection: if some column has T < Cmin, those are exactly the
   columns with the lowest spc; an indexed heap ordered by (T, free first,
   then position: the last free one in scan order, else the first one) gives
   scipy's choice. Otherwise the lowest spc is Cmin, every free column attains
   it, and scipy picks the free column latest in scan order (positions are
   tracked through the swap-removals); its path is the first scanned row with
   C_i == Cmin or its first explicit row reaching Cmin, whichever came first,
   and its spc that row's value, computed with scipy's operations.
4. Every strict-< update of spc is taken by the first row that reaches the
   minimum, so path[j] is the first row attaining T[j] (a background value
   never equals a T below Cmin). Selected columns keep spc and path as scipy
   has them; the duals and the augmentation use only those, in scipy's
   operations (each u[i], v[j] is one independent update, so the order over
   rows and columns does not matter).

Per search step the work is the scanned row's explicit entries plus heap
updates, instead of all remaining columns. Costs must be finite; the dense
matrix is never built.

The first call compiles with numba (a few seconds) and caches the machine code
next to this file (`cache=True`), so later processes start at once.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def _before(va, ka, vb, kb):
    return va < vb or (va == vb and ka < kb)


@nb.njit(cache=True)
def _sift_up(heap, hval, hkey, hpos, k):
    col, val, key = heap[k], hval[k], hkey[k]
    while k > 0:
        parent = (k - 1) >> 1
        if not _before(val, key, hval[parent], hkey[parent]):
            break
        heap[k], hval[k], hkey[k] = heap[parent], hval[parent], hkey[parent]
        hpos[heap[k]] = k
        k = parent
    heap[k], hval[k], hkey[k] = col, val, key
    hpos[col] = k


@nb.njit(cache=True)
def _sift_down(heap, hval, hkey, hpos, k, size):
    col, val, key = heap[k], hval[k], hkey[k]
    while True:
        child = 2 * k + 1
        if child >= size:
            break
        if child + 1 < size and _before(hval[child + 1], hkey[child + 1], hval[child], hkey[child]):
            child += 1
        if not _before(hval[child], hkey[child], val, key):
            break
        heap[k], hval[k], hkey[k] = heap[child], hval[child], hkey[child]
        hpos[heap[k]] = k
        k = child
    heap[k], hval[k], hkey[k] = col, val, key
    hpos[col] = k


@nb.njit(cache=True)
def _heap_set(heap, hval, hkey, hpos, size, col, val, key):
    """Insert `col` or change its (val, key); returns the new size."""
    k = hpos[col]
    if k < 0:
        k = size
        size += 1
        heap[k], hval[k], hkey[k] = col, val, key
        hpos[col] = k
        _sift_up(heap, hval, hkey, hpos, k)
        return size
    if _before(val, key, hval[k], hkey[k]):
        hval[k], hkey[k] = val, key
        _sift_up(heap, hval, hkey, hpos, k)
    else:
        hval[k], hkey[k] = val, key
        _sift_down(heap, hval, hkey, hpos, k, size)
    return size


@nb.njit(cache=True)
def _heap_pop(heap, hval, hkey, hpos, size):
    """Remove the top; returns the new size."""
    hpos[heap[0]] = -1
    size -= 1
    if size > 0:
        heap[0], hval[0], hkey[0] = heap[size], hval[size], hkey[size]
        hpos[heap[0]] = 0
        _sift_down(heap, hval, hkey, hpos, 0, size)
    return size


@nb.njit(cache=True)
def _heap_remove(heap, hval, hkey, hpos, size, col):
    """Remove `col` from anywhere in the heap; returns the new size."""
    k = hpos[col]
    hpos[col] = -1
    size -= 1
    if k == size:
        return size
    last = heap[size]
    heap[k], hval[k], hkey[k] = last, hval[size], hkey[size]
    hpos[last] = k
    _sift_up(heap, hval, hkey, hpos, k)
    if hpos[last] == k:
        _sift_down(heap, hval, hkey, hpos, k, size)
    return size


@nb.njit(cache=True)
def _solve(n, bg, indptr, indices, data):
    u = np.zeros(n)
    v = np.zeros(n)
    col4row = np.full(n, -1, np.int64)
    row4col = np.full(n, -1, np.int64)
    path = np.full(n, -1, np.int64)
    spc = np.full(n, np.inf)  # spc of the selected columns (scipy's values for those)
    sc = np.zeros(n, np.bool_)  # selected in this search
    best = np.full(n, np.inf)  # T: least explicit value in this search
    best_row = np.full(n, -1, np.int64)
    touched = np.empty(n, np.int64)
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
    selected = np.empty(n, np.int64)
    stamp = np.full(n, -1, np.int64)
    # columns with v > 0
    in_pos = np.zeros(n, np.bool_)
    pos_cols = np.empty(n, np.int64)
    n_pos = 0
    # free columns, a doubly linked list in index order
    nxt = np.arange(1, n + 1, dtype=np.int64)
    prv = np.arange(-1, n - 1, dtype=np.int64)
    head = 0
    # indexed heap of columns with T < Cmin
    heap = np.empty(n, np.int64)
    hval = np.empty(n)
    hkey = np.empty(n, np.int64)
    hpos = np.full(n, -1, np.int64)
    scan_id = 0

    for cur in range(n):
        min_val = 0.0
        i = cur
        n_rem = n
        c_min = np.inf
        c_min_scan = -1
        n_scan = 0
        n_sel = 0
        n_touched = 0
        n_written = 0
        n_moved = 0
        size = 0
        sink = -1
        while sink == -1:
            scanned[n_scan] = i
            order[i] = n_scan
            ui = u[i]
            c = (min_val + bg) - ui
            c_of[n_scan] = c
            if c < c_min:
                c_min = c
                c_min_scan = n_scan
            n_scan += 1
            scan_id += 1
            for e in range(indptr[i], indptr[i + 1]):
                j = indices[e]
                stamp[j] = scan_id
                if sc[j]:
                    continue
                r = ((min_val + data[e]) - ui) - v[j]
                if r < best[j]:
                    if best[j] == np.inf:
                        touched[n_touched] = j
                        n_touched += 1
                    best[j] = r
                    best_row[j] = i
                    if r < c_min or hpos[j] >= 0:
                        key = n - 1 - pos[j] if row4col[j] == -1 else n + pos[j]
                        size = _heap_set(heap, hval, hkey, hpos, size, j, r, key)
            for q in range(n_pos):
                j = pos_cols[q]
                if sc[j] or stamp[j] == scan_id:
                    continue
                r = c - v[j]
                if r < best[j]:
                    if best[j] == np.inf:
                        touched[n_touched] = j
                        n_touched += 1
                    best[j] = r
                    best_row[j] = i
                    if r < c_min or hpos[j] >= 0:
                        key = n - 1 - pos[j] if row4col[j] == -1 else n + pos[j]
                        size = _heap_set(heap, hval, hkey, hpos, size, j, r, key)

            if size > 0 and hval[0] < c_min:
                j = heap[0]
                size = _heap_pop(heap, hval, hkey, hpos, size)
                spc[j] = best[j]
                path[j] = best_row[j]
            else:
                # the lowest spc is c_min, reached by every free column: scipy takes the last
                # free one in scan order
                j = -1
                far = -1
                f = head
                while f < n and is_moved[f]:
                    f = nxt[f]
                if f < n:
                    j, far = f, pos[f]
                for q in range(n_moved):
                    g = moved[q]
                    if row4col[g] == -1 and pos[g] > far:
                        j, far = g, pos[g]
                first = c_min_scan
                if best[j] == c_min and order[best_row[j]] < first:
                    path[j] = best_row[j]
                    spc[j] = best[j]
                else:
                    path[j] = scanned[first]
                    spc[j] = c_of[first] - v[j]
                    if best[j] == c_min and order[best_row[j]] == first:
                        spc[j] = best[j]
                if hpos[j] >= 0:
                    size = _heap_remove(heap, hval, hkey, hpos, size, j)
            min_val = spc[j]
            sc[j] = True
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
                k = hpos[last]
                if k >= 0:
                    key = n - 1 - index if row4col[last] == -1 else n + index
                    size = _heap_set(heap, hval, hkey, hpos, size, last, hval[k], key)
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]

        # dual updates, as scipy: u[cur] first, then the other scanned rows, then the selected columns
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
        if prv[sink] >= 0:
            nxt[prv[sink]] = nxt[sink]
        else:
            head = nxt[sink]
        if nxt[sink] < n:
            prv[nxt[sink]] = prv[sink]

        # reset this search's state
        for s in range(n_touched):
            best[touched[s]] = np.inf
        for s in range(n_sel):
            sc[selected[s]] = False
        for s in range(n_scan):
            order[scanned[s]] = -1
        for k in range(size):
            hpos[heap[k]] = -1
        for s in range(n_written):
            remaining[written[s]] = n - 1 - written[s]
        for s in range(n_moved):
            g = moved[s]
            pos[g] = n - 1 - g
            is_moved[g] = False
        for s in range(n_sel):
            g = selected[s]
            pos[g] = n - 1 - g
    return col4row


def solve(n: int, background: float, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> np.ndarray:
    """scipy's `linear_sum_assignment(cost)[1]` for the n x n matrix that is `background` except
    for the explicit CSR entries (indptr, indices, data), each <= background. Finite values only;
    no duplicate columns within a row."""
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    data = np.ascontiguousarray(data, dtype=np.float64)
    background = float(background)
    if len(indptr) != n + 1 or (n and (indices.min(initial=0) < 0 or indices.max(initial=0) >= n)):
        raise ValueError("malformed CSR structure")
    if not (np.isfinite(background) and np.isfinite(data).all()):
        raise ValueError("costs must be finite")
    if (data > background).any():
        raise ValueError("explicit costs must not exceed the background value")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    return _solve(n, background, indptr, indices, data)


def solve_dense(cost: np.ndarray) -> np.ndarray:
    """`linear_sum_assignment(cost)[1]` for a square finite matrix, through `solve` (background = max)."""
    cost = np.asarray(cost, dtype=np.float64)
    n = cost.shape[0]
    if cost.ndim != 2 or cost.shape[1] != n:
        raise ValueError("solve_dense needs a square matrix")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    background = cost.max()
    rows, cols = np.nonzero(cost != background)
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    return solve(n, background, indptr, cols, cost[rows, cols])
