"""SET and RigL updates under sparsetopo-v0's rules: exact counts, zeta per sign, growth only at empty
positions, state resets. The reference recipes are tested in test_trainer_recipes.py."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetopo.trainer.algorithms import CosineSchedule, EpochSchedule, make_algorithm, update_layer, update_topology
from sparsetopo.trainer.errors import ConfigError
from sparsetopo.trainer.model import SparseMLP
from sparsetopo.trainer.recipes import RECIPES
from sparsetopo.trainer.sparse import initial_masks

V0 = RECIPES["sparsetopo-v0"]
V0_RIGL = V0  # sparsetopo-v0's RigL rule (rigl_prune_rule) is magnitude


def _layer(n_out, n_in, count, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n_out * n_in, dtype=torch.bool)
    mask[torch.randperm(n_out * n_in, generator=g)[:count]] = True
    mask = mask.view(n_out, n_in)
    weight = torch.randn(n_out, n_in, generator=g) * mask
    momentum = torch.randn(n_out, n_in, generator=g) * mask
    return weight, mask, momentum, g


@settings(max_examples=40, deadline=None)
@given(
    n_out=st.integers(2, 40),
    n_in=st.integers(2, 40),
    fill=st.floats(0.05, 0.5),
    zeta=st.floats(0.01, 0.99),
    seed=st.integers(0, 10_000),
)
def test_set_update_prunes_zeta_per_sign_and_regrows_only_empty_positions(n_out, n_in, fill, zeta, seed):
    count = max(1, int(fill * n_out * n_in))
    weight, mask, momentum, g = _layer(n_out, n_in, count, seed)
    before_w, before_m = weight.clone(), mask.clone()
    n_pos = int(((before_w > 0) & before_m).sum())
    n_neg = int(((before_w < 0) & before_m).sum())

    removed, added, _ = update_layer(weight, mask, make_algorithm("set", zeta, recipe=V0), zeta, g, momentum=momentum)

    flat_w, flat_m = before_w.view(-1), before_m.view(-1)
    rem_pos = removed[flat_w[removed] > 0]
    rem_neg = removed[flat_w[removed] < 0]
    assert len(rem_pos) == math.floor(zeta * n_pos)
    assert len(rem_neg) == math.floor(zeta * n_neg)
    # the smallest positive and the largest negative weights go, nothing stronger survives them
    kept = flat_m.clone()
    kept[removed] = False
    survivors_pos = flat_w[kept & (flat_w > 0)]
    survivors_neg = flat_w[kept & (flat_w < 0)]
    if len(rem_pos) and len(survivors_pos):
        assert flat_w[rem_pos].max() <= survivors_pos.min()
    if len(rem_neg) and len(survivors_neg):
        assert flat_w[rem_neg].min() >= survivors_neg.max()
    # exact count, growth only where nothing was before, fresh weights nonzero, momentum reset
    assert int(mask.sum()) == count
    assert len(added) == len(removed)
    assert not flat_m[added].any()
    assert torch.all(weight.view(-1)[added] != 0)
    assert torch.all(weight.view(-1)[removed] == 0)
    assert torch.all(weight[~mask] == 0)
    assert torch.all(momentum.view(-1)[added] == 0) and torch.all(momentum.view(-1)[removed] == 0)


def test_rigl_grows_where_the_gradient_is_largest_and_prunes_smallest_magnitudes():
    weight, mask, momentum, g = _layer(30, 40, 300, seed=3)
    grad = torch.randn(30, 40, generator=g)
    before_w, before_m = weight.clone().view(-1), mask.clone().view(-1)
    removed, added, _ = update_layer(
        weight, mask, make_algorithm("rigl", 0.3, 1000, recipe=V0_RIGL), 0.2, g, grad=grad, momentum=momentum
    )
    assert len(removed) == len(added) == math.floor(0.2 * 300)
    assert int(mask.sum()) == 300
    kept = before_m.clone()
    kept[removed] = False
    assert before_w[removed].abs().max() <= before_w[kept].abs().min()
    empty_before = ~before_m
    not_grown = empty_before.clone()
    not_grown[added] = False
    g_abs = grad.view(-1).abs()
    assert not before_m[added].any()
    assert g_abs[added].min() >= g_abs[not_grown].max()


def test_cosine_schedule_decays_and_stops_at_t_end():
    s = CosineSchedule(alpha=0.3, delta_t=10, t_end=100)
    assert s.at_step(5) is None and s.at_step(100) is None and s.at_step(110) is None
    fractions = [s.at_step(t) for t in range(10, 100, 10)]
    assert fractions == sorted(fractions, reverse=True)
    assert fractions[0] == pytest.approx(0.15 * (1 + math.cos(math.pi * 0.1)))
    e = EpochSchedule(0.3)
    assert e.at_epoch_end(1, 3) == 0.3 and e.at_epoch_end(3, 3) is None


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_update_topology_keeps_every_layer_count_and_resets_optimizer_state(method):
    g = torch.Generator().manual_seed(0)
    sizes = [20, 30, 30, 5]
    model = SparseMLP(sizes, initial_masks(sizes, "er", 3.0, g), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 20, generator=g), torch.randint(0, 5, (16,), generator=g)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads = [lin.weight.grad.clone() for lin in model.linears]
    model.mask_grads()
    opt.step()
    counts = model.n_connections()
    old_masks = [None if m is None else m.clone() for m in model.masks]
    recipe = V0 if method == "set" else V0_RIGL
    changes = update_topology(model, opt, make_algorithm(method, 0.3, 100, recipe=recipe), 0.3, g, grads)
    assert model.n_connections() == counts
    assert [c.layer for c in changes] == [0, 1]  # the dense output layer is never touched
    for c, lin, mask, old in zip(changes, model.linears, model.masks, old_masks):
        assert c.added == c.removed == int((mask & ~old).sum()) == int((old & ~mask).sum()) > 0
        assert torch.all(lin.weight[~mask] == 0)
        assert torch.all(opt.state[lin.weight]["momentum_buffer"][mask & ~old] == 0)


def test_unknown_methods_and_bad_zeta_are_user_errors():
    with pytest.raises(ConfigError, match="unknown method"):
        make_algorithm("prune-everything", 0.3)
    with pytest.raises(ConfigError, match="zeta"):
        make_algorithm("set", 1.5)
