"""The committed KFP YAML is what the code compiles to, and it carries no credentials or installs."""

from pathlib import Path

import yaml

from pipelines.compile import COMPILED_DIR, compile_all


def test_compiled_yaml_is_up_to_date(tmp_path):
    written = compile_all(tmp_path)
    assert written, "no pipelines compiled"
    for path in written:
        committed = COMPILED_DIR / path.name
        assert committed.exists(), f"{committed} is missing: run `make compile` and commit it"
        assert yaml.safe_load(path.read_text()) == yaml.safe_load(committed.read_text()), (
            f"{committed.name} is stale: run `make compile` and commit it")


def test_compiled_steps_use_the_project_image_and_install_nothing():
    from mlcycle.config import COMPONENT_IMAGE

    spec = yaml.safe_load((COMPILED_DIR / "training_pipeline.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 5
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == COMPONENT_IMAGE
        assert "pip install" not in " ".join(container["command"])


def test_no_credentials_in_compiled_yaml():
    for path in Path(COMPILED_DIR).glob("*.yaml"):
        text = path.read_text().lower()
        for needle in ("aws_secret_access_key", "password", "minio123", "bearer "):
            assert needle not in text, f"{path.name} contains {needle!r}"
