"""The model service's API contract, in process (FastAPI's TestClient): answers, every
refusal with its field and reason, nothing logged for a refusal, feedback, /health and
/metrics read back with prometheus-client's own parser."""
import json
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from analysis.scenarios import iris
from analysis.serving import ServiceConfig, create_app
from analysis.serving.schemas import BATCH_CAP
from analysis.store import Store

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    store = tmp_path_factory.mktemp("api") / "store"
    registry = CollectorRegistry()
    app = create_app(ServiceConfig(store=store, compact_interval=0.2, drift_interval=0.2),
                     registry=registry, say=lambda m: None)
    with TestClient(app) as client:
        yield client, app, Store(store)


def _logged(app) -> int:
    return app.state.service.rows_logged


def _samples(client) -> dict:
    text = client.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_one_record_gets_class_probabilities_version_and_id(service):
    client, app, store = service
    r = client.post("/predict", json=SETOSA)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predicted_class"] == "setosa"
    assert set(body["probabilities"]) == set(iris.CLASSES)
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-12
    assert body["model_version"].startswith("logreg-") and len(body["request_id"]) == 32
    assert body["edge_violations"] == []
    # the numbers are the scikit-learn model's
    frame = iris.iris_frame()
    sk = iris.estimator().fit(frame[list(iris.FEATURES)].to_numpy(), frame[iris.TARGET])
    expected = sk.predict_proba(np.array([list(SETOSA.values())]))[0]
    assert np.allclose([body["probabilities"][c] for c in sk.classes_], expected, atol=1e-9)


def test_a_batch_gets_one_id_per_record(service):
    client, app, _ = service
    records = [SETOSA, {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0,
                        "petal_width": 2.5}]
    r = client.post("/predict", json={"instances": records})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["predicted_class"] for p in preds] == ["setosa", "virginica"]
    assert len({p["request_id"] for p in preds}) == 2
    assert r.json()["model_version"] == preds[0]["model_version"]


BAD = [
    ("missing field", {k: v for k, v in SETOSA.items() if k != "petal_width"},
     "petal_width", "field required"),
    ("extra field", {**SETOSA, "colour": 1}, "colour", "unknown field"),
    ("null", {**SETOSA, "sepal_width": None}, "sepal_width", "null is not a number"),
    ("string", {**SETOSA, "sepal_length": "5.1"}, "sepal_length", "is not a number"),
    ("boolean", {**SETOSA, "sepal_length": True}, "sepal_length", "boolean"),
    ("empty batch", {"instances": []}, "instances", "at least 1"),
    ("oversized batch", {"instances": [SETOSA] * (BATCH_CAP + 1)}, "instances",
     f"at most {BATCH_CAP}"),
    ("bad record in a batch", {"instances": [SETOSA, {**SETOSA, "petal_width": None}]},
     "instances[1].petal_width", "null"),
    ("not an object", [1, 2], "body", "expected a JSON object"),
]


@pytest.mark.parametrize("name,payload,field,reason", BAD, ids=[b[0] for b in BAD])
def test_invalid_payload_is_422_with_field_and_reason_and_not_logged(service, name, payload,
                                                                     field, reason):
    client, app, _ = service
    before = _logged(app)
    r = client.post("/predict", json=payload)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    assert _logged(app) == before


@pytest.mark.parametrize("text,reason", [
    ('{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
     "NaN and infinity"),
    ('{"sepal_length": Infinity, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
     "NaN and infinity"),
    ('{"sepal_length": 5.1, "sepal_width": 3.5,', "malformed JSON"),
    ("", "empty request body"),
])
def test_non_finite_and_malformed_json_are_422(service, text, reason):
    client, app, _ = service
    before = _logged(app)
    r = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(reason in e["reason"] for e in r.json()["detail"]), r.json()
    assert _logged(app) == before


def test_a_body_over_a_mebibyte_is_413(service):
    client, app, _ = service
    r = client.post("/predict", content=b"{" + b" " * (1 << 20) + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"][0]["field"] == "body"


def test_implausible_values_are_served_flagged_logged_and_counted(service):
    client, app, store = service
    before = _value(_samples(client), "model_service_edge_violations_total",
                    feature="petal_length", side="above")
    r = client.post("/predict", json={**SETOSA, "petal_length": 25.0})
    assert r.status_code == 200
    body = r.json()
    assert body["edge_violations"] == ["petal_length"]
    after = _value(_samples(client), "model_service_edge_violations_total",
                   feature="petal_length", side="above")
    assert after == before + 1
    # the rule: the training range widened by 10 % of it on each side
    frame = iris.iris_frame()
    lo, hi = frame["petal_length"].min(), frame["petal_length"].max()
    assert app.state.service.model.ranges.high["petal_length"] == pytest.approx(hi + 0.1 * (hi - lo))
    row = _stored_row(store, body["request_id"])
    assert row[iris.EDGE] == "petal_length" and row["petal_length"] == 25.0


def test_a_negative_length_is_served_and_flagged_below(service):
    client, app, _ = service
    before = _value(_samples(client), "model_service_edge_violations_total",
                    feature="petal_width", side="below")
    r = client.post("/predict", json={**SETOSA, "petal_width": -0.1})
    assert r.status_code == 200 and r.json()["edge_violations"] == ["petal_width"]
    assert _value(_samples(client), "model_service_edge_violations_total",
                  feature="petal_width", side="below") == before + 1
    # lengths: the plausible range never reaches below 0 (training minimum 0.1 cm,
    # minus 10 % of the 2.4 cm range would be -0.14)
    assert app.state.service.model.ranges.low["petal_width"] == 0.0


def _stored_row(store, request_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in store.files(iris.DATASET, "production"):
            rows = pq.read_table(path).to_pylist()
            for row in rows:
                if row[iris.ID] == request_id:
                    return row
        time.sleep(0.1)
    raise AssertionError(f"{request_id} never reached the store")


def test_a_logged_row_holds_inputs_class_probabilities_version_time_and_id(service):
    client, _, store = service
    body = client.post("/predict", json=SETOSA).json()
    row = _stored_row(store, body["request_id"])
    assert {f: row[f] for f in iris.FEATURES} == SETOSA
    assert row[iris.PREDICTION] == body["predicted_class"]
    assert row[iris.VERSION] == body["model_version"]
    for c in iris.CLASSES:
        assert row[iris.probability_column(c)] == pytest.approx(body["probabilities"][c])
    # UTC, without a zone (as every timestamp in the store)
    assert abs((row[iris.TIMESTAMP] - datetime.now(timezone.utc).replace(tzinfo=None))
               .total_seconds()) < 60
    assert row[iris.TARGET] is None


def test_feedback_records_once_404_for_unknown_409_for_a_second(service):
    client, app, store = service
    rid = client.post("/predict", json=SETOSA).json()["request_id"]
    r = client.post("/feedback", json={"request_id": rid, "label": "setosa"})
    assert r.status_code == 200 and r.json() == {"request_id": rid, "label": "setosa",
                                                 "status": "recorded"}
    r = client.post("/feedback", json={"request_id": rid, "label": "versicolor"})
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "request_id"
    r = client.post("/feedback", json={"request_id": "0" * 32, "label": "setosa"})
    assert r.status_code == 404
    r = client.post("/feedback", json={"request_id": rid, "label": "rose"})
    assert r.status_code == 422 and "rose" in r.json()["detail"][0]["reason"]
    r = client.post("/feedback", json={"request_id": rid})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "label"
    # the label lands in the store's late labels, keyed by request id
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        labels = [r for p in store.labels(iris.DATASET) for r in pq.read_table(p.path).to_pylist()]
        if any(x[iris.ID] == rid for x in labels):
            break
        time.sleep(0.1)
    assert [x[iris.TARGET] for x in labels if x[iris.ID] == rid] == ["setosa"]


def test_feedback_for_an_id_only_in_the_store_is_checked_there(service):
    client, app, store = service
    rid = client.post("/predict", json=SETOSA).json()["request_id"]
    _stored_row(store, rid)
    app.state.service.index._ids.pop(rid)             # as after a restart or eviction
    assert client.post("/feedback", json={"request_id": rid, "label": "setosa"}).status_code == 200
    time.sleep(0.6)
    app.state.service.index._ids.pop(rid)
    assert client.post("/feedback", json={"request_id": rid, "label": "setosa"}).status_code == 409


def test_health(service):
    client, app, _ = service
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["dataset"] == iris.DATASET
    assert body["model_version"] == app.state.service.model.version
    assert body["rows_logged"] == _logged(app)


def test_metrics_parse_with_prometheus_client(service):
    client, app, _ = service
    client.post("/predict", json={"instances": [SETOSA] * 60})  # the drift scores need 50
    client.post("/predict", json={"instances": []})
    client.post("/predict", json={"instances": [SETOSA] * 120})
    time.sleep(0.7)              # a compaction pass and a drift update
    s = _samples(client)
    assert _value(s, "model_service_http_requests_total", endpoint="/predict", method="POST",
                  code="200") >= 1
    assert _value(s, "model_service_http_errors_total", endpoint="/predict", code="422") >= 2
    assert _value(s, "model_service_http_request_duration_seconds_count", endpoint="/predict") >= 3
    version = app.state.service.model.version
    assert _value(s, "model_service_predictions_total", model_version=version,
                  predicted_class="setosa") >= 1
    assert _value(s, "model_service_rows_logged_total") == _logged(app)
    assert _value(s, "model_service_rows_compacted_total") == _logged(app)
    assert _value(s, "model_service_rows_pending") == 0
    assert _value(s, "model_service_model_info", model_version=version, dataset=iris.DATASET) == 1
    # latest drift scores (the recent rows are nearly all setosa: prediction drift)
    assert ("model_service_prediction_drift", (("test", "jensenshannon"),)) in s
    assert _value(s, "model_service_input_drift", feature="petal_length", test="ks") > 0
    assert _value(s, "model_service_wal_batch_records_count") >= 1


def test_openapi_documents_the_endpoints_and_the_cap(service):
    client, _, _ = service
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/feedback", "/health", "/metrics"} <= set(spec["paths"])
    assert f"1 to {BATCH_CAP}" in json.dumps(spec)


def test_traffic_refuses_what_it_must_not_send():
    from analysis.serving import traffic
    for kwargs, text in (({"url": "http://10.0.0.5:8000"}, "not a loopback"),
                         ({"url": "http://127.0.0.1:1", "rate": 0}, "--rate"),
                         ({"url": "http://127.0.0.1:1", "duration": 7200}, "--duration"),
                         ({"url": "http://127.0.0.1:1", "shift_at": 3}, "needs --shift"),
                         ({"url": "http://127.0.0.1:1", "shift": "upside-down"}, "unknown shift")):
        with pytest.raises(traffic.TrafficError, match=text):
            traffic.run(**kwargs)
    assert traffic.is_loopback("http://localhost:8000") and traffic.is_loopback("http://[::1]:80")
