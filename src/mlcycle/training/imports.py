"""Models trained elsewhere: brought into mlcycle so they take the same evaluation, gate and release path.

A model logged anywhere (``runs:/<id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
``models:/m-<id>``, or a local MLflow model directory) gets an *import run* in the registered model's
experiment: the model's files are copied into that run's artifacts (so the version does not depend on the
source's lifetime or on another team's registry), the run records the source URI, task, target and flavor
as lineage tags, and it stores a reference sample (the ``--reference`` rows, else the holdout, with the
model's predictions) for drift monitoring. From then on the import run is exactly what a training run is
to the later steps: :func:`mlcycle.lifecycle.run_evaluation`, ``register_and_gate`` and the release path.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle import __version__
from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError, ModelNotFoundError
from mlcycle.training.flavors import LIGHTGBM, PYFUNC, SKLEARN, XGBOOST, Scorer, load_scorer
from mlcycle.training.train import MODEL_ARTIFACT, MODEL_URI_TAG, REFERENCE_ARTIFACT, reference_sample
from mlcycle.training.trainers import resolve_task

log = logging.getLogger(__name__)

IMPORTED = "imported"
SOURCE_TAG = "mlcycle.source_model_uri"


@dataclass(frozen=True)
class ImportResult:
    run_id: str
    model_uri: str
    source_uri: str
    task: str
    flavor: str
    reference_rows: int
    reference_source: str  # the --reference path, or "holdout"


def normalise_source(model_uri: str) -> str:
    """The URI MLflow downloads ``model_uri`` from: registry and run URIs as given, a local directory as a path.

    Raises:
        InvalidInputError: ``model_uri`` is empty, or a local path that is not an MLflow model directory.
    """
    uri = (model_uri or "").strip()
    if not uri:
        raise InvalidInputError("give the model to register: runs:/<id>/<path>, models:/<name>/<version> or a "
                                "local MLflow model directory", field="model_uri")
    if uri.startswith(("runs:/", "models:/", "s3://", "mlflow-artifacts:/")):
        return uri
    path = Path(uri.removeprefix("file://")).expanduser()
    if not (path / "MLmodel").is_file():
        raise InvalidInputError(f"{model_uri!r} is not an MLflow model: a local directory must hold an MLmodel "
                                "file (mlflow.<flavor>.save_model writes one)", field="model_uri")
    return str(path.resolve())


def download_model(model_uri: str, into: Path) -> Path:
    """Download (or copy) the model at ``model_uri`` into ``into``; its directory with the MLmodel file.

    Raises:
        ModelNotFoundError: MLflow has no model there (the message names the URI).
        RegistryUnavailableError: the tracking server did not answer (an outage, not a verdict).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlcycle.registry import store

    source = normalise_source(model_uri)
    try:
        local = Path(store.call(mlflow.artifacts.download_artifacts, artifact_uri=source, dst_path=str(into),
                                what=f"downloading {model_uri}"))
    except MlflowException as e:
        from mlcycle.tracking import auth_error

        if (refused := auth_error(e, f"model {model_uri}")) is not None:
            raise refused from e
        raise ModelNotFoundError(f"no MLflow model at {model_uri}: {e.message}", field="model_uri") from e
    except OSError as e:
        raise ModelNotFoundError(f"no MLflow model at {model_uri}: {e}", field="model_uri") from e
    if not (local / "MLmodel").is_file():
        raise InvalidInputError(f"{model_uri} holds no MLmodel file: point at the model itself (e.g. "
                                "runs:/<id>/model), not at its run or a parent directory", field="model_uri")
    return local


def flavor_of(model_dir: Path) -> str:
    """The flavor mlcycle scores the model with (as :func:`mlcycle.training.flavors.load_scorer` chooses)."""
    from mlflow.models import Model

    flavors = Model.load(str(model_dir)).flavors
    return next((f for f in (SKLEARN, LIGHTGBM, XGBOOST) if f in flavors), PYFUNC)


def read_frame(path: str, target: str, what: str, endpoint_url: str | None = None) -> pd.DataFrame:
    """A holdout or reference table (CSV/Parquet path or s3:// URI) that must hold ``target``."""
    from mlcycle.data.io import read_table

    if not path:
        raise InvalidInputError(f"give the {what} table (a CSV/Parquet path or s3:// URI)", field=what)
    if not path.endswith((".csv", ".parquet", ".pq")) and not path.startswith("s3://"):
        raise InvalidInputError(f"--{what} {path!r}: use a .csv/.parquet path or s3:// URI", field=what)
    frame = read_table(path, endpoint_url=endpoint_url)
    if not target or target not in frame.columns:
        raise InvalidInputError(f"target column {target!r} is not in the {what} {path} "
                                f"(columns: {', '.join(map(str, frame.columns))})", field="target")
    if frame.empty:
        raise InvalidInputError(f"the {what} {path} has no rows", field=what)
    return frame


def import_model(model_uri: str, holdout: pd.DataFrame, target: str, settings: Settings, *, registered_name: str,
                 reference: pd.DataFrame | None = None, reference_source: str = "", task: str = "",
                 dataset: str = "", pipeline_run_id: str = "", seed: int = 0) -> ImportResult:
    """Record the model at ``model_uri`` in an import run of ``registered_name``'s experiment.

    The model must predict the holdout (and the reference rows) with the columns it was given; otherwise
    nothing is registered and the error says why.

    Raises:
        InvalidInputError: no such model file, a wrong task, or a model whose predictions fail on the rows.
        ModelNotFoundError: MLflow has no model at ``model_uri``.
    """
    from mlflow.tracking import MlflowClient

    from mlcycle.data import content_hash
    from mlcycle.tracking import ensure_experiment
    from mlcycle.training.train import features_and_target

    task = resolve_task(task, holdout[target])
    with tempfile.TemporaryDirectory() as tmp:
        local = download_model(model_uri, Path(tmp) / "download")
        flavor = flavor_of(local)
        scorer: Scorer = load_scorer(str(local), model_uri)
        X, _ = features_and_target(holdout, target)
        scorer.predict(X)  # fails here, with the cause, before anything is written
        rows = reference if reference is not None else holdout
        sample = reference_sample(rows, scorer, target, seed=seed)

        client = MlflowClient()
        experiment_id = ensure_experiment(registered_name, settings)
        tags = {
            SOURCE_TAG: model_uri, "mlcycle.model_type": IMPORTED, "mlcycle.trainer": f"{IMPORTED}:{model_uri}",
            "mlcycle.task": task, "mlcycle.flavor": flavor, "mlcycle.target": target,
            "mlcycle.code_version": __version__, "mlcycle.team": settings.team, "mlcycle.registered_name":
            registered_name, "mlcycle.dataset": dataset, "mlcycle.data_hash": content_hash(holdout),
            "mlcycle.pipeline_run_id": pipeline_run_id, "mlcycle.reference_source": reference_source or "holdout",
        }
        run = client.create_run(experiment_id, tags=tags, run_name=f"import {Path(model_uri).name or model_uri}")
        run_id = run.info.run_id
        try:
            client.log_artifacts(run_id, str(local), MODEL_ARTIFACT)
            reference_file = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            sample.to_parquet(reference_file, index=False)
            client.log_artifact(run_id, str(reference_file), str(Path(REFERENCE_ARTIFACT).parent))
            client.log_metric(run_id, "reference_rows", float(len(sample)))
            uri = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT}"
            client.set_tag(run_id, MODEL_URI_TAG, uri)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
    log.info("imported %s into run %s of %s (%s, %s flavor)", model_uri, run_id, registered_name, task, flavor)
    return ImportResult(run_id=run_id, model_uri=uri, source_uri=model_uri, task=task, flavor=flavor,
                        reference_rows=len(sample), reference_source=reference_source or "holdout")
