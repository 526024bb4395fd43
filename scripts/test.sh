#!/usr/bin/env bash
# Set up .venv if needed, then run the linters, the type checker and the test suite (slow tests excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --ingest
apt_install() {  # Debian packages the tests use (nothing is downloaded at test time but these)
  echo "installing $* (apt) for the tests"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
command -v chromium >/dev/null || apt_install chromium                      # the page's test (headless)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx   # the cluster's test
[ -f /usr/share/sounds/alsa/Front_Center.wav ] || apt_install alsa-utils    # real recorded speech clips
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -p no:cacheprovider "$@"
