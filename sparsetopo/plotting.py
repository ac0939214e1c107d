"""`plot`: PNG figures of how one run's wiring evolved, written into a directory."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

DEGREE_STEPS = 5  # snapshots shown in the degree-distribution figure


def plot_run(store, run: str, out: Path, progress) -> dict:
    """Churn, degree distributions, input-degree heatmaps (square inputs only), accuracy and density.

    Returns {"run", "files": [paths written], "skipped": {figure: why}}."""
    from .analysis import figures
    from .analysis.structure import binary_layers, in_degrees, out_degrees
    from .graphstore.evolution import ensure_evolution
    from .graphstore.queries import run_named

    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    store.get_run(run)
    snaps = store.list_snapshots(run)
    if not snaps:
        raise UsageError(f"run '{run}' has no snapshots yet; nothing to plot")
    steps = [s["step"] for s in snaps]
    with progress("summarising synapse lifetimes") as update:
        ensure_evolution(store, run, update)
    churn = run_named(store, "evolution", {"run_id": run})
    picked = sorted({steps[round(i * (len(steps) - 1) / max(1, DEGREE_STEPS - 1))] for i in range(DEGREE_STEPS)})
    in_deg, first_out, last_out = {}, None, None
    with progress("reading snapshots") as update:
        for i, step in enumerate(picked, start=1):
            adj = binary_layers(store.read_snapshot(run, step).layers)
            in_deg[step] = [in_degrees(a) for a in adj]
            if step == steps[0]:
                first_out = out_degrees(adj[0])
            if step == steps[-1]:
                last_out = out_degrees(adj[0])
            update(i, len(picked))
    assert first_out is not None and last_out is not None  # the first and last steps are always picked
    written, skipped = [], {}
    written.append(figures.save_png(figures.churn(churn), out / "churn.png"))
    written.append(figures.save_png(figures.degree_distributions(in_deg), out / "degree_distributions.png"))
    if figures.image_side(first_out.size):
        heatmaps = figures.input_heatmaps(first_out, last_out, (steps[0], steps[-1]))
        written.append(figures.save_png(heatmaps, out / "input_degree.png"))
    else:
        skipped["input_degree"] = f"{first_out.size} inputs are not a square image"
    accuracy_keys = sorted({k for s in snaps for k in s if "acc" in k.lower() and not k.startswith("stat_")})
    accuracy = {k: [s.get(k) for s in snaps] for k in accuracy_keys}
    curves = figures.accuracy_density(steps, accuracy, [s["density"] for s in snaps])
    written.append(figures.save_png(curves, out / "accuracy_density.png"))
    return {"run": run, "files": [str(p) for p in written], "skipped": skipped}
