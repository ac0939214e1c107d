#!/usr/bin/env bash
# Set up everything sparsetopo needs on a fresh machine; safe to run again.
#   - a virtual environment in .venv with the project and its Python packages
#   - the Neo4j 5.26 server, gathered from Maven Central with Maven (Java 17)
# With --test: also what the test suite needs beyond that (see scripts/setup-test-extras.sh if present),
# the developer tools of `make lint` and pre-commit (the `dev` extra: ruff, mypy, pre-commit) and Ray
# (the `ray` extra: `--executor ray`, whose tests run on a local Ray instance).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip
EXTRAS=test
if [ "${1:-}" = "--test" ]; then EXTRAS=test,dev,ray; fi
.venv/bin/python -m pip install -q -e ".[$EXTRAS]"
# The Rust extension speeds up the Neo4j driver; the pure-Python driver works without it.
.venv/bin/python -m pip install -q 'neo4j-rust-ext>=6,<7' || echo "    (neo4j-rust-ext unavailable; using the pure-Python driver)"

command -v java >/dev/null || { echo "Java 17 is required (java not on PATH)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "Maven is required (mvn not on PATH)" >&2; exit 1; }
echo "==> gathering the Neo4j server (Maven Central; cached after the first run)"
.venv/bin/python -c "from sparsetopo.graphstore.server import ensure_built; print('    ', ensure_built())"

if [ "${1:-}" = "--test" ] && [ -x scripts/setup-test-extras.sh ]; then
  echo "==> test extras"
  scripts/setup-test-extras.sh
fi
echo "==> setup complete"
