"""mlcycle.kfp_client through the real ``kfp.Client`` against a small stand-in of the KFP v2beta1 REST API.

The stand-in (a thread on a free loopback port) answers the five endpoints the client uses and records the
JSON it was sent, so the test sees what a real KFP API server would receive: the compiled pipeline spec,
the run's parameters, the namespace and the cron.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from mlcycle import kfp_client

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "pipelines" / "compiled" / "training_pipeline.yaml"
MONITORING = REPO / "pipelines" / "compiled" / "monitoring_pipeline.yaml"


class KfpApi(BaseHTTPRequestHandler):
    experiments: dict[str, dict]
    received: list[tuple[str, str, dict]]

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _reply(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        self.received.append(("GET", url.path, parse_qs(url.query)))
        if url.path == "/apis/v2beta1/healthz":
            return self._reply({"multi_user": False})
        if url.path == "/apis/v2beta1/experiments":
            wanted = json.loads(parse_qs(url.query)["filter"][0])["predicates"][0]["stringValue"]
            found = [e for e in self.experiments.values() if e["display_name"] == wanted]
            return self._reply({"experiments": found, "total_size": len(found)} if found else {})
        return self._reply({"error": "not found"}, 404)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.received.append(("POST", self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            experiment = {"experiment_id": f"exp-{len(self.experiments) + 1}", "display_name": body["display_name"],
                          "namespace": body.get("namespace")}
            self.experiments[experiment["experiment_id"]] = experiment
            return self._reply(experiment)
        if self.path == "/apis/v2beta1/runs":
            return self._reply({"run_id": "run-1", "display_name": body.get("display_name"), "state": "PENDING"})
        if self.path == "/apis/v2beta1/recurringruns":
            return self._reply({"recurring_run_id": "rec-1", "display_name": body.get("display_name")})
        return self._reply({"error": "not found"}, 404)


@pytest.fixture
def kfp_api(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file from this machine
    handler = type("Handler", (KfpApi,), {"experiments": {}, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def posted(handler, path: str) -> list[dict]:
    return [body for method, p, body in handler.received if method == "POST" and p == path]


def test_submit_run_sends_the_compiled_spec_and_parameters(kfp_api):
    host, handler = kfp_api
    client = kfp_client.connect(host, "team-a")
    run = kfp_client.submit_run(client, TRAINING, {"dataset": "breast_cancer", "n_trials": 2},
                                experiment="mlcycle-training", namespace="team-a", run_name="try-1", host=host)
    assert run.run_id == "run-1" and run.experiment_id == "exp-1"
    (experiment,) = posted(handler, "/apis/v2beta1/experiments")
    assert experiment == {"display_name": "mlcycle-training", "namespace": "team-a"}
    (created,) = posted(handler, "/apis/v2beta1/runs")
    assert created["experiment_id"] == "exp-1"
    assert created["display_name"] == "try-1"
    assert created["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "mlcycle-training"
    assert created["runtime_config"]["parameters"] == {"dataset": "breast_cancer", "n_trials": 2}
    # kfp-kubernetes' settings travel with it: the label that lets the team's PodDefault apply.
    assert "platform_spec" in created["pipeline_spec"]


def test_the_second_submit_reuses_the_experiment(kfp_api):
    host, handler = kfp_api
    client = kfp_client.connect(host, "team-a")
    for _ in range(2):
        kfp_client.submit_run(client, TRAINING, {}, experiment="mlcycle-training", namespace="team-a", host=host)
    assert len(posted(handler, "/apis/v2beta1/experiments")) == 1
    assert {body["experiment_id"] for body in posted(handler, "/apis/v2beta1/runs")} == {"exp-1"}


def test_schedule_run_sends_a_cron_trigger_without_catch_up(kfp_api):
    host, handler = kfp_api
    client = kfp_client.connect(host)  # no namespace: the client asks /healthz first
    scheduled = kfp_client.schedule_run(client, MONITORING, {"model_name": "wine", "since": "1h"},
                                        cron="0 0 * * * *", experiment="mlcycle-monitoring",
                                        job_name="monitoring-every-1h", host=host)
    assert scheduled.recurring_run_id == "rec-1"
    assert ("GET", "/apis/v2beta1/healthz", {}) in handler.received
    (created,) = posted(handler, "/apis/v2beta1/recurringruns")
    assert created["display_name"] == "monitoring-every-1h"
    assert created["trigger"] == {"cron_schedule": {"cron": "0 0 * * * *"}}
    assert created["max_concurrency"] == "1" or created["max_concurrency"] == 1
    assert created["no_catchup"] is True
    assert created["mode"] == "ENABLE"
    assert created["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "monitoring-pipeline"
    assert created["runtime_config"]["parameters"] == {"model_name": "wine", "since": "1h"}


def test_an_api_error_is_one_kfp_unavailable_error(kfp_api):
    host, handler = kfp_api
    client = kfp_client.connect(host, "team-a")
    handler.do_POST = lambda self: self._reply({"error": "quota exceeded"}, 500)
    with pytest.raises(kfp_client.KfpUnavailableError, match="experiment look-up failed|run creation failed"):
        kfp_client.submit_run(client, TRAINING, {}, experiment="x", namespace="team-a", host=host)



def test_mlcycle_submit_json_keeps_stdout_to_the_json(kfp_api, tmp_path, monkeypatch, capsys):
    from mlcycle.cli import main

    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))  # submit never opens the MLflow store
    monkeypatch.delenv("MLCYCLE_TEAM", raising=False)
    host, handler = kfp_api
    code = main(["submit", "--host", host, "--namespace", "team-a", "--package", str(TRAINING), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["run_id"] == "run-1"
    assert "Run details:" in err  # kfp.Client's own link, moved to stderr
