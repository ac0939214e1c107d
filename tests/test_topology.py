"""sparsetopo.topology: the connection sets and the chaining check graphstore, analysis and the experiment share."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.errors import UserError
from sparsetopo.topology import TopologyError, check_chain, connection_keys, connection_mask, layer_sizes


def _with_zero_nan_and_duplicate():
    # (0,0)=0.0 explicit zero, (1,1)=NaN, (2,0) given twice (one connection of weight 1+2)
    return sp.coo_matrix(
        (np.array([0.0, np.nan, 1.0, 2.0, -4.0]), (np.array([0, 1, 2, 2, 2]), np.array([0, 1, 0, 0, 2]))),
        shape=(3, 3),
    )


def test_every_stored_entry_is_one_connection():
    m = _with_zero_nan_and_duplicate()
    assert connection_keys(m).tolist() == [0, 4, 6, 8]
    assert connection_keys(m, nonzero=True).tolist() == [4, 6, 8]  # NaN is not zero
    for fmt in ("csc", "csr"):
        mask = connection_mask(m, fmt)
        assert mask.format == fmt and mask.dtype == np.int32 and mask.has_sorted_indices
        assert mask.toarray().tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert connection_mask(m, "csr", np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="csc or csr"):
        connection_mask(m, "coo")


def test_a_dense_array_connects_its_nonzeros():
    dense = np.array([[0.0, 2.0], [3.0, 0.0]])
    assert connection_keys(dense).tolist() == [1, 2]
    assert connection_mask(dense).toarray().tolist() == [[0, 1], [1, 0]]


def test_keys_of_a_canonical_csr_align_with_its_data_and_leave_it_untouched():
    m = sp.random(40, 30, density=0.2, format="csr", random_state=np.random.default_rng(3), dtype=np.float32)
    m.data[::5] = 0.0  # explicit zeros
    keys = connection_keys(m)
    assert np.all(np.diff(keys) > 0) and keys.size == m.nnz
    dense = m.toarray()
    assert np.array_equal(dense.ravel()[keys], m.data)
    unsorted = sp.csr_matrix((m.data[::-1], m.indices[::-1], m.indptr), shape=m.shape)
    before = unsorted.indices.copy()
    connection_keys(unsorted)
    connection_mask(unsorted)
    assert np.array_equal(unsorted.indices, before)  # a non-canonical input is copied, never sorted in place


def test_layer_sizes_and_chaining():
    layers = [sp.csr_matrix((4, 3)), sp.csr_matrix((3, 2))]
    assert layer_sizes(layers) == [4, 3, 2] and layer_sizes([]) == []
    check_chain(layers)
    check_chain([np.zeros((5, 1))])
    with pytest.raises(
        TopologyError, match="the layers of net x do not chain: layer 0 has 3 outputs but layer 1 has 2"
    ):
        check_chain([sp.csr_matrix((4, 3)), sp.csr_matrix((2, 2))], "net x")
    with pytest.raises(TopologyError, match="the network has no layers"):
        check_chain([])

    class Mine(ValueError):
        pass

    with pytest.raises(Mine, match="do not chain"):
        check_chain([np.zeros((2, 2)), np.zeros((3, 1))], error=Mine)
    assert issubclass(TopologyError, UserError)


def test_the_packages_raise_their_own_error_with_the_same_sentence():
    from sparsetopo.analysis.nnstd import NNSTDError, masks_of
    from sparsetopo.analysis.structure import StructureError, binary_layers
    from sparsetopo.graphstore.model import Snapshot, validate_layers

    bad = [sp.csr_matrix((4, 3)), sp.csr_matrix((2, 2))]
    sentence = "do not chain: layer 0 has 3 outputs but layer 1 has 2 inputs"
    for call, error in [
        (lambda: masks_of(bad, "the first network"), NNSTDError),
        (lambda: binary_layers(bad), StructureError),
        (lambda: validate_layers(bad), TopologyError),
        (lambda: Snapshot("r", 2, bad), TopologyError),
    ]:
        with pytest.raises(error, match=sentence):
            call()
    with pytest.raises(TopologyError, match="step 2 of run 'r'"):
        Snapshot("r", 2, bad)
