"""The KServe model: one served name, a champion version and optionally a canary, over mlcycle.serving.

All I/O happens in :meth:`MlflowModel.load` (and in the background alias poller); ``ready`` is set
last. A request only decodes (numpy), routes (hash of its id), waits for its micro-batch and encodes:
no environment, registry or network access on that path.
"""

from __future__ import annotations

import gc
import itertools
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kserve import Model
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from inference.runtime import Runtime, runtime
from mlcycle import logs, tracking
from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError, MlcycleError, ModelNotReadyError, NotImplementedOperationError
from mlcycle.serving.auth import RefusalLog
from mlcycle.serving.batching import AdaptiveBatcher
from mlcycle.serving.compiled import compile_loaded
from mlcycle.serving.loading import LoadedModel, load_model, resolve_version
from mlcycle.serving.predict import Prediction, predict
from mlcycle.serving.routing import goes_to_canary, validate_percent
from mlcycle.serving.schema import V2Input, decode_v1, decode_v2, v2_datatype, v2_metadata

log = logging.getLogger("mlcycle.inference")
_refusals = RefusalLog(log)  # refused requests: DEBUG each, one INFO summary per minute at most

CHAMPION, CANARY = "champion", "canary"
# Ids for requests that bring none (payload log rows need one): unique per process, cheaper than uuid4.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ids = itertools.count(1)
MAX_BACKOFF_S = 300.0  # a version that keeps failing to load is tried at most every 5 minutes
VERSION_HEADER = "x-mlcycle-model-version"
ROLE_HEADER = "x-mlcycle-model-role"


@dataclass
class ServedVersion:
    """A loaded version, its role, its micro-batcher and precomputed response pieces."""

    loaded: LoadedModel
    role: str
    batcher: AdaptiveBatcher
    version: str
    metadata: dict[str, Any]
    columns: list[str]
    download_dir: Path | None = None

    def retire(self) -> None:
        """This version stopped serving: close its batcher (answering what it holds), delete its files."""
        self.batcher.close_from_thread()
        if self.download_dir is not None:
            shutil.rmtree(self.download_dir, ignore_errors=True)

    @classmethod
    def load(cls, ref: str, role: str, settings: Settings, name: str) -> ServedVersion:
        """Download ``ref`` into a directory of its own under ``settings.download_dir`` and build it."""
        root = settings.download_dir
        root.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-{role}-", dir=root))
        try:
            served = cls.build(load_model(ref, settings, name=name, dst_path=directory), role, settings)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        served.download_dir = directory
        return served

    @classmethod
    def build(cls, loaded: LoadedModel, role: str, settings: Settings) -> ServedVersion:
        if settings.serving_compile and loaded.compiled is None and not loaded.compile_note:
            compile_loaded(loaded)  # once per version; a worker process gets it pickled
        batcher = AdaptiveBatcher(
            partial(predict, loaded),
            max_rows=settings.serving_batch_max_rows,
            max_wait_s=settings.serving_batch_max_wait_ms / 1000.0,
            name=f"{loaded.served_name}-{loaded.version}",
        )
        meta = v2_metadata(
            loaded.schema,
            prediction_datatype=loaded.prediction_datatype,
            classes=loaded.classes,
            output_columns=loaded.output_columns,
        )
        meta["parameters"] = {"runtime": loaded.runtime, "compile": loaded.compile_note or "off"}
        return cls(loaded, role, batcher, loaded.version or "1", meta, list(loaded.schema.columns))


class MlflowModel(Model):
    """Serves ``ref`` (an MLflow model URI) under its base name, with an optional canary.

    Args:
        ref: ``models:/wine@champion``, ``models:/wine/3`` or any MLflow model URI.
        settings: mlcycle settings (registry, limits, batching, poll interval, payload log, auth).
        canary_ref: a second version of the same model to send ``canary_percent`` of traffic to.
        canary_percent: 0..100.
        name: the served name; default: the registered base name.
    """

    def __init__(
        self,
        ref: str,
        settings: Settings,
        *,
        canary_ref: str | None = None,
        canary_percent: float = 0.0,
        name: str | None = None,
    ) -> None:
        from mlcycle.serving.loading import served_name_of

        served = name or served_name_of(ref, settings.team)
        super().__init__(served)
        self.ref = ref
        self.settings = settings
        self.canary_ref = canary_ref
        self.canary_percent = validate_percent(canary_percent) if canary_ref else 0.0
        self.load_failures = 0
        self._versions: dict[str, ServedVersion] = {}
        self.load_in_workers = False  # --workers N: the supervising parent loads nothing
        self._init_runtime()

    # -- lifecycle --------------------------------------------------------------------------------

    def _init_runtime(self) -> None:
        self._rt: Runtime | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._failed: dict[str, tuple[str, int, float]] = {}  # role -> (version, failures, retry at)

    def check(self) -> None:
        """What a supervising parent does instead of :meth:`load`: resolve the references (a wrong
        name fails at start with its message) without downloading anything.

        Raises:
            ModelNotFoundError: a model, version or alias does not exist.
        """
        from mlcycle.registry.uris import parse_model_ref

        tracking.configure(self.settings)
        for ref in self._refs().values():
            if ref.startswith(("/", "./", "../")):
                continue
            resolve_version(parse_model_ref(ref, self.settings.team))
        self.load_in_workers = True

    def load(self) -> bool:
        """Load champion (and canary) from MLflow; ``ready`` becomes True last."""
        tracking.configure(self.settings)
        versions = {CHAMPION: ServedVersion.load(self.ref, CHAMPION, self.settings, self.name)}
        try:
            if self.canary_ref:
                canary = ServedVersion.load(self.canary_ref, CANARY, self.settings, self.name)
                versions[CANARY] = canary
                champion_name = versions[CHAMPION].loaded.registered_name
                if canary.loaded.registered_name != champion_name and champion_name:
                    raise InvalidInputError(
                        f"canary {self.canary_ref} is model {canary.loaded.registered_name!r}, not "
                        f"{champion_name!r}; a canary must be another version of the same model",
                        field="canary",
                    )
        except BaseException:
            for sv in versions.values():
                sv.retire()
            raise
        self._versions = versions
        self._rt = runtime(self.settings)
        self._publish_info()
        self.ready = True
        return self.ready

    def start(self) -> None:
        """Start following the registry aliases (called by the model server in its serving process)."""
        self.ready = bool(self._versions)
        self._start_poller()

    def stop(self) -> None:
        """Stop following aliases, write queued payloads, close the batchers and delete the downloads."""
        self._stop.set()
        if self._rt is not None and self._rt.payloads is not None:
            self._rt.payloads.flush(timeout=30)  # the process closes the logger when it exits
        versions, self._versions = self._versions, {}
        for sv in versions.values():
            sv.retire()
        super().stop()

    def __getstate__(self) -> dict[str, Any]:
        """What a REST worker needs (KServe pickles models into its spawned workers): the references
        and settings. Each worker loads (and follows) its versions itself; the parent only supervises."""
        return {k: v for k, v in self.__dict__.items() if k not in {"_rt", "_stop", "_poller", "_versions", "_failed"}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._versions = {}
        self._init_runtime()
        self._rt = runtime(self.settings)
        try:
            self.load()
        except Exception:  # noqa: BLE001 - not ready; the poller retries with backoff, /ready says 503
            self.load_failures += 1
            self._rt.metrics.load_failure(self.name)
            log.exception("model %s: loading %s in this worker failed; retrying", self.name, self.ref)
        self._start_poller(always=True)

    # -- the registry poller ----------------------------------------------------------------------

    def _refs(self) -> dict[str, str]:
        refs = {CHAMPION: self.ref}
        if self.canary_ref:
            refs[CANARY] = self.canary_ref
        return refs

    def _start_poller(self, always: bool = False) -> None:
        if self._poller is not None or self.load_in_workers and not always:
            return  # a supervising parent neither loads nor polls
        follows = any("@" in r for r in self._refs().values()) and self.settings.serving_poll_seconds > 0
        if not follows and self._versions:
            return
        self._poller = threading.Thread(target=self._follow, name=f"alias-poller-{self.name}", daemon=True)
        self._poller.start()

    def _follow(self) -> None:
        wait = self.settings.serving_poll_seconds or 1.0
        while not self._stop.wait(wait):
            if not self._versions:
                self._retry_load()
            else:
                self.refresh()

    def _backoff(self, role: str, version: str) -> float:
        """Seconds until ``version`` may be tried again for ``role`` after one more failure."""
        _, failures, _ = self._failed.get(role, (version, 0, 0.0))
        if self._failed.get(role, (None,))[0] != version:
            failures = 0
        failures += 1
        delay = min(max(self.settings.serving_poll_seconds, 0.5) * 2 ** (failures - 1), MAX_BACKOFF_S)
        self._failed[role] = (version, failures, time.monotonic() + delay)
        return delay

    def _retry_load(self) -> None:
        """A worker whose first load failed: try again, with exponential backoff."""
        failed = self._failed.get(CHAMPION)
        if failed is not None and time.monotonic() < failed[2]:
            return
        try:
            self.load()
        except Exception:  # noqa: BLE001 - still not ready; counted and retried later
            self.load_failures += 1
            if self._rt is not None:
                self._rt.metrics.load_failure(self.name)
            delay = self._backoff(CHAMPION, self.ref)
            log.warning("model %s: loading %s failed again; next try in %.1f s", self.name, self.ref, delay)
        else:
            self._failed.clear()
            log.info("model %s: loaded %s", self.name, self.ref)

    def refresh(self) -> dict[str, str]:
        """Check each followed alias once; load and swap in any version that moved.

        A failed load keeps the current version serving; it is logged and counted
        (``load_failures`` and ``mlcycle_model_load_failures_total``). Returns ``{role: version}``
        for the versions swapped in.
        """
        from mlcycle.registry.uris import parse_model_ref

        swapped = {}
        for role, ref in self._refs().items():
            parsed = parse_model_ref(ref, self.settings.team)
            current = self._versions.get(role)
            if not parsed.alias or current is None:
                continue
            version = None
            try:
                version, _ = resolve_version(parsed)
                if version == current.version:
                    self._failed.pop(role, None)
                    continue
                failed = self._failed.get(role)
                if failed is not None and failed[0] == version and time.monotonic() < failed[2]:
                    continue  # this version failed to load: not downloaded again before its backoff ends
                fresh = ServedVersion.load(f"models:/{parsed.name}/{version}", role, self.settings, self.name)
            except Exception:  # noqa: BLE001 - keep serving the old version; the failure is reported
                self.load_failures += 1
                if self._rt is not None:
                    self._rt.metrics.load_failure(self.name)
                delay = self._backoff(role, str(version))
                log.exception(
                    "model %s: loading the new %s version of %s failed; still serving %s; next try in %.1f s",
                    self.name,
                    role,
                    ref,
                    current.loaded.label,
                    delay,
                )
                continue
            self._failed.pop(role, None)
            self._versions = {**self._versions, role: fresh}  # one assignment: atomic for readers
            swapped[role] = version
            current.retire()  # its batcher answers what it holds, then its files go
            log.info("model %s: %s %s moved from version %s to %s", self.name, role, ref, current.version, version)
        if swapped:
            self._publish_info()
            # The old version's cycles were frozen with the heap: unfreeze so a collection can free them,
            # then freeze the new version's objects (see inference.server.freeze_heap).
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        return swapped

    def _publish_info(self) -> None:
        if self._rt is None:
            return
        for role, sv in self._versions.items():
            self._rt.metrics.set_model_info(self.name, sv.version, role)
        self._rt.metrics.set_canary_percent(self.name, self.canary_percent if CANARY in self._versions else 0.0)

    # -- metadata ---------------------------------------------------------------------------------

    @property
    def versions(self) -> dict[str, ServedVersion]:
        return self._versions

    def get_input_types(self) -> list[dict]:
        return self._versions[CHAMPION].metadata["inputs"]

    def get_output_types(self) -> list[dict]:
        return self._versions[CHAMPION].metadata["outputs"]

    def metadata(self, version: str | None = None) -> dict[str, Any]:
        """v2 model metadata (with ``versions``); ``version`` must be one being served."""
        sv = self.served_version(version)
        return {
            "name": self.name,
            "versions": sorted({v.version for v in self._versions.values()}, key=_version_key),
            "platform": f"mlflow-{sv.loaded.fast_path}",
            **sv.metadata,
        }

    def served_version(self, version: str | None) -> ServedVersion:
        """The champion, or the served version numbered ``version``.

        Raises:
            ModelNotFoundError: that version is not being served here.
        """
        if version is None:
            return self._versions[CHAMPION]
        for sv in self._versions.values():
            if sv.version == str(version):
                return sv
        from mlcycle.errors import ModelNotFoundError

        served = ", ".join(sorted(v.version for v in self._versions.values()))
        raise ModelNotFoundError(
            f"model {self.name!r} version {version} is not served here (serving: {served})", field="version"
        )

    # -- the request path -------------------------------------------------------------------------

    def _route(self, request_id: str | None) -> ServedVersion:
        versions = self._versions
        canary = versions.get(CANARY)
        if canary is not None and goes_to_canary(self.canary_percent, request_id):
            return canary
        return versions[CHAMPION]

    def authenticate(self, headers: Any) -> None:
        """Check the caller's API key (when keys are configured); the REST routes call it before the
        body is read. A refusal is counted (``mlcycle_requests_refused_total``) and logged at DEBUG.

        Raises:
            AuthenticationError / PermissionDeniedError: 401 / 403.
        """
        rt = self._check_ready()
        if rt.auth is None:
            return
        try:
            rt.auth.authenticate(headers, self._versions[CHAMPION].loaded.registered_name or self.name)
        except MlcycleError as e:
            rt.metrics.refuse(self.name, e.http_status)
            _refusals.refused(e.http_status, e.message)
            raise

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[Any, dict[str, str]]:
        if verb == InferenceVerb.EXPLAIN:
            raise NotImplementedOperationError(
                f"model {self.name!r} has no explainer; use :predict or /v2/models/{self.name}/infer",
                field="verb",
            )
        return await self.infer(body, headers)

    async def infer(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        version: str | None = None,
        *,
        authenticated: bool = False,
    ) -> tuple[Any, dict[str, str]]:
        """Answer one request as KServe hands it over: v1 (dict) or v2 (InferRequest, REST or gRPC)."""
        headers = headers or {}
        if not authenticated:
            self.authenticate(headers)
        if isinstance(body, bytes | bytearray | str):  # v1 sent without a JSON content type
            body = _json(body)
        if isinstance(body, InferRequest):
            protocol = "v2-grpc" if body.from_grpc else "v2-rest"
            given_id = body.id or headers.get("x-request-id")
            inputs = [_v2_input(i) for i in body.inputs]
            sv, request_id, result = await self._answer(protocol, headers, given_id, version, inputs)
            return _v2_response(self.name, sv, result, request_id, body.from_grpc), _headers(sv)
        if isinstance(body, dict):
            return await self.infer_json("v1", body, headers, version)
        raise InvalidInputError("the request body must be a JSON object", field="body")

    async def infer_json(
        self, protocol: str, payload: Any, headers: Any, version: str | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The REST fast path: a parsed JSON body in, a JSON-ready dict out (no pydantic round trips).

        ``protocol`` is ``v1`` (``{"instances": [...]}``) or ``v2-rest`` (``{"inputs": [...]}``). The
        caller has called :meth:`authenticate` before reading the body.
        """
        if not isinstance(payload, dict):
            raise InvalidInputError("the request body must be a JSON object", field="body")
        if protocol == "v1":
            given_id = headers.get("x-request-id") or payload.get("id")
            instances = payload.get("instances", payload.get("inputs"))
            if instances is None:
                raise InvalidInputError('a v1 request needs "instances": a list of rows', field="instances")
            sv, _, result = await self._answer(protocol, headers, given_id, version, instances)
            return _v1_response(self.name, sv, result), _headers(sv)
        given_id = payload.get("id") or headers.get("x-request-id")
        inputs = _v2_json_inputs(payload)
        wanted = _requested_outputs(payload)
        sv, request_id, result = await self._answer(protocol, headers, given_id, version, inputs)
        return _v2_json_response(self.name, sv, result, request_id, wanted), _headers(sv)

    async def _answer(
        self, protocol: str, headers: Any, given_id: Any, version: str | None, inputs: Any
    ) -> tuple[ServedVersion, str, Prediction]:
        """Authenticate, route, decode, predict (micro-batched); count and log. The one request path."""
        start = time.perf_counter()
        rt = self._check_ready()
        sv = None
        status = 500
        try:
            sticky = str(given_id) if given_id else None
            request_id = sticky or f"{_ID_PREFIX}-{next(_ids)}"
            sv = self._route(sticky) if version is None else self.served_version(version)
            # Every log line of this request (its task's context) carries its id, model and version.
            logs.bind_request(request_id, self.name, sv.version)
            limit = self.settings.serving_max_rows
            if protocol == "v1":
                x = decode_v1(inputs, sv.loaded.schema, max_rows=limit)
            else:
                x = decode_v2(inputs, sv.loaded.schema, max_rows=limit)
            result: Prediction = await sv.batcher.submit(x)
            status = 200
        except MlcycleError as e:
            status = e.http_status
            if status >= 500:
                log.error("failed with %d: %s", status, e.message)
            else:
                _refusals.refused(status, e.message)
            raise
        finally:
            rt.metrics.observe_request(
                self.name, sv.version if sv else "", protocol, status, time.perf_counter() - start
            )
        preds = result.predictions
        rt.metrics.count_predictions(
            self.name, sv.version, preds, regression=sv.loaded.classes is None and preds.dtype.kind == "f"
        )
        if log.isEnabledFor(logging.DEBUG):  # no per-request logging cost at INFO
            log.debug("answered %d rows over %s", len(result.predictions), protocol)
        if rt.payloads is not None:
            self._log_payload(rt, sv, protocol, request_id, x, result)
        return sv, request_id, result

    def _check_ready(self) -> Runtime:
        rt = self._rt
        if rt is None or not self.ready or not self._versions:
            raise ModelNotReadyError(f"model {self.name!r} is not loaded yet")
        return rt

    def _log_payload(
        self, rt: Runtime, sv: ServedVersion, protocol: str, request_id: str, x: np.ndarray, result: Prediction
    ) -> None:
        try:
            rt.payloads.log(
                model_name=sv.loaded.registered_name or self.name,
                model_version=sv.version,
                protocol=protocol,
                request_id=request_id,
                inputs=x,  # the array as decoded; the logger splits columns in its writer thread
                columns=list(x.columns) if hasattr(x, "columns") else sv.columns,
                predictions=result.predictions,
                probabilities=result.probabilities,
                classes=result.classes,
            )
        except Exception:  # noqa: BLE001 - payload logging never fails a request
            log.warning("payload logging failed for model %s", self.name, exc_info=True)


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (1 << 30, v)


def _v2_input(inp: Any) -> V2Input:
    raw = getattr(inp, "_raw_data", None)
    if raw is not None:  # binary (gRPC raw_input_contents or REST binary extension)
        try:
            data = inp.as_numpy()
        except (ValueError, TypeError) as e:
            raise InvalidInputError(
                f"input {inp.name!r}: raw data does not match shape {list(inp.shape)} and datatype {inp.datatype}: {e}",
                field=inp.name,
            ) from e
        except KServeInvalidInput as e:  # an unknown datatype
            raise InvalidInputError(f"input {inp.name!r}: {e}", field=inp.name) from e
    else:
        data = inp.data
    return V2Input(inp.name, list(inp.shape), inp.datatype, data)


def _json(body: bytes | bytearray | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInputError(f"the request body is not valid JSON: {e}", field="body") from e


def _headers(sv: ServedVersion) -> dict[str, str]:
    return {VERSION_HEADER: sv.version, ROLE_HEADER: sv.role}


def _v2_json_inputs(payload: dict) -> list[V2Input]:
    raw = payload.get("inputs")
    if not isinstance(raw, list):
        raise InvalidInputError('a v2 request needs "inputs": a list of tensors', field="inputs")
    inputs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInputError(f"inputs[{i}] must be an object", field="inputs")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in item]
        if missing:
            raise InvalidInputError(f"inputs[{i}] lacks {', '.join(map(repr, missing))}", field="inputs")
        name, shape = item["name"], item["shape"]
        if not isinstance(name, str):
            raise InvalidInputError(f"inputs[{i}].name must be a string", field="inputs")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidInputError(f"input {name!r}: shape must be a list of integers", field=name)
        if not isinstance(item["datatype"], str):
            raise InvalidInputError(f"input {name!r}: datatype must be a string", field=name)
        inputs.append(V2Input(name, shape, item["datatype"], item["data"]))
    return inputs


def _requested_outputs(payload: dict) -> set[str] | None:
    outputs = payload.get("outputs")
    if not outputs:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInputError('"outputs" must be a list of {"name": ...}', field="outputs")
    return {o["name"] for o in outputs}


def _jsonable(array: np.ndarray) -> Any:
    """Numeric arrays go to orjson as they are (``OPT_SERIALIZE_NUMPY``, no Python list); others as lists."""
    if array.dtype.kind in "biuf" and array.dtype.byteorder in "=|":
        return np.ascontiguousarray(array)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]


def _v2_json_response(
    name: str, sv: ServedVersion, result: Prediction, request_id: str, wanted: set[str] | None
) -> dict[str, Any]:
    available = result.outputs()
    if wanted is not None:
        unknown = wanted - set(available)
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {', '.join(map(repr, sorted(unknown)))}; this model has "
                f"{', '.join(map(repr, available))}",
                field="outputs",
            )
    outputs = [
        {"name": k, "shape": list(v.shape), "datatype": v2_datatype(v), "data": _jsonable(v.ravel())}
        for k, v in available.items()
        if wanted is None or k in wanted
    ]
    return {"id": request_id, "model_name": name, "model_version": sv.version, "outputs": outputs}


def _v1_response(name: str, sv: ServedVersion, result: Prediction) -> dict[str, Any]:
    body: dict[str, Any] = {
        "predictions": _jsonable(result.predictions),
        "model_name": name,
        "model_version": sv.version,
    }
    if result.columns is not None:  # a DataFrame/dict output: one record per row, as MLflow's scoring server
        cols = {k: v.tolist() for k, v in result.columns.items()}
        body["predictions"] = [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]
    if result.probabilities is not None:
        body["probabilities"] = _jsonable(result.probabilities)
        body["classes"] = result.classes.tolist()
    return body


def _v2_response(name: str, sv: ServedVersion, result: Prediction, request_id: str, from_grpc: bool) -> InferResponse:
    outputs = []
    for k, v in result.outputs().items():
        datatype = v2_datatype(v)
        data = np.ascontiguousarray(v) if datatype != "BYTES" else [str(e) for e in v.ravel().tolist()]
        outputs.append(InferOutput(k, list(v.shape), datatype, data=data))
    return InferResponse(
        response_id=request_id, model_name=name, model_version=sv.version, infer_outputs=outputs, from_grpc=from_grpc
    )
