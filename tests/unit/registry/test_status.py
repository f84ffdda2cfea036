"""``mlcycle status NAME`` reads the model itself (MLflow's auth app filters searches but refuses reads)."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
from mlflow.tracking import MlflowClient

from mlcycle.registry import status


def test_a_named_model_is_read_directly_and_a_missing_one_is_none(mlcycle_home):
    MlflowClient().create_registered_model("team-a.wine")
    assert [m.name for m in status.registry_status("team-a", "wine")] == ["team-a.wine"]
    assert [m.name for m in status.registry_status("team-a", "team-a.wine")] == ["team-a.wine"]
    assert status.registry_status("team-a", "iris") == []
    assert [m.name for m in status.registry_status("team-a")] == ["team-a.wine"]


def test_a_refused_read_of_a_named_model_is_not_an_empty_answer(mlcycle_home, monkeypatch):
    def refused(self, name):
        raise MlflowException(f"Permission denied for {name}", error_code=PERMISSION_DENIED)

    monkeypatch.setattr(MlflowClient, "get_registered_model", refused)
    with pytest.raises(MlflowException, match="Permission denied"):
        status.registry_status("team-a", "wine")
