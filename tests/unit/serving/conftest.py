"""Session-scoped tiny registered wine models (one MLflow store for all serving unit tests)."""

from __future__ import annotations

import os

import pytest

from tests.inference.wine_models import WineModels, build_wine_models


@pytest.fixture(scope="session")
def wine_models(tmp_path_factory) -> WineModels:
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("serving-home"))
    yield models
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def wine_env(wine_models, monkeypatch) -> WineModels:
    """The session store, with the environment and MLflow pointed at it for this test."""
    from mlcycle import tracking

    for key, value in wine_models.env.items():
        monkeypatch.setenv(key, value)
    tracking.configure(wine_models.settings)
    return wine_models
