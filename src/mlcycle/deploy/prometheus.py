"""Read the canary's and the champion's metrics from Prometheus's HTTP API (``/api/v1/query``).

Thin: one instant query per quantity, each aggregated ``by (version)`` over the window, turned into
:class:`~mlcycle.deploy.canary.VersionSamples` for :func:`~mlcycle.deploy.canary.decide_canary`.
Metric names and labels are the predictor's (docs/contracts.md, "Prometheus metrics"); on a cluster the
PodMonitor adds the ``namespace`` label.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from mlcycle.deploy.canary import VersionSamples
from mlcycle.errors import InvalidInputError, MlcycleError


class PrometheusError(MlcycleError):
    """Prometheus could not be reached or refused the query (HTTP 502)."""

    http_status = 502


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class PrometheusReader:
    """A tiny client for Prometheus's instant-query API."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, client: httpx.Client | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(
                f"Prometheus URL {base_url!r} must start with http:// or https://", field="prometheus_url"
            )
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Run an instant query; return ``(labels, value)`` per series of the resulting vector.

        Raises:
            PrometheusError: the server is unreachable, answers non-2xx, or reports an error.
        """
        url = f"{self.base_url}/api/v1/query"
        try:
            response = self._client.get(url, params={"query": promql})
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise PrometheusError(f"Prometheus query to {url} failed: {e}") from e
        if response.status_code >= 400 or body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus refused the query ({response.status_code}): "
                f"{body.get('errorType', '')} {body.get('error', '')}".strip()
            )
        data = body.get("data", {})
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected a vector result, got {data.get('resultType')!r}")
        series = []
        for item in data.get("result", []):
            value = float(item["value"][1])
            if not math.isnan(value):
                series.append((item.get("metric", {}), value))
        return series

    def close(self) -> None:
        self._client.close()


def canary_queries(model: str, namespace: str | None, window: str) -> dict[str, str]:
    """The PromQL for each quantity, selecting ``model`` (its base name) in ``namespace``."""
    selector = f'model="{_label_value(model)}"'
    if namespace:
        selector += f',namespace="{_label_value(namespace)}"'
    return {
        "requests": f"sum by (version) (increase(mlcycle_requests_total{{{selector}}}[{window}]))",
        "errors": (f'sum by (version) (increase(mlcycle_requests_total{{{selector},status=~"5.."}}[{window}]))'),
        "p95": (
            "histogram_quantile(0.95, sum by (version, le) "
            f"(rate(mlcycle_request_duration_seconds_bucket{{{selector}}}[{window}])))"
        ),
        "predictions": (f"sum by (version, class) (increase(mlcycle_predictions_total{{{selector}}}[{window}]))"),
        "values": (f"sum by (version, le) (increase(mlcycle_prediction_value_bucket{{{selector}}}[{window}]))"),
    }


def read_canary_samples(
    reader: PrometheusReader,
    *,
    model: str,
    champion_version: str,
    canary_version: str,
    namespace: str | None = None,
    window: str = "10m",
) -> tuple[VersionSamples, VersionSamples]:
    """Read ``(champion, canary)`` samples for two versions of ``model`` over ``window``."""
    queries = canary_queries(model, namespace, window)
    by_version: dict[str, dict[str, Any]] = {
        v: {"requests": 0.0, "errors": 0.0, "p95": None, "predictions": {}, "values": {}}
        for v in (champion_version, canary_version)
    }
    for quantity in ("requests", "errors", "p95"):
        for labels, value in reader.query(queries[quantity]):
            if labels.get("version") in by_version:
                by_version[labels["version"]][quantity] = value
    for labels, value in reader.query(queries["predictions"]):
        if labels.get("version") in by_version:
            mix = by_version[labels["version"]]["predictions"]
            mix[labels.get("class", "")] = mix.get(labels.get("class", ""), 0.0) + value

    for labels, value in reader.query(queries["values"]):
        if labels.get("version") in by_version and "le" in labels:
            by_version[labels["version"]]["values"][float(labels["le"])] = value

    def samples(version: str) -> VersionSamples:
        got = by_version[version]
        return VersionSamples(
            version, got["requests"], got["errors"], got["p95"], got["predictions"], value_buckets=got["values"]
        )

    return samples(champion_version), samples(canary_version)
