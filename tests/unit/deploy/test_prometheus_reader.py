"""The Prometheus reader against a tiny local HTTP server that answers with recorded JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from mlcycle.deploy.prometheus import PrometheusError, PrometheusReader, read_canary_samples


def vector(*series):
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [1732420000.0, str(value)]} for labels, value in series],
        },
    }


# What Prometheus answered for model "wine" in namespace team-a over 10 minutes, champion 4, canary 5.
RECORDED = {
    # a regressor's histogram of predicted values (here empty: wine is a classifier)
    "mlcycle_prediction_value_bucket": vector(),
    "status=~": vector(({"version": "4"}, 9.0), ({"version": "5"}, 12.0)),
    "mlcycle_requests_total": vector(({"version": "4"}, 9000.0), ({"version": "5"}, 1000.0), ({"version": "3"}, 2.0)),
    "histogram_quantile": vector(({"version": "4"}, 0.012), ({"version": "5"}, "NaN")),
    "mlcycle_predictions_total": vector(
        ({"version": "4", "class": "0"}, 300.0),
        ({"version": "4", "class": "1"}, 700.0),
        ({"version": "5", "class": "0"}, 40.0),
        ({"version": "5", "class": "1"}, 60.0),
    ),
}


class Handler(BaseHTTPRequestHandler):
    queries: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        query = parse_qs(urlparse(self.path).query)["query"][0]
        type(self).queries.append(query)
        if "broken" in query:
            status, body = 400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
        else:
            status, body = 200, next(v for k, v in RECORDED.items() if k in query)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus():
    Handler.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_reads_both_versions_from_recorded_answers(prometheus):
    reader = PrometheusReader(prometheus, timeout=5)
    champion, canary = read_canary_samples(
        reader, model="wine", champion_version="4", canary_version="5", namespace="team-a", window="10m"
    )
    assert (champion.requests, champion.errors, champion.p95_latency_seconds) == (9000, 9, 0.012)
    assert (canary.requests, canary.errors) == (1000, 12)
    assert canary.p95_latency_seconds is None  # NaN (no observations) is "not measured"
    assert canary.predictions == {"0": 40.0, "1": 60.0}
    assert all('model="wine",namespace="team-a"' in q for q in Handler.queries)
    assert len(Handler.queries) == 5  # requests, errors, p95, class counts, value histogram
    reader.close()


def test_refused_query_is_a_prometheus_error(prometheus):
    with pytest.raises(PrometheusError, match="parse error"):
        PrometheusReader(prometheus).query("broken{")


def test_unreachable_prometheus_is_a_prometheus_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PrometheusError):
        PrometheusReader(f"http://127.0.0.1:{port}", timeout=2).query("up")
