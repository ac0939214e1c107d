"""The Python API: `sparsetopo.connect()` returns a Workspace whose methods are the CLI's commands.

Each method takes keyword arguments named like its command's options and returns exactly what
the command prints with `--json` (a list of dicts for tabular results, a dict otherwise), so the
CLI is a thin layer over it (sparsetopo/commands/). COMMANDS maps every command to its method.

The graph store is opened on first use: `ws.nnstd` on two npz directories, or `ws.train(...,
no_store=True)`, never starts a server.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .choices import (
    Backend,
    Dataset,
    Executor,
    FetchableDataset,
    Init,
    Method,
    Part,
    Recipe,
    Reference,
    Scale,
    Solver,
    choice,
    optional_choice,
)
from .errors import UsageError

# CLI command -> Workspace method (tests/test_api.py checks both sides exist).
COMMANDS = {
    "runs list": "runs",
    "runs show": "show_run",
    "runs delete": "delete_run",
    "runs check": "check_run",
    "import npz": "import_npz",
    "import torch": "import_torch",
    "export npz": "export_npz",
    "cypher": "cypher",
    "query": "query",
    "train": "train",
    "data list": "datasets",
    "data fetch": "fetch_dataset",
    "stats": "stats",
    "evolution": "evolution",
    "plot": "plot",
    "report": "report",
    "nnstd pair": "nnstd",
    "nnstd matrix": "nnstd_matrix",
    "nnstd evolution": "nnstd_evolution",
    "experiment paper": "experiment",
    "db status": "db_status",
    "bi url": "bi_url",
}


def connect(settings=None, *, console: bool = False, log: Callable[[str], None] | None = None) -> Workspace:
    """A workspace on the graph store named by `settings`, else NEO4J_URI, else the project's own
    server (started on demand, when first needed). Use it as a context manager.

    `console=True` is how the CLI runs: progress bars and notes on stderr."""
    return Workspace(settings, console=console, log=log)


class Workspace:
    def __init__(self, settings=None, *, console: bool = False, log: Callable[[str], None] | None = None):
        self._settings = settings
        self._store = None
        self.console = console
        if log is None and console:
            import typer

            def log(message: str) -> None:
                typer.echo(message, err=True)

        self.log = log or (lambda _message: None)

    # -- lifetime -------------------------------------------------------------------------------
    @property
    def store(self):
        """The GraphStore (connected on first use)."""
        if self._store is None:
            from .graphstore.store import GraphStore

            self._store = GraphStore.connect(self._settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _progress(self, description: str) -> Iterator[Callable[[int, int], None]]:
        if not self.console:
            yield lambda _done, _total: None
            return
        from .progress import progress_bar

        with progress_bar(description) as update:
            yield update

    # -- runs -----------------------------------------------------------------------------------
    def runs(self) -> list[dict]:
        """Every run in the store (`runs list`)."""
        return self.store.list_runs()

    def show_run(self, run: str) -> dict:
        """A run's configuration and its snapshots: {"run": {...}, "snapshots": [...]} (`runs show`)."""
        return {"run": self.store.get_run(run), "snapshots": self.store.list_snapshots(run)}

    def delete_run(self, run: str) -> dict:
        """Delete one run completely: {"run": id, "deleted": {what: count}} (`runs delete`)."""
        self.store.get_run(run)
        return {"run": run, "deleted": self.store.delete_run(run)}

    def check_run(self, run: str, repair: bool = False) -> dict:
        """Verify a run against its per-step matrices (and repair what can be recomputed) (`runs check`)."""
        from .graphstore.check import check_run

        return check_run(self.store, run, repair=repair)

    # -- files ----------------------------------------------------------------------------------
    def import_npz(
        self,
        path: str | Path,
        run_id: str | None = None,
        name: str | None = None,
        method: Method | str | None = None,
        dataset: Dataset | str | None = None,
    ) -> dict:
        """Import the paper's .npz topologies (a snapshot directory or a run directory of epoch_XXX/
        ones) as the run `run_id` (default: the directory's name); idempotent (`import npz`)."""
        from .pipelines import import_npz_run

        return self._import(import_npz_run, Path(path), run_id, name, method, dataset)

    def import_torch(
        self,
        path: str | Path,
        run_id: str | None = None,
        name: str | None = None,
        method: Method | str | None = None,
        dataset: Dataset | str | None = None,
        producers: Mapping[str, str | None] | None = None,
    ) -> dict:
        """Import PyTorch checkpoints: a state_dict file (or a checkpoint dict holding one under
        `state_dict`/`model`, with prune masks or a `masks` entry), or a directory of them, whose
        files in natural order become the steps; idempotent (`import torch`).

        Layers are chained by shapes in module order; `producers` overrides that per layer, by
        module name: {"shortcut": "stem", "head": None} (None: the layer reads no single layer)."""
        from .torch_import import import_torch_run

        importer = functools.partial(import_torch_run, producers=dict(producers or {}))
        return self._import(importer, Path(path), run_id, name, method, dataset)

    def _import(self, importer, path: Path, run_id, name, method, dataset) -> dict:
        from .graphstore.errors import RunConflictError

        if run_id is None:
            run_id = path.resolve().stem if path.is_file() else path.resolve().name
        made_by = optional_choice(Method, method, "method")
        trained_on = optional_choice(Dataset, dataset, "data set")
        with self._progress(f"importing {run_id}") as update:
            try:
                summary = importer(
                    self.store,
                    path,
                    run_id,
                    name=name,
                    method=made_by.value if made_by is not None else None,
                    dataset=trained_on.value if trained_on is not None else None,
                    progress=update,
                )
            except KeyboardInterrupt:
                self._mark_ended(run_id, "interrupted")
                raise
            except Exception as exc:
                if not isinstance(exc, RunConflictError):  # a refusal does not touch the run it refused
                    self._mark_ended(run_id, "failed")
                raise
        return {"run_id": run_id} | summary

    def record(
        self,
        model,
        run_id: str | None = None,
        *,
        masks: dict | None = None,
        name: str | None = None,
        every: int | None = None,
        method: Method | str | None = None,
        dataset: Dataset | str | None = None,
        owns_store: bool = False,
    ):
        """A Recorder of `model`'s topology from the caller's own training loop (docs/record.md).

        `owns_store`: the recorder closes the workspace's store when it closes (sparsetopo.record)."""
        from .recorder import Recorder, default_run_id

        made_by = optional_choice(Method, method, "method")
        trained_on = optional_choice(Dataset, dataset, "data set")
        return Recorder(
            self.store,
            model,
            run_id or default_run_id(),
            masks=masks,
            name=name,
            every=every,
            method=made_by.value if made_by is not None else None,
            dataset=trained_on.value if trained_on is not None else None,
            owns_store=owns_store,
        )

    def _mark_ended(self, run_id: str, status: str) -> None:
        """Mark a run this process was writing as failed/interrupted instead of leaving it 'importing'."""
        store = self._store
        if store is None or not store.writer.lease.holds(run_id):
            return  # never became its writer (refused, or failed before the first step): not ours to mark
        try:
            store.set_run_status(run_id, status)
        except Exception:  # noqa: BLE001 - the original error matters more (e.g. the server is gone)
            pass

    def export_npz(self, snapshot: str, out: str | Path) -> dict:
        """Write the snapshot RUN@STEP in the paper's format into the directory `out` (`export npz`)."""
        from .graphstore.npz_io import write_snapshot_dir
        from .refs import snapshot as parse

        run, step = parse(snapshot)
        stored = self.store.read_snapshot(run, step)
        write_snapshot_dir(stored, out)
        return {"snapshot": f"{run}@{step}", "out": str(out), "layers": len(stored.layers)}

    # -- queries --------------------------------------------------------------------------------
    def cypher(self, query: str, params: dict | None = None) -> list[dict]:
        """A read-only Cypher query; writes, administration and procedures are refused (`cypher`)."""
        from .context import check_int64

        return self.store.query(query, check_int64(dict(params or {}), "a parameter"))

    def queries(self) -> list[dict]:
        """Every named query and its parameters (`query --list`)."""
        from .graphstore.queries import QUERIES

        return [
            {
                "name": q.name,
                "parameters": ", ".join(
                    p.name + ("" if p.required else f"={p.default}" if p.default is not None else "=") for p in q.params
                ),
                "description": q.description,
            }
            for q in QUERIES.values()
        ]

    def query(self, name: str, run: str | None = None, params: dict | None = None) -> list[dict]:
        """Run a named, parameterised query in a read-only transaction (`query NAME [RUN]`)."""
        from .context import check_int64
        from .graphstore.evolution import summaries_missing
        from .graphstore.queries import QUERIES, bind, run_named

        params = check_int64(dict(params or {}), "a parameter")
        if run is not None:
            params["run_id"] = run
        bound = bind(name, params)  # refuses unknown names and parameters before connecting
        run_id = bound.get("run_id")
        if run_id is not None:
            self.store.get_run(run_id)  # an unknown run is an error, not an empty table
        rows = run_named(self.store, name, bound)
        if QUERIES[name].needs_summaries and run_id is not None and summaries_missing(self.store, run_id):
            self.log(
                f"note: some steps of run '{run_id}' have no lifetime summaries yet, so their evo columns "
                f"are empty; `sparsetopo evolution {run_id}` computes them"
            )
        return rows

    # -- training -------------------------------------------------------------------------------
    def train(
        self,
        dataset: Dataset | str = "mnist",
        method: Method | str = "set",
        recipe: Recipe | str | None = None,
        rule: Sequence[str] | dict | None = None,
        epsilon: float = 20.0,
        zeta: float = 0.3,
        epochs: int = 10,
        hidden: Sequence[int] | str = (1000, 1000, 1000),
        seed: int = 0,
        run_id: str | None = None,
        name: str | None = None,
        init: Init | str = "er",
        density: float | None = None,
        sparse_output: bool | None = None,
        dropout: float | None = None,
        lr: float | None = None,
        momentum: float | None = None,
        weight_decay: float | None = None,
        batch_size: int = 100,
        delta_t: int = 100,
        rigl_end: float = 0.75,
        npz_dir: str | Path | None = None,
        no_store: bool = False,
        queue: int | None = None,
        threads: int | None = None,
        backend: Backend | str = "auto",
        initial_train_samples: int | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> dict:
        """Train an MLP and store every snapshot: creates the run, records it, marks how it ended.

        Returns {"run_id", "dataset_source", "seconds", "stored", "steps": [one row per snapshot]}
        (`train`). `progress` receives the trainer's events (default: a bar with console=True)."""
        from .trainer.loop import TrainConfig
        from .training import DEFAULT_QUEUE, parse_hidden, parse_rules, train_run

        recipe_choice = optional_choice(Recipe, recipe, "recipe")
        config = TrainConfig(
            dataset=choice(Dataset, dataset, "data set").value,
            method=choice(Method, method, "method").value,
            recipe=recipe_choice.value if recipe_choice is not None else None,
            hidden=parse_hidden(hidden),
            epochs=epochs,
            epsilon=epsilon,
            zeta=zeta,
            init=choice(Init, init, "initial topology").value,
            density=density,
            sparse_output=sparse_output,
            dropout=dropout,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            rules=parse_rules(rule),
            batch_size=batch_size,
            seed=seed,
            delta_t=delta_t,
            rigl_end=rigl_end,
            threads=threads,
            backend=choice(Backend, backend, "backend").value,
            initial_train_samples=initial_train_samples,
        )
        bar: Any = contextlib.nullcontext(progress or (lambda _event: None))
        if progress is None and self.console:
            from .progress import TrainingBar

            bar = TrainingBar()
        try:
            with bar as events:
                return train_run(
                    config,
                    run_id,
                    name,
                    None if no_store else (lambda: self.store),
                    Path(npz_dir) if npz_dir is not None else None,
                    DEFAULT_QUEUE if queue is None else queue,
                    events,
                    self.log,
                )
        except KeyboardInterrupt:
            if self.console:
                # Everything is stored and marked by now: a further Ctrl-C while the process
                # unwinds would only end it by the signal (status -2 instead of 130).
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            self.log(f"run {run_id or '(unnamed)'} interrupted")
            raise

    def datasets(self) -> list[dict]:
        """The data sets, whether they are cached, and where they came from (`data list`)."""
        from .trainer.data import DATASETS, DIGITS_SPLIT, dataset_dir, verified_meta

        rows = []
        for name in DATASETS:
            if name == "digits":
                rows.append(
                    {
                        "dataset": name,
                        "status": "built in",
                        "source": "scikit-learn load_digits",
                        "n_train": 1347,
                        "n_test": 450,
                        "split": DIGITS_SPLIT,
                        "path": None,
                    }
                )
                continue
            meta = verified_meta(name)
            folder = dataset_dir(name)
            if meta is None:
                status = "corrupt (will be fetched again)" if (folder / "meta.json").exists() else "not fetched"
                rows.append({"dataset": name, "status": status, "path": str(folder)})
            else:
                rows.append(
                    {"dataset": name, "status": "cached"}
                    | {k: meta[k] for k in ("source", "n_train", "n_test", "split")}
                    | {"path": str(folder)}
                )
        return rows

    def fetch_dataset(self, dataset: FetchableDataset | str, force: bool = False, canonical: bool = True) -> dict:
        """Download a data set once into the user's data directory, with checksums (`data fetch`)."""
        from .trainer.data import dataset_dir, fetch

        name = choice(FetchableDataset, dataset, "data set").value
        meta = fetch(name, force=force, try_canonical=canonical, log=self.log)
        return {
            "dataset": name,
            "status": "already cached (checksums verified)" if meta["cached"] else "fetched",
            "source": meta["source"],
            "n_train": meta["n_train"],
            "n_test": meta["n_test"],
            "split": meta["split"],
            "path": str(dataset_dir(name)),
        }

    # -- analyses -------------------------------------------------------------------------------
    def stats(self, target: str, hubs: int = 5, recompute: bool = False) -> list[dict] | dict:
        """Structural statistics, computed once per snapshot and stored as stat_* properties (`stats`).

        `target` RUN: one row per snapshot. RUN@STEP: {"step", "network": {...}, "layers": [...]}."""
        from .graphstore.errors import UnknownSnapshotError
        from .graphstore.evolution import ensure_evolution
        from .refs import parse_snapshot
        from .statistics import compute_run_statistics, run_statistics, snapshot_statistics

        if hubs < 0:
            raise UsageError(f"hubs must be at least 0; got {hubs}")
        ref = parse_snapshot(target)
        run, step = ref if ref is not None else (target, None)
        store = self.store
        store.get_run(run)
        if step is not None and step not in {s["step"] for s in store.list_snapshots(run)}:
            raise UnknownSnapshotError(run, step)
        with self._progress("structural statistics") as update:
            compute_run_statistics(store, run, hubs, recompute, update)
        with self._progress("summarising synapse lifetimes") as update:
            ensure_evolution(store, run, update)
        return run_statistics(store, run) if step is None else snapshot_statistics(store, run, step)

    def evolution(self, run: str, layer: int | None = None) -> list[dict]:
        """Per step and layer: synapses alive, appeared, vanished, first-step ones still alive (`evolution`)."""
        from .graphstore.evolution import ensure_evolution
        from .graphstore.queries import run_named

        info = self.store.get_run(run)
        n_layers = len(info["architecture"]) - 1
        if layer is not None and not 0 <= layer < n_layers:
            raise UsageError(f"run '{run}' has weight layers 0..{n_layers - 1}; there is no layer {layer}")
        with self._progress("summarising synapse lifetimes") as update:
            ensure_evolution(self.store, run, update)
        return run_named(self.store, "evolution", {"run_id": run, "layer": layer})

    def nnstd(self, a: str, b: str, solver: Solver | str = "exact", tie_sensitivity: bool = False) -> dict:
        """NNSTD between two networks (npz directories or RUN@STEP): {"distance", "layers", ...} (`nnstd pair`);
        when some layer has no producer, "chained": [...], False for a layer compared without relabelling."""
        from .analysis.nnstd import nnstd
        from .analysis.nnstd import tie_sensitivity as ties
        from .refs import load_networks

        solver = choice(Solver, solver, "NNSTD solver")
        net_a, net_b = load_networks([a, b], lambda: self.store)
        out = nnstd(net_a, net_b, method=solver.value).to_dict()
        if tie_sensitivity:
            out["tie_sensitivity"] = ties(net_a, net_b)
        return out

    def nnstd_matrix(
        self,
        networks: Sequence[str],
        solver: Solver | str = "exact",
        workers: int | None = None,
        figure: str | Path | None = None,
        executor: Executor | str = "local",
        ray_address: str | None = None,
    ) -> dict:
        """All-pairs NNSTD: {"labels", "distance": [[...]], "layers": [[[...]]]} and, when some layer has no
        producer, "chained": [...] (`nnstd matrix`);
        `figure` also writes the heatmap there (PNG). `executor="ray"` computes the pairs on the Ray
        cluster at `ray_address` (else RAY_ADDRESS, else a local instance started for the call)."""
        from .analysis.nnstd_parallel import nnstd_matrix
        from .executors import executor_kind, open_executor
        from .refs import load_networks

        solver = choice(Solver, solver, "NNSTD solver")
        kind = executor_kind(executor, ray_address)
        networks = list(networks)
        if len(networks) < 2:
            raise UsageError("nnstd matrix needs at least two networks")
        _check_workers(workers)
        nets = load_networks(networks, lambda: self.store)
        with open_executor(kind, ray_address, self.log) as pool, self._progress("NNSTD pairs") as update:
            result = nnstd_matrix(
                nets, method=solver.value, workers=workers, on_progress=update, names=networks, executor=pool
            )
        if figure is not None:
            from .analysis.figures import nnstd_heatmap, save_png

            save_png(nnstd_heatmap(result["distance"], networks, title=f"NNSTD ({solver.value})"), figure)
        out = {"labels": networks, "distance": result["distance"].tolist(), "layers": result["layers"].tolist()}
        if not all(result["chained"]):
            out["chained"] = result["chained"]
        return out

    def nnstd_evolution(
        self,
        run: str,
        reference: Reference | str = "initial",
        solver: Solver | str = "exact",
        workers: int | None = None,
        figure: str | Path | None = None,
        executor: Executor | str = "local",
        ray_address: str | None = None,
    ) -> list[dict]:
        """NNSTD of every snapshot to the initial (or previous) one, stored as NNSTD relationships
        (`nnstd evolution`); `figure` also writes the curve there (PNG). `executor`, `ray_address`:
        as for nnstd_matrix. Nothing is stored until every pair is computed."""
        from .executors import executor_kind, open_executor
        from .pipelines import nnstd_evolution

        reference, solver = choice(Reference, reference, "reference"), choice(Solver, solver, "NNSTD solver")
        kind = executor_kind(executor, ray_address)
        _check_workers(workers)
        self.store.get_run(run)  # an unknown run before Ray starts
        with open_executor(kind, ray_address, self.log) as pool, self._progress("NNSTD evolution") as update:
            rows = nnstd_evolution(
                self.store, run, reference.value, solver.value, workers, on_progress=update, executor=pool
            )
        if figure is not None:
            from .analysis.figures import nnstd_evolution as evolution_figure
            from .analysis.figures import save_png

            curve = evolution_figure(
                [r["step"] for r in rows],
                [r["distance"] for r in rows],
                [r["layers"] for r in rows],
                title=f"NNSTD of {run} to the {reference.value} snapshot ({solver.value})",
            )
            save_png(curve, figure)
        return rows

    def plot(self, run: str, out: str | Path) -> dict:
        """PNG figures of how a run's wiring evolved, into the directory `out`:
        {"run", "files": [...], "skipped": {figure: reason}} (`plot`)."""
        from .plotting import plot_run

        return plot_run(self.store, run, Path(out), self._progress)

    def report(
        self,
        runs: Sequence[str],
        out: str | Path,
        nnstd: bool = True,
        nnstd_solver: Solver | str = "exact",
        evolution_points: int = 12,
        save_nnstd: bool = False,
    ) -> dict:
        """One self-contained HTML report of the runs, written to `out`: {"out", "runs"} (`report`)."""
        import shlex

        from .report import render
        from .report_data import gather

        out = Path(out)
        solver = choice(Solver, nnstd_solver, "NNSTD solver")
        runs = list(dict.fromkeys(runs))
        if not runs:
            raise UsageError("a report needs at least one run")
        if evolution_points < 0:
            raise UsageError(f"evolution points must be at least 0; got {evolution_points}")
        if out.exists() and out.is_dir():
            raise UsageError(f"{out} is a directory; give a file name such as {out / 'report.html'}")
        if not out.parent.exists():
            raise UsageError(f"the directory {out.parent} does not exist")
        with self._progress("NNSTD for the report") as update:
            data = gather(
                self.store,
                runs,
                compute=nnstd,
                method=solver.value,
                evolution_points=evolution_points,
                save=save_nnstd,
                progress=update,
            )
        command = " ".join(
            ["sparsetopo", "report", *map(shlex.quote, runs), "--out", shlex.quote(str(out))]
            + ([] if nnstd else ["--no-nnstd"])
            + ([] if solver is Solver.exact else ["--nnstd-solver", solver.value])
            + ([] if evolution_points == 12 else ["--evolution-points", str(evolution_points)])
        )
        out.write_text(render(data, command), encoding="utf-8")
        return {"out": str(out), "runs": runs}

    def experiment(
        self,
        scale: Scale | str = "small",
        part: Part | str = "all",
        out: str | Path = "out/paper",
        jobs: int | None = None,
        workers: int | None = None,
        executor: Executor | str = "local",
        ray_address: str | None = None,
    ) -> dict:
        """Reproduce the paper's findings, resumably (`experiment paper`): {"results", "json", "report",
        "verdicts": [...], "held"}; the files are written under `out`. `executor="ray"` trains one run
        per Ray task (`jobs` at a time, default every CPU of the cluster) and computes the NNSTD
        analyses there too; `ray_address` as for nnstd_matrix."""
        from .executors import executor_kind, open_executor
        from .experiment import run_paper_experiment

        scale, part = choice(Scale, scale, "scale"), choice(Part, part, "part")
        kind = executor_kind(executor, ray_address)
        if jobs is not None and jobs < 1:
            raise UsageError(f"jobs must be at least 1; got {jobs}")
        _check_workers(workers)
        store = self.store  # the store the runs go to, before Ray starts
        with open_executor(kind, ray_address, self.log) as pool:
            return run_paper_experiment(
                store, scale.value, part.value, Path(out), jobs, workers, self.log, self._progress, executor=pool
            )

    # -- the server -----------------------------------------------------------------------------
    def db_status(self) -> dict:
        """URI, version, pid, data directory and store size of the server in use (`db status`)."""
        from .graphstore.server import server_status

        return server_status()

    def bi_url(self, show_password: bool = False) -> dict:
        """JDBC URL, driver class, user and password location for BI tools (`bi url`)."""
        from .graphstore.bi import connection_info
        from .graphstore.server import LocalServer
        from .graphstore.settings import external_settings

        settings = external_settings()
        password_file = None
        if settings is None:
            server = LocalServer()
            if not server.bolt_port or not server.password_file.exists():
                raise UsageError("the project's Neo4j server has not been created yet; run `sparsetopo db start` first")
            settings = server.settings()
            password_file = str(server.password_file)
        info = connection_info(settings, password_file)
        if show_password:
            info["password"] = settings.password
        return info


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1; got {workers}")
