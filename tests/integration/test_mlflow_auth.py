"""Team isolation enforced by the MLflow server: basic auth on PostgreSQL, on loopback.

One module-scoped server (PostgreSQL for the tracking store *and* the auth database, artifacts proxied to a
folder), users provisioned by ``mlcycle teams sync``. First raw HTTP against MLflow's REST API, no
mlcycle code in the request path: team-b is refused on ``team-a.*`` and allowed on ``team-b.*``, and a
caller without credentials gets 401. Then team-a's lifecycle through mlcycle's commands — training
pipeline on kfp.local, serve, batch, drift — with team-a's credentials, and the same commands with
team-b's credentials (claiming ``MLCYCLE_TEAM=team-a``, so mlcycle's own check lets them through) fail
with one line because the server refuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlcycle.auth import server as auth_server
from mlcycle.auth.credentials import Credentials, read_env_file
from mlcycle.cli import main
from mlcycle.config import load_settings

from .servers import free_port, mlflow_server, postgres_bin, postgres_server, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # The module server's setup (PostgreSQL, MLflow's migrations) counts against the first test's time, and the
    # lifecycle test runs a pipeline, a predictor and eight commands: on a loaded 2-core machine that passes 600 s.
    pytest.mark.timeout(1800),
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL not installed: run scripts/install-debian-deps.sh"),
]
API = "/api/2.0/mlflow"
MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@dataclass
class AuthServer:
    url: str
    home: Path
    admin: Credentials
    team_a: Credentials
    team_b: Credentials
    sync_output: list[dict]


def _without_credentials(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in CREDENTIAL_VARS}


@pytest.fixture(scope="module")
def mlflow_auth(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-auth")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        for name in (*CREDENTIAL_VARS, "MLCYCLE_TEAM", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
                     "MLCYCLE_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        mp.setenv("MLCYCLE_HOME", str(home))
        with postgres_server() as db_url:
            # Users and grants in PostgreSQL too, configured as on the cluster (kustomize/base/mlflow-auth): a URI
            # without user or database, which libpq takes from PGUSER/PGDATABASE (and PGPASSWORD there).
            host = db_url.split("@", 1)[1].rsplit("/", 1)[0]
            _, env = auth_server.prepare(load_settings(), database_uri=f"postgresql+psycopg2://{host}")
            env.update(PGUSER="mlcycle", PGDATABASE="mlflow")
            with mlflow_server(db_url, root / "artifacts", root / "mlflow.log", app_name="basic-auth",
                               env=env, start_timeout=300) as url:
                admin = read_env_file(home / "credentials" / "admin.env")
                # A model an admin made before team-a had a user: sync must hand it to team-a.
                r = httpx.post(f"{url}{API}/registered-models/create", json={"name": "team-a.legacy"},
                               auth=(admin.username, admin.password), timeout=60)
                assert r.status_code == 200, r.text
                mp.setenv("MLCYCLE_TRACKING_URI", url)
                outputs = []
                for _ in range(2):  # idempotent: the second run creates nothing and keeps the passwords
                    with _captured() as out:
                        assert main(["teams", "sync", "--teams", "team-a,team-b", "--json"]) == 0
                    outputs.append(json.loads(out.getvalue()))
                yield AuthServer(url, home, admin, read_env_file(home / "credentials" / "team-a.env"),
                                 read_env_file(home / "credentials" / "team-b.env"), outputs)


class _captured:
    def __enter__(self):
        import contextlib
        import io

        self.buffer = io.StringIO()
        self._redirect = contextlib.redirect_stdout(self.buffer)
        self._redirect.__enter__()
        return self.buffer

    def __exit__(self, *exc):
        self._redirect.__exit__(*exc)


def test_sync_creates_one_user_per_team_once_and_hands_over_existing_models(mlflow_auth):
    first, second = mlflow_auth.sync_output
    assert [t["user_created"] for t in first] == [True, True]
    assert [(t["user_created"], t["password_reset"]) for t in second] == [(False, False), (False, False)]
    assert first[0]["registered_models"] == ["team-a.legacy"] and first[1]["registered_models"] == []
    for team in ("team-a", "team-b"):
        path = mlflow_auth.home / "credentials" / f"{team}.env"
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.read_text().splitlines()[0] == f"MLFLOW_TRACKING_USERNAME={team}"


def test_the_server_refuses_team_b_on_team_a_resources_over_raw_http(mlflow_auth):
    url, a, b = mlflow_auth.url, mlflow_auth.team_a, mlflow_auth.team_b
    as_a = httpx.Client(base_url=url + API, auth=(a.username, a.password), timeout=30)
    as_b = httpx.Client(base_url=url + API, auth=(b.username, b.password), timeout=30)
    anonymous = httpx.Client(base_url=url + API, timeout=30)

    def own(client, team):
        """A team's experiment with a run, and a registered model with one version; returns their ids."""
        r = client.post("/experiments/create", json={"name": f"{team}.raw"})
        assert r.status_code == 200, r.text
        experiment_id = r.json()["experiment_id"]
        run = client.post("/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"]
        logged = client.post("/runs/log-parameter", json={"run_id": run["run_id"], "key": "k", "value": "v"})
        assert logged.status_code == 200, logged.text
        for name in (f"{team}.raw", f"{team}.doomed"):
            assert client.post("/registered-models/create", json={"name": name}).status_code == 200
        return experiment_id, run

    a_experiment, a_run = own(as_a, "team-a")
    b_experiment, b_run = own(as_b, "team-b")

    def attempts(name, doomed, experiment_id, run):
        source = f"{run['artifact_uri']}/model"
        return {
            "create a version": lambda c: c.post("/model-versions/create",
                                                 json={"name": name, "source": source, "run_id": run["run_id"]}),
            "set a tag": lambda c: c.post("/registered-models/set-tag", json={"name": name, "key": "k", "value": "v"}),
            "set an alias": lambda c: c.post("/registered-models/alias",
                                             json={"name": name, "alias": "champion", "version": "1"}),
            "read the model": lambda c: c.get("/registered-models/get", params={"name": name}),
            "read a run": lambda c: c.get("/runs/get", params={"run_id": run["run_id"]}),
            "search the runs": lambda c: c.post("/runs/search", json={"experiment_ids": [experiment_id]}),
            "log to a run": lambda c: c.post("/runs/log-metric", json={"run_id": run["run_id"], "key": "m",
                                                                      "value": 1.0, "timestamp": 0}),
            "delete a model": lambda c: c.request("DELETE", "/registered-models/delete", json={"name": doomed}),
        }

    refused = {what: call(as_b) for what, call in
               attempts("team-a.raw", "team-a.doomed", a_experiment, a_run).items()}
    # A search is filtered rather than refused: team-b gets an answer without team-a's runs in it.
    searched = refused.pop("search the runs")
    assert searched.status_code == 200 and searched.json().get("runs", []) == []
    assert {what: r.status_code for what, r in refused.items()} == {what: 403 for what in refused}
    assert all(r.json().get("error_code") == "PERMISSION_DENIED" for r in refused.values()
               if r.headers.get("content-type", "").startswith("application/json"))
    # The model handed over by `teams sync` is team-a's too, and team-b's alone is not.
    assert as_b.get("/registered-models/get", params={"name": "team-a.legacy"}).status_code == 403
    assert as_a.get("/registered-models/get", params={"name": "team-a.legacy"}).status_code == 200

    allowed = {what: call(as_b) for what, call in
               attempts("team-b.raw", "team-b.doomed", b_experiment, b_run).items()}
    assert {what: r.status_code for what, r in allowed.items()} == {what: 200 for what in allowed}, \
        {what: r.text for what, r in allowed.items() if r.status_code != 200}
    assert [run["info"]["run_id"] for run in allowed["search the runs"].json()["runs"]] == [b_run["run_id"]]
    # team-a is no more allowed on team-b's than team-b on team-a's.
    assert as_a.get("/runs/get", params={"run_id": b_run["run_id"]}).status_code == 403

    for call in attempts("team-a.raw", "team-a.doomed", a_experiment, a_run).values():
        assert call(anonymous).status_code == 401
    wrong = httpx.Client(base_url=url + API, auth=(b.username, "not-the-password"), timeout=30)
    assert wrong.get("/registered-models/get", params={"name": "team-b.raw"}).status_code == 401
    assert as_a.get("/registered-models/get", params={"name": "team-a.raw"}).status_code == 200


def _mlcycle(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """One ``mlcycle`` command in its own process, as a user runs it (its env is all it knows)."""
    return subprocess.run([MLCYCLE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _concurrently(commands: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, subprocess.CompletedProcess]:
    """Independent ``mlcycle`` commands side by side (each mostly waits on imports and the server), in order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {what: pool.submit(_mlcycle, args, env) for what, (args, env) in commands.items()}
        return {what: future.result() for what, future in futures.items()}


def _env(server: AuthServer, creds: Credentials, home: Path) -> dict[str, str]:
    base = _without_credentials({k: v for k, v in os.environ.items()
                                 if not k.startswith(("MLCYCLE_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY"))})
    return {**base, **creds.as_env(), "MLCYCLE_HOME": str(home), "MLCYCLE_TRACKING_URI": server.url,
            "MLCYCLE_TEAM": "team-a", "MLCYCLE_SERVING_POLL_SECONDS": "0"}


def _one_line_refusal(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert lines and lines[-1].startswith("error"), done.stderr[-2000:]
    assert "refused" in lines[-1], lines[-1]
    return lines[-1]


def test_team_a_lifecycle_runs_with_its_credentials_and_team_b_is_refused_by_the_server(mlflow_auth, tmp_path):
    a_env = _env(mlflow_auth, mlflow_auth.team_a, tmp_path / "a")
    trained = _mlcycle(["run", "training", "--dataset", "wine", "--model", "logistic_regression", "--json"], a_env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = json.loads(trained.stdout)
    assert summary["decision"] == "promote"
    # The run holds no credential: params, tags and metrics as the server stores them.
    run = httpx.get(f"{mlflow_auth.url}{API}/runs/get", params={"run_id": summary["run_id"]}, timeout=30,
                    auth=(mlflow_auth.team_a.username, mlflow_auth.team_a.password))
    assert run.status_code == 200 and mlflow_auth.team_a.password not in run.text

    # Serve: the predictor loads team-a.wine@champion as team-a; 150 rows of traffic for the drift check.
    from sklearn.datasets import load_wine

    X = load_wine(as_frame=True).data
    port = free_port()
    log = tmp_path / "predictor.log"
    with open(log, "wb") as out:
        predictor = subprocess.Popen([MLCYCLE, "serve", "wine@champion", "--http-port",
                                      str(port)], env=a_env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert predictor.poll() is None, log.read_text()[-3000:]
            return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200

        wait_until(ready, timeout=180, what="predictor")
        meta = httpx.get(f"{url}/v2/models/wine", timeout=10).json()
        names = [i["name"] for i in meta["inputs"]]
        rows = X[names].head(150).to_numpy(dtype="float64")
        body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                            "data": rows.ravel().tolist()}]}
        r = httpx.post(f"{url}/v2/models/wine/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        if predictor.poll() is None:
            os.killpg(predictor.pid, 15)
        predictor.wait(timeout=30)  # SIGTERM flushes the payload log

    X[names].head(120).to_csv(tmp_path / "in.csv", index=False)
    batch, drift = _concurrently({
        "batch": (["batch", "wine@champion", "--input", str(tmp_path / "in.csv"), "--output",
                   str(tmp_path / "out.parquet")], a_env),
        "drift": (["drift", "wine@champion", "--since", "1h", "--source", str(tmp_path / "a" / "payloads"),
                   "--json"], a_env),
    }).values()
    assert batch.returncode == 0, batch.stderr[-3000:]
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 120
    assert drift.returncode == 0, drift.stderr[-3000:]
    assert json.loads(drift.stdout)["status"] in {"ok", "drift"}

    # team-b's credentials, claiming to be team-a so that mlcycle's own check lets every command through:
    # the server refuses each one, and the command says so in one line.
    b_env = _env(mlflow_auth, mlflow_auth.team_b, tmp_path / "b")
    (tmp_path / "b").mkdir()
    refused = _concurrently({
        "serve": (["serve", "wine@champion", "--http-port", str(free_port())], b_env),
        "batch": (["batch", "wine@champion", "--input", str(tmp_path / "in.csv"), "--output",
                   str(tmp_path / "b" / "out.parquet")], b_env),
        "drift": (["drift", "wine@champion", "--since", "1h", "--source", str(tmp_path / "a" / "payloads")], b_env),
        "promote": (["promote", "wine"], b_env),
        "status": (["status", "wine"], b_env),
        "run training": (["run", "training", "--dataset", "wine", "--model", "logistic_regression"], b_env),
    })
    lines = {what: _one_line_refusal(done) for what, done in refused.items()}
    assert all("team-b" in line or "credentials" in line for line in lines.values()), lines
    assert not (tmp_path / "b" / "out.parquet").exists()

    # Without credentials at all: 401, one line, naming what to set.
    anonymous = _mlcycle(["status", "wine"], _without_credentials(a_env))
    assert "MLFLOW_TRACKING_PASSWORD" in _one_line_refusal(anonymous)
    # And nothing team-b tried left a mark: the champion is still team-a's version 1.
    status = _mlcycle(["status", "wine", "--json"], a_env)
    assert status.returncode == 0, status.stderr
    assert mlflow_auth.team_a.password not in trained.stdout + trained.stderr + batch.stderr + status.stdout


def test_mlcycle_server_auth_runs_mlflow_with_users_over_the_local_store(tmp_path):
    home = tmp_path / "home"
    env = {**_without_credentials(os.environ), "MLCYCLE_HOME": str(home)}
    for name in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    port = free_port()
    with open(tmp_path / "server.log", "wb") as out:
        process = subprocess.Popen([MLCYCLE, "server", "--auth", "--port", str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and httpx.get(f"{url}/health", timeout=2).status_code == 200,
                   timeout=180, what="mlcycle server --auth")
        admin = read_env_file(home / "credentials" / "admin.env")
        assert (home / "credentials" / "admin.env").stat().st_mode & 0o777 == 0o600
        search = f"{url}{API}/experiments/search"
        assert httpx.post(search, json={"max_results": 1}, timeout=30).status_code == 401
        assert httpx.post(search, json={"max_results": 1}, timeout=30,
                          auth=(admin.username, admin.password)).status_code == 200
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)  # SIGTERM: the command stops its server's process group
        process.wait(timeout=30)
    assert "stopping the MLflow tracking server" in (tmp_path / "server.log").read_text()
    assert admin.password not in (tmp_path / "server.log").read_text()
