"""Evaluation on the holdout: the candidate and the current champion, scored on the same rows.

Metrics per task — classification: accuracy, macro F1, log loss and ROC AUC where defined (probabilities,
every class present), the confusion matrix; regression: RMSE, MAE, R². Pictures (confusion matrix and ROC
curve; predicted vs actual and residuals) are stored with the run and shown in the KFP UI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlcycle.registry.uris import CHAMPION
from mlcycle.training.flavors import Scorer, adapt_model, input_columns, load_scorer
from mlcycle.training.train import features_and_target
from mlcycle.training.trainers import CLASSIFICATION, REGRESSION, TrainerError, infer_task

log = logging.getLogger(__name__)

# Metrics where lower is better; every other metric is higher-is-better (the gate's table is the rule).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
PLOT_POINTS = 2_000


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one holdout."""

    metrics: dict[str, float]
    labels: list = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    roc: dict[str, list[float]] | None = None  # binary only: fpr, tpr, thresholds
    task: str = CLASSIFICATION
    points: dict[str, list[float]] | None = None  # regression: actual, predicted (a sample, for the plots)


@dataclass(frozen=True)
class Comparison:
    """The candidate's scores and, when there is a comparable champion, the champion's on the same rows."""

    candidate: Evaluation
    champion: Evaluation | None = None
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)


def score_model(model, test: pd.DataFrame, target: str, task: str = "") -> Evaluation:
    """Score a fitted model (any kind mlcycle logs, or a :class:`Scorer`) on ``test`` for ``task``.

    Raises:
        TrainerError: the model's predictions fail on the holdout (they raise, have the wrong shape, or a
            classifier's are not labels the holdout could hold).
    """
    scorer = model if isinstance(model, Scorer) else adapt_model(model, type(model).__name__)
    X, y = features_and_target(test, target)
    task = task or infer_task(y)
    predicted = scorer.predict(X)
    if task == REGRESSION:
        return _score_regression(y.to_numpy(dtype=float), predicted, scorer)
    return _score_classification(y.to_numpy(), predicted, scorer, X)


def _score_regression(y_true: np.ndarray, predicted: np.ndarray, scorer: Scorer) -> Evaluation:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    try:
        predicted = predicted.astype(float)
    except (TypeError, ValueError) as e:
        raise TrainerError(scorer.trainer, f"a regressor must predict numbers; got {predicted.dtype} values",
                           field="model") from e
    if not np.all(np.isfinite(predicted)):
        raise TrainerError(scorer.trainer, "the model predicted NaN or infinite values on the holdout", field="model")
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(y_true, predicted))),
        "mae": float(mean_absolute_error(y_true, predicted)),
        "r2": float(r2_score(y_true, predicted)),
    }
    keep = np.random.default_rng(0).permutation(len(y_true))[:PLOT_POINTS]
    points = {"actual": y_true[keep].tolist(), "predicted": predicted[keep].tolist()}
    return Evaluation(metrics=metrics, task=REGRESSION, points=points)


def _score_classification(y_true: np.ndarray, predicted: np.ndarray, scorer: Scorer, X: pd.DataFrame) -> Evaluation:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score, roc_curve

    known = {str(v) for v in np.unique(y_true)}
    if predicted.dtype.kind == "f" and y_true.dtype.kind != "f" and not np.all(np.mod(predicted, 1) == 0):
        raise TrainerError(scorer.trainer, "a classifier must predict labels; it returned fractions (probabilities?)"
                           " — return the scikit-learn API model (e.g. LGBMClassifier), not a booster",
                           field="model")
    if predicted.dtype.kind != y_true.dtype.kind and {str(v) for v in np.unique(predicted)} <= known:
        predicted = predicted.astype(y_true.dtype)
    labels = sorted(set(np.unique(y_true)) | set(np.unique(predicted)), key=lambda v: (str(type(v)), v))
    metrics = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
    }
    roc = None
    classes = scorer.classes
    if classes is not None:
        proba = scorer.predict_proba(X)
        metrics["log_loss"] = float(log_loss(y_true, proba, labels=classes))
        if set(np.unique(y_true)) == set(classes):  # AUC is undefined when a class is absent
            if len(classes) == 2:
                metrics["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1]))
                fpr, tpr, thresholds = roc_curve(y_true, proba[:, 1], pos_label=classes[1])
                thresholds = np.clip(thresholds, 0.0, 1.0)  # sklearn's first threshold is +inf
                roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}
            else:
                metrics["roc_auc"] = float(roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                                                         labels=classes))
    matrix = confusion_matrix(y_true, predicted, labels=labels)
    return Evaluation(metrics=metrics, labels=[_plain(v) for v in labels], confusion=matrix.tolist(), roc=roc)


def compare_with_champion(candidate_model, test: pd.DataFrame, target: str, registered_name: str,
                          task: str = "") -> Comparison:
    """Score the candidate and the current champion of ``registered_name`` (if any) on ``test``."""
    from mlflow.tracking import MlflowClient

    from mlcycle.registry import store

    candidate = score_model(candidate_model, test, target, task)
    # Only "no such alias/model" means no champion; an outage raises RegistryUnavailableError. A 403 on a
    # model no search shows is a first evaluation under MLflow's auth app (registration creates the model next).
    champion_number = store.alias_version(registered_name, CHAMPION, denied_is_missing=True)
    if champion_number is None:
        return Comparison(candidate=candidate, notes=["no champion yet"])
    champion_version = store.get_model_version(registered_name, champion_number)
    client = MlflowClient()
    uri = f"models:/{registered_name}/{champion_version.version}"
    expected = input_columns(uri) or []
    features = [c for c in test.columns if c != target]
    if expected and sorted(expected) != sorted(features):
        note = (f"champion v{champion_version.version} expects other features "
                f"({len(expected)} columns); not comparable on this holdout")
        return Comparison(candidate=candidate, champion_version=str(champion_version.version), notes=[note])
    champion_task = client.get_run(champion_version.run_id).data.tags.get("mlcycle.task") \
        if champion_version.run_id else None
    if champion_task and champion_task != candidate.task:
        note = f"champion v{champion_version.version} is a {champion_task} model; not comparable"
        return Comparison(candidate=candidate, champion_version=str(champion_version.version), notes=[note])
    champion = score_model(load_scorer(uri, f"champion v{champion_version.version}"), test[features + [target]],
                           target, candidate.task)
    return Comparison(candidate=candidate, champion=champion, champion_version=str(champion_version.version))


def log_comparison(run_id: str, comparison: Comparison) -> None:
    """Record test metrics (``test_*``, ``champion_test_*``) and the pictures on the candidate's run.

    Through the client, not ``mlflow.start_run``: resuming a run with the fluent API fails whenever
    the caller (a notebook, say) has set another active experiment.
    """
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    metrics = {f"test_{k}": v for k, v in comparison.candidate.metrics.items()}
    if comparison.champion is not None:
        metrics |= {f"champion_test_{k}": v for k, v in comparison.champion.metrics.items()}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()])
    if comparison.candidate.task == CLASSIFICATION:
        client.log_dict(run_id, {"labels": comparison.candidate.labels, "matrix": comparison.candidate.confusion},
                        "evaluation/confusion_matrix.json")
    for name, figure in plot_evaluation(comparison.candidate).items():
        client.log_figure(run_id, figure, f"evaluation/{name}.png")
    if comparison.champion_version:
        client.set_tag(run_id, "mlcycle.compared_champion_version", comparison.champion_version)


def plot_evaluation(evaluation: Evaluation) -> dict:
    """The task's figures, drawn without a display: confusion matrix and (binary) ROC curve, or predicted
    vs actual and residuals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    if evaluation.task == REGRESSION and evaluation.points:
        actual, predicted = np.array(evaluation.points["actual"]), np.array(evaluation.points["predicted"])
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(actual, predicted, s=8, alpha=0.6)
        low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(f"Predicted vs actual (RMSE {evaluation.metrics['rmse']:.3g})")
        fig.tight_layout()
        figures["predicted_vs_actual"] = fig
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.scatter(predicted, actual - predicted, s=8, alpha=0.6)
        ax.axhline(0.0, linestyle="--", color="grey")
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title("Residuals (holdout)")
        fig.tight_layout()
        figures["residuals"] = fig
    else:
        from sklearn.metrics import ConfusionMatrixDisplay

        fig, ax = plt.subplots(figsize=(4.5, 4))
        ConfusionMatrixDisplay(np.array(evaluation.confusion), display_labels=evaluation.labels).plot(
            ax=ax, colorbar=False)
        ax.set_title("Confusion matrix (holdout)")
        fig.tight_layout()
        figures["confusion_matrix"] = fig
    if evaluation.roc:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(evaluation.roc["fpr"], evaluation.roc["tpr"], label=f"AUC {evaluation.metrics['roc_auc']:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC curve (holdout)")
        ax.legend(loc="lower right")
        fig.tight_layout()
        figures["roc_curve"] = fig
    for fig in figures.values():
        plt.close(fig)
    return figures


def plots_html(evaluation: Evaluation) -> str:
    """The task's figures as one HTML page (PNG inline), for the KFP UI's HTML visualisation."""
    import base64
    import io
    from html import escape

    parts = [f"<h3>Holdout evaluation ({escape(evaluation.task)})</h3><ul>"]
    parts += [f"<li>{escape(k)}: {v:.4f}</li>" for k, v in evaluation.metrics.items()]
    parts.append("</ul>")
    for name, figure in plot_evaluation(evaluation).items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        data = base64.b64encode(buffer.getvalue()).decode()
        parts.append(f'<figure><img alt="{escape(name)}" src="data:image/png;base64,{data}"/>'
                     f"<figcaption>{escape(name)}</figcaption></figure>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def _plain(value):
    """numpy scalars → Python values, so labels serialize to JSON and kfp metadata."""
    return value.item() if hasattr(value, "item") else value
