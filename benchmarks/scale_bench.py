"""NNSTD on the local process pool against Ray: `python benchmarks/scale_bench.py [--pairs N] [--quick]`.

1. The Figure-4 workload of benchmarks/nnstd_bench.py: 10 networks x 9 snapshots of
   784-784-784-784-10 at 0.6 %, all pairs within each snapshot (405 pairs, exact solver), on
   every core with the local executor and with Ray on a local instance (this machine): Ray's
   start-up, its first call (workers import the package and load the compiled solver) and a
   second call on warm workers, against the local pool (whose fork server starts every call).
2. Throughput per worker on a larger synthetic workload: the first N pairs (default 10,000) of
   the all-pairs matrix of SET-like networks of small layers (default 100-100-100-10 at 10 %,
   a few milliseconds a pair, so that it finishes in minutes on 2 cores), with 1 and with every
   worker, local and Ray.
Every Ray result is compared with the local executor's, bit for bit. Ray runs on a local
instance started here (RAY_ADDRESS is ignored; the cluster numbers of docs/scale.md come from
a real cluster). Results it gave: CHANGELOG.md and docs/scale.md.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.nnstd_bench import SHAPE, evolve, figure4_workload, network
from sparsetopo.analysis import lsap
from sparsetopo.analysis.executors import LocalExecutor
from sparsetopo.analysis.nnstd_parallel import default_workers, matrix_pairs, nnstd_pairs


def synthetic_workload(n_pairs: int, shape: Sequence[int], density: float, rng: np.random.Generator):
    n = 2
    while n * (n - 1) // 2 < n_pairs:
        n += 1
    # a few SET-like runs, so that pairs mix near (same run) and far (different runs) networks
    nets: list[list[sp.csr_matrix]] = []
    while len(nets) < n:
        net = network(shape, density, rng)
        for _ in range(20):
            nets.append(net)
            net = evolve(net, 0.3, rng)
    return nets[:n], matrix_pairs(n)[:n_pairs]


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def same(a, b) -> bool:
    return all(x.distance == y.distance and x.layers == y.layers for x, y in zip(a, b)) and len(a) == len(b)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs of the throughput workload")
    parser.add_argument("--shape", default="100,100,100,10", help="layer sizes of the throughput workload")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="skip the one-worker runs of part 2")
    args = parser.parse_args()
    import ray

    workers = default_workers()
    print(
        f"machine: {os.cpu_count()} cpu(s), {workers} usable, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; ray {ray.__version__}"
    )
    lsap.warm_up()
    local = LocalExecutor()
    rng = np.random.default_rng(0)
    nets, pairs = figure4_workload(rng)

    print(
        f"\n[1] Figure-4 workload: {len(pairs)} pairs of {'-'.join(map(str, SHAPE))} at 0.6 %, exact, {workers} workers"
    )
    t = time.process_time()
    nnstd_pairs(nets, pairs[:45], "exact", workers=1)
    cpu_pair = (time.process_time() - t) / 45
    print(
        f"    CPU per pair in this process: {cpu_pair * 1000:.1f} ms -> {cpu_pair * len(pairs) / workers:.2f} s ideal"
    )
    local_s, expected = timed(lambda: nnstd_pairs(nets, pairs, "exact", workers, executor=local))
    print(f"    local executor : {local_s:6.2f} s wall")

    from sparsetopo.ray_executor import RayExecutor

    env_address = os.environ.pop("RAY_ADDRESS", None)
    init_s, ex = timed(lambda: RayExecutor().__enter__())
    try:
        cold_s, cold = timed(lambda: nnstd_pairs(nets, pairs, "exact", workers, executor=ex))
        warm_s, warm = timed(lambda: nnstd_pairs(nets, pairs, "exact", workers, executor=ex))
        print(f"    ray, start a local instance: {init_s:6.2f} s")
        print(
            f"    ray, first call : {cold_s:6.2f} s wall ({cold_s - local_s:+.2f} s against local); "
            f"same bits as local: {same(cold, expected)}"
        )
        print(
            f"    ray, warm call  : {warm_s:6.2f} s wall ({warm_s - local_s:+.2f} s against local); "
            f"same bits as local: {same(warm, expected)}"
        )

        shape = [int(x) for x in args.shape.split(",")]
        nets, pairs = synthetic_workload(args.pairs, shape, args.density, rng)
        size_mb = len(pickle.dumps([[m.tocsc() for m in net] for net in nets], protocol=5)) / 1e6
        print(
            f"\n[2] throughput: {len(pairs)} pairs among {len(nets)} networks of {args.shape} at "
            f"{args.density:.0%}, exact ({size_mb:.1f} MB of masks)"
        )
        t = time.process_time()
        nnstd_pairs(nets, pairs[:300], "exact", workers=1)
        cpu_pair = (time.process_time() - t) / 300
        print(f"    CPU per pair in this process: {cpu_pair * 1000:.2f} ms ({1 / cpu_pair:.0f} pairs/s on one core)")
        baseline = None
        for n in [workers] if args.quick else [1, workers]:
            for name, executor in (("local", local), ("ray", ex)):
                # local with 1 worker computes in this process; --workers 1 on Ray is one task at a time
                wall, res = timed(
                    lambda n=n, executor=executor: nnstd_pairs(nets, pairs, "exact", n, executor=executor)
                )
                if baseline is None:
                    baseline = res
                rate = len(pairs) / wall
                print(
                    f"    {name:5s} {n} worker(s): {wall:7.2f} s wall, {rate:7.0f} pairs/s, "
                    f"{rate / n:6.0f} pairs/s per worker ({rate / n * cpu_pair:.0%} of one core's rate); "
                    f"same bits: {same(res, baseline)}"
                )
    finally:
        shutdown_s, _ = timed(lambda: ex.__exit__(None, None, None))
        print(f"\n    ray, stop the local instance: {shutdown_s:.2f} s")
        if env_address is not None:
            os.environ["RAY_ADDRESS"] = env_address


if __name__ == "__main__":
    main()
