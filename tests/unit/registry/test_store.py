"""Registry reads tell "not there" from "refused" from "unavailable" (MLflow's auth app blurs the first two)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from mlcycle.registry import store


class Client:
    """An MlflowClient stand-in answering alias reads with ``error`` and searches with ``models``."""

    def __init__(self, error: MlflowException, models: list[str]):
        self.error, self.models, self.searches = error, models, []

    def get_model_version_by_alias(self, name, alias):
        raise self.error

    def search_registered_models(self, filter_string):
        self.searches.append(filter_string)
        return [SimpleNamespace(name=n) for n in self.models]


def test_a_missing_model_is_no_alias():
    c = Client(MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST), [])
    assert store.alias_version("team-a.wine", "champion", mlflow_client=c) is None
    assert c.searches == []


def test_a_403_for_a_model_no_search_shows_is_no_alias_only_for_a_first_evaluation():
    """The auth app answers 403 for a model that does not exist yet as for another team's: only a caller about
    to create the model reads it as "no alias"; promote/status/rollback get the refusal."""
    c = Client(MlflowException("Permission denied", error_code=PERMISSION_DENIED), [])
    assert store.alias_version("team-a.wine", "champion", mlflow_client=c, denied_is_missing=True) is None
    assert c.searches == ["name = 'team-a.wine'"]
    with pytest.raises(MlflowException, match="Permission denied"):
        store.alias_version("team-a.wine", "challenger", mlflow_client=c)


def test_a_403_for_a_model_we_can_see_is_raised():
    c = Client(MlflowException("Permission denied", error_code=PERMISSION_DENIED), ["team-a.wine"])
    with pytest.raises(MlflowException, match="Permission denied"):
        store.alias_version("team-a.wine", "champion", mlflow_client=c, denied_is_missing=True)
