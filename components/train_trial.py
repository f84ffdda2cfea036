"""Component: score one search trial in its own MLflow child run."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_trial(train_data: Input[Dataset], trial: str) -> str:
    """Cross-validate one trial's parameters; log them and the validation metric in a child of the search's run.

    Args:
        train_data: the training split.
        trial: one of ``plan_trials``' items (it names the target column too: kfp.local gives a loop step's
            other parameters the loop item, so the step takes no other parameter).

    Returns:
        The trial's result as JSON (index, child run, parameters, score), collected by ``select_trial``.
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    configured_settings()  # points MLflow at the configured tracking server
    return lifecycle.run_training_trial(train_data.path, trial)
