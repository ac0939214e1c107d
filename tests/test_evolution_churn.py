"""The matrix-side definition of evolution (analysis/churn.py), before any database."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetopo.analysis.churn import churn_table, lifetimes
from sparsetopo.topology import connection_keys


def m(rows):
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_hand_worked_churn_with_regrowth():
    steps = [0, 1, 2]
    snaps = [
        [m([[1, 1], [0, 0]])],
        [m([[0, 1], [1, 0]])],  # (0,0) pruned, (1,0) grown
        [m([[1, 1], [0, 0]])],  # (0,0) regrown: a second lifetime; (1,0) pruned
    ]
    rows = churn_table(steps, snaps)
    assert [(r["step"], r["alive"], r["appeared"], r["vanished"]) for r in rows] == [
        (0, 2, 2, 0),
        (1, 2, 1, 1),
        (2, 2, 1, 1),
    ]
    # (0,1) survives throughout; the regrown (0,0) is not an initial synapse any more
    assert [r["initial_alive"] for r in rows] == [2, 1, 1]
    assert rows[-1]["initial_fraction"] == 0.5
    assert lifetimes(steps, snaps) == [(0, 0, 0, 0, 1), (0, 0, 0, 2, None), (0, 0, 1, 0, None), (0, 1, 0, 1, 2)]


def test_connection_keys_count_explicit_zeros_as_connections():
    a = sp.csr_matrix((np.array([0.0, 2.0]), np.array([0, 1]), np.array([0, 1, 2])), shape=(2, 2))
    assert connection_keys(a).tolist() == [0, 3]


@st.composite
def runs(draw):
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    n_steps = draw(st.integers(1, 6))
    steps = sorted(draw(st.sets(st.integers(0, 50), min_size=n_steps, max_size=n_steps)))
    snaps = []
    for _ in steps:
        mask = draw(st.lists(st.booleans(), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
        snaps.append([m(np.array(mask, dtype=np.float32).reshape(shape))])
    return steps, snaps


@settings(max_examples=80, deadline=None)
@given(runs())
def test_table_agrees_with_lifetimes(run):
    steps, snaps = run
    lives = lifetimes(steps, snaps)
    for r in churn_table(steps, snaps):
        t = r["step"]
        assert r["appeared"] == sum(1 for lv in lives if lv[3] == t)
        assert r["vanished"] == sum(1 for lv in lives if lv[4] == t)
        assert r["alive"] == sum(1 for lv in lives if lv[3] <= t and (lv[4] is None or lv[4] > t))
        assert r["initial_alive"] == sum(1 for lv in lives if lv[3] == steps[0] and (lv[4] is None or lv[4] > t))
