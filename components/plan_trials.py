"""Component: sample a search's trials and open the parent MLflow run they report to."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_trials(
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
) -> list:
    """Check the training request, sample ``n_trials`` parameter sets as the serial search would, open the parent run.

    Args:
        train_data: the training split.
        target: target column.
        registered_name: registered-model name; also the MLflow experiment.
        model_type: ``random_forest``, ``hist_gradient_boosting`` or ``logistic_regression`` (no ``trainer``).
        params: fixed parameters as a JSON object; the search varies the others.
        n_trials: how many trials to sample from the trainer's search space (at least 1).
        seed: random seed of the sampler and the cross-validation.
        dataset: the data source, recorded for lineage.
        data_hash: content hash of the data, recorded for lineage.
        pipeline_run_id: the KFP run id, recorded for lineage.
        trainer: your training function, ``package.module:function``; empty: the built-in ``model_type``.
        task: ``classification`` or ``regression``; empty: inferred from the target.

    Returns:
        One JSON item per trial for the fan-out (a single output: kfp.local's ParallelFor iterates a task's
        ``Output`` only).
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    return lifecycle.plan_training_trials(
        train_data.path, target, configured_settings(), registered_name=registered_name, model_type=model_type,
        params=params, n_trials=n_trials, seed=seed, dataset=dataset, data_hash=data_hash,
        pipeline_run_id=pipeline_run_id, trainer=trainer, task=task)
