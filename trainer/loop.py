"""The training loop: one readable function from data set and settings to a stream of Snapshots.

Snapshots go to `sink(snapshot)` as they happen:
- step 0: the initial topology (metrics of the untrained network on the full train and test sets);
- dense, static and SET: one snapshot per epoch. SET evaluates the trained network first, then
  updates the topology; the snapshot holds the metrics of the trained network, the weights after
  the update and the update's `added`/`removed` counts. No update follows the last epoch, so the
  last snapshot is the final network.
- RigL: one snapshot after every topology update and one at the end of training.
train_loss/train_accuracy of later steps are running means over the batches since the previous
snapshot (training mode); test metrics are computed on the whole test set at every snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sparsetopo.graphstore.model import RunInfo, Snapshot

from . import sparse as topology
from .algorithms import METHODS, LayerChange, make_algorithm, update_topology
from .data import Dataset
from .errors import ConfigError
from .losses import loss_function
from .model import BACKENDS, SparseMLP, Topology, to_snapshot, topology_nnz, topology_shape
from .recipes import Recipe
from .recipes import resolve as resolve_recipe
from .sparse import INITS, initial_topology

Sink = Callable[[Snapshot], None]
Progress = Callable[[dict], None]


@dataclass
class TrainConfig:
    """Everything that defines a run.

    `recipe` names the preset of reference rules (trainer/recipes.py; None: the method's
    default, `keras` for SET). `dropout`, `lr`, `momentum`, `weight_decay` and `sparse_output`
    are rules too: None means the recipe's value. `rules` replaces any other rule by name.
    """

    dataset: str = "mnist"
    method: str = "set"
    hidden: tuple[int, ...] = (1000, 1000, 1000)
    epochs: int = 10
    epsilon: float = 20.0
    zeta: float = 0.3
    recipe: str | None = None
    init: str = "er"  # initial topology of sparse methods: er, erk, uniform
    density: float | None = None  # target density for erk/uniform
    sparse_output: bool | None = None
    dropout: float | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    rules: dict = field(default_factory=dict)
    batch_size: int = 100
    seed: int = 0
    delta_t: int = 100  # RigL: batches between updates
    rigl_end: float = 0.75  # RigL: fraction of training after which the topology is frozen
    eval_batch_size: int = 1000
    # Step 0's training loss and accuracy from the first N training samples (None: all of them).
    # Later steps report the running mean over the batches trained, as Keras's fit does.
    initial_train_samples: int | None = None
    threads: int | None = None  # torch CPU threads; results are bit-identical only for the same count
    backend: str = "auto"  # masked, sparse, or auto (see choose_backend)
    # Layers with more positions are drawn and updated on connection lists (trainer/sparse.py);
    # None: DENSE_LIMIT. It decides topologies, so the Run records the value used.
    dense_limit: int | None = None

    def resolved(self) -> Recipe:
        overrides = dict(self.rules)
        overrides.update(
            sparse_output=self.sparse_output,
            dropout=self.dropout,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        return resolve_recipe(self.method, self.recipe, overrides)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method '{self.method}'; choose one of: {', '.join(METHODS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown initial topology '{self.init}'; choose one of: {', '.join(INITS)}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1; got {self.batch_size}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden layer sizes must be positive integers; got {list(self.hidden)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1; got {self.threads}")
        if self.epsilon <= 0:
            raise ConfigError(f"epsilon must be positive; got {self.epsilon}")
        if self.initial_train_samples is not None and self.initial_train_samples < 1:
            raise ConfigError(f"initial_train_samples must be at least 1; got {self.initial_train_samples}")
        if self.dense_limit is not None and self.dense_limit < 0:
            raise ConfigError(f"dense_limit must not be negative; got {self.dense_limit}")
        if self.backend not in ("auto", *BACKENDS):
            raise ConfigError(f"unknown backend '{self.backend}'; choose one of: auto, {', '.join(BACKENDS)}")
        recipe = self.resolved()
        make_algorithm(self.method, self.zeta, 1, self.delta_t, self.rigl_end, recipe)  # checks zeta, delta_t, rigl_end

    def topology_init(self) -> str:
        return "dense" if self.method == "dense" else self.init

    def flat(self) -> dict:
        """Flat scalar settings for the Run node: the config's own and every resolved rule."""
        out = {}
        for k, v in asdict(self).items():
            if k in ("dataset", "method", "epsilon", "zeta", "seed", "hidden", "rules", "recipe") or v is None:
                continue
            out[k] = v
        recipe = self.resolved()
        out.update(recipe.rules())
        out["recipe"] = recipe.name
        out["init"] = self.topology_init()
        out["dense_limit"] = topology.dense_limit(self.dense_limit)
        return out


SPARSE_BACKEND_DENSITY = 0.05
# What the masked backend holds per position of a sparse layer: weight, gradient and momentum
# (float32), the bool mask and its float copy: 4 + 4 + 4 + 1 + 4 bytes.
MASKED_BYTES_PER_POSITION = 17
MASKED_MEMORY_BUDGET = 4 * 2**30


def choose_backend(backend: str, masks: Sequence[Topology]) -> str:
    """`auto`: the sparse backend when the sparse layers together hold at most 5 % of their
    positions, or when the masked backend's dense copies of them would exceed MASKED_MEMORY_BUDGET
    (4 GiB at 17 bytes a position: about 250 million positions); else masked.

    Measured per MNIST epoch (benchmarks/sparse_train_bench.py, docs/trainer.md): 784-784x3-10 at
    0.6 % and 784-1000x3-10 at epsilon 20 (4 %) are several times faster on the sparse backend.
    """
    if backend != "auto":
        return backend
    sparse = [m for m in masks if m is not None]
    if not sparse:
        return "masked"
    positions = sum(a * b for a, b in (topology_shape(m) for m in sparse))
    density = sum(topology_nnz(m) for m in sparse) / positions
    if density <= SPARSE_BACKEND_DENSITY or positions * MASKED_BYTES_PER_POSITION > MASKED_MEMORY_BUDGET:
        return "sparse"
    return "masked"


def architecture(config: TrainConfig, dataset: Dataset) -> list[int]:
    return [dataset.n_features, *config.hidden, dataset.n_classes]


def run_info(config: TrainConfig, dataset: Dataset, run_id: str, name: str | None = None) -> RunInfo:
    sparse = config.method != "dense"
    return RunInfo(
        run_id=run_id,
        architecture=architecture(config, dataset),
        name=name,
        method=config.method,
        dataset=config.dataset,
        epsilon=config.epsilon if sparse else None,
        zeta=config.zeta if config.method in ("set", "rigl") else None,
        seed=config.seed,
        status="running",
        config={**config.flat(), "dataset_source": dataset.source, "dataset_split": dataset.split},
    )


@dataclass
class TrainResult:
    run_id: str
    steps: list[dict] = field(default_factory=list)  # per snapshot: step, epoch, metrics
    seconds: float = 0.0
    model: SparseMLP | None = None


@torch.no_grad()
def evaluate(
    model: SparseMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int, loss_fn=F.cross_entropy
) -> tuple[float, float]:
    """Mean loss and accuracy over a whole set, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        loss_sum += loss_fn(out, y[i : i + batch_size]).item() * len(out)
        correct += (out.argmax(1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return loss_sum / len(x), correct / len(x)


def _check_masks(masks: list, sizes: list[int]) -> None:
    if len(masks) != len(sizes) - 1:
        raise ConfigError(f"{len(masks)} initial masks given for {len(sizes) - 1} layers")
    for k, m in enumerate(masks):
        if m is not None and topology_shape(m) != (sizes[k + 1], sizes[k]):
            raise ConfigError(
                f"initial mask {k} has shape {topology_shape(m)}; the layer needs {(sizes[k + 1], sizes[k])}"
            )


def make_optimizer(model: SparseMLP, recipe: Recipe) -> torch.optim.SGD:
    """SGD with momentum; weight decay inside the gradient only under the `coupled` rule."""
    coupled = recipe.weight_decay if recipe.weight_decay_mode == "coupled" else 0.0
    weights = model.weight_params()
    biases = [lin.bias for lin in model.layers()]
    groups = [
        {"params": weights, "weight_decay": coupled},
        {"params": biases, "weight_decay": coupled if recipe.decay_biases else 0.0},
    ]
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum)


@torch.no_grad()
def decay_decoupled(model: SparseMLP, recipe: Recipe) -> None:
    """sparse-Python's `w += pdw - weight_decay * w`: the decay term is not scaled by the learning rate."""
    if recipe.weight_decay_mode != "decoupled-per-batch" or recipe.weight_decay == 0:
        return
    for weight, lin in zip(model.weight_params(), model.layers()):
        weight.mul_(1 - recipe.weight_decay)
        if recipe.decay_biases:
            lin.bias.mul_(1 - recipe.weight_decay)


def train(
    config: TrainConfig,
    dataset: Dataset,
    sink: Sink,
    run_id: str,
    progress: Progress | None = None,
    masks: list[Topology] | None = None,
) -> TrainResult:
    """Train one network and hand every snapshot to `sink`; bit-reproducible on CPU for a seed.

    `masks` (per layer a bool (n_out, n_in) mask or a SparseStructure, None = dense) replaces the
    initial topology the config would draw, e.g. for the paper's Figure 4 protocol.
    """
    config.validate()
    recipe = config.resolved()
    progress = progress or (lambda _event: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # dropout draws from the global generator
    init_gen = torch.Generator().manual_seed(config.seed)
    data_gen = torch.Generator().manual_seed(config.seed + 1)
    topo_gen = torch.Generator().manual_seed(config.seed + 2)

    xtr, xte = dataset.inputs(recipe.inputs)
    x_train = torch.from_numpy(np.ascontiguousarray(xtr))
    y_train = torch.from_numpy(np.ascontiguousarray(dataset.y_train))
    x_test = torch.from_numpy(np.ascontiguousarray(xte))
    y_test = torch.from_numpy(np.ascontiguousarray(dataset.y_test))
    if recipe.drop_last_batch:
        n_batches = len(x_train) // config.batch_size
        if n_batches == 0:
            raise ConfigError(f"batch size {config.batch_size} is larger than the {len(x_train)} training samples")
    else:
        n_batches = (len(x_train) + config.batch_size - 1) // config.batch_size
    total_batches = n_batches * config.epochs

    sizes = architecture(config, dataset)
    topologies: Sequence[Topology]
    if masks is None:
        topologies = initial_topology(
            sizes,
            config.topology_init(),
            config.epsilon,
            init_gen,
            config.density,
            recipe.sparse_output,
            recipe.er_sampling,
            config.dense_limit,
        )
    else:
        _check_masks(masks, sizes)
        topologies = masks
    backend = choose_backend(config.backend, topologies)
    model = SparseMLP(
        sizes,
        topologies,
        dropout=recipe.dropout,
        dropout_draw=recipe.dropout_draw,
        generator=init_gen,
        weight_init=recipe.weight_init,
        mask_initial_weights=not recipe.first_batch_dense,
        backend=backend,
        dense_limit=config.dense_limit,
    )
    algorithm = make_algorithm(config.method, config.zeta, total_batches, config.delta_t, config.rigl_end, recipe)
    optimizer = make_optimizer(model, recipe)
    loss_fn = loss_function(recipe.loss)

    result = TrainResult(run_id=run_id, model=model)
    started = time.perf_counter()
    step = 0

    def emit(
        epoch: int,
        train_loss: float,
        train_acc: float,
        changes: list | None = None,
        test: tuple[float, float] | None = None,
    ) -> None:
        test_loss, test_acc = test or evaluate(model, x_test, y_test, config.eval_batch_size, loss_fn)
        metrics = {
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
        }
        snap = to_snapshot(model, run_id, step, epoch, metrics)
        changes = changes or []
        snap.metrics.update(
            density=snap.density,
            n_synapses=snap.n_synapses,
            added=sum(c.added for c in changes),
            removed=sum(c.removed for c in changes),
            regrown_in_place=sum(c.regrown_in_place for c in changes),
        )
        result.steps.append({"step": step, "epoch": epoch, **snap.metrics})
        progress({"kind": "snapshot", "step": step, "epoch": epoch, **snap.metrics})
        sink(snap)

    progress({"kind": "start", "epochs": config.epochs, "batches": n_batches, "architecture": sizes, "model": model})
    n_initial = len(x_train) if config.initial_train_samples is None else config.initial_train_samples
    emit(0, *evaluate(model, x_train[:n_initial], y_train[:n_initial], config.eval_batch_size, loss_fn))

    t = 0  # batches seen so far
    applied = 0  # optimizer steps applied so far
    last_update = None
    density = model.density()
    churn = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        if recipe.momentum_reset_each_epoch:
            optimizer.state.clear()  # the Keras code compiles a new optimizer every epoch
        order = torch.randperm(len(x_train), generator=data_gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(n_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            t += 1
            if algorithm.counts_applied_steps:
                fraction = algorithm.schedule.at_step(applied) if applied != last_update else None
            else:
                fraction = algorithm.schedule.at_step(t)
            wants_gradient = fraction is not None and algorithm.needs_gradient
            if wants_gradient:
                model.capture_for_gradients()
            # Gradients are assigned rather than added into zeros (a fill and an add per parameter);
            # every parameter gets one every step, so SGD sees the same numbers either way.
            optimizer.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            grads = model.dense_gradients() if wants_gradient else None
            if fraction is not None and recipe.rigl_skip_step_at_update:
                # SparseRigLOptimizer: an update iteration changes the masks and applies no gradient.
                last_update = applied
                changes = update_topology(model, optimizer, algorithm, fraction, topo_gen, grads)
            else:
                # Masked gradients keep masked weights exactly zero: SGD's update there is
                # lr * (momentum * 0 + 0 + weight_decay * 0) = 0 (tests check it after every step).
                model.mask_grads()
                decay_decoupled(model, recipe)
                optimizer.step()
                applied += 1
                if recipe.first_batch_dense and applied == 1:
                    model.apply_masks()  # Keras applies the mask constraint after the first update
                if fraction is not None:
                    last_update = applied
                    changes = update_topology(model, optimizer, algorithm, fraction, topo_gen, grads)

            loss_sum += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(yb)
            progress(
                {
                    "kind": "batch",
                    "epoch": epoch,
                    "batch": b + 1,
                    "t": t,
                    "loss": loss_sum / seen,
                    "accuracy": correct / seen,
                    "density": density,
                    "churn": churn,
                }
            )
            if fraction is not None:
                churn = sum(c.added + c.removed for c in changes)
                step += 1
                emit(epoch, loss_sum / seen, correct / seen, changes)
                loss_sum, correct, seen = 0.0, 0, 0

        fraction = algorithm.schedule.at_epoch_end(epoch, config.epochs)
        if algorithm.name == "rigl":
            if epoch == config.epochs and seen:  # the final network, unless an update just captured it
                step += 1
                emit(epoch, loss_sum / seen, correct / seen)
            continue
        train_loss, train_acc = loss_sum / seen, correct / seen
        epoch_changes: list[LayerChange] | None = None
        test = None
        if fraction is not None:
            # Metrics describe the trained network: evaluate before the topology changes.
            test = evaluate(model, x_test, y_test, config.eval_batch_size, loss_fn)
            epoch_changes = update_topology(model, optimizer, algorithm, fraction, topo_gen)
            churn = sum(c.added + c.removed for c in epoch_changes)
        step += 1
        emit(epoch, train_loss, train_acc, epoch_changes, test)

    result.seconds = time.perf_counter() - started
    progress({"kind": "end", "seconds": result.seconds})
    return result
