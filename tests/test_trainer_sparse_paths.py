"""Layers above the dense limit: samplers, pruning, growth and snapshots on connection lists (issue 16)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from trainer_runs import digits_runs_on_both_backends

from sparsetopo.trainer import sparse_ops
from sparsetopo.trainer.algorithms import (
    RIGL_NOISE_STD,
    FloorPerSignPruner,
    GradientGrower,
    MagnitudePruner,
    ReferenceSETPruner,
    RigLPruner,
    absent_noise_kept,
    make_algorithm,
    top_gradient_positions,
    update_connections,
    update_topology,
)
from sparsetopo.trainer.loop import TrainConfig, choose_backend, make_optimizer
from sparsetopo.trainer.model import SparseMLP, to_snapshot
from sparsetopo.trainer.recipes import RECIPES
from sparsetopo.trainer.sparse import (
    complement,
    er_mask,
    er_structure,
    first_occurrences,
    initial_masks,
    initial_topology,
    isin_sorted,
    random_mask,
    random_structure,
    sample_absent,
)
from sparsetopo.trainer.sparse_ops import LayerGradient, SparseStructure


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- pure helpers ---------------------------------------------------------------------------------


def test_complement_isin_and_first_occurrences():
    present = torch.tensor([0, 1, 5, 6, 9])
    assert complement(12, present).tolist() == [2, 3, 4, 7, 8, 10, 11]
    assert complement(12, present, 3).tolist() == [2, 3, 4]
    assert complement(3, torch.tensor([0, 1, 2])).tolist() == []
    assert complement(4, torch.zeros(0, dtype=torch.int64)).tolist() == [0, 1, 2, 3]
    assert isin_sorted(present, torch.tensor([5, 4, 9, 12])).tolist() == [True, False, True, False]
    assert isin_sorted(torch.zeros(0, dtype=torch.int64), torch.tensor([1])).tolist() == [False]
    assert first_occurrences(torch.tensor([5, 3, 5, 1, 3, 7])).tolist() == [5, 3, 1, 7]


@pytest.mark.parametrize("total, k, n_present", [(10**12, 1000, 5000), (200, 30, 100), (50, 10, 40), (8, 0, 3)])
def test_sample_absent_draws_distinct_free_positions(total, k, n_present):
    g = _gen(1)
    present = torch.sort(sample_absent(total, n_present, torch.zeros(0, dtype=torch.int64), g)).values
    out = sample_absent(total, k, present, g)
    assert out.numel() == k == torch.unique(out).numel()
    assert not isin_sorted(present, out).any() and (out >= 0).all() and (out < total).all()


def test_sample_absent_is_uniform_over_the_free_positions():
    present = torch.tensor([3, 4, 10, 11, 12])
    counts = torch.zeros(20)
    first = torch.zeros(20)
    g = _gen(2)
    for _ in range(3000):
        out = sample_absent(20, 3, present, g)
        counts[out] += 1
        first[out[0]] += 1
    free = torch.ones(20, dtype=torch.bool)
    free[present] = False
    assert counts[~free].sum() == 0
    expected = 3000 * 3 / 15
    chi2 = float(((counts[free] - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 14 degrees of freedom: p < 1e-3 above ~36.1
    chi2_first = float(((first[free] - 200) ** 2 / 200).sum())  # the order is random too
    assert chi2_first < 40


def test_sample_absent_refuses_more_than_the_free_positions():
    with pytest.raises(Exception, match="free positions"):
        sample_absent(10, 6, torch.arange(5), _gen())


# --- initial topologies ---------------------------------------------------------------------------


def test_layers_within_the_limit_keep_the_dense_draws():
    a = initial_topology([30, 40, 25, 5], "er", 3.0, _gen(3), er_sampling="bernoulli")
    g = _gen(3)
    assert torch.equal(a[0].mask(), er_mask(40, 30, 3.0, "bernoulli", g))
    assert torch.equal(a[1].mask(), er_mask(25, 40, 3.0, "bernoulli", g))
    assert a[2] is None
    b = random_structure(40, 30, 77, _gen(4))
    assert torch.equal(b.mask(), random_mask(40, 30, 77, _gen(4)))
    masks = initial_masks([30, 40, 5], "er", 3.0, _gen(5))
    assert torch.equal(masks[0], random_mask(40, 30, round(3.0 * 70), _gen(5)))


def test_sparse_samplers_above_the_limit():
    n_out, n_in, eps = 3000, 2000, 10.0
    total = n_out * n_in
    exact = er_structure(n_out, n_in, eps, "exact", _gen(1), limit=0)
    assert exact.nnz == round(eps * (n_in + n_out))
    p = eps * (n_in + n_out) / total
    sd = math.sqrt(total * p * (1 - p))
    counts = [er_structure(n_out, n_in, eps, "bernoulli", _gen(s), limit=0).nnz for s in range(6)]
    assert all(abs(c - p * total) < 5 * sd for c in counts) and len(set(counts)) > 1
    # with-replacement draws the same positions whatever the limit
    repl = er_structure(n_out, n_in, eps, "with-replacement", _gen(2), limit=0)
    assert torch.equal(repl.mask(), er_mask(n_out, n_in, eps, "with-replacement", _gen(2)))
    # positions spread uniformly over rows and columns
    rows = torch.bincount(exact.rows, minlength=n_out).double()
    assert abs(float(rows.mean()) - exact.nnz / n_out) < 1e-9 and float(rows.var()) < 2 * exact.nnz / n_out
    assert exact.cols.min() >= 0 and exact.cols.max() < n_in


def test_a_layer_of_forty_billion_positions_never_becomes_dense():
    """Any dense tensor of this layer (40 GB as bool) fails on this machine: building, training,
    SET and snapshots must all stay on the connections."""
    sizes = [200_000, 200_000, 10]
    r = RECIPES["keras-randn"]  # Bernoulli ER sampling, randn/10 weights, dense first batch
    topo = initial_topology(sizes, "er", 2.0, _gen(1), er_sampling=r.er_sampling)
    assert choose_backend("auto", topo) == "sparse"
    model = SparseMLP(
        sizes,
        topo,
        dropout=0.3,
        generator=_gen(2),
        weight_init=r.weight_init,
        mask_initial_weights=not r.first_batch_dense,
        backend="sparse",
    )
    assert model.linears[0].weight is None and not model._dense_first  # no dense first batch above the limit
    values = model.values["0"]
    assert 0.09 < float(values.detach().std()) < 0.11 and values.numel() == topo[0].nnz
    opt = make_optimizer(model, r)
    x, y = torch.rand(4, sizes[0], generator=_gen(3)), torch.tensor([1, 2, 3, 4])
    F.cross_entropy(model(x), y).backward()
    opt.step()
    n = model.n_connections()
    changes = update_topology(model, opt, make_algorithm("set", 0.3, recipe=r), 0.3, _gen(4))
    assert model.n_connections() == n and changes[0].added > 0
    snap = to_snapshot(model, "big", 1, 1, {})
    assert snap.layers[0].shape == (200_000, 200_000) and snap.layers[0].nnz == n[0]
    s = model.structures[0]
    np.testing.assert_array_equal(snap.layers[0].indptr, s.t_crow.numpy())


# --- pruning on connection lists is pruning on the dense matrix -------------------------------------------


def _layer(n_out=30, n_in=40, density=0.2, zeros=0.1, seed=0):
    g = _gen(seed)
    mask = torch.rand(n_out, n_in, generator=g) < density
    weight = torch.randn(n_out, n_in, generator=g) * mask
    weight[torch.rand(n_out, n_in, generator=g) < zeros] = 0.0  # connections at exactly 0 too
    return weight, mask


@pytest.mark.parametrize(
    "pruner",
    [ReferenceSETPruner(True), ReferenceSETPruner(False), FloorPerSignPruner(), MagnitudePruner(), RigLPruner(False)],
    ids=["keras-thresholds", "connection-thresholds", "floor-per-sign", "magnitude", "rigl-no-noise"],
)
@pytest.mark.parametrize("zeros", [0.0, 0.1, 0.9])
def test_keep_connections_keeps_what_keep_keeps(pruner, zeros):
    weight, mask = _layer(zeros=zeros)
    positions = torch.nonzero(mask.view(-1)).squeeze(1)
    values = weight.view(-1)[positions]
    args = (weight, mask, 0.3) + ((_gen(),) if isinstance(pruner, RigLPruner) else ())
    dense = pruner.keep(*args).view(-1)
    keep, extra = pruner.keep_connections(values, positions, weight.numel(), 0.3, _gen())
    got = torch.zeros(weight.numel(), dtype=torch.bool)
    got[positions[keep]] = True
    got[extra] = True
    assert torch.equal(got, dense)


def test_rigl_noise_on_connection_lists_keeps_the_same_when_weights_are_well_apart():
    n_out, n_in = 30, 40
    positions = torch.sort(torch.randperm(n_out * n_in, generator=_gen(1))[:200]).values
    values = (
        (torch.randperm(200, generator=_gen(2)).float() + 1) * 0.01 * torch.where(torch.arange(200) % 2 == 0, 1, -1)
    )
    weight = torch.zeros(n_out * n_in)
    weight[positions] = values
    mask = torch.zeros(n_out * n_in, dtype=torch.bool)
    mask[positions] = True
    dense = RigLPruner(True).keep(weight, mask, 0.3, _gen(3))
    keep, extra = RigLPruner(True).keep_connections(values, positions, n_out * n_in, 0.3, _gen(4))
    assert extra.numel() == 0 and torch.equal(positions[keep], torch.nonzero(dense).squeeze(1))


def test_absent_noise_follows_the_normal_tail_even_for_ten_billion_positions():
    # constant connection scores c: the absent positions kept are those whose noise exceeds c
    def mean_kept(n_absent, c_sigmas, trials, seed):
        scores = torch.full((5000,), c_sigmas * RIGL_NOISE_STD)
        g = _gen(seed)
        return sum(absent_noise_kept(scores, 5000, n_absent, g) for _ in range(trials)) / trials

    tail = lambda z: 0.5 * math.erfc(z / math.sqrt(2))  # noqa: E731
    assert abs(mean_kept(10_000, 2.0, 40, 1) - 10_000 * tail(2.0)) < 10  # 227.5, sd of the mean 2.4
    assert abs(mean_kept(10**10, 6.0, 60, 2) - 10**10 * tail(6.0)) < 2  # 9.87, sd of the mean 0.4
    assert absent_noise_kept(torch.full((10,), 1.0), 10, 10**10, _gen()) == 0
    # connections scoring below every noise value: every place goes to an absent position
    assert absent_noise_kept(torch.full((1000,), -1.0), 1000, 500, _gen()) == 500
    assert absent_noise_kept(torch.full((1000,), -1.0), 1000, 10**9, _gen()) == 1000


def test_rigl_noise_lets_absent_positions_replace_zero_weight_connections_at_the_reference_rate():
    # 50 weights at 1, 50 at exactly 0, prune 30: 20 places go to noise among 50 zeros + 950 absent
    positions = torch.arange(0, 1000, 10)
    values = torch.where(torch.arange(100) < 50, 1.0, 0.0)
    g = _gen(5)
    extras = [RigLPruner(True).keep_connections(values, positions, 1000, 0.3, g)[1].numel() for _ in range(200)]
    assert abs(sum(extras) / 200 - 20 * 900 / 950) < 0.5  # absent: 1000 - 100 = 900 of 950 noise scores


# --- growth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 256])
@pytest.mark.parametrize("block", [1, 2, 7, None])
def test_gradient_growth_in_blocks_picks_what_the_whole_matrix_picks(block, chunk_rows, monkeypatch):
    monkeypatch.setattr(sparse_ops, "GRADIENT_CHUNK_MAX_ROWS", chunk_rows)
    g = _gen(6)
    x, grad_y = torch.randn(16, 37, generator=g), torch.randn(16, 23, generator=g)
    grad_y[:, 5] = grad_y[:, 6]  # equal rows: tied scores, which go to the lower position
    lg = LayerGradient(x, grad_y)
    excluded = torch.sort(torch.randperm(23 * 37, generator=g)[:300]).values
    free = torch.ones(23 * 37, dtype=torch.bool)
    free[excluded] = False
    candidates = torch.nonzero(free).squeeze(1)
    for k in (0, 1, 50, len(candidates)):
        want = GradientGrower().select(candidates, k, g, lg.dense())
        assert torch.equal(top_gradient_positions(lg, excluded, k, block), want)
        assert torch.equal(top_gradient_positions(lg.dense(), excluded, k, block), want)


def test_integer_gradients_with_many_ties_are_chosen_the_same_in_blocks():
    g = _gen(7)
    grad = torch.randint(-3, 4, (20, 30), generator=g).float()
    excluded = torch.sort(torch.randperm(600, generator=g)[:100]).values
    free = torch.ones(600, dtype=torch.bool)
    free[excluded] = False
    want = GradientGrower().select(torch.nonzero(free).squeeze(1), 120, g, grad)
    for block in (1, 3, 20):
        assert torch.equal(top_gradient_positions(grad, excluded, 120, block), want)


@pytest.mark.parametrize("recipe", ["keras-randn", "sparse-python", "sparsetopo-v0"])
def test_set_on_a_connection_list_prunes_like_the_dense_update_and_grows_in_free_positions(recipe):
    r = RECIPES[recipe]
    alg = make_algorithm("set", 0.3, recipe=r)
    weight, mask = _layer(zeros=0.05, seed=8)
    positions = torch.nonzero(mask.view(-1)).squeeze(1)
    values, momentum = weight.view(-1)[positions], torch.randn(positions.numel(), generator=_gen(9))
    keep = alg.pruner.keep(weight, mask, 0.3).view(-1)
    new_pos, new_values, new_mom, removed, added, in_place = update_connections(
        positions, values, tuple(weight.shape), alg, 0.3, _gen(10), momentum=momentum
    )
    assert new_pos.numel() == positions.numel() == torch.unique(new_pos).numel()
    assert bool((new_pos[1:] > new_pos[:-1]).all())
    kept = torch.nonzero(keep).squeeze(1)
    assert isin_sorted(new_pos, kept).all()  # every kept connection stays, with its weight and momentum
    idx = torch.searchsorted(new_pos, kept)
    assert torch.equal(new_values[idx], weight.view(-1)[kept])
    assert torch.equal(new_mom[idx], momentum[torch.searchsorted(positions, kept)])
    grown = new_pos[~isin_sorted(kept, new_pos)]
    assert (new_mom[torch.searchsorted(new_pos, grown)] == 0).all()
    assert removed == added == int((~isin_sorted(positions, new_pos)).sum())
    if r.regrow_positions == "empty-before-update":
        assert not isin_sorted(positions, grown).any() and in_place == 0
    if r.regrow_init == "zero":
        assert (new_values[torch.searchsorted(new_pos, grown)] == 0).all()


def test_rigl_on_a_connection_list_matches_the_dense_update_without_noise():
    r = RECIPES["rigl"]
    alg = make_algorithm("rigl", 0.3, 1000, recipe=r)
    alg.pruner = RigLPruner(False)  # the dense and the sparse draws of the noise differ; without it they agree
    weight, mask = _layer(seed=11)
    positions = torch.nonzero(mask.view(-1)).squeeze(1)
    grad = torch.randn(weight.shape, generator=_gen(12))
    from sparsetopo.trainer.algorithms import update_layer

    w, m = weight.clone(), mask.clone()
    update_layer(w, m, alg, 0.3, _gen(13), grad=grad)
    new_pos, new_values, _, _, _, _ = update_connections(
        positions, weight.view(-1)[positions], tuple(weight.shape), alg, 0.3, _gen(13), grad=grad, gradient_block=3
    )
    assert torch.equal(new_pos, torch.nonzero(m.view(-1)).squeeze(1))
    assert torch.equal(new_values, w.view(-1)[new_pos])


# --- the backend rule and whole runs -------------------------------------------------------------------


def test_auto_picks_sparse_when_the_masked_copies_would_exceed_the_budget(monkeypatch):
    from sparsetopo.trainer import loop

    half = [er_mask(100, 100, 30.0, "exact", _gen()), None]  # 60 % dense
    assert choose_backend("auto", half) == "masked"
    monkeypatch.setattr(loop, "MASKED_MEMORY_BUDGET", 100 * 100 * loop.MASKED_BYTES_PER_POSITION - 1)
    assert choose_backend("auto", half) == "sparse"
    assert choose_backend("auto", [SparseStructure.from_mask(half[0]), None]) == "sparse"


@pytest.mark.parametrize("method, recipe", [("set", None), ("set", "sparsetopo-v0"), ("rigl", None)])
def test_digits_runs_above_the_limit_are_the_same_run_on_both_backends(method, recipe):
    """dense_limit 0 sends every layer through the connection-list paths; both backends take them."""
    runs = digits_runs_on_both_backends(method=method, recipe=recipe, epochs=10, dense_limit=0)
    accs = {b: s[-1].metrics["test_accuracy"] for b, s in runs.items()}
    assert accs["sparse"] > 0.25 and abs(accs["sparse"] - accs["masked"]) < 0.03  # chance is 0.1
    assert sum(s.metrics["added"] for s in runs["sparse"]) > 0
    for a, b in zip(runs["masked"], runs["sparse"], strict=True):
        assert [m.nnz for m in a.layers] == [m.nnz for m in b.layers]
        for ma, mb in zip(a.layers, b.layers):
            assert np.array_equal(ma.indices, mb.indices) and np.array_equal(ma.indptr, mb.indptr)


def test_the_run_records_the_dense_limit():
    from sparsetopo.trainer.sparse import DENSE_LIMIT

    assert TrainConfig(dataset="digits").flat()["dense_limit"] == DENSE_LIMIT
    assert TrainConfig(dataset="digits", dense_limit=0).flat()["dense_limit"] == 0
