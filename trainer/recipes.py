"""Training recipes: every rule of the reference codes that decides a topology, as named values.

A recipe is a preset of rules; each rule is also a setting of its own, so a run can follow a
recipe and change one rule (`TrainConfig(recipe="keras", regrow_init="randn/10")`). The
docs (docs/trainer.md, "Recipes") list each rule with the reference line it follows.

- keras: dcmocanu/sparse-evolutionary-artificial-neural-networks,
  SET-MLP-MPI/models/set_mlp_keras_fashionmnist.py, the `fit` its `__main__` runs (the mask
  approach of SET-MLP-Keras-Weights-Mask/): regrown connections start at exactly 0; Glorot
  initial weights. The default of `--method dense`.
- keras-randn: the Keras code's rules with the sparse-Python code's N(0, 1)/10 initial weights:
  the combination the paper's published Figure-4 networks fit (their weight std is 0.106 after one
  epoch and their accuracy 0.19; under the Keras code's Glorot initialisation the same 0.6 %-dense
  network does not train at all). The default of `--method set` and `static`.
- sparse-python: the same repository's SET-MLP-Sparse-Python-Data-Structures/
  set_mlp_sparse_data_structures.py (truly sparse, scipy): randn/10 weights, MSE on sigmoid
  outputs, weight decay outside the learning rate.
- sparsetopo-v0: the rules sparsetopo used before it followed the references (He-uniform
  initialisation and regrowth, growth only at positions empty before the update).
- rigl: google-research/rigl, rigl/sparse_optimizers.py (SparseRigLOptimizer) and
  rigl/mnist/mnist_train_eval.py: grown connections start at 0, drop scores carry N(0, 1e-5)
  noise, and an update step applies no gradient step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import TypedDict

from .dropout import DROPOUT_DRAWS
from .errors import ConfigError

# Allowed values of each rule; the first entry of no rule is special.
CHOICES: dict[str, tuple[str, ...]] = {
    "weight_init": ("glorot-uniform", "randn/10", "he-uniform-sparse"),
    "regrow_init": ("zero", "randn/10", "he-uniform-sparse"),
    "prune_rule": ("reference-thresholds", "floor-per-sign"),  # SET's
    "rigl_prune_rule": ("rigl-magnitude", "magnitude"),
    "threshold_values": ("all-entries", "connections"),
    "regrow_positions": ("any-not-kept", "empty-before-update"),
    "weight_decay_mode": ("none", "decoupled-per-batch", "coupled"),
    "loss": ("cross-entropy", "mse-sigmoid-reference"),
    "inputs": ("unit-range", "per-feature-standardise", "global-standardise"),
    "er_sampling": ("bernoulli", "with-replacement", "exact"),
    "dropout_draw": DROPOUT_DRAWS,
}
BOOL_RULES = (
    "momentum_reset_each_epoch",
    "update_after_last_epoch",
    "first_batch_dense",
    "sparse_output",
    "drop_last_batch",
    "decay_biases",
    "rigl_skip_step_at_update",
    "rigl_drop_noise",
)
NUMBER_RULES = ("dropout", "lr", "momentum", "weight_decay")


@dataclass(frozen=True)
class Recipe:
    name: str
    weight_init: str  # initial weights of the connections (biases always start at 0)
    regrow_init: str  # weight of a connection grown by a topology update
    prune_rule: str  # how SET picks the connections to remove
    rigl_prune_rule: str  # how RigL does
    threshold_values: str  # reference-thresholds only: which values the thresholds are read from
    regrow_positions: str
    weight_decay_mode: str
    loss: str
    inputs: str  # input preprocessing
    er_sampling: str  # how the initial Erdős–Rényi mask is drawn
    momentum_reset_each_epoch: bool
    update_after_last_epoch: bool
    first_batch_dense: bool  # the first batch sees the dense initial matrix (Keras applies masks after updates)
    sparse_output: bool
    drop_last_batch: bool  # an incomplete last batch is skipped
    decay_biases: bool
    rigl_skip_step_at_update: bool  # RigL: an update iteration applies no optimizer step
    rigl_drop_noise: bool  # RigL: N(0, 1e-5) added to drop scores (random tie-breaking)
    dropout: float
    lr: float
    momentum: float
    weight_decay: float
    # How dropout masks are drawn: the same distribution either way (trainer/dropout.py).
    # No reference fixes a random stream; torch-bernoulli is F.dropout's, counter-hash the fast one.
    dropout_draw: str = "torch-bernoulli"

    def rules(self) -> dict:
        """Every rule as a flat scalar, for the Run node."""
        return {k: v for k, v in asdict(self).items() if k != "name"}

    def validate(self) -> None:
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"unknown {key.replace('_', '-')} '{value}'; choose one of: {', '.join(allowed)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive; got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1); got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight decay must not be negative; got {self.weight_decay}")


class _SetCommon(TypedDict):
    """The rules both SET recipes share (typed, so `**` unpacking into Recipe is checked)."""

    regrow_positions: str
    prune_rule: str
    rigl_prune_rule: str
    rigl_skip_step_at_update: bool
    rigl_drop_noise: bool
    lr: float
    momentum: float


_SET_COMMON = _SetCommon(
    regrow_positions="any-not-kept",
    prune_rule="reference-thresholds",
    rigl_prune_rule="rigl-magnitude",
    rigl_skip_step_at_update=False,
    rigl_drop_noise=False,
    lr=0.01,
    momentum=0.9,
)

RECIPES: dict[str, Recipe] = {
    "keras": Recipe(
        "keras",
        weight_init="glorot-uniform",
        regrow_init="zero",
        threshold_values="all-entries",
        weight_decay_mode="none",
        weight_decay=0.0,
        loss="cross-entropy",
        inputs="unit-range",
        er_sampling="bernoulli",
        momentum_reset_each_epoch=True,
        update_after_last_epoch=True,
        first_batch_dense=True,
        sparse_output=False,
        drop_last_batch=True,
        decay_biases=False,
        dropout=0.3,
        **_SET_COMMON,
    ),
    "sparse-python": Recipe(
        "sparse-python",
        weight_init="randn/10",
        regrow_init="randn/10",
        threshold_values="connections",
        weight_decay_mode="decoupled-per-batch",
        weight_decay=2e-4,
        loss="mse-sigmoid-reference",
        inputs="per-feature-standardise",
        er_sampling="with-replacement",
        momentum_reset_each_epoch=False,
        update_after_last_epoch=False,
        first_batch_dense=False,
        sparse_output=True,
        drop_last_batch=True,
        decay_biases=True,
        dropout=0.0,
        **_SET_COMMON,
    ),
    "sparsetopo-v0": Recipe(
        "sparsetopo-v0",
        weight_init="he-uniform-sparse",
        regrow_init="he-uniform-sparse",
        prune_rule="floor-per-sign",
        rigl_prune_rule="magnitude",
        threshold_values="connections",
        regrow_positions="empty-before-update",
        weight_decay_mode="coupled",
        weight_decay=2e-4,
        loss="cross-entropy",
        inputs="global-standardise",
        er_sampling="exact",
        momentum_reset_each_epoch=False,
        update_after_last_epoch=False,
        first_batch_dense=False,
        sparse_output=False,
        drop_last_batch=False,
        decay_biases=True,
        rigl_skip_step_at_update=False,
        rigl_drop_noise=False,
        dropout=0.0,
        lr=0.01,
        momentum=0.9,
    ),
    # RigL's MNIST script trains with lr 0.2, Nesterov momentum and l2 1e-4 in the loss; those are
    # training settings, not topology rules, so this recipe keeps SGD at SET's defaults and the
    # topology rules of SparseRigLOptimizer (see docs/trainer.md).
    "rigl": Recipe(
        "rigl",
        weight_init="glorot-uniform",
        regrow_init="zero",
        prune_rule="reference-thresholds",
        rigl_prune_rule="rigl-magnitude",
        threshold_values="connections",
        regrow_positions="any-not-kept",
        weight_decay_mode="coupled",
        weight_decay=1e-4,
        loss="cross-entropy",
        inputs="unit-range",
        er_sampling="exact",
        momentum_reset_each_epoch=False,
        update_after_last_epoch=False,
        first_batch_dense=False,
        sparse_output=False,
        drop_last_batch=False,
        decay_biases=False,
        rigl_skip_step_at_update=True,
        rigl_drop_noise=True,
        dropout=0.0,
        lr=0.01,
        momentum=0.9,
    ),
}
RECIPES["keras-randn"] = replace(RECIPES["keras"], name="keras-randn", weight_init="randn/10")
# The recipe each method follows unless told otherwise.
DEFAULT_RECIPE = {"set": "keras-randn", "rigl": "rigl", "static": "keras-randn", "dense": "keras"}
RULES = tuple(f.name for f in fields(Recipe) if f.name != "name")


def resolve(method: str, recipe: str | None, overrides: dict) -> Recipe:
    """The recipe for a method with individual rules replaced; None values in overrides mean 'recipe's'."""
    name = recipe or DEFAULT_RECIPE.get(method, "keras")
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(RULES)
    if unknown:
        raise ConfigError(f"unknown rule '{sorted(unknown)[0]}'; rules are: {', '.join(RULES)}")
    out = replace(RECIPES[name], **changes)
    out.validate()
    return out


def parse_rule(text: str) -> tuple[str, object]:
    """`name=value` from the command line, typed by the rule it names."""
    if "=" not in text:
        raise ConfigError(f"a rule is written NAME=VALUE, such as regrow_init=zero; got '{text}'")
    key, value = (part.strip() for part in text.split("=", 1))
    key = key.replace("-", "_")
    if key in BOOL_RULES:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"rule {key} is true or false; got '{value}'")
        return key, value.lower() in ("true", "1", "yes")
    if key in NUMBER_RULES:
        try:
            return key, float(value)
        except ValueError:
            raise ConfigError(f"rule {key} is a number; got '{value}'") from None
    if key in CHOICES:
        return key, value
    raise ConfigError(f"unknown rule '{key}'; rules are: {', '.join(RULES)}")
