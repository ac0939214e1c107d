"""Initial topologies: exact ER counts, ERK and uniform densities, dense output layer by default."""

import pytest
import torch

from sparsetopo.trainer.errors import ConfigError
from sparsetopo.trainer.sparse import er_connections, er_probability, erk_counts, initial_masks, layer_counts

SIZES = [784, 1000, 1000, 1000, 10]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_er_masks_have_the_exact_connection_count():
    masks = initial_masks(SIZES, "er", 20.0, _gen())
    for k, mask in enumerate(masks[:-1]):
        n_in, n_out = SIZES[k], SIZES[k + 1]
        assert mask.shape == (n_out, n_in)
        expected = round(er_probability(20.0, n_in, n_out) * n_in * n_out)
        assert int(mask.sum()) == expected == er_connections(20.0, n_in, n_out)
    assert masks[-1] is None  # the output layer is dense, as in SET


def test_sparse_output_makes_the_last_layer_sparse_too():
    masks = initial_masks(SIZES, "er", 2.0, _gen(), sparse_output=True)
    assert int(masks[-1].sum()) == round(2.0 * (1000 + 10))


def test_er_count_is_capped_at_a_full_layer():
    assert er_connections(50.0, 8, 8) == 64


def test_masks_depend_on_the_seed_only():
    a = initial_masks(SIZES, "er", 20.0, _gen(1))
    b = initial_masks(SIZES, "er", 20.0, _gen(1))
    c = initial_masks(SIZES, "er", 20.0, _gen(2))
    assert all(torch.equal(x, y) for x, y in zip(a[:-1], b[:-1]))
    assert not torch.equal(a[0], c[0])


def test_erk_and_uniform_default_to_the_er_parameter_count():
    er = layer_counts(SIZES, "er", 20.0, None, False)
    erk = layer_counts(SIZES, "erk", 20.0, None, False)
    uni = layer_counts(SIZES, "uniform", 20.0, None, False)
    total_er = sum(c for c in er if c)
    assert abs(sum(c for c in erk if c) - total_er) <= 3
    assert abs(sum(c for c in uni if c) - total_er) <= 3
    densities = [c / (SIZES[k] * SIZES[k + 1]) for k, c in enumerate(uni[:-1])]
    assert max(densities) - min(densities) < 1e-3
    assert erk[-1] is None and uni[-1] is None


def test_erk_makes_overfull_layers_dense_and_keeps_the_budget():
    sizes = [4, 1000, 1000]
    counts = erk_counts(sizes, 0.5, [True, True])
    assert counts[0] == 4 * 1000  # ERK would give layer 0 a density above 1
    assert abs(sum(counts) - 0.5 * (4000 + 1_000_000)) <= 2


def test_dense_init_has_no_masks_and_bad_names_are_user_errors():
    assert initial_masks(SIZES, "dense", 20.0, _gen()) == [None] * 4
    with pytest.raises(ConfigError, match="unknown initial topology"):
        initial_masks(SIZES, "random", 20.0, _gen())
    with pytest.raises(ConfigError, match="density"):
        initial_masks(SIZES, "uniform", 20.0, _gen(), density=1.5)
