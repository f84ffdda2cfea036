"""Component: score the candidate and the current champion on the same holdout."""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    run_id: str,
    test_data: Input[Dataset],
    target: str,
    registered_name: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    plots: Output[HTML],
) -> str:
    """Evaluate on the holdout: classification (accuracy, macro F1, ROC AUC, log loss, confusion matrix) or
    regression (RMSE, MAE, R²), by the task the training recorded.

    The current champion, if any, is scored on the same rows for a fair comparison. Everything is
    recorded on the MLflow run and shown in the KFP UI.

    Args:
        run_id: the training run whose model is evaluated.
        test_data: the holdout split.
        target: target column.
        registered_name: the registered model whose champion is compared.
        metrics: scalar metrics for the KFP UI (candidate, and ``champion_*``).
        classification_metrics: confusion matrix (and ROC curve for binary targets) for the KFP UI.
        plots: the task's figures (confusion matrix/ROC, or predicted vs actual and residuals) as HTML.

    Returns:
        The champion version compared against, or an empty string when there is none.
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    configured_settings()
    comparison = lifecycle.run_evaluation(run_id, test_data.path, target, registered_name)
    lifecycle.publish_kfp_metrics(comparison, metrics, classification_metrics, plots)
    return comparison.champion_version or ""
