"""The reference recipes rule by rule: regrowth values and positions, thresholds, decay, dropout, RigL."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetopo.trainer.algorithms import RigLReferenceSchedule, make_algorithm, reference_thresholds, update_layer
from sparsetopo.trainer.data import load_dataset
from sparsetopo.trainer.errors import ConfigError
from sparsetopo.trainer.loop import TrainConfig, decay_decoupled, make_optimizer, train
from sparsetopo.trainer.losses import reference_mse
from sparsetopo.trainer.model import SparseMLP
from sparsetopo.trainer.recipes import RECIPES, parse_rule, resolve
from sparsetopo.trainer.sparse import er_mask, er_probability

KERAS, SPARSE_PY, V0, RIGL = (RECIPES[n] for n in ("keras", "sparse-python", "sparsetopo-v0", "rigl"))


def _layer(n_out, n_in, count, seed, zeros=0):
    g = torch.Generator().manual_seed(seed)
    flat = torch.zeros(n_out * n_in, dtype=torch.bool)
    flat[torch.randperm(n_out * n_in, generator=g)[:count]] = True
    mask = flat.view(n_out, n_in)
    weight = torch.randn(n_out, n_in, generator=g) * mask
    if zeros:  # connections whose weight is exactly 0 (grown at zero, never trained)
        on = torch.nonzero(flat).squeeze(1)
        weight.view(-1)[on[:zeros]] = 0.0
    return weight, mask, torch.randn(n_out, n_in, generator=g) * mask, g


# --- SET's thresholds, written out the way the reference codes do it on a list of values ------------


def reference_keep(values_list: np.ndarray, weights: np.ndarray, zeta: float) -> np.ndarray:
    """rewireMask / weightsEvolution: sort, first and last entry closest to 0, thresholds, keep beyond."""
    values = np.sort(values_list)
    first = int(np.abs(values - 0).argmin())
    last = values.shape[0] - int(np.abs(values - 0)[::-1].argmin())
    largest_negative = values[int((1 - zeta) * first)]
    smallest_positive = values[int(min(values.shape[0] - 1, last + zeta * (values.shape[0] - last)))]
    return (weights > smallest_positive) | (weights < largest_negative)


@settings(max_examples=60, deadline=None)
@given(
    n_out=st.integers(2, 30),
    n_in=st.integers(2, 30),
    fill=st.floats(0.05, 1.0),
    zeros=st.integers(0, 5),
    zeta=st.floats(0.01, 0.99),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_set_thresholds_equal_both_reference_codes(n_out, n_in, fill, zeros, zeta, seed, ties):
    count = max(1, int(fill * n_out * n_in))
    weight, mask, _, _ = _layer(n_out, n_in, count, seed, zeros=min(zeros, count))
    if ties:  # quantised weights: many equal values on both sides of zero
        weight = torch.round(weight * 4) / 4
    w, m = weight.numpy().ravel(), mask.numpy().ravel()
    # Keras: the whole dense matrix is sorted, absent connections are zeros in it
    keras = make_algorithm("set", zeta, recipe=KERAS).pruner.keep(weight, mask, zeta).numpy()
    assert np.array_equal(keras, m & reference_keep(w, w, zeta))
    # sparse-Python: only the stored weights are sorted (the code stores no zeros)
    if (w[m] != 0).all():
        sparse = make_algorithm("set", zeta, recipe=SPARSE_PY).pruner.keep(weight, mask, zeta).numpy()
        assert np.array_equal(sparse, m & reference_keep(w[m], w, zeta))


def test_thresholds_of_a_hand_worked_list():
    # sorted list: -4 -3 -2 -1 0 0 1 2 3 4 5; first zero at 4, one past the last zero at 6
    values = torch.tensor([-4.0, -3, -2, -1, 1, 2, 3, 4, 5])
    lo, hi = reference_thresholds(values, 2, 0.5)
    assert (lo, hi) == (-2.0, 3.0)  # values[int(0.5 * 4)] and values[int(6 + 0.5 * 5)]


# --- regrowth -------------------------------------------------------------------------------------


def test_default_recipe_regrows_at_exactly_zero_and_sparse_python_at_randn_over_10():
    weight, mask, momentum, g = _layer(300, 300, 30_000, seed=1)
    _, _, _ = update_layer(weight, mask, make_algorithm("set", 0.3, recipe=KERAS), 0.3, g, momentum=momentum)
    assert int(mask.sum()) == 30_000
    n_zero = int((weight[mask] == 0).sum())
    assert 0.29 * 30_000 < n_zero < 0.31 * 30_000  # every regrown connection, and nothing else

    weight, mask, momentum, g = _layer(300, 300, 30_000, seed=1)
    kept_before = weight.clone()
    _, _, _ = update_layer(weight, mask, make_algorithm("set", 0.3, recipe=SPARSE_PY), 0.3, g, momentum=momentum)
    fresh = weight[mask & (weight != kept_before)]
    assert len(fresh) > 0.25 * 30_000
    assert abs(float(fresh.mean())) < 0.005 and 0.097 < float(fresh.std()) < 0.103


def test_regrowth_can_land_on_a_just_pruned_position_unless_the_rule_forbids_it():
    # 100 positions, 95 connections: 30 % go, and only 5 empty positions are left to grow into
    for recipe, forbidden in ((KERAS, False), (RECIPES["keras-randn"], False), (SPARSE_PY, False), (V0, True)):
        weight, mask, momentum, g = _layer(10, 10, 95, seed=2)
        before = mask.clone().view(-1)
        removed, added, in_place = update_layer(
            weight, mask, make_algorithm("set", 0.3, recipe=recipe), 0.3, g, momentum=momentum
        )
        assert int(mask.sum()) == 95
        if forbidden:
            assert in_place == 0 and not before[added].any()
        else:
            assert in_place >= 15  # at least 20 pruned, at most 5 of them grown elsewhere
            assert len(added) == len(removed) <= 5


def test_regrowth_in_place_happens_as_often_as_uniform_choice_says():
    weight, mask, momentum, g = _layer(200, 200, 8_000, seed=4)
    n_total = 40_000
    _, _, in_place = update_layer(weight, mask, make_algorithm("set", 0.3, recipe=KERAS), 0.3, g, momentum=momentum)
    n_grown = 8_000 - int((weight[mask] != 0).sum())
    pruned = n_grown
    candidates = n_total - (8_000 - pruned)
    expected = n_grown * pruned / candidates
    assert abs(in_place - expected) < 5 * math.sqrt(expected)


def test_grown_connections_have_zero_momentum_and_pruned_ones_are_gone():
    weight, mask, momentum, g = _layer(40, 40, 400, seed=5)
    before = mask.clone()
    update_layer(weight, mask, make_algorithm("set", 0.3, recipe=SPARSE_PY), 0.3, g, momentum=momentum)
    assert torch.all(weight[~mask] == 0) and torch.all(momentum[~mask] == 0)
    assert int((mask & ~before).sum()) > 0
    assert torch.all(momentum[mask & ~before] == 0)


# --- weight decay, loss, dropout, initialisation ---------------------------------------------------


def _one_step(recipe, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = [er_mask(12, 8, 3.0, "exact", g), None]
    model = SparseMLP([8, 12, 3], masks, dropout=0.0, generator=g, weight_init=recipe.weight_init)
    with torch.no_grad():
        for lin in model.linears:
            lin.bias.uniform_(-1, 1, generator=g)  # nonzero biases, so their decay shows
    opt = make_optimizer(model, recipe)
    x, y = torch.randn(5, 8, generator=g), torch.randint(0, 3, (5,), generator=g)
    before = [(lin.weight.detach().clone(), lin.bias.detach().clone()) for lin in model.linears]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    model.mask_grads()
    grads = [(lin.weight.grad.clone(), lin.bias.grad.clone()) for lin in model.linears]
    decay_decoupled(model, recipe)
    opt.step()
    return model, before, grads


@pytest.mark.parametrize("recipe", [KERAS, SPARSE_PY, V0])
def test_one_weight_decay_step_computed_by_hand(recipe):
    model, before, grads = _one_step(recipe)
    lr, lam = recipe.lr, recipe.weight_decay
    for lin, (w, b), (gw, gb) in zip(model.linears, before, grads):
        if recipe.weight_decay_mode == "decoupled-per-batch":  # w += -lr g - lam w (first step: momentum = g)
            want_w, want_b = w - lr * gw - lam * w, b - lr * gb - lam * b
        elif recipe.weight_decay_mode == "coupled":  # torch SGD: w -= lr (g + lam w)
            want_w, want_b = w - lr * (gw + lam * w), b - lr * (gb + lam * b)
        else:
            want_w, want_b = w - lr * gw, b - lr * gb
        torch.testing.assert_close(lin.weight.detach(), want_w, rtol=0, atol=1e-7)
        torch.testing.assert_close(lin.bias.detach(), want_b, rtol=0, atol=1e-7)
    assert SPARSE_PY.weight_decay == 2e-4 and KERAS.weight_decay_mode == "none"


def test_the_sparse_python_loss_backpropagates_the_reference_delta():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 2])
    loss = reference_mse(z, y)
    loss.backward()
    a = torch.sigmoid(z.detach())
    onehot = torch.nn.functional.one_hot(y, 3).double()
    assert float(loss.detach()) == pytest.approx(float(((a - onehot) ** 2).mean()))
    s = 1 / (1 + torch.exp(-a))  # Sigmoid.prime of the activation, as the code applies it
    torch.testing.assert_close(z.grad, (a - onehot) * s * (1 - s) / 4)


def test_dropout_only_where_the_recipe_has_it():
    g = torch.Generator().manual_seed(0)
    for recipe, p in ((KERAS, 0.3), (SPARSE_PY, 0.0), (V0, 0.0)):
        model = SparseMLP([20, 30, 5], [None, None], dropout=recipe.dropout, generator=g)
        x = torch.randn(64, 20, generator=g)
        model.train()
        differs = not torch.equal(model(x), model(x))
        assert differs == (p > 0)
        model.eval()
        assert torch.equal(model(x), model(x))


def test_initialisations_follow_their_reference():
    g = torch.Generator().manual_seed(0)
    n_in, n_out = 400, 300
    mask = er_mask(n_out, n_in, 20.0, "exact", g)
    glorot = SparseMLP([n_in, n_out], [mask], generator=g, weight_init="glorot-uniform").linears[0].weight.detach()
    limit = math.sqrt(6 / (n_in + n_out))
    assert float(glorot.abs().max()) <= limit and float(glorot[mask].abs().max()) > 0.95 * limit
    randn = SparseMLP([n_in, n_out], [mask], generator=g, weight_init="randn/10").linears[0].weight.detach()[mask]
    assert 0.097 < float(randn.std()) < 0.103


def test_the_keras_recipe_runs_its_first_batch_through_the_dense_initial_matrix():
    data = load_dataset("digits")
    snaps, weights = [], {}

    def progress(event):
        if event["kind"] == "start":
            weights["model"] = event["model"]
            weights["initial"] = [lin.weight.detach().clone() for lin in event["model"].linears]
        elif event["kind"] == "batch" and event["t"] == 1:
            weights["after_first"] = [lin.weight.detach().clone() for lin in weights["model"].linears]
            weights["mask"] = weights["model"].masks[0].clone()

    config = TrainConfig(dataset="digits", method="set", hidden=(32,), epochs=1, epsilon=3.0, seed=1, threads=1)
    train(config, data, snaps.append, "r", progress)
    first = weights["initial"][0]
    assert int((first != 0).sum()) == first.numel()  # dense before the first batch
    assert torch.all(weights["after_first"][0][~weights["mask"]] == 0)  # masked after it
    # step 0 holds the connections with their initial weights
    s0 = snaps[0].layers[0].toarray().T
    mask0 = np.asarray(snaps[0].layers[0].tocsr().astype(bool).toarray().T)
    assert np.array_equal(s0[mask0], first.numpy()[mask0])


# --- the initial topology -------------------------------------------------------------------------


def test_er_sampling_rules():
    g = torch.Generator().manual_seed(0)
    n_out, n_in, eps = 300, 400, 10.0
    p = er_probability(eps, n_in, n_out)
    counts = [int(er_mask(n_out, n_in, eps, "bernoulli", g).sum()) for _ in range(5)]
    sd = math.sqrt(n_in * n_out * p * (1 - p))
    assert all(abs(c - p * n_in * n_out) < 5 * sd for c in counts) and len(set(counts)) > 1
    draws = int(eps * (n_in + n_out))
    repl = int(er_mask(n_out, n_in, eps, "with-replacement", g).sum())
    distinct = n_in * n_out * (1 - math.exp(-draws / (n_in * n_out)))  # repeats collapse: ~200 of 7,000
    assert abs(repl - distinct) < 40 and repl < draws
    assert int(er_mask(n_out, n_in, eps, "exact", g).sum()) == round(eps * (n_in + n_out))


# --- the run that matters: a core of connections survives ------------------------------------------


def _keys(m):
    c = m.tocoo()
    return set((c.row.astype(np.int64) * m.shape[1] + c.col).tolist())


def _survival(recipe):
    snaps = []
    config = TrainConfig(
        dataset="digits", method="set", recipe=recipe, hidden=(128, 128), epochs=8, epsilon=10.0, seed=3, threads=1
    )
    train(config, load_dataset("digits"), snaps.append, "r")
    base = [_keys(m) for m in snaps[1].layers[:2]]
    return [len(b & _keys(m)) / len(b) for b, m in zip(base, snaps[7].layers[:2])]


def test_under_the_default_recipe_a_core_of_connections_survives_six_updates():
    # Each update replaces 30 % of a layer: if it replaced connections at random, 0.7^6 = 0.12
    # of step 1's connections would be left at step 7.
    keras = _survival(None)
    assert all(s > 0.6 for s in keras), keras
    v0 = _survival("sparsetopo-v0")
    assert all(k - v > 0.15 for k, v in zip(keras, v0)), (keras, v0)


# --- RigL as google-research/rigl runs it ----------------------------------------------------------


def test_rigl_grows_at_zero_keeps_regrown_weights_and_grows_where_the_gradient_is_largest():
    weight, mask, momentum, g = _layer(30, 40, 300, seed=3)
    grad = torch.randn(30, 40, generator=g)
    before_w, before_m = weight.clone().view(-1), mask.clone().view(-1)
    before_mom = momentum.clone().view(-1)
    # without the drop noise, so the kept set can be recomputed here exactly
    alg = make_algorithm("rigl", 0.3, 1000, recipe=replace(RIGL, rigl_drop_noise=False))
    removed, added, in_place = update_layer(weight, mask, alg, 0.2, g, grad=grad, momentum=momentum)
    n_prune = int(np.float32(300) * np.float32(0.2))
    assert int(mask.sum()) == 300 and len(added) == len(removed)
    w, m, mom = weight.view(-1), mask.view(-1), momentum.view(-1)
    assert torch.all(w[added] == 0) and torch.all(mom[added] == 0)  # new connections start at 0
    survivors = m & before_m
    assert torch.equal(w[survivors], before_w[survivors]) and torch.equal(mom[survivors], before_mom[survivors])
    # the n_prune grown are the largest |grad| outside the kept set (which may include just-dropped ones)
    kept = torch.zeros_like(m)
    order = torch.sort(-(before_w * before_m).abs(), stable=True).indices
    kept[order[: 300 - n_prune]] = True
    grown = m & ~kept
    assert int(grown.sum()) == n_prune
    outside = ~kept & ~grown
    assert float(grad.view(-1)[grown].abs().min()) >= float(grad.view(-1)[outside].abs().max())


def test_rigl_reference_schedule_updates_before_training_and_counts_applied_steps():
    s = RigLReferenceSchedule(alpha=0.3, delta_t=100, t_end=1000)
    assert s.at_step(0) == pytest.approx(0.3)
    assert s.at_step(50) is None and s.at_step(1100) is None
    assert s.at_step(500) == pytest.approx(0.15)
    assert s.at_step(1000) == pytest.approx(0.0)


def test_a_rigl_update_iteration_applies_no_gradient_step():
    data = load_dataset("digits")
    seen = []

    def progress(event):
        if event["kind"] == "start":
            seen.append(event["model"])
        elif event["kind"] == "batch":
            seen.append(torch.cat([p.detach().flatten().clone() for p in seen[0].parameters()]))

    config = TrainConfig(
        dataset="digits", method="rigl", hidden=(32,), epochs=2, epsilon=3.0, seed=1, threads=1, delta_t=5
    )
    result = train(config, data, lambda s: None, "r", progress)
    params = seen[1:]
    # the first batch is an update (step 0): weights change only by the topology update (zeros in, out)
    assert len(result.steps) >= 3
    biases_first = params[0][-10:]
    assert torch.all(biases_first == 0)  # no gradient step, so the output biases are still 0
    assert not torch.equal(params[1], params[0])  # the next batch trains


def test_rules_can_be_changed_one_by_one_and_bad_ones_are_one_sentence():
    r = resolve("set", "keras", {"regrow_init": "randn/10", "dropout": None})
    assert r.regrow_init == "randn/10" and r.dropout == 0.3 and r.name == "keras"
    assert parse_rule("update_after_last_epoch=false") == ("update_after_last_epoch", False)
    assert parse_rule("weight-decay=1e-3") == ("weight_decay", 1e-3)
    with pytest.raises(ConfigError, match="unknown recipe 'kera'"):
        resolve("set", "kera", {})
    with pytest.raises(ConfigError, match="unknown regrow-init 'ones'"):
        resolve("set", None, {"regrow_init": "ones"})
    with pytest.raises(ConfigError, match="unknown rule 'regrow'"):
        parse_rule("regrow=zero")
    assert resolve("set", None, {}).name == "keras-randn" and resolve("rigl", None, {}).name == "rigl"
    assert resolve("dense", None, {}).name == "keras"
    # every recipe serves RigL too: SET's and RigL's pruning are separate rules
    for name, recipe in RECIPES.items():
        pruner = make_algorithm("rigl", 0.3, 1000, recipe=recipe).pruner
        assert type(pruner).__name__ == ("MagnitudePruner" if name == "sparsetopo-v0" else "RigLPruner")
    # keras-randn differs from keras in its initial weights only
    diff = {k for k, v in RECIPES["keras"].rules().items() if RECIPES["keras-randn"].rules()[k] != v}
    assert diff == {"weight_init"}
