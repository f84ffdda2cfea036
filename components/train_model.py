"""Component: train an estimator and record one MLflow run."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_model(
    train_data: Input[Dataset],
    target: str,
    registered_name: str,
    model_type: str,
    params: str,
    n_trials: int,
    seed: int,
    dataset: str,
    data_hash: str,
    pipeline_run_id: str,
    trainer: str = "",
    task: str = "",
) -> NamedTuple("TrainedModel", [("run_id", str), ("model_uri", str)]):
    """Call the trainer (yours, or a built-in estimator) and log params, metrics, lineage and the model to MLflow.

    Args:
        train_data: the training split.
        target: target column.
        registered_name: registered-model name; also the MLflow experiment.
        model_type: ``random_forest``, ``hist_gradient_boosting`` or ``logistic_regression`` (no ``trainer``).
        params: parameters passed to the trainer as a JSON object, e.g. ``{"max_depth": 4}``.
        n_trials: random-search trials over the estimator's search space (0: none).
        seed: random seed.
        dataset: the data source, recorded for lineage.
        data_hash: content hash of the data, recorded for lineage.
        pipeline_run_id: the KFP run id, recorded for lineage.
        trainer: your training function, ``package.module:function`` (importable in the step's image);
            empty: the built-in ``model_type``.
        task: ``classification`` or ``regression``; empty: inferred from the target.

    Returns:
        run_id: the MLflow run; model_uri: the logged model's URI.
    """
    from collections import namedtuple

    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    result = lifecycle.run_training(
        train_data.path, target, configured_settings(), registered_name=registered_name,
        model_type=model_type, params=params, n_trials=n_trials, seed=seed, dataset=dataset,
        data_hash=data_hash, pipeline_run_id=pipeline_run_id, trainer=trainer, task=task)
    return namedtuple("TrainedModel", "run_id model_uri")(result.run_id, result.model_uri)
