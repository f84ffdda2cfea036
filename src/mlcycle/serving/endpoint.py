"""One served model name: its champion version, an optional canary, alias following and the request path.

:class:`ModelEndpoint` is everything the predictor does for a model, without a web framework (the KServe
adapter in ``inference/`` only maps requests onto it):

- **load** (all I/O): each version downloads into a directory of its own under
  ``settings.download_dir``, removed when that version stops serving (:class:`ServedVersion`);
- **follow aliases** (a background poller): a moved alias loads the new version, swaps it in with one
  assignment and retires the old one (its micro-batcher answers what it holds, then closes; its files
  go). A version that failed to load is retried with exponential backoff, not downloaded on every poll;
- **answer** a request: authenticate, route (canary split sticky per request id), decode, predict
  (micro-batched), count, log the payload.

With ``--workers N`` the supervising parent only :meth:`~ModelEndpoint.check` s the references; each
worker process unpickles its endpoint and :meth:`~ModelEndpoint.serve_in_this_process` loads and
follows its own copy.

A model whose recorded requirements do not hold here (:class:`~mlcycle.errors.ModelNotServableError`)
does not stop the predictor: its endpoint stays not ready with that reason (``not_ready_reason``: the
package and both versions; 503 on ``/ready`` and on requests), one WARNING line says so at load, and
the poller keeps following the reference: when an alias moves to a version that can be served it
loads. The same versions are not downloaded again (the environment does not change while it runs).
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle import logs, tracking
from mlcycle.config import Settings
from mlcycle.errors import (
    InvalidInputError,
    MlcycleError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelNotServableError,
    NotImplementedOperationError,
)
from mlcycle.serving import protocol
from mlcycle.serving.auth import RefusalLog
from mlcycle.serving.batching import AdaptiveBatcher
from mlcycle.serving.loading import LoadedModel, load_model, resolve_version
from mlcycle.serving.metrics import ServingMetrics
from mlcycle.serving.predict import Prediction, predict
from mlcycle.serving.routing import goes_to_canary, validate_percent
from mlcycle.serving.runtime import Runtime, refreeze_heap, runtime
from mlcycle.serving.schema import decode_v1, decode_v2, v2_metadata

log = logging.getLogger("mlcycle.inference")
_refusals = RefusalLog(log)  # refused requests: DEBUG each, one INFO summary per minute at most

CHAMPION, CANARY = "champion", "canary"
# Ids for requests that bring none (payload log rows need one): unique per process, cheaper than uuid4.
_ID_PREFIX = uuid.uuid4().hex[:12]
_ids = itertools.count(1)
MAX_BACKOFF_S = 300.0  # a version that keeps failing to load is tried at most every 5 minutes


@dataclass
class ServedVersion:
    """A loaded version, its role, its micro-batcher, its v2 metadata and its download directory."""

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
        """Download ``ref`` into a directory of its own under ``settings.download_dir`` and build it,
        its predictions counted in this process's ``/metrics`` under the served ``name``."""
        root = settings.download_dir
        root.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-{role}-", dir=root))
        try:
            loaded = load_model(ref, settings, name=name, dst_path=directory)
            served = cls.build(loaded, role, settings, metrics=runtime(settings).metrics, name=name)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        served.download_dir = directory
        return served

    @classmethod
    def build(
        cls,
        loaded: LoadedModel,
        role: str,
        settings: Settings,
        *,
        metrics: ServingMetrics | None = None,
        name: str | None = None,
    ) -> ServedVersion:
        """``loaded`` (compiled when it reproduces itself) behind its micro-batcher; with ``metrics``, the
        batcher counts predictions there once per model call (a batch of 32 requests is one update)."""
        from mlcycle.serving.compiled import compile_loaded

        if settings.serving_compile and loaded.compiled is None and not loaded.compile_note:
            compile_loaded(loaded)
        batcher = AdaptiveBatcher(
            partial(predict, loaded),
            max_rows=settings.serving_batch_max_rows,
            max_wait_s=settings.serving_batch_max_wait_ms / 1000.0,
            name=f"{loaded.served_name}-{loaded.version}",
            after=None if metrics is None else _prediction_counter(metrics, name or loaded.served_name, loaded),
        )
        meta = v2_metadata(
            loaded.schema,
            prediction_datatype=loaded.prediction_datatype,
            classes=loaded.classes,
            output_columns=loaded.output_columns,
        )
        meta["parameters"] = {"runtime": loaded.runtime, "compile": loaded.compile_note or "off"}
        return cls(loaded, role, batcher, loaded.version or "1", meta, list(loaded.schema.columns))


def _prediction_counter(metrics: ServingMetrics, name: str, loaded: LoadedModel) -> Callable[[Prediction], None]:
    """The batcher's ``after``: a model call's predictions counted for ``name`` and the loaded version."""
    version, regression_ok = loaded.version or "1", loaded.classes is None

    def count(result: Prediction) -> None:
        preds = result.predictions
        metrics.count_predictions(name, version, preds, regression=regression_ok and preds.dtype.kind == "f")

    return count


class ModelEndpoint:
    """Serves ``ref`` (an MLflow model URI) under one name, with an optional canary.

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

        self.name = name or served_name_of(ref, settings.team)
        self.ref = ref
        self.settings = settings
        self.canary_ref = canary_ref
        self.canary_percent = validate_percent(canary_percent) if canary_ref else 0.0
        self.load_failures = 0
        self.load_in_workers = False  # --workers N: the supervising parent loads nothing
        self._init_process_state()

    def _init_process_state(self) -> None:
        self.ready = False
        self._versions: dict[str, ServedVersion] = {}
        self._rt: Runtime | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._failed: dict[str, tuple[str, int, float]] = {}  # role -> (version, failures, retry at)
        self.not_ready_reason: str | None = None  # why nothing is served (a refusal, a failed load)
        self._unservable: tuple[str | None, ...] | None = None  # the versions the refusal was about

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process needs: the references and settings (it loads its own versions)."""
        keep = ("name", "ref", "settings", "canary_ref", "canary_percent", "load_failures", "load_in_workers")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    # -- lifecycle --------------------------------------------------------------------------------

    def check(self) -> None:
        """What a supervising parent does instead of :meth:`load`: resolve the references (a wrong
        name fails at start with its message) without downloading anything.

        Raises:
            ModelNotFoundError: a model, version or alias does not exist.
        """
        from mlcycle.registry.uris import parse_model_ref

        tracking.configure(self.settings)
        for ref in self._refs().values():
            if not ref.startswith(("/", "./", "../")):
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
        self._rt = runtime(self.settings)
        self._versions = versions
        self._publish_info()
        self.not_ready_reason = self._unservable = None
        self.ready = True
        return self.ready

    def load_or_refuse(self) -> bool:
        """:meth:`load`, except that a model whose requirements do not hold here leaves the endpoint
        not ready with the reason (one WARNING line) instead of raising; the poller, once started,
        loads a servable version when the reference moves to one.

        Raises:
            MlcycleError: any other load failure (a model that does not exist, no signature...).
        """
        try:
            return self.load()
        except ModelNotServableError as e:
            self._refused(e)
            return False

    def _refused(self, e: ModelNotServableError) -> None:
        if self._rt is None:
            self._rt = runtime(self.settings)
        self._load_failed()
        self.not_ready_reason = e.message
        try:
            self._unservable = self._resolved_versions()
        except Exception:  # noqa: BLE001 - the registry went away meanwhile: the next poll tries again
            self._unservable = None
        log.warning("model %s: not ready (503) until %s points at a version whose requirements hold here: %s",
                    self.name, self.ref, e.message)

    def _resolved_versions(self) -> tuple[str | None, ...]:
        """The versions the references point at now (a plain URI stands for itself)."""
        from mlcycle.registry.uris import parse_model_ref

        out = []
        for ref in self._refs().values():
            out.append(ref if ref.startswith(("/", "./", "../")) else resolve_version(
                parse_model_ref(ref, self.settings.team))[0] or ref)
        return tuple(out)

    def start(self) -> None:
        """Start following the registry aliases (in the process that serves)."""
        self.ready = bool(self._versions)
        self._start_payload_writer()
        self._start_poller()

    def serve_in_this_process(self) -> None:
        """A worker process: load (a failure is counted and retried with backoff) and follow the aliases."""
        self._rt = runtime(self.settings)
        self._start_payload_writer()  # importing while the model loads, not while the first rows queue
        try:
            self.load_or_refuse()
        except Exception as e:  # noqa: BLE001 - not ready; the poller retries with backoff, /ready says 503
            self._load_failed()
            self.not_ready_reason = f"loading {self.ref} failed: {getattr(e, 'message', e)}"
            log.exception("model %s: loading %s in this worker failed; retrying", self.name, self.ref)
        self._start_poller(always=True)

    def _start_payload_writer(self) -> None:
        rt = self._rt or runtime(self.settings)
        if rt.payloads is not None:
            rt.payloads.start()

    def stop(self) -> None:
        """Stop following aliases, write queued payloads, close the batchers and delete the downloads."""
        self._stop.set()
        self.ready = False
        if self._rt is not None and self._rt.payloads is not None:
            self._rt.payloads.flush(timeout=30)  # the process closes the logger when it exits
        versions, self._versions = self._versions, {}
        for sv in versions.values():
            sv.retire()

    # -- the registry poller ----------------------------------------------------------------------

    def _refs(self) -> dict[str, str]:
        return {CHAMPION: self.ref, **({CANARY: self.canary_ref} if self.canary_ref else {})}

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

    def _load_failed(self) -> None:
        self.load_failures += 1
        if self._rt is not None:
            self._rt.metrics.load_failure(self.name)

    def _backoff(self, role: str, version: str) -> float:
        """Seconds until ``version`` may be tried again for ``role`` after one more failure."""
        last, failures, _ = self._failed.get(role, (version, 0, 0.0))
        failures = failures + 1 if last == version else 1
        delay = min(max(self.settings.serving_poll_seconds, 0.5) * 2 ** (failures - 1), MAX_BACKOFF_S)
        self._failed[role] = (version, failures, time.monotonic() + delay)
        return delay

    def _retry_load(self) -> None:
        """Nothing loaded yet: try again, with exponential backoff; a refused model only once its
        references point at other versions."""
        if self._unservable is not None:
            try:
                if self._resolved_versions() == self._unservable:
                    return
            except Exception:  # noqa: BLE001 - the registry is away: asked again at the next poll
                return
        failed = self._failed.get(CHAMPION)
        if failed is not None and time.monotonic() < failed[2]:
            return
        try:
            if not self.load_or_refuse():
                return
        except Exception as e:  # noqa: BLE001 - still not ready; counted and retried later
            self._load_failed()
            self.not_ready_reason = f"loading {self.ref} failed: {getattr(e, 'message', e)}"
            delay = self._backoff(CHAMPION, self.ref)
            log.warning("model %s: loading %s failed again; next try in %.1f s", self.name, self.ref, delay)
        else:
            self._failed.clear()
            self.not_ready_reason = self._unservable = None
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
            except ModelNotServableError as e:  # never servable in this environment: not tried again
                self._load_failed()
                self._failed[role] = (str(version), 1, math.inf)
                log.warning("model %s: not swapping in the new %s version of %s; still serving %s: %s",
                            self.name, role, ref, current.loaded.label, e.message)
                continue
            except Exception:  # noqa: BLE001 - keep serving the old version; the failure is reported
                self._load_failed()
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
            refreeze_heap()  # the old version's cycles were frozen with the heap
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
            ModelNotReadyError: nothing is loaded yet.
            ModelNotFoundError: that version is not being served here.
        """
        versions = self._versions
        if not versions:
            raise self.not_ready_error()
        if version is None:
            return versions[CHAMPION]
        for sv in versions.values():
            if sv.version == str(version):
                return sv
        served = ", ".join(sorted(v.version for v in versions.values()))
        raise ModelNotFoundError(
            f"model {self.name!r} version {version} is not served here (serving: {served})", field="version"
        )

    # -- the request path -------------------------------------------------------------------------

    def authenticate(self, headers: Any) -> None:
        """Check the caller's API key (when keys are configured) before the body is read. A refusal is
        counted (``mlcycle_requests_refused_total``) and logged at DEBUG.

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

    def refuse_explain(self) -> None:
        """``:explain``: no explainer is served, so a 501 naming what to call instead."""
        raise NotImplementedOperationError(
            f"model {self.name!r} has no explainer; use :predict or /v2/models/{self.name}/infer", field="verb"
        )

    async def answer_json(
        self, kind: str, payload: Any, headers: Any, version: str | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A parsed JSON body in, a JSON-ready body and response headers out (the REST fast path).

        ``kind`` is ``v1`` (``{"instances": [...]}``) or ``v2-rest`` (``{"inputs": [...]}``). The caller
        has called :meth:`authenticate` before reading the body.
        """
        payload = protocol.request_object(payload)
        if kind == "v1":
            given_id = headers.get("x-request-id") or payload.get("id")
            sv, _, result = await self.answer(kind, headers, given_id, version, protocol.v1_instances(payload))
            return protocol.v1_response(self.name, sv.version, result), protocol.response_headers(sv.version, sv.role)
        given_id = payload.get("id") or headers.get("x-request-id")
        wanted = protocol.requested_outputs(payload)
        sv, request_id, result = await self.answer(kind, headers, given_id, version, payload)
        body = protocol.v2_json_response(self.name, sv.version, result, request_id, wanted)
        return body, protocol.response_headers(sv.version, sv.role)

    async def answer(
        self, kind: str, headers: Any, given_id: Any, version: str | None, inputs: Any
    ) -> tuple[ServedVersion, str, Prediction]:
        """Route, decode, predict (micro-batched); count and log. The one request path of every protocol.

        ``inputs`` are v1 rows (``kind`` ``v1``), a v2 JSON request body (a dict, decoded by
        :func:`~mlcycle.serving.protocol.decode_v2_json`) or :class:`~mlcycle.serving.schema.V2Input` s.
        """
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
            if kind == "v1":
                x = decode_v1(inputs, sv.loaded.schema, max_rows=limit)
            elif type(inputs) is dict:
                x = protocol.decode_v2_json(inputs, sv.loaded.schema, max_rows=limit)
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
            rt.metrics.observe_request(self.name, sv.version if sv else "", kind, status, time.perf_counter() - start)
        if log.isEnabledFor(logging.DEBUG):  # no per-request logging cost at INFO
            log.debug("answered %d rows over %s", len(result.predictions), kind)
        if rt.payloads is not None:
            self._log_payload(rt, sv, kind, request_id, x, result)
        return sv, request_id, result

    def _route(self, request_id: str | None) -> ServedVersion:
        versions = self._versions
        canary = versions.get(CANARY)
        if canary is not None and goes_to_canary(self.canary_percent, request_id):
            return canary
        return versions[CHAMPION]

    def _check_ready(self) -> Runtime:
        rt = self._rt
        if rt is None or not self.ready or not self._versions:
            raise self.not_ready_error()
        return rt

    def not_ready_error(self) -> ModelNotReadyError:
        """The 503 for a request while nothing is served, with the reason when there is one."""
        if self.not_ready_reason:
            return ModelNotReadyError(f"model {self.name!r} is not ready: {self.not_ready_reason}", field="model")
        return ModelNotReadyError(f"model {self.name!r} is not loaded yet", field="model")

    def _log_payload(
        self, rt: Runtime, sv: ServedVersion, kind: str, request_id: str, x: np.ndarray, result: Prediction
    ) -> None:
        try:
            rt.payloads.log(
                model_name=sv.loaded.registered_name or self.name,
                model_version=sv.version,
                protocol=kind,
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


def build_endpoints(
    refs: list[str],
    settings: Settings,
    *,
    canary_ref: str | None = None,
    canary_percent: float = 10.0,
    name: str | None = None,
) -> list[ModelEndpoint]:
    """One endpoint per model URI (nothing loaded yet); ``canary_ref`` joins the model it is a version of.

    Raises:
        MlcycleError: two URIs would be served under one name, ``name`` is given for several URIs, or
            the canary is no version of any served model.
    """
    from mlcycle.registry.uris import parse_model_ref

    if name and len(refs) > 1:
        raise MlcycleError(f"one served name ({name!r}) for {len(refs)} models; give one model URI", field="name")
    canary_base = parse_model_ref(canary_ref, settings.team).base_name if canary_ref else None
    endpoints: dict[str, ModelEndpoint] = {}
    bases = set()
    for ref in refs:
        base = parse_model_ref(ref, settings.team).base_name
        bases.add(base)
        canary = canary_ref if canary_base is not None and base == canary_base else None
        endpoint = ModelEndpoint(ref, settings, canary_ref=canary, canary_percent=canary_percent, name=name)
        if endpoint.name in endpoints:
            raise MlcycleError(f"two models would be served as {endpoint.name!r}; serve one version per name")
        endpoints[endpoint.name] = endpoint
    if canary_base is not None and canary_base not in bases:
        raise MlcycleError(
            f"--canary {canary_ref} is not a version of any served model ({', '.join(endpoints)})", field="canary"
        )
    return list(endpoints.values())
