"""Compiled tree ensembles (mlcycle.serving.compiled): parity with the model, or a fallback with its reason.

Every kind the module compiles, on both bundled data sets, as classifier and regressor: the compiled
predictor must reproduce the model on every row of the data set (not only the rows it was checked on),
labels identical and outputs within 1e-6. Which backend serves each kind is pinned: ONNX Runtime
(float32) for classifiers, Treelite (float64) where float32 cannot reproduce a regressor, and XGBoost
regressors (float32 in XGBoost itself, summed in another order) fall back with the reason.
"""

from __future__ import annotations

import pickle

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn import ensemble
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlcycle.serving.compiled import TOLERANCE, CompiledPredictor, NotCompiled, compile_for_serving

N = 30  # trees: enough for real ensembles, small enough for a fast test

KINDS = {
    "RandomForest": (
        lambda: ensemble.RandomForestClassifier(N, max_depth=8, random_state=0),
        lambda: ensemble.RandomForestRegressor(N, max_depth=8, random_state=0),
    ),
    "ExtraTrees": (
        lambda: ensemble.ExtraTreesClassifier(N, max_depth=8, random_state=0),
        lambda: ensemble.ExtraTreesRegressor(N, max_depth=8, random_state=0),
    ),
    "GradientBoosting": (
        lambda: ensemble.GradientBoostingClassifier(n_estimators=N, random_state=0),
        lambda: ensemble.GradientBoostingRegressor(n_estimators=N, random_state=0),
    ),
    "HistGradientBoosting": (
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=N, random_state=0),
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=N, random_state=0),
    ),
    "LightGBM": (
        lambda: lightgbm.LGBMClassifier(n_estimators=N, verbose=-1),
        lambda: lightgbm.LGBMRegressor(n_estimators=N, verbose=-1),
    ),
    "XGBoost": (
        lambda: xgboost.XGBClassifier(n_estimators=N, n_jobs=1),
        lambda: xgboost.XGBRegressor(n_estimators=N, n_jobs=1),
    ),
}
# the backend that reproduces each kind (None: not compiled, served by the model itself)
EXPECTED = {("classifier", k): "onnxruntime" for k in KINDS} | {("regressor", k): "treelite" for k in KINDS}
EXPECTED["regressor", "XGBoost"] = None

DATASETS = {"wine": load_wine, "breast_cancer": load_breast_cancer}


def _data(name: str, task: str) -> tuple[np.ndarray, np.ndarray]:
    ds = DATASETS[name]()
    x = ds.data.astype(np.float64)
    if task == "classifier":
        return x, ds.target
    # a regression target on the data set's scale (tens to hundreds): where float32 sums lose 1e-6
    return x, ds.target * 10.0 + x[:, 0]


@pytest.mark.parametrize("task", ["classifier", "regressor"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_kind_reproduces_its_model_or_falls_back_with_the_reason(dataset, kind, task):
    x, y = _data(dataset, task)
    model = KINDS[kind][0 if task == "classifier" else 1]().fit(x, y)
    example, reference = x[:5], x[::2]
    result = compile_for_serving(model, [example, reference])
    expected = EXPECTED[task, kind]
    if expected is None:
        assert isinstance(result, NotCompiled) and not result
        assert "differ by up to" in result.reason and "onnxruntime" in result.reason and "treelite" in result.reason
        return
    assert isinstance(result, CompiledPredictor), getattr(result, "reason", "")
    assert result.runtime == expected
    assert result.checked_rows == len(example) + len(reference)
    if expected == "treelite":  # why the faster backend was not kept
        assert result.note.startswith("onnxruntime: predictions differ by up to")
    # every row of the data set, most of which it was not checked on
    if task == "classifier":
        proba = result.predict_proba(x)
        np.testing.assert_allclose(proba, model.predict_proba(x), rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(model.classes_[np.argmax(proba, axis=1)], model.predict(x))
        assert proba.dtype == np.float64 and proba.shape == (len(x), len(model.classes_))
    else:
        out = result.predict(x)
        np.testing.assert_allclose(out, model.predict(x), rtol=0, atol=TOLERANCE)
        assert out.shape == (len(x),)
    one = result.predict_proba(x[:1]) if task == "classifier" else result.predict(x[:1])
    assert len(one) == 1


def test_a_compiled_predictor_survives_pickling_into_a_worker_process():
    x, y = _data("wine", "classifier")
    model = ensemble.RandomForestClassifier(N, max_depth=6, random_state=0).fit(x, y)
    compiled = compile_for_serving(model, [x[:10]])
    assert compiled.runtime == "onnxruntime"
    copy = pickle.loads(pickle.dumps(compiled))  # noqa: S301 - our own object, pickled in this test
    np.testing.assert_array_equal(copy.predict_proba(x), compiled.predict_proba(x))
    xr, yr = _data("wine", "regressor")
    reg = ensemble.RandomForestRegressor(N, max_depth=6, random_state=0).fit(xr, yr)
    compiled = compile_for_serving(reg, [xr[:10]])
    assert compiled.runtime == "treelite"
    copy = pickle.loads(pickle.dumps(compiled))  # noqa: S301 - our own object, pickled in this test
    np.testing.assert_array_equal(copy.predict(xr), compiled.predict(xr))


def test_a_model_that_the_compiled_form_does_not_reproduce_is_not_compiled():
    x, y = _data("breast_cancer", "classifier")
    model = ensemble.RandomForestClassifier(N, max_depth=6, random_state=0).fit(x, y)
    honest = model.predict_proba
    model.predict_proba = lambda rows: np.clip(honest(rows) + 1e-5, 0, 1)  # what the trees do not compute
    result = compile_for_serving(model, [x[:5]])
    assert isinstance(result, NotCompiled)
    assert "onnxruntime: probabilities differ by up to" in result.reason
    assert "treelite: probabilities differ by up to" in result.reason
    assert result.runtime == "scikit-learn"


def test_what_is_not_compiled_says_why():
    x, y = _data("wine", "classifier")
    logreg = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    assert "LogisticRegression is not a tree ensemble" in compile_for_serving(logreg, [x[:5]]).reason
    forest = ensemble.RandomForestClassifier(5, random_state=0).fit(x, y)
    assert "no input example or reference sample" in compile_for_serving(forest, []).reason
    boosted = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)).fit(x, y)
    assert "a pipeline ending in LGBMClassifier" in compile_for_serving(boosted, [x[:5]]).reason


def test_a_pipeline_whose_float32_scaling_moves_rows_across_thresholds_falls_back():
    # skl2onnx converts the whole pipeline, but ONNX Runtime scales in float32: some wine rows then land
    # on the other side of a split, and the check on the example rows catches it
    x, y = _data("wine", "classifier")
    pipe = make_pipeline(StandardScaler(), ensemble.RandomForestClassifier(N, max_depth=6, random_state=0)).fit(x, y)
    result = compile_for_serving(pipe, [x])
    assert isinstance(result, NotCompiled)
    assert result.reason.startswith("RandomForestClassifier on 178 rows: onnxruntime: probabilities differ by up to")
    assert "treelite" not in result.reason  # Treelite imports bare ensembles only


def test_the_examples_models_are_compiled_where_they_reproduce_or_say_why():
    """The models the examples/ trainers fit: the diabetes forest is compiled and reproduces every row;
    the ridge, the LightGBM pipeline (a string column encoded inside it) and the custom PythonModel are not
    tree ensembles this predictor compiles, and say so."""
    from sklearn.datasets import load_diabetes

    from examples.custom_pythonmodel import train as custom
    from examples.diabetes_regression import train as diabetes
    from examples.lightgbm_categorical import train as churn

    frame = load_diabetes(as_frame=True).frame
    x = frame.drop(columns=["target"]).to_numpy(dtype=np.float64)
    forest = diabetes.fit(frame, "target", {"kind": "forest", "max_depth": 4})
    compiled = compile_for_serving(forest, [x[:5], x[::2]])
    assert isinstance(compiled, CompiledPredictor), getattr(compiled, "reason", "")
    assert compiled.runtime == "treelite" and compiled.note.startswith("onnxruntime: predictions differ by up to")
    expected = forest.predict(frame.drop(columns=["target"]))
    np.testing.assert_allclose(compiled.predict(x), expected, rtol=0, atol=TOLERANCE)

    ridge = diabetes.fit(frame, "target", dict(diabetes.defaults))
    assert "Ridge is not a tree ensemble" in compile_for_serving(ridge, [x[:5]]).reason

    customers = churn.make_data(300)
    lgbm = churn.fit(customers, "churned", dict(churn.defaults))
    numeric = customers.drop(columns=["churned", "plan"]).to_numpy(dtype=np.float64)
    assert "a pipeline ending in LGBMClassifier is not compiled" in compile_for_serving(lgbm, [numeric[:5]]).reason
    typed = customers.drop(columns=["churned"])  # what the predictor decodes: one typed column each
    on_columns = compile_for_serving(lgbm, [typed.head(5), typed.iloc[::2]])
    assert isinstance(on_columns, CompiledPredictor), getattr(on_columns, "reason", "")
    assert on_columns.runtime == "onnxruntime" and on_columns.inputs == tuple(typed.columns)
    np.testing.assert_allclose(on_columns.predict_proba(typed), lgbm.predict_proba(typed), rtol=0, atol=TOLERANCE)

    labeled = custom.make_data(300)
    labeler = custom.fit(labeled)
    assert "is not a tree ensemble" in compile_for_serving(labeler, [numeric[:5]]).reason


def _with_strings(name: str, task: str) -> tuple[pd.DataFrame, np.ndarray]:
    """A bundled data set as a user's frame: its numbers, plus string columns made from two of them and an
    integer column, so a ColumnTransformer encodes strings by name before the trees."""
    x, y = _data(name, task)
    frame = pd.DataFrame(x[:, 2:8], columns=[f"f{i}" for i in range(2, 8)])
    bands = np.digitize(x[:, 0], np.quantile(x[:, 0], [1 / 3, 2 / 3]))
    frame.insert(0, "band", np.array(["low", "mid", "high"], dtype=object)[bands])
    frame.insert(1, "grade", np.where(x[:, 1] > np.median(x[:, 1]), "a", "b").astype(object))
    frame["count"] = np.round(x[:, 8] * 10).astype(np.int64)
    return frame, y


def _column_pipeline(final, encoder: str):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    encode = (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1) if encoder == "ordinal"
              else OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    return Pipeline([("encode", ColumnTransformer([("strings", encode, ["band", "grade"])],
                                                  remainder="passthrough")), ("model", final)])


COLUMN_KINDS = {
    "RandomForest": lambda: ensemble.RandomForestClassifier(N, max_depth=8, random_state=0),
    "LightGBM": lambda: lightgbm.LGBMClassifier(n_estimators=N, verbose=-1),
    "XGBoost": lambda: xgboost.XGBClassifier(n_estimators=N, n_jobs=1),
}


# Which column pipelines reproduce through ONNX Runtime (else: not compiled, with the difference found).
# A forest behind a ColumnTransformer is fed float64 features that ONNX Runtime rounds to float32 before
# the thresholds (scikit-learn compares them otherwise), and on wine that moves rows across splits;
# onnxmltools' XGBoost converter, registered in a pipeline, gives other probabilities altogether.
COLUMN_COMPILES = {("wine", "LightGBM"), ("breast_cancer", "LightGBM"), ("breast_cancer", "RandomForest")}


@pytest.mark.parametrize("encoder", ["ordinal", "onehot"])
@pytest.mark.parametrize("kind", list(COLUMN_KINDS))
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_a_pipeline_on_named_string_columns_compiles_with_an_input_per_column(dataset, kind, encoder):
    """The whole pipeline, string encoding included, runs in ONNX Runtime, fed the decoded columns, and
    reproduces the pipeline on every row of the data set and on strings it never saw; or, where it does
    not reproduce the rows it is checked on, it is not used and says why."""
    from mlcycle.serving.schema import Columns

    frame, y = _with_strings(dataset, "classifier")
    pipe = _column_pipeline(COLUMN_KINDS[kind](), encoder).fit(frame, y)
    result = compile_for_serving(pipe, [frame.head(5), frame.iloc[::2]])
    if (dataset, kind) not in COLUMN_COMPILES:
        assert isinstance(result, NotCompiled)
        assert "onnxruntime: probabilities differ by up to" in result.reason and "treelite" not in result.reason
        return
    assert isinstance(result, CompiledPredictor), getattr(result, "reason", "")
    assert result.runtime == "onnxruntime" and result.inputs == tuple(frame.columns)
    assert result.checked_rows == 5 + len(frame.iloc[::2])
    unseen = frame.head(4).assign(band=["low", "never-seen", "", "mid"])
    for rows in (frame, unseen, frame.head(1)):
        columns = Columns({c: rows[c].to_numpy() for c in rows.columns}, len(rows))
        proba = result.predict_proba(columns)
        np.testing.assert_allclose(proba, pipe.predict_proba(rows), rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(pipe.classes_[np.argmax(proba, axis=1)], pipe.predict(rows))
        np.testing.assert_array_equal(result.predict_proba(rows), proba)  # a DataFrame is read by name
    copy = pickle.loads(pickle.dumps(result))  # noqa: S301 - our own object, pickled in this test
    np.testing.assert_array_equal(copy.predict_proba(frame), result.predict_proba(frame))


def test_a_column_pipeline_that_onnx_runtime_cannot_run_falls_back_with_the_reason():
    # onnxmltools' LightGBM regressor graph, inside a pipeline on float64 columns, mixes float and double
    frame, y = _with_strings("wine", "regressor")
    pipe = _column_pipeline(lightgbm.LGBMRegressor(n_estimators=N, verbose=-1), "ordinal").fit(frame, y)
    result = compile_for_serving(pipe, [frame])
    assert isinstance(result, NotCompiled) and result.runtime == "scikit-learn"
    assert result.reason.startswith("LGBMRegressor on 178 rows: onnxruntime: ") and "treelite" not in result.reason


def test_typed_frames_with_different_columns_are_not_compiled():
    frame, y = _with_strings("wine", "classifier")
    pipe = _column_pipeline(COLUMN_KINDS["RandomForest"](), "ordinal").fit(frame, y)
    result = compile_for_serving(pipe, [frame.head(5), frame.drop(columns=["count"])])
    assert isinstance(result, NotCompiled) and "different columns" in result.reason
