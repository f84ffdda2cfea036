"""The committed KFP YAML is what the code compiles to, and it carries no credentials or installs."""

from pathlib import Path

import yaml

from pipelines.compile import COMPILED_DIR, compile_all


def _install_independent(docs: list) -> list:
    """The compiled documents without what depends on the installed kfp rather than on our code."""
    for doc in docs:
        doc.pop("sdkVersion", None)
    return docs


def test_compiled_yaml_is_up_to_date(tmp_path):
    written = compile_all(tmp_path)
    assert written, "no pipelines compiled"
    for path in written:
        committed = COMPILED_DIR / path.name
        assert committed.exists(), f"{committed} is missing: run `make compile` and commit it"
        # Multi-document: the pipeline spec, then the Kubernetes platform spec (pod labels).
        fresh, kept = (_install_independent(list(yaml.safe_load_all(p.read_text()))) for p in (path, committed))
        assert fresh == kept, (
            f"{committed.name} is stale: run `make compile` and commit it")


def test_compiled_steps_use_the_project_image_and_install_nothing():
    from mlcycle.config import COMPONENT_IMAGE

    spec, platform = yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 6
    # Every step carries the label that lets the team's PodDefault inject its settings.
    labelled = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(labelled) == set(executors)
    assert all(e["podMetadata"]["labels"] == {"mlcycle-settings": "true"} for e in labelled.values())
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == COMPONENT_IMAGE
        assert "pip install" not in " ".join(container["command"])


def test_no_credentials_in_compiled_yaml():
    for path in Path(COMPILED_DIR).glob("*.yaml"):
        text = path.read_text().lower()
        for needle in ("aws_secret_access_key", "password", "minio123", "bearer "):
            assert needle not in text, f"{path.name} contains {needle!r}"
