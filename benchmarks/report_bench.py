"""How long `sparsetopo report` takes, and how big the file is, for two SET-like runs.

    .venv/bin/python benchmarks/report_bench.py            # 2 runs, 784-300-100-10, 20 steps, ~12,000 synapses
    .venv/bin/python benchmarks/report_bench.py --steps 5  # quick check

Runs are written with the store's own writer (graphstore.synthetic), structural
statistics with `sparsetopo stats`' function, then the report's data gathering
(with NNSTD off, sparse and exact: 12 evolution points per run plus the pair of
final snapshots) and the HTML rendering are timed separately. Uses a throw-away
Neo4j (or the server named by NEO4J_URI).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._server import benchmark_store
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.synthetic import synthetic_run
from sparsetopo.report import render
from sparsetopo.report_data import gather
from sparsetopo.statistics import compute_run_statistics

SIZES = [784, 300, 100, 10]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--density", type=float, default=0.05)
    args = ap.parse_args()
    with benchmark_store() as store:
        runs = ["bench-set-1", "bench-set-2"]
        t = time.perf_counter()
        for seed, run_id in enumerate(runs, start=1):
            store.create_run(RunInfo(run_id, SIZES, method="set", dataset="synthetic"))
            for snap in synthetic_run(run_id, SIZES, args.density, 0.3, args.steps, seed=seed, dense_last=True):
                store.write_snapshot(snap)
            store.set_run_status(run_id, "completed")
            compute_run_statistics(store, run_id)
        n = store.list_snapshots(runs[0])[-1]["n_synapses"]
        print(
            f"setup: 2 runs x {args.steps + 1} snapshots of {n} synapses ({SIZES}), stats stored: "
            f"{time.perf_counter() - t:.1f} s"
        )
        cases: list[tuple[str, dict[str, Any]]] = [
            ("no NNSTD", {"compute": False}),
            ("NNSTD sparse", {"method": "sparse"}),
            ("NNSTD exact", {"method": "exact"}),
        ]
        for label, kwargs in cases:
            t = time.perf_counter()
            data = gather(store, runs, **kwargs)
            t_gather = time.perf_counter() - t
            t = time.perf_counter()
            page = render(data, "sparsetopo report bench-set-1 bench-set-2")
            t_render = time.perf_counter() - t
            computed = sum(e["source"] == "computed" for r in data.runs for e in r.evolution) + len(data.pairs)
            print(
                f"{label:13s} gather {t_gather:6.2f} s ({computed} NNSTD computed)   render {t_render:5.2f} s   "
                f"html {len(page) / 1e6:.2f} MB"
            )


if __name__ == "__main__":
    main()
