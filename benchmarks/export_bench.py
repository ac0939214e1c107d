"""Export speed: a synthetic SET-like run streamed into Neo4j, then one snapshot read back.

    python benchmarks/export_bench.py [--sizes 784,1000,1000,1000,10] [--density 0.04] [--churn 0.3] [--steps 20]

Synapse writes = SYNAPSE relationships created + closed (died set). Uses a throw-away
server unless NEO4J_URI is set; the throw-away server's JVM takes the options in
SPARSETOPO_JVM_OPTIONS (e.g. a garbage collector to compare), and the summary gives its CPU
seconds and GC pause seconds (jstat) for the writes. Prints one line per step and a summary. Results it gave, and the
writer and server changes they led to (transaction size, column parameters, initial heap), are in
CHANGELOG.md under "Measured".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._server import benchmark_store
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.reader import snapshots_equal
from sparsetopo.graphstore.synthetic import synthetic_run
from sparsetopo.topology import connection_keys


def server_times(pid: int | None) -> tuple[float, float]:
    """(CPU seconds, GC pause seconds) the server's JVM has used so far; nan without a local server."""
    import os
    import subprocess

    if pid is None:
        return float("nan"), float("nan")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    try:
        out = subprocess.run(["jstat", "-gcutil", str(pid)], capture_output=True, text=True, timeout=30).stdout
        head, values = out.split("\n")[:2]
        gc = float(dict(zip(head.split(), values.split()))["GCT"])
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        gc = float("nan")
    return cpu, gc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="784,1000,1000,1000,10")
    ap.add_argument("--density", type=float, default=0.04)
    ap.add_argument("--churn", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    snaps = list(synthetic_run("bench", sizes, args.density, args.churn, args.steps, seed=0))
    print(
        f"run: sizes={sizes} density={args.density} churn={args.churn} steps={args.steps} "
        f"synapses/snapshot={snaps[0].n_synapses}"
    )
    with benchmark_store() as store:
        store.create_run(RunInfo("bench", sizes, method="synthetic-set"))
        pid = getattr(store, "bench_server_pid", None)
        cpu0, gc0 = server_times(pid)
        total_writes, total_seconds, prev = 0, 0.0, None
        for s in snaps:
            if prev is None:
                created, closed = sum(m.nnz for m in s.layers), 0
            else:
                created = closed = 0
                for a, b in zip(prev.layers, s.layers):
                    pa, pb = set(connection_keys(a).tolist()), set(connection_keys(b).tolist())
                    created += len(pb - pa)
                    closed += len(pa - pb)
            t0 = time.perf_counter()
            store.write_snapshot(s)
            dt = time.perf_counter() - t0
            writes = created + closed
            total_writes += writes
            total_seconds += dt
            print(
                f"step {s.step:3d}: {created:7d} created {closed:7d} closed in {dt:6.2f} s = {writes / dt:9.0f} synapse writes/s"
            )
            prev = s
        cpu1, gc1 = server_times(pid)
        t0 = time.perf_counter()
        store.set_run_status("bench", "completed")
        finish = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = store.read_snapshot("bench", args.steps // 2)
        read_s = time.perf_counter() - t0
        assert snapshots_equal(back, snaps[args.steps // 2])
        size = store.read("MATCH ()-[s:SYNAPSE {run_id:'bench'}]->() RETURN count(s) AS n")[0]["n"]
    print(
        f"total: {total_writes} synapse writes in {total_seconds:.1f} s = {total_writes / total_seconds:.0f} synapse writes/s"
    )
    print(
        f"server JVM while writing: {cpu1 - cpu0:.1f} CPU s ({(cpu1 - cpu0) / total_writes * 1e6:.1f} us per synapse write), "
        f"GC pauses {gc1 - gc0:.1f} s"
    )
    print(f"finishing the run (latest weight on {snaps[-1].n_synapses} surviving synapses): {finish:.2f} s")
    print(f"read one snapshot back ({back.n_synapses} synapses, bit-exact): {read_s:.3f} s")
    print(f"SYNAPSE relationships stored (distinct lifetimes): {size}")


if __name__ == "__main__":
    main()
