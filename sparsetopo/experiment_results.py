"""The paper's findings, measured: tables, NNSTD, verdicts, results.md, figures and the report.

Verdict rules (stated in results.md next to each verdict):
1. Performance: for each data set, the best static configuration's mean final test
   accuracy is within 0.5 percentage points of the dense mean or above it ("match or beat").
2. Many winning tickets: for each (data set, ε) of SET, independent runs whose final
   test accuracies differ by at most 1 point have final topologies at least 90 % as far
   apart (NNSTD) as two independent random topologies of that setting are.
3. Figure 4: the mean NNSTD among the 10 networks at the last epoch is at least twice
   its value among the 10 initial topologies.
"""
from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from .experiment import scale_tag

MATCH_TOLERANCE = 0.005
SIMILAR_ACCURACY = 0.01
FAR_FRACTION = 0.9
FIG4_GROWTH = 2.0


@dataclass
class Findings:
    performance: list[dict] = field(default_factory=list)
    claim1: list[dict] = field(default_factory=list)
    evolution: dict[str, list[float]] = field(default_factory=dict)  # run_id -> NNSTD to step 0 per step
    pairs: list[dict] = field(default_factory=list)
    claim2: list[dict] = field(default_factory=list)
    fig4: dict[int, list[list[float]]] = field(default_factory=dict)  # epoch -> matrix
    fig4_labels: list[str] = field(default_factory=list)
    claim3: dict = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _accuracies(store, run_id: str) -> tuple[float, float, int]:
    snaps = store.list_snapshots(run_id)
    accs = [s.get("test_accuracy") for s in snaps[1:] if s.get("test_accuracy") is not None]
    return accs[-1], max(accs), snaps[0]["n_synapses"]


def performance(store, specs) -> tuple[list[dict], list[dict]]:
    groups: dict[tuple, list] = {}
    for s in specs:
        if s.part == "performance":
            groups.setdefault((s.dataset, s.method, s.epsilon), []).append(s.run_id)
    rows = []
    for (ds, method, eps), runs in groups.items():
        finals, bests, params = zip(*(_accuracies(store, r) for r in runs))
        fm, fs = _mean_std(list(finals))
        bm, bs = _mean_std(list(bests))
        rows.append({"dataset": ds, "method": method, "epsilon": eps, "seeds": len(runs), "parameters": params[0],
                     "final_mean": fm, "final_std": fs, "best_mean": bm, "best_std": bs})
    verdicts = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        dense = next(r for r in rows if r["dataset"] == ds and r["method"] == "dense")
        statics = [r for r in rows if r["dataset"] == ds and r["method"] == "static"]
        sets = [r for r in rows if r["dataset"] == ds and r["method"] == "set"]
        best_static = max(statics, key=lambda r: r["final_mean"])
        best_set = max(sets, key=lambda r: r["final_mean"])
        verdicts.append({
            "dataset": ds, "dense": dense["final_mean"], "best_static": best_static["final_mean"],
            "best_static_epsilon": best_static["epsilon"], "best_set": best_set["final_mean"],
            "best_set_epsilon": best_set["epsilon"],
            "held": best_static["final_mean"] >= dense["final_mean"] - MATCH_TOLERANCE,
        })
    return rows, verdicts


def evolution_and_pairs(store, specs, findings: Findings, log, workers: int | None = None) -> None:
    from analysis.nnstd import nnstd

    from .pipelines import nnstd_evolution

    set_runs = [s for s in specs if s.part == "performance" and s.method == "set"]
    ends = {}  # run_id -> (initial layers, final layers), each read once
    for s in set_runs:
        rows = nnstd_evolution(store, s.run_id, "initial", "exact", workers, purpose="evolution")
        findings.evolution[s.run_id] = [0.0] + [r["distance"] for r in rows]
        first, last = rows[0]["reference_step"], rows[-1]["step"]
        ends[s.run_id] = (first, last, store.read_snapshot(s.run_id, first).layers,
                          store.read_snapshot(s.run_id, last).layers)
    groups: dict[tuple, list] = {}
    for s in set_runs:
        groups.setdefault((s.dataset, s.epsilon), []).append(s)
    for (ds, eps), runs in groups.items():
        group_pairs = []
        for a, b in itertools.combinations(runs, 2):
            a0, a1, a_init, a_final = ends[a.run_id]
            b0, b1, b_init, b_final = ends[b.run_id]
            init, final = nnstd(a_init, b_init), nnstd(a_final, b_final)
            store.write_nnstd(a.run_id, a0, b.run_id, b0, init.distance, init.layers, "exact", purpose="independent-initial")
            store.write_nnstd(a.run_id, a1, b.run_id, b1, final.distance, final.layers, "exact", purpose="independent-final")
            acc_a, acc_b = _accuracies(store, a.run_id)[0], _accuracies(store, b.run_id)[0]
            group_pairs.append({"dataset": ds, "epsilon": eps, "a": a.run_id, "b": b.run_id,
                                "nnstd_initial": init.distance, "nnstd_final": final.distance,
                                "accuracy_a": acc_a, "accuracy_b": acc_b, "accuracy_gap": abs(acc_a - acc_b)})
        findings.pairs.extend(group_pairs)
        similar = [p for p in group_pairs if p["accuracy_gap"] <= SIMILAR_ACCURACY]
        reference = statistics.fmean(p["nnstd_initial"] for p in group_pairs)
        far = [p for p in similar if p["nnstd_final"] >= FAR_FRACTION * reference]
        findings.claim2.append({
            "dataset": ds, "epsilon": eps, "pairs": len(group_pairs), "similar_accuracy_pairs": len(similar),
            "random_reference": reference,
            "mean_final_nnstd_similar": statistics.fmean(p["nnstd_final"] for p in similar) if similar else None,
            "held": bool(similar) and len(far) == len(similar),
        })


def figure4(store, specs, findings: Findings, figures_dir: Path, workers: int | None = None) -> None:
    from analysis.heatmap import plot_distance_heatmap
    from analysis.nnstd_parallel import nnstd_matrix

    runs = sorted((s for s in specs if s.part == "figure4"), key=lambda s: s.fig4_index)
    findings.fig4_labels = [f"t{s.fig4_index}" for s in runs]
    steps_of = {s.run_id: [x["step"] for x in store.list_snapshots(s.run_id)] for s in runs}
    common = sorted(set.intersection(*(set(v) for v in steps_of.values())))
    for step in common:
        nets = [store.read_snapshot(s.run_id, step).layers for s in runs]
        result = nnstd_matrix(nets, workers=workers)
        d = result["distance"]
        for i, j in itertools.combinations(range(len(runs)), 2):
            store.write_nnstd(runs[i].run_id, step, runs[j].run_id, step, float(d[i, j]),
                              [float(x) for x in result["layers"][i, j]], "exact", purpose="figure4")
        findings.fig4[step] = d.tolist()
        path = figures_dir / f"fig4_step_{step:03d}.png"
        plot_distance_heatmap(d, findings.fig4_labels, path, title=f"NNSTD among the 10 SET networks, epoch {step}")
        findings.figures.append(str(path))
    n = len(runs)

    def off_mean(m):
        return statistics.fmean(m[i][j] for i in range(n) for j in range(n) if i != j)

    first, last = common[0], common[-1]
    findings.claim3 = {"initial_mean": off_mean(findings.fig4[first]), "final_mean": off_mean(findings.fig4[last]),
                       "final_epoch": last}
    findings.claim3["held"] = findings.claim3["final_mean"] >= FIG4_GROWTH * findings.claim3["initial_mean"]


def accuracy_figure(store, specs, figures_dir: Path, findings: Findings) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s.dataset for s in specs if s.part == "performance"))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for s in specs:
            if s.part != "performance" or s.dataset != ds or s.seed != specs[0].seed:
                continue
            snaps = store.list_snapshots(s.run_id)
            label = s.method if s.epsilon is None else f"{s.method} ε={s.epsilon:g}"
            ax.plot([x["epoch"] for x in snaps[1:]], [x["test_accuracy"] for x in snaps[1:]], marker="o", label=label)
        ax.set_title(f"{ds}: test accuracy (seed {specs[0].seed})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=8)
    _save(plt, fig, figures_dir / "accuracy.png", findings)

    fig, ax = plt.subplots(figsize=(6, 4))
    for run_id, series in findings.evolution.items():
        ax.plot(range(len(series)), series, label=run_id.replace("paper-", ""))
    ax.set_xlabel("evolution step (epoch)")
    ax.set_ylabel("NNSTD to the initial topology")
    ax.set_ylim(0, 1)
    ax.set_title("SET: distance from the initial topology")
    ax.legend(fontsize=6)
    _save(plt, fig, figures_dir / "evolution.png", findings)


def _save(plt, fig, path: Path, findings: Findings) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    findings.figures.append(str(path))


def analyse(store, state, log, workers: int | None = None) -> Findings:
    figures_dir = state.out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    findings = Findings()
    log("performance tables")
    findings.performance, findings.claim1 = performance(store, state.specs)
    log("NNSTD: evolution of every SET run and pairs of independent runs")
    evolution_and_pairs(store, state.specs, findings, log, workers)
    log("NNSTD: Figure 4 heatmaps")
    figure4(store, state.specs, findings, figures_dir, workers)
    accuracy_figure(store, state.specs, figures_dir, findings)
    return findings


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _yes(held: bool) -> str:
    return "**held**" if held else "**did not hold**"


def results_markdown(state, findings: Findings, wall_seconds: float, sources: dict[str, str], command: str,
                     architecture: str) -> str:
    s = state.scale
    lines = [
        f"# The paper's findings, measured ({s.name} scale)",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {wall_seconds / 60:.1f} min on this machine ({len(state.trained)} runs trained, "
        f"{len(state.skipped)} already complete and skipped).  ",
        f"Architecture: {architecture}, {s.epochs} epochs, seeds {list(s.seeds)}, "
        f"ε ∈ {list(s.epsilons)}, SET ζ = 0.3, SGD lr 0.01 momentum 0.9 weight decay 2e-4, batch 100.  ",
        "Data: " + "; ".join(f"{k}: {v}" for k, v in sources.items()) + ".",
        "",
        "## 1. Performance: dense vs static Erdős–Rényi vs SET",
        "",
        "| data set | method | ε | parameters | final test acc. % (mean ± std) | best test acc. % (mean ± std) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in findings.performance:
        eps = "—" if r["epsilon"] is None else f"{r['epsilon']:g}"
        lines.append(f"| {r['dataset']} | {r['method']} | {eps} | {r['parameters']:,} | {_pct(r['final_mean'])} ± {_pct(r['final_std'])} "
                     f"| {_pct(r['best_mean'])} ± {_pct(r['best_std'])} | {r['seeds']} |")
    lines += ["", f"Claim: sparse networks, even static ones, can match or beat the dense network. Rule: the best static "
              f"setting's mean final accuracy is at least the dense mean − {100 * MATCH_TOLERANCE:g} points.", ""]
    for v in findings.claim1:
        lines.append(f"- {v['dataset']}: dense {_pct(v['dense'])} %, best static (ε={v['best_static_epsilon']:g}) "
                     f"{_pct(v['best_static'])} %, best SET (ε={v['best_set_epsilon']:g}) {_pct(v['best_set'])} % → {_yes(v['held'])}.")
    lines += ["", "## 2. Topological evolution under SET", "",
              "NNSTD of each SET run's snapshot to its own initial topology, per epoch:", "",
              "| run | " + " | ".join(f"epoch {i}" for i in range(max(len(v) for v in findings.evolution.values()))) + " |",
              "|---|" + "---|" * max(len(v) for v in findings.evolution.values())]
    for run_id, series in findings.evolution.items():
        lines.append(f"| {run_id} | " + " | ".join(f"{x:.3f}" for x in series) + " |")
    lines += ["", "Independent runs of the same setting (different seeds):", "",
              "| data set | ε | run A | run B | NNSTD initial | NNSTD final | acc. A % | acc. B % |", "|---|---|---|---|---|---|---|---|"]
    for p in findings.pairs:
        lines.append(f"| {p['dataset']} | {p['epsilon']:g} | {p['a']} | {p['b']} | {p['nnstd_initial']:.3f} | {p['nnstd_final']:.3f} "
                     f"| {_pct(p['accuracy_a'])} | {_pct(p['accuracy_b'])} |")
    lines += ["", f"Claim: very different topologies reach similar performance (many winning tickets). Rule: pairs whose final "
              f"accuracies differ by ≤ {100 * SIMILAR_ACCURACY:g} point have final NNSTD ≥ {FAR_FRACTION:g} × the NNSTD of two "
              "independent random topologies of that setting (their initial topologies).", ""]
    for c in findings.claim2:
        mean = "—" if c["mean_final_nnstd_similar"] is None else f"{c['mean_final_nnstd_similar']:.3f}"
        lines.append(f"- {c['dataset']}, ε={c['epsilon']:g}: {c['similar_accuracy_pairs']} of {c['pairs']} pairs within "
                     f"{100 * SIMILAR_ACCURACY:g} point; their mean final NNSTD {mean} vs random reference "
                     f"{c['random_reference']:.3f} → {_yes(c['held'])}.")
    c3 = findings.claim3
    lines += ["", "## 3. Figure 4: similar initial topologies evolve into different ones", "",
              f"One initial topology at {100 * s.fig4_density:g} % density in the sparse layers, {s.fig4_count - 1} more each "
              f"changing {100 * s.fig4_change:g} % of the previous one's connections, all trained with SET on {s.datasets[0]}.", "",
              "| epoch | mean NNSTD among the networks | max |", "|---|---|---|"]
    n = len(findings.fig4_labels)
    for step, m in findings.fig4.items():
        off = [m[i][j] for i in range(n) for j in range(n) if i != j]
        lines.append(f"| {step} | {statistics.fmean(off):.3f} | {max(off):.3f} |")
    lines += ["", f"Claim: similar initial topologies evolve into very different ones. Rule: the mean NNSTD at the last epoch is "
              f"≥ {FIG4_GROWTH:g} × the initial one. Measured {c3['initial_mean']:.3f} → {c3['final_mean']:.3f} "
              f"at epoch {c3['final_epoch']} → {_yes(c3['held'])}.", "", "## Figures", ""]
    for f in findings.figures:
        name = Path(f).name
        lines.append(f"![{name}](figures/{name})")
    lines += ["", "Everything above is stored in the graph store: runs `paper-" + scale_tag(s) + "-*`, their snapshots, and NNSTD "
              "relationships (property `purpose`: evolution, independent-initial, independent-final, figure4).", ""]
    return "\n".join(lines)


def write_outputs(store, state, findings: Findings, wall_seconds: float, command: str, log) -> dict:
    from .report import render
    from .report_data import gather

    sources = {}
    for spec in state.specs:
        if spec.dataset not in sources:
            run = store.get_run(spec.run_id)
            sources[spec.dataset] = str(run.get("dataset_source", "unknown"))
    arch = "; ".join(f"{ds}: {'-'.join(map(str, store.get_run(next(x.run_id for x in state.specs if x.dataset == ds))['architecture']))}"
                     for ds in sources)
    md = results_markdown(state, findings, wall_seconds, sources, command, arch)
    (state.out / "results.md").write_text(md, encoding="utf-8")
    # The report: one seed of every performance setting on the first data set, and Figure 4's networks.
    first = state.specs[0]
    report_runs = [s.run_id for s in state.specs
                   if (s.part == "performance" and s.seed == first.seed and s.dataset == first.dataset) or s.part == "figure4"]
    log(f"report over {len(report_runs)} runs")
    data = gather(store, report_runs, compute=True)
    (state.out / "report.html").write_text(render(data, command, time.time()), encoding="utf-8")
    return {"results": str(state.out / "results.md"), "report": str(state.out / "report.html")}
