"""Serving benchmark (issue 3): mlcycle's predictor vs MLServer + mlserver-mlflow vs in-process predict.

Run with ``make bench-serving`` (full: 15 s per cell, < 15 minutes) or ``--quick`` (a few seconds per
cell). It is a benchmark, not a test: it prints numbers and how they compare with the targets.

What it does, in one run on one machine:

1. Trains the wine models — a random forest (100 trees, max depth 8) and a logistic regression (a
   scaling pipeline) — and logs them with ``mlflow.sklearn.log_model`` (skops, with the trusted types
   from ``mlcycle.training.estimators``) into a temporary ``MLCYCLE_HOME``, registered with alias
   ``champion``. Issue 14 adds two models a team brings (``--models`` picks a subset): a custom
   ``PythonModel`` returning a DataFrame of two columns (``pyfunc``) and a LightGBM classifier behind an
   OrdinalEncoder for its string column (``lightgbm``), sent typed v2 columns, 1 and 64 rows at 32
   connections, their answers checked against ``mlflow.pyfunc`` on both servers.
2. Installs MLServer + mlserver-mlflow (KServe's stock runtime for MLflow models) from PyPI into its
   own virtualenv ``benchmarks/.venv-mlserver`` (git-ignored; reused when the pins match), started at
   the beginning so it overlaps with training.
3. Starts, all on 127.0.0.1 and free ports: the no-op v2 ceiling (``benchmarks/noop_v2.py``: FastAPI +
   uvicorn parsing the same v2 body and returning a fixed answer; issue 19's yardstick, every cell is
   also printed as a fraction of it), mlcycle's predictor (``python -m inference``), MLServer in
   its default configuration, and MLServer with adaptive batching on (``max_batch_size`` /
   ``max_batch_time`` in model-settings.json). Each serves both models.
4. For each cell (model × 1/64-row requests × 1/32 connections) loads each server in turn with wrk
   (a Lua script POSTs the same v2 body), bounded by ``--duration`` seconds per run.
5. Measures the in-process floor just before and after each unloaded cell (the lower p50 counts): the
   estimator's ``predict`` on a plain array, and for reference on a DataFrame and through
   ``mlcycle.serving.predict``.
6. Compares gRPC with REST for 1-row requests on mlcycle and on the no-op ceiling (which also serves a
   no-op gRPC ``ModelInfer`` on grpcio, the predictor's gRPC server), both protocols driven by h2load
   (``benchmarks/protocol_load.py``).
7. Prints req/s, p50, p99 per server and cell, then each target of the issue with its ratio.

Every process it starts is killed in a ``finally``; results are also written as JSON under
``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLSERVER_VENV = HERE / ".venv-mlserver"
RESULTS_DIR = HERE / "results"
MLSERVER_VERSION = "1.7.1"
# MLServer's batching settings for the "batching on" variant: up to 32 requests (one per connection)
# combined, waiting at most 5 ms for the batch to fill.
MLSERVER_MAX_BATCH_SIZE = 32
MLSERVER_MAX_BATCH_TIME = 0.005

MODELS = {"forest": "random_forest", "logreg": "logistic_regression"}
# Issue 14: models a team brings, logged with plain MLflow calls. ``pyfunc``: a custom PythonModel that
# returns a DataFrame of two columns; ``lightgbm``: a LightGBM classifier behind an OrdinalEncoder for
# its string column (as examples/lightgbm_categorical). Measured at 32 connections only.
BROUGHT = ("pyfunc", "lightgbm")
ALL_MODELS = (*MODELS, *BROUGHT)
REGISTERED = {"forest": "wine-forest", "logreg": "wine-logreg", "pyfunc": "two-columns", "lightgbm": "churn-lgbm"}
ROW_COUNTS = (1, 64)
NOOP = "noop-ceiling"
MLCYCLE_2W = "mlcycle-2-workers"
CONNECTIONS = (1, 32)  # the wine models' cells; a brought model's are BenchModel.connections


def log(message: str) -> None:
    print(f"[bench-serving {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts, each in its own session so its children die with it."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(
        self, args: list[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen:
        out = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        proc._log_file = out  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        else:
            # The leader is gone; its session's children may not be.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc._log_file.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            with contextlib.suppress(Exception):
                self.stop(proc)
        self.started.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base_url: str, model_names: list[str], proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    paths = [f"/v2/models/{name}/ready" for name in model_names]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{tail(log_path)}")
        try:
            if all(httpx.get(base_url + p, timeout=2).status_code == 200 for p in paths):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server at {base_url} not ready after {timeout:.0f} s; log:\n{tail(log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- MLServer's virtualenv ----------------------------------------------------------------------------


def mlserver_requirements() -> list[str]:
    """MLServer pins, with the model stack pinned to what logged the models (skops needs a match)."""
    import lightgbm
    import mlflow
    import pandas
    import sklearn
    import skops

    return [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-mlflow=={MLSERVER_VERSION}",
        f"mlflow=={mlflow.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"lightgbm=={lightgbm.__version__}",  # the LightGBM model (issue 14)
        # pandas 3 (what MLServer's deps resolve to otherwise) breaks MLServer 1.7.1's PandasCodec on
        # string outputs (KeyError 'O' on the StringDtype): the pandas the models were logged with.
        f"pandas=={pandas.__version__}",
        # uvloop 0.22 made asyncio.get_event_loop() raise without a running loop, which kills
        # MLServer 1.7.1's inference-pool workers at start ("There is no current event loop").
        "uvloop<0.22",
    ]


def start_mlserver_install(procs: Processes, work: Path) -> subprocess.Popen | None:
    """Create/refresh ``benchmarks/.venv-mlserver`` in the background; None if already up to date."""
    wanted = "\n".join(mlserver_requirements())
    stamp = MLSERVER_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == wanted and (MLSERVER_VENV / "bin" / "mlserver").exists():
        log(f"MLServer virtualenv up to date ({MLSERVER_VENV.relative_to(ROOT)})")
        return None
    log(
        f"installing MLServer {MLSERVER_VERSION} + mlserver-mlflow into {MLSERVER_VENV.relative_to(ROOT)} "
        "(takes a few minutes; runs while the models train)"
    )
    if not (MLSERVER_VENV / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(MLSERVER_VENV)
    (work / "requirements-mlserver.txt").write_text(wanted + "\n")
    return procs.start(
        [
            str(MLSERVER_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(work / "requirements-mlserver.txt"),
        ],
        log_path=work / "mlserver-install.log",
    )


def finish_mlserver_install(proc: subprocess.Popen | None, work: Path, timeout: float = 900) -> None:
    if proc is None:
        return
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError("MLServer install did not finish in time") from e
    if rc != 0:
        raise RuntimeError(f"MLServer install failed:\n{tail(work / 'mlserver-install.log')}")
    (MLSERVER_VENV / ".installed").write_text("\n".join(mlserver_requirements()))
    log("MLServer virtualenv ready")


# -- models ---------------------------------------------------------------------------------------------


@dataclass
class BenchModel:
    key: str  # forest | logreg
    registered: str
    uri: str  # models:/<name>@champion
    local_dir: Path  # the downloaded MLflow model directory (what MLServer is given)
    estimator: Any
    columns: list[str]
    rows: np.ndarray  # wine feature rows to send
    frame: Any = None  # a brought model's typed rows to send (a DataFrame); None for the wine models
    pyfunc: Any = None  # a brought model loaded through mlflow.pyfunc: what its answers must equal
    connections: tuple[int, ...] = CONNECTIONS


def train_and_log(home: Path, keys: tuple[str, ...] = ALL_MODELS) -> dict[str, BenchModel]:
    os.environ["MLCYCLE_HOME"] = str(home)
    for var in (
        "MLCYCLE_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "MLCYCLE_REGISTRY_URI",
        "MLFLOW_REGISTRY_URI",
        "MLCYCLE_TEAM",
        "MLCYCLE_ARTIFACT_ROOT",
    ):
        os.environ.pop(var, None)
    import mlflow
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_wine

    from mlcycle import tracking
    from mlcycle.config import load_settings
    from mlcycle.training.estimators import build_estimator, get_spec

    settings = load_settings()
    tracking.configure(settings)
    experiment_id = tracking.ensure_experiment("bench-serving", settings)
    data = load_wine(as_frame=True)
    x, y = data.data, data.target
    client = MlflowClient()
    models: dict[str, BenchModel] = {}
    for key, kind in MODELS.items():
        if key not in keys:
            continue
        estimator = build_estimator(kind)
        estimator.fit(x, y)
        signature = infer_signature(x, estimator.predict(x))
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"bench-{key}"):
            info = mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=signature,
                input_example=x.head(3),
                serialization_format="skops",
                skops_trusted_types=list(get_spec(kind).skops_trusted_types) or None,
                registered_model_name=REGISTERED[key],
            )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(REGISTERED[key], "champion", version)
        local_dir = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(home / "local" / key))
        )
        models[key] = BenchModel(
            key=key,
            registered=REGISTERED[key],
            uri=f"models:/{REGISTERED[key]}@champion",
            local_dir=local_dir,
            estimator=estimator,
            columns=list(x.columns),
            rows=x.to_numpy(),
        )
        log(f"logged {kind} as {REGISTERED[key]} v{version} (skops)")
    for key in BROUGHT:
        if key in keys:
            models[key] = log_brought(key, home, experiment_id, client)
    return models


def _two_column_model() -> Any:
    import mlflow.pyfunc
    import pandas as pd

    class TwoColumns(mlflow.pyfunc.PythonModel):  # defined here: cloudpickled by value, as a team's would be
        """Pre- and post-processing in the model: a float score and a string label per row."""

        def predict(self, context, model_input, params=None):
            score = model_input["x"].to_numpy() * 2.0 + model_input["k"].to_numpy() + model_input["flag"].to_numpy()
            label = np.where(model_input["color"].to_numpy() == "red", "hot", "cold")
            return pd.DataFrame({"score": score, "label": label})

    return TwoColumns()


def brought_frame(key: str, n: int = 600, seed: int = 0) -> Any:
    """The typed rows a brought model takes (and is sent)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    if key == "pyfunc":
        return pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n), "x": rng.normal(size=n),
                             "k": rng.integers(0, 5, n).astype(np.int64), "flag": rng.random(n) > 0.5})
    return pd.DataFrame({"plan": rng.choice(["basic", "plus", "pro"], n),
                         "monthly_spend": np.round(rng.gamma(2, 30, n), 2),
                         "tenure_months": rng.integers(1, 72, n).astype(np.int64),
                         "support_calls": rng.poisson(1.5, n).astype(np.int64)})


def log_brought(key: str, home: Path, experiment_id: str, client: Any) -> BenchModel:
    """Fit and log a brought model (pinned requirements: MLflow's inference of them takes ~15 s)."""
    from importlib.metadata import version

    import mlflow

    frame = brought_frame(key)
    pins = [f"{d}=={version(d)}" for d in ("mlflow", "pandas", "numpy", "cloudpickle")]
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"bench-{key}"):
        if key == "pyfunc":
            info = mlflow.pyfunc.log_model(name="model", python_model=_two_column_model(),
                                           input_example=frame.head(5), registered_model_name=REGISTERED[key],
                                           pip_requirements=pins)
        else:
            from lightgbm import LGBMClassifier
            from sklearn.compose import ColumnTransformer
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import OrdinalEncoder

            y = ((frame.support_calls > 1) ^ (frame.plan == "pro")).astype(np.int64)
            encode = ColumnTransformer(
                [("plan", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["plan"])],
                remainder="passthrough")
            lgbm = LGBMClassifier(n_estimators=60, num_leaves=15, min_child_samples=10, random_state=0, n_jobs=1,
                                  verbose=-1)
            estimator = Pipeline([("encode", encode), ("lgbm", lgbm)]).fit(frame, y, lgbm__categorical_feature=[0])
            pins += [f"{d}=={version(d)}" for d in ("scikit-learn", "lightgbm", "skops")]
            info = mlflow.sklearn.log_model(
                estimator, name="model", input_example=frame.head(5), registered_model_name=REGISTERED[key],
                pip_requirements=pins,
                skops_trusted_types=["collections.OrderedDict", "lightgbm.basic.Booster",
                                     "lightgbm.sklearn.LGBMClassifier"],
            )
    version_ = str(info.registered_model_version)
    client.set_registered_model_alias(REGISTERED[key], "champion", version_)
    local_dir = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(home / "local" / key))
    )
    log(f"logged {key} as {REGISTERED[key]} v{version_}")
    return BenchModel(key=key, registered=REGISTERED[key], uri=f"models:/{REGISTERED[key]}@champion",
                      local_dir=local_dir, estimator=None, columns=list(frame.columns), rows=np.empty((0, 0)),
                      frame=frame, pyfunc=mlflow.pyfunc.load_model(str(local_dir)), connections=(32,))


def cloudpickle_copy(model: BenchModel, home: Path) -> Path:
    """The same estimator saved with cloudpickle, for an MLServer that cannot read the skops file."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    frame = model.frame if model.frame is not None else pd.DataFrame(model.rows, columns=model.columns)
    path = home / "cloudpickle" / model.key
    mlflow.sklearn.save_model(
        model.estimator,
        str(path),
        serialization_format="cloudpickle",
        signature=infer_signature(frame, model.estimator.predict(frame)),
    )
    return path


# -- request bodies -----------------------------------------------------------------------------------


V2_TYPES = {"b": "BOOL", "i": "INT64", "f": "FP64", "O": "BYTES"}


def v2_body(model: BenchModel, n_rows: int) -> dict:
    """A v2 request with one named input per signature column (what both servers' metadata lists)."""
    if model.frame is not None:  # typed columns; strings say so (content_type "str", as both servers read it)
        frame = model.frame.head(n_rows)
        inputs = []
        for col in model.columns:
            datatype = V2_TYPES[frame[col].dtype.kind]
            item = {"name": col, "datatype": datatype, "shape": [n_rows], "data": frame[col].tolist()}
            if datatype == "BYTES":
                item["parameters"] = {"content_type": "str"}
            inputs.append(item)
        return {"id": f"bench-{n_rows}", "inputs": inputs}
    rows = model.rows[:n_rows]
    return {
        "id": f"bench-{n_rows}",
        "inputs": [
            {"name": col, "datatype": "FP64", "shape": [n_rows, 1], "data": rows[:, i].tolist()}
            for i, col in enumerate(model.columns)
        ],
    }


def check_answer(base_url: str, served_name: str, model: BenchModel, n_rows: int, server: str) -> None:
    """One request before loading: the server must answer 200 with the estimator's predictions."""
    response = httpx.post(f"{base_url}/v2/models/{served_name}/infer", json=v2_body(model, n_rows), timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{server}/{model.key}: HTTP {response.status_code}: {response.text[:500]}")
    outputs = response.json()["outputs"]
    if model.frame is not None:
        return _check_brought(outputs, model, n_rows, server, response.text)
    expected = [str(v) for v in model.estimator.predict(_frame(model, n_rows)).tolist()]
    for output in outputs:
        data = np.asarray(output["data"]).reshape(-1).tolist()
        if [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in data] == expected:
            return
    raise RuntimeError(f"{server}/{model.key}: no output equals the estimator's predictions: {response.text[:500]}")


def _check_brought(outputs: list[dict], model: BenchModel, n_rows: int, server: str, text: str) -> None:
    """Each column pyfunc returns (or its one array) must be some output, values equal (floats to 1e-9)."""
    import pandas as pd

    want = model.pyfunc.predict(model.frame.head(n_rows))
    if isinstance(want, pd.DataFrame):
        columns = {c: want[c].to_numpy() for c in want.columns}
    else:
        columns = {"": np.asarray(want)}
    for name, expected in columns.items():
        for output in outputs:
            got = np.asarray(output["data"]).reshape(-1)
            if len(got) != len(expected):
                continue
            if expected.dtype.kind == "f" and got.dtype.kind in "fi" and np.allclose(got, expected, rtol=1e-9, atol=0):
                break
            if expected.dtype.kind != "f" and [str(v) for v in got.tolist()] == [str(v) for v in expected.tolist()]:
                break
        else:
            raise RuntimeError(f"{server}/{model.key}: no output equals pyfunc's {name or 'predictions'}: {text[:500]}")


def _frame(model: BenchModel, n_rows: int):
    import pandas as pd

    if model.frame is not None:
        return model.frame.head(n_rows)

    return pd.DataFrame(model.rows[:n_rows], columns=model.columns)


# -- servers --------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base_url: str
    served: dict[str, str]  # model key -> served model name
    proc: subprocess.Popen
    note: str = ""
    grpc_port: int | None = None


def start_mlcycle(
    procs: Processes,
    models: dict[str, BenchModel],
    home: Path,
    work: Path,
    timeout: float,
    extra: list[str],
    name: str = "mlcycle",
) -> Server:
    port = free_port()
    env = {**os.environ, "MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    # The predictor's defaults otherwise (workers, batching, payload log); gRPC stays off, as the
    # load is REST. --mlcycle-args adds flags, e.g. "--workers 2".
    args = [sys.executable, "-m", "inference", *[m.uri for m in models.values()]]
    grpc_port = free_port()  # for the gRPC vs REST comparison (protocol_load.py)
    args += ["--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", str(grpc_port), *extra]
    log_path = work / f"{name}.log"
    proc = procs.start(args, log_path=log_path, env=env, cwd=ROOT)
    served = {key: m.registered for key, m in models.items()}
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, list(served.values()), proc, log_path, timeout)
    return Server(name, base, served, proc, note=" ".join(extra), grpc_port=grpc_port)


def start_noop(procs: Processes, models: dict[str, BenchModel], work: Path, timeout: float) -> Server:
    """The ceiling: a no-op v2 endpoint on the same HTTP stack (benchmarks/noop_v2.py), one worker."""
    port, grpc_port = free_port(), free_port()  # gRPC: the ceiling of the gRPC vs REST comparison
    log_path = work / "noop.log"
    proc = procs.start(
        [sys.executable, str(HERE / "noop_v2.py"), "--host", "127.0.0.1", "--port", str(port)]
        + ["--grpc-port", str(grpc_port)],
        log_path=log_path,
        cwd=ROOT,
    )
    served = {key: m.registered for key, m in models.items()}
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, list(served.values()), proc, log_path, timeout)
    note = "FastAPI + uvicorn, infer answered in front of FastAPI's app as the predictor's is; parses the v2 body"
    return Server(NOOP, base, served, proc, note=note + ", fixed answer", grpc_port=grpc_port)


def start_mlserver(
    procs: Processes, models: dict[str, BenchModel], home: Path, work: Path, *, batching: bool, timeout: float
) -> Server:
    name = "mlserver-batching" if batching else "mlserver-default"
    repo = work / name
    repo.mkdir()
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    # Only what must differ from the defaults here: loopback and free ports.
    (repo / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
            }
        )
    )
    note = ""
    for model in models.values():
        model_dir = repo / model.registered
        model_dir.mkdir()
        uri = model.local_dir
        if not mlserver_reads_skops(model, work):
            uri = cloudpickle_copy(model, home)
            note = "MLServer cannot read the skops model files: it serves a cloudpickle copy"
        settings: dict[str, Any] = {
            "name": model.registered,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(uri)},
        }
        if batching:
            settings["max_batch_size"] = MLSERVER_MAX_BATCH_SIZE
            settings["max_batch_time"] = MLSERVER_MAX_BATCH_TIME
        (model_dir / "model-settings.json").write_text(json.dumps(settings, indent=2))
    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = work / f"{name}.log"
    proc = procs.start(
        [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(repo)], log_path=log_path, env=env, cwd=repo
    )
    base = f"http://127.0.0.1:{port}"
    served = {key: m.registered for key, m in models.items()}
    wait_ready(base, list(served.values()), proc, log_path, timeout)
    return Server(name, base, served, proc, note)


_skops_check: dict[str, bool] = {}


def mlserver_reads_skops(model: BenchModel, work: Path) -> bool:
    """Whether MLServer's environment loads our skops model through mlflow.pyfunc (as its runtime does)."""
    if model.key not in _skops_check:
        code = (
            "import mlflow.pyfunc, sys; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "print(m.metadata.flavors.keys())"
        )
        env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        result = subprocess.run(
            [str(MLSERVER_VENV / "bin" / "python"), "-c", code, str(model.local_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        _skops_check[model.key] = result.returncode == 0
        if result.returncode != 0:
            log(f"MLServer's mlflow cannot load the skops {model.key}: {result.stderr.strip()[-300:]}")
    return _skops_check[model.key]


# -- load generation ---------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f, ' ..
    '"max_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Run:
    server: str
    model: str
    rows: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float = 0.0
    rounds: list[dict] = field(default_factory=list)  # per-round rps/p50/p99 when split in rounds


def combine(parts: list[Run]) -> Run:
    """One cell's rounds as one result: total throughput, and the median of the rounds' p50 and p99."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    seconds = sum(p.seconds for p in parts)
    return Run(
        first.server,
        first.model,
        first.rows,
        first.connections,
        rps=sum(p.rps * p.seconds for p in parts) / seconds if seconds else 0.0,
        p50_ms=statistics.median(p.p50_ms for p in parts),
        p99_ms=statistics.median(p.p99_ms for p in parts),
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=seconds,
        rounds=[{"rps": p.rps, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms} for p in parts],
    )


def run_wrk(url: str, body_path: Path, script: Path, connections: int, duration: int) -> dict:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    env = {**os.environ, "BENCH_BODY": str(body_path)}
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=duration + 60, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-500:]}")


def measure(
    server: Server, model: BenchModel, rows: int, connections: int, duration: int, work: Path, script: Path
) -> Run:
    body_path = work / f"body-{model.key}-{rows}.json"
    if not body_path.exists():
        body_path.write_text(json.dumps(v2_body(model, rows)))
    url = f"{server.base_url}/v2/models/{server.served[model.key]}/infer"
    r = run_wrk(url, body_path, script, connections, duration)
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    ok = max(r["requests"] - r["status"], 0)
    return Run(
        server.name,
        model.key,
        rows,
        connections,
        rps=ok / (r["duration_us"] / 1e6),
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        requests=r["requests"],
        errors=errors,
        seconds=r["duration_us"] / 1e6,
    )


# -- in-process floor -----------------------------------------------------------------------------------


def _without_feature_names(estimator: Any) -> Any:
    """A copy that takes a plain array without scikit-learn's per-call feature-name check."""
    clone = copy.deepcopy(estimator)
    for step in [s for _, s in getattr(clone, "steps", [])] or [clone]:
        if "feature_names_in_" in vars(step):
            del step.feature_names_in_
    return clone


_loaded: dict[str, Any] = {}


def floor_functions(model: BenchModel, rows: int, home: Path) -> dict[str, Any]:
    """In-process calls: ``predict`` on an array (the floor), on a DataFrame, and mlcycle's own predict."""
    frame = _frame(model, rows)
    if model.frame is not None:  # a brought model: pyfunc's predict on the DataFrame is the floor
        x = frame
        calls = {"predict": lambda: model.pyfunc.predict(frame)}
    else:
        bare = _without_feature_names(model.estimator)
        x = np.ascontiguousarray(model.rows[:rows], dtype=np.float64)
        calls = {"predict": lambda: bare.predict(x), "predict(DataFrame)": lambda: model.estimator.predict(frame)}
    try:  # mlcycle's in-process path (its loading + predict)
        from mlcycle.config import load_settings
        from mlcycle.serving.loading import load_model
        from mlcycle.serving.predict import predict

        if model.key not in _loaded:
            settings = load_settings(home=home)
            _loaded[model.key] = load_model(model.uri, settings)
            if settings.serving_compile:  # as the predictor serves it
                from mlcycle.serving.compiled import compile_loaded

                compile_loaded(_loaded[model.key])
        loaded = _loaded[model.key]
        if model.frame is not None:
            from mlcycle.serving.schema import frame_to_input

            x, _ = frame_to_input(frame, loaded.schema)
        calls["mlcycle.serving.predict"] = lambda: predict(loaded, x)
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - informational only; the floor above is what counts
        log(f"mlcycle.serving in-process predict not measured: {e}")
    return calls


def floor_ms(calls: dict[str, Any], seconds: float) -> dict[str, float]:
    """p50 of each call, sampled round-robin so that they share whatever else the machine is doing."""
    for fn in calls.values():
        for _ in range(5):
            fn()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(samples["predict"]) < 20_000:
        for label, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            samples[label].append(time.perf_counter() - t0)
    return {label: statistics.median(values) * 1000 for label, values in samples.items()}


# -- report ----------------------------------------------------------------------------------------------


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    floors: dict[str, dict[str, float]] = field(default_factory=dict)  # "forest/1" -> {...}
    protocols: list[dict] = field(default_factory=list)  # gRPC vs REST, 1 row, from protocol_load
    notes: list[str] = field(default_factory=list)

    def get(self, server: str, model: str, rows: int, connections: int) -> Run | None:
        for run in self.runs:
            if (run.server, run.model, run.rows, run.connections) == (server, model, rows, connections):
                return run
        return None


def print_table(report: Report) -> None:
    print()
    print("each cell beside the no-op ceiling of the same cell (req/s as a fraction of its, p99 as a multiple):")
    header = f"{'model':8} {'rows':>4} {'conns':>5}  {'server':18} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
    print(header + f" {'errors':>6} {'of ceiling':>10} {'p99 x':>7}")
    print("-" * 97)
    for run in report.runs:
        ceiling = report.get(NOOP, run.model, run.rows, run.connections)
        frac = f"{run.rps / ceiling.rps:>9.0%}" if ceiling and ceiling.rps and run.server != NOOP else f"{'':>9}"
        p99x = f"{run.p99_ms / ceiling.p99_ms:>6.1f}x" if ceiling and ceiling.p99_ms and run.server != NOOP else ""
        print(
            f"{run.model:8} {run.rows:>4} {run.connections:>5}  {run.server:18} {run.rps:>9.1f} "
            f"{run.p50_ms:>9.2f} {run.p99_ms:>9.2f} {run.errors:>6}  {frac} {p99x}"
        )
    print()
    print("in-process (p50 ms; 'predict' on an array is the floor the targets use):")
    for cell, values in report.floors.items():
        print(f"  {cell:10} " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))


def targets(report: Report) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) per target of the issue; met is None when a number is missing."""
    rows: list[tuple[str, str, bool | None]] = []

    def ratio(model: str, n: int, c: int, other: str) -> float | None:
        ours, theirs = report.get("mlcycle", model, n, c), report.get(other, model, n, c)
        if ours is None or theirs is None or theirs.rps == 0:
            return None
        return ours.rps / theirs.rps

    def add(label: str, value: float | None, goal: float, fmt: str = "{:.1f}x", at_most: bool = False):
        if value is None:
            rows.append((label, "n/a", None))
        else:
            rows.append((label, fmt.format(value), value <= goal if at_most else value >= goal))

    add("forest 1-row 32c: throughput >= 10x MLServer default", ratio("forest", 1, 32, "mlserver-default"), 10)
    add("forest 1-row 32c: throughput >= 2x MLServer batching", ratio("forest", 1, 32, "mlserver-batching"), 2)
    ours, theirs = report.get("mlcycle", "forest", 1, 32), report.get("mlserver-default", "forest", 1, 32)
    add(
        "forest 1-row 32c: p99 <= 1/4 of MLServer default's",
        ours.p99_ms / theirs.p99_ms if ours and theirs and theirs.p99_ms else None,
        0.25,
        "{:.3f}x",
        True,
    )
    add("issue 14: forest 1-row 32c: throughput >= 25x MLServer default",
        ratio("forest", 1, 32, "mlserver-default"), 25)
    add("logreg 1-row 32c: throughput >= 3x MLServer default", ratio("logreg", 1, 32, "mlserver-default"), 3)
    for model in BROUGHT:
        for n in ROW_COUNTS:
            add(f"issue 14: {model} {n}-row 32c: throughput >= 3x MLServer default",
                ratio(model, n, 32, "mlserver-default"), 3)
            ours, theirs = report.get("mlcycle", model, n, 32), report.get("mlserver-default", model, n, 32)
            add(f"issue 14: {model} {n}-row 32c: p99 <= 1/2 of MLServer default's",
                ours.p99_ms / theirs.p99_ms if ours and theirs and theirs.p99_ms else None, 0.5, "{:.3f}x", True)
    for model in MODELS:
        add(
            f"{model} 64-row 32c: throughput >= 2x MLServer default",
            ratio(model, 64, 32, "mlserver-default"),
            2,
        )

    def of_ceiling(model: str, n: int, c: int) -> float | None:
        ours, ceiling = report.get("mlcycle", model, n, c), report.get(NOOP, model, n, c)
        return ours.rps / ceiling.rps if ours and ceiling and ceiling.rps else None

    add("issue 19: forest 1-row 32c: >= 60% of the no-op ceiling's req/s", of_ceiling("forest", 1, 32), 0.6, "{:.0%}")
    ours, ceiling = report.get("mlcycle", "forest", 1, 32), report.get(NOOP, "forest", 1, 32)
    add(
        "issue 19: forest 1-row 32c: p99 <= 3x the ceiling's p99",
        ours.p99_ms / ceiling.p99_ms if ours and ceiling and ceiling.p99_ms else None,
        3.0,
        "{:.1f}x",
        True,
    )
    for model in MODELS:
        add(f"issue 19: {model} 64-row 32c: >= 40% of the ceiling's req/s", of_ceiling(model, 64, 32), 0.4, "{:.0%}")
    ours, ceiling = report.get("mlcycle", "forest", 1, 1), report.get(NOOP, "forest", 1, 1)
    add(
        "issue 19: forest 1-row 1c: p50 <= the ceiling's p50 + 0.5 ms",
        ours.p50_ms - ceiling.p50_ms if ours and ceiling else None,
        0.5,
        "{:+.2f} ms",
        True,
    )
    for model in MODELS:
        for n in ROW_COUNTS:
            run, floor = report.get("mlcycle", model, n, 1), report.floors.get(f"{model}/{n}")
            add(
                f"{model} {n}-row 1c: p50 <= floor + 1.5 ms",
                run.p50_ms - floor["predict"] if run and floor else None,
                1.5,
                "{:+.2f} ms",
                True,
            )
    return rows


def print_targets(report: Report) -> None:
    print()
    print("targets (issues 3, 14 and 19):")
    for label, measured, met in targets(report):
        verdict = "n/a " if met is None else ("MET " if met else "MISS")
        print(f"  [{verdict}] {label:58} {measured}")
    overheads = []
    for key, values in report.floors.items():
        model, n = key.split("/")
        run = report.get("mlcycle", model, int(n), 1)
        if run and "mlcycle.serving.predict" in values:
            overheads.append(f"{key} {run.p50_ms - values['mlcycle.serving.predict']:+.2f} ms")
    if overheads:
        print("  info: 1c p50 over mlcycle's own in-process predict (HTTP + decode + encode): " + ", ".join(overheads))
    if report.protocols:
        print()
        print("gRPC vs REST, 1-row requests, h2load for both (protocol_load.py; connections x streams):")
        for p in report.protocols:
            print(
                f"  {p['model']:8} {p['server']:13} {p['protocol']:15} {p['shape']:>5} {p['rps']:>9.1f} req/s  "
                f"p50 {p['p50_ms']:.2f} ms  p99 {p['p99_ms']:.2f} ms  errors {p['errors']}"
            )
        for model in sorted({p["model"] for p in report.protocols}):
            rps = {(p["server"], p["protocol"][:4]): p["rps"] for p in report.protocols if p["model"] == model}
            ours_rest, ours_grpc = rps.get(("mlcycle", "REST")), rps.get(("mlcycle", "gRPC"))
            if not ours_rest or ours_grpc is None:
                continue
            ratio = ours_grpc / ours_rest
            line = f"issue 19: {model} gRPC >= REST req/s for 1-row requests: {ratio:.2f}x"
            noop_rest, noop_grpc = rps.get((NOOP, "REST")), rps.get((NOOP, "gRPC"))
            if noop_rest and noop_grpc:
                line += (
                    f" (the no-op servers: gRPC {noop_grpc / noop_rest:.2f}x REST; mlcycle's gRPC is "
                    f"{ours_grpc / noop_grpc:.0%} of grpcio's no-op, its REST {ours_rest / noop_rest:.0%} of uvicorn's)"
                )
            print(f"  [{'MET ' if ratio >= 1 else 'MISS'}] {line}")
    for note in report.notes:
        print(f"  note: {note}")


# -- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell (a smoke run)")
    parser.add_argument("--duration", type=int, help="seconds of load per server and cell (default 15, --quick 3)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="split each cell's duration into rounds that alternate the servers (default 3, --quick 1); "
        "p50/p99 are the median over rounds",
    )
    parser.add_argument(
        "--servers",
        default=f"{NOOP},mlcycle,{MLCYCLE_2W},mlserver-default,mlserver-batching",
        help="comma-separated subset of the servers to run",
    )
    parser.add_argument(
        "--models",
        default=",".join(ALL_MODELS),
        help=f"comma-separated subset of the models to run ({', '.join(ALL_MODELS)}), e.g. pyfunc,lightgbm,forest",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--mlcycle-args", default="", help='extra flags for the predictor, e.g. "--workers 2"')
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, model repos)")
    parser.add_argument(
        "--protocol-concurrency", type=int, default=32, help="outstanding requests in the gRPC vs REST comparison"
    )
    args = parser.parse_args(argv)
    duration = args.duration or (3 if args.quick else 15)
    rounds = args.rounds or (1 if args.quick else 3)
    if duration // rounds < 1:
        parser.error("--duration must give each round at least one second")
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    keys = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not keys or set(keys) - set(ALL_MODELS):
        parser.error(f"--models takes a comma-separated subset of {', '.join(ALL_MODELS)}, not {args.models!r}")
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: run scripts/install-debian-deps.sh (as root) or apt-get install wrk",
            file=sys.stderr,
        )
        return 2

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = work / "home"
    procs = Processes()
    report = Report()
    try:
        install = start_mlserver_install(procs, work) if any(s.startswith("mlserver") for s in wanted) else None
        models = train_and_log(home, keys)
        (work / "wrk.lua").write_text(WRK_SCRIPT)
        script = work / "wrk.lua"

        servers: list[Server] = []
        if NOOP in wanted:
            log("starting the no-op v2 ceiling")
            servers.append(start_noop(procs, models, work, args.ready_timeout))
            report.notes.append(f"{NOOP}: {servers[-1].note} (benchmarks/noop_v2.py, 1 worker)")
        if "mlcycle" in wanted:
            log("starting mlcycle's predictor")
            servers.append(start_mlcycle(procs, models, home, work, args.ready_timeout, shlex.split(args.mlcycle_args)))
            report.notes.append(
                f"mlcycle predictor: its defaults{' plus ' + args.mlcycle_args if args.mlcycle_args else ''} "
                "(payload logging and metrics on)"
            )
        if MLCYCLE_2W in wanted:
            log("starting mlcycle's predictor with 2 REST workers")
            extra = [*shlex.split(args.mlcycle_args), "--workers", "2"]
            servers.append(start_mlcycle(procs, models, home, work, args.ready_timeout, extra, name=MLCYCLE_2W))
            report.notes.append(f"{MLCYCLE_2W}: the same predictor with --workers 2 (issue 19: 1 and 2 workers)")
        if install is not None:
            finish_mlserver_install(install, work)
        for batching in (False, True):
            name = "mlserver-batching" if batching else "mlserver-default"
            if name in wanted:
                log(f"starting {name}")
                server = start_mlserver(procs, models, home, work, batching=batching, timeout=args.ready_timeout)
                if server.note and server.note not in report.notes:
                    report.notes.append(server.note)
                servers.append(server)
        if not servers:
            log("no server to benchmark")
            return 2
        for server in [s for s in servers if s.name != NOOP]:  # the ceiling's answer is fixed by design
            try:
                for model in models.values():
                    for n in ROW_COUNTS:
                        check_answer(server.base_url, server.served[model.key], model, n, server.name)
            except RuntimeError as e:  # a wrong answer is not benchmarked; the others still are
                log(f"NOT BENCHMARKED: {e}")
                report.notes.append(f"{server.name} not benchmarked: {e}")
                servers.remove(server)
                procs.stop(server.proc)
        log(f"servers answer correctly; loading each for {duration} s per cell, alternating")
        floor_seconds = 1.5 if args.quick else 5.0
        report.notes.append(
            "MLServer's MLflow runtime returns predict() only; mlcycle's predictor also returns probabilities"
        )
        for key, model in models.items():
            for n in ROW_COUNTS:
                for c in model.connections:
                    if c == 1:  # the floor, measured just before and after the servers' unloaded runs
                        calls = floor_functions(model, n, home)
                        before = floor_ms(calls, floor_seconds)
                    parts: dict[str, list[Run]] = {server.name: [] for server in servers}
                    for round_ in range(rounds):
                        for server in servers:  # alternating, round by round
                            if round_ == 0:  # a short warm-up: connection set-up and first calls
                                measure(server, model, n, c, 1, work, script)
                            parts[server.name].append(measure(server, model, n, c, duration // rounds, work, script))
                    for server in servers:
                        run = combine(parts[server.name])
                        report.runs.append(run)
                        log(
                            f"{key} {n}-row {c}c {server.name}: {run.rps:.1f} req/s, "
                            f"p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, errors {run.errors}"
                        )
                    if c == 1:
                        after = floor_ms(calls, floor_seconds)
                        report.floors[f"{key}/{n}"] = {k: min(v, after[k]) for k, v in before.items()}
                        log(f"{key} {n}-row in-process floor: {report.floors[f'{key}/{n}']['predict']:.3f} ms")
        from protocol_load import compare

        for key, model in [(k, m) for k, m in models.items() if m.frame is None]:
            for server in [s for s in servers if s.name in ("mlcycle", NOOP) and s.grpc_port]:
                outstanding = args.protocol_concurrency
                log(f"{key} {server.name}: gRPC vs REST, 1 row, {outstanding} outstanding, {duration} s each")
                for r in compare(
                    "127.0.0.1",
                    int(server.base_url.rsplit(":", 1)[1]),
                    server.grpc_port,
                    server.served[key],
                    model.columns,
                    model.rows[:1],
                    concurrency=outstanding,
                    seconds=duration,
                ):
                    report.protocols.append({"model": key, "server": server.name, **asdict(r), "rps": r.rps})
    finally:
        procs.stop_all()
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report.notes.append(
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
        "(others' work on the machine inflates every number)"
    )
    print_table(report)
    print_targets(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"serving-{time.strftime('%Y%m%dT%H%M%S')}{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "duration_s": duration,
                "runs": [asdict(r) for r in report.runs],
                "floors_ms": report.floors,
                "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in targets(report)],
                "notes": report.notes,
                "protocols": report.protocols,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    log(f"results written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
