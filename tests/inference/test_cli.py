"""``mlcycle serve`` / ``promote`` / ``rollback`` end to end: the running server follows the alias moves."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx

from tests.inference.conftest import REPO, STORE_VARIABLES, clean_environ, free_port, stop_predictor

ROW = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [1, 13],
            "datatype": "FP64",
            "data": [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
        }
    ]
}
MLCYCLE = [sys.executable, "-c", "import sys; from mlcycle.cli import main; sys.exit(main())"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the ``mlcycle`` command in this process (the environment says which MLCYCLE_HOME)."""
    from mlcycle.cli import main

    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def wait_for_version(url: str, version: str, limit_s: float = 30) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        r = httpx.post(f"{url}/v2/models/wine/infer", json=ROW, timeout=10)
        assert r.status_code == 200, r.text
        if r.json()["model_version"] == version:
            return True
        time.sleep(0.2)
    return False


def test_serve_promote_rollback(wine, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(wine.home, home)
    env = {
        **clean_environ(),
        **wine.env,
        "MLCYCLE_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "MLCYCLE_SERVING_PAYLOAD_LOG": "false",
    }
    monkeypatch.setenv("MLCYCLE_HOME", str(home))
    for var in STORE_VARIABLES:
        monkeypatch.delenv(var, raising=False)

    code, _, err = run_cli(["rollback", "wine"], capsys)
    assert code == 2
    assert "records no previous champion" in err

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*MLCYCLE, "serve", "wine@champion", "--http-port", str(port), "--poll-seconds", "0.3"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        assert wait_for_version(url, "1", 5)

        # The release path moves champion only to a version that passed the gate (issue 13): the fixture's
        # versions are bare, so mark v2 as a passed gate would.
        from mlflow import MlflowClient

        from mlcycle import tracking
        from mlcycle.config import load_settings
        from tests.release_helpers import mark_releasable

        tracking.configure(load_settings())
        mark_releasable(MlflowClient(), "wine", "2")
        code, out, err = run_cli(["promote", "wine", "--reason", "canary looks good", "--by", "tester"], capsys)
        assert code == 0, err
        assert "champion is now version 2 (was version 1)" in out
        assert wait_for_version(url, "2"), (tmp_path / "serve.log").read_text()[-3000:]

        code, out, err = run_cli(["rollback", "wine"], capsys)
        assert code == 0, err
        assert "rolled back to version 1" in out
        assert wait_for_version(url, "1")
    finally:
        stop_predictor(proc)
        from mlcycle import tracking

        tracking.configure(wine.settings)
