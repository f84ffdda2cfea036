"""The cluster schedule: a KFP recurring run created through a kfp.Client-shaped object."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from kfp import Client

from mlcycle.errors import InvalidInputError
from mlcycle.monitoring.schedule import cron_for, schedule_monitoring


class RecordingClient:
    """Records calls; its methods keep kfp.Client's signatures (checked below)."""

    def __init__(self, experiment_exists: bool):
        self.exists = experiment_exists
        self.calls = []

    def get_experiment(self, experiment_id=None, experiment_name=None, namespace=None):
        self.calls.append(("get_experiment", experiment_name, namespace))
        if not self.exists:
            raise ValueError(f"No experiment is found with name {experiment_name}.")
        return SimpleNamespace(experiment_id="exp-1")

    def create_experiment(self, name, description=None, namespace=None):
        self.calls.append(("create_experiment", name, namespace))
        return SimpleNamespace(experiment_id="exp-new")

    def create_recurring_run(self, experiment_id, job_name, **kwargs):
        self.calls.append(("create_recurring_run", experiment_id, job_name, kwargs))
        return SimpleNamespace(recurring_run_id="rr-1")


def test_fake_client_matches_kfp_client_signatures():
    for name in ("get_experiment", "create_experiment", "create_recurring_run"):
        real = inspect.signature(getattr(Client, name)).parameters
        fake = inspect.signature(getattr(RecordingClient, name)).parameters
        assert set(fake) - {"kwargs"} <= set(real), name


@pytest.mark.parametrize("exists", [True, False])
def test_creates_one_recurring_run_per_model(exists):
    client = RecordingClient(exists)
    result = schedule_monitoring(
        client,
        "pipelines/compiled/monitoring_pipeline.yaml",
        every="10m",
        params={"model_name": "wine"},
        namespace="team-a",
    )
    assert result.recurring_run_id == "rr-1"
    _, experiment_id, job_name, kwargs = client.calls[-1]
    assert experiment_id == ("exp-1" if exists else "exp-new")
    assert job_name == "monitor-wine"
    assert kwargs["cron_expression"] == "0 */10 * * * *"
    assert kwargs["params"] == {"since": "10m", "model_name": "wine"}  # windows tile the schedule
    assert kwargs["max_concurrency"] == 1 and kwargs["no_catchup"] is True
    assert kwargs["pipeline_package_path"].endswith("monitoring_pipeline.yaml")
    assert set(kwargs) <= set(inspect.signature(Client.create_recurring_run).parameters)
    assert ("create_experiment", "mlcycle-monitoring", "team-a") in client.calls or exists


@pytest.mark.parametrize(
    ("every", "cron"),
    [
        ("1m", "0 * * * * *"),
        ("15m", "0 */15 * * * *"),
        ("1h", "0 0 * * * *"),
        ("6h", "0 0 */6 * * *"),
        ("1d", "0 0 0 * * *"),
    ],
)
def test_cron_for_periods(every, cron):
    assert cron_for(every) == cron


def test_periods_without_a_cron_form_are_refused():
    with pytest.raises(InvalidInputError):
        cron_for("7m")
    with pytest.raises(InvalidInputError):
        cron_for("90s")


def test_cli_creates_the_recurring_run_through_kfp_client(monkeypatch, capsys, mlcycle_home):
    import kfp

    from mlcycle.cli import main

    made = []

    def fake_client(host=None, namespace=None, **kwargs):
        made.append((host, namespace))
        client = RecordingClient(experiment_exists=True)
        made.append(client)
        return client

    monkeypatch.setattr(kfp, "Client", fake_client)
    code = main(
        ["schedule-monitoring", "wine", "--host", "http://kfp.example", "--every", "30m", "--namespace", "team-a"]
    )
    assert code == 0, capsys.readouterr().err
    assert made[0] == ("http://kfp.example", "team-a")
    _, _, _, kwargs = made[1].calls[-1]
    assert kwargs["cron_expression"] == "0 */30 * * * *"
    assert kwargs["params"] == {"since": "30m", "model_name": "wine", "persistence_windows": 3, "team": "team-a"}
    assert "recurring run rr-1 monitors wine every 30m" in capsys.readouterr().out
