"""A stand-in for ``kubernetes.client.CustomObjectsApi`` that records calls and keeps state.

Patches are applied with JSON merge-patch semantics (RFC 7386), which is what the real client sends
for ``patch_namespaced_custom_object`` (Content-Type ``application/merge-patch+json``).
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client.exceptions import ApiException


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeCustomObjectsApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_with: int | None = None

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise ApiException(status=self.fail_with, reason="Injected")

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.calls.append(("get", (group, version, namespace, plural, name)))
        self._maybe_fail()
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[(namespace, name)])

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.calls.append(("create", (group, version, namespace, plural, copy.deepcopy(body))))
        self._maybe_fail()
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = copy.deepcopy(body)
        return body

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.calls.append(("patch", (group, version, namespace, plural, name, copy.deepcopy(body))))
        self._maybe_fail()
        self.objects[(namespace, name)] = merge_patch(self.objects[(namespace, name)], body)
        return self.objects[(namespace, name)]

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector=None):
        self.calls.append(("list", (group, version, namespace, plural, label_selector)))
        self._maybe_fail()
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(",")) if label_selector else {}
        items = [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(self.objects.items())
            if ns == namespace and wanted.items() <= (obj["metadata"].get("labels") or {}).items()
        ]
        return {"items": items}

    def writes(self) -> list[tuple[str, Any]]:
        """(verb, body) of every create and patch, in order."""
        return [(verb, args[-1]) for verb, args in self.calls if verb != "get"]


class RecordedReader:
    """Prometheus answers as recorded: a canary failing 8% of its requests."""

    def __init__(self, canary_errors: float) -> None:
        self.canary_errors = canary_errors

    def query(self, promql):
        if "status=~" in promql:
            return [({"version": "1"}, 5.0), ({"version": "2"}, self.canary_errors)]
        if "histogram_quantile" in promql:
            return [({"version": "1"}, 0.01), ({"version": "2"}, 0.011)]
        if "predictions" in promql:
            return [({"version": "1", "class": "a"}, 500.0), ({"version": "2", "class": "a"}, 50.0)]
        return [({"version": "1"}, 5000.0), ({"version": "2"}, 500.0)]
