#!/usr/bin/env bash
# Run the whole test suite: unit, ground truth, AppTest pages, real-browser end to end.
# Extra arguments go to pytest (e.g. scripts/test.sh -k stats).
set -euo pipefail
cd "$(dirname "$0")/.."
# the Spark tests run on a local Spark, which needs Java: set-up installs it when missing
DRIFT_NEEDS_JAVA=1 bash scripts/setup.sh

echo "==> running the tests"
set +e
# two worker processes (pytest-xdist; the Spark tests share one): much of the suite waits
# on servers, browsers and Spark, so two workers on two cores take about 9 minutes where
# one takes 15. DRIFT_TEST_WORKERS=0 runs everything in this process.
.venv/bin/python -m pytest -n "${DRIFT_TEST_WORKERS:-2}" --dist loadgroup "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
