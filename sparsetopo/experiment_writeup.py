"""results.md, results.json and report.html of `sparsetopo experiment paper`, from its Findings."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TypedDict

from . import experiment_results as R


class _Published(TypedDict):
    survival: dict[int, tuple[float, float, float]]
    accuracy: dict[int, float]
    weight_std_layer0: dict[int, float]
    connections_layer0: dict[int, int]


# What the paper's published Figure-4 networks show (../shared/reference/set-fig4-networks.md, computed
# from Shiweiliuiiiiiii/Sparse_Topology_Distance topo/e5_s0_w*): survival of epoch-0 connections
# (layers 0, 1, 2) and mean test accuracy, by epoch.
PUBLISHED_FIG4: _Published = {
    "survival": {
        10: (0.747, 0.756, 0.711),
        50: (0.651, 0.714, 0.677),
        100: (0.597, 0.687, 0.658),
        190: (0.533, 0.645, 0.634),
    },
    "accuracy": {0: 0.1932, 10: 0.7817, 30: 0.8375, 50: 0.8519, 100: 0.8668, 150: 0.8704, 190: 0.8738},
    "weight_std_layer0": {0: 0.106, 10: 0.146, 50: 0.191, 100: 0.227, 190: 0.279},
    "connections_layer0": {0: 3771, 10: 3736, 50: 3705, 100: 3693, 190: 3686},
}


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _v(verdict: str) -> str:
    return f"**{verdict}**"


def _f(x, digits=3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def results_json(state, findings: R.Findings, sources: dict[str, str]) -> dict:
    s = state.scale
    out: dict = {"scale": s.name, "data_sources": sources}
    f4 = findings.fig4
    if f4:
        out["figure4"] = {
            "dataset": s.fig4_dataset,
            "epochs": s.fig4_epochs,
            "recipe": state.recipes["figure4"],
            "architecture": [int(x) for x in state_architecture(state, "figure4")],
            "density": s.fig4_density,
            "networks": s.fig4_count,
            "change": s.fig4_change,
            "seed": s.fig4_seed,
            "layer_mean": {str(k): {str(e): v for e, v in series.items()} for k, series in f4["layer_mean"].items()},
            "initial_layer_mean": {str(k): v for k, v in f4["initial_layer_mean"].items()},
            "random_reference": {str(k): v for k, v in f4["random_reference"].items()},
            "survival": {str(k): {str(e): v for e, v in series.items()} for k, series in f4["survival"].items()},
            "survival_nonzero": {
                str(k): {str(e): v for e, v in series.items()} for k, series in f4["survival_nonzero"].items()
            },
            "weight_std": {str(k): {str(e): v for e, v in series.items()} for k, series in f4["weight_std"].items()},
            "connections": {str(k): {str(e): v for e, v in series.items()} for k, series in f4["connections"].items()},
            "nonzero_connections": {
                str(k): {str(e): v for e, v in series.items()} for k, series in f4["nonzero_connections"].items()
            },
            "accuracy": {str(e): v for e, v in f4["accuracy"].items()},
            "final_accuracies": f4["final_accuracies"],
            "verdict": findings.claim3["verdict"],
            "progress_to_random": findings.claim3["progress"],
        }
    if findings.performance:
        out["finding1"] = [
            {
                "dataset": r["dataset"],
                "method": r["method"],
                "recipe": state.recipes[r["method"]],
                "epsilon": r["epsilon"],
                "epochs": r["epochs"],
                "seeds": r["seeds"],
                "parameters": r["parameters"],
                "final_acc_mean": r["final_mean"],
                "final_acc_std": r["final_std"],
                "best_acc_mean": r["best_mean"],
                "architecture": [int(x) for x in state_architecture(state, "performance")],
            }
            for r in findings.performance
        ]
        out["finding1_verdicts"] = findings.claim1
        out["finding2"] = findings.claim2
    return out


def state_architecture(state, part: str) -> list[int]:
    return state.architectures.get(part, [])


def _figure4_md(state, findings: R.Findings) -> list[str]:
    s, f4, c3 = state.scale, findings.fig4, findings.claim3
    arch = "-".join(map(str, state_architecture(state, "figure4")))
    epochs = sorted({e for series in f4["layer_mean"].values() for e in series})
    layers = sorted(f4["layer_mean"])
    lines = [
        "## Figure 4: similar initial topologies, trained with the same seed",
        "",
        f"{s.fig4_count} networks {arch} on {s.fig4_dataset}: one Erdős–Rényi topology at {100 * s.fig4_density:g} % "
        f"density in the hidden layers (output layer dense) and {s.fig4_count - 1} more, each changing "
        f"{100 * s.fig4_change:g} % of the previous one's connections; all trained with seed {s.fig4_seed} for "
        f"{s.fig4_epochs} epochs, SET recipe `{state.recipes['figure4']}`. Epochs are the paper's: its epoch e is the network after "
        "e + 1 epochs of training and topology updates (the published epoch_000 files are already trained once).",
        "",
        "Mean NNSTD among the ten, per layer (the paper's panels show layer 0); the random reference is the mean NNSTD "
        f"among {s.fig4_count} independent Erdős–Rényi topologies of the same size and density:",
        "",
        "| layer | initial | " + " | ".join(f"epoch {e}" for e in epochs) + " | random reference |",
        "|---|---|" + "---|" * len(epochs) + "---|",
    ]
    for k in layers:
        lines.append(
            f"| {k} | {_f(f4['initial_layer_mean'].get(k))} | "
            + " | ".join(_f(f4["layer_mean"][k].get(e)) for e in epochs)
            + f" | {_f(f4['random_reference'][k])} |"
        )
    lines += [
        "",
        "Fraction of each network's epoch-0 connections still alive (mean of the ten). `connections` counts "
        "every connection, those grown at weight 0 included; `nonzero` counts only connections with a nonzero "
        "weight, as the published files of nonzero weights show them, and is the one to hold against the "
        "published networks' (in brackets):",
        "",
        "| layer | counted | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
        "|---|---|" + "---|" * len(epochs),
    ]
    for k in sorted(f4["survival"]):
        if k >= 3:  # the dense output layer never changes
            continue
        lines.append(f"| {k} | connections | " + " | ".join(_f(f4["survival"][k].get(e)) for e in epochs) + " |")
        cells = []
        for e in epochs:
            pub = PUBLISHED_FIG4["survival"].get(e)
            cells.append(_f(f4["survival_nonzero"][k].get(e)) + (f" ({pub[k]:.3f})" if pub else ""))
        lines.append(f"| {k} | nonzero | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Fingerprints beside the published networks' (layer 0; accuracy: mean of the ten):",
        "",
        "| epoch | test accuracy | published | weight std | published | connections (nonzero) | published (nonzero files) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in epochs:
        conn = f4["connections"][0].get(e)
        nz = f4["nonzero_connections"][0].get(e)
        lines.append(
            f"| {e} | {_f(f4['accuracy'].get(e), 4)} | {_f(PUBLISHED_FIG4['accuracy'].get(e), 4)} "
            f"| {_f(f4['weight_std'][0].get(e))} | {_f(PUBLISHED_FIG4['weight_std_layer0'].get(e))} "
            f"| {conn:.0f} ({nz:.0f}) | {PUBLISHED_FIG4['connections_layer0'].get(e, '—')} |"
        )
    accs = f4["final_accuracies"]
    lines += [
        "",
        f"Final test accuracies of the ten: {min(accs) * 100:.2f}–{max(accs) * 100:.2f} % "
        "(the published seven: 87.1–87.6 %).",
        "",
        "Claim: similar initial topologies evolve into very different ones. Rule: the mean layer-0 NNSTD at the last "
        f"reported epoch covers at least {R.FIG4_PROGRESS:g} of the way from its initial value to the random "
        "reference (below that, the ten kept a shared core).",
        f"Measured: {_f(c3['initial_mean'])} initially, {_f(c3['final_mean'])} at epoch {c3['final_epoch']}, random "
        f"reference {_f(c3['random_reference'])}: progress {_f(c3['progress'], 2)} → {_v(c3['verdict'])}.",
        "",
    ]
    return lines


def _performance_md(state, findings: R.Findings) -> list[str]:
    s = state.scale
    arch = "-".join(map(str, state_architecture(state, "performance")))
    lines = [
        "## Finding 1: dense against static Erdős–Rényi against SET",
        "",
        f"{arch}, {s.epochs} epochs, seeds {list(s.seeds)}, ε ∈ {list(s.epsilons)}, batch 100; recipes: "
        + ", ".join(f"{m} `{state.recipes[m]}`" for m in ("dense", "static", "set") if m in state.recipes)
        + ".",
        "",
        "| data set | method | ε | parameters | final test acc. % (mean ± std) | best test acc. % (mean ± std) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in findings.performance:
        eps = "—" if r["epsilon"] is None else f"{r['epsilon']:g}"
        lines.append(
            f"| {r['dataset']} | {r['method']} | {eps} | {r['parameters']:,} | {_pct(r['final_mean'])} ± "
            f"{_pct(r['final_std'])} | {_pct(r['best_mean'])} ± {_pct(r['best_std'])} | {r['seeds']} |"
        )
    lines += [
        "",
        f"Claim: sparse networks can match or beat the dense one. Rule: the best sparse setting's mean final "
        f"accuracy is at least the dense mean − {100 * R.MATCH_TOLERANCE:g} points (held); otherwise did not hold if "
        f"every curve has flattened (the last fifth of training gained < {100 * R.FLAT_GAIN:g} points), else "
        "inconclusive at this budget.",
        "",
    ]
    for v in findings.claim1:
        lines.append(
            f"- {v['dataset']}: dense {_pct(v['dense'])} %, best static (ε={v['best_static_epsilon']:g}) "
            f"{_pct(v['best_static'])} %, best SET (ε={v['best_set_epsilon']:g}) {_pct(v['best_set'])} % → "
            f"{_v(v['verdict'])}."
        )
    lines += [
        "",
        "## Finding 2: independent runs, different topologies, similar accuracy",
        "",
        "| data set | ε | pairs (within 1 point) | NNSTD of their starts (random reference) | final NNSTD between runs "
        "| NNSTD of each run to its own start | input-degree correlation, start → end | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in findings.claim2:
        lines.append(
            f"| {c['dataset']} | {c['epsilon']:g} | {c['pairs']} ({c['similar_accuracy_pairs']}) "
            f"| {c['random_reference']:.3f} | {_f(c['mean_final_nnstd_similar'])} | {c['mean_moved']:.3f} "
            f"| {c['degree_corr_initial']:.2f} → {c['degree_corr_final']:.2f} | {_v(c['verdict'])} |"
        )
    lines += [
        "",
        "Claim: very different topologies reach similar accuracy. Rule: pairs within "
        f"{100 * R.SIMILAR_ACCURACY:g} point of accuracy moved from their own starts (NNSTD to start ≥ "
        f"{R.MOVED_FRACTION:g} × the random reference) and stayed as far apart as random topologies (final NNSTD ≥ "
        f"{R.FAR_FRACTION:g} × reference) → held; moved but came closer → did not hold; did not move that far → "
        "inconclusive at this budget. The input-degree correlation shows whether independent runs concentrate their "
        "connections on the same inputs, a shared structure NNSTD (which compares neurons' input sets) does not measure.",
        "",
    ]
    return lines


def results_markdown(state, findings: R.Findings, wall_seconds: float, sources: dict[str, str], command: str) -> str:
    lines = [
        f"# The paper's findings, measured (scale `{state.scale.name}`)",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {wall_seconds / 60:.1f} min on this machine ({len(state.trained)} runs trained, "
        f"{len(state.skipped)} already complete and skipped).  ",
        "Data: " + "; ".join(f"{k}: {v}" for k, v in sources.items()) + ".",
        "",
    ]
    if findings.fig4:
        lines += _figure4_md(state, findings)
    if findings.performance:
        lines += _performance_md(state, findings)
    lines += ["## Figures", ""]
    for f in findings.figures:
        lines.append(f"![{Path(f).name}](figures/{Path(f).name})")
    lines += [
        "",
        "Everything above is stored in the graph store: runs `paper-perf-*` and `paper-fig4-*`, their "
        "snapshots, and NNSTD relationships (property `purpose`: evolution-initial, independent-initial, "
        "independent-final, figure4; `a` and `b`: the snapshots that played NNSTD's A and B).",
        "",
    ]
    return "\n".join(lines)


def write_outputs(store, state, findings: R.Findings, wall_seconds: float, command: str, log) -> dict:
    from .report import render
    from .report_data import gather

    sources = {}
    for spec in state.specs:
        if spec.dataset not in sources:
            sources[spec.dataset] = str(store.get_run(spec.run_id).get("dataset_source", "unknown"))
    for part in ("performance", "figure4"):
        first = next((s for s in state.specs if s.part == part), None)
        if first is not None:
            run = store.get_run(first.run_id)
            state.architectures[part] = list(run["architecture"])
            if part == "figure4":
                state.recipes["figure4"] = run.get("recipe")
    for spec in state.specs:
        if spec.part == "performance" and spec.method not in state.recipes:
            state.recipes[spec.method] = store.get_run(spec.run_id).get("recipe")
    (state.out / "results.md").write_text(
        results_markdown(state, findings, wall_seconds, sources, command), encoding="utf-8"
    )
    (state.out / "results.json").write_text(
        json.dumps(results_json(state, findings, sources), indent=1) + "\n", encoding="utf-8"
    )
    # The report: one seed of every performance setting on the first data set, and Figure 4's networks.
    perf = [s for s in state.specs if s.part == "performance"]
    report_runs = [s.run_id for s in perf if s.seed == perf[0].seed and s.dataset == perf[0].dataset]
    report_runs += [s.run_id for s in state.specs if s.part == "figure4"]
    log(f"report over {len(report_runs)} runs")
    data = gather(store, report_runs, compute=True)
    (state.out / "report.html").write_text(render(data, command, time.time()), encoding="utf-8")
    return {
        "results": str(state.out / "results.md"),
        "json": str(state.out / "results.json"),
        "report": str(state.out / "report.html"),
    }
