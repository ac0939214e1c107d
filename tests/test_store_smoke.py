import numpy as np
import pytest
import scipy.sparse as sp

from sparsetopo.graphstore.model import RunInfo, Snapshot
from sparsetopo.graphstore.reader import snapshots_equal

pytestmark = pytest.mark.neo4j


def test_write_read_roundtrip(store):
    rng = np.random.default_rng(0)
    layers = [
        sp.random(20, 30, density=0.2, random_state=1, dtype=np.float32, format="csr"),
        sp.random(30, 5, density=0.5, random_state=2, dtype=np.float32, format="csr"),
    ]
    store.create_run(RunInfo("r1", [20, 30, 5], method="set"))
    s0 = Snapshot("r1", 0, layers, [rng.standard_normal(30), rng.standard_normal(5)], {"test_accuracy": 0.5})
    assert store.write_snapshot(s0)
    assert not store.write_snapshot(s0)
    back = store.read_snapshot("r1", 0)
    assert snapshots_equal(back, s0)
