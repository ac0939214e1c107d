"""Pictures of NNSTD results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_distance_heatmap(distance: np.ndarray, labels: Sequence[str], out: str | Path, title: str = "NNSTD") -> Path:
    """A heatmap like the paper's Figure 4: fixed 0-1 colour scale, labelled axes, colour bar."""
    plt = _pyplot()
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    distance = np.asarray(distance, dtype=float)
    n = len(labels)
    side = max(4.0, 0.45 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(distance, interpolation="none", cmap="gnuplot", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(labels), rotation=90)
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("network")
    ax.set_ylabel("network")
    ax.set_title(title)
    if n <= 12:  # values are readable only on small matrices
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{distance[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if distance[i, j] > 0.6 else "white",
                )
    cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.08)
    fig.colorbar(image, cax=cax, label="NNSTD (0 same, 1 disjoint)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def plot_evolution(
    steps: Sequence[int],
    distance: Sequence[float],
    layers: Sequence[Sequence[float]],
    out: str | Path,
    title: str = "NNSTD over training",
) -> Path:
    """Network distance (thick) and per-layer distances (thin) against the evolution step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    layers = np.asarray(layers, dtype=float).reshape(len(steps), -1) if len(steps) else np.zeros((0, 0))
    for k in range(layers.shape[1]):
        ax.plot(steps, layers[:, k], linewidth=1, alpha=0.7, label=f"layer {k}")
    ax.plot(steps, distance, color="black", linewidth=2.5, marker="o", markersize=3, label="network")
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("NNSTD")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out
