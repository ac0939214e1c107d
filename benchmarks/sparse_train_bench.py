"""Seconds per epoch and peak memory of whole training runs, masked against sparse backend (issue 16).

    python benchmarks/sparse_train_bench.py [--part a|b|c|all] [--epochs 1] [--threads 1]
                                            [--batches N] [--backends masked,sparse] [--dropout P]
                                            [--dropout-draw torch-bernoulli|counter-hash]
                                            [--initial-train-samples N]

Parts:
  a  784-784-784-784-10 at 0.6 % density, the paper's Figure-4 network (as sparsetopo/experiment.py
     builds it: every hidden layer at the same density, the output dense; here `init=uniform,
     density=0.006`), SET with its default recipe, on MNIST;
  b  784-1000-1000-1000-10 at epsilon 20, SET, on MNIST;
  c  784-100000-100000-100000-10 at epsilon 20 (11 million connections; its hidden layers hold
     10^10 positions each, which the masked backend cannot build), SET on Fashion-MNIST, sparse
     backend only, with every snapshot stored in a throw-away Neo4j started by the benchmark
     (benchmarks/_server.py, the project's own server) through graphstore.background.recording,
     as `sparsetopo train` stores them.

Every configuration runs in a fresh subprocess, so the peak resident set (getrusage ru_maxrss of
that process: the trainer, not the Neo4j server) is its own. `epoch s` is the training batches of
an epoch alone; `eval+update s` is what follows them until the snapshot is handed over
(evaluation on the test set, the topology update, building the snapshot); step 0 (evaluation of
the untrained network on the full training and test sets) is reported apart. With --batches N an
epoch is N batches of the training set (the first N * batch size samples) and the seconds of a
full epoch are extrapolated from them, labelled as such. --dropout replaces the recipe's (SET's
default recipe, keras-randn, has 0.3 after each hidden layer; its Bernoulli masks are drawn alike
on both backends). --dropout-draw picks the rule that draws them (trainer/dropout.py: the same
distribution; torch-bernoulli is torch's own stream, counter-hash another, a little faster).
--initial-train-samples evaluates step 0's training metrics on that many samples (the train
option of the same name), which at part c's size is most of step 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS: dict[str, dict[str, Any]] = {
    "a": dict(
        dataset="mnist",
        hidden=(784, 784, 784),
        init="uniform",
        density=0.006,
        label="784-784-784-784-10, 0.6 % (Figure 4)",
    ),
    "b": dict(dataset="mnist", hidden=(1000, 1000, 1000), epsilon=20.0, label="784-1000-1000-1000-10, eps 20"),
    "c": dict(
        dataset="fashion-mnist",
        hidden=(100_000, 100_000, 100_000),
        epsilon=20.0,
        label="784-100000x3-10, eps 20, stored",
        store=True,
    ),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(spec: dict) -> dict:
    import dataclasses

    import torch

    from sparsetopo.trainer.data import load_dataset
    from sparsetopo.trainer.loop import TrainConfig, run_info, train

    part = PARTS[spec["part"]]
    data = load_dataset(part["dataset"])
    full_batches = len(data.y_train) // spec["batch_size"]
    if spec["batches"]:
        n = spec["batches"] * spec["batch_size"]
        data = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    rss_data = _rss_mb()
    config = TrainConfig(
        dataset=part["dataset"],
        method="set",
        hidden=part["hidden"],
        epochs=spec["epochs"],
        epsilon=part.get("epsilon", 20.0),
        init=part.get("init", "er"),
        density=part.get("density"),
        seed=1,
        threads=spec["threads"],
        batch_size=spec["batch_size"],
        backend=spec["backend"],
        dropout=spec.get("dropout"),
        rules={"dropout_draw": spec["dropout_draw"]} if spec.get("dropout_draw") else {},
        initial_train_samples=spec.get("initial_train_samples"),
    )
    marks: dict[str, Any] = {"handed": [], "last_batch": {}, "batches": {}}

    def progress(event):
        if event["kind"] == "batch":
            now = time.perf_counter()
            marks["last_batch"][event["epoch"]] = now
            marks["batches"][event["epoch"]] = event["batch"]
            if event["batch"] % spec.get("report_every", 50) == 0:
                since = now - marks["handed"][event["epoch"] - 1]
                print(
                    f"  [{spec['part']} {spec['backend']}] epoch {event['epoch']} batch {event['batch']}: "
                    f"{since / event['batch']:.3f} s/batch so far, RSS {_rss_mb():.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        elif event["kind"] == "start":
            marks["architecture"] = event["architecture"]
            marks["synapses"] = sum(event["model"].n_connections())

    changes = {"synapse_writes": 0}

    def wrap(sink):
        def handed(snapshot):
            changes["synapse_writes"] += (
                snapshot.n_synapses if snapshot.step == 0 else snapshot.metrics["added"] + snapshot.metrics["removed"]
            )
            sink(snapshot)
            marks["handed"].append(time.perf_counter())
            print(
                f"  [{spec['part']} {spec['backend']}] step {snapshot.step} handed over "
                f"{marks['handed'][-1] - started:.1f} s after the start, RSS {_rss_mb():.0f} MB",
                file=sys.stderr,
                flush=True,
            )

        return handed

    started = time.perf_counter()
    out: dict[str, Any] = {}
    if part.get("store"):
        from benchmarks._server import benchmark_store
        from sparsetopo.graphstore.background import recording

        run_id = f"bench-c-{int(time.time())}"
        with benchmark_store() as store:
            t0 = time.perf_counter()
            with recording(store, run_info(config, data, run_id)) as sink:
                result = train(config, data, wrap(sink), run_id, progress)
                trained = time.perf_counter()
            stored = time.perf_counter()
            out.update(
                store_write_s=sink.write_seconds,
                store_finish_s=sink.finish_seconds,
                store_drain_s=stored - trained,
                store_blocked_s=sink.wait_seconds,
                store_wall_s=stored - t0,
                snapshots_stored=len(store.list_snapshots(run_id)),
                synapse_writes=changes["synapse_writes"],
            )
    else:
        result = train(config, data, wrap(lambda _s: None), "bench", progress)
    wall = time.perf_counter() - started
    epochs = []
    for e in range(1, spec["epochs"] + 1):
        train_s = marks["last_batch"][e] - marks["handed"][e - 1]
        epochs.append(
            {
                "epoch": e,
                "batches": marks["batches"][e],
                "train_s": train_s,
                "eval_update_s": marks["handed"][e] - marks["last_batch"][e],
            }
        )
    out.update(
        part=spec["part"],
        backend=spec["backend"],
        model_backend=result.model.backend if result.model is not None else None,
        threads=spec["threads"] or torch.get_num_threads(),
        architecture=marks["architecture"],
        synapses=marks["synapses"],
        full_batches=full_batches,
        step0_s=marks["handed"][0] - started,
        epochs=epochs,
        test_accuracy=result.steps[-1]["test_accuracy"],
        wall_s=wall,
        rss_after_data_mb=rss_data,
        peak_rss_mb=_peak_mb(),
    )
    return out


def _exit_on_sigterm() -> None:
    # SIGTERM (timeout, --timeout) unwinds like Ctrl-C, so a child's Neo4j server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def run_child(spec: dict, timeout: float | None) -> dict:
    """One configuration in a fresh process; its progress lines go to stderr as they come."""
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = ""
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(180)
            except subprocess.TimeoutExpired:
                proc.kill()
    for line in (out or "").splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"part": spec["part"], "backend": spec["backend"], "error": f"exit {proc.returncode} (see stderr above)"}


def report(r: dict) -> None:
    head = f"part {r['part']} {r['backend']:6s}"
    if "error" in r:
        print(f"{head} FAILED {r['error']}", flush=True)
        return
    per_epoch = [e["train_s"] for e in r["epochs"]]
    mean = sum(per_epoch) / len(per_epoch)
    batches = r["epochs"][0]["batches"]
    extrapolated = batches < r["full_batches"]
    epoch_text = f"epoch {mean:8.1f} s ({batches} batches)"
    if extrapolated:
        full = mean / batches * r["full_batches"]
        epoch_text = (
            f"{mean / batches:.3f} s/batch over {batches} batches; EXTRAPOLATED full epoch "
            f"({r['full_batches']} batches) {full:8.1f} s"
        )
        r["epoch_s_extrapolated"] = full
    r["epoch_s"] = mean if not extrapolated else r["epoch_s_extrapolated"]
    eval_update = sum(e["eval_update_s"] for e in r["epochs"]) / len(r["epochs"])
    print(
        f"{head} synapses {r['synapses']:>10,d}  {epoch_text}  eval+update {eval_update:6.1f} s  "
        f"step 0 {r['step0_s']:6.1f} s  wall {r['wall_s']:7.1f} s  test acc {r['test_accuracy']:.4f}  "
        f"peak RSS {r['peak_rss_mb']:8.0f} MB (after loading data {r['rss_after_data_mb']:.0f} MB)  "
        f"threads {r['threads']}",
        flush=True,
    )
    if "store_write_s" in r:
        rate = r["synapse_writes"] / r["store_write_s"] if r["store_write_s"] else float("nan")
        print(
            f"{head} store: {r['snapshots_stored']} snapshots, {r['synapse_writes']:,d} synapse writes "
            f"(step 0's synapses + later added/removed) in {r['store_write_s']:.1f} s of writer transactions "
            f"= {rate:,.0f} synapses/s; training blocked {r['store_blocked_s']:.1f} s; after training: "
            f"{r['store_drain_s']:.1f} s until the run was completed (of which finishing {r['store_finish_s']:.1f} s)",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=("a", "b", "c", "all"))
    ap.add_argument("--backends", default="masked,sparse", help="parts a and b; part c is sparse only")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batches", type=int, default=0, help="N batches per epoch, extrapolated (0: full epochs)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=None, help="default: the recipe's (0.3)")
    ap.add_argument("--dropout-draw", default=None, help="default: the recipe's (torch-bernoulli)")
    ap.add_argument("--initial-train-samples", type=int, default=None, help="default: all")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per configuration")
    ap.add_argument("--report-every", type=int, default=50, help="a progress line every N batches (stderr)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    _exit_on_sigterm()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    parts = ["a", "b", "c"] if args.part == "all" else [args.part]
    print(
        f"sparse_train_bench: parts {','.join(parts)}, {args.epochs} epoch(s)"
        + (f" of {args.batches} batches" if args.batches else "")
        + (f", dropout {args.dropout}" if args.dropout is not None else ", the recipe's dropout (0.3)")
        + f", dropout draw {args.dropout_draw or 'torch-bernoulli (the recipe)'}"
        + (f", step 0 train metrics on {args.initial_train_samples} samples" if args.initial_train_samples else "")
        + f", batch {args.batch_size}, torch threads {args.threads}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = []
    for part in parts:
        print(f"part {part}: {PARTS[part]['label']} on {PARTS[part]['dataset']}", flush=True)
        backends = ["sparse"] if part == "c" else args.backends.split(",")
        for backend in backends:
            spec = dict(
                part=part,
                backend=backend,
                epochs=args.epochs,
                batches=args.batches,
                batch_size=args.batch_size,
                threads=args.threads,
                dropout=args.dropout,
                dropout_draw=args.dropout_draw,
                initial_train_samples=args.initial_train_samples,
                report_every=args.report_every,
            )
            r = run_child(spec, args.timeout)
            report(r)
            results.append(r)
        by = {r["backend"]: r for r in results if r["part"] == part and "error" not in r}
        if "masked" in by and "sparse" in by:
            print(
                f"part {part}: sparse is {by['masked']['epoch_s'] / by['sparse']['epoch_s']:.1f}x faster per epoch, "
                f"peak RSS {by['sparse']['peak_rss_mb']:.0f} MB against {by['masked']['peak_rss_mb']:.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
