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
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from graphstore.model import RunInfo, Snapshot

from .algorithms import METHODS, make_algorithm, update_topology
from .data import Dataset
from .errors import ConfigError
from .model import SparseMLP, to_snapshot
from .sparse import INITS, initial_masks

Sink = Callable[[Snapshot], None]
Progress = Callable[[dict], None]


@dataclass
class TrainConfig:
    """Everything that defines a run; SET's defaults."""

    dataset: str = "mnist"
    method: str = "set"
    hidden: tuple[int, ...] = (1000, 1000, 1000)
    epochs: int = 10
    epsilon: float = 20.0
    zeta: float = 0.3
    init: str = "er"  # initial topology of sparse methods: er, erk, uniform
    density: float | None = None  # target density for erk/uniform
    sparse_output: bool = False
    dropout: float = 0.0
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 2e-4
    batch_size: int = 100
    seed: int = 0
    delta_t: int = 100  # RigL: batches between updates
    rigl_end: float = 0.75  # RigL: fraction of training after which the topology is frozen
    eval_batch_size: int = 1000
    threads: int | None = None  # torch CPU threads; results are bit-identical only for the same count

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
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1); got {self.dropout}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be positive; got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1; got {self.threads}")
        if self.epsilon <= 0:
            raise ConfigError(f"epsilon must be positive; got {self.epsilon}")
        make_algorithm(self.method, self.zeta, 1, self.delta_t, self.rigl_end)  # checks zeta, delta_t, rigl_end

    def topology_init(self) -> str:
        return "dense" if self.method == "dense" else self.init

    def flat(self) -> dict:
        """Flat scalar settings for the Run node (lists and None left out)."""
        out = {}
        for k, v in asdict(self).items():
            if k in ("dataset", "method", "epsilon", "zeta", "seed", "hidden") or v is None:
                continue
            out[k] = v
        out["init"] = self.topology_init()
        return out


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
def evaluate(model: SparseMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole set, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size])
        loss_sum += F.cross_entropy(out, y[i:i + batch_size], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return loss_sum / len(x), correct / len(x)


def _check_masks(masks: list, sizes: list[int]) -> None:
    if len(masks) != len(sizes) - 1:
        raise ConfigError(f"{len(masks)} initial masks given for {len(sizes) - 1} layers")
    for k, m in enumerate(masks):
        if m is not None and tuple(m.shape) != (sizes[k + 1], sizes[k]):
            raise ConfigError(f"initial mask {k} has shape {tuple(m.shape)}; the layer needs {(sizes[k + 1], sizes[k])}")


def train(
    config: TrainConfig,
    dataset: Dataset,
    sink: Sink,
    run_id: str,
    progress: Progress | None = None,
    masks: list[torch.Tensor | None] | None = None,
) -> TrainResult:
    """Train one network and hand every snapshot to `sink`; bit-reproducible on CPU for a seed.

    `masks` (bool, shape (n_out, n_in) per layer, None = dense) replaces the initial
    topology the config would draw, e.g. for the paper's Figure 4 protocol.
    """
    config.validate()
    progress = progress or (lambda _event: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # dropout draws from the global generator
    init_gen = torch.Generator().manual_seed(config.seed)
    data_gen = torch.Generator().manual_seed(config.seed + 1)
    topo_gen = torch.Generator().manual_seed(config.seed + 2)

    x_train = torch.from_numpy(np.ascontiguousarray(dataset.x_train))
    y_train = torch.from_numpy(np.ascontiguousarray(dataset.y_train))
    x_test = torch.from_numpy(np.ascontiguousarray(dataset.x_test))
    y_test = torch.from_numpy(np.ascontiguousarray(dataset.y_test))
    n_batches = (len(x_train) + config.batch_size - 1) // config.batch_size
    total_batches = n_batches * config.epochs

    sizes = architecture(config, dataset)
    if masks is None:
        masks = initial_masks(sizes, config.topology_init(), config.epsilon, init_gen, config.density, config.sparse_output)
    else:
        _check_masks(masks, sizes)
    model = SparseMLP(sizes, masks, dropout=config.dropout, generator=init_gen)
    algorithm = make_algorithm(config.method, config.zeta, total_batches, config.delta_t, config.rigl_end)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    result = TrainResult(run_id=run_id, model=model)
    started = time.perf_counter()
    step = 0

    def emit(epoch: int, train_loss: float, train_acc: float, added: int, removed: int,
             test: tuple[float, float] | None = None) -> None:
        test_loss, test_acc = test or evaluate(model, x_test, y_test, config.eval_batch_size)
        metrics = {"train_loss": train_loss, "train_accuracy": train_acc, "test_loss": test_loss, "test_accuracy": test_acc}
        snap = to_snapshot(model, run_id, step, epoch, metrics)
        snap.metrics.update(density=snap.density, n_synapses=snap.n_synapses, added=added, removed=removed)
        result.steps.append({"step": step, "epoch": epoch, **snap.metrics})
        progress({"kind": "snapshot", "step": step, "epoch": epoch, **snap.metrics})
        sink(snap)

    progress({"kind": "start", "epochs": config.epochs, "batches": n_batches, "architecture": sizes, "model": model})
    emit(0, *evaluate(model, x_train, y_train, config.eval_batch_size), 0, 0)

    t = 0  # batches seen so far
    density = model.density()
    churn = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=data_gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(n_batches):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            optimizer.zero_grad(set_to_none=False)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            loss.backward()
            t += 1
            fraction = algorithm.schedule.at_batch(t)
            grads = None
            if fraction is not None and algorithm.needs_gradient:
                grads = [lin.weight.grad.detach().clone() for lin in model.linears]
            # Masked gradients keep masked weights exactly zero: SGD's update there is
            # lr * (momentum * 0 + 0 + weight_decay * 0) = 0 (tests check it after every step).
            model.mask_grads()
            optimizer.step()

            loss_sum += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(yb)
            progress({
                "kind": "batch", "epoch": epoch, "batch": b + 1, "t": t,
                "loss": loss_sum / seen, "accuracy": correct / seen, "density": density, "churn": churn,
            })
            if fraction is not None:
                changes = update_topology(model, optimizer, algorithm, fraction, topo_gen, grads)
                added = sum(c.added for c in changes)
                removed = sum(c.removed for c in changes)
                churn = added + removed
                step += 1
                emit(epoch, loss_sum / seen, correct / seen, added, removed)
                loss_sum, correct, seen = 0.0, 0, 0

        fraction = algorithm.schedule.at_epoch_end(epoch, config.epochs)
        if algorithm.name == "rigl":
            if epoch == config.epochs and seen:  # the final network, unless an update just captured it
                step += 1
                emit(epoch, loss_sum / seen, correct / seen, 0, 0)
            continue
        train_loss, train_acc = loss_sum / seen, correct / seen
        added = removed = 0
        test = None
        if fraction is not None:
            # Metrics describe the trained network: evaluate before the topology changes.
            test = evaluate(model, x_test, y_test, config.eval_batch_size)
            changes = update_topology(model, optimizer, algorithm, fraction, topo_gen)
            added = sum(c.added for c in changes)
            removed = sum(c.removed for c in changes)
            churn = added + removed
        step += 1
        emit(epoch, train_loss, train_acc, added, removed, test)

    result.seconds = time.perf_counter() - started
    progress({"kind": "end", "seconds": result.seconds})
    return result
