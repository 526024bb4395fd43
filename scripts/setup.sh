#!/usr/bin/env bash
# Create ./.venv with avatarlm and everything it needs (CPU build of PyTorch). Safe to run again: it only
# reinstalls when pyproject.toml or this script changed. Set TORCH_INDEX_URL to PyTorch's CPU wheel index if
# your package index would otherwise hand you a CUDA build of torch.
#
# --ingest also creates ./.venv-ingest, the face tracker's environment for `avatarlm data ingest`:
# mediapipe 0.10.21 (the last release that ships its face models) pins numpy<2, so it cannot share .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ingest=0
for arg in "$@"; do
  case "$arg" in
    --ingest) ingest=1 ;;
    *) echo "usage: scripts/setup.sh [--ingest]" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "avatarlm needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.avatarlm-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (first time: a few minutes)"
  # torch first and pinned, so nothing below can pull a multi-GB CUDA build.
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    .venv/bin/pip install --quiet --index-url "$TORCH_INDEX_URL" torch==2.13.0
  else
    .venv/bin/pip install --quiet torch==2.13.0
  fi
  .venv/bin/pip install --quiet -e ".[dev]"
  echo "$want" > "$stamp"
fi

if [ "$ingest" = 1 ]; then
  [ -x .venv-ingest/bin/python ] || "$PY" -m venv .venv-ingest
  if ! .venv-ingest/bin/python -c 'import mediapipe.python.solutions.face_mesh' 2>/dev/null; then
    echo "setting up .venv-ingest (the face tracker: mediapipe 0.10.21)"
    .venv-ingest/bin/pip install --quiet mediapipe==0.10.21
    .venv-ingest/bin/pip uninstall --quiet --yes jax jaxlib  # 360 MB the face mesh does not use
  fi
fi
