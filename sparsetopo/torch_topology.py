"""The topology of a PyTorch model (or of its saved state) as the graph store's layer matrices.

A layer's connections are what its mask says, found in this order: the `masks` the caller
gives ({module or parameter name: bool tensor}), torch.nn.utils.prune's `weight_mask` buffer,
a torch.ao.pruning parametrization's `mask`, otherwise the nonzero pattern of the weight. A
masked-in entry whose weight is exactly 0 (RigL grows connections at 0) is a connection and is
stored as an explicit zero.

Matrix form (rows = inputs, as everywhere in sparsetopo): an nn.Linear of weight (out, in) is
the (in, out) matrix Wᵀ. A convolution of weight (out, in, *kernel) is the (in * taps, out)
matrix whose row `c * taps + t` is input channel c at kernel position t (taps = the kernel's
size, positions in row-major order); its neurons are channels. A Linear after a convolution
(through a flatten, possibly a pooling) has taps = in_features / the convolution's channels:
row `c * taps + t` is channel c at spatial position t, the order torch.flatten gives.

Producers (sparsetopo.topology): from a live model, the traced dataflow says which layer's
outputs each layer reads (sparsetopo.torch_dataflow), and layers are in the order the forward
pass calls them; a model fx cannot trace, and a state_dict, are chained by shapes in module
order. Either way a layer whose inputs are not one layer's outputs (a residual sum, a
concatenation) is stored without a producer, never refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import UsageError


class TorchTopologyError(UsageError):
    """A model, checkpoint or mask that cannot be read as a chain of sparse layers."""


@dataclass
class TorchLayer:
    """One weight layer: its module name, its effective weight and which entries are connections."""

    name: str
    weight: np.ndarray  # as the module holds it: (out, in) or (out, in, *kernel)
    mask: np.ndarray  # bool, same shape
    bias: np.ndarray | None
    source: str  # where the mask came from: masks, prune, parametrization, nonzero
    taps: int = 1  # rows per input neuron: the kernel's size, or a flattened channel's positions
    producer: int | None = None  # index of the layer whose outputs are this layer's inputs
    tap_shape: list[int] | None = None  # the kernel's shape, where taps are kernel positions

    @property
    def convolutional(self) -> bool:
        return self.weight.ndim > 2

    @property
    def n_outputs(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.weight.shape[1:]))

    def matrix(self) -> sp.csr_matrix:
        mask = self.mask.reshape(self.n_outputs, -1).T
        weight = self.weight.reshape(self.n_outputs, -1).T
        rows, cols = np.nonzero(mask)
        values = weight[rows, cols].astype(np.float32)
        return sp.csr_matrix((values, (rows, cols)), shape=mask.shape, dtype=np.float32)


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().to("cpu").numpy()


def _given_mask(masks: dict | None, name: str):
    if not masks:
        return None
    for key in (name, f"{name}.weight"):
        if key in masks:
            return masks[key]
    return None


def _parametrization_masks(module) -> list:
    """The `mask` of each parametrization of module.weight (torch.ao.pruning's FakeSparsity has one)."""
    chain: Any = module.parametrizations.weight
    return [p.mask for p in chain if hasattr(p, "mask")]


TRACE = "trace"


def model_layers(model, masks: dict | None = None, dataflow: Any = TRACE) -> list[TorchLayer]:
    """Every weight layer of `model` with its connections and producer. `dataflow`: a
    torch_dataflow.Dataflow (traced once by the caller), TRACE to trace the model now, or None to
    chain by shapes in module order (what a model fx cannot trace gets)."""
    import torch
    from torch import nn
    from torch.nn.utils import parametrize

    layers = []
    convolutional = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, *convolutional)):
            continue
        with torch.no_grad():
            weight = _numpy(module.weight)
            given = _given_mask(masks, name)
            if given is not None:
                mask, source = _numpy(torch.as_tensor(given)).astype(bool), "masks"
            elif hasattr(module, "weight_mask"):
                prune_mask: Any = module.weight_mask
                mask, source = _numpy(prune_mask).astype(bool), "prune"
                if hasattr(module, "weight_orig"):  # module.weight is refreshed only by the next forward
                    weight = _numpy(module.weight_orig * prune_mask)
            elif parametrize.is_parametrized(module, "weight") and _parametrization_masks(module):
                mask = np.ones(weight.shape, dtype=bool)
                for part in _parametrization_masks(module):
                    mask &= _numpy(part).astype(bool)
                source = "parametrization"
            else:
                mask, source = weight != 0, "nonzero"
            bias = None if module.bias is None else _numpy(module.bias).copy()
        if mask.shape != weight.shape:
            raise TorchTopologyError(
                f"the mask of '{name}' has shape {tuple(mask.shape)}, its weight {tuple(weight.shape)}"
            )
        groups = int(getattr(module, "groups", 1))
        if groups > 1:  # every input channel gets its rows; positions across groups are no connections
            weight, mask = _ungrouped(weight, groups), _ungrouped(mask, groups)
        layers.append(TorchLayer(name, weight.copy(), mask, bias, source))
    if masks:
        known = {layer.name for layer in layers} | {f"{layer.name}.weight" for layer in layers}
        unknown = sorted(set(masks) - known)
        if unknown:
            raise TorchTopologyError(f"masks name no nn.Linear or convolution of the model: {', '.join(unknown)}")
    if not layers:
        raise TorchTopologyError("the model has no nn.Linear or convolution to record")
    if isinstance(dataflow, str):
        from .torch_dataflow import trace_dataflow

        dataflow = trace_dataflow(model, [layer.name for layer in layers])
    if dataflow is None:
        _chain(layers)
    else:
        layers = _traced(layers, dataflow)
    return layers


def _ungrouped(values: np.ndarray, groups: int) -> np.ndarray:
    """A grouped convolution's (out, in / groups, *kernel) array as the (out, in, *kernel) array of the
    dense convolution it is a part of: output channel o of group g = o // (out / groups) sees input
    channels g * (in / groups) ... (g + 1) * (in / groups) - 1; zero (False) everywhere else."""
    out, per_group = values.shape[:2]
    per_out = out // groups
    full = np.zeros((out, per_group * groups, *values.shape[2:]), dtype=values.dtype)
    for g in range(groups):
        rows = slice(g * per_out, (g + 1) * per_out)
        full[rows, g * per_group : (g + 1) * per_group] = values[rows]
    return full


def _set_kernel(layer: TorchLayer) -> None:
    layer.taps = int(np.prod(layer.weight.shape[2:]))
    layer.tap_shape = [int(d) for d in layer.weight.shape[2:]] if layer.taps > 1 else None


def _reading_taps(layer: TorchLayer, source: TorchLayer) -> int | None:
    """The layer's taps when it reads `source`'s outputs, or None when the shapes do not fit: a
    convolution reads as many channels as the source has outputs; a Linear after a convolution
    sees each channel at n_rows / channels spatial positions, after a Linear its outputs."""
    if layer.convolutional:
        return layer.taps if layer.weight.shape[1] == source.n_outputs else None
    if source.convolutional:
        return layer.n_rows // source.n_outputs if layer.n_rows % source.n_outputs == 0 else None
    return 1 if layer.n_rows == source.n_outputs else None


def _own_taps(layer: TorchLayer) -> None:
    """Taps before any producer is known: the kernel's for a convolution, 1 for a Linear."""
    if layer.convolutional:
        _set_kernel(layer)
    else:
        layer.taps, layer.tap_shape = 1, None


def _chain(layers: list[TorchLayer]) -> None:
    """Taps and producers by shapes in module order: a layer reads the previous layer's outputs
    where the shapes fit (_reading_taps); any other has no producer."""
    if not layers:
        raise TorchTopologyError("the model has no nn.Linear or convolution to record")
    for k, layer in enumerate(layers):
        _own_taps(layer)
        taps = _reading_taps(layer, layers[k - 1]) if k else None
        layer.producer = None if taps is None else k - 1
        layer.taps = layer.taps if taps is None else taps


def _misfit(name: str, layer: TorchLayer, producer: str, source: TorchLayer) -> str:
    if layer.convolutional:
        return f"'{name}' reads {layer.weight.shape[1]} channels, but '{producer}' has {source.n_outputs} outputs"
    if source.convolutional:
        return (
            f"'{name}' has {layer.n_rows} inputs, not a whole number of positions for each of "
            f"'{producer}''s {source.n_outputs} output channels"
        )
    return f"'{name}' has {layer.n_rows} inputs, but '{producer}' has {source.n_outputs} outputs"


def give_producers(layers: list[TorchLayer], given: Mapping[str, str | None]) -> None:
    """Set the producers a user names (module name -> module name, or None for no producer) over
    the ones shape chaining found: a checkpoint has no dataflow, and module order cannot see a sum
    or a shortcut. Taps follow the producer (_reading_taps). Everything is checked before any
    layer changes."""
    index = {layer.name: k for k, layer in enumerate(layers)}
    names = ", ".join(index)
    wiring: dict[int, tuple[int | None, int, list[int] | None]] = {}  # layer -> producer, taps, tap_shape
    for name, producer in given.items():
        for module in (name, producer):
            if module is not None and module not in index:
                raise TorchTopologyError(f"the checkpoint has no weight layer '{module}'; its layers are {names}")
        if producer == name:
            raise TorchTopologyError(f"layer '{name}' cannot be its own producer")
        layer = layers[index[name]]
        if layer.convolutional:
            taps, tap_shape = layer.taps, layer.tap_shape
        else:
            taps, tap_shape = 1, None
        if producer is not None:
            source = layers[index[producer]]
            reading = _reading_taps(layer, source)
            if reading is None:
                raise TorchTopologyError(_misfit(name, layer, producer, source))
            taps = reading
        wiring[index[name]] = (None if producer is None else index[producer], taps, tap_shape)
    producers = [wiring[k][0] if k in wiring else layer.producer for k, layer in enumerate(layers)]
    for start in range(len(layers)):
        seen: list[int] = []
        k: int | None = start
        while k is not None and k not in seen:
            seen.append(k)
            k = producers[k]
        if k is not None:
            cycle = " -> ".join(layers[j].name for j in [*seen[seen.index(k) :], k])
            raise TorchTopologyError(f"the producers form a cycle: {cycle}")
    for j, (source_index, taps, tap_shape) in wiring.items():
        layers[j].producer, layers[j].taps, layers[j].tap_shape = source_index, taps, tap_shape


def _traced(layers: list[TorchLayer], dataflow) -> list[TorchLayer]:
    """Layers in call order with the producers the traced dataflow gives, where shapes agree."""
    by_name = {layer.name: layer for layer in layers}
    ordered = [by_name[name] for name in dataflow.order]
    index = {layer.name: k for k, layer in enumerate(ordered)}
    for layer in ordered:
        seen = dataflow.inputs[layer.name]
        j = index.get(seen.producer) if seen.producer is not None else None
        producer = ordered[j] if j is not None else None
        layer.taps, layer.tap_shape = 1, None
        if layer.convolutional:
            _set_kernel(layer)
            fits = producer is not None and not seen.flattened and layer.weight.shape[1] == producer.n_outputs
        else:
            channels = seen.channels
            if channels is None and seen.flattened and producer is not None:
                channels = producer.n_outputs
            if seen.flattened and channels and layer.n_rows % channels == 0:
                layer.taps = layer.n_rows // channels  # each flattened channel at its spatial positions
            fits = producer is not None and producer.n_outputs * layer.taps == layer.n_rows
        layer.producer = j if fits else None
    return ordered


# -- saved states ---------------------------------------------------------------------------------


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def checkpoint_files(path: Path) -> list[Path]:
    """One file, or the files of a directory in natural order (ckpt_2 before ckpt_10)."""
    path = Path(path)
    if not path.exists():
        raise TorchTopologyError(f"{path} does not exist")
    if path.is_file():
        return [path]
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural_key)
    if not files:
        raise TorchTopologyError(f"the directory {path} holds no checkpoint files")
    return files


def load_state(path: Path) -> tuple[dict, dict | None]:
    """(state_dict, masks) from a state_dict file or a checkpoint dict holding one."""
    import pickle

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # an object, not garbage
            raise TorchTopologyError(f"{path} is not a file torch.load can read (UnpicklingError)") from None
        raise TorchTopologyError(
            f"{path} needs more than tensors and plain containers to load (weights_only=True refuses it); "
            "save the model's state_dict() instead of the model object"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise TorchTopologyError(f"{path} is not a file torch.load can read ({type(exc).__name__})") from None
    if not isinstance(loaded, dict):
        raise TorchTopologyError(f"{path} holds a {type(loaded).__name__}, not a state_dict or a checkpoint dict")
    masks = loaded.get("masks") if isinstance(loaded.get("masks"), dict) else None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded.get(key), dict):
            return loaded[key], masks
    if any(hasattr(v, "shape") for v in loaded.values()):
        return loaded, masks
    raise TorchTopologyError(f"{path} holds no state_dict (looked for a tensor dict, 'state_dict' and 'model')")


def state_layers(state: dict, masks: dict | None = None) -> list[TorchLayer]:
    """The 2-D weight layers of a state_dict, in its order, with prune masks or `masks` applied."""
    import torch

    layers = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for suffix in (".weight", ".weight_orig", ".parametrizations.weight.original"):
            if key.endswith(suffix):
                name = key[: -len(suffix)]
                break
        else:
            continue
        if value.dim() not in (2, 3, 4, 5):
            continue
        weight = _numpy(value).astype(np.float32)
        given = _given_mask(masks, name)
        stored_mask = state.get(f"{name}.weight_mask")
        if given is not None:
            mask, source = _numpy(torch.as_tensor(given)).astype(bool), "masks"
        elif stored_mask is not None:
            mask, source = _numpy(stored_mask).astype(bool), "prune"
        else:
            mask, source = weight != 0, "nonzero"
        if source != "nonzero":
            weight = weight * mask  # weight_orig times its mask is the weight the model computes with
        bias = state.get(f"{name}.bias")
        layers.append(TorchLayer(name, weight, mask, None if bias is None else _numpy(bias).astype(np.float32), source))
    _chain(layers)  # no model, so no dataflow: shapes in module order
    return layers


def snapshot_of(layers: list[TorchLayer], run_id: str, step: int, metrics: dict[str, Any] | None = None, epoch=None):
    from .graphstore.model import Snapshot

    return Snapshot(
        run_id,
        step,
        [layer.matrix() for layer in layers],
        biases=[layer.bias for layer in layers],
        metrics=dict(metrics or {}),
        epoch=epoch,
        taps=[layer.taps for layer in layers],
        producers=[layer.producer for layer in layers],
        tap_shapes=[layer.tap_shape for layer in layers],
    )
