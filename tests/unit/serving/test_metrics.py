"""The predictor's Prometheus metrics: contract names and labels, and sums across worker processes."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlcycle.serving.metrics import ServingMetrics


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.render_latest()
    assert content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def labels(**kw) -> tuple:
    return tuple(sorted(kw.items()))


REST_200 = labels(model="wine", version="3", protocol="v2-rest", status="200")
REST = {"model": "wine", "version": "3", "protocol": "v2-rest"}


@pytest.fixture
def single_process(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


def test_requests_latency_and_classes_have_the_contract_names(single_process):
    m = ServingMetrics()
    m.observe_request("wine", "3", "v2-rest", 200, 0.0008)
    m.observe_request("wine", "3", "v2-rest", 200, 0.004)
    m.observe_request("wine", "3", "v1", 400, 0.0001)
    m.count_predictions("wine", "3", np.array([0, 1, 1, 2, 1]))
    m.count_predictions("wine", "3", ["1"])
    m.count_predictions("wine", "3", np.array([2.0]))
    s = samples(m)
    assert s[("mlcycle_requests_total", REST_200)] == 2
    assert s[("mlcycle_requests_total", labels(model="wine", version="3", protocol="v1", status="400"))] == 1
    hist = labels(model="wine", version="3", protocol="v2-rest")
    assert s[("mlcycle_request_duration_seconds_count", hist)] == 2
    assert s[("mlcycle_request_duration_seconds_sum", hist)] == pytest.approx(0.0048)
    assert s[("mlcycle_request_duration_seconds_bucket", labels(**REST, le="0.001"))] == 1
    assert s[("mlcycle_request_duration_seconds_bucket", labels(**REST, le="0.005"))] == 2
    by_class = {
        c: s[("mlcycle_predictions_total", labels(model="wine", version="3", **{"class": c}))] for c in ("0", "1", "2")
    }
    assert by_class == {"0": 1, "1": 4, "2": 2}


def test_drops_failures_info_and_canary(single_process):
    m = ServingMetrics()
    m.payload_dropped("wine", 64)
    m.payload_dropped("wine")
    m.load_failure("wine")
    m.set_model_info("wine", "3", "champion")
    m.set_model_info("wine", "4", "canary")
    m.set_canary_percent("wine", 10)
    m.set_model_info("wine", "5", "champion")  # the alias moved: version 3 no longer serves
    s = samples(m)
    assert s[("mlcycle_payload_log_dropped_total", labels(model="wine"))] == 65
    assert s[("mlcycle_model_load_failures_total", labels(model="wine"))] == 1
    info = {k[1]: v for k, v in s.items() if k[0] == "mlcycle_model_info"}
    assert info == {
        labels(model="wine", version="5", role="champion"): 1,
        labels(model="wine", version="4", role="canary"): 1,
    }
    assert s[("mlcycle_canary_traffic_percent", labels(model="wine"))] == 10
    m.clear_model_info("wine", "canary")
    assert ("mlcycle_model_info", labels(model="wine", version="4", role="canary")) not in samples(m)
    with pytest.raises(ValueError, match="role"):
        m.set_model_info("wine", "5", "shadow")


def test_two_instances_do_not_collide(single_process):
    a, b = ServingMetrics(), ServingMetrics()
    a.load_failure("wine")
    assert ("mlcycle_model_load_failures_total", labels(model="wine")) not in samples(b)


def _worker(n_requests: int, version: str, barrier) -> None:
    # Runs in a fresh (spawned) interpreter with PROMETHEUS_MULTIPROC_DIR inherited from the test.
    m = ServingMetrics()
    m.set_model_info("wine", version, "champion")
    m.set_canary_percent("wine", 20)
    for _ in range(n_requests):
        m.observe_request("wine", "3", "v2-rest", 200, 0.002)
    m.count_predictions("wine", "3", [1] * n_requests)
    m.payload_dropped("wine", 2)
    barrier.wait(timeout=60)  # both workers alive while the parent renders


def test_multiprocess_mode_adds_up_across_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_worker, args=(n, v, barrier)) for n, v in ((7, "3"), (5, "4"))]
    for w in workers:
        w.start()
    try:
        barrier.wait(timeout=60)
        for w in workers:
            w.join(timeout=60)
            assert w.exitcode == 0
        s = samples(ServingMetrics())  # the parent renders what the workers wrote
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
    assert s[("mlcycle_requests_total", REST_200)] == 12
    assert s[("mlcycle_request_duration_seconds_count", labels(**REST))] == 12
    assert s[("mlcycle_predictions_total", labels(model="wine", version="3", **{"class": "1"}))] == 12
    assert s[("mlcycle_payload_log_dropped_total", labels(model="wine"))] == 4
    assert s[("mlcycle_canary_traffic_percent", labels(model="wine"))] == 20
    info = {k[1]: v for k, v in s.items() if k[0] == "mlcycle_model_info"}
    assert info == {
        labels(model="wine", version="3", role="champion"): 1,
        labels(model="wine", version="4", role="champion"): 1,
    }


@pytest.mark.parametrize("multiprocess", [False, True])
def test_a_regressors_values_counted_at_once_equal_observing_each(tmp_path, monkeypatch, multiprocess):
    """``observe_many`` reads the histogram child as ``observe`` uses it: the same buckets (values on a
    bound, just above one, beyond the outermost) and sum as observing value by value, NaN left out."""
    from prometheus_client import CollectorRegistry, Histogram

    from mlcycle.serving.metrics import VALUE_BUCKETS, observe_many

    if multiprocess:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    rng = np.random.default_rng(0)
    finite = [b for b in VALUE_BUCKETS if np.isfinite(b)]
    values = np.concatenate([rng.normal(0, 300, 500), finite, np.nextafter(finite, np.inf), [-1e12, 1e12, np.nan]])
    one, many = (Histogram(name, "h", ["m"], buckets=VALUE_BUCKETS, registry=CollectorRegistry()).labels("x")
                 for name in ("one", "many"))
    for v in values.tolist():
        if v == v:
            one.observe(v)
    observe_many(many, values)
    got = [b.get() for b in many._buckets]
    assert got == [b.get() for b in one._buckets] and sum(got) == len(values) - 1
    # the same sum up to rounding (value by value, +-1e12 cancel in float64: summed at once, less is lost)
    assert abs(one._sum.get() - many._sum.get()) <= 1e-12 * np.nansum(np.abs(values))


def test_regression_predictions_reach_the_value_histogram_at_once(single_process):
    from mlcycle.serving.metrics import VALUE_BUCKETS

    m = ServingMetrics()
    m.count_predictions("reg", "1", np.array([0.5, 2.0, np.nan, 1e9]), regression=True)
    found = samples(m)
    model = {"model": "reg", "version": "1"}
    assert found[("mlcycle_prediction_value_count", labels(**model))] == 3
    assert found[("mlcycle_prediction_value_bucket", labels(**model, le="+Inf"))] == 3
    below = [v for v in VALUE_BUCKETS if 2.0 <= v < 1e9][0]  # 0.5 and 2.0 at or below it, 1e9 above
    assert found[("mlcycle_prediction_value_bucket", labels(**model, le=str(float(below))))] == 2
