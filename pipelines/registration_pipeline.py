"""The registration pipeline: import a model trained elsewhere → evaluate → register (gate) → promote if it passes."""

from kfp import dsl

from components.deploy_model import deploy_model
from components.evaluate_model import evaluate_model
from components.import_model import import_model
from components.promote_model import promote_model
from components.register_model import register_model
from pipelines.cluster import with_team_settings


@dsl.pipeline(
    name="mlcycle-registration",
    description="Register a model trained elsewhere: evaluate it against the champion on a holdout, check it "
    "is servable, register it, and promote it only if it passes the gate.",
)
def registration_pipeline(
    model_uri: str,
    model_name: str,
    holdout: str,
    target: str,
    reference: str = "",
    team: str = "",
    task: str = "",
    gate_metric: str = "",
    min_improvement: float = 0.0,
    floor: str = "",
    auto_promote: bool = True,
    deploy_environment: str = "",
) -> str:
    """The same evaluation, servability check, gate and release path as a trained model.

    Args:
        model_uri: ``runs:/<id>/<path>``, ``models:/<name>/<version>`` or a local MLflow model directory.
        model_name: registered-model name (without the team prefix).
        holdout: the rows the model and the champion are scored on (CSV/Parquet path or s3:// URI).
        target: target column of the holdout.
        reference: the drift reference rows (CSV/Parquet with the target); empty: the holdout.
        team: team prefix for the registered model (empty: the step's MLCYCLE_TEAM).
        task: ``classification`` or ``regression``; empty: inferred from the target.
        gate_metric: metric the gate compares, with its direction; empty: the task's (``f1_macro``, ``rmse``).
        min_improvement: how much the candidate must beat the champion by.
        floor: worst acceptable value on the metric's scale; empty: the metric's default.
        auto_promote: move champion when the gate passes; off holds the version as challenger for a canary.
        deploy_environment: ``dev``, ``staging`` or ``prod`` to roll the new champion out after the gate.

    Returns:
        The import run id; its registered version carries the gate's decision and reason as tags.
    """
    imported = import_model(model_uri=model_uri, holdout=holdout, target=target, model_name=model_name, team=team,
                            reference=reference, task=task, pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    imported.set_display_name("import the model")
    evaluated = evaluate_model(
        run_id=imported.outputs["run_id"], test_data=imported.outputs["test_data"], target=target,
        registered_name=imported.outputs["registered_name"])
    evaluated.set_display_name("evaluate against champion")
    gate = register_model(
        run_id=imported.outputs["run_id"], registered_name=imported.outputs["registered_name"],
        gate_metric=gate_metric, min_improvement=min_improvement, floor=floor, auto_promote=auto_promote,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    gate.after(evaluated)
    gate.set_display_name("register and gate")
    with dsl.If(gate.output == "promote", name="gate-passed"):
        promoted = promote_model(registered_name=imported.outputs["registered_name"],
                                 run_id=imported.outputs["run_id"], pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        promoted.set_display_name("promote to champion")
        with dsl.If(deploy_environment != "", name="deploy-configured"):
            deployed = deploy_model(registered_name=imported.outputs["registered_name"], version=promoted.output,
                                    environment=deploy_environment, gate_decision=gate.output)
            deployed.set_display_name("roll out to KServe")
            with_team_settings(deployed)
        with_team_settings(promoted)
    with_team_settings(imported, evaluated, gate)
    return imported.outputs["run_id"]
