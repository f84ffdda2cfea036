"""Evaluation on the holdout: the candidate and the current champion, scored on the same rows.

Metrics: accuracy, macro F1, ROC AUC where defined (probabilities and every class present), log loss,
and the confusion matrix. Pictures of the confusion matrix and ROC curve are stored with the run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlcycle.registry.uris import CHAMPION
from mlcycle.training.train import features_and_target

log = logging.getLogger(__name__)

# Metrics where lower is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss"})


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one holdout."""

    metrics: dict[str, float]
    labels: list
    confusion: list[list[int]]
    roc: dict[str, list[float]] | None = None  # binary only: fpr, tpr, thresholds


@dataclass(frozen=True)
class Comparison:
    """The candidate's scores and, when there is a comparable champion, the champion's on the same rows."""

    candidate: Evaluation
    champion: Evaluation | None = None
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)


def score_model(model, test: pd.DataFrame, target: str) -> Evaluation:
    """Score a fitted classifier on ``test``."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score, roc_curve

    X, y = features_and_target(test, target)
    y_true = y.to_numpy()
    predicted = model.predict(X)
    labels = sorted(set(np.unique(y_true)) | set(np.unique(predicted)), key=lambda v: (str(type(v)), v))
    metrics = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1_macro": float(f1_score(y_true, predicted, average="macro", zero_division=0)),
    }
    roc = None
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        classes = list(model.classes_)
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


def compare_with_champion(candidate_model, test: pd.DataFrame, target: str, registered_name: str) -> Comparison:
    """Score the candidate and the current champion of ``registered_name`` (if any) on ``test``."""
    from mlcycle.registry import store

    candidate = score_model(candidate_model, test, target)
    # Only "no such alias/model" means no champion; an outage raises RegistryUnavailableError.
    champion = store.alias_version(registered_name, CHAMPION)
    if champion is None:
        return Comparison(candidate=candidate, notes=["no champion yet"])
    champion_version = store.get_model_version(registered_name, champion)
    import mlflow.sklearn

    champion_model = mlflow.sklearn.load_model(f"models:/{registered_name}/{champion_version.version}")
    expected = list(getattr(champion_model, "feature_names_in_", []))
    features = [c for c in test.columns if c != target]
    if expected and expected != features:
        note = (f"champion v{champion_version.version} expects other features "
                f"({len(expected)} columns); not comparable on this holdout")
        return Comparison(candidate=candidate, champion_version=str(champion_version.version), notes=[note])
    champion = score_model(champion_model, test, target)
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
    client.log_dict(run_id, {"labels": comparison.candidate.labels, "matrix": comparison.candidate.confusion},
                    "evaluation/confusion_matrix.json")
    for name, figure in plot_evaluation(comparison.candidate).items():
        client.log_figure(run_id, figure, f"evaluation/{name}.png")
    if comparison.champion_version:
        client.set_tag(run_id, "mlcycle.compared_champion_version", comparison.champion_version)


def plot_evaluation(evaluation: Evaluation) -> dict:
    """Confusion-matrix and (binary) ROC-curve figures, drawn without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    figures = {}
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


def _plain(value):
    """numpy scalars → Python values, so labels serialize to JSON and kfp metadata."""
    return value.item() if hasattr(value, "item") else value
