"""The paper's findings, measured from the stored runs: numbers and verdicts (written by experiment_writeup).

Every verdict is "held", "did not hold" or "inconclusive at this budget", by a rule that can
fail; none of them holds before training (a rule that compares with the untrained state would).
1. Performance: the best sparse setting (static or SET) reaches the dense mean final test
   accuracy within 0.5 points -> held. Otherwise, did not hold when every setting's curve has
   flattened (its last fifth of training gained < 0.2 points), else inconclusive at this budget.
2. Many winning tickets: independent SET runs of one setting whose final accuracies differ by
   <= 1 point moved away from their own starting topologies (NNSTD to their start >= half the
   random reference) and still are as far from each other as random topologies are (final NNSTD
   >= 0.9 x the NNSTD of their unrelated starts) -> held; moved but came closer -> did not hold
   (they converged on shared structure); did not move that far -> inconclusive at this budget.
   Beside it: the correlation of the runs' input-degree maps, a coarse shared structure NNSTD
   does not see.
3. Figure 4: from ten topologies 1 % apart, the mean layer-0 NNSTD among them at the last
   reported epoch covers at least half of the way from its initial value to the NNSTD of
   independent random topologies of the same size (progress >= 0.5) -> held ("evolve into very
   different topologies"); below -> did not hold (they kept a shared core). A run that did not
   reach the last reported epoch makes it inconclusive.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .topology import connection_keys

MATCH_TOLERANCE = 0.005
FLAT_GAIN = 0.002
SIMILAR_ACCURACY = 0.01
FAR_FRACTION = 0.9
MOVED_FRACTION = 0.5
FIG4_PROGRESS = 0.5
RANDOM_REFERENCE_SEED = 4321

HELD, NOT_HELD, INCONCLUSIVE = "held", "did not hold", "inconclusive at this budget"


@dataclass
class Findings:
    performance: list[dict] = field(default_factory=list)
    claim1: list[dict] = field(default_factory=list)
    evolution: dict[str, list[float]] = field(default_factory=dict)  # run_id -> NNSTD to step 0 per step
    pairs: list[dict] = field(default_factory=list)
    claim2: list[dict] = field(default_factory=list)
    fig4: dict = field(default_factory=dict)  # see figure4()
    claim3: dict = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _curve(store, run_id: str) -> list[float]:
    return [s["test_accuracy"] for s in store.list_snapshots(run_id)[1:] if s.get("test_accuracy") is not None]


def _flattened(curve: list[float]) -> bool:
    tail = max(1, len(curve) // 5)
    return len(curve) > tail and curve[-1] - curve[-1 - tail] < FLAT_GAIN


def performance(store, specs, epochs: int) -> tuple[list[dict], list[dict]]:
    groups: dict[tuple, list] = {}
    for s in specs:
        if s.part == "performance":
            groups.setdefault((s.dataset, s.method, s.epsilon), []).append(s.run_id)
    rows = []
    for (ds, method, eps), runs in groups.items():
        curves = [_curve(store, r) for r in runs]
        fm, fs = _mean_std([c[-1] for c in curves])
        bm, bs = _mean_std([max(c) for c in curves])
        params = store.list_snapshots(runs[0])[0]["n_synapses"]
        rows.append(
            {
                "dataset": ds,
                "method": method,
                "epsilon": eps,
                "epochs": epochs,
                "seeds": len(runs),
                "parameters": params,
                "final_mean": fm,
                "final_std": fs,
                "best_mean": bm,
                "best_std": bs,
                "flattened": all(_flattened(c) for c in curves),
            }
        )
    verdicts = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == ds]
        dense = next(r for r in mine if r["method"] == "dense")
        best = {m: max((r for r in mine if r["method"] == m), key=lambda r: r["final_mean"]) for m in ("static", "set")}
        best_sparse = max(best.values(), key=lambda r: r["final_mean"])
        if best_sparse["final_mean"] >= dense["final_mean"] - MATCH_TOLERANCE:
            verdict = HELD
        elif all(r["flattened"] for r in mine):
            verdict = NOT_HELD
        else:
            verdict = INCONCLUSIVE
        verdicts.append(
            {
                "dataset": ds,
                "dense": dense["final_mean"],
                "best_static": best["static"]["final_mean"],
                "best_static_epsilon": best["static"]["epsilon"],
                "best_set": best["set"]["final_mean"],
                "best_set_epsilon": best["set"]["epsilon"],
                "verdict": verdict,
            }
        )
    return rows, verdicts


def input_degree_map(layers) -> np.ndarray:
    """Connections leaving each input (row counts of layer 0): where a network looks."""
    return np.diff(layers[0].tocsr().indptr).astype(np.float64)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def evolution_and_pairs(store, specs, findings: Findings, log, workers: int | None = None) -> None:
    from sparsetopo.analysis.nnstd import nnstd

    from .pipelines import nnstd_evolution

    set_runs = [s for s in specs if s.part == "performance" and s.method == "set"]
    ends = {}  # run_id -> (first step, last step, initial layers, final layers), each read once
    for s in set_runs:
        rows = nnstd_evolution(store, s.run_id, "initial", "exact", workers)
        findings.evolution[s.run_id] = [0.0] + [r["distance"] for r in rows]
        first, last = rows[0]["reference_step"], rows[-1]["step"]
        ends[s.run_id] = (
            first,
            last,
            store.read_snapshot(s.run_id, first).layers,
            store.read_snapshot(s.run_id, last).layers,
        )
    groups: dict[tuple, list] = {}
    for s in set_runs:
        groups.setdefault((s.dataset, s.epsilon), []).append(s)
    for (ds, eps), runs in groups.items():
        group_pairs = []
        for a, b in itertools.combinations(runs, 2):
            a0, a1, a_init, a_final = ends[a.run_id]
            b0, b1, b_init, b_final = ends[b.run_id]
            init, final = nnstd(a_init, b_init), nnstd(a_final, b_final)
            store.write_nnstd(
                a.run_id, a0, b.run_id, b0, init.distance, init.layers, "exact", purpose="independent-initial"
            )
            store.write_nnstd(
                a.run_id, a1, b.run_id, b1, final.distance, final.layers, "exact", purpose="independent-final"
            )
            acc_a, acc_b = _curve(store, a.run_id)[-1], _curve(store, b.run_id)[-1]
            group_pairs.append(
                {
                    "dataset": ds,
                    "epsilon": eps,
                    "a": a.run_id,
                    "b": b.run_id,
                    "nnstd_initial": init.distance,
                    "nnstd_final": final.distance,
                    "moved_a": findings.evolution[a.run_id][-1],
                    "moved_b": findings.evolution[b.run_id][-1],
                    "degree_corr_initial": _correlation(input_degree_map(a_init), input_degree_map(b_init)),
                    "degree_corr_final": _correlation(input_degree_map(a_final), input_degree_map(b_final)),
                    "accuracy_a": acc_a,
                    "accuracy_b": acc_b,
                    "accuracy_gap": abs(acc_a - acc_b),
                }
            )
        findings.pairs.extend(group_pairs)
        similar = [p for p in group_pairs if p["accuracy_gap"] <= SIMILAR_ACCURACY]
        reference = statistics.fmean(p["nnstd_initial"] for p in group_pairs)
        moved = [p for p in similar if min(p["moved_a"], p["moved_b"]) >= MOVED_FRACTION * reference]
        far = [p for p in moved if p["nnstd_final"] >= FAR_FRACTION * reference]
        if not similar or len(moved) < len(similar):
            verdict = INCONCLUSIVE
        else:
            verdict = HELD if len(far) == len(similar) else NOT_HELD
        findings.claim2.append(
            {
                "dataset": ds,
                "epsilon": eps,
                "pairs": len(group_pairs),
                "similar_accuracy_pairs": len(similar),
                "random_reference": reference,
                "mean_final_nnstd_similar": statistics.fmean(p["nnstd_final"] for p in similar) if similar else None,
                "mean_moved": statistics.fmean(findings.evolution[s.run_id][-1] for s in runs),
                "degree_corr_initial": statistics.fmean(p["degree_corr_initial"] for p in group_pairs),
                "degree_corr_final": statistics.fmean(p["degree_corr_final"] for p in group_pairs),
                "verdict": verdict,
            }
        )


# --- Figure 4 --------------------------------------------------------------------------------------


def _off_diagonal_mean(m: np.ndarray) -> float:
    n = m.shape[0]
    return float(m[~np.eye(n, dtype=bool)].mean()) if n > 1 else float("nan")


def random_reference(scale, sizes: list[int], workers: int | None = None) -> dict[int, float]:
    """Mean NNSTD per layer among independent Erdős–Rényi topologies of Figure 4's size and density."""
    import scipy.sparse as sp
    import torch

    from sparsetopo.analysis.nnstd_parallel import nnstd_matrix
    from sparsetopo.trainer.sparse import random_mask

    gen = torch.Generator().manual_seed(RANDOM_REFERENCE_SEED)
    nets = []
    for _ in range(scale.fig4_count):
        layers = []
        for k in range(len(sizes) - 1):
            n_in, n_out = sizes[k], sizes[k + 1]
            if k == len(sizes) - 2:  # the dense output layer
                layers.append(sp.csr_matrix(np.ones((n_in, n_out), np.float32)))
            else:
                mask = random_mask(n_out, n_in, max(1, round(scale.fig4_density * n_in * n_out)), gen)
                layers.append(sp.csr_matrix(mask.numpy().T.astype(np.float32)))
        nets.append(layers)
    result = nnstd_matrix(nets, workers=workers)
    return {k: _off_diagonal_mean(result["layers"][:, :, k]) for k in range(len(sizes) - 1)}


def figure4(store, scale, specs, findings: Findings, figures_dir: Path, workers: int | None = None) -> None:
    """NNSTD among the ten networks per layer at the paper's epochs, the random reference, survival of
    each network's epoch-0 connections, and the fingerprints the paper's published networks carry.

    The paper's epoch e is this project's step e + 1: its epoch_000 files are already after one epoch
    of training and one topology update. Step 0 (the untrained topologies) is reported as "initial".
    """
    from sparsetopo.analysis.figures import nnstd_heatmap
    from sparsetopo.analysis.nnstd_parallel import nnstd_matrix

    runs = sorted((s for s in specs if s.part == "figure4"), key=lambda s: s.fig4_index)
    labels = [f"t{s.fig4_index}" for s in runs]
    steps_of = [{x["step"]: x for x in store.list_snapshots(s.run_id)} for s in runs]
    common = set.intersection(*(set(v) for v in steps_of))
    wanted = [("initial", 0)] + [(e, e + 1) for e in scale.fig4_report]
    reported = [(e, step) for e, step in wanted if step in common]
    first_keys = {}
    out = {
        "epochs": scale.fig4_epochs,
        "layer_mean": {},
        "initial_layer_mean": {},
        "survival": {},
        "survival_nonzero": {},
        "weight_std": {},
        "connections": {},
        "nonzero_connections": {},
        "accuracy": {},
        "labels": labels,
    }
    for e, step in reported:
        nets = [store.read_snapshot(s.run_id, step).layers for s in runs]
        result = nnstd_matrix(nets, workers=workers)
        d, per_layer = result["distance"], result["layers"]
        for i, j in itertools.combinations(range(len(runs)), 2):
            # nnstd_matrix computed NNSTD(later, earlier): runs[j] played A
            store.write_nnstd(
                runs[j].run_id,
                step,
                runs[i].run_id,
                step,
                float(d[j, i]),
                [float(x) for x in per_layer[j, i]],
                "exact",
                purpose="figure4",
            )
        n_layers = per_layer.shape[2]
        means = {k: _off_diagonal_mean(per_layer[:, :, k]) for k in range(n_layers)}
        if e == "initial":
            out["initial_layer_mean"] = means
        else:
            for k, v in means.items():
                out["layer_mean"].setdefault(k, {})[e] = v
        if step == 1:
            first_keys = {i: [connection_keys(m) for m in net] for i, net in enumerate(nets)}
            first_nonzero = {i: [connection_keys(m, nonzero=True) for m in net] for i, net in enumerate(nets)}
        if e != "initial":
            for k in range(n_layers):
                if first_keys:
                    alive = [
                        np.isin(first_keys[i][k], connection_keys(net[k]), assume_unique=True).mean()
                        for i, net in enumerate(nets)
                    ]
                    out["survival"].setdefault(k, {})[e] = float(np.mean(alive))
                    alive_nz = [
                        np.isin(first_nonzero[i][k], connection_keys(net[k], nonzero=True), assume_unique=True).mean()
                        for i, net in enumerate(nets)
                    ]
                    out["survival_nonzero"].setdefault(k, {})[e] = float(np.mean(alive_nz))
                out["weight_std"].setdefault(k, {})[e] = float(np.mean([net[k].data.std() for net in nets]))
                out["connections"].setdefault(k, {})[e] = float(np.mean([net[k].nnz for net in nets]))
                out["nonzero_connections"].setdefault(k, {})[e] = float(
                    np.mean([int((net[k].data != 0).sum()) for net in nets])
                )
            out["accuracy"][e] = float(np.mean([steps_of[i][step]["test_accuracy"] for i in range(len(runs))]))
        name = "initial" if e == "initial" else f"epoch_{e:03d}"
        path = figures_dir / f"fig4_layer0_{name}.png"
        title = "initial topologies" if e == "initial" else f"epoch {e}"
        _save(
            nnstd_heatmap(per_layer[:, :, 0], labels, title=f"NNSTD, layer 0, among the ten: {title}"), path, findings
        )
    sizes = list(store.get_run(runs[0].run_id)["architecture"])
    out["random_reference"] = random_reference(scale, sizes, workers)
    out["final_accuracies"] = [steps_of[i][max(common)]["test_accuracy"] for i in range(len(runs))]
    findings.fig4 = out

    last_wanted = wanted[-1][0]
    initial0 = out["initial_layer_mean"].get(0)
    ref0 = out["random_reference"][0]
    last_epoch = max((e for e, _ in reported if e != "initial"), default=None)
    final0 = out["layer_mean"].get(0, {}).get(last_epoch) if last_epoch is not None else None
    progress = None if final0 is None or initial0 is None else (final0 - initial0) / (ref0 - initial0)
    if progress is None or last_epoch != last_wanted:
        verdict = INCONCLUSIVE
    else:
        verdict = HELD if progress >= FIG4_PROGRESS else NOT_HELD
    findings.claim3 = {
        "initial_mean": initial0,
        "final_mean": final0,
        "final_epoch": last_epoch,
        "random_reference": ref0,
        "progress": progress,
        "verdict": verdict,
    }


def accuracy_figure(store, specs, figures_dir: Path, findings: Findings) -> None:
    from sparsetopo.analysis.figures import Panel

    perf = [s for s in specs if s.part == "performance"]
    if perf:
        seed = perf[0].seed
        panels = []
        for ds in dict.fromkeys(s.dataset for s in perf):
            series = {}
            for s in perf:
                if s.dataset == ds and s.seed == seed:
                    snaps = store.list_snapshots(s.run_id)[1:]
                    label = s.method if s.epsilon is None else f"{s.method} ε={s.epsilon:g}"
                    series[label] = ([x["epoch"] for x in snaps], [x["test_accuracy"] for x in snaps])
            panels.append(
                Panel(series, title=f"{ds}: test accuracy (seed {seed})", xlabel="epoch", ylabel="test accuracy")
            )
        _save_curves(panels, figures_dir / "accuracy.png", findings)

        moved = {
            run_id.replace("paper-", ""): (list(range(len(series))), series)
            for run_id, series in findings.evolution.items()
        }
        title = "SET: distance from the initial topology"
        panel = Panel(moved, title, "evolution step (epoch)", "NNSTD to the initial topology", ylim=(0, 1))
        _save_curves([panel], figures_dir / "evolution.png", findings)

    if findings.fig4.get("layer_mean"):
        means = {f"layer {k}": (sorted(v), [v[e] for e in sorted(v)]) for k, v in findings.fig4["layer_mean"].items()}
        reference = {f"layer {k}": findings.fig4["random_reference"][k] for k in findings.fig4["layer_mean"]}
        title = "Figure 4: similar starts against\nindependent random topologies (dotted)"
        panel = Panel(means, title, "epoch (the paper's numbering)", "mean NNSTD among the ten", (0, 1), reference)
        _save_curves([panel], figures_dir / "fig4_curves.png", findings)


def _save(fig, path: Path, findings: Findings) -> None:
    from sparsetopo.analysis.figures import save_png

    findings.figures.append(str(save_png(fig, path)))


def _save_curves(panels, path: Path, findings: Findings) -> None:
    from sparsetopo.analysis.figures import line_panels

    _save(line_panels(panels, cols=len(panels), panel_size=(6, 4)), path, findings)


def analyse(store, state, log, workers: int | None = None) -> Findings:
    figures_dir = state.out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    findings = Findings()
    if any(s.part == "performance" for s in state.specs):
        log("performance tables")
        findings.performance, findings.claim1 = performance(store, state.specs, state.scale.epochs)
        log("NNSTD: evolution of every SET run and pairs of independent runs")
        evolution_and_pairs(store, state.specs, findings, log, workers)
    if any(s.part == "figure4" for s in state.specs):
        log("NNSTD: Figure 4")
        figure4(store, state.scale, state.specs, findings, figures_dir, workers)
    accuracy_figure(store, state.specs, figures_dir, findings)
    return findings


def verdicts(findings: Findings) -> list[str]:
    return (
        [v["verdict"] for v in findings.claim1]
        + [c["verdict"] for c in findings.claim2]
        + ([findings.claim3["verdict"]] if findings.claim3 else [])
    )
