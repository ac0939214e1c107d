"""NNSTD engine: the fast implementation against a slow, obviously correct one, bit for bit."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from nnstd_reference import edit_cost, neuron_sets, reference_nnstd

import sparsetopo.analysis.nnstd as nnstd_module
from sparsetopo.analysis.assignment import TieBreakError, exact_assignment, scipy_exact_layer, sparse_assignment
from sparsetopo.analysis.nnstd import NNSTDError, masks_of, nnstd, nnstd_masks, tie_sensitivity
from sparsetopo.analysis.nnstd_costs import dense_costs, fan_in
from sparsetopo.analysis.nnstd_parallel import nnstd_matrix, nnstd_pairs
from sparsetopo.topology import connection_mask


def random_network(sizes, density, rng):
    return [
        sp.random(sizes[k], sizes[k + 1], density=density, random_state=rng, format="csr", dtype=np.float32)
        for k in range(len(sizes) - 1)
    ]


def random_sizes(rng, n_layers=None):
    n_layers = n_layers or int(rng.integers(1, 5))
    return [int(rng.integers(2, 16)) for _ in range(n_layers + 1)]


def permuted_copy(network, rng):
    """The same network with the neurons of every hidden layer relabelled."""
    out = [m.tocsr().copy() for m in network]
    for k in range(len(out) - 1):
        p = rng.permutation(out[k].shape[1])
        out[k] = out[k][:, p]
        out[k + 1] = out[k + 1][p, :]
    return out


def distinct_neuron_network(sizes, density, rng):
    """A network whose output neurons, in every layer, have pairwise distinct and non-empty input sets."""
    while True:
        net = random_network(sizes, density, rng)
        if all(
            len({frozenset(s) for s in neuron_sets(m.toarray())}) == m.shape[1] and all(neuron_sets(m.toarray()))
            for m in net
        ):
            return net


def exact_total(mask_a, mask_b, perm) -> Fraction:
    """A matching's total cost as an exact rational (phantom pairs cost 1)."""
    sets_a, sets_b = neuron_sets(mask_a.toarray()), neuron_sets(mask_b.toarray())
    total = Fraction(0)
    for r, c in enumerate(perm.tolist()):
        if r >= len(sets_a) or c >= len(sets_b):
            total += 1
        elif sets_a[r] or sets_b[c]:
            a, b = sets_a[r], sets_b[c]
            total += Fraction(len(a) + len(b) - 2 * len(a & b), len(a | b))
    return total


# --- bit-for-bit agreement with the slow definition ----------------------------------------------


def test_fast_equals_reference_bit_for_bit_on_many_random_networks():
    rng = np.random.default_rng(2020)
    for _ in range(250):
        sizes = random_sizes(rng)
        density = float(rng.choice([0.05, 0.1, 0.2, 0.35, 0.6, 1.0]))  # sparse ones have empty neurons
        a, b = random_network(sizes, density, rng), random_network(sizes, density, rng)
        fast = nnstd(a, b)
        ref_distance, ref_layers = reference_nnstd(a, b)
        assert fast.layers == ref_layers
        assert fast.distance == ref_distance


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fast_equals_reference_on_hypothesis_networks(data):
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=2, max_size=4))

    def net():
        return [
            np.array(
                data.draw(
                    st.lists(
                        st.lists(st.sampled_from([0.0, 0.0, 1.5, -2.0]), min_size=sizes[k + 1], max_size=sizes[k + 1]),
                        min_size=sizes[k],
                        max_size=sizes[k],
                    )
                )
            )
            for k in range(len(sizes) - 1)
        ]

    a, b = net(), net()
    fast = nnstd([sp.csr_matrix(m) for m in a], [sp.csr_matrix(m) for m in b])
    assert (fast.distance, fast.layers) == reference_nnstd(a, b)


def test_costs_match_pairwise_set_definition():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n_in, n_a, n_b = (int(x) for x in rng.integers(1, 20, size=3))
        a = sp.random(n_in, n_a, density=0.2, random_state=rng)
        b = sp.random(n_in, n_b, density=0.2, random_state=rng)
        fast = dense_costs(connection_mask(a), connection_mask(b))
        sets_a, sets_b = neuron_sets(a.toarray()), neuron_sets(b.toarray())
        slow = np.array([[edit_cost(x, y) for y in sets_b] for x in sets_a], dtype=float).reshape(n_a, n_b)
        assert np.array_equal(fast, slow)


def test_every_stored_entry_is_a_connection_explicit_zeros_included():
    m = sp.csr_matrix(
        (np.array([0.0, -3.0, np.nan, 2.0]), (np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]))), shape=(4, 2)
    )
    mask = connection_mask(m)
    assert fan_in(mask).tolist() == [2, 2]
    assert mask.toarray().tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    # a dense array has no stored zeros: its nonzeros are its connections
    assert fan_in(connection_mask(m.toarray())).tolist() == [1, 2]


# --- the exact method's own solver (analysis.lsap) against scipy on the dense matrix ------------


def scipy_nnstd(a, b, monkeypatch):
    """The exact method with every layer solved by scipy's linear_sum_assignment on the dense matrix."""
    with monkeypatch.context() as m:
        m.setattr(nnstd_module, "exact_layer", scipy_exact_layer)
        return nnstd_masks(masks_of(a), masks_of(b))


def assert_identical(fast, ref):
    assert fast.layers == ref.layers and fast.distance == ref.distance
    assert all(np.array_equal(p, q) for p, q in zip(fast.permutations, ref.permutations, strict=True))


def test_exact_method_equals_scipy_path_bit_for_bit(monkeypatch):
    rng = np.random.default_rng(2021)
    for trial in range(120):
        n_layers = int(rng.integers(1, 5))
        sizes = [int(rng.integers(2, 70)) for _ in range(n_layers + 1)]
        density = float(rng.choice([0.0, 0.01, 0.03, 0.08, 0.2, 0.5, 1.0]))
        a = random_network(sizes, density, rng)
        kind = trial % 4
        if kind == 0:
            b = random_network(sizes, density, rng)
        elif kind == 1:
            b = a
        elif kind == 2:
            b = permuted_copy(a, rng)
        else:  # other widths
            b = random_network([sizes[0]] + [int(rng.integers(2, 70)) for _ in range(n_layers)], density, rng)
        assert_identical(nnstd(a, b), scipy_nnstd(a, b, monkeypatch))


def test_exact_method_equals_scipy_path_on_benchmark_sized_networks(monkeypatch):
    """Networks like the benchmark's (hundreds of neurons, < 1 % density): long searches."""
    rng = np.random.default_rng(2022)
    for sizes, density in [([300, 300, 300, 10], 0.01), ([784, 400, 400, 10], 0.006)]:
        a, b = random_network(sizes, density, rng), random_network(sizes, density, rng)
        assert_identical(nnstd(a, b), scipy_nnstd(a, b, monkeypatch))


# --- the cases with known answers ---------------------------------------------------------------


def test_identical_networks_are_at_distance_zero():
    rng = np.random.default_rng(3)
    for _ in range(40):
        net = random_network(random_sizes(rng), float(rng.choice([0.05, 0.2, 0.5])), rng)
        assert nnstd(net, net).distance == 0.0
        assert reference_nnstd(net, net)[0] == 0.0


def test_neuron_permuted_copies_are_at_distance_zero():
    rng = np.random.default_rng(4)
    for _ in range(30):
        sizes = [int(rng.integers(6, 14)) for _ in range(int(rng.integers(2, 5)))]
        net = distinct_neuron_network(sizes, 0.4, rng)
        copy = permuted_copy(net, rng)
        assert nnstd(net, copy).layers == [0.0] * len(net)
        assert reference_nnstd(net, copy)[0] == 0.0


def test_disjoint_networks_are_at_distance_one():
    rng = np.random.default_rng(5)
    # A's neurons read only inputs 0-9 (input 0 always), B's only inputs 10-19 (input 19 always)
    a0 = np.vstack([rng.random((10, 6)) < 0.5, np.zeros((10, 6), bool)])
    b0 = np.vstack([np.zeros((10, 6), bool), rng.random((10, 6)) < 0.5])
    a0[0], b0[19] = True, True
    a0, b0 = sp.csr_matrix(a0.astype(float)), sp.csr_matrix(b0.astype(float))
    assert nnstd([a0], [b0]).layers == [1.0]
    # every later pair is empty against non-empty, whatever matching came before
    a = [a0, sp.csr_matrix(np.ones((6, 3)))]
    b = [b0, sp.csr_matrix((6, 3))]
    result = nnstd(a, b)
    assert result.layers == [1.0, 1.0] and result.distance == 1.0
    assert (result.distance, result.layers) == reference_nnstd(a, b)


def test_empty_neurons_on_both_sides_cost_nothing():
    a = [sp.csr_matrix((5, 4))]
    assert nnstd(a, a).distance == 0.0
    assert nnstd(a, [sp.csr_matrix(np.ones((5, 4)))]).distance == 1.0


def test_dense_last_layer_contributes_zero_and_counts_in_the_mean():
    rng = np.random.default_rng(6)
    a = random_network([12, 8], 0.3, rng) + [sp.csr_matrix(np.ones((8, 3)))]
    b = random_network([12, 8], 0.3, rng) + [sp.csr_matrix(np.ones((8, 3)))]
    r = nnstd(a, b)
    assert r.layers[1] == 0.0 and r.distance == np.mean([r.layers[0], 0.0])


# --- beyond the paper --------------------------------------------------------------------------


def test_different_widths_pair_unmatched_neurons_at_cost_one():
    a = [sp.csr_matrix(np.array([[1], [0]]))]  # one neuron {0}
    b = [sp.csr_matrix(np.array([[1, 0], [0, 1]]))]  # neurons {0}, {1}
    assert nnstd(a, b).layers == [0.5]  # (0 + 1 unmatched) / 2
    assert nnstd(b, a).layers == [0.5]


def test_different_widths_agree_with_padded_reference():
    rng = np.random.default_rng(7)
    for _ in range(60):
        n_layers = int(rng.integers(1, 4))
        sa, sb = random_sizes(rng, n_layers), random_sizes(rng, n_layers)
        sb[0] = sa[0]
        a, b = random_network(sa, 0.3, rng), random_network(sb, 0.3, rng)
        fast = nnstd(a, b)
        assert (fast.distance, fast.layers) == reference_nnstd(a, b)
        assert all(0.0 <= d <= 1.0 for d in fast.layers)


def test_tie_sensitivity_exposes_ambiguous_matchings():
    # hidden neurons 0 and 1 have the same inputs; only the next layer tells them apart
    a = [
        sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 1, 1]])),
        sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0], [0, 1]])),
    ]
    copy = [a[0].copy(), a[1][[1, 0, 2, 3]]]  # swap the twins: same network up to relabelling
    report = tie_sensitivity(a, copy, ["default", "reversed", "shuffle:1", "shuffle:2", "shuffle:3", "shuffle:4"])
    assert report["layer_spread"][0] == 0.0  # layer 0 is optimal under every tie-break
    assert min(report["distance"]) == 0.0 < max(report["distance"])  # some matchings see the relabelling, some not
    assert report["distance_spread"] == max(report["distance"])
    assert report["distance"][0] == nnstd(a, copy).distance


def test_tie_sensitivity_is_zero_when_matchings_are_unique():
    rng = np.random.default_rng(8)
    net = distinct_neuron_network([10, 8, 6], 0.4, rng)
    report = tie_sensitivity(net, permuted_copy(net, rng))
    assert report["distance_spread"] == 0.0 and set(report["distance"]) == {0.0}


def test_tie_breaks_give_optimal_matchings():
    rng = np.random.default_rng(9)
    for _ in range(20):
        a = connection_mask(sp.random(15, 12, density=0.15, random_state=rng))
        b = connection_mask(sp.random(15, 12, density=0.15, random_state=rng))
        costs = dense_costs(a, b)
        totals = {exact_total(a, b, exact_assignment(costs, t)[1]) for t in ("default", "reversed", "shuffle:7")}
        assert len(totals) == 1


# --- the sparse exact option for large layers ---------------------------------------------------


def test_sparse_option_reaches_the_full_solvers_optimum_exactly():
    rng = np.random.default_rng(10)
    for trial in range(80):
        n_in = int(rng.integers(5, 120))
        n_a = int(rng.integers(1, 90))
        n_b = n_a if trial % 3 else int(rng.integers(1, 90))
        density = float(rng.choice([0.005, 0.02, 0.05, 0.15, 0.4]))
        a = connection_mask(sp.random(n_in, n_a, density=density, random_state=rng))
        b = connection_mask(sp.random(n_in, n_b, density=density, random_state=rng))
        _, full = exact_assignment(dense_costs(a, b))
        matched, perm = sparse_assignment(a, b)
        assert sorted(perm.tolist()) == list(range(max(n_a, n_b)))  # a one-to-one matching
        assert exact_total(a, b, perm) == exact_total(a, b, full)
        # and it reports the costs of the pairs it chose, exactly as the definition computes them
        sets_a, sets_b = neuron_sets(a.toarray()), neuron_sets(b.toarray())
        assert matched.tolist() == [
            edit_cost(sets_a[r], sets_b[c]) if r < n_a and c < n_b else 1.0 for r, c in enumerate(perm.tolist())
        ]
        assert np.isclose(matched.sum(), float(exact_total(a, b, perm)), rtol=0, atol=1e-9)


def test_sparse_method_layer_zero_equals_exact_and_network_is_close():
    rng = np.random.default_rng(11)
    for _ in range(20):
        sizes = [60, 50, 40, 5]
        a, b = random_network(sizes, 0.05, rng), random_network(sizes, 0.05, rng)
        exact, fast = nnstd(a, b), nnstd(a, b, method="sparse")
        assert abs(exact.layers[0] - fast.layers[0]) < 1e-12
        assert nnstd(a, a, method="sparse").distance == 0.0
    for _ in range(10):
        net = distinct_neuron_network([40, 20, 12, 4], 0.1, rng)
        assert nnstd(net, permuted_copy(net, rng), method="sparse").distance == 0.0


# --- all pairs ---------------------------------------------------------------------------------


def test_matrix_in_parallel_equals_pairwise_calls():
    rng = np.random.default_rng(12)
    nets = [random_network([20, 15, 10, 3], 0.2, rng) for _ in range(5)]
    seen = []
    result = nnstd_matrix(nets, workers=2, on_progress=lambda done, total: seen.append((done, total)))
    d, layers = result["distance"], result["layers"]
    assert d.shape == (5, 5) and layers.shape == (5, 5, 3)
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    for i in range(5):
        for j in range(i):
            r = nnstd(nets[i], nets[j])  # the authors' orientation: later against earlier
            assert d[i, j] == r.distance and layers[i, j].tolist() == r.layers
    assert seen[-1] == (10, 10)
    serial = nnstd_pairs(nets, [(1, 0), (4, 2)], workers=1)
    assert [r.distance for r in serial] == [d[1, 0], d[4, 2]]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, words",
    [
        ([sp.csr_matrix((4, 3))], [sp.csr_matrix((4, 3)), sp.csr_matrix((3, 2))], "different numbers of layers"),
        ([sp.csr_matrix((4, 3))], [sp.csr_matrix((5, 3))], "different input sizes"),
        (
            [sp.csr_matrix((4, 3)), sp.csr_matrix((2, 2))],
            [sp.csr_matrix((4, 3)), sp.csr_matrix((3, 2))],
            "do not chain",
        ),
        ([], [sp.csr_matrix((4, 3))], "no layers"),
    ],
)
def test_incomparable_networks_raise_one_sentence(a, b, words):
    with pytest.raises(NNSTDError, match=words) as info:
        nnstd(a, b)
    assert "\n" not in str(info.value)


def test_unknown_options_raise():
    net = [sp.csr_matrix(np.eye(3))]
    with pytest.raises(NNSTDError, match="unknown NNSTD method"):
        nnstd(net, net, method="fast")
    with pytest.raises(TieBreakError, match="unknown tie-break"):
        nnstd(net, net, tie_break="random")
    with pytest.raises(TieBreakError, match="integer seed"):
        nnstd(net, net, tie_break="shuffle:x")
    with pytest.raises(NNSTDError, match="network 1"):
        nnstd_pairs([net, [sp.csr_matrix((4, 3))]], [(0, 1)])
