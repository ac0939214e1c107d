"""analysis.lsap returns exactly scipy's linear_sum_assignment permutation (col_ind), tie-breaks included."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from sparsetopo.analysis import lsap
from sparsetopo.analysis.assignment import exact_assignment, lsap_assignment
from sparsetopo.analysis.nnstd_costs import dense_costs, explicit_costs
from sparsetopo.topology import connection_mask


def scipy_perm(cost):
    return linear_sum_assignment(cost)[1]


def padded(cost):
    """A rectangular NNSTD matrix padded with cost 1, as the exact method pads it."""
    n = max(cost.shape)
    out = np.ones((n, n))
    out[: cost.shape[0], : cost.shape[1]] = cost
    return out


def nnstd_costs(rng, n_in, n_a, n_b, density):
    a = connection_mask(sp.random(n_in, n_a, density=density, random_state=rng))
    b = connection_mask(sp.random(n_in, n_b, density=density, random_state=rng))
    return padded(dense_costs(a, b))


def matrix(kind, rng):
    n = int(rng.integers(1, 50))
    if kind == "random floats":
        return rng.random((n, n))
    if kind == "integers 0-2":  # heavy ties
        return rng.integers(0, 3, (n, n)).astype(float)
    if kind == "integers -2-0":  # negative costs, first C <= 0
        return rng.integers(-2, 1, (n, n)).astype(float)
    if kind == "constant":
        return np.full((n, n), float(rng.choice([0.0, 1.0, -3.5])))
    if kind == "quarters or 1":  # mostly the background value, explicit entries tie a lot
        return np.where(rng.random((n, n)) < rng.choice([0.05, 0.2, 0.5]), rng.integers(0, 4, (n, n)) / 4, 1.0)
    if kind == "scaled integers":
        return rng.integers(0, 3, (n, n)) * float(rng.choice([1e-12, 3.0, 1e12]))
    if kind == "nnstd":  # densities 0 (all neurons empty: all costs 0) to 1 (all costs 0)
        return nnstd_costs(rng, int(rng.integers(1, 60)), n, n, float(rng.choice([0.0, 0.02, 0.05, 0.1, 0.3, 1.0])))
    if kind == "nnstd rectangular":
        return nnstd_costs(
            rng, int(rng.integers(1, 60)), n, int(rng.integers(1, 50)), float(rng.choice([0.02, 0.05, 0.1, 0.3]))
        )
    raise ValueError(kind)


KINDS = [
    "random floats",
    "integers 0-2",
    "integers -2-0",
    "constant",
    "quarters or 1",
    "scaled integers",
    "nnstd",
    "nnstd rectangular",
]


@pytest.mark.parametrize("kind", KINDS)
def test_same_permutation_as_scipy_on_many_matrices(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(150):
        cost = matrix(kind, rng)
        want = scipy_perm(cost)
        assert np.array_equal(lsap.solve_dense(cost), want)
        # the least capacity compacts the queue all the time: same decisions
        assert np.array_equal(lsap.solve_dense(cost, capacity=cost.shape[0] + 1), want)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_same_permutation_as_scipy_on_hypothesis_tie_heavy_matrices(data):
    n = data.draw(st.integers(1, 9))
    values = data.draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.0, 1.0]), min_size=n * n, max_size=n * n))
    cost = np.array(values).reshape(n, n)
    assert np.array_equal(lsap.solve_dense(cost), scipy_perm(cost))


def test_same_permutation_as_scipy_on_nnstd_sized_layers():
    """Hundreds of neurons at low density: long searches, rounding dips of minVal, columns with v > 0."""
    rng = np.random.default_rng(3)
    for n, density in [(300, 0.01), (400, 0.006), (250, 0.03), (320, 0.1)]:
        cost = nnstd_costs(rng, n, n, n, density)
        assert np.array_equal(lsap.solve_dense(cost), scipy_perm(cost))


def test_identical_and_permuted_layers():
    rng = np.random.default_rng(4)
    for _ in range(20):
        n_in, n = int(rng.integers(5, 80)), int(rng.integers(2, 60))
        a = connection_mask(sp.random(n_in, n, density=float(rng.choice([0.03, 0.1, 0.3])), random_state=rng))
        for b in (a, a[:, rng.permutation(n)]):
            cost = dense_costs(a, b)
            assert np.array_equal(lsap.solve_dense(cost), scipy_perm(cost))


def test_sparse_input_equals_dense_input():
    """`solve` on the explicit entries of an NNSTD layer is `linear_sum_assignment` on its dense matrix."""
    rng = np.random.default_rng(5)
    for _ in range(60):
        n_in = int(rng.integers(1, 40))
        n_a, n_b = (int(x) for x in rng.integers(1, 40, size=2))
        density = float(rng.choice([0.0, 0.02, 0.1, 0.4]))
        a = connection_mask(sp.random(n_in, n_a, density=density, random_state=rng))
        b = connection_mask(sp.random(n_in, n_b, density=density, random_state=rng))
        n = max(n_a, n_b)
        indptr, cols, costs = explicit_costs(a, b)
        full = padded(dense_costs(a, b))
        rebuilt = np.ones((n, n))
        rebuilt[np.repeat(np.arange(n), np.diff(indptr)), cols] = costs
        assert np.array_equal(rebuilt, full)  # the explicit entries are exactly the entries != 1
        assert np.array_equal(lsap.solve(n, 1.0, indptr, cols, costs), scipy_perm(full))
        matched, perm = lsap_assignment(a, b)
        want_matched, want_perm = exact_assignment(dense_costs(a, b))
        assert np.array_equal(perm, want_perm)
        assert matched.tolist() == want_matched.tolist()


def test_trivial_sizes():
    assert lsap.solve_dense(np.zeros((0, 0))).tolist() == []
    assert lsap.solve_dense(np.array([[5.0]])).tolist() == [0]
    assert lsap.solve(3, 1.0, np.zeros(4, dtype=np.int64), np.zeros(0), np.zeros(0)).tolist() == [0, 1, 2]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="finite"):
        lsap.solve_dense(np.array([[0.0, np.inf], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="finite"):
        lsap.solve_dense(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="exceed the background"):
        lsap.solve(2, 1.0, np.array([0, 1, 1]), np.array([1]), np.array([2.0]))
    with pytest.raises(ValueError, match="malformed"):
        lsap.solve(2, 1.0, np.array([0, 1]), np.array([1]), np.array([0.5]))
    with pytest.raises(ValueError, match="malformed"):
        lsap.solve(2, 1.0, np.array([0, 1, 1]), np.array([2]), np.array([0.5]))
    with pytest.raises(ValueError, match="capacity"):
        lsap.solve(2, 1.0, np.array([0, 1, 1]), np.array([1]), np.array([0.5]), capacity=2)
    with pytest.raises(ValueError, match="square"):
        lsap.solve_dense(np.ones((2, 3)))
