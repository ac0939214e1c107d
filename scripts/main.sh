#!/usr/bin/env bash
# The main job: start the graph store, put a run into it and look at it.
set -euo pipefail
cd "$(dirname "$0")/.."
ST=.venv/bin/sparsetopo
OUT=${OUT:-out/main}
mkdir -p "$OUT"

$ST db start
$ST db status

echo "==> a small generated SET-like run in the paper's file format, imported"
.venv/bin/python - "$OUT/generated_run" <<'PY'
import sys
from sparsetopo.graphstore.npz_io import write_snapshot_dir
from sparsetopo.graphstore.synthetic import synthetic_run
root = sys.argv[1]
for s in synthetic_run("generated", [784, 100, 100, 10], 0.05, 0.3, 5, seed=0, dense_last=True):
    write_snapshot_dir(s, f"{root}/epoch_{s.step:03d}")
PY
$ST import npz "$OUT/generated_run" --run-id generated --method set --name "synthetic SET-like run"
$ST runs list
echo "==> synapses that appeared and vanished per step (Cypher)"
$ST cypher 'MATCH (s:Snapshot {run_id: $run})-[:HAS_LAYER]->(l:LayerSnapshot)
            RETURN s.step AS step, sum(l.nnz) AS alive, sum(l.appeared) AS appeared, sum(l.vanished) AS vanished
            ORDER BY step' --param run=generated

echo "==> train a SET network on real data (scikit-learn's 8x8 digits), streamed into the store"
# Idempotent: a previous demo run is replaced.
if $ST runs show digits-set >/dev/null 2>&1; then $ST runs delete digits-set --yes; fi
$ST train --dataset digits --method set --epsilon 10 --epochs 8 --hidden 128,128 --seed 1 --run-id digits-set --threads 1 --quiet
echo "==> structural statistics, evolution, NNSTD to the initial topology"
$ST stats digits-set
$ST evolution digits-set
$ST nnstd evolution digits-set --reference initial --figure "$OUT/nnstd_evolution.png"
echo "==> a self-contained HTML report"
$ST report digits-set generated --out "$OUT/report.html"
echo "main job done: $OUT/report.html"
