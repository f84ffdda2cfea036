"""The monitoring fixtures (shared with tests/components and tests/pipelines, which import them)."""

from tests.unit.monitoring.fixtures import logged_wine_fixture, monitoring_home_fixture, wine_fixture  # noqa: F401
