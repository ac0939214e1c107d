"""The sparse backend trains the same networks as the masked one: same updates, same runs, float tolerance."""

import numpy as np
import pytest
import torch
from trainer_runs import digits_runs_on_both_backends

from sparsetopo.trainer.algorithms import make_algorithm, update_topology
from sparsetopo.trainer.loop import choose_backend, make_optimizer
from sparsetopo.trainer.model import SparseMLP, to_snapshot
from sparsetopo.trainer.recipes import RECIPES
from sparsetopo.trainer.sparse import er_mask


def _pair(sizes, eps, seed, recipe, dense_limit=None):
    masks = [
        er_mask(sizes[k + 1], sizes[k], eps, "exact", torch.Generator().manual_seed(seed + k))
        for k in range(len(sizes) - 2)
    ] + [None]
    nets = {}
    for backend in ("masked", "sparse"):
        g = torch.Generator().manual_seed(seed)
        nets[backend] = SparseMLP(
            sizes, masks, generator=g, weight_init=recipe.weight_init, backend=backend, dense_limit=dense_limit
        )
    return nets


@pytest.mark.parametrize("recipe", ["keras-randn", "sparsetopo-v0"])
def test_forward_and_gradients_equal_the_masked_backend(recipe):
    nets = _pair([30, 40, 25, 5], 2.0, 1, RECIPES[recipe])
    x = torch.randn(16, 30, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(3))
    outs, grads = {}, {}
    for name, net in nets.items():
        net.capture_for_gradients()
        out = net(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        outs[name], grads[name] = out.detach(), net.dense_gradients()
    torch.testing.assert_close(outs["sparse"], outs["masked"], rtol=1e-5, atol=1e-6)
    for gs, gm in zip(grads["sparse"], grads["masked"]):
        torch.testing.assert_close(gs, gm, rtol=1e-5, atol=1e-6)  # the dense gradient RigL grows by
    masked, sparse = nets["masked"], nets["sparse"]
    for k in sparse.structures:  # the values' gradient is the masked gradient at the connections
        want = masked.linears[k].weight.grad.reshape(-1)[sparse.structures[k].positions]
        torch.testing.assert_close(sparse.values[str(k)].grad, want, rtol=1e-5, atol=1e-6)
    a, b = to_snapshot(masked, "r", 0, 0, {}), to_snapshot(sparse, "r", 0, 0, {})
    for ma, mb in zip(a.layers, b.layers):
        assert np.array_equal(ma.indptr, mb.indptr) and np.array_equal(ma.indices, mb.indices)
        np.testing.assert_array_equal(ma.data, mb.data)


# dense_limit 0: every layer is updated on its connection list (update_connections), as a layer
# too large for the dense draws is; the backends must still agree.
@pytest.mark.parametrize("dense_limit", [None, 0])
@pytest.mark.parametrize(
    "method, recipe",
    [
        ("set", "keras-randn"),
        ("set", "sparse-python"),
        ("set", "sparsetopo-v0"),
        ("rigl", "rigl"),
        ("rigl", "sparsetopo-v0"),
    ],
)
def test_one_update_removes_and_grows_the_same_positions_on_both_backends(method, recipe, dense_limit):
    r = RECIPES[recipe]
    nets = _pair([30, 40, 25, 5], 2.0, 4, r, dense_limit)
    alg = make_algorithm(method, 0.3, 1000, recipe=r)
    x = torch.randn(16, 30, generator=torch.Generator().manual_seed(5))
    y = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(6))
    after = {}
    for name, net in nets.items():
        opt = make_optimizer(net, r)
        net.capture_for_gradients()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads = net.dense_gradients()
        net.mask_grads()
        opt.step()
        changes = update_topology(net, opt, alg, 0.3, torch.Generator().manual_seed(7), grads)
        after[name] = (
            [net.dense_mask(k).clone() for k in range(2)],
            [net.dense_weight(k) for k in range(2)],
            [net.momentum_dense(k, opt).clone() for k in range(2)],
            changes,
        )
    masks_m, w_m, mom_m, ch_m = after["masked"]
    masks_s, w_s, mom_s, ch_s = after["sparse"]
    assert [(c.removed, c.added, c.regrown_in_place) for c in ch_m] == [
        (c.removed, c.added, c.regrown_in_place) for c in ch_s
    ]
    assert sum(c.added for c in ch_m) > 0
    for a, b in zip(masks_m, masks_s):
        assert torch.equal(a, b)
    for a, b in zip(w_m + mom_m, w_s + mom_s):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "method, dropout_draw", [("set", "torch-bernoulli"), ("set", "counter-hash"), ("rigl", "torch-bernoulli")]
)
def test_a_short_digits_run_is_the_same_run_on_both_backends(method, dropout_draw):
    runs = digits_runs_on_both_backends(method=method, dropout=0.3, rules={"dropout_draw": dropout_draw})
    accs = {b: [s.metrics["test_accuracy"] for s in snaps] for b, snaps in runs.items()}
    assert accs["sparse"][-1] > 0.5 and abs(accs["sparse"][-1] - accs["masked"][-1]) < 0.02
    for a, b in zip(runs["masked"], runs["sparse"]):
        for ma, mb in zip(a.layers, b.layers):
            assert np.array_equal(ma.indices, mb.indices) and np.array_equal(ma.indptr, mb.indptr)


def test_auto_picks_the_sparse_backend_for_sparse_networks_only():
    g = torch.Generator().manual_seed(0)
    thin = [er_mask(784, 784, 2.4, "exact", g), None]
    thick = [er_mask(100, 64, 20.0, "exact", g), None]
    assert choose_backend("auto", thin) == "sparse"
    assert choose_backend("auto", thick) == "masked"
    assert choose_backend("auto", [None, None]) == "masked"
    assert choose_backend("masked", thin) == "masked"
