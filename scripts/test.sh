#!/usr/bin/env bash
# Run the whole test suite: unit, ground truth, AppTest pages, real-browser end to end.
# Extra arguments go to pytest (e.g. scripts/test.sh -k stats).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium for the browser tests"
  as_root apt-get update -q
  as_root apt-get install -y -q chromium
fi

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
