"""sparsetopo.analysis.figures: each kind of figure from plain numbers, saved as a file or as bytes to embed."""

from __future__ import annotations

import gc
import sys
import weakref

import numpy as np
import pytest
from matplotlib.figure import Figure

from sparsetopo.analysis import figures

PNG = b"\x89PNG\r\n\x1a\n"
CHURN = [
    {"step": s, "layer": k, "appeared": 10 * (k + 1) if s else 50, "vanished": 0 if s == 0 else 3 + s}
    for s in range(4)
    for k in range(2)
]


def _every_kind() -> dict[str, Figure]:
    rng = np.random.default_rng(0)
    return {
        "nnstd_heatmap": figures.nnstd_heatmap(np.array([[0, 0.4, np.nan], [0.4, 0, 0.7], [np.nan, 0.7, 0]]), "abc"),
        "nnstd_evolution": figures.nnstd_evolution([1, 2, 3], [0.1, 0.2, 0.3], [[0.1, 0.1], [0.2, 0.2], [0.3]]),
        "churn": figures.churn(CHURN),
        "degree_distributions": figures.degree_distributions(
            {s: [rng.integers(0, 9, 20), rng.integers(0, 5, 4)] for s in (0, 3)}
        ),
        "input_heatmaps": figures.input_heatmaps(rng.integers(0, 5, 16), rng.integers(0, 5, 16), (0, 3)),
        "accuracy_density": figures.accuracy_density(
            [0, 1, 2], {"test_accuracy": [None, 0.5, 0.7]}, [0.1, 0.1, None], [10, 10, 11]
        ),
        "line_panels": figures.line_panels(
            [
                figures.Panel({"a": ([0, 1, 2], [0.1, None, 0.3]), "b": ([0, 2], [0.2, 0.1])}, references={"a": 0.5}),
                figures.Panel({}, title="empty"),
            ]
        ),
    }


def test_every_kind_is_a_figure_that_saves_and_embeds_as_png(tmp_path):
    for name, fig in _every_kind().items():
        assert isinstance(fig, Figure), name
        path = figures.save_png(fig, tmp_path / "deeper" / f"{name}.png")
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000, name
    for name, fig in _every_kind().items():
        data = figures.png_bytes(fig)
        assert data[:8] == PNG and len(data) > 3000, name


def test_figures_are_not_kept_alive_after_embedding():
    fig = figures.churn(CHURN)
    figures.png_bytes(fig)
    ref = weakref.ref(fig)
    del fig
    gc.collect()
    assert ref() is None
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []


def test_a_pyplot_figure_is_closed_once_saved(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    figures.save_png(fig, tmp_path / "p.png")
    assert plt.get_fignums() == []


def test_what_cannot_be_drawn():
    with pytest.raises(ValueError, match="do not form a square image"):
        figures.input_heatmaps(np.zeros(10), np.zeros(10), (0, 1))
    assert figures.image_side(784) == 28 and figures.image_side(10) is None and figures.image_side(1) is None
    one_step = figures.churn([{"step": 0, "layer": 0, "appeared": 5, "vanished": 0}])
    assert "churn needs at least two steps" in [t.get_text() for t in one_step.axes[0].texts]
    no_accuracy = figures.accuracy_density([0, 1], {}, [0.2, 0.2])
    assert "no accuracy recorded" in [t.get_text() for t in no_accuracy.axes[0].texts]


def test_the_heatmap_keeps_the_papers_fixed_scale_and_marks_missing_pairs():
    fig = figures.nnstd_heatmap(np.array([[0.0, 0.2], [0.2, 0.0]]), ["x", "y"], title="t")
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["0.00", "0.20", "0.20", "0.00"]
    gaps = figures.nnstd_heatmap(np.array([[0.0, np.nan], [np.nan, 0.0]]), ["x", "y"])
    assert [t.get_text() for t in gaps.axes[0].texts] == ["0.00", "0.00"]
