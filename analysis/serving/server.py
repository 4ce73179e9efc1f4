"""Run the service under uvicorn: ``python -m analysis serve``.

uvicorn handles the signals: on SIGTERM or SIGINT it stops accepting connections, lets
the requests in flight finish (at most :data:`GRACEFUL_S` seconds), then the app's
lifespan ends, which closes the log (everything queued is written and fsynced) and runs
a last compaction, so the store holds every acknowledged row when the process exits
(with status 0).
"""
from __future__ import annotations

import ipaddress
import signal
import sys

from analysis.serving.service import ServiceConfig

GRACEFUL_S = 10


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "info") -> None:
    import uvicorn

    from analysis.serving.app import create_app

    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        public = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        public = host not in ("localhost",)
    if public:
        say(f"note: binding {host}: the service is reachable from other machines")
    app = create_app(config, say=say)
    say(f"serving the {config.scenario} model on http://{host}:{port} (store {config.store}; "
        "POST /predict, POST /feedback, GET /health, GET /metrics, docs at /docs)")
    # uvicorn re-raises the signal that stopped it once it has shut down; after a clean
    # drain the process should exit 0, not die of that signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=GRACEFUL_S, lifespan="on")
    say("drained and stopped: every acknowledged prediction is in the store")
