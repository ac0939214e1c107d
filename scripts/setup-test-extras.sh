#!/usr/bin/env bash
# Test extras for the BI and report tests: Debian's chromium (headless browser test of
# `sparsetopo report`), JPype1 (drives the JDBC driver from Python), and Neo4j's JDBC driver
# from Maven Central (full bundle with SQL translation when the registry serves it, else the
# core driver). Idempotent; run as root (or with sudo available) from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --version 2>/dev/null

"$PY" -m pip install -q "JPype1>=1.5"
"$PY" -c "from sparsetopo.graphstore.bi import ensure_jdbc_driver, has_sql_translator, installed_flavour as f
lib = ensure_jdbc_driver()
print(f'Neo4j JDBC driver: {lib} ({f(lib)}; SQL translation: {has_sql_translator(lib)})')"
