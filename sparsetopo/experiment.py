"""`sparsetopo experiment paper`: the paper's three findings, measured with this project.

1. Performance: dense vs static Erdős–Rényi vs SET, several ε, several seeds.
2. Topological evolution under SET: NNSTD of every snapshot to the initial one, and
   between independent runs of the same setting that reach similar accuracy.
3. Figure 4 as its authors ran it: one Erdős–Rényi topology and 9 more, each changing 1 % of
   the previous one's connections, all ten trained with SET and the same seed; NNSTD among the
   ten per layer at the paper's epochs, beside independent random topologies of the same size.

Every run follows the scale's recipe (default: SET's Keras code, which the paper's published
networks fit). `part` runs one half of the plan (performance or figure4); `jobs` trains runs
side by side in separate processes, or, with the Ray executor, as Ray tasks on a cluster (one per
run, each writing to the shared graph store), which also computes the NNSTD analyses.

Everything goes into the graph store under deterministic run ids, so running the
command again skips every run whose status is `completed` (a run left `running`,
`interrupted` or `failed` is deleted and trained again). The numbers and verdicts are
written by sparsetopo.experiment_results.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Log = Callable[[str], None]


@dataclass(frozen=True)
class Scale:
    name: str
    hidden: tuple[int, ...]  # finding 1 and 2: performance and independent runs
    epochs: int
    seeds: tuple[int, ...]
    epsilons: tuple[float, ...]
    datasets: tuple[str, ...]
    fig4_hidden: tuple[int, ...]  # Figure 4's network (the paper: 784-784-784-784-10)
    fig4_density: float  # density of the sparse layers of Figure 4's initial topology
    fig4_epochs: int
    fig4_dataset: str = "fashion-mnist"  # the published test accuracies (87.1-87.6 %) fit Fashion-MNIST
    fig4_report: tuple[int, ...] = (0, 10, 30, 50, 100, 190)  # the paper's epochs (its epoch e = our step e + 1)
    fig4_change: float = 0.01  # fraction of connections changed from one initial topology to the next
    fig4_count: int = 10
    fig4_seed: int = 0  # every published run is `s0`: the ten differ only by their initial topology
    recipe: str | None = None  # None: each method's default (set, static: keras-randn; dense: keras)
    threads: int | None = 1


SCALES = {
    # The paper's protocols at the paper's size: days on this machine.
    "paper": Scale(
        "paper",
        (1000, 1000, 1000),
        epochs=200,
        seeds=(1, 2, 3),
        epsilons=(1, 5, 20),
        datasets=("mnist", "fashion-mnist"),
        fig4_hidden=(784, 784, 784),
        fig4_density=0.006,
        fig4_epochs=200,
    ),
    # The largest study this 2-core machine runs in a session with --jobs 2: Figure 4 at the
    # paper's size (~90 min); findings 1 and 2 at width 300, 20 epochs, two seeds (~15 min).
    "here": Scale(
        "here",
        (300, 300, 300),
        epochs=20,
        seeds=(1, 2),
        epsilons=(5, 20),
        datasets=("fashion-mnist", "mnist"),
        fig4_hidden=(784, 784, 784),
        fig4_density=0.006,
        fig4_epochs=200,
    ),
    # A quick look (minutes on 2 cores; results.md gives the wall time): width 300, Figure 4 at 2 % density.
    "small": Scale(
        "small",
        (300, 300, 300),
        epochs=6,
        seeds=(1, 2, 3),
        epsilons=(5, 20),
        datasets=("fashion-mnist", "mnist"),
        fig4_hidden=(300, 300, 300),
        fig4_density=0.02,
        fig4_epochs=12,
        fig4_report=(0, 5, 10),
    ),
    # For tests: the 8x8 digits scikit-learn ships.
    "tiny": Scale(
        "tiny",
        (32, 32),
        epochs=2,
        seeds=(1, 2),
        epsilons=(4,),
        datasets=("digits",),
        fig4_hidden=(32, 32),
        fig4_density=0.2,
        fig4_epochs=3,
        fig4_dataset="digits",
        fig4_report=(0, 1),
        fig4_count=3,
    ),
}
PARTS = ("all", "performance", "figure4")


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
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    architectures: dict[str, list[int]] = field(default_factory=dict)  # part -> layer sizes
    recipes: dict[str, str] = field(default_factory=dict)  # "figure4" or a method -> the recipe its runs followed


def _part_tag(scale: Scale, part: str) -> str:
    """A digest of only the fields a part's runs depend on, so changing one part keeps the other's runs."""
    import hashlib

    fields_: tuple[object, ...]
    if part == "figure4":
        fields_ = (
            scale.fig4_hidden,
            scale.fig4_density,
            scale.fig4_epochs,
            scale.fig4_dataset,
            scale.fig4_change,
            scale.fig4_count,
            scale.fig4_seed,
            scale.recipe,
        )
    else:
        fields_ = (scale.hidden, scale.epochs, scale.recipe)
    return hashlib.sha256(repr(fields_).encode()).hexdigest()[:6]


def run_id_of(
    scale: Scale, dataset: str, method: str, seed: int, epsilon: float | None = None, fig4_index: int | None = None
) -> str:
    if fig4_index is not None:
        return f"paper-fig4-{_part_tag(scale, 'figure4')}-{dataset}-t{fig4_index}"
    eps = "" if epsilon is None else f"-e{epsilon:g}"
    return f"paper-perf-{_part_tag(scale, 'performance')}-{dataset}-{method}{eps}-s{seed}"


def plan(scale: Scale, part: str = "all") -> list[RunSpec]:
    """Every run of the study (of one part), performance runs first."""
    specs = []
    if part in ("all", "performance"):
        for ds in scale.datasets:
            for seed in scale.seeds:
                specs.append(RunSpec(run_id_of(scale, ds, "dense", seed), ds, "dense", seed, None, "performance"))
                for method in ("static", "set"):
                    for eps in scale.epsilons:
                        specs.append(
                            RunSpec(run_id_of(scale, ds, method, seed, eps), ds, method, seed, eps, "performance")
                        )
    if part in ("all", "figure4"):
        ds = scale.fig4_dataset
        for i in range(scale.fig4_count):
            specs.append(
                RunSpec(
                    run_id_of(scale, ds, "set", scale.fig4_seed, None, i),
                    ds,
                    "set",
                    scale.fig4_seed,
                    None,
                    "figure4",
                    i,
                )
            )
    return specs


def figure4_masks(sizes: list[int], density: float, count: int, change: float, seed: int):
    """Figure 4's initial topologies: one random, each next one with `change` of its connections moved.

    Masks are torch bool tensors of shape (n_out, n_in), as the trainer uses them; the
    output layer stays dense (None) as in SET.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    masks: list[torch.Tensor | None] = []
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
        nxt: list[torch.Tensor | None] = []
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


def figure4_sizes(scale: Scale, n_features: int, n_classes: int) -> list[int]:
    return [n_features, *scale.fig4_hidden, n_classes]


def _stored(store, run_id: str) -> dict | None:
    from sparsetopo.graphstore.errors import UnknownRunError

    try:
        return store.get_run(run_id)
    except UnknownRunError:
        return None


def config_of(spec: RunSpec, scale: Scale):
    from sparsetopo.trainer.loop import TrainConfig

    fig4 = spec.part == "figure4"
    return TrainConfig(
        dataset=spec.dataset,
        method=spec.method,
        recipe=scale.recipe,
        hidden=scale.fig4_hidden if fig4 else scale.hidden,
        epochs=scale.fig4_epochs if fig4 else scale.epochs,
        epsilon=spec.epsilon or 20.0,
        seed=spec.seed,
        threads=scale.threads,
    )


def stored_rules_differ(run: dict, spec: RunSpec, scale: Scale) -> list[str]:
    """The recipe rules a stored run was trained with that today's definition of its recipe changed."""
    rules = config_of(spec, scale).resolved().rules()
    return [k for k, v in rules.items() if k in run and run[k] != v]


def train_spec(store, spec: RunSpec, scale: Scale, log: Log = lambda _m: None) -> None:
    """Train one run of the plan into the store (also the body of a parallel job)."""
    from sparsetopo.graphstore.background import recording
    from sparsetopo.trainer.data import load_dataset
    from sparsetopo.trainer.loop import run_info, train

    data = load_dataset(spec.dataset, log=log)
    masks = None
    fig4 = spec.part == "figure4"
    if fig4:
        sizes = figure4_sizes(scale, data.n_features, data.n_classes)
        masks = figure4_masks(sizes, scale.fig4_density, scale.fig4_count, scale.fig4_change, seed=1234)[
            spec.fig4_index
        ]
    config = config_of(spec, scale)
    info = run_info(config, data, spec.run_id, name=f"paper {scale.name}: {spec.part}")
    info.config.update({"experiment": f"paper-{scale.name}", "part": spec.part})
    if fig4:
        info.config.update(
            {"fig4_index": spec.fig4_index, "fig4_density": scale.fig4_density, "fig4_change": scale.fig4_change}
        )
        info.epsilon = None
    with recording(store, info) as sink:
        train(config, data, sink, spec.run_id, masks=masks)


def _train_job(spec: RunSpec, scale: Scale, settings=None) -> tuple[str, float, str | None]:
    """A parallel job (a process of the local pool, or a Ray task): its own connection to the store
    the sweep uses (`settings`); returns (run id, seconds, error)."""
    from sparsetopo.graphstore.store import GraphStore

    started = time.perf_counter()
    try:
        with GraphStore.connect(settings) as store:
            train_spec(store, spec, scale)
    except Exception as exc:  # noqa: BLE001 - reported with the run id; the sweep goes on
        return spec.run_id, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    return spec.run_id, time.perf_counter() - started, None


def run_experiment(
    store,
    scale: Scale,
    out: Path,
    log: Log,
    progress: Callable[[int, int, str], None] | None = None,
    part: str = "all",
    jobs: int | None = None,
    executor=None,
) -> ExperimentState:
    """Train (or skip) every run of the plan; `jobs` runs train side by side in separate processes
    (`executor`: analysis.executors.LocalExecutor, by default, or a RayExecutor: one task per run,
    `jobs` at a time, default every CPU of the cluster). A run that fails is reported with its id
    and the sweep goes on."""
    state = ExperimentState(scale, Path(out), plan(scale, part))
    todo = []
    for spec in state.specs:
        run = _stored(store, spec.run_id)
        status = None if run is None else run.get("status")
        changed = [] if run is None else stored_rules_differ(run, spec, scale)
        if status == "completed" and not changed:
            state.skipped.append(spec.run_id)
            continue
        if changed:
            log(f"{spec.run_id} was trained with other rules ({', '.join(changed)}): deleting it and training again")
            store.delete_run(spec.run_id)
        elif status is not None:
            log(f"{spec.run_id} was left '{status}': deleting it and training again")
            store.delete_run(spec.run_id)
        todo.append(spec)
    done = len(state.skipped)
    total = len(state.specs)
    if progress:
        progress(done, total, "")
    if executor is None and (jobs or 1) > 1:
        from sparsetopo.analysis.executors import LocalExecutor

        executor = LocalExecutor()
    if executor is None or (executor.name == "local" and (jobs or 1) <= 1):
        for spec in todo:
            t0 = time.perf_counter()
            train_spec(store, spec, scale, log)
            state.trained.append(spec.run_id)
            done += 1
            log(f"trained {spec.run_id} in {time.perf_counter() - t0:.0f} s")
            if progress:
                progress(done, total, spec.run_id)
    elif todo:
        settings = getattr(store, "settings", None)
        check = getattr(executor, "check_reachable", None)
        if check is not None and settings is not None:
            check(settings.uri)  # before any run starts
        calls = [(spec, scale, settings) for spec in todo]
        # closing: leaving the loop early (Ctrl-C) stops the tasks now
        with contextlib.closing(executor.map_tasks(_train_job, calls, jobs)) as finished:
            for index, value, lost in finished:
                run_id, seconds, error = value if lost is None else (todo[index].run_id, 0.0, lost)
                done += 1
                if error is None:
                    state.trained.append(run_id)
                    log(f"trained {run_id} in {seconds:.0f} s")
                else:
                    state.failed.append(run_id)
                    log(f"run {run_id} failed: {error}")
                if progress:
                    progress(done, total, run_id)
    return state


def run_paper_experiment(
    store,
    scale: str,
    part: str,
    out: Path,
    jobs: int | None,
    workers: int | None,
    log: Log,
    progress,
    executor=None,
) -> dict:
    """`experiment paper`: train what is missing, analyse, write results.md/json and report.html under `out`.

    `progress(description)` is a context manager yielding update(done, total). `executor` (see
    run_experiment) also computes the NNSTD of the analyses."""
    import shlex
    import time

    from sparsetopo.analysis.executors import using

    from .errors import UsageError
    from .experiment_results import analyse, verdicts
    from .experiment_writeup import write_outputs

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        ["sparsetopo", "experiment", "paper", "--scale", scale, "--part", part, "--out", shlex.quote(str(out))]
        + (["--jobs", str(jobs)] if jobs is not None and jobs > 1 else [])
        + (["--executor", executor.name] if executor is not None and executor.name != "local" else [])
    )
    started = time.perf_counter()
    with progress(f"paper ({scale}): runs") as update:
        state = run_experiment(
            store,
            SCALES[scale],
            out,
            log,
            progress=lambda n, total, _name: update(n, total),
            part=part,
            jobs=jobs,
            executor=executor,
        )
    if state.failed:
        raise UsageError(
            f"{len(state.failed)} run(s) failed ({', '.join(state.failed)}); run the command again to train them"
        )
    with using(executor) if executor is not None else contextlib.nullcontext():
        findings = analyse(store, state, log, workers)
    paths = write_outputs(store, state, findings, time.perf_counter() - started, command, log)
    held = verdicts(findings)
    return {
        "results": str(paths["results"]),
        "json": str(paths["json"]),
        "report": str(paths["report"]),
        "verdicts": held,
        "held": held.count("held"),
    }
