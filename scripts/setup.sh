#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: a virtual environment in .venv
# with the pinned requirements, and the demo store in data/store (built when absent or
# when the demo generator changed). Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating virtual environment in .venv"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    echo "==> python venv module missing; installing it with apt"
    as_root apt-get update -q
    as_root apt-get install -y -q python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  echo "==> installing pinned requirements"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  # the engine as an editable package, so `python -m analysis` works from any directory
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > .venv/.requirements.sha256
fi

demo=$(cat analysis/scenarios/rental.py analysis/scenarios/rental_ground_truth.json analysis/store.py | sha256sum | cut -d' ' -f1)
if [ "$(cat data/store/.demo.sha256 2>/dev/null)" != "$demo" ]; then
  echo "==> building the demo store in data/store (about 20 s)"
  .venv/bin/python -m analysis demo --store data/store
  echo "$demo" > data/store/.demo.sha256
fi
# every snapshot's bin codes and profile (a few seconds, once per snapshot), so the
# heatmap and segment pages open without binning rows
.venv/bin/python -c "from analysis.aggregate import prepare; from analysis.store import Store; prepare(Store('data/store'), progress=lambda m: None)"
# the Data vs concept page's default investigation (about a minute, once per data and
# code version; instant when already kept in the store)
.venv/bin/python -c "from analysis.investigation import warm; warm('data/store')"
