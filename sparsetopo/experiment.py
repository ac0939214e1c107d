"""`sparsetopo experiment paper`: the paper's three findings, measured with this project.

1. Performance: dense vs static Erdős–Rényi vs SET, several ε, several seeds.
2. Topological evolution under SET: NNSTD of every snapshot to the initial one, and
   between independent runs of the same setting that reach similar accuracy.
3. Figure 4: one initial topology, 9 more each made by changing 1 % of the previous
   one's connections, all trained with SET; NNSTD among the 10 at several epochs.

Everything goes into the graph store under deterministic run ids, so running the
command again skips every run whose status is `completed` (a run left `running`,
`interrupted` or `failed` is deleted and trained again). The numbers and verdicts are
written by sparsetopo.experiment_results.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Log = Callable[[str], None]


@dataclass(frozen=True)
class Scale:
    name: str
    hidden: tuple[int, ...]
    epochs: int
    seeds: tuple[int, ...]
    epsilons: tuple[float, ...]
    datasets: tuple[str, ...]
    fig4_density: float  # density of the sparse layers of Figure 4's initial topology
    fig4_epochs: int
    fig4_change: float = 0.01  # fraction of connections changed from one initial topology to the next
    fig4_count: int = 10
    threads: int | None = None


SCALES = {
    # Paper-sized: 784-1000-1000-1000-10 and Figure 4's 0.6 % density. Hours on this machine.
    "full": Scale("full", (1000, 1000, 1000), epochs=100, seeds=(1, 2, 3), epsilons=(1, 5, 20),
                  datasets=("mnist", "fashion-mnist"), fig4_density=0.006, fig4_epochs=100),
    # Within 30 minutes on 2 cores: width 300 instead of 1000 and 6 epochs. At width 300 a 0.6 %
    # layer would hold 540 connections, so Figure 4 starts from 2 % density instead.
    "small": Scale("small", (300, 300, 300), epochs=6, seeds=(1, 2, 3), epsilons=(5, 20),
                   datasets=("mnist", "fashion-mnist"), fig4_density=0.02, fig4_epochs=6, threads=1),
    # For tests: the 8x8 digits scikit-learn ships.
    "tiny": Scale("tiny", (32, 32), epochs=2, seeds=(1, 2), epsilons=(4,), datasets=("digits",),
                  fig4_density=0.2, fig4_epochs=2, fig4_count=3, threads=1),
}


@dataclass
class RunSpec:
    run_id: str
    dataset: str
    method: str
    seed: int
    epsilon: float | None
    part: str  # performance | figure4
    fig4_index: int | None = None


@dataclass
class ExperimentState:
    scale: Scale
    out: Path
    specs: list[RunSpec] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)


def scale_tag(scale: Scale) -> str:
    """The scale's name plus a digest of its definition: a changed definition never reuses old runs."""
    import hashlib

    return f"{scale.name}-{hashlib.sha256(repr(scale).encode()).hexdigest()[:6]}"


def run_id_of(scale: Scale, dataset: str, method: str, seed: int, epsilon: float | None = None,
              fig4_index: int | None = None) -> str:
    if fig4_index is not None:
        return f"paper-{scale_tag(scale)}-fig4-{dataset}-t{fig4_index}"
    eps = "" if epsilon is None else f"-e{epsilon:g}"
    return f"paper-{scale_tag(scale)}-{dataset}-{method}{eps}-s{seed}"


def plan(scale: Scale) -> list[RunSpec]:
    """Every run of the study, performance runs first."""
    specs = []
    for ds in scale.datasets:
        for seed in scale.seeds:
            specs.append(RunSpec(run_id_of(scale, ds, "dense", seed), ds, "dense", seed, None, "performance"))
            for method in ("static", "set"):
                for eps in scale.epsilons:
                    specs.append(RunSpec(run_id_of(scale, ds, method, seed, eps), ds, method, seed, eps, "performance"))
    ds = scale.datasets[0]
    for i in range(scale.fig4_count):
        specs.append(RunSpec(run_id_of(scale, ds, "set", 1, None, i), ds, "set", 1, None, "figure4", i))
    return specs


def figure4_masks(sizes: list[int], density: float, count: int, change: float, seed: int):
    """Figure 4's initial topologies: one random, each next one with `change` of its connections moved.

    Masks are torch bool tensors of shape (n_out, n_in), as the trainer uses them; the
    output layer stays dense (None) as in SET.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    masks = []
    for k in range(len(sizes) - 1):
        if k == len(sizes) - 2:
            masks.append(None)
            continue
        n_out, n_in = sizes[k + 1], sizes[k]
        total = n_out * n_in
        count_k = max(1, round(density * total))
        flat = torch.zeros(total, dtype=torch.bool)
        flat[torch.randperm(total, generator=gen)[:count_k]] = True
        masks.append(flat.view(n_out, n_in))
    series = [masks]
    for _ in range(count - 1):
        nxt = []
        for m in series[-1]:
            if m is None:
                nxt.append(None)
                continue
            flat = m.flatten().clone()
            on = flat.nonzero().flatten()
            off = (~flat).nonzero().flatten()
            n = max(1, round(change * on.numel()))
            flat[on[torch.randperm(on.numel(), generator=gen)[:n]]] = False
            flat[off[torch.randperm(off.numel(), generator=gen)[:n]]] = True
            nxt.append(flat.view(m.shape))
        series.append(nxt)
    return series


def _status(store, run_id: str) -> str | None:
    from graphstore.errors import UnknownRunError

    try:
        return store.get_run(run_id).get("status")
    except UnknownRunError:
        return None


def _train_one(store, spec: RunSpec, scale: Scale, data, masks, log: Log) -> None:
    from graphstore.background import recording
    from trainer.loop import TrainConfig, run_info, train

    config = TrainConfig(dataset=spec.dataset, method=spec.method, hidden=scale.hidden, epochs=
                         scale.fig4_epochs if spec.part == "figure4" else scale.epochs,
                         epsilon=spec.epsilon or 20.0, seed=spec.seed, threads=scale.threads)
    info = run_info(config, data, spec.run_id, name=f"paper {scale.name}: {spec.part}")
    info.config.update({"experiment": f"paper-{scale.name}", "part": spec.part})
    if spec.fig4_index is not None:
        info.config.update({"fig4_index": spec.fig4_index, "fig4_density": scale.fig4_density,
                            "fig4_change": scale.fig4_change})
        info.epsilon = None
    with recording(store, info) as sink:
        train(config, data, sink, spec.run_id, masks=masks)


def run_experiment(store, scale: Scale, out: Path, log: Log, progress: Callable[[int, int, str], None] | None = None
                   ) -> ExperimentState:
    """Train (or skip) every run of the plan, then compute the NNSTD the findings need."""
    from trainer.data import load_dataset

    state = ExperimentState(scale, Path(out), plan(scale))
    datasets = {}
    fig4 = None
    for n, spec in enumerate(state.specs):
        if progress:
            progress(n, len(state.specs), spec.run_id)
        status = _status(store, spec.run_id)
        if status == "completed":
            state.skipped.append(spec.run_id)
            continue
        if status is not None:
            log(f"{spec.run_id} was left '{status}': deleting it and training again")
            store.delete_run(spec.run_id)
        if spec.dataset not in datasets:
            datasets[spec.dataset] = load_dataset(spec.dataset, log=log)
        data = datasets[spec.dataset]
        masks = None
        if spec.part == "figure4":
            if fig4 is None:
                sizes = [data.n_features, *scale.hidden, data.n_classes]
                fig4 = figure4_masks(sizes, scale.fig4_density, scale.fig4_count, scale.fig4_change, seed=1234)
            masks = fig4[spec.fig4_index]
        t0 = time.perf_counter()
        _train_one(store, spec, scale, data, masks, log)
        state.trained.append(spec.run_id)
        log(f"trained {spec.run_id} in {time.perf_counter() - t0:.0f} s")
    if progress:
        progress(len(state.specs), len(state.specs), "done")
    return state
