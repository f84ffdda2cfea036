"""mlcycle.kfp_client against a recording stand-in for kfp.Client (no KFP server here).

Every call the fake records is bound against the real ``kfp.Client`` method's signature, so a keyword
the real client does not take fails the test instead of failing on a cluster.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import kfp
import pytest
import urllib3

from mlcycle import kfp_client
from mlcycle.errors import ConfigError, InvalidInputError

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "pipelines" / "compiled" / "training_pipeline.yaml"
MONITORING = REPO / "pipelines" / "compiled" / "monitoring_pipeline.yaml"


class FakeKfpClient:
    """Records calls; knows experiments by name; can be told to fail like an unreachable API."""

    def __init__(self, experiments: dict[str, str] | None = None, fail_with: Exception | None = None) -> None:
        self.experiments = dict(experiments or {})
        self.fail_with = fail_with
        self.calls: list[tuple[str, dict]] = []

    def _record(self, method: str, **kwargs) -> None:
        self.calls.append((method, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    def get_experiment(self, experiment_id=None, experiment_name=None, namespace=None):
        self._record("get_experiment", experiment_id=experiment_id, experiment_name=experiment_name,
                     namespace=namespace)
        if experiment_name not in self.experiments:
            raise ValueError(f"No experiment is found with name {experiment_name}.")
        return SimpleNamespace(experiment_id=self.experiments[experiment_name])

    def create_experiment(self, name, description=None, namespace=None):
        self._record("create_experiment", name=name, description=description, namespace=namespace)
        self.experiments[name] = f"exp-{len(self.experiments) + 1}"
        return SimpleNamespace(experiment_id=self.experiments[name])

    def create_run_from_pipeline_package(self, **kwargs):
        self._record("create_run_from_pipeline_package", **kwargs)
        return SimpleNamespace(run_id="run-123")

    def create_recurring_run(self, **kwargs):
        self._record("create_recurring_run", **kwargs)
        return SimpleNamespace(recurring_run_id="rec-7")

    def method_calls(self, name: str) -> list[dict]:
        return [kwargs for method, kwargs in self.calls if method == name]


def assert_real_signatures(fake: FakeKfpClient) -> None:
    for method, kwargs in fake.calls:
        inspect.signature(getattr(kfp.Client, method)).bind(None, **kwargs)


def test_resolve_host_prefers_the_flag_then_the_environment():
    assert kfp_client.resolve_host("http://kfp:8888/", {"KFP_HOST": "http://other"}) == "http://kfp:8888"
    assert kfp_client.resolve_host(None, {"KFP_HOST": "https://kfp.example"}) == "https://kfp.example"


def test_resolve_host_without_any_says_what_to_set():
    with pytest.raises(ConfigError, match="KFP_HOST"):
        kfp_client.resolve_host(None, {})
    with pytest.raises(ConfigError, match="http://"):
        kfp_client.resolve_host("kfp:8888", {})


def test_parse_params_types_numbers_and_booleans_and_keeps_strings():
    params = kfp_client.parse_params(["dataset=wine", "n_trials=5", "test_size=0.3", "auto_promote=false",
                                      'params={"C": 1}', "model_name="])
    assert params == {"dataset": "wine", "n_trials": 5, "test_size": 0.3, "auto_promote": False,
                      "params": '{"C": 1}', "model_name": ""}


@pytest.mark.parametrize("bad", ["dataset", "=wine", " =x"])
def test_parse_params_rejects_items_without_a_key(bad):
    with pytest.raises(InvalidInputError, match="key=value"):
        kfp_client.parse_params([bad])


def test_parse_params_rejects_a_key_given_twice():
    with pytest.raises(InvalidInputError, match="twice"):
        kfp_client.parse_params(["seed=1", "seed=2"])


def test_pipeline_names_map_to_functions_and_unknown_ones_list_the_choices():
    assert kfp_client.pipeline_function_name("training") == "training_pipeline"
    assert kfp_client.pipeline_function_name("registration") == "registration_pipeline"
    assert kfp_client.pipeline_function_name("parallel-training") == "parallel_training_pipeline"
    assert kfp_client.pipeline_function_name("sharded-batch") == "sharded_batch_pipeline"
    with pytest.raises(InvalidInputError, match="training, monitoring, batch"):
        kfp_client.pipeline_function_name("nope")


def test_package_parameters_read_the_compiled_pipeline():
    params = kfp_client.package_parameters(TRAINING)
    assert params["dataset"] == {"type": "STRING", "optional": True, "default": "wine"}
    assert params["n_trials"]["type"] == "NUMBER_INTEGER"


def test_check_params_names_the_unknown_parameter_and_the_known_ones():
    with pytest.raises(InvalidInputError, match=r"unknown pipeline parameter\(s\) bogus; .*dataset"):
        kfp_client.check_params(TRAINING, {"bogus": 1})


def test_check_params_on_a_missing_or_broken_package(tmp_path):
    with pytest.raises(InvalidInputError, match="mlcycle compile"):
        kfp_client.check_params(tmp_path / "missing.yaml", {})
    broken = tmp_path / "broken.yaml"
    broken.write_text("just: a mapping\n")
    with pytest.raises(InvalidInputError, match="not a compiled KFP pipeline"):
        kfp_client.check_params(broken, {})


def test_submit_run_creates_the_experiment_then_the_run():
    fake = FakeKfpClient()
    run = kfp_client.submit_run(fake, TRAINING, {"dataset": "breast_cancer", "n_trials": 2},
                                experiment="mlcycle-training", namespace="team-a", run_name="nightly",
                                host="http://kfp:8888")
    assert [method for method, _ in fake.calls] == ["get_experiment", "create_experiment",
                                                    "create_run_from_pipeline_package"]
    (created,) = fake.method_calls("create_run_from_pipeline_package")
    assert created == {"pipeline_file": str(TRAINING), "arguments": {"dataset": "breast_cancer", "n_trials": 2},
                       "run_name": "nightly", "experiment_id": "exp-1", "namespace": "team-a"}
    assert fake.method_calls("create_experiment")[0]["namespace"] == "team-a"
    assert run == kfp_client.SubmittedRun(run_id="run-123", experiment_id="exp-1", experiment="mlcycle-training",
                                          url="http://kfp:8888/#/runs/details/run-123")
    assert_real_signatures(fake)


def test_submit_run_reuses_an_existing_experiment():
    fake = FakeKfpClient(experiments={"mlcycle-training": "exp-42"})
    run = kfp_client.submit_run(fake, TRAINING, {}, experiment="mlcycle-training")
    assert run.experiment_id == "exp-42"
    assert not fake.method_calls("create_experiment")
    assert run.url is None


def test_submit_run_checks_parameters_before_calling_the_server():
    fake = FakeKfpClient()
    with pytest.raises(InvalidInputError, match="bogus"):
        kfp_client.submit_run(fake, TRAINING, {"bogus": 1}, experiment="x")
    assert fake.calls == []


def test_an_unreachable_api_is_one_kfp_unavailable_error():
    refused = urllib3.exceptions.MaxRetryError(None, "/apis/v2beta1/experiments", reason="Connection refused")
    fake = FakeKfpClient(fail_with=refused)
    with pytest.raises(kfp_client.KfpUnavailableError, match=r"at http://kfp:8888: MaxRetryError") as caught:
        kfp_client.submit_run(fake, TRAINING, {}, experiment="x", host="http://kfp:8888")
    assert caught.value.http_status == 503
    assert "\n" not in caught.value.message
    assert caught.value.__cause__ is refused


def test_a_bug_in_our_code_is_not_turned_into_an_api_error():
    fake = FakeKfpClient(fail_with=KeyError("oops"))
    with pytest.raises(KeyError):
        kfp_client.submit_run(fake, TRAINING, {}, experiment="x")


def test_schedule_run_creates_one_recurring_run_without_catch_up():
    fake = FakeKfpClient(experiments={"mlcycle-monitoring": "exp-9"})
    scheduled = kfp_client.schedule_run(fake, MONITORING, {"model_name": "wine", "since": "1h"},
                                        cron="0 0 * * * *", experiment="mlcycle-monitoring",
                                        job_name="monitoring-every-1h", namespace="team-a")
    (created,) = fake.method_calls("create_recurring_run")
    assert created["experiment_id"] == "exp-9"
    assert created["cron_expression"] == "0 0 * * * *"
    assert created["max_concurrency"] == 1 and created["no_catchup"] is True and created["enabled"] is True
    assert created["params"] == {"model_name": "wine", "since": "1h"}
    assert created["pipeline_package_path"] == str(MONITORING)
    assert scheduled.recurring_run_id == "rec-7" and scheduled.job_name == "monitoring-every-1h"
    assert_real_signatures(fake)


def test_schedule_run_wants_the_six_field_kfp_cron():
    fake = FakeKfpClient()
    with pytest.raises(InvalidInputError, match="6, seconds first"):
        kfp_client.schedule_run(fake, MONITORING, {}, cron="0 * * * *", experiment="x", job_name="j")
    assert fake.calls == []


def test_connect_reports_an_unreachable_host_in_one_line(tmp_path, monkeypatch):
    # No kfp context file (~/.config/kfp) and no namespace: kfp.Client's constructor calls the health
    # endpoint; port 9 (discard) on loopback refuses at once.
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kfp_client.KfpUnavailableError, match=r"connection failed at http://127.0.0.1:9") as caught:
        kfp_client.connect("http://127.0.0.1:9")
    assert "\n" not in caught.value.message


def test_a_real_client_against_an_unreachable_host_fails_at_the_first_call(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    client = kfp_client.connect("http://127.0.0.1:9", namespace="team-a")  # a namespace skips the health check
    assert isinstance(client, kfp.Client)
    with pytest.raises(kfp_client.KfpUnavailableError, match="experiment look-up failed"):
        kfp_client.submit_run(client, TRAINING, {}, experiment="x", namespace="team-a", host="http://127.0.0.1:9")


@pytest.mark.parametrize("pipeline", sorted(kfp_client.PIPELINES))
def test_every_submittable_pipeline_compiles_from_its_name(pipeline, tmp_path):
    """`mlcycle submit --pipeline NAME` compiles NAME's function; the fan-out ones carry their ParallelFor."""
    import yaml

    from mlcycle.cli.commands_kfp import compile_pipeline

    path = compile_pipeline(pipeline, tmp_path)
    spec = next(yaml.safe_load_all(path.read_text()))  # the pipeline spec (a platform spec may follow)
    assert path.stem == kfp_client.PIPELINES[pipeline] and spec["pipelineInfo"]["name"]
    tasks = spec["root"]["dag"]["tasks"]
    fan_out = [t for t in tasks.values() if "iteratorPolicy" in t or "parameterIterator" in t]
    assert bool(fan_out) == (pipeline in ("parallel-training", "sharded-batch"))
