"""ReLU + dropout under both draw rules: the distribution, the layouts, the gradients."""

import math

import pytest
import torch
import torch.nn.functional as F

from sparsetopo.trainer import torch_mt
from sparsetopo.trainer.dropout import DROPOUT_DRAWS, relu_dropout


def _column_major(x: torch.Tensor) -> torch.Tensor:
    return x.t().contiguous().t()


def test_torch_bernoulli_is_f_dropout_bit_for_bit_in_any_layout():
    x = torch.randn(50, 70)
    torch.manual_seed(3)
    want = F.dropout(torch.relu(x), 0.3, True)
    for layout in (lambda t: t, _column_major):
        torch.manual_seed(3)
        got = relu_dropout(layout(x), 0.3, "torch-bernoulli")
        assert torch.equal(got, want) and got.stride() == layout(x).stride()


def test_this_torch_builds_generator_is_the_one_replayed():
    # Where it is not, torch-bernoulli falls back to torch's own (slower) bernoulli_.
    assert torch_mt.replays_torch()


@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_fused_torch_bernoulli_leaves_the_generator_where_f_dropout_does(layout):
    x = torch.randn(100, 3001)  # 600,200 draws: many refills of the 624-word state, mid-block start
    x[0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])
    torch.manual_seed(21)
    torch.rand(5)
    want = F.dropout(torch.relu(x), 0.2, True)
    after = torch.get_rng_state()
    next_draw = torch.rand(3)
    torch.manual_seed(21)
    torch.rand(5)
    got = relu_dropout(_column_major(x) if layout == "column-major" else x, 0.2, "torch-bernoulli")
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(torch.get_rng_state(), after)
    assert torch.equal(torch.rand(3), next_draw)


@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_fused_torch_bernoulli_gradient_is_autograd_through_relu_and_noise(layout):
    x = torch.randn(40, 700)
    x[1, :6] = 0.0
    x = _column_major(x) if layout == "column-major" else x
    g = torch.randn(40, 700)
    x1 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(4)
    relu_dropout(x1, 0.35, "torch-bernoulli").backward(g)
    x2 = x.detach().contiguous().requires_grad_(True)  # F.dropout draws in memory order
    torch.manual_seed(4)
    F.dropout(torch.relu(x2), 0.35, True).backward(g)
    assert torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("draw", DROPOUT_DRAWS)
def test_both_layouts_drop_the_same_units_and_keep_their_layout(draw):
    x = torch.randn(64, 300)
    outs = []
    for layout in (lambda t: t, _column_major):
        torch.manual_seed(11)
        y = relu_dropout(layout(x), 0.4, draw)
        assert y.stride() == layout(x).stride()
        outs.append(y)
    assert torch.equal(outs[0], outs[1])


def test_counter_hash_keeps_units_at_the_rate_and_scales_them_like_f_dropout():
    x = torch.rand(400, 2500) + 0.01  # all positive: every kept unit shows
    torch.manual_seed(0)
    y = relu_dropout(x, 0.3, "counter-hash")
    kept = y > 0
    n = kept.numel()
    rate = kept.float().mean().item()
    assert abs(rate - 0.7) < 5 * math.sqrt(0.7 * 0.3 / n)
    scale = torch.tensor(1.0) / torch.tensor(0.7)  # float32, as F.dropout's noise.div_(1 - p)
    assert torch.equal(y[kept], x[kept] * scale)
    # neighbours along either axis are independent (a counter-based stream must not stripe)
    k = kept.float() - rate
    for a, b in ((k[:, 1:], k[:, :-1]), (k[1:, :], k[:-1, :])):
        corr = (a * b).mean().item() / (rate * (1 - rate))
        assert abs(corr) < 5 / math.sqrt(a.numel())


def test_counter_hash_is_decided_by_the_global_seed_and_differs_between_calls():
    x = torch.rand(32, 500) + 0.01
    torch.manual_seed(5)
    first, second = relu_dropout(x, 0.5, "counter-hash"), relu_dropout(x, 0.5, "counter-hash")
    torch.manual_seed(5)
    again = relu_dropout(x, 0.5, "counter-hash")
    assert torch.equal(first, again)
    assert not torch.equal(first > 0, second > 0)
    # about half the units differ between two independent masks of rate 0.5
    assert 0.4 < ((first > 0) != (second > 0)).float().mean().item() < 0.6


@pytest.mark.parametrize("layout", ["row-major", "column-major"])
def test_counter_hash_gradient_is_relu_times_the_kept_mask(layout):
    x = torch.randn(40, 90)
    x[0, :5] = 0.0  # ReLU's gradient at exactly 0 is 0
    x = _column_major(x) if layout == "column-major" else x
    x.requires_grad_(True)
    torch.manual_seed(8)
    y = relu_dropout(x, 0.25, "counter-hash")
    g = torch.randn(40, 90)
    y.backward(g)
    kept = (y > 0).detach()
    scale = torch.tensor(1.0) / torch.tensor(0.75)
    want = torch.where(kept, g * scale, torch.zeros(()))
    assert torch.equal(x.grad, want)
    # the same as autograd through relu and a multiplication by the same mask
    x2 = x.detach().clone().requires_grad_(True)
    (torch.relu(x2) * (kept.float() * scale)).backward(g)
    assert torch.equal(x.grad, x2.grad)


def test_outside_training_and_at_zero_dropout_it_is_just_relu():
    x = torch.randn(10, 20)
    for draw in DROPOUT_DRAWS:
        assert torch.equal(relu_dropout(x, 0.3, draw, training=False), torch.relu(x))
        assert torch.equal(relu_dropout(x, 0.0, draw), torch.relu(x))


def test_an_unknown_draw_is_refused():
    with pytest.raises(ValueError, match="unknown dropout draw"):
        relu_dropout(torch.randn(2, 3), 0.3, "mt19937")
