#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: a virtual environment in .venv
# with the pinned requirements, Debian's chromium (chart export and the browser tests),
# Java when the Spark engine needs it (the tests, or DRIFT_ENGINE=spark), and the demo
# store in data/store (built when absent or when the demo generator changed). Idempotent
# and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
started=$SECONDS
step() { echo "==> [$((SECONDS - started)) s] $*"; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating the virtual environment in .venv"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    step "python's venv module is missing; installing it with apt"
    as_root apt-get update -q
    as_root apt-get install -y -q python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
  step "installing the pinned requirements (a minute or two the first time; log: .venv/pip.log)"
  {
    .venv/bin/python -m pip install --upgrade pip &&
    .venv/bin/python -m pip install -r requirements.txt &&
    # the engine as an editable package, so `python -m analysis` works from any directory
    .venv/bin/python -m pip install --no-deps -e .
  } > .venv/pip.log 2>&1 || { tail -30 .venv/pip.log >&2; echo "error: pip failed (see .venv/pip.log)" >&2; exit 1; }
  echo "$want" > .venv/.requirements.sha256
fi

if [ ! -x /usr/bin/chromium ]; then
  step "installing Debian's chromium (chart export, postmortem bundle, browser tests)"
  as_root apt-get update -q
  as_root apt-get install -y -q chromium
fi

# Java for the Spark engine: always for the tests (scripts/test.sh sets DRIFT_NEEDS_JAVA),
# and for a dashboard configured with DRIFT_ENGINE=spark
if { [ -n "${DRIFT_NEEDS_JAVA:-}" ] || [ "${DRIFT_ENGINE:-}" = spark ]; } &&
   ! command -v java >/dev/null 2>&1; then
  step "installing Debian's openjdk-17-jre-headless (Java for the Spark engine)"
  as_root mkdir -p /usr/share/man/man1   # slim images lack it, and the JRE's set-up needs it
  as_root apt-get update -q
  as_root apt-get install -y -q openjdk-17-jre-headless
fi

demo=$(cat analysis/scenarios/rental.py analysis/scenarios/rental_ground_truth.json analysis/store.py | sha256sum | cut -d' ' -f1)
if [ "$(cat data/store/.demo.sha256 2>/dev/null)" != "$demo" ]; then
  step "building the demo store in data/store (720,000 rows and their model)"
  .venv/bin/python -m analysis demo --store data/store
  echo "$demo" > data/store/.demo.sha256
fi
step "checking every snapshot's bin codes and profile (written once per snapshot)"
.venv/bin/python -c "from analysis.profiles import prepare; from analysis.store import Store; prepare(Store('data/store'), progress=lambda m: None)"
step "set-up done"
