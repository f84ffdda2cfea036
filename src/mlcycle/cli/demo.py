"""``mlcycle demo``: the whole lifecycle as a story, on this machine, in a few minutes.

Train and register a champion → serve it → train a challenger and hold it for a canary → send traffic
(a normal batch, then a shifted one) → promote the challenger and watch the server follow the alias →
check drift on the shifted traffic → show the registry and what to open. Every process the demo starts
is stopped before it returns; its state lives in ``<MLCYCLE_HOME>/demo`` (wiped at the start of a run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import typer

from mlcycle.cli.app import app
from mlcycle.cli.app import settings as cli_settings
from mlcycle.errors import MlcycleError

SHIFTED_COLUMNS = ("alcohol", "color_intensity")


class DemoError(MlcycleError):
    """A step of the demo did not do what the story says."""


@dataclass
class DemoReport:
    """What the demo did and saw; ``--json`` prints it and the end-to-end test checks it."""

    home: str = ""
    champion_version: str = ""
    challenger_version: str = ""
    challenger_action: str = ""
    canary_percent: float = 0.0
    answered_by: dict[str, int] = field(default_factory=dict)
    after_promotion_version: str = ""
    drift: dict = field(default_factory=dict)
    report_path: str = ""
    payload_rows: int = 0
    aliases: dict[str, str] = field(default_factory=dict)
    metrics_sample: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _predictor(args: list[str], env: dict[str, str], log_path: Path):
    """Start ``python -m inference`` on loopback; stop it (and only it) when the block ends."""
    import httpx

    port = _free_port()
    with open(log_path, "w") as log:
        command = [sys.executable, "-m", "inference", *args, "--http-port", str(port)]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,  # noqa: S603 (our argv)
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise DemoError(f"the predictor exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the predictor was not ready in 120 s; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _traffic(seed: int, rows: int, shifted: bool):
    """Wine-shaped rows: resampled real rows with a little noise; ``shifted`` scales two features."""
    import numpy as np

    from mlcycle.data import load_dataset

    frame, target = load_dataset("wine")
    features = frame.drop(columns=[target])
    rng = np.random.default_rng(seed)
    sample = features.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    sample = sample + rng.normal(0, 0.01, size=sample.shape) * features.std().to_numpy()
    if shifted:
        for column in SHIFTED_COLUMNS:
            sample[column] = sample[column] * 1.6
    return sample


def _send(url: str, frame, *, prefix: str, batch: int = 20) -> Counter:
    """POST the rows as v2 tensor requests with request ids; count which version answered."""
    import httpx

    answered: Counter = Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, start in enumerate(range(0, len(frame), batch)):
            part = frame.iloc[start:start + batch].to_numpy()
            body = {"id": f"{prefix}-{i}", "inputs": [
                {"name": "input-0", "shape": list(part.shape), "datatype": "FP64", "data": part.ravel().tolist()}]}
            response = client.post("/v2/models/wine/infer", json=body)
            if response.status_code != 200:
                raise DemoError(f"predictor answered {response.status_code}: {response.text[:200]}")
            answered[str(response.json()["model_version"])] += 1
    return answered


def _wait_for_version(url: str, version: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        # Ten one-row requests with distinct ids: with a canary in place, one request could land in the
        # canary's bucket and look swapped when the champion slot is not.
        answered = _send(url, _traffic(99, 10, shifted=False), prefix=f"probe-{time.monotonic_ns()}", batch=1)
        seen = ", ".join(f"v{v}" for v in sorted(answered))
        if set(answered) == {version}:
            return version
        time.sleep(0.5)
    raise DemoError(f"the predictor still serves {seen} {timeout} s after champion moved to v{version}")


@app.command("demo")
def demo(
    canary_percent: float = typer.Option(30.0, "--canary-percent", min=0, max=100,
                                         help="Traffic share of the challenger during the canary."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON at the end."),
) -> None:
    """Tell the whole lifecycle as a story: train, serve, canary, promote, drift, registry."""
    from rich.console import Console
    from rich.rule import Rule

    from mlcycle import tracking
    from mlcycle.config import settings_env
    from mlcycle.registry.versions import alias_version
    from pipelines.local import run_pipeline
    from pipelines.training_pipeline import training_pipeline

    started = time.monotonic()
    console = Console(stderr=as_json)
    base = cli_settings()
    home = base.home_dir / "demo"
    shutil.rmtree(home, ignore_errors=True)
    settings = cli_settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    tracking.configure(settings)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    report = DemoReport(home=str(home), canary_percent=canary_percent)
    env = {**os.environ, **settings_env(settings), "MLCYCLE_SERVING_POLL_SECONDS": "1"}

    def chapter(title: str) -> None:
        console.print(Rule(f"[bold]{title}"))

    def train(title: str, **arguments) -> str:
        from mlcycle.registry.versions import version_of_run

        with console.status(title):
            run_id = run_pipeline(training_pipeline, settings, log_file=settings.log_dir / "pipelines.log",
                                  on_step=lambda step, status: console.print(f"  {'✓' if status == 'SUCCESS' else '✗'} "
                                                                             f"{step}"),
                                  dataset="wine", **arguments)
        return version_of_run("wine", run_id)

    chapter("1. Train and register a first model")
    console.print("A logistic regression on scikit-learn's wine data, through the kfp pipeline on kfp.local.")
    report.champion_version = train("training the first model",
                                    model_type="logistic_regression", params=json.dumps({"C": 0.01}))
    if alias_version("wine", "champion") != report.champion_version:
        raise DemoError("the first model did not become champion")
    console.print(f"→ models:/wine@champion is v{report.champion_version} (the gate's floor was cleared)")

    chapter("2. Train a challenger, held back for a canary")
    console.print("A random forest; the gate compares it with the champion on the same holdout, and "
                  "--no-promote keeps it as challenger until the canary says yes.")
    report.challenger_version = train("training the challenger", model_type="random_forest", auto_promote=False)
    from mlflow.tracking import MlflowClient

    tags = MlflowClient().get_model_version("wine", report.challenger_version).tags
    report.challenger_action = tags.get("mlcycle.gate.decision", "")
    console.print(f"→ v{report.challenger_version}: gate says [bold]{report.challenger_action}[/] — "
                  f"{tags.get('mlcycle.gate.reason', '')}")
    if report.challenger_action != "promote":
        raise DemoError("the random forest was expected to beat the weak first model")

    chapter(f"3. Serve the champion with the challenger as a {canary_percent:g}% canary")
    with _predictor(["models:/wine@champion", "--canary", "models:/wine@challenger", "--canary-percent",
                     str(canary_percent)], env, settings.log_dir / "predictor.log") as url:
        console.print(f"KServe v2 predictor on {url} (v2 REST, v1, /metrics)")
        normal = _traffic(1, 400, shifted=False)
        report.answered_by = dict(_send(url, normal, prefix="normal"))
        share = report.answered_by.get(report.challenger_version, 0) / max(1, sum(report.answered_by.values()))
        console.print(f"→ 20 requests of normal traffic answered by: "
                      f"{', '.join(f'v{v}: {n}' for v, n in sorted(report.answered_by.items()))} "
                      f"(canary share {share:.0%})")

        chapter("4. Promote the challenger; the server follows the alias")
        from mlcycle.serving.promotion import promote

        promote("wine", settings, reason="canary healthy in the demo", by="mlcycle demo")
        report.after_promotion_version = _wait_for_version(url, report.challenger_version)
        console.print(f"→ champion is v{report.challenger_version}; the predictor swapped to it with no restart")

        chapter("5. A shifted batch arrives")
        shift_start = time.time()
        _send(url, _traffic(2, 400, shifted=True), prefix="shifted")
        console.print(f"→ 400 rows with {' and '.join(SHIFTED_COLUMNS)} scaled by 1.6")
        import httpx

        metrics = httpx.get(f"{url}/metrics", timeout=5).text.splitlines()
        report.metrics_sample = [line for line in metrics if line.startswith("mlcycle_requests_total")][:4]
    # The predictor has stopped: its payload logger flushed on shutdown.

    chapter("6. Drift check on the shifted window")
    from mlcycle.monitoring.check import check_drift
    from mlcycle.monitoring.drift import DriftConfig

    since = f"{max(1, int(time.time() - shift_start) + 1)}s"
    # A window counts as drifted when 10% of the columns drift (Evidently's default is half of them):
    # two moved features out of thirteen is what a data scientist wants to hear about.
    summary = check_drift("models:/wine@champion", settings, since=since, config=DriftConfig(drift_share=0.1))
    report.drift = {k: summary.get(k) for k in ("dataset_drift", "drifted_columns", "rows", "status")}
    report.report_path = str(summary.get("report_path", ""))
    report.payload_rows = int(summary.get("rows", 0) or 0)
    drifted = summary.get("drifted_columns") or []
    columns = len(summary.get("scores") or {})
    console.print(f"→ {report.payload_rows} rows answered by v{report.challenger_version} in the window; drifted "
                  f"columns: [bold]{', '.join(drifted) or 'none'}[/] ({len(drifted)} of {columns}); "
                  f"window drifted (>= 10% of columns): [bold]{summary.get('dataset_drift')}[/]")

    chapter("7. Where things stand")
    report.aliases = {alias: alias_version("wine", alias) or "" for alias in ("champion", "challenger")}
    from mlcycle.cli.commands_lifecycle import status as status_command

    if not as_json:
        status_command(name="wine", team=None, as_json=False, limit=5)
    report.seconds = round(time.monotonic() - started, 1)
    console.print("Open next:")
    console.print(f"  • MLflow UI:      mlcycle --home {home} ui")
    console.print(f"  • drift report:   {report.report_path}")
    console.print(f"  • metrics:        mlcycle --home {home} serve models:/wine@champion, then "
                  "http://127.0.0.1:8080/metrics")
    console.print(f"  • logs:           {settings.log_dir}")
    console.print(f"Done in {report.seconds:.0f} s. Every process the demo started has stopped.")
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps(asdict(report), indent=2, default=str))
