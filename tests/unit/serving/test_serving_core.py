"""mlcycle.serving: loading, decoding/validation, predict, servability, promotion, canary routing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.errors import InvalidInputError, ModelNotFoundError, PayloadTooLargeError
from mlcycle.serving import V2Input, check_rows, decode_v1, decode_v2, frame_to_array, load_model, predict
from mlcycle.serving.schema import make_schema, v2_metadata


@pytest.fixture(scope="module")
def loaded(wine_models):
    from mlcycle import tracking

    tracking.configure(wine_models.settings)
    return load_model("models:/wine@champion", wine_models.settings)


def test_load_by_alias_resolves_the_registry_version(loaded, wine_models):
    assert loaded.served_name == "wine"
    assert loaded.registered_name == "wine"
    assert loaded.version == "1"
    assert loaded.uri == "models:/wine/1"
    assert loaded.run_id
    assert list(loaded.schema.columns) == list(wine_models.X.columns)
    assert list(loaded.classes) == [0, 1, 2]
    assert loaded.predict_from_proba
    assert loaded.forest_fast_path
    assert loaded.estimator.n_jobs == 1


def test_load_shorthand_and_version(wine_env):
    m = load_model("wine/2", wine_env.settings)
    assert (m.version, m.served_name) == ("2", "wine")


@pytest.mark.parametrize("ref", ["models:/wine@nope", "models:/nowine@champion", "models:/wine/99"])
def test_load_missing_is_not_found(wine_env, ref):
    with pytest.raises(ModelNotFoundError) as e:
        load_model(ref, wine_env.settings)
    assert e.value.http_status == 404


def test_predict_equals_sklearn(loaded, wine_models):
    est = wine_models.estimators["1"]
    x = wine_models.X.to_numpy()
    out = predict(loaded, x)
    np.testing.assert_array_equal(out.predictions, est.predict(wine_models.X))
    np.testing.assert_array_equal(out.probabilities, est.predict_proba(wine_models.X))  # bit for bit
    assert list(out.classes) == [0, 1, 2]
    part = out.slice(3, 5)
    np.testing.assert_array_equal(part.predictions, out.predictions[3:5])


def test_predict_pipeline_equals_sklearn(wine_env):
    m = load_model("models:/wine@challenger", wine_env.settings)
    est = wine_env.estimators["2"]
    out = predict(m, wine_env.X.to_numpy())
    np.testing.assert_array_equal(out.predictions, est.predict(wine_env.X))
    np.testing.assert_allclose(out.probabilities, est.predict_proba(wine_env.X))


def test_v2_metadata_from_signature(loaded):
    meta = v2_metadata(loaded.schema, prediction_datatype=loaded.prediction_datatype, classes=loaded.classes)
    assert meta["inputs"][0] == {
        "name": "alcohol",
        "datatype": "FP64",
        "shape": [-1, 1],
        "parameters": {"content_type": "np"},
    }
    assert len(meta["inputs"]) == 13
    assert meta["outputs"][0] == {"name": "predictions", "datatype": "INT64", "shape": [-1]}
    assert meta["outputs"][1]["shape"] == [-1, 3]


def test_tensor_signature_metadata():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from mlcycle.serving.schema import input_schema

    sig = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4), "x")]))
    schema = input_schema(sig)
    assert schema.is_tensor and schema.n_features == 4
    assert v2_metadata(schema)["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4], "parameters": {"content_type": "np"}}
    ]


SCHEMA = make_schema(["a", "b", "c"], ["double", "double", "long"])


def test_decode_tensor_and_columns_agree():
    rows = [[1.0, 2.0, 3], [4.0, 5.0, 6]]
    x1 = decode_v2([V2Input("input-0", [2, 3], "FP64", rows)], SCHEMA)
    x2 = decode_v2([V2Input("input-0", [2, 3], "FP64", [1.0, 2.0, 3, 4.0, 5.0, 6])], SCHEMA)
    cols = [
        V2Input("c", [2], "INT64", [3, 6]),
        V2Input("a", [2, 1], "FP64", [1.0, 4.0]),
        V2Input("b", [2], "FP32", [2.0, 5.0]),
    ]
    x3 = decode_v2(cols, SCHEMA)
    x4 = decode_v1(rows, SCHEMA)
    x5 = decode_v1([{"a": 1.0, "b": 2.0, "c": 3}, {"c": 6, "b": 5.0, "a": 4.0}], SCHEMA)
    x6 = decode_v2([V2Input("input-0", [2, 3], "FP64", np.array(rows))], SCHEMA)
    for x in (x2, x3, x4, x5, x6):
        np.testing.assert_array_equal(x, x1)
    assert x1.dtype == np.float64 and x1.flags.c_contiguous


BAD_V2 = [
    ([V2Input("input-0", [2, 2], "FP64", [1, 2, 3, 4])], InvalidInputError, "expected [N, 3]"),
    ([V2Input("input-0", [3], "FP64", [1, 2, 3])], InvalidInputError, "expected [N, 3]"),
    ([V2Input("input-0", [2, 3], "FP64", [1, 2, 3])], InvalidInputError, "holds 3 values"),
    ([V2Input("input-0", [1, 3], "BYTES", ["a", "b", "c"])], InvalidInputError, "datatype BYTES"),
    ([V2Input("input-0", [1, 3], "FP64", ["a", 1, 2])], InvalidInputError, "only numbers"),
    ([V2Input("input-0", [1, 3], "FP64", [float("nan"), 1, 2])], InvalidInputError, "'a' has a NaN"),
    ([V2Input("input-0", [1, 3], "FP64", [1, float("inf"), 2])], InvalidInputError, "'b' has a NaN or inf"),
    ([V2Input("input-0", [1, 3], "FP64", [1, 2, 2.5])], InvalidInputError, "'c' takes whole numbers"),
    ([V2Input("input-0", [0, 3], "FP64", [])], InvalidInputError, "empty batch"),
    ([], InvalidInputError, "no inputs"),
    (
        [V2Input("a", [1], "FP64", [1]), V2Input("b", [1], "FP64", [1])],
        InvalidInputError,
        "missing input column(s) 'c'",
    ),
    (
        [
            V2Input("a", [1], "FP64", [1]),
            V2Input("b", [1], "FP64", [1]),
            V2Input("c", [1], "FP64", [1]),
            V2Input("d", [1], "FP64", [1]),
        ],
        InvalidInputError,
        "unknown input(s) 'd'",
    ),
    ([V2Input("a", [1], "FP64", [1]), V2Input("a", [1], "FP64", [1])], InvalidInputError, "more than once"),
    (
        [V2Input("a", [1], "FP64", [1]), V2Input("b", [2], "FP64", [1, 2]), V2Input("c", [1], "FP64", [1])],
        InvalidInputError,
        "has 2 rows",
    ),
    (
        [V2Input("a", [1, 2], "FP64", [1, 2]), V2Input("b", [1], "FP64", [1]), V2Input("c", [1], "FP64", [1])],
        InvalidInputError,
        "must be [N] or [N, 1]",
    ),
]


@pytest.mark.parametrize(("inputs", "error", "message"), BAD_V2)
def test_decode_v2_rejects(inputs, error, message):
    with pytest.raises(error) as e:
        decode_v2(inputs, SCHEMA)
    assert message in e.value.message
    assert e.value.http_status == 400


def test_decode_too_many_rows_is_413():
    with pytest.raises(PayloadTooLargeError) as e:
        decode_v2([V2Input("t", [5, 3], "FP64", [0.0] * 15)], SCHEMA, max_rows=4)
    assert e.value.http_status == 413 and "at most 4" in e.value.message
    with pytest.raises(PayloadTooLargeError):
        decode_v1([[0, 0, 0]] * 5, SCHEMA, max_rows=4)


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ({"a": 1}, "must be a list"),
        ([], "empty batch"),
        ([[1, 2]], "expected [N, 3]"),
        ([[1, 2, "x"]], "only numbers"),
        ([{"a": 1, "b": 2}], "missing column(s) 'c'"),
        ([{"a": 1, "b": 2, "c": 3, "z": 4}], "unknown column(s) 'z'"),
        ([{"a": 1, "b": 2, "c": 3}, [1, 2, 3]], "not an object"),
    ],
)
def test_decode_v1_rejects(instances, message):
    with pytest.raises(InvalidInputError) as e:
        decode_v1(instances, SCHEMA)
    assert message in e.value.message


def test_nan_allowed_when_asked():
    x = decode_v2([V2Input("t", [1, 3], "FP64", [float("nan"), 1, 2])], SCHEMA, allow_nan=True)
    assert np.isnan(x[0, 0])


def test_check_rows_gives_per_row_reasons():
    frame = pd.DataFrame(
        {"a": [1.0, np.nan, 3.0, 4.0], "b": [1, 2, "x", np.inf], "c": [1, 2, 3, 4.5], "extra": ["k", "l", "m", "n"]}
    )
    reasons = check_rows(frame, SCHEMA)
    assert reasons.iloc[0] == ""
    assert reasons.iloc[1] == "a: missing (NaN)"
    assert reasons.iloc[2] == "b: not a number ('x')"
    assert "b: infinite" in reasons.iloc[3] and "c: not a whole number" in reasons.iloc[3]
    good = frame[reasons == ""]
    np.testing.assert_array_equal(frame_to_array(good, SCHEMA), [[1.0, 1.0, 1.0]])
    with pytest.raises(InvalidInputError, match="missing column"):
        check_rows(frame.drop(columns="c"), SCHEMA)


def test_servability_ok(wine_env):
    from mlcycle.serving.servability import check_servability, servability_tag

    report = check_servability("models:/wine/1", wine_env.settings)
    assert report.ok, report.reasons
    assert servability_tag(report) == "ok"
    assert report.details["compared_with"] == "pyfunc"
    assert report.details["requirements"]["scikit-learn"]["model"]
    # the forest is checked as it will serve: compiled, replayed through the compiled path
    assert report.details["runtime"] == "onnxruntime", report.details["compile"]
    assert report.details["compile"].startswith("onnxruntime: reproduced RandomForestClassifier on ")


def test_servability_reports_requirement_mismatch():
    from mlcycle.serving.servability import compare_requirements

    problems, table = compare_requirements("scikit-learn==0.24.2\nnumpy==1.0.0\nrequests==2.0\n")
    assert any(p.startswith("scikit-learn 0.24.2 (model)") and "exactly" in p for p in problems)
    assert any(p.startswith("numpy 1.0.0") and "major.minor" in p for p in problems)
    assert not any("requests" in p for p in problems)  # an unpinned-by-format package: installed is enough
    from importlib.metadata import version

    assert compare_requirements(f"scikit-learn=={version('scikit-learn')}\n")[0] == []


def test_servability_fails_on_recorded_requirements(wine_env, tmp_path):
    """A model whose requirements.txt pins another scikit-learn is refused, with the reason."""
    import shutil

    import mlflow

    from mlcycle.serving.servability import check_servability

    m = load_model("models:/wine/1", wine_env.settings)
    copy = tmp_path / "model"
    shutil.copytree(m.local_path, copy)
    (copy / "requirements.txt").write_text("scikit-learn==0.24.2\nnumpy==2.4.6\n")
    report = check_servability(str(copy), wine_env.settings)
    assert not report.ok
    assert any("scikit-learn 0.24.2" in r for r in report.reasons)
    assert mlflow  # imported for the copy's loader


def test_servability_uses_training_reference_and_catches_a_mismatch(wine_env, tmp_path):
    import shutil

    from mlcycle.serving.servability import EXPECTED_PREDICTIONS_FILE, check_servability

    m = load_model("models:/wine/1", wine_env.settings)
    copy = tmp_path / "model"
    shutil.copytree(m.local_path, copy)
    good = wine_env.estimators["1"].predict(wine_env.X.head(5)).tolist()
    (copy / EXPECTED_PREDICTIONS_FILE).write_text(str(good))
    assert check_servability(str(copy), wine_env.settings).details["compared_with"] == "training"
    (copy / EXPECTED_PREDICTIONS_FILE).write_text(str([(p + 1) % 3 for p in good]))
    report = check_servability(str(copy), wine_env.settings)
    assert not report.ok and "differ from those stored at training time" in report.reasons[0]


def test_canary_routing_sticky_and_proportional():
    import random

    from mlcycle.serving.routing import goes_to_canary

    assert not goes_to_canary(0, "x") and goes_to_canary(100, "x")
    assert all(goes_to_canary(30, f"id-{i}") == goes_to_canary(30, f"id-{i}") for i in range(200))
    n, p = 20_000, 0.3
    by_id = sum(goes_to_canary(30, f"req-{i}") for i in range(n))
    rng = random.Random(1)
    by_rng = sum(goes_to_canary(30, None, rng) for _ in range(n))
    sigma = (n * p * (1 - p)) ** 0.5
    for hits in (by_id, by_rng):  # binomial: within 4 sigma
        assert abs(hits - n * p) < 4 * sigma


def test_promote_and_rollback(wine_models, tmp_path, monkeypatch):
    """On a copy of the registry: promote moves champion to challenger and records who/why; rollback undoes."""
    import shutil

    from mlflow.tracking import MlflowClient

    from mlcycle import tracking
    from mlcycle.config import load_settings
    from mlcycle.serving.promotion import TAG_BY, TAG_PREVIOUS, promote, rollback

    home = tmp_path / "home"
    shutil.copytree(wine_models.home, home)
    monkeypatch.setenv("MLCYCLE_HOME", str(home))
    settings = load_settings()
    tracking.configure(settings)
    try:
        from tests.release_helpers import mark_releasable

        client = MlflowClient()
        with pytest.raises(InvalidInputError, match="nothing to roll back"):
            rollback("wine", settings)
        mark_releasable(client, "wine", "2")
        move = promote("wine", settings, by="alice", reason="canary looks good")
        assert (move.previous, move.current) == ("1", "2")
        assert str(client.get_model_version_by_alias("wine", "champion").version) == "2"
        tags = client.get_model_version("wine", "2").tags
        assert tags[TAG_PREVIOUS] == "1" and tags[TAG_BY] == "alice"
        again = promote("wine", settings)  # promoting the champion again changes nothing
        assert (again.previous, again.current) == ("2", "2")
        back = rollback("wine", settings, by="bob")
        assert (back.previous, back.current) == ("2", "1")
        assert str(client.get_model_version_by_alias("wine", "champion").version) == "1"
    finally:
        tracking.configure(wine_models.settings)
