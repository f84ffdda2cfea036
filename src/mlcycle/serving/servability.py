"""Can this serving code serve a model version? Checked before any alias moves.

Stable interface (the registration gate calls it before it moves ``champion``/``challenger``)::

    report = check_servability("models:/wine/7", settings)
    report.ok        # bool: True only if every check passed
    report.reasons   # list[str]: one line per failed check (empty when ok)
    report.details   # dict: what was checked and measured (versions, row counts, metadata)
    servability_tag(report)  # "ok" | "failed: <reasons>" for the version tag mlcycle.servability

``settings`` must already point MLflow at the registry (:func:`mlcycle.tracking.configure`). The
function never raises for a model that cannot be served (that is a report with ``ok=False``); it
raises only :class:`~mlcycle.errors.ModelNotFoundError` when the version does not exist.

The checks, in order:

1. **Load** the version through exactly the predictor's code (:func:`mlcycle.serving.load_model`),
   treating any warning scikit-learn raises while unpickling (``InconsistentVersionWarning``) as a
   failure: a warning at load is a wrong answer waiting to happen. Then compile it as the predictor
   does (:func:`mlcycle.serving.compiled.compile_loaded`; ``details["runtime"]`` says which path
   serves, ``details["compile"]`` why), so the replay checks the path that will answer requests.
2. **Metadata**: the signature maps to v2 model metadata (:func:`mlcycle.serving.schema.v2_metadata`).
3. **Replay**: the saved input example goes through the v2 decoder and :func:`mlcycle.serving.predict`.
   It is compared with the model's own predictions at training time when they are stored: the
   ``prediction`` column of the run's ``reference/reference.parquet`` (docs/contracts.md; up to
   :data:`MAX_REFERENCE_ROWS` rows replayed), and/or ``expected_predictions.json`` (a JSON list, one
   prediction per input-example row) in the model's directory. If neither is stored, the example's
   predictions are compared with MLflow pyfunc's ``predict`` of the same example.
4. **Requirements**: the model's ``requirements.txt`` against what is installed here
   (:mod:`mlcycle.serving.requirements`: scikit-learn exactly, numpy/scipy/LightGBM/XGBoost by
   major.minor, mlflow/pandas by major, equivalent distributions such as ``xgboost-cpu`` understood).
   ``load_model`` already refuses a mismatch; the reason then starts with ``not servable:``.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.config import Settings
from mlcycle.errors import MlcycleError, ModelNotFoundError, ModelNotServableError, RegistryUnavailableError
from mlcycle.registry import store
from mlcycle.serving.requirements import compare_requirements  # noqa: F401 - re-exported (stable interface)

log = logging.getLogger(__name__)

MAX_REFERENCE_ROWS = 500
EXPECTED_PREDICTIONS_FILE = "expected_predictions.json"
REFERENCE_ARTIFACT = "reference/reference.parquet"

@dataclass
class ServabilityReport:
    """The outcome of :func:`check_servability`."""

    model_uri: str
    ok: bool = True
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.ok = False
        self.reasons.append(reason)


def servability_tag(report: ServabilityReport) -> str:
    """The value of the ``mlcycle.servability`` version tag: ``ok`` or ``failed: <reasons>``."""
    return "ok" if report.ok else "failed: " + "; ".join(report.reasons)[:4900]


def _expected_from_reference(loaded: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(X, prediction)`` from the training run's reference data, if it was logged."""
    if not loaded.run_id:
        return None
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlcycle.serving.schema import frame_to_array, frame_to_input

    try:
        path = mlflow.artifacts.download_artifacts(run_id=loaded.run_id, artifact_path=REFERENCE_ARTIFACT)
    except (MlflowException, OSError):
        return None
    frame = pd.read_parquet(path)
    if "prediction" not in frame.columns:
        return None
    frame = frame.head(MAX_REFERENCE_ROWS)
    if not loaded.schema.is_numeric:
        x, reasons = frame_to_input(frame, loaded.schema)
        if reasons is not None:
            return None
        return x, frame["prediction"].to_numpy()
    return frame_to_array(frame, loaded.schema), frame["prediction"].to_numpy()


def reference_sample(loaded: Any) -> np.ndarray | None:
    """The training run's reference rows (up to :data:`MAX_REFERENCE_ROWS`) as a float array, if logged."""
    reference = _expected_from_reference(loaded)
    return None if reference is None else reference[0]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            return bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-12))
        except (TypeError, ValueError):
            return False
    return bool(np.array_equal(a.astype(str), b.astype(str)))


def check_servability(model_uri: str, settings: Settings) -> ServabilityReport:
    """Check that the predictor can serve ``model_uri`` and answers as the model did in training.

    Args:
        model_uri: the version to check, e.g. ``models:/wine/7`` (any reference ``load_model`` takes).
        settings: mlcycle settings, MLflow already configured.

    Returns:
        The report; ``ok`` is False with one reason per failed check.

    Raises:
        ModelNotFoundError: the model or version does not exist.
    """
    from mlcycle.serving.loading import load_input_example, load_model
    from mlcycle.serving.predict import predict
    from mlcycle.serving.schema import V2Input, decode_v2, v2_metadata

    report = ServabilityReport(model_uri=model_uri)

    # 1. load through the serving code, with load-time warnings as failures
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_model(model_uri, settings)
    except (ModelNotFoundError, RegistryUnavailableError):
        raise
    except ModelNotServableError as e:
        report.fail(e.message)
        return report
    except MlcycleError as e:
        report.fail(f"cannot load: {e.message}")
        return report
    except Exception as e:  # noqa: BLE001 - any load failure means "not servable"; the cause is reported
        if store.is_transient(e):  # an outage of the registry or S3 is no verdict on the model
            raise RegistryUnavailableError(f"cannot check {model_uri}: the registry is unavailable: {e}") from e
        log.warning("servability: loading %s failed", model_uri, exc_info=True)
        report.fail(f"cannot load: {type(e).__name__}: {e}")
        return report
    relevant = [
        w
        for w in caught
        if type(w.message).__name__ == "InconsistentVersionWarning" or str(w.message).startswith("Trying to unpickle")
    ]
    for w in relevant:
        report.fail(f"loading warns: {type(w.message).__name__}: {str(w.message).splitlines()[0]}")
    report.details["version"] = loaded.version
    report.details["features"] = list(loaded.schema.columns)

    # 1b. compile as the predictor will (a model that does not compile serves through scikit-learn: not a
    # failure); the replay below then checks the path that will really serve
    if settings.serving_compile:
        from mlcycle.serving.compiled import compile_loaded

        compile_loaded(loaded)
    report.details["runtime"] = loaded.runtime
    report.details["compile"] = loaded.compile_note

    # 2. signature -> v2 metadata
    try:
        meta = v2_metadata(
            loaded.schema,
            prediction_datatype=loaded.prediction_datatype,
            classes=loaded.classes,
            output_columns=loaded.output_columns,
        )
        report.details["v2_metadata"] = meta
    except (MlcycleError, KeyError, ValueError) as e:
        report.fail(f"signature does not map to v2 metadata: {e}")

    # 3. replay the input example through the decoder and predict
    try:
        example = load_input_example(loaded)
    except Exception as e:  # noqa: BLE001 - an unreadable example fails the check, with its cause
        if store.is_transient(e):
            raise RegistryUnavailableError(f"cannot check {model_uri}: the registry is unavailable: {e}") from e
        example = None
        report.fail(f"input example cannot be read: {type(e).__name__}: {e}")
    if example is None:
        report.fail("the model has no input example to replay; log it with input_example=X.head(5)")
    else:
        try:
            if isinstance(example, np.ndarray):
                x = decode_v2([V2Input("input-0", list(example.shape), "FP64", example.tolist())], loaded.schema)
            else:  # a mixed-type signature: the example is already decoded as a request would be
                x = example
            served = predict(loaded, x)
            report.details["example_rows"] = len(x)
            compared = False
            expected_file = Path(loaded.local_path) / EXPECTED_PREDICTIONS_FILE
            if expected_file.is_file():
                expected = np.asarray(json.loads(expected_file.read_text()))
                compared = True
                if not _same(served.predictions, expected):
                    report.fail("the input example's predictions differ from those stored at training time")
            reference = _expected_from_reference(loaded)
            if reference is not None:
                compared = True
                rx, ry = reference
                got = predict(loaded, rx).predictions
                report.details["reference_rows"] = len(rx)
                mismatches = (
                    int(np.sum(np.asarray(got).astype(str) != np.asarray(ry).astype(str)))
                    if np.asarray(ry).dtype.kind not in "fc"
                    else int(np.sum(~np.isclose(np.asarray(got, dtype=float), np.asarray(ry, dtype=float))))
                )
                if mismatches:
                    report.fail(f"{mismatches} of {len(rx)} reference rows predict differently than at training time")
            if not compared:
                import mlflow.pyfunc

                from mlcycle.serving.predict import as_prediction
                from mlcycle.serving.schema import to_model_frame

                pyfunc = mlflow.pyfunc.load_model(str(loaded.local_path))
                frame = to_model_frame(x, loaded.schema)
                expected = as_prediction(pyfunc.predict(frame), len(x)).predictions
                report.details["compared_with"] = "pyfunc"
                if not _same(served.predictions, expected):
                    report.fail("the served predictions of the input example differ from MLflow pyfunc's")
            else:
                report.details["compared_with"] = "training"
        except MlcycleError as e:
            report.fail(f"the input example does not pass the predictor's validation: {e.message}")
        except Exception as e:  # noqa: BLE001 - a model that cannot predict its own example is not servable
            log.warning("servability: replaying the example of %s failed", model_uri, exc_info=True)
            report.fail(f"predicting the input example fails: {type(e).__name__}: {e}")

    # 4. requirements vs installed
    req = Path(loaded.local_path) / "requirements.txt"
    if req.is_file():
        problems, table = compare_requirements(req.read_text())
        report.details["requirements"] = table
        for p in problems:
            report.fail(f"requirements: {p}")
    else:
        report.details["requirements"] = "missing"
    return report
