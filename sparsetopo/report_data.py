"""What a report shows, read from the graph store as plain values (no plotting here).

Everything that exists for the runs is gathered: the Run's properties, per-step
Snapshot metrics, per-step churn and per-layer numbers from (:LayerSnapshot),
structural statistics (`stat_` properties written by `sparsetopo stats`) and NNSTD
relationships. NNSTD that is not stored can be computed with analysis.nnstd for
the pairs the report shows (final snapshots of the runs; each run's steps against
its initial topology), optionally saved back to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STAT = "stat_"
PURPOSE = "report"  # of the NNSTD relationships --save-nnstd writes
# Properties of a Snapshot that are identity or bulky, never plotted as metrics.
_NOT_METRICS = {"run_id", "step", "epoch"}


@dataclass
class RunData:
    run_id: str
    config: dict[str, Any]
    snapshots: list[dict[str, Any]]  # step order; Snapshot properties
    layers: list[dict[str, Any]]  # one per (step, layer): step, layer, nnz, appeared, vanished, stat_*
    # step, distance, layers, method, purpose, a and b (who played NNSTD's A and B: "RUN@STEP"), source
    evolution: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        return [s["step"] for s in self.snapshots]


@dataclass
class ReportData:
    runs: list[RunData]
    # NNSTD between the final snapshots of the runs: run_a, step_a, run_b, step_b and the keys of
    # RunData.evolution's values
    pairs: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_run(store, run_id: str) -> RunData:
    config = store.get_run(run_id)
    snapshots = store.list_snapshots(run_id)
    layers = store.read(
        "MATCH (l:LayerSnapshot {run_id: $run}) "
        "RETURN l.step AS step, l.layer AS layer, l.n_in AS n_in, l.n_out AS n_out, l.nnz AS nnz, "
        "l.appeared AS appeared, l.vanished AS vanished, "
        "[k IN keys(l) WHERE k STARTS WITH $stat | [k, l[k]]] AS stats ORDER BY step, layer",
        {"run": run_id, "stat": STAT},
    )
    rows = []
    for r in layers:
        row = {k: r[k] for k in ("step", "layer", "n_in", "n_out", "nnz", "appeared", "vanished")}
        row.update({k: v for k, v in r["stats"] if is_number(v)})
        rows.append(row)
    return RunData(run_id, config, sorted(snapshots, key=lambda s: s["step"]), rows)


def stored_nnstd(store, run_ids: list[str]) -> dict[tuple, dict]:
    """NNSTD relationships among the runs' snapshots, keyed both ways: (run_a, step_a, run_b, step_b)."""
    rows = store.read(
        "MATCH (a:Snapshot)-[d:NNSTD]->(b:Snapshot) WHERE a.run_id IN $runs AND b.run_id IN $runs "
        "RETURN a.run_id AS ra, a.step AS sa, b.run_id AS rb, b.step AS sb, d.distance AS distance, "
        "d.layers AS layers, d.method AS method, d.purpose AS purpose, d.a AS a, d.b AS b",
        {"runs": run_ids},
    )
    found = {}
    for r in rows:
        value = {
            "distance": r["distance"],
            "layers": list(r["layers"] or []),
            "method": r["method"],
            "purpose": r["purpose"],
            "a": r["a"],
            "b": r["b"],
            "source": "stored",
        }
        found[(r["ra"], r["sa"], r["rb"], r["sb"])] = value
        found[(r["rb"], r["sb"], r["ra"], r["sa"])] = value
    return found


def sample_steps(steps: list[int], limit: int) -> list[int]:
    """At most `limit` steps after the first, evenly spread, always including the last."""
    later = steps[1:]
    if limit <= 0 or len(later) <= limit:
        return later
    picked = {later[round(i * (len(later) - 1) / (limit - 1))] for i in range(limit)} if limit > 1 else {later[-1]}
    return sorted(picked)


class _Computer:
    """Computes missing NNSTD with analysis.nnstd, reading each snapshot once."""

    def __init__(self, store, method: str, save: bool):
        self.store, self.method, self.save = store, method, save
        self._cache: dict[tuple[str, int], list] = {}

    def layers(self, run_id: str, step: int):
        key = (run_id, step)
        if key not in self._cache:
            self._cache[key] = self.store.read_snapshot(run_id, step).layers
        return self._cache[key]

    def __call__(self, ra: str, sa: int, rb: str, sb: int) -> dict:
        from sparsetopo.analysis.nnstd import NNSTDError, nnstd

        try:
            result = nnstd(self.layers(ra, sa), self.layers(rb, sb), method=self.method)
        except NNSTDError as exc:
            return {"distance": None, "layers": [], "method": self.method, "source": f"not comparable: {exc}"}
        if self.save:
            self.store.write_nnstd(ra, sa, rb, sb, result.distance, result.layers, self.method, purpose=PURPOSE)
        return {
            "distance": float(result.distance),
            "layers": [float(x) for x in result.layers],
            "method": self.method,
            "purpose": PURPOSE if self.save else None,
            "a": f"{ra}@{sa}",
            "b": f"{rb}@{sb}",
            "source": "saved" if self.save else "computed",
        }


def gather(
    store,
    run_ids: list[str],
    compute: bool = True,
    method: str = "exact",
    evolution_points: int = 12,
    save: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReportData:
    """Read everything the report shows for these runs; compute missing NNSTD when asked and possible."""
    runs = [read_run(store, r) for r in dict.fromkeys(run_ids)]
    ids = [r.run_id for r in runs]
    stored = stored_nnstd(store, ids)
    notes: list[str] = []
    computer = _Computer(store, method, save) if compute else None

    todo: list[tuple[RunData | None, tuple]] = []
    for run in runs:
        if len(run.steps) > 1:
            first = run.steps[0]
            for step in sample_steps(run.steps, evolution_points):
                todo.append((run, (run.run_id, first, run.run_id, step)))
    finals = [(r.run_id, r.steps[-1]) for r in runs if r.steps]
    for i, (ra, sa) in enumerate(finals):
        for rb, sb in finals[i + 1 :]:
            todo.append((None, (ra, sa, rb, sb)))

    pairs: list[dict] = []
    for done, (owner, key) in enumerate(todo, start=1):
        value = stored.get(key)
        if value is None and computer is not None:
            value = computer(*key)
        if value is not None:
            if owner is not None:
                owner.evolution.append({"step": key[3], **value})
            else:
                pairs.append({"run_a": key[0], "step_a": key[1], "run_b": key[2], "step_b": key[3], **value})
        if progress:
            progress(done, len(todo))
    # Stored evolution points beyond the sampled ones are shown too.
    for run in runs:
        have = {e["step"] for e in run.evolution}
        if run.steps:
            first = run.steps[0]
            for step in run.steps[1:]:
                value = stored.get((run.run_id, first, run.run_id, step))
                if step not in have and value is not None:
                    run.evolution.append({"step": step, **value})
            run.evolution.sort(key=lambda e: e["step"])
    return ReportData(runs, pairs, notes)


def metric_keys(run: RunData) -> list[str]:
    """Numeric Snapshot properties other than identity and structural statistics."""
    keys = dict.fromkeys(
        k
        for s in run.snapshots
        for k, v in s.items()
        if is_number(v) and k not in _NOT_METRICS and not k.startswith(STAT)
    )
    return list(keys)


def snapshot_stat_keys(run: RunData) -> list[str]:
    return list(dict.fromkeys(k for s in run.snapshots for k, v in s.items() if k.startswith(STAT) and is_number(v)))


def layer_stat_keys(run: RunData) -> list[str]:
    return list(dict.fromkeys(k for row in run.layers for k in row if k.startswith(STAT)))
