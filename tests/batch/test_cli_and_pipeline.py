"""``mlcycle batch`` end to end, and the batch pipeline: compiled, and run with kfp.local."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.batch.conftest import wine_like


def write_input(wine, path, n=150):
    frame = wine_like(wine.X, n, seed=5)
    frame.insert(0, "id", range(n))
    frame.to_csv(path, index=False)
    return frame


def test_cli_scores_with_a_progress_bar_and_prints_a_summary(wine, tmp_path, capsys):
    from mlcycle.cli import main

    frame = write_input(wine, tmp_path / "in.csv").astype({"alcohol": object})
    frame.loc[[3, 90], "alcohol"] = "n/a"
    frame.to_csv(tmp_path / "in.csv", index=False)
    code = main(["batch", "models:/wine@champion", "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.parquet"), "--on-bad-rows", "quarantine", "--chunk-rows", "40"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "scoring" in out and "150/150" not in out  # CSV: the bar counts rows without a known total
    assert "scored 148 rows with wine v1" in out and "rows/s" in out
    assert "quarantined 2 rows" in out and "out.quarantine.parquet" in out
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 148
    assert pd.read_parquet(tmp_path / "out.quarantine.parquet")["row"].tolist() == [3, 90]


def test_cli_fail_rule_exits_non_zero_naming_the_rows(wine, tmp_path, capsys):
    from mlcycle.cli import main

    frame = write_input(wine, tmp_path / "in.csv", 30)
    frame.loc[12, "proline"] = float("nan")
    frame.to_csv(tmp_path / "in.csv", index=False)
    code = main(["batch", "wine@champion", "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.parquet"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error [input]: 1 of 30 rows" in err and "row 12: proline: missing (NaN)" in err
    assert not (tmp_path / "out.parquet").exists()


def test_pipeline_compiles_to_one_labelled_step_in_the_project_image(tmp_path):
    from kfp import compiler

    from mlcycle.config import COMPONENT_IMAGE
    from pipelines.batch_pipeline import batch_pipeline

    compiler.Compiler().compile(batch_pipeline, str(tmp_path / "batch.yaml"))
    spec, platform = yaml.safe_load_all((tmp_path / "batch.yaml").read_text())
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == COMPONENT_IMAGE
    assert "pip install" not in " ".join(executor["container"]["command"])
    labelled = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert [e["podMetadata"]["labels"] for e in labelled.values()] == [{"mlcycle-settings": "true"}]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["on_bad_rows"]["defaultValue"] == "fail" and "defaultValue" not in params["input_uri"]


def test_pipeline_runs_locally_and_returns_the_batch_run(wine, tmp_path):
    from mlflow.tracking import MlflowClient

    from pipelines.batch_pipeline import batch_pipeline
    from pipelines.local import run_pipeline

    write_input(wine, tmp_path / "in.csv", 60)
    steps = []
    run_id = run_pipeline(
        batch_pipeline, wine.settings, on_step=lambda step, status: steps.append((step, status)),
        input_uri=str(tmp_path / "in.csv"), output_uri=str(tmp_path / "out.parquet"), keys="id",
        on_bad_rows="quarantine",
    )
    assert steps == [("score-batch", "SUCCESS")]
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["id"].tolist() == list(range(60)) and set(out["run_id"]) == {run_id}
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["rows_scored"] == 60 and run.data.params["on_bad_rows"] == "quarantine"


def test_sharded_pipeline_compiles_to_a_fan_out_between_plan_and_collect(tmp_path):
    from kfp import compiler

    from pipelines.batch_pipeline import build_sharded_batch_pipeline

    compiler.Compiler().compile(build_sharded_batch_pipeline(3), str(tmp_path / "sharded.yaml"))
    spec, platform = yaml.safe_load_all((tmp_path / "sharded.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    (loop_name,) = [n for n in tasks if n.startswith("for-loop")]
    loop = tasks[loop_name]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-shards-Output"
    assert loop["dependentTasks"] == ["plan-shards"]
    inner = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert list(inner) == ["score-shard"]
    collect = tasks["collect-shards"]
    assert collect["inputs"]["parameters"]["results"]["taskOutputParameter"]["producerTask"] == loop_name
    labelled = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(labelled) == 3  # plan, score, collect: every pod gets the team's settings
    committed = Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / "sharded_batch_pipeline.yaml"
    assert "for-loop" in " ".join(next(yaml.safe_load_all(committed.read_text()))["root"]["dag"]["tasks"])


@pytest.mark.slow
def test_cli_shards_run_the_fan_out_on_kfp_local(wine, tmp_path, capsys):
    """One kfp.local run (plan, two shards, collect: four subprocesses): the dataset equals the in-process
    job's row for row (the failure and re-run rules are tested on the plain functions, test_shards.py)."""
    from mlcycle.batch import score_batch
    from mlcycle.batch.shards import read_dataset, read_manifest
    from mlcycle.cli import main

    frame = write_input(wine, tmp_path / "in.csv", 120)
    code = main(["batch", "wine@champion", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out"),
                 "--shards", "2", "--parallelism", "2", "--key", "id"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "scored 120 rows in 2 shard(s) with wine v1" in out
    score_batch("wine@champion", str(tmp_path / "in.csv"), str(tmp_path / "one.parquet"), wine.settings, keys=["id"])
    expected = pd.read_parquet(tmp_path / "one.parquet")
    got = read_dataset(str(tmp_path / "out"))
    cols = ["id", "row", "prediction", "proba_0", "proba_1", "proba_2"]
    pd.testing.assert_frame_equal(got[cols], expected[cols], check_exact=True)
    manifest = read_manifest(str(tmp_path / "out"))
    assert len(manifest["shards"]) == 2 and all(s["rows"] > 30 for s in manifest["shards"])
    assert got["id"].tolist() == frame["id"].tolist()
