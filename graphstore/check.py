"""`sparsetopo runs check`: verify a run against its per-step matrices, and repair what can be recomputed.

The LayerSnapshot of each complete step holds the exact matrix of that layer at that step
(`positions`, `weights`); everything else is derived from those matrices and is checked against
them:

- lifetimes: the SYNAPSE lifetimes alive at each step are that step's positions, exactly once
  (no overlapping lifetimes), and every lifetime starts and ends at a complete step;
- weights: every synapse has `weight`; a dead one carries its weight at the last step it was alive,
  and, once the run is finished, a live one carries its weight at the last step;
- counts: `nnz`, `appeared`, `vanished` of each LayerSnapshot and `n_synapses` of each Snapshot;
- summaries: the `evo_*` lifetime summaries, where stored;
- a step left incomplete by a writer that is gone.

`repair` rolls back such a step and rewrites weights, counts and summaries from the matrices.
Lifetimes that disagree with the matrices are reported, not rebuilt: delete the run and write it
again from its files.

The check holds the run's writer lease while it runs, so no writer changes the run meanwhile.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

_FINISHED = {"completed", "interrupted", "failed"}
_EVO_KEYS = (
    "evo_vanished_born",
    "evo_vanished_count",
    "evo_alive_born",
    "evo_alive_count",
    "evo_alive",
    "evo_initial_alive",
    "evo_initial_fraction",
)


def _problem(out: list, step, layer, what: str, repairable: bool) -> None:
    out.append({"step": step, "layer": layer, "problem": what, "repairable": repairable})


def check_run(store, run_id: str, repair: bool = False) -> dict:
    """Problems found (and repaired); `consistent` is True when none remain."""
    run = store.get_run(run_id)
    lease = store.writer.lease
    held_before = lease.holds(run_id)
    lease.acquire(run_id)  # RunBusyError while a live process writes the run
    try:
        problems, repaired = _check(store, run_id, run, repair)
        if repaired:
            store.writer.forget(run_id)  # the cursor is rebuilt from the repaired store
            problems, _ = _check(store, run_id, store.get_run(run_id), False)
    finally:
        if not held_before:
            store.writer.release(run_id)
    return {"run_id": run_id, "consistent": not problems, "problems": problems, "repaired": repaired}


def _check(store, run_id: str, run: dict, repair: bool) -> tuple[list, list]:
    problems: list[dict] = []
    repaired: list[dict] = []
    incomplete = [
        r["step"]
        for r in store.read(
            "MATCH (s:Snapshot {run_id: $run}) WHERE s.complete IS NOT NULL RETURN s.step AS step ORDER BY step",
            {"run": run_id},
        )
    ]
    for step in incomplete:
        if repair and store.writer.rollback_incomplete(run_id, step):
            _problem(repaired, step, None, "incomplete step left by a writer that is gone: rolled back", True)
        else:
            _problem(problems, step, None, "incomplete step left by a writer that is gone", True)

    snaps = {
        r["step"]: r
        for r in store.read(
            "MATCH (s:Snapshot {run_id: $run}) WHERE s.complete IS NULL "
            "RETURN s.step AS step, s.n_synapses AS n_synapses ORDER BY step",
            {"run": run_id},
        )
    }
    steps = sorted(snaps)
    layers: dict[int, dict[int, dict]] = defaultdict(dict)  # step -> layer -> row
    for r in store.read(
        "MATCH (s:Snapshot {run_id: $run})-[:HAS_LAYER]->(l:LayerSnapshot) WHERE s.complete IS NULL "
        "RETURN l.step AS step, l.layer AS layer, l.n_out AS n_out, l.nnz AS nnz, l.appeared AS appeared, "
        "l.vanished AS vanished, l.positions AS positions, l.weights AS weights, "
        + ", ".join(f"l.{k} AS {k}" for k in _EVO_KEYS),
        {"run": run_id},
    ):
        r["positions"] = np.asarray(r["positions"] or [], dtype=np.int64)
        r["weights"] = np.asarray(r["weights"] or [], dtype=np.float64).astype(np.float32)
        layers[r["step"]][r["layer"]] = r
    n_layers = len(run["architecture"]) - 1
    for step in steps:
        missing = sorted(set(range(n_layers)) - set(layers[step]))
        if missing:
            _problem(problems, step, missing[0], f"{len(missing)} layer snapshot(s) missing", False)
    if problems and any(not p["repairable"] for p in problems):
        return problems, repaired

    life = _lifetimes(store, run_id)
    _check_groups(problems, store, run_id, life, n_layers)
    orphans = int((~np.isin(life["born"], steps)).sum() + ((life["died"] >= 0) & ~np.isin(life["died"], steps)).sum())
    if orphans:
        _problem(
            problems,
            None,
            None,
            f"{orphans} synapse lifetime(s) begin or end at a step without a complete snapshot",
            False,
        )

    counts_fix: dict[tuple[int, int], dict] = {}
    evo_fix: dict[tuple[int, int], dict] = {}
    weight_fix: dict[int, float] = {}
    finished = run.get("status") in _FINISHED
    for k in range(n_layers):
        in_layer = life["layer"] == k
        l_pos, l_born, l_died = life["pos"][in_layer], life["born"][in_layer], life["died"][in_layer]
        l_ids, l_w = life["id"][in_layer], life["weight"][in_layer]
        prev_pos: np.ndarray | None = None  # the positions and weights at the previous step
        prev_w = np.empty(0, dtype=np.float32)
        birth = np.empty(0, dtype=np.int64)  # birth step of each position alive at the previous step
        initial = 0
        for i, t in enumerate(steps):
            row = layers[t][k]
            pos, w = row["positions"], row["weights"]
            # lifetimes alive at t are exactly the positions of t
            alive = (l_born <= t) & ((l_died < 0) | (l_died > t))
            alive_pos = np.sort(l_pos[alive])
            if alive_pos.size != np.unique(alive_pos).size:
                _problem(
                    problems,
                    t,
                    k,
                    f"{alive_pos.size - np.unique(alive_pos).size} connection(s) have overlapping lifetimes",
                    False,
                )
            elif not np.array_equal(alive_pos, pos):
                extra = np.setdiff1d(alive_pos, pos).size
                lacking = np.setdiff1d(pos, alive_pos).size
                _problem(
                    problems,
                    t,
                    k,
                    f"lifetimes disagree with the stored matrix ({extra} alive that are not "
                    f"connections, {lacking} connections without a live synapse)",
                    False,
                )
            # counts, from the matrices
            if prev_pos is None:
                appeared, vanished = pos.size, 0
                new = np.ones(pos.size, bool)
            else:
                new = ~np.isin(pos, prev_pos, assume_unique=True)
                appeared, vanished = int(new.sum()), int((~np.isin(prev_pos, pos, assume_unique=True)).sum())
            want = {"nnz": int(pos.size), "appeared": appeared, "vanished": vanished}
            have = {key: row[key] for key in want}
            if row["weights"].size != pos.size:
                _problem(problems, t, k, "positions and weights differ in length", False)
            if have != want:
                counts_fix[(t, k)] = want
                _problem(problems, t, k, f"stored counts {have} differ from the matrix's {want}", True)
            # weights of the lifetimes that end here: their weight at the previous step
            if prev_pos is not None:
                ended = np.flatnonzero(l_died == t)
                if ended.size:
                    at = np.searchsorted(prev_pos, l_pos[ended]).clip(0, max(prev_pos.size - 1, 0))
                    ok = prev_pos.size > 0
                    expected = prev_w[at] if ok else np.full(ended.size, np.nan, np.float32)
                    bad = ~(l_w[ended].astype(np.float32) == expected)
                    for j in np.flatnonzero(bad):
                        weight_fix[int(l_ids[ended[j]])] = float(expected[j])
            # lifetime summaries, from the matrices
            if prev_pos is None:
                births = np.full(pos.size, t, dtype=np.int64)
                initial = pos.size
                gone_births = np.empty(0, dtype=np.int64)
            else:
                births = np.full(pos.size, t, dtype=np.int64)
                kept = ~new
                births[kept] = birth[np.searchsorted(prev_pos, pos[kept])]
                gone_births = birth[~np.isin(prev_pos, pos, assume_unique=True)]
            a_born, a_count = np.unique(births, return_counts=True)
            v_born, v_count = np.unique(gone_births, return_counts=True)
            init = int((births == steps[0]).sum())
            evo = {
                "evo_vanished_born": v_born.tolist(),
                "evo_vanished_count": v_count.tolist(),
                "evo_alive_born": a_born.tolist(),
                "evo_alive_count": a_count.tolist(),
                "evo_alive": int(pos.size),
                "evo_initial_alive": init,
                "evo_initial_fraction": init / initial if initial else 0.0,
            }
            stored = {key: row[key] for key in _EVO_KEYS}
            if stored["evo_alive_born"] is not None and not _same_evo(stored, evo):
                evo_fix[(t, k)] = evo
                _problem(
                    problems,
                    t,
                    k,
                    f"stored lifetime summaries differ from the matrices (evo_alive "
                    f"{stored['evo_alive']}, evo_initial_fraction {stored['evo_initial_fraction']}; expected "
                    f"{evo['evo_alive']}, {evo['evo_initial_fraction']:.4f})",
                    True,
                )
            prev_pos, prev_w, birth = pos, w, births
            if i == len(steps) - 1:
                # survivors: their weight at the last step once the run is finished, else any weight
                open_ = np.flatnonzero(l_died < 0)
                at = np.searchsorted(pos, l_pos[open_]).clip(0, max(pos.size - 1, 0))
                for n, idx in enumerate(open_):
                    if np.isnan(l_w[idx]) or (finished and pos.size and np.float32(l_w[idx]) != w[at[n]]):
                        weight_fix[int(l_ids[idx])] = float(w[at[n]]) if pos.size else 0.0
    missing_weight = int(np.isnan(life["weight"]).sum())
    if weight_fix:
        _problem(
            problems,
            None,
            None,
            f"{len(weight_fix)} synapse(s) without their latest weight ({missing_weight} without any)",
            True,
        )
    sums: defaultdict[int, int] = defaultdict(int)
    for t in steps:
        for k in range(n_layers):
            sums[t] += layers[t][k]["positions"].size
        if snaps[t]["n_synapses"] != sums[t]:
            _problem(
                problems, t, None, f"n_synapses {snaps[t]['n_synapses']} differs from the matrices' {sums[t]}", True
            )

    if not repair or any(not p["repairable"] for p in problems):
        return problems, repaired
    _repair(store, run_id, run, counts_fix, evo_fix, weight_fix, sums, snaps)
    repaired.extend(problems)
    return [], repaired


def _same_evo(a: dict, b: dict) -> bool:
    for key in _EVO_KEYS:
        x, y = a[key], b[key]
        if key == "evo_initial_fraction":
            if x is None or abs(float(x) - float(y)) > 1e-12:
                return False
        elif (list(x) if isinstance(x, (list, tuple)) else x) != y:
            return False
    return True


def _layer_taps(store, run_id: str, n_layers: int) -> list[int]:
    """Rows per input neuron of each layer (convolutions), as the run's snapshots store them."""
    taps = [1] * n_layers
    for r in store.read(
        "MATCH (l:LayerSnapshot {run_id: $run}) WHERE l.taps IS NOT NULL RETURN DISTINCT l.layer AS layer, l.taps AS taps",
        {"run": run_id},
    ):
        taps[r["layer"]] = r["taps"]
    return taps


def _layer_producers(store, run_id: str) -> dict[int, set]:
    """Per layer, every producer its snapshots store (the writer keeps one per run)."""
    from .model import read_producer

    found: dict[int, set] = defaultdict(set)
    for r in store.read(
        "MATCH (l:LayerSnapshot {run_id: $run}) RETURN DISTINCT l.layer AS layer, l.producer AS producer",
        {"run": run_id},
    ):
        found[r["layer"]].add(read_producer(r["layer"], r["producer"]))
    return found


def _check_groups(problems: list, store, run_id: str, life: dict, n_layers: int) -> None:
    """Every synapse of layer k joins its input group (its producer's outputs) to layer k's outputs."""
    from ..topology import input_groups

    found = _layer_producers(store, run_id)
    if any(len(found[k]) > 1 for k in range(n_layers)):
        k = min(k for k in range(n_layers) if len(found[k]) > 1)
        _problem(
            problems,
            None,
            k,
            f"the snapshots of layer {k} store different producers {sorted(found[k], key=str)}",
            False,
        )
        return
    producers = [next(iter(found[k])) if found[k] else (None if k == 0 else k - 1) for k in range(n_layers)]
    groups = np.asarray(input_groups(producers), dtype=np.int64)
    layer = life["layer"]
    if not layer.size:
        return
    wrong = (life["src_layer"] != groups[layer]) | (life["dst_layer"] != layer + 1)
    if wrong.any():
        k = int(layer[wrong][0])
        _problem(
            problems,
            None,
            k,
            f"{int(wrong.sum())} synapse(s) join neurons of other layers than their layer's inputs and outputs",
            False,
        )


def _lifetimes(store, run_id: str) -> dict:
    rows = store.read(
        "MATCH (a:Neuron)-[s:SYNAPSE]->(b:Neuron) WHERE s.run_id = $run AND s.born IS NOT NULL "
        "RETURN collect(s.layer) AS layer, collect(a.index) AS i, collect(coalesce(s.tap, 0)) AS tap, "
        "collect(b.index) AS j, collect(s.born) AS born, collect(a.layer) AS src_layer, collect(b.layer) AS dst_layer, "
        "collect(coalesce(s.died, -1)) AS died, collect(coalesce(s.weight, 0.0 / 0.0)) AS weight, "
        "collect(id(s)) AS id",
        {"run": run_id},
    )[0]
    run = store.get_run(run_id)
    arch = np.asarray(run["architecture"], dtype=np.int64)
    layer = np.asarray(rows["layer"], dtype=np.int64)
    n_out = arch[layer + 1] if layer.size else np.empty(0, np.int64)
    taps = np.asarray(_layer_taps(store, run_id, len(arch) - 1), dtype=np.int64)
    row = np.asarray(rows["i"], dtype=np.int64) * (taps[layer] if layer.size else 1) + np.asarray(rows["tap"], np.int64)
    return {
        "layer": layer,
        "pos": row * n_out + np.asarray(rows["j"], dtype=np.int64),
        "born": np.asarray(rows["born"], dtype=np.int64),
        "src_layer": np.asarray(rows["src_layer"], dtype=np.int64),
        "dst_layer": np.asarray(rows["dst_layer"], dtype=np.int64),
        "died": np.asarray(rows["died"], dtype=np.int64),
        "weight": np.asarray(rows["weight"], dtype=np.float64),
        "id": np.asarray(rows["id"], dtype=np.int64),
    }


def _repair(store, run_id, run, counts_fix, evo_fix, weight_fix, sums, snaps) -> None:
    lease = store.writer.lease
    # a layer's positions are its matrix's: rows (input neuron, tap) by outputs, whatever its producer
    n_cells = {
        r["layer"]: r["n_in"] * r["n_out"]
        for r in store.read(
            "MATCH (l:LayerSnapshot {run_id: $run}) RETURN DISTINCT l.layer AS layer, l.n_in AS n_in, l.n_out AS n_out",
            {"run": run_id},
        )
    }
    rows = []
    for (t, k), props in counts_fix.items():
        rows.append({"step": t, "layer": k, "props": props | {"density": props["nnz"] / n_cells[k]}})
    for (t, k), props in evo_fix.items():
        rows.append({"step": t, "layer": k, "props": props})
    n_synapses = [
        {"step": t, "n": n, "density": n / sum(n_cells.values())}
        for t, n in sums.items()
        if snaps[t]["n_synapses"] != n
    ]
    ids, weights = list(weight_fix), list(weight_fix.values())

    def work(tx):
        lease.fence(tx, run_id)
        tx.run(
            "UNWIND $rows AS row MATCH (l:LayerSnapshot {run_id: $run, step: row.step, layer: row.layer}) "
            "SET l += row.props",
            run=run_id,
            rows=rows,
        ).consume()
        tx.run(
            "UNWIND $rows AS row MATCH (s:Snapshot {run_id: $run, step: row.step}) "
            "SET s.n_synapses = row.n, s.density = row.density",
            run=run_id,
            rows=n_synapses,
        ).consume()
        for lo in range(0, len(ids), 20_000):
            tx.run(
                "UNWIND range(0, size($ids) - 1) AS i MATCH ()-[s:SYNAPSE]->() WHERE id(s) = $ids[i] "
                "AND s.run_id = $run SET s.weight = $w[i]",
                ids=ids[lo : lo + 20_000],
                w=weights[lo : lo + 20_000],
                run=run_id,
            ).consume()

    with store.driver.session(database=store.database) as session:
        session.execute_write(work)
