#!/usr/bin/env bash
# Set up .venv if needed, then run the slow tests and every benchmark (prints tables; not part of CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -p no:cacheprovider -m slow
for b in benchmarks/bench_*.py; do echo "== $b"; .venv/bin/python "$b"; done
