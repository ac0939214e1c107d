"""Which layer's outputs each weight layer of a PyTorch model reads, from its traced dataflow.

torch.fx's symbolic trace gives the model's forward pass as a graph of operations. From a weight
layer's input we walk back through operations that keep each neuron (channel) what it is:
activations, batch norm, pooling, dropout, identity, a scaling by a constant, and (before a
Linear) flatten / view / reshape. The weight layer reached is the producer. Anything else on the
way (an add of two branches, a concatenation, a product of two tensors, an indexing) means the
layer's inputs are not one layer's outputs: no producer.

A model fx cannot trace (data-dependent control flow, ...) gets None, and the caller falls back to
chaining layers by their shapes in module order.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any


@dataclass
class LayerInput:
    producer: str | None  # module name of the weight layer whose outputs are the inputs
    flattened: bool  # a flatten, view or reshape lies on the way (a Linear after a convolution)
    channels: int | None  # channels of the tensor that was flattened, where the graph tells


@dataclass
class Dataflow:
    order: list[str]  # weight layers in the order the forward pass calls them
    inputs: dict[str, LayerInput]


def _passthrough_modules():
    from torch import nn

    return (
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
        nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.PReLU, nn.Identity,
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
        nn.InstanceNorm3d, nn.LayerNorm, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
        nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
        nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    )  # fmt: skip


def _passthrough_functions() -> set:
    import torch
    import torch.nn.functional as F

    names = (
        "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh",
        "hardtanh", "hardswish", "hardsigmoid", "softplus", "prelu", "dropout", "dropout1d", "dropout2d",
        "dropout3d", "alpha_dropout", "batch_norm", "group_norm", "instance_norm", "layer_norm",
        "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
        "adaptive_max_pool2d", "adaptive_max_pool3d",
    )  # fmt: skip
    found = {getattr(F, n) for n in names if hasattr(F, n)}
    found |= {getattr(torch, n) for n in ("relu", "sigmoid", "tanh", "selu", "celu") if hasattr(torch, n)}
    return found


_PASSTHROUGH_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone", "float"}
_FLATTEN_METHODS = {"view", "reshape", "flatten"}
_ARITHMETIC = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub, operator.truediv}


class _Walker:
    def __init__(self, modules: dict, weight_names: set[str]):
        import torch

        self.torch = torch
        self.modules = modules
        self.weights = weight_names
        self.module_types = _passthrough_modules()
        self.functions = _passthrough_functions()
        self.arithmetic = _ARITHMETIC | {torch.add, torch.mul, torch.sub, torch.div}

    def _start_dim(self, node, default: int) -> int:
        value = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", default)
        return value if isinstance(value, int) else -1

    def step(self, node) -> tuple[Any, bool] | None:
        """(input node, whether it flattens) when `node` keeps its input's neurons, else None."""
        from torch import nn

        if node.op == "call_module":
            module = self.modules.get(node.target)
            if isinstance(module, self.module_types):
                return node.args[0], False
            if isinstance(module, nn.Flatten) and module.start_dim == 1:
                return node.args[0], True
            return None
        if node.op == "call_function":
            if node.target in self.functions:
                return node.args[0], False
            if node.target is self.torch.flatten and self._start_dim(node, 0) == 1:
                return node.args[0], True
            if node.target in self.arithmetic:
                tensors = [a for a in node.args if hasattr(a, "op")]
                # a scaling or shift by a constant keeps the neurons; two tensors are a merge
                return (tensors[0], False) if len(tensors) == 1 else None
            return None
        if node.op == "call_method":
            if node.target in _PASSTHROUGH_METHODS:
                return node.args[0], False
            if node.target == "flatten":
                return (node.args[0], True) if self._start_dim(node, 0) == 1 else None
            if node.target in _FLATTEN_METHODS:
                return node.args[0], True
        return None

    def channels(self, node, depth: int = 0) -> int | None:
        """Channels (features) of a node's output, where the graph tells."""
        from torch import nn

        if not hasattr(node, "op") or depth > 200:
            return None
        if node.op == "call_module":
            module = self.modules.get(node.target)
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                return int(module.out_channels)
            if isinstance(module, nn.Linear):
                return int(module.out_features)
        passed = self.step(node)
        if passed is not None:
            return None if passed[1] else self.channels(passed[0], depth + 1)
        if node.op == "call_function" and node.target in self.arithmetic:
            known = {c for a in node.args if (c := self.channels(a, depth + 1)) is not None}
            return known.pop() if len(known) == 1 else None
        if node.op == "call_function" and node.target is self.torch.cat:
            parts = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            counts = [self.channels(p, depth + 1) for p in parts] if isinstance(parts, (list, tuple)) else [None]
            return sum(c for c in counts if c is not None) if dim == 1 and None not in counts else None
        return None

    def walk(self, start) -> LayerInput:
        node, flattened, flat_input = start, False, None
        while hasattr(node, "op"):
            if node.op == "call_module" and node.target in self.weights:
                channels = self.channels(flat_input) if flat_input is not None else None
                return LayerInput(str(node.target), flattened, channels)
            passed = self.step(node)
            if passed is None:
                break
            if passed[1] and not flattened:
                flattened, flat_input = True, passed[0]
            node = passed[0]
        return LayerInput(None, flattened, self.channels(flat_input) if flat_input is not None else None)


def trace_dataflow(model, weight_names: list[str]) -> Dataflow | None:
    """The traced producers of the weight layers `weight_names` (module names), or None when fx
    cannot trace the model or a weight layer is called more than once (shared weights)."""
    try:
        from torch import fx

        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - fx raises many kinds; any of them means: use module order
        return None
    names = set(weight_names)
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target in names]
    called = [str(n.target) for n in calls]
    if len(set(called)) != len(called):
        return None
    walker = _Walker(dict(model.named_modules()), names)
    inputs = {str(n.target): walker.walk(n.args[0]) if n.args else LayerInput(None, False, None) for n in calls}
    # layers the forward pass never calls keep their module order, after the called ones, unchained
    order = called + [name for name in weight_names if name not in inputs]
    for name in order[len(called) :]:
        inputs[name] = LayerInput(None, False, None)
    return Dataflow(order, inputs)
