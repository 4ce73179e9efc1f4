"""Every metric the service exports, declared once, on a registry given by the caller
(tests use a fresh :class:`prometheus_client.CollectorRegistry` and read values with
``registry.get_sample_value``).

Names follow Prometheus' conventions: ``<namespace>_<name>_<unit>``, counters end in
``_total``, durations are in seconds. The namespace is ``model_service``.

=====================================================  =========  =============================
metric                                                 type       labels
=====================================================  =========  =============================
model_service_http_requests_total                      counter    endpoint, method, code
model_service_http_errors_total                        counter    endpoint, code (4xx and 5xx)
model_service_http_request_duration_seconds            histogram  endpoint
model_service_predictions_total                        counter    model_version, predicted_class
model_service_edge_violations_total                    counter    feature, side (below/above)
model_service_rows_with_edge_violations_total          counter
model_service_rows_logged_total                        counter    (durable in the log)
model_service_labels_logged_total                      counter
model_service_rows_compacted_total                     counter    (visible in the store)
model_service_rows_pending                             gauge      (logged, not yet compacted)
model_service_labels_pending                           gauge
model_service_wal_batch_records                        histogram  (group-commit batch sizes)
model_service_wal_fsync_seconds                        histogram
model_service_compaction_errors_total                  counter
model_service_input_drift                              gauge      feature, test
model_service_input_drift_p_value                      gauge      feature, test
model_service_prediction_drift                         gauge      test (class shares)
model_service_drift_window_rows                        gauge      (rows the drift scores saw)
model_service_model_info                               gauge      model_version, dataset
=====================================================  =========  =============================
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "model_service"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: the paths that get their own ``endpoint`` label; anything else is "other", so a
#: client probing random URLs cannot grow the number of series
ENDPOINTS = ("/predict", "/feedback", "/health", "/metrics", "/docs", "/openapi.json")


def endpoint_of(path: str) -> str:
    return path if path in ENDPOINTS else "other"


class ServiceMetrics:
    """The service's metrics on ``registry`` (a new one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None, namespace: str = NAMESPACE):
        self.registry = registry if registry is not None else CollectorRegistry()
        kw = dict(namespace=namespace, registry=self.registry)
        self.requests = Counter("http_requests", "HTTP requests answered",
                                ["endpoint", "method", "code"], **kw)
        self.errors = Counter("http_errors", "HTTP requests answered with a 4xx or 5xx code",
                              ["endpoint", "code"], **kw)
        self.latency = Histogram("http_request_duration_seconds",
                                 "Time from request to response, seconds", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, **kw)
        self.predictions = Counter("predictions", "Predictions answered, by class",
                                   ["model_version", "predicted_class"], **kw)
        self.edge = Counter("edge_violations", "Input values outside the plausible range "
                            "(training range widened by the margin); served, not refused",
                            ["feature", "side"], **kw)
        self.edge_rows = Counter("rows_with_edge_violations",
                                 "Predictions with at least one value outside the plausible "
                                 "range", **kw)
        self.rows_logged = Counter("rows_logged", "Predictions durable in the write-ahead log",
                                   **kw)
        self.labels_logged = Counter("labels_logged", "Labels (feedback) durable in the log",
                                     **kw)
        self.rows_compacted = Counter("rows_compacted", "Predictions written to the store's "
                                      "production snapshots", **kw)
        self.rows_pending = Gauge("rows_pending", "Predictions logged but not yet in the "
                                  "store", **kw)
        self.labels_pending = Gauge("labels_pending", "Labels logged but not yet in the store",
                                    **kw)
        self.wal_batch = Histogram("wal_batch_records", "Records per group commit (one fsync)",
                                   buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), **kw)
        self.wal_fsync = Histogram("wal_fsync_seconds", "Duration of the log's fsync, seconds",
                                   buckets=LATENCY_BUCKETS, **kw)
        self.compaction_errors = Counter("compaction_errors", "Failed compaction passes "
                                         "(rows kept in memory and retried)", **kw)
        self.input_drift = Gauge("input_drift", "Latest input-drift statistic per feature: "
                                 "the recent predictions against the reference",
                                 ["feature", "test"], **kw)
        self.input_drift_p = Gauge("input_drift_p_value", "p-value of the latest input-drift "
                                   "test per feature (tests that have one)",
                                   ["feature", "test"], **kw)
        self.prediction_drift = Gauge("prediction_drift", "Latest prediction drift: distance "
                                      "of the recent class shares from the reference's",
                                      ["test"], **kw)
        self.drift_rows = Gauge("drift_window_rows", "Predictions the latest drift scores "
                                "compared with the reference", **kw)
        self.info = Gauge("model_info", "The model being served (value 1)",
                          ["model_version", "dataset"], **kw)

    def observe_request(self, endpoint: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(code)).inc()
        if code >= 400:
            self.errors.labels(endpoint, str(code)).inc()
        self.latency.labels(endpoint).observe(seconds)
