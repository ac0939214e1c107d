"""Training runs the backend tests compare."""

from __future__ import annotations

from typing import Any

from sparsetopo.trainer.data import load_dataset
from sparsetopo.trainer.loop import TrainConfig, train


def digits_runs_on_both_backends(**config) -> dict[str, list]:
    """The snapshots of one digits run (128-128 hidden, 20 epochs unless given) per backend."""
    data = load_dataset("digits")
    base: dict[str, Any] = dict(
        dataset="digits", hidden=(128, 128), epochs=20, epsilon=3.0, seed=3, threads=1, delta_t=20, lr=0.05
    )
    runs = {}
    for backend in ("masked", "sparse"):
        snaps: list = []
        train(TrainConfig(**(base | config), backend=backend), data, snaps.append, "r")
        runs[backend] = snaps
    return runs
