"""Runs in the store for report tests: two SET-like runs with statistics and a stored NNSTD, one static run."""

from __future__ import annotations

from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.synthetic import synthetic_run

SIZES = [16, 10, 4]


def populate(store, with_stats: bool = True) -> list[str]:
    runs = [("set-a", "set", 0.3, 1), ("set-b", "set", 0.3, 2), ("static-c", "static", 0.0, 3)]
    for run_id, method, churn, seed in runs:
        store.create_run(
            RunInfo(
                run_id,
                SIZES,
                method=method,
                dataset="synthetic",
                epsilon=2.0,
                seed=seed,
                config={"learning_rate": 0.01},
            )
        )
        for snap in synthetic_run(run_id, SIZES, 0.35, churn, 5, seed=seed):
            snap.metrics["train_accuracy"] = min(1.0, snap.metrics["test_accuracy"] + 0.05)
            store.write_snapshot(snap)
        store.set_run_status(run_id, "completed")
    if with_stats:
        from sparsetopo.statistics import compute_run_statistics

        compute_run_statistics(store, "set-a")
    store.write_nnstd("set-a", 0, "set-a", 5, 0.123, [0.1, 0.146], "exact", purpose="evolution-initial")
    return [r[0] for r in runs]
