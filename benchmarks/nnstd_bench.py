"""NNSTD speed and memory: `python benchmarks/nnstd_bench.py [--quick] [--skip-10k]`.

0. compile time of the exact method's solver (analysis.lsap, numba): from scratch, and loaded
   from numba's cache, each in a fresh process; the solver is then warmed up before any timing;
1. one pair of 784-784-784-784-10 networks at 0.6 % density (exact and sparse);
2. all pairs among 10 networks within each of 9 snapshots of that shape (405 pairs), all cores;
3. single large layers at 0.5 % density: scipy's dense solver against the exact method's solver
   (same matching required) and the sparse option (4,000 neurons), and the sparse option alone
   at 10,000 neurons (time and peak memory, measured in a child process).
Networks are synthetic: Erdős–Rényi masks, and snapshots evolve SET-style (each snapshot prunes
a fraction ζ = 0.3 of every layer's connections and regrows as many at random).
Results it gave (scipy's solver against analysis.lsap, compile and cache-load times): CHANGELOG.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparsetopo.analysis import lsap
from sparsetopo.analysis.assignment import exact_assignment, lsap_assignment, sparse_assignment
from sparsetopo.analysis.nnstd import nnstd
from sparsetopo.analysis.nnstd_costs import dense_costs, fan_in
from sparsetopo.analysis.nnstd_parallel import default_workers, matrix_pairs, nnstd_pairs
from sparsetopo.topology import connection_mask

SHAPE = [784, 784, 784, 784, 10]


def er_layer(n_in: int, n_out: int, density: float, rng: np.random.Generator) -> sp.csr_matrix:
    nnz = int(round(density * n_in * n_out))
    flat = rng.choice(n_in * n_out, size=nnz, replace=False)
    return sp.csr_matrix(
        (rng.standard_normal(nnz).astype(np.float32), (flat // n_out, flat % n_out)), shape=(n_in, n_out)
    )


def network(shape, density, rng):
    return [er_layer(shape[k], shape[k + 1], density, rng) for k in range(len(shape) - 1)]


def evolve(net, zeta, rng):
    """One SET step per layer: drop a fraction zeta of the connections, grow as many elsewhere at random."""
    out = []
    for m in net:
        coo = m.tocoo()
        n_in, n_out = m.shape
        keep = rng.random(coo.nnz) >= zeta
        alive = set((coo.row[keep] * n_out + coo.col[keep]).tolist())
        need = coo.nnz - len(alive)
        while need:
            cand = rng.integers(0, n_in * n_out, size=need * 2)
            for c in cand.tolist():
                if c not in alive and need:
                    alive.add(c)
                    need -= 1
        flat = np.fromiter(alive, dtype=np.int64)
        out.append(sp.csr_matrix((np.ones(len(flat), np.float32), (flat // n_out, flat % n_out)), shape=m.shape))
    return out


def best_of(fn, repeat):
    """(best wall time, best CPU time of this process, last value)."""
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), value


def exact_total(mask_a, mask_b, matched, perm) -> Fraction:
    """The matched cost as an exact rational, from integer counts."""
    a, b = fan_in(mask_a), fan_in(mask_b)
    total = Fraction(0)
    for r, c in enumerate(perm.tolist()):
        if r >= len(a) or c >= len(b):
            total += 1
            continue
        common = int(mask_a[:, r].multiply(mask_b[:, c]).sum())
        union = int(a[r] + b[c] - common)
        total += Fraction(int(a[r] + b[c] - 2 * common), union) if union else 0
    return total


def large_layer(n: int, density: float, dense: bool) -> dict:
    rng = np.random.default_rng(n)
    mask_a = connection_mask(er_layer(n, n, density, rng))
    mask_b = connection_mask(er_layer(n, n, density, rng))
    out = {"neurons": n, "density": density}
    t, c = time.perf_counter(), time.process_time()
    s_matched, s_perm = sparse_assignment(mask_a, mask_b)
    out["sparse_s"], out["sparse_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["sparse_layer_distance"] = float(s_matched.sum() / n)
    if dense:
        lsap.warm_up()
        t, c = time.perf_counter(), time.process_time()
        e_matched, e_perm = lsap_assignment(mask_a, mask_b)
        out["exact_s"], out["exact_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        d_matched, d_perm = exact_assignment(dense_costs(mask_a, mask_b))
        out["dense_s"], out["dense_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        out["exact_same_as_scipy"] = bool(np.array_equal(e_perm, d_perm) and np.array_equal(e_matched, d_matched))
        out["dense_layer_distance"] = float(d_matched.sum() / n)
        out["optimal_totals_equal_exactly"] = exact_total(mask_a, mask_b, s_matched, s_perm) == exact_total(
            mask_a, mask_b, d_matched, d_perm
        )
        out["same_matching"] = bool(np.array_equal(s_perm, d_perm))
    out["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def first_call_s(cache_dir: str | None) -> float:
    """Time of the solver's first call in a fresh process (numba's cache in `cache_dir` if given)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    proc = subprocess.run(
        [sys.executable, __file__, "--first-call"], capture_output=True, text=True, check=True, env=env
    )
    return float(proc.stdout)


def figure4_workload(rng: np.random.Generator):
    """10 SET-like runs x 9 snapshots and the 405 pairs within each snapshot (the Figure-4 workload)."""
    runs = [[network(SHAPE, 0.006, rng)] for _ in range(10)]
    for run in runs:
        for _ in range(8):
            run.append(evolve(run[-1], 0.3, rng))
    nets: list[list[sp.csr_matrix]] = []
    pairs: list[tuple[int, int]] = []
    for s in range(9):
        base = len(nets)
        nets.extend(run[s] for run in runs)
        pairs.extend((base + i, base + j) for i, j in matrix_pairs(10))
    return nets, pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--skip-10k", action="store_true")
    parser.add_argument("--layer", nargs=3, metavar=("N", "DENSITY", "DENSE"), help=argparse.SUPPRESS)
    parser.add_argument("--first-call", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.layer:  # child process: one large layer, so peak memory is that layer's alone
        n, density, dense = args.layer
        print(json.dumps(large_layer(int(n), float(density), dense == "1")))
        return
    if args.first_call:  # child process: the solver's first call
        t = time.perf_counter()
        lsap.warm_up()
        print(time.perf_counter() - t)
        return

    repeat = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    print(
        f"machine: {os.cpu_count()} cpu(s), {default_workers()} usable, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; numpy {np.__version__}, scipy {__import__('scipy').__version__}"
    )

    with tempfile.TemporaryDirectory() as empty:
        compile_s = first_call_s(empty)
    lsap.warm_up()  # compiles into, or loads from, numba's cache next to analysis/lsap.py
    print(
        f"\n[0] exact solver (numba): compiling {compile_s:.2f} s in a fresh process without cache, "
        f"loading from the cache {first_call_s(None):.2f} s; warmed up before the timings below"
    )

    a, b = network(SHAPE, 0.006, rng), network(SHAPE, 0.006, rng)
    density = sum(m.nnz for m in a) / sum(m.shape[0] * m.shape[1] for m in a)
    print(f"\n[1] one pair, {'-'.join(map(str, SHAPE))}, density {density:.4%}")
    for method in ("exact", "sparse"):
        t, c, r = best_of(lambda method=method: nnstd(a, b, method=method), repeat)
        print(
            f"    {method:6s}: {t * 1000:7.1f} ms wall, {c * 1000:7.1f} ms CPU (best of {repeat})  "
            f"distance {r.distance!r}"
        )

    print("\n[2] 10 networks x 9 snapshots, all pairs within each snapshot (405 pairs)")
    nets, pairs = figure4_workload(rng)
    for method in ("exact", "sparse"):
        # CPU cost per pair in this process, over the 45 pairs of one snapshot (independent of other load)
        c = time.process_time()
        nnstd_pairs(nets, pairs[:45], method, workers=1)
        cpu_pair = (time.process_time() - c) / 45
        workers = default_workers()
        t = time.perf_counter()
        res = nnstd_pairs(nets, pairs, method, workers=workers)
        elapsed = time.perf_counter() - t
        print(
            f"    {method:6s}: {elapsed:6.2f} s wall for {len(res)} pairs on {workers} worker(s); "
            f"CPU {cpu_pair * 1000:.1f} ms/pair -> {cpu_pair * len(pairs) / workers:.2f} s on {workers} idle cores; "
            f"mean distance {np.mean([r.distance for r in res]):.6f}"
        )

    print("\n[3] large layers at 0.5 % density (each in a child process)")
    sizes = [(4000, True)] + ([] if args.skip_10k else [(10000, False)])
    for n, dense in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--layer", str(n), "0.005", "1" if dense else "0"],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout)
        line = f"    {n} neurons: sparse exact option {r['sparse_s']:.2f} s wall ({r['sparse_cpu_s']:.2f} s CPU)"
        if dense:
            line += (
                f", exact (own solver) {r['exact_s']:.2f} s wall ({r['exact_cpu_s']:.2f} s CPU), "
                f"dense scipy {r['dense_s']:.2f} s wall ({r['dense_cpu_s']:.2f} s CPU); exact = scipy: "
                f"{r['exact_same_as_scipy']}; sparse: optimal totals equal exactly: "
                f"{r['optimal_totals_equal_exactly']}, same matching: {r['same_matching']}"
            )
        line += f"; layer distance {r['sparse_layer_distance']:.6f}; peak RSS {r['peak_rss_MB']:.0f} MB"
        print(line)


if __name__ == "__main__":
    main()
