"""PNG figures of a run's evolution (matplotlib, Agg backend: no display needed).

Each function takes plain numbers and writes one file; none reads a database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_churn(rows: Sequence[Mapping], path: Path) -> Path:
    """Appeared and vanished synapses per step, one line per weight layer (first step left out:
    everything 'appears' there and would flatten the scale)."""
    plt = _pyplot()
    layers = sorted({r["layer"] for r in rows})
    first = min(r["step"] for r in rows)
    fig, (ax_a, ax_v) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for k in layers:
        pts = sorted((r["step"], r["appeared"], r["vanished"]) for r in rows if r["layer"] == k and r["step"] != first)
        if not pts:
            continue
        steps, app, van = zip(*pts)
        ax_a.plot(steps, app, marker=".", label=f"layer {k}")
        ax_v.plot(steps, van, marker=".", label=f"layer {k}")
    for ax, what in ((ax_a, "appeared"), (ax_v, "vanished")):
        ax.set_xlabel("step")
        ax.set_ylabel(f"synapses {what}")
        ax.set_title(f"synapses {what} per step")
        ax.grid(alpha=0.3)
    ax_a.legend()
    return _save(fig, path)


def plot_degree_distributions(in_degrees: Mapping[int, Sequence[np.ndarray]], path: Path) -> Path:
    """In-degree distribution of each non-input neuron layer at several steps.

    `in_degrees[step][k]` are the in-degrees of the neurons fed by weight layer k.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    steps = sorted(in_degrees)
    n_layers = len(in_degrees[steps[0]])
    cols = min(n_layers, 3)
    rows_ = math.ceil(n_layers / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.5 * cols, 3.6 * rows_), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for k in range(n_layers):
        ax = axes[k // cols][k % cols]
        top = max(int(np.max(in_degrees[s][k])) if len(in_degrees[s][k]) else 0 for s in steps)
        bins = np.arange(top + 2) - 0.5 if top < 60 else 40
        for i, s in enumerate(steps):
            ax.hist(
                in_degrees[s][k], bins=bins, histtype="step", color=cmap(i / max(1, len(steps) - 1)), label=f"step {s}"
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"in-degree of neuron layer {k + 1}")
        ax.set_ylabel("neurons")
        ax.set_title(f"weight layer {k}")
    for j in range(n_layers, rows_ * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize="small")
    return _save(fig, path)


def image_side(n_inputs: int) -> int | None:
    """The side of a square image with that many pixels (28 for MNIST), else None."""
    side = math.isqrt(n_inputs)
    return side if side * side == n_inputs and side > 1 else None


def plot_input_heatmaps(first: np.ndarray, last: np.ndarray, steps: tuple[int, int], path: Path) -> Path:
    """Out-degree of each input pixel at the first and the last step, as square images."""
    plt = _pyplot()
    side = image_side(first.size)
    if side is None:
        raise ValueError(f"{first.size} inputs do not form a square image")
    vmax = max(int(first.max(initial=0)), int(last.max(initial=0)), 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, deg, step in zip(axes, (first, last), steps):
        im = ax.imshow(deg.reshape(side, side), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"input degree at step {step}")
        ax.set_xlabel("pixel column")
        ax.set_ylabel("pixel row")
    fig.colorbar(im, ax=list(axes), label="connections to the first hidden layer", shrink=0.85)
    return _save(fig, path, tight=False)  # tight_layout cannot place a colorbar shared by two axes


def plot_curves(
    steps: Sequence[int], accuracy: Mapping[str, Sequence[float | None]], density: Sequence[float], path: Path
) -> Path:
    """Accuracy metrics (left) and network density (right) against the step."""
    plt = _pyplot()
    fig, (ax_acc, ax_den) = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in accuracy.items():
        pts = [(s, v) for s, v in zip(steps, values) if v is not None]
        if pts:
            ax_acc.plot(*zip(*pts), marker=".", label=name)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    ax_acc.grid(alpha=0.3)
    if accuracy:
        ax_acc.legend()
    else:
        ax_acc.text(0.5, 0.5, "no accuracy recorded", ha="center", va="center", transform=ax_acc.transAxes)
    ax_den.plot(steps, density, marker=".", color="tab:green")
    ax_den.set_xlabel("step")
    ax_den.set_ylabel("density (synapses / possible)")
    ax_den.set_title("density")
    ax_den.grid(alpha=0.3)
    return _save(fig, path)
