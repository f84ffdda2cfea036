"""Governance fixtures; ``mlcycle_home`` comes from tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def registry(mlcycle_home, tmp_path):
    """Registered model team-a.wine with three bare versions (no training needed)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model("team-a.wine")
    source = tmp_path / "model"
    source.mkdir()
    for _ in range(3):
        client.create_model_version("team-a.wine", str(source))
    return client
