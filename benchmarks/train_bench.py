"""Training speed on MNIST and the cost of streaming snapshots into Neo4j.

    python benchmarks/train_bench.py [--methods dense,static,set] [--epochs 2] [--hidden 1000,1000,1000]
                                     [--epsilon 20] [--threads 1] [--dataset mnist]

For each method: one run without the graph store (snapshots discarded) and one run that streams
every snapshot into Neo4j through the background writer, same seed. Reports seconds per epoch,
test accuracy after the last epoch, and the export overhead = (wall time with store) / (wall
time without) - 1, where "with store" runs until the last snapshot is committed and the run is
marked completed. Uses a throw-away server unless NEO4J_URI is set. Fetches MNIST if needed.
Results: docs/trainer.md ("Speed"); finish times of dense runs over time: CHANGELOG.md ("Measured").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._server import benchmark_store
from sparsetopo.graphstore.background import BackgroundWriter, recording
from sparsetopo.trainer.data import load_dataset
from sparsetopo.trainer.loop import TrainConfig, run_info, train


def _epoch_seconds(result) -> float:
    return result.seconds / result.steps[-1]["epoch"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="static,set,dense")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--hidden", default="1000,1000,1000")
    ap.add_argument("--epsilon", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core machine")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    data = load_dataset(args.dataset, log=print)
    print(
        f"data: {args.dataset} from {data.source}; train {len(data.y_train)}, test {len(data.y_test)}; "
        f"architecture {[data.n_features, *hidden, data.n_classes]}, epsilon {args.epsilon}, "
        f"{args.epochs} epochs, torch threads {args.threads}"
    )
    rows = []
    with benchmark_store() as store:
        for method in args.methods.split(","):
            config = TrainConfig(
                dataset=args.dataset,
                method=method,
                hidden=hidden,
                epochs=args.epochs,
                epsilon=args.epsilon,
                seed=args.seed,
                threads=args.threads,
            )
            t0 = time.perf_counter()
            plain = train(config, data, lambda _s: None, f"bench-{method}-plain")
            t_plain = time.perf_counter() - t0

            print(
                f"{method:7s} without store: {_epoch_seconds(plain):.1f} s/epoch, "
                f"test acc {plain.steps[-1]['test_accuracy']:.4f}, wall {t_plain:.1f} s",
                flush=True,
            )

            run_id = f"bench-{method}-{int(time.time())}"
            t0 = time.perf_counter()
            try:
                with recording(store, run_info(config, data, run_id)) as sink:
                    stored = train(config, data, sink, run_id)
                    t_train = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - reported, the other methods still run
                first = str(exc).splitlines()[0][:300]
                print(
                    f"{method:7s} with store FAILED after {time.perf_counter() - t0:.1f} s: "
                    f"{type(exc).__name__}: {first}",
                    flush=True,
                )
                store.delete_run(run_id)
                continue
            t_store = time.perf_counter() - t0
            writer: BackgroundWriter = sink
            n_snaps = len(store.list_snapshots(run_id))
            row = {
                "method": method,
                "synapses": plain.steps[-1]["n_synapses"],
                "s/epoch": _epoch_seconds(plain),
                "s/epoch+store": _epoch_seconds(stored),
                "test_acc": plain.steps[-1]["test_accuracy"],
                "test_acc+store": stored.steps[-1]["test_accuracy"],
                "wall": t_plain,
                "wall+store": t_store,
                "drain": t_store - t_train,
                "blocked": writer.wait_seconds,
                "write_s": writer.write_seconds,
                "finish": writer.finish_seconds,
                "snapshots": n_snaps,
                "overhead": t_store / t_plain - 1,
            }
            rows.append(row)
            print(
                f"{method:7s} synapses {row['synapses']:>8d}  s/epoch {row['s/epoch']:7.1f} (with store "
                f"{row['s/epoch+store']:7.1f})  test acc {row['test_acc']:.4f} (with store {row['test_acc+store']:.4f})  "
                f"wall {t_plain:7.1f} s vs {t_store:7.1f} s with store (drain at end {row['drain']:.1f} s, of which "
                f"finishing the run {row['finish']:.1f} s, "
                f"training blocked {row['blocked']:.1f} s, writer busy {row['write_s']:.1f} s, "
                f"{n_snaps} snapshots)  overhead {100 * row['overhead']:+.1f} %",
                flush=True,
            )
            store.delete_run(run_id)
    print(
        "summary: export overhead "
        + ", ".join(f"{r['method']} {100 * r['overhead']:+.1f} %" for r in rows)
        + " (target <= 10 %)"
    )


if __name__ == "__main__":
    main()
