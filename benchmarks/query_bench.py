"""How fast the named evolution queries answer on a large synthetic run.

    .venv/bin/python benchmarks/query_bench.py            # full: 100 snapshots of ~120,000 synapses
    .venv/bin/python benchmarks/query_bench.py --small    # quick check: 10 snapshots of ~12,000

The run is SET-like (graphstore.synthetic): architecture 784-1000-1000-1000-10,
about 120,000 synapses, 30% of every layer pruned and regrown at random at each
step (the paper's zeta = 0.3), so the full run holds about 3.7 million synapse
lifetimes. It is written once with the store's own writer (GraphStore.write_snapshot)
and reused by later invocations. Then every named query is run `--repeat` times
after one warm-up run, and the median and the maximum wall time are printed
(client side: Bolt round trip included). Uses the graph store the CLI uses
(NEO4J_URI, else the project's own server).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparsetopo.graphstore.errors import UnknownRunError
from sparsetopo.graphstore.evolution import ensure_evolution
from sparsetopo.graphstore.model import RunInfo
from sparsetopo.graphstore.queries import QUERIES, run_named
from sparsetopo.graphstore.store import GraphStore
from sparsetopo.graphstore.synthetic import synthetic_run

SIZES = [784, 1000, 1000, 1000, 10]
POSSIBLE = sum(a * b for a, b in zip(SIZES, SIZES[1:]))


def ensure_run(store: GraphStore, run_id: str, steps: int, synapses: int, churn: float) -> None:
    try:
        if store.get_run(run_id)["snapshots"] == steps:
            return
    except UnknownRunError:
        pass
    store.create_run(RunInfo(run_id, SIZES, name="query benchmark", method="synthetic-set", zeta=churn, seed=0))
    t0 = time.perf_counter()
    for snap in synthetic_run(run_id, SIZES, synapses / POSSIBLE, churn, steps - 1, seed=0):
        store.write_snapshot(snap)
        if snap.step % 10 == 0:
            print(
                f"  wrote step {snap.step} ({snap.n_synapses} synapses) after {time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    store.set_run_status(run_id, "completed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="10 snapshots of ~12,000 synapses")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--churn", type=float, default=0.3)
    ap.add_argument("--plans", type=Path, help="also write each query's PROFILE plan as Markdown to this file")
    args = ap.parse_args()
    steps, synapses = (10, 12_000) if args.small else (100, 120_000)
    run_id = f"bench-{steps}x{synapses}-c{args.churn}"
    with GraphStore.connect() as store:
        ensure_run(store, run_id, steps, synapses, args.churn)
        t0 = time.perf_counter()
        done = ensure_evolution(store, run_id)
        if done:
            print(f"summarised {done} steps' synapse lifetimes in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        n_lifetimes = store.read("MATCH ()-[s:SYNAPSE {run_id: $run}]->() RETURN count(s) AS n", {"run": run_id})[0][
            "n"
        ]
        snaps = store.list_snapshots(run_id)
        mid = snaps[len(snaps) // 2]["step"]
        print(
            f"run {run_id}: {len(snaps)} snapshots, {snaps[-1]['n_synapses']} synapses at the last step, "
            f"{n_lifetimes} synapse lifetimes in the store"
        )
        print(f"{'query':<18} {'rows':>6} {'median ms':>10} {'max ms':>8}   parameters")
        params_for = {
            "evolution": {},
            "churn_at_step": {"step": mid},
            "appeared_at": {"step": mid},
            "vanished_at": {"step": mid},
            "initial_survival": {},
            "lifetimes": {},
            "ages": {},
            "survivors": {},
            "neuron_history": {"layer": 1, "index": 500},
            "degree_change": {},
            "degrees": {"step": mid},
        }
        slow = []
        for name in QUERIES:
            params = {"run_id": run_id} | params_for.get(name, {})
            rows = run_named(store, name, params)  # warm-up: plan cache, page cache
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                run_named(store, name, params)
                times.append((time.perf_counter() - t) * 1000)
            med, worst = statistics.median(times), max(times)
            if med > 100:
                slow.append(name)
            shown = {k: v for k, v in params.items() if k != "run_id"}
            print(f"{name:<18} {len(rows):>6} {med:>10.1f} {worst:>8.1f}   {shown}")
        print("every query's median is within 100 ms" if not slow else f"over 100 ms: {', '.join(slow)}")
        if args.plans:
            args.plans.write_text(plans_markdown(store, run_id, n_lifetimes, len(snaps), params_for))
            print(f"PROFILE plans written to {args.plans}")


def _plan_lines(plan, depth: int = 0) -> list[str]:
    args = plan.get("args", {})
    op = plan["operatorType"].split("@")[0]
    details = args.get("Details", "")
    line = f"{'  ' * depth}{op:<{34 - 2 * depth}} rows={plan.get('rows', 0):<8} db_hits={plan.get('dbHits', 0):<8} {details}"
    out = [line.rstrip()]
    for child in plan.get("children", []):
        out += _plan_lines(child, depth + 1)
    return out


def plans_markdown(store, run_id: str, n_lifetimes: int, n_snaps: int, params_for: dict) -> str:
    """Every named query's PROFILE plan on the benchmark run: which index each one seeks, how many rows."""
    from sparsetopo.graphstore.queries import bind

    out = [
        "# PROFILE plans of the named queries",
        "",
        "Written by `benchmarks/query_bench.py --plans docs/query-plans.md` on the synthetic run",
        f"`{run_id}` ({n_snaps} snapshots, {n_lifetimes} synapse lifetimes), Neo4j Community",
        "(slotted runtime). Read them bottom-up: every plan starts from a unique-constraint seek",
        "(NodeUniqueIndexSeek), a range-index seek (NodeIndexSeek on LayerSnapshot(run_id),",
        "DirectedRelationshipIndexSeek on SYNAPSE(run_id, born) or (run_id, died)), or the Run node,",
        "never from a label or relationship-type scan. `rows` and `db_hits` are actual counts.",
        "",
    ]
    for name, query in QUERIES.items():
        params = bind(name, {"run_id": run_id} | params_for.get(name, {}))
        with store.driver.session(database=store.database, default_access_mode="READ") as session:
            result = session.run("PROFILE " + query.cypher, params)
            list(result)  # profiler statistics exist only once every row has been pulled
            summary = result.consume()
        shown = {k: v for k, v in params.items() if k != "run_id"}
        out += [f"## `{name}`", "", f"Parameters: `{shown}`", "", "```", *_plan_lines(summary.profile), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
