"""Fixtures for the reliability and security tests: tiny wine models and real predictors on loopback."""

from __future__ import annotations

import os

import pytest

from tests.inference.wine_models import WineModels, build_wine_models


@pytest.fixture(scope="session")
def wine_registry(tmp_path_factory) -> WineModels:
    """A local MLflow store (own MLCYCLE_HOME) with ``wine`` v1 (champion) and v2 (challenger)."""
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("reliability-home"))
    yield models
    os.environ.clear()
    os.environ.update(saved)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]
