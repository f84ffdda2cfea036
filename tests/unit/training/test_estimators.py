import mlflow
import numpy as np
import pytest

from mlcycle.data import load_dataset
from mlcycle.errors import InvalidInputError
from mlcycle.training.estimators import build_estimator, check_params, coerce_param, estimator_names, get_spec


@pytest.mark.parametrize("dataset", ["wine", "breast_cancer"])
@pytest.mark.parametrize("model_type", estimator_names())
def test_every_estimator_round_trips_through_skops_with_only_its_declared_types(mlcycle_home, model_type,
                                                                                dataset):
    """MLflow saves with skops, which refuses undeclared types; the declared set must be exactly enough."""
    frame, target = load_dataset(dataset)
    X, y = frame.drop(columns=[target]), frame[target]
    small = {"random_forest": {"n_estimators": 5}, "hist_gradient_boosting": {"max_iter": 5}}.get(model_type, {})
    model = build_estimator(model_type, small).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model",
                                        skops_trusted_types=list(get_spec(model_type).skops_trusted_types))
    loaded = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_undeclared_types_are_refused(mlcycle_home):
    frame, target = load_dataset("wine")
    model = build_estimator("random_forest", {"n_estimators": 3}).fit(frame.drop(columns=[target]), frame[target])
    with pytest.raises(Exception, match="Tree|trusted|untrusted"), mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model")
        mlflow.sklearn.load_model(info.model_uri)


def test_unknown_model_and_params_are_named():
    with pytest.raises(InvalidInputError) as e:
        get_spec("svm")
    assert e.value.field == "model_type" and "random_forest" in e.value.message
    with pytest.raises(InvalidInputError) as e:
        check_params("random_forest", {"max_dept": 3})
    assert e.value.field == "params.max_dept"
    check_params("logistic_regression", {"C": 0.5})


@pytest.mark.parametrize(("raw", "value"), [("4", 4), ("0.5", 0.5), ("true", True), ("None", None),
                                            ("gini", "gini")])
def test_param_values_are_coerced(raw, value):
    assert coerce_param(raw) == value
