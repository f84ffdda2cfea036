"""Offline validation as strict as an API server with strict field validation (``kubectl apply``).

Custom resources validate against their real CRD schemas, vendored unchanged in ``third_party/crds/``
(upstream, version and licence in its README), with every object schema that lists ``properties`` and lacks
``x-kubernetes-preserve-unknown-fields`` closed (``additionalProperties: false``); ``metadata`` against
Kubernetes' ObjectMeta. Core kinds validate with kubernetes-validate in strict mode. A kind that neither
knows is an error, not a pass.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "third_party" / "crds"
KUBERNETES_VERSION = "1.31"  # Kubeflow 1.9/1.10 support Kubernetes 1.29-1.31


# libyaml's loader when PyYAML was built with it: the CRDs are ~4 MB of YAML (10 s in pure Python).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(AssertionError):
    """A manifest a cluster would reject."""


def _close(schema: Any) -> Any:
    """Close every object schema that lists properties and does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: _close(v) for k, v in schema.items()}
        if (
            "properties" in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in out
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


@functools.lru_cache(maxsize=1)
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): closed schema}`` for every served version of every CRD in third_party/crds."""
    if not CRD_DIR.is_dir():
        raise FileNotFoundError(
            f"CRD schemas not found at {CRD_DIR}: they are part of the repository (third_party/crds/README.md)"
        )
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                if version.get("served", True):
                    schema = _close(version["schema"]["openAPIV3Schema"])
                    # The API server accepts these at the root of every object even where a CRD's
                    # schema omits them (Istio's do); metadata is checked against ObjectMeta below.
                    schema["properties"] = {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        **schema["properties"],
                    }
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


STRICT_SCHEMAS = f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict"


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, Any]:
    return schema_contents(f"{STRICT_SCHEMAS}/_definitions.json", KUBERNETES_VERSION)


@functools.lru_cache(maxsize=1)
def _object_meta_validator() -> jsonschema.protocols.Validator:
    schema = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "$defs": _definitions()["$defs"]}
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _core_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """kubernetes-validate's strict schema for a core kind (what ``kubernetes_validate.validate(...,
    strict=True)`` uses), built once per kind instead of once per object; None if there is none."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(f"{STRICT_SCHEMAS}/{kind.lower()}-{group_version}.json", KUBERNETES_VERSION)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(_definitions()) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_object(obj: dict[str, Any]) -> None:
    """Raise :class:`ManifestError` if a cluster would reject ``obj``."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    where = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
    key = (api_version, kind)
    if key in crd_schemas():
        errors = sorted(jsonschema.Draft7Validator(crd_schemas()[key]).iter_errors(obj), key=lambda e: list(e.path))
        errors += list(_object_meta_validator().iter_errors(obj.get("metadata", {})))
        if errors:
            first = errors[0]
            path = ".".join(str(p) for p in first.path)
            raise ManifestError(f"{where}: {path}: {first.message}")
        return
    if "/" in api_version and "." in api_version.split("/")[0] and not api_version.split("/")[0].endswith(".k8s.io"):
        raise ManifestError(f"{where}: no CRD schema for {api_version} {kind} in {CRD_DIR}")
    validator = _core_validator(api_version, kind)
    if validator is None:
        raise ManifestError(f"{where}: no Kubernetes {KUBERNETES_VERSION} schema for {api_version} {kind}")
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        path = ".".join(str(p) for p in errors[0].path)
        raise ManifestError(f"{where}: {path}: {errors[0].message}")


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize <directory>`` as a list of objects; the build error if it fails."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise ManifestError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=_LOADER) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``) in ``objects``."""
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(hits) != 1:
        raise ManifestError(f"expected one {kind} {name or ''}, found {len(hits)}")
    return copy.deepcopy(hits[0])


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
