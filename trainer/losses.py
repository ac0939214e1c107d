"""Training losses, by recipe.

- cross-entropy: softmax cross-entropy on the logits, mean over the batch (Keras's
  categorical_crossentropy on a softmax output, torch's F.cross_entropy).
- mse-sigmoid-reference: SET's sparse-Python code. The output layer is a sigmoid and the loss
  is reported as mean((sigmoid(z) - y)^2); its backward pass is the code's
  MSE.delta = (a - y) * Sigmoid.prime(a) with a = sigmoid(z), divided by the batch size (the
  weight updates average over the batch). Sigmoid.prime is applied to the activation a, not to
  z, so this is not the gradient of the reported loss; it is what the reference trains with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("cross-entropy", "mse-sigmoid-reference")


class _ReferenceMSE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(logits)
        onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        ctx.save_for_backward(a, onehot)
        return ((a - onehot) ** 2).mean()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        a, onehot = ctx.saved_tensors
        s = torch.sigmoid(a)
        delta = (a - onehot) * s * (1 - s)
        return grad_out * delta / a.shape[0], None


def reference_mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return _ReferenceMSE.apply(logits, labels)


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A mean-over-batch loss of (logits, int64 labels)."""
    if name == "cross-entropy":
        return F.cross_entropy
    if name == "mse-sigmoid-reference":
        return reference_mse
    raise ValueError(f"unknown loss '{name}'")
