#!/usr/bin/env bash
# Start the dashboard on the demo store at http://127.0.0.1:${PORT:-8501}
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the Data vs concept page's default investigation runs in a background worker (about a
# minute, once per data and code version; the page shows its progress and then keeps it)
.venv/bin/python -c "from analysis.investigation import warm; warm('data/store')"
echo "==> Drift Investigator on http://127.0.0.1:${PORT:-8501}"
exec .venv/bin/streamlit run app.py --server.address 127.0.0.1 \
  --server.port "${PORT:-8501}" --server.headless true "$@"
