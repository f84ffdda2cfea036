"""Component: bring a model trained elsewhere into mlcycle (an import run with lineage and a reference)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def import_model(
    model_uri: str,
    holdout: str,
    target: str,
    model_name: str,
    team: str,
    reference: str,
    task: str,
    pipeline_run_id: str,
    test_data: Output[Dataset],
) -> NamedTuple("ImportedModel", [("run_id", str), ("registered_name", str)]):
    """Copy a logged model into an import run of the registered model's experiment, with a reference sample.

    The run records the source URI, task, target and flavor as lineage tags and stores the reference rows
    (or the holdout) with the model's predictions for drift monitoring; the later steps treat it exactly as
    a training run. A model that cannot predict the holdout fails here and nothing is registered.

    Args:
        model_uri: ``runs:/<id>/<path>``, ``models:/<name>/<version>`` (or ``@alias``, ``models:/m-<id>``), or
            a local MLflow model directory readable by the step.
        holdout: the rows the model and the champion are scored on (CSV/Parquet path or s3:// URI).
        target: target column of the holdout.
        model_name: registered-model name (without the team prefix).
        team: team prefix for the registered model (empty: the step's MLCYCLE_TEAM).
        reference: the drift reference rows (CSV/Parquet with the target); empty: the holdout.
        task: ``classification`` or ``regression``; empty: inferred from the target.
        pipeline_run_id: the KFP run id, recorded for lineage.
        test_data: the holdout as Parquet, for the evaluation step.

    Returns:
        run_id: the import run; registered_name: the team-qualified model name.
    """
    from collections import namedtuple

    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    name = lifecycle.resolve_registered_name(holdout, model_name, team, settings)
    result = lifecycle.run_import(model_uri, holdout, target, settings, registered_name=name,
                                  test_path=test_data.path, reference=reference, task=task,
                                  pipeline_run_id=pipeline_run_id)
    return namedtuple("ImportedModel", "run_id registered_name")(result.run_id, name)
