"""Build every overlay and the profiles once per session (``kubectl kustomize`` takes ~0.3 s each)."""

from __future__ import annotations

import shutil

import pytest

from tests.manifests.schemas import REPO_ROOT, kustomize_build

ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: the manifests tests build overlays with `kubectl kustomize`")
    return path


@pytest.fixture(scope="session")
def overlays(kubectl) -> dict[str, list[dict]]:
    return {env: kustomize_build(REPO_ROOT / "kustomize" / "overlays" / env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def profiles(kubectl) -> list[dict]:
    return kustomize_build(REPO_ROOT / "profiles")
