"""Per-step summaries of synapse lifetimes, stored on (:LayerSnapshot) as `evo_*` properties.

Run-wide questions (how many of the first step's synapses survive, how long
synapses live) would otherwise scan every lifetime of a run, millions for a long
run. Instead each step is summarised once, from one index seek on
SYNAPSE(run_id, died) plus the writer's per-layer `appeared` count, and the
named queries read these few numbers. A step's summary depends only on that step
and the ones before it, so summarising is incremental: later steps never change
earlier summaries, and `ensure_evolution` only visits steps not summarised yet.

Properties on LayerSnapshot(run_id, step, layer):
    evo_vanished_born, evo_vanished_count   birth steps and counts of the synapses that died at this step
    evo_alive_born, evo_alive_count         birth steps and counts of the synapses alive at this step
    evo_alive                               their total (equals nnz when lifetimes and weights agree)
    evo_initial_alive, evo_initial_fraction the first step's synapses still in their first lifetime
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from .errors import RunInconsistentError

VANISHED_BY_BIRTH = (
    "MATCH ()-[s:SYNAPSE]->() WHERE s.run_id = $run_id AND s.died = $step "
    "RETURN s.layer AS layer, s.born AS born, count(*) AS n"
)

# Complete steps only: a chunked step being written has some of its died = step set and not the
# rest, and a summary computed from it would be wrong, and every later one built on it too.
_LAYER_STATE = (
    "MATCH (s:Snapshot {run_id: $run_id})-[:HAS_LAYER]->(l:LayerSnapshot) WHERE s.complete IS NULL "
    "RETURN l.step AS step, l.layer AS layer, l.appeared AS appeared, "
    "l.evo_alive_born AS alive_born, l.evo_alive_count AS alive_count ORDER BY step, layer"
)

_STORE = (
    "UNWIND $rows AS row MATCH (l:LayerSnapshot {run_id: $run_id, step: $step, layer: row.layer}) SET l += row.props"
)


class LifetimeInconsistency(RunInconsistentError):
    """Stored synapse lifetimes that contradict the per-step counts."""


def summaries_missing(store, run_id: str) -> int:
    """How many of the run's LayerSnapshots have no evo_* summary yet."""
    rows = store.read(
        "MATCH (s:Snapshot {run_id: $run_id})-[:HAS_LAYER]->(l:LayerSnapshot) "
        "WHERE s.complete IS NULL AND l.evo_alive_born IS NULL RETURN count(l) AS n",
        {"run_id": run_id},
    )
    return rows[0]["n"]


def ensure_evolution(store, run_id: str, progress: Callable[[int, int], None] | None = None) -> int:
    """Summarise every step of the run not summarised yet; returns how many steps were."""
    store.get_run(run_id)  # raises UnknownRunError
    by_step: dict[int, list[dict]] = defaultdict(list)
    for row in store.read(_LAYER_STATE, {"run_id": run_id}):
        by_step[row["step"]].append(row)
    steps = sorted(by_step)
    todo = next((i for i, s in enumerate(steps) if any(r["alive_born"] is None for r in by_step[s])), len(steps))
    if todo == len(steps):
        return 0
    first = steps[0]
    alive: dict[int, dict[int, int]] = {}  # layer -> birth step -> synapses alive
    initial: dict[int, int] = {}
    for row in by_step[first]:
        initial[row["layer"]] = row["appeared"]
    if todo > 0:
        for row in by_step[steps[todo - 1]]:
            alive[row["layer"]] = dict(zip(row["alive_born"], row["alive_count"]))
    for i, step in enumerate(steps[todo:], start=1):
        vanished: dict[int, dict[int, int]] = defaultdict(dict)
        for r in store.read(VANISHED_BY_BIRTH, {"run_id": run_id, "step": step}):
            vanished[r["layer"]][r["born"]] = r["n"]
        rows = []
        for layer_row in by_step[step]:
            k = layer_row["layer"]
            counts = dict(alive.get(k, {}))
            for born, n in vanished[k].items():
                left = counts.get(born, 0) - n
                if left < 0:
                    raise LifetimeInconsistency(
                        f"run '{run_id}' step {step} layer {k}: {n} synapses born at step {born} die, "
                        f"but only {counts.get(born, 0)} of them were alive"
                    )
                if left:
                    counts[born] = left
                else:
                    counts.pop(born, None)
            if layer_row["appeared"]:
                counts[step] = layer_row["appeared"]
            alive[k] = counts
            born_steps = sorted(counts)
            init = counts.get(first, 0)
            v_born = sorted(vanished[k])
            rows.append(
                {
                    "layer": k,
                    "props": {
                        "evo_vanished_born": v_born,
                        "evo_vanished_count": [vanished[k][b] for b in v_born],
                        "evo_alive_born": born_steps,
                        "evo_alive_count": [counts[b] for b in born_steps],
                        "evo_alive": sum(counts.values()),
                        "evo_initial_alive": init,
                        "evo_initial_fraction": init / initial[k] if initial.get(k) else 0.0,
                    },
                }
            )
        store.write(_STORE, {"run_id": run_id, "step": step, "rows": rows})
        if progress:
            progress(i, len(steps) - todo)
    return len(steps) - todo
