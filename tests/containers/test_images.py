"""The two images scripts/images.sh builds: the tags the compiled pipelines and Settings name, their labels,
user and size."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.containers.conftest import engine

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MAX_PREDICTOR_BYTES = 1.2e9


def compiled_images() -> set[str]:
    """Every executor image named in pipelines/compiled/*.yaml."""
    found = set()
    for path in sorted((ROOT / "pipelines/compiled").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            executors = (document or {}).get("deploymentSpec", {}).get("executors", {})
            found |= {executor["container"]["image"] for executor in executors.values() if "container" in executor}
    return found


def test_the_compiled_pipelines_name_the_component_image_that_was_built(images, engine_env):
    assert compiled_images() == {images["component"]}
    assert engine(engine_env, "image", "inspect", images["component"], check=False).returncode == 0


@pytest.mark.parametrize("target", ["component", "predictor"])
def test_image_labels_user_and_size(images, engine_env, target):
    import mlcycle

    fmt = "{{.Config.User}}|{{index .Config.Labels \"org.opencontainers.image.version\"}}|{{.Size}}"
    user, version, size = engine(engine_env, "image", "inspect", "--format", fmt, images[target]).stdout.split("|")
    assert user == "10001:10001"
    assert version == mlcycle.__version__
    if target == "predictor":
        assert int(size) <= MAX_PREDICTOR_BYTES, f"the predictor image is {int(size) / 1e9:.2f} GB"
    # The locked set: the image's packages agree with each other; the predictor lacks only the monitoring
    # stack (evidently and what only it needs), which it never imports.
    check = engine(engine_env, "run", "--rm", "--entrypoint", "pip", images[target], "check", check=False)
    if target == "component":
        assert check.returncode == 0, check.stdout + check.stderr
    else:
        assert check.stdout.strip() == f"mlcycle {mlcycle.__version__} requires evidently, which is not installed."
