"""`mlcycle compile --image`: the pipelines for a user image built FROM mlcycle's."""

import yaml

from mlcycle.cli import main
from mlcycle.config import COMPONENT_IMAGE


def test_compile_with_an_image_points_every_mlcycle_step_at_it(tmp_path, capsys):
    assert main(["compile", "--image", "registry.example/team/trainer:1", "--out-dir", str(tmp_path)]) == 0
    spec = next(yaml.safe_load_all((tmp_path / "training_pipeline.yaml").read_text()))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/team/trainer:1"}
    assert "trainer" in spec["root"]["inputDefinitions"]["parameters"]
    assert COMPONENT_IMAGE not in (tmp_path / "batch_pipeline.yaml").read_text()


def test_compile_with_an_image_refuses_to_overwrite_the_committed_pipelines(capsys):
    assert main(["compile", "--image", "mine:1"]) != 0
    assert "--out-dir" in capsys.readouterr().err
