"""The truly sparse linear op against a dense masked reference (torch.nn.functional.linear)."""

import pytest
import torch
import torch.nn.functional as F

from sparsetopo.trainer import sparse_ops
from sparsetopo.trainer.sparse_ops import SparseStructure, dense_gradient, sparse_linear


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _mask(n_out, n_in, density, seed, empty_rows=(), empty_cols=()):
    mask = torch.rand(n_out, n_in, generator=_gen(seed)) < density
    for r in empty_rows:
        mask[r, :] = False
    for c in empty_cols:
        mask[:, c] = False
    return mask


# (n_out, n_in, mask): random layers with empty rows and columns, degenerate shapes, no
# connections at all, and a fully dense layer.
LAYERS = {
    "random_empty_rows_cols": _mask(9, 7, 0.4, 1, empty_rows=(0, 4, 8), empty_cols=(2, 6)),
    "wide": _mask(5, 40, 0.1, 2, empty_rows=(3,)),
    "tall": _mask(40, 5, 0.1, 3, empty_cols=(0,)),
    "one_by_one": torch.ones(1, 1, dtype=torch.bool),
    "single_connection": torch.zeros(6, 4, dtype=torch.bool).index_put_(
        (torch.tensor([5]), torch.tensor([0])), torch.tensor(True)
    ),
    "no_connections": torch.zeros(6, 4, dtype=torch.bool),
    "fully_dense": torch.ones(6, 4, dtype=torch.bool),
    "larger_sparse": _mask(60, 50, 0.03, 4),
}


def _reference_weight(structure, values):
    """The dense (n_out, n_in) weight, differentiable in values."""
    flat = torch.zeros(structure.n_out * structure.n_in, dtype=values.dtype)
    return flat.scatter(0, structure.positions, values).view(structure.n_out, structure.n_in)


def _layer(mask, dtype=torch.float32, batch=8, seed=0):
    g = _gen(seed)
    s = SparseStructure.from_mask(mask)
    values = torch.randn(s.nnz, generator=g, dtype=dtype).requires_grad_()
    bias = torch.randn(s.n_out, generator=g, dtype=dtype).requires_grad_()
    x = torch.randn(batch, s.n_in, generator=g, dtype=dtype).requires_grad_()
    return s, values, bias, x


def _check_against_reference(s, values, bias, x, grad_out, atol=1e-5):
    y = sparse_linear(x, values, s, bias)
    inputs = [x, values] + ([bias] if bias is not None else [])
    grads = torch.autograd.grad(y, inputs, grad_out)
    y_ref = F.linear(x, _reference_weight(s, values), bias)
    grads_ref = torch.autograd.grad(y_ref, inputs, grad_out)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, atol=atol, rtol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        assert g.shape == g_ref.shape
        torch.testing.assert_close(g, g_ref, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("name", list(LAYERS))
def test_forward_and_gradients_equal_the_dense_masked_reference(name):
    s, values, bias, x = _layer(LAYERS[name])
    grad_out = torch.randn(x.shape[0], s.n_out, generator=_gen(9))
    _check_against_reference(s, values, bias, x, grad_out)
    _check_against_reference(s, values, None, x, grad_out)


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradcheck_in_float64(name):
    s, values, bias, x = _layer(LAYERS[name], dtype=torch.float64, batch=3)
    assert torch.autograd.gradcheck(lambda a, v, b: sparse_linear(a, v, s, b), (x, values, bias))
    assert torch.autograd.gradcheck(lambda a, v: sparse_linear(a, v, s), (x, values))


def test_values_order_is_the_sorted_positions_order():
    mask = LAYERS["random_empty_rows_cols"]
    s = SparseStructure.from_mask(mask)
    expected = torch.nonzero(mask.reshape(-1)).reshape(-1)
    assert torch.equal(s.positions, expected)
    assert torch.all(s.positions[1:] > s.positions[:-1])
    values = torch.arange(1, s.nnz + 1, dtype=torch.float32)
    dense = s.to_dense(values)
    # values[k] sits at position k of the sorted order, in both CSR forms.
    assert torch.equal(dense.reshape(-1)[s.positions], values)
    assert torch.equal(s.csr(values).to_dense(), dense)
    assert torch.equal(s.csr_t(values).to_dense(), dense.t())
    assert torch.equal(s.csr(values).values(), values)
    assert torch.equal(s.csr_t(values).values(), values[s.perm])
    assert torch.equal(s.rows * s.n_in + s.cols, s.positions)
    assert torch.equal(s.mask(), mask)
    assert torch.equal(s.values_from_dense(dense), values)
    # The weight gradient comes back in the same order.
    x = torch.randn(4, s.n_in)
    gy = torch.randn(4, s.n_out)
    v = values.clone().requires_grad_()
    sparse_linear(x, v, s).backward(gy)
    torch.testing.assert_close(v.grad, (gy.t() @ x).reshape(-1)[s.positions])


def test_positions_and_mask_give_the_same_structure():
    mask = LAYERS["larger_sparse"]
    a = SparseStructure.from_mask(mask)
    b = SparseStructure(mask.shape[0], mask.shape[1], torch.nonzero(mask.reshape(-1)).reshape(-1))
    for name in ("positions", "crow", "col", "t_crow", "t_col", "perm"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.shape == (60, 50) and len(a) == a.nnz == int(mask.sum())


def test_rebuild_after_a_topology_change():
    # SET-like update: drop some connections, grow others, carry the survivors' values over.
    mask = _mask(30, 20, 0.1, 5)
    old = SparseStructure.from_mask(mask)
    values = torch.randn(old.nnz, generator=_gen(1))
    dense = old.to_dense(values)
    keep = torch.ones(old.nnz, dtype=torch.bool)
    keep[torch.randperm(old.nnz, generator=_gen(2))[: old.nnz // 3]] = False
    new_mask = torch.zeros_like(mask).reshape(-1)
    new_mask[old.positions[keep]] = True
    free = torch.nonzero(~mask.reshape(-1)).reshape(-1)
    grown = free[torch.randperm(free.numel(), generator=_gen(3))[:10]]
    new_mask[grown] = True
    new_mask = new_mask.view_as(mask)
    new = SparseStructure.from_mask(new_mask)
    new_dense = dense * new_mask
    new_dense.reshape(-1)[grown] = 0.5
    new_values = new.values_from_dense(new_dense).requires_grad_()
    bias = torch.randn(30, requires_grad=True)
    x = torch.randn(7, 20, requires_grad=True)
    grad_out = torch.randn(7, 30)
    _check_against_reference(new, new_values, bias, x, grad_out)
    torch.testing.assert_close(sparse_linear(x, new_values, new, bias), F.linear(x, new_dense, bias))
    # The old structure is untouched and still computes the old layer.
    torch.testing.assert_close(sparse_linear(x, values, old), F.linear(x, dense))


def test_chained_layers_and_a_dense_output_layer_match_the_masked_network():
    # Sparse layers hand each other column-major activations; the result must not depend on it.
    torch.manual_seed(0)
    masks = [_mask(30, 20, 0.2, 6, empty_rows=(1,)), _mask(25, 30, 0.2, 7, empty_cols=(3,))]
    structures = [SparseStructure.from_mask(m) for m in masks]
    values = [torch.randn(s.nnz, requires_grad=True) for s in structures]
    biases = [torch.randn(s.n_out, requires_grad=True) for s in structures]
    out_w = torch.randn(4, 25, requires_grad=True)
    x = torch.randn(6, 20)
    target = torch.randint(0, 4, (6,))
    params = values + biases + [out_w]

    h = x
    for s, v, b in zip(structures, values, biases):
        h = torch.relu(sparse_linear(h, v, s, b))
    loss = F.cross_entropy(h @ out_w.t(), target)
    grads = torch.autograd.grad(loss, params)

    h = x
    for s, v, b in zip(structures, values, biases):
        h = torch.relu(F.linear(h, _reference_weight(s, v), b))
    loss_ref = F.cross_entropy(h @ out_w.t(), target)
    grads_ref = torch.autograd.grad(loss_ref, params)
    torch.testing.assert_close(loss, loss_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-5)


def test_an_sgd_step_on_the_values_matches_the_masked_step():
    s, values, bias, x = _layer(LAYERS["larger_sparse"])
    values = torch.nn.Parameter(values.detach().clone())
    weight = torch.nn.Parameter(s.to_dense(values.detach()))
    opt = torch.optim.SGD([values], lr=0.1, momentum=0.9)
    opt_ref = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    keep = s.mask().float()
    x = x.detach()
    for _ in range(3):
        opt.zero_grad()
        sparse_linear(x, values, s).square().sum().backward()
        opt.step()
        opt_ref.zero_grad()
        F.linear(x, weight * keep).square().sum().backward()
        opt_ref.step()
    torch.testing.assert_close(s.to_dense(values.detach()), weight.detach() * keep)


def test_leading_batch_dimensions_and_empty_batches():
    s, values, bias, _ = _layer(LAYERS["random_empty_rows_cols"])
    x = torch.randn(2, 3, s.n_in)
    y = sparse_linear(x, values, s, bias)
    assert y.shape == (2, 3, s.n_out)
    torch.testing.assert_close(y, F.linear(x, _reference_weight(s, values), bias))
    empty = torch.zeros(0, s.n_in, requires_grad=True)
    y = sparse_linear(empty, values, s, bias)
    assert y.shape == (0, s.n_out)
    y.sum().backward()
    assert torch.equal(values.grad, torch.zeros(s.nnz))


def test_input_without_grad_skips_grad_x():
    s, values, bias, x = _layer(LAYERS["larger_sparse"])
    x = x.detach()
    sparse_linear(x, values, s, bias).sum().backward()
    assert x.grad is None
    torch.testing.assert_close(bias.grad, torch.full((s.n_out,), float(x.shape[0])))


def test_invalid_structures_and_arguments_are_rejected():
    with pytest.raises(ValueError, match="sorted"):
        SparseStructure(3, 3, torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="sorted"):
        SparseStructure(3, 3, torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="outside"):
        SparseStructure(3, 3, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match="outside"):
        SparseStructure(3, 3, torch.tensor([-1, 0]))
    with pytest.raises(TypeError):
        SparseStructure(3, 3, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError):
        SparseStructure.from_mask(torch.ones(3, dtype=torch.bool))
    s = SparseStructure(3, 4, torch.tensor([0, 5, 11]))
    with pytest.raises(ValueError, match="values"):
        sparse_linear(torch.randn(2, 4), torch.randn(2), s)
    with pytest.raises(ValueError, match="features"):
        sparse_linear(torch.randn(2, 3), torch.randn(3), s)
    with pytest.raises(TypeError):
        sparse_linear(torch.randn(2, 4, dtype=torch.float64), torch.randn(3), s)


@pytest.mark.parametrize("chunk_rows", [2, 256])
@pytest.mark.parametrize("block", [None, 1, 3, 4, 100])
def test_dense_gradient_in_row_blocks(block, chunk_rows, monkeypatch):
    monkeypatch.setattr(sparse_ops, "GRADIENT_CHUNK_MAX_ROWS", chunk_rows)
    s, values, bias, x = _layer(LAYERS["random_empty_rows_cols"])
    weight = _reference_weight(s, values.detach()).requires_grad_()
    grad_y = torch.randn(x.shape[0], s.n_out)
    F.linear(x.detach(), weight, bias.detach()).backward(grad_y)
    blocks = list(dense_gradient(x.detach(), grad_y, block))
    starts = [start for start, _ in blocks]
    # blocks are whole chunks of rows, so every number is the same whatever the block
    step = s.n_out if block is None else max(chunk_rows, -(-block // chunk_rows) * chunk_rows)
    assert starts == list(range(0, s.n_out, step))
    assert all(rows.shape[0] <= step for _, rows in blocks)
    full = torch.cat([rows for _, rows in blocks])
    assert torch.equal(full, next(dense_gradient(x.detach(), grad_y))[1])
    torch.testing.assert_close(full, weight.grad)
    # At the connections it is exactly what sparse_linear gives the values.
    v = values.detach().clone().requires_grad_()
    sparse_linear(x.detach(), v, s).backward(grad_y)
    torch.testing.assert_close(full.reshape(-1)[s.positions], v.grad)


def test_dense_gradient_numbers_do_not_depend_on_the_block():
    g = _gen(9)
    x, grad_y = torch.randn(100, 300, generator=g), torch.randn(100, 700, generator=g)
    full = next(dense_gradient(x, grad_y))[1]
    for block in (1, 5, 64, 300):
        assert torch.equal(torch.cat([rows for _, rows in dense_gradient(x, grad_y, block)]), full)


def test_dense_gradient_rejects_bad_arguments():
    with pytest.raises(ValueError, match="block"):
        list(dense_gradient(torch.randn(2, 3), torch.randn(2, 4), 0))
    with pytest.raises(ValueError, match="samples"):
        list(dense_gradient(torch.randn(2, 3), torch.randn(3, 4)))
