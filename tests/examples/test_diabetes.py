"""The diabetes example: a worse-RMSE candidate is rejected, a better one promoted (same holdout rows)."""

from mlcycle import lifecycle
from mlcycle.registry.versions import alias_version

TRAINER = "examples.diabetes_regression.train:fit"


def test_the_gate_keeps_the_lower_rmse(mlcycle_home, tmp_path):
    from examples.diabetes_regression.train import write_data

    source = write_data(str(tmp_path / "diabetes.parquet"))
    prepared = lifecycle.prepare_data(source, "target", tmp_path / "train.parquet", tmp_path / "test.parquet")
    decisions = {}
    for label, params in (("forest", {"kind": "forest", "max_depth": 2}), ("worse", {"kind": "forest", "max_depth": 1}),
                          ("ridge", {"alpha": 0.1})):
        trained = lifecycle.run_training(tmp_path / "train.parquet", prepared.target, mlcycle_home,
                                         registered_name="diabetes", trainer=TRAINER, params=params)
        assert trained.task == "regression"
        comparison = lifecycle.run_evaluation(trained.run_id, tmp_path / "test.parquet", "target", "diabetes")
        policy = lifecycle.gate_policy_for_run(trained.run_id, "rmse")
        outcome = lifecycle.register_and_gate(trained.run_id, "diabetes", policy, mlcycle_home)
        decisions[label] = (outcome, comparison)
        if outcome.promote:
            lifecycle.promote_if_passed("diabetes", outcome.version)
    first, _ = decisions["forest"]
    worse, worse_cmp = decisions["worse"]
    better, better_cmp = decisions["ridge"]
    assert first.promote
    assert worse_cmp.candidate.metrics["rmse"] > worse_cmp.champion.metrics["rmse"] and not worse.promote
    assert better_cmp.candidate.metrics["rmse"] < better_cmp.champion.metrics["rmse"] and better.promote
    assert alias_version("diabetes", "champion") == better.version
