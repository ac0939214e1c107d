"""Every figure sparsetopo draws, each kind by one function that returns a matplotlib Figure.

The functions take plain numbers (no database, no files). Callers save a figure as a PNG file
(`save_png`: `sparsetopo plot`, `nnstd matrix|evolution`, the experiment) or embed its bytes
(`png_bytes`: the HTML report). Figures are made with matplotlib's object API, not pyplot: no
display or interactive backend is involved (PNG output is rendered by Agg), and no global
registry keeps a figure alive, so a long report frees each one as soon as it is embedded.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

FILE_DPI = 110
EMBED_DPI = 90  # the report shows figures at page width; its files stay small


def save_png(fig: Figure, path: str | Path, dpi: int = FILE_DPI) -> Path:
    """Write the figure as a PNG file (parent directories created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    _release(fig)
    return path


def png_bytes(fig: Figure, dpi: int = EMBED_DPI) -> bytes:
    """The figure as PNG bytes, to embed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _release(fig)
    return buf.getvalue()


def _release(fig: Figure) -> None:
    # A figure made here is referenced by nobody else; one a caller made with pyplot would stay
    # registered there until closed.
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _integer_steps(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _values(values: Sequence[float | None]) -> np.ndarray:
    """float64, None as NaN (a gap in the line)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")


# -- NNSTD ---------------------------------------------------------------------------------------


def nnstd_heatmap(
    distance: np.ndarray | Sequence[Sequence[float]], labels: Sequence[str], title: str = "NNSTD"
) -> Figure:
    """Pairwise NNSTD like the paper's Figure 4: fixed 0-1 colour scale, labelled axes, colour bar.

    NaN marks a pair without a value (grey).
    """
    distance = np.asarray(distance, dtype=float)
    n = len(labels)
    side = max(4.0, 0.45 * n + 2.0)
    fig = _figure(side + 1.0, side)
    ax = fig.subplots()
    cmap = colormaps["gnuplot"].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(distance), interpolation="none", cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(labels), rotation=90)
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("network")
    ax.set_ylabel("network")
    ax.set_title(title)
    if n <= 12:  # values are readable only on small matrices
        for i in range(n):
            for j in range(n):
                if not np.isnan(distance[i, j]):
                    colour = "black" if distance[i, j] > 0.6 else "white"
                    ax.text(j, i, f"{distance[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, shrink=0.85, label="NNSTD (0 same, 1 disjoint)")
    return fig


def nnstd_evolution(
    steps: Sequence[int],
    distance: Sequence[float],
    layers: Sequence[Sequence[float]],
    title: str = "NNSTD over training",
    ylabel: str = "NNSTD",
) -> Figure:
    """Network distance (thick) and per-layer distances (thin) against the evolution step.

    `layers[i]` are the layer distances at `steps[i]`; a step may have fewer layers than another.
    """
    fig = _figure(8.0, 3.6)
    ax = fig.subplots()
    for k in range(max((len(x) for x in layers), default=0)):
        pts = [(s, x[k]) for s, x in zip(steps, layers) if len(x) > k]
        ax.plot(*zip(*pts), linewidth=1, alpha=0.8, marker=".", label=f"layer {k}")
    ax.plot(steps, distance, color="black", linewidth=2.5, marker="o", markersize=3, label="network")
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _integer_steps(ax)
    return fig


# -- wiring over the steps of a run ---------------------------------------------------------------


def churn(rows: Sequence[Mapping]) -> Figure:
    """Appeared and vanished synapses per step, one line per weight layer.

    `rows` have step, layer, appeared and vanished. The first step is left out: everything
    'appears' there and would flatten the scale.
    """
    fig = _figure(10.4, 3.6)
    ax_a, ax_v = fig.subplots(1, 2, sharey=True)
    first = min((r["step"] for r in rows), default=None)
    drawn = False
    for k in sorted({r["layer"] for r in rows}):
        pts = sorted(
            (r["step"], r["appeared"] or 0, r["vanished"] or 0) for r in rows if r["layer"] == k and r["step"] != first
        )
        if pts:
            steps, app, van = zip(*pts)
            ax_a.plot(steps, app, marker=".", label=f"layer {k}")
            ax_v.plot(steps, van, marker=".", label=f"layer {k}")
            drawn = True
    for ax, what in ((ax_a, "appeared"), (ax_v, "vanished")):
        ax.set_xlabel("step")
        ax.set_ylabel(f"synapses {what}")
        ax.set_title(f"synapses {what} per step")
        ax.grid(alpha=0.3)
        _integer_steps(ax)
    if drawn:
        ax_a.legend(fontsize=8)
    else:
        _note(ax_a, "churn needs at least two steps")
    return fig


def degree_distributions(in_degrees: Mapping[int, Sequence[np.ndarray]]) -> Figure:
    """In-degree distribution of each non-input neuron layer at several steps.

    `in_degrees[step][k]` are the in-degrees of the neurons fed by weight layer k.
    """
    steps = sorted(in_degrees)
    n_layers = len(in_degrees[steps[0]])
    cols = min(n_layers, 3)
    rows = math.ceil(n_layers / cols)
    fig = _figure(4.5 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    cmap = colormaps["viridis"]
    for k in range(n_layers):
        ax = axes[k // cols][k % cols]
        top = max(int(np.max(in_degrees[s][k])) if len(in_degrees[s][k]) else 0 for s in steps)
        bins = np.arange(top + 2) - 0.5 if top < 60 else 40
        for i, s in enumerate(steps):
            colour = cmap(i / max(1, len(steps) - 1))
            ax.hist(in_degrees[s][k], bins=bins, histtype="step", color=colour, label=f"step {s}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"in-degree of neuron layer {k + 1}")
        ax.set_ylabel("neurons")
        ax.set_title(f"weight layer {k}")
    for j in range(n_layers, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize="small")
    return fig


def image_side(n_inputs: int) -> int | None:
    """The side of a square image with that many pixels (28 for MNIST), else None."""
    side = math.isqrt(n_inputs)
    return side if side * side == n_inputs and side > 1 else None


def input_heatmaps(first: np.ndarray, last: np.ndarray, steps: tuple[int, int]) -> Figure:
    """Out-degree of each input pixel at the first and the last step, as square images."""
    side = image_side(first.size)
    if side is None:
        raise ValueError(f"{first.size} inputs do not form a square image")
    vmax = max(int(first.max(initial=0)), int(last.max(initial=0)), 1)
    fig = _figure(9.0, 4.2)
    axes = fig.subplots(1, 2)
    for ax, deg, step in zip(axes, (first, last), steps):
        image = ax.imshow(deg.reshape(side, side), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"input degree at step {step}")
        ax.set_xlabel("pixel column")
        ax.set_ylabel("pixel row")
    fig.colorbar(image, ax=list(axes), label="connections to the first hidden layer", shrink=0.85)
    return fig


def accuracy_density(
    steps: Sequence[int],
    accuracy: Mapping[str, Sequence[float | None]],
    density: Sequence[float | None],
    synapses: Sequence[float | None] | None = None,
) -> Figure:
    """Accuracy metrics (left) and network density (right, with the synapse count when given) per step."""
    fig = _figure(10.4, 3.6)
    ax_acc, ax_den = fig.subplots(1, 2)
    drawn = False
    for name, values in accuracy.items():
        pts = [(s, v) for s, v in zip(steps, values) if v is not None]
        if pts:
            ax_acc.plot(*zip(*pts), marker=".", label=name)
            drawn = True
    ax_acc.set_title("accuracy")
    ax_acc.set_ylabel("accuracy")
    if drawn:
        ax_acc.legend(fontsize=8)
    else:
        _note(ax_acc, "no accuracy recorded")
    ax_den.plot(steps, _values(density), marker=".", color="tab:green", label="density")
    ax_den.set_title("density and synapses" if synapses is not None else "density")
    ax_den.set_ylabel("density (synapses / possible)", color="tab:green")
    if synapses is not None:
        twin = ax_den.twinx()
        twin.plot(steps, _values(synapses), color="tab:purple", linestyle="--", label="synapses")
        twin.set_ylabel("synapses", color="tab:purple")
    for ax in (ax_acc, ax_den):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        _integer_steps(ax)
    return fig


# -- labelled curves: statistics over time, comparisons of runs, the experiment's curves ---------


@dataclass
class Panel:
    """One axes of `line_panels`: labelled series of (x, y) points; a y of None is skipped."""

    series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]]
    title: str = ""
    xlabel: str = "step"
    ylabel: str = ""
    ylim: tuple[float, float] | None = None
    references: Mapping[str, float] = field(default_factory=dict)  # label -> y: a dotted line in its colour
    legend: bool = True
    integer_x: bool = True  # steps and epochs


def line_panels(panels: Sequence[Panel], cols: int = 3, panel_size: tuple[float, float] = (5.0, 3.4)) -> Figure:
    """A grid of line charts, up to `cols` per row."""
    cols = max(1, min(cols, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig = _figure(panel_size[0] * cols, panel_size[1] * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    small = panel_size[1] < 3
    for ax, panel in zip(axes, panels):
        drawn = False
        for label, (xs, ys) in panel.series.items():
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if not pts:
                continue
            (line,) = ax.plot(*zip(*pts), marker=".", label=label)
            drawn = True
            if label in panel.references:
                ax.axhline(panel.references[label], color=line.get_color(), linestyle=":", linewidth=1)
        ax.set_title(panel.title, **({"fontsize": 9} if small else {}))
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        if panel.integer_x:
            _integer_steps(ax)
        if small:
            ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if panel.legend and drawn:
            ax.legend(fontsize=7 if small else 8)
        elif not drawn:
            _note(ax, "no values")
    for ax in axes[len(panels) :]:
        ax.axis("off")
    return fig
