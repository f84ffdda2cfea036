"""The training pipeline: load → train → evaluate → register (gate) → promote if the gate passes."""

from kfp import dsl

from components.deploy_model import deploy_model
from components.evaluate_model import evaluate_model
from components.load_data import load_data
from components.promote_model import promote_model
from components.register_model import register_model
from components.train_model import train_model
from pipelines.cluster import with_team_settings


@dsl.pipeline(
    name="mlcycle-training",
    description="Train a model, track it in MLflow, evaluate it against the champion, register it, "
    "and promote it only if it passes the gate.",
)
def training_pipeline(
    dataset: str = "wine",
    target: str = "",
    model_name: str = "",
    team: str = "",
    model_type: str = "random_forest",
    trainer: str = "",
    task: str = "",
    params: str = "{}",
    n_trials: int = 0,
    test_size: float = 0.25,
    seed: int = 0,
    gate_metric: str = "",
    min_improvement: float = 0.0,
    floor: str = "",
    auto_promote: bool = True,
    deploy_environment: str = "",
) -> str:
    """Training, evaluation and registration with a promotion gate.

    Args:
        dataset: ``wine``, ``breast_cancer``, ``synthetic[:rows=N,...]``, or a CSV/Parquet path or s3:// URI.
        target: target column (empty for the built-in sets).
        model_name: registered-model name; empty means the dataset's name.
        team: team prefix for the registered model (empty: the step's MLCYCLE_TEAM).
        model_type: ``random_forest``, ``hist_gradient_boosting`` or ``logistic_regression`` (no ``trainer``).
        trainer: your training function ``package.module:function`` (``fit(train, target, params)``), importable
            in the step's image (``mlcycle compile --image``); empty: the built-in ``model_type``.
        task: ``classification`` or ``regression``; empty: inferred from the target.
        params: the trainer's parameters as a JSON object.
        n_trials: random-search trials over the trainer's ``search_space`` (0: none).
        test_size: share of rows held out.
        seed: random seed.
        gate_metric: metric the gate compares, with its direction (``rmse`` lower is better); empty: the
            task's (``f1_macro`` or ``rmse``).
        min_improvement: how much the candidate must beat the champion by.
        floor: worst acceptable value on the metric's scale; empty: the metric's default.
        auto_promote: move champion when the gate passes; off holds the version as challenger for a canary.
        deploy_environment: ``dev``, ``staging`` or ``prod`` to roll the new champion out to KServe after
            the gate (first rollout at 100%, later ones as a canary); empty: no deployment (local runs).

    Returns:
        The MLflow run id; its registered version carries the gate's decision and reason as tags.
    """
    data = load_data(dataset=dataset, target=target, model_name=model_name, team=team,
                     test_size=test_size, seed=seed, task=task)
    data.set_display_name("load and validate data")
    trained = train_model(
        train_data=data.outputs["train_data"], target=data.outputs["target"],
        registered_name=data.outputs["registered_name"], model_type=model_type, params=params,
        n_trials=n_trials, seed=seed, dataset=dataset, data_hash=data.outputs["data_hash"],
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, trainer=trainer, task=task)
    trained.set_display_name("train")
    evaluated = evaluate_model(
        run_id=trained.outputs["run_id"], test_data=data.outputs["test_data"],
        target=data.outputs["target"], registered_name=data.outputs["registered_name"])
    evaluated.set_display_name("evaluate against champion")
    gate = register_model(
        run_id=trained.outputs["run_id"], registered_name=data.outputs["registered_name"],
        gate_metric=gate_metric, min_improvement=min_improvement, floor=floor, auto_promote=auto_promote,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    gate.after(evaluated)
    gate.set_display_name("register and gate")
    # The decision is the step's single output on purpose: kfp.local's condition evaluator resolves only
    # single (`Output`) task outputs, so this `dsl.If` works the same locally and on a cluster.
    with dsl.If(gate.output == "promote", name="gate-passed"):
        promoted = promote_model(registered_name=data.outputs["registered_name"], run_id=trained.outputs["run_id"],
                                 pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        promoted.set_display_name("promote to champion")
        with dsl.If(deploy_environment != "", name="deploy-configured"):
            deployed = deploy_model(registered_name=data.outputs["registered_name"], version=promoted.output,
                                    environment=deploy_environment, gate_decision=gate.output)
            deployed.set_display_name("roll out to KServe")
            with_team_settings(deployed)
        with_team_settings(promoted)
    with_team_settings(data, trained, evaluated, gate)
    return trained.outputs["run_id"]
