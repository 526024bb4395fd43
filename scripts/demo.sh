#!/usr/bin/env bash
# Set up .venv if needed, then run `avatarlm demo` on its defaults (outputs in out/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/avatarlm demo "$@"
