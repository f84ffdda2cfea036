"""The training pipeline: load → train → evaluate → register (gate) → promote if the gate passes.

With parallel trials (:func:`build_training_pipeline` with ``trial_parallelism`` above 1) the train step
becomes plan trials → a ``dsl.ParallelFor`` of trial steps → select the best and train it; the rest is the same.
"""

from kfp import dsl

from components.deploy_model import deploy_model
from components.evaluate_model import evaluate_model
from components.load_data import load_data
from components.plan_trials import plan_trials
from components.promote_model import promote_model
from components.register_model import register_model
from components.select_trial import select_trial
from components.train_model import train_model
from components.train_trial import train_trial
from pipelines.cluster import with_team_settings

DEFAULT_TRIAL_PARALLELISM = 8


def build_training_pipeline(trial_parallelism: int = 1):
    """The training pipeline; with ``trial_parallelism`` above 1, its search trials fan out over the cluster.

    At 1 the search (``n_trials``) runs trial after trial inside the train step. Above 1 the trials are a
    ``dsl.ParallelFor`` of steps, at most ``trial_parallelism`` at once, each an MLflow child run of one parent
    run; a select step keeps the best (the serial search's rule) and trains the final model in the parent
    run, which evaluation, the gate and registration then use. A ParallelFor's parallelism is fixed when the
    pipeline is compiled, so it is an argument here: the committed ``parallel_training_pipeline.yaml`` uses
    :data:`DEFAULT_TRIAL_PARALLELISM` and ``mlcycle run training --trials N --parallelism P`` builds its own.
    """
    if trial_parallelism < 1:
        raise ValueError(f"trial_parallelism must be at least 1, got {trial_parallelism}")
    fan_out = trial_parallelism > 1
    name, description = "mlcycle-training", (
        "Train a model, track it in MLflow, evaluate it against the champion, register it, "
        "and promote it only if it passes the gate.")
    if fan_out:
        name, description = "mlcycle-training-parallel-trials", description.replace(
            "Train a model,", "Search parameters in parallel trials (MLflow child runs), train the best,")

    @dsl.pipeline(name=name, description=description)
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
        search_steps = []
        if fan_out:
            plan = plan_trials(
                train_data=data.outputs["train_data"], target=data.outputs["target"],
                registered_name=data.outputs["registered_name"], model_type=model_type, params=params,
                n_trials=n_trials, seed=seed, dataset=dataset, data_hash=data.outputs["data_hash"],
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, trainer=trainer, task=task)
            plan.set_display_name("plan trials")
            with dsl.ParallelFor(plan.output, parallelism=trial_parallelism) as trial:
                tried = train_trial(train_data=data.outputs["train_data"], trial=trial)
                tried.set_display_name("train trial")
                with_team_settings(tried)
            trained = select_trial(train_data=data.outputs["train_data"], target=data.outputs["target"],
                                   trials=plan.output, results=dsl.Collected(tried.output))
            trained.set_display_name("select best trial and train")
            search_steps.append(plan)
        else:
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
        with_team_settings(data, *search_steps, trained, evaluated, gate)
        return trained.outputs["run_id"]

    return training_pipeline


training_pipeline = build_training_pipeline()
parallel_training_pipeline = build_training_pipeline(DEFAULT_TRIAL_PARALLELISM)
