"""The file format of the paper's published topologies.

A snapshot directory holds weight_l0.npz ... weight_l{L-1}.npz, each a
scipy.sparse.save_npz matrix of shape (n_k + 1, n_{k+1}) whose last row is the
bias. A run directory holds epoch_XXX/ snapshot directories and optionally a
testacc.txt with one test accuracy per epoch.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import UserError
from ..topology import LayerStack
from .model import Snapshot, TopologyError, validate_layers

_LAYER_FILE = re.compile(r"^weight_l(\d+)\.npz$")
_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


class NpzFormatError(UserError, ValueError):
    """A directory or file that is not in the paper's format."""


def is_snapshot_dir(path: Path) -> bool:
    return path.is_dir() and any(_LAYER_FILE.match(p.name) for p in path.iterdir())


def epoch_dirs(root: Path) -> list[tuple[int, Path]]:
    """The epoch_XXX/ snapshot directories of a run directory, in epoch order."""
    found = []
    for p in root.iterdir():
        m = _EPOCH_DIR.match(p.name)
        if m and is_snapshot_dir(p):
            found.append((int(m.group(1)), p))
    return sorted(found)


# Neurons per layer: a declared shape beyond this is refused before anything is allocated (a COO file
# of a few bytes can declare 2^33 rows, whose CSR row index alone would take 64 GiB).
MAX_LAYER_WIDTH = 2**31 - 1


def _load_matrix(path: Path) -> sp.csr_matrix:
    try:
        m = sp.load_npz(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise NpzFormatError(f"{path} is not a readable scipy sparse .npz file ({exc.__class__.__name__})") from None
    if max(m.shape) > MAX_LAYER_WIDTH:
        raise NpzFormatError(f"{path} declares shape {m.shape}; a layer can have at most {MAX_LAYER_WIDTH} neurons")
    try:
        return m.tocsr()
    except MemoryError:
        raise NpzFormatError(f"{path} declares shape {m.shape}, too large to hold in this machine's memory") from None


def read_snapshot_dir(path: str | Path, run_id: str = "", step: int = 0, epoch: int | None = None) -> Snapshot:
    """Read one snapshot directory: weights as layers, the last row of each file as its bias."""
    path = Path(path)
    if not path.exists():
        raise NpzFormatError(f"{path} does not exist")
    if not path.is_dir():
        raise NpzFormatError(f"{path} is not a directory of weight_l*.npz files")
    files = {int(m.group(1)): p for p in path.iterdir() if (m := _LAYER_FILE.match(p.name))}
    if not files:
        raise NpzFormatError(f"{path} holds no weight_l*.npz files")
    expected = list(range(len(files)))
    if sorted(files) != expected:
        raise NpzFormatError(f"{path} has layer files {sorted(files)}; expected consecutive layers {expected}")
    layers, biases = [], []
    for k in expected:
        full = _load_matrix(files[k])
        if full.shape[0] < 2:
            raise NpzFormatError(f"{files[k]} has {full.shape[0]} rows; expected inputs plus one bias row")
        try:
            layers.append(full[:-1])
            biases.append(full[-1].toarray().ravel())  # Snapshot converts, refusing what float32 cannot hold
        except MemoryError:
            raise NpzFormatError(
                f"{files[k]} declares shape {full.shape}, too large to hold in this machine's memory"
            ) from None
    taps = _read_taps(path, len(layers))
    producers, shapes = _read_topology(path, len(layers))
    try:
        validate_layers(LayerStack(layers, taps, producers), biases)
    except TopologyError as exc:
        raise NpzFormatError(f"{path}: {exc}") from None
    try:
        return Snapshot(
            run_id=run_id,
            step=step,
            layers=layers,
            biases=biases,
            epoch=epoch,
            taps=taps,
            producers=producers,
            tap_shapes=shapes,
        )
    except TopologyError as exc:
        raise NpzFormatError(f"{path}: {exc}") from None


def read_test_accuracies(root: Path) -> list[float]:
    """testacc.txt: one accuracy per epoch, whitespace or comma separated."""
    f = root / "testacc.txt"
    if not f.exists():
        return []
    text = f.read_text().replace(",", " ").split()
    try:
        return [float(v) for v in text]
    except ValueError:
        raise NpzFormatError(f"{f} must hold numbers, one test accuracy per epoch") from None


def read_run_dir(root: str | Path, run_id: str):
    """Yield the snapshots of a run directory (or a single snapshot directory), step by step.

    Steps are numbered 0, 1, ... in epoch order; each snapshot records its epoch.
    Reading is lazy so a long run never sits in memory at once.
    """
    root = Path(root)
    if not root.exists():
        raise NpzFormatError(f"{root} does not exist")
    if is_snapshot_dir(root):
        yield read_snapshot_dir(root, run_id=run_id, step=0)
        return
    if not root.is_dir():
        raise NpzFormatError(f"{root} is not a directory")
    epochs = epoch_dirs(root)
    if not epochs:
        raise NpzFormatError(f"{root} holds neither weight_l*.npz files nor epoch_XXX/ snapshot directories")
    accuracies = read_test_accuracies(root)
    for step, (epoch, path) in enumerate(epochs):
        snap = read_snapshot_dir(path, run_id=run_id, step=step, epoch=epoch)
        # testacc.txt lists one value per trained epoch; epoch_000 may be the untrained start.
        if accuracies:
            first = epochs[0][0]
            idx = epoch - first if len(accuracies) == len(epochs) else epoch - 1
            if 0 <= idx < len(accuracies):
                snap.metrics["test_accuracy"] = accuracies[idx]
        yield snap


TAPS_FILE = "taps.json"  # beside the layer files, only for layers with taps (convolutions)


def _read_taps(path: Path, n_layers: int) -> list[int]:
    import json

    file = path / TAPS_FILE
    if not file.exists():
        return [1] * n_layers
    try:
        taps = json.loads(file.read_text())
    except ValueError:
        raise NpzFormatError(f"{file} is not JSON") from None
    if not isinstance(taps, list) or len(taps) != n_layers or not all(isinstance(t, int) and t >= 1 for t in taps):
        raise NpzFormatError(f"{file} must list one positive integer per layer file ({n_layers})")
    return taps


# Beside taps.json, only for layers that do not chain or whose tap shapes are known:
# {"producers": [null, 0, 1, null, ...], "tap_shapes": [[3, 3], null, ...]} (either key may be absent).
TOPOLOGY_FILE = "topology.json"


def _read_topology(path: Path, n_layers: int) -> tuple[list[int | None] | None, list | None]:
    import json

    file = path / TOPOLOGY_FILE
    if not file.exists():
        return None, None
    try:
        data = json.loads(file.read_text())
    except ValueError:
        raise NpzFormatError(f"{file} is not JSON") from None
    if not isinstance(data, dict):
        raise NpzFormatError(f"{file} must hold an object with 'producers' and/or 'tap_shapes'")
    producers, shapes = data.get("producers"), data.get("tap_shapes")

    def _int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if producers is not None and (
        not isinstance(producers, list)
        or len(producers) != n_layers
        or not all(p is None or (_int(p) and p >= 0) for p in producers)
    ):
        raise NpzFormatError(f"{file}: 'producers' must list a layer index or null for each of the {n_layers} layers")
    if shapes is not None and (
        not isinstance(shapes, list)
        or len(shapes) != n_layers
        or not all(s is None or (isinstance(s, list) and all(_int(d) for d in s)) for s in shapes)
    ):
        raise NpzFormatError(
            f"{file}: 'tap_shapes' must list a list of integers or null for each of the {n_layers} layers"
        )
    return producers, shapes


def write_snapshot_dir(snapshot: Snapshot, out: str | Path) -> Path:
    """Write a snapshot in the paper's format; missing biases are written as zeros. A snapshot with
    convolutional layers also gets taps.json (rows per input channel of each layer), one with layers
    that do not chain or with known tap shapes topology.json (producers, tap shapes)."""
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(t != 1 for t in snapshot.taps or []):
        (out / TAPS_FILE).write_text(json.dumps(list(snapshot.taps or [])) + "\n")
    topology: dict = {}
    if not snapshot.chained:
        topology["producers"] = list(snapshot.producers or [])
    if any(s is not None for s in snapshot.tap_shapes or []):
        topology["tap_shapes"] = list(snapshot.tap_shapes or [])
    if topology:
        (out / TOPOLOGY_FILE).write_text(json.dumps(topology) + "\n")
    for k, (m, b) in enumerate(zip(snapshot.layers, snapshot.biases)):
        bias = np.zeros(m.shape[1], dtype=np.float32) if b is None else b
        # The bias row keeps only its nonzeros; the weight rows keep every connection (stored zeros too).
        full = sp.vstack([m, sp.csr_matrix(bias.reshape(1, -1))], format="csr", dtype=np.float32)
        sp.save_npz(out / f"weight_l{k}.npz", full)
    return out
