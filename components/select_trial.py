"""Component: keep a search's best trial and train the final model with it in the search's parent run."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def select_trial(
    train_data: Input[Dataset],
    target: str,
    trials: list,
    results: list,
) -> NamedTuple("TrainedModel", [("run_id", str), ("model_uri", str)]):
    """Pick the best trial by the validation metric (the serial search's rule) and log the final model.

    Args:
        train_data: the training split.
        target: target column.
        trials: ``plan_trials``' items.
        results: every ``train_trial`` result (JSON strings, collected from the fan-out).

    Returns:
        run_id: the parent MLflow run, now holding the chosen parameters and the model; model_uri: its URI.
    """
    from collections import namedtuple

    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    result = lifecycle.train_best_trial(train_data.path, target, trials, results, configured_settings())
    return namedtuple("TrainedModel", "run_id model_uri")(result.run_id, result.model_uri)
