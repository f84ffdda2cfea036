"""Structured logs: one JSON object per line (or plain text), with who/what/which request.

``configure(settings)`` sets up the ``mlcycle``, ``inference`` and ``components`` loggers (third-party
loggers keep their own settings) at ``MLCYCLE_LOG_LEVEL`` in ``MLCYCLE_LOG_FORMAT`` (``json`` | ``text``),
writing to stderr. Every line carries ``timestamp`` (UTC), ``level``, ``logger``, ``component`` and
``message``, plus ``model``, ``version`` and ``request_id`` when known. Those come from context
variables, so they follow a request across ``await`` points and threads started with
``contextvars.copy_context()``::

    with request_context(request_id, model="wine", version="5") as rid:
        log.info("predicted %d rows", n)   # -> {"request_id": rid, "model": "wine", "version": "5", ...}

Nothing here logs payloads; values of known secrets (API keys from the settings, S3 and MLflow
credentials from the environment) are replaced by ``***`` if a message ever contains them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

LOGGERS = ("mlcycle", "inference", "components")
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLCYCLE_API_KEYS",
)

_request_id: ContextVar[str | None] = ContextVar("mlcycle_request_id", default=None)
_model: ContextVar[str | None] = ContextVar("mlcycle_model", default=None)
_version: ContextVar[str | None] = ContextVar("mlcycle_version", default=None)
_component: ContextVar[str | None] = ContextVar("mlcycle_component", default=None)
_default_component = "mlcycle"


def new_request_id() -> str:
    """A fresh request id (what the predictor uses when a request brings none)."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return _request_id.get()


@contextmanager
def request_context(
    request_id: str | None = None, model: str | None = None, version: str | int | None = None
) -> Iterator[str]:
    """Log lines inside carry ``request_id`` (made up if None; yielded), ``model`` and ``version``."""
    rid = request_id or new_request_id()
    tokens = [(_request_id, _request_id.set(rid))]
    if model is not None:
        tokens.append((_model, _model.set(model)))
    if version is not None:
        tokens.append((_version, _version.set(str(version))))
    try:
        yield rid
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind_request(request_id: str | None = None, model: str | None = None, version: str | int | None = None) -> str:
    """Like :func:`request_context` without the ``with``: for the rest of the current task/context.

    Safe in a server where each request runs in its own asyncio task (uvicorn, grpc.aio): the task's
    context is a copy, so the values end with the request. Returns the request id (made up if None).
    """
    rid = request_id or new_request_id()
    _request_id.set(rid)
    if model is not None:
        _model.set(model)
    if version is not None:
        _version.set(str(version))
    return rid


@contextmanager
def model_context(model: str | None, version: str | int | None = None) -> Iterator[None]:
    """Log lines inside carry ``model`` and ``version`` (a pipeline step working on one version)."""
    tokens = [(_model, _model.set(model)), (_version, _version.set(None if version is None else str(version)))]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


@contextmanager
def component_context(component: str) -> Iterator[None]:
    """Log lines inside say ``component`` (overrides the one given to :func:`configure`)."""
    token = _component.set(component)
    try:
        yield
    finally:
        _component.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "component": getattr(record, "component", None) or _component.get() or _default_component,
    }
    for key, var in (("model", _model), ("version", _version), ("request_id", _request_id)):
        value = getattr(record, key, None) or var.get()
        if value is not None:
            fields[key] = str(value)
    return fields


class _Redactor:
    def __init__(self, secrets: list[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, component, model, version, request_id, message."""

    def __init__(self, redact: _Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or _Redactor([])

    def format(self, record: logging.LogRecord) -> str:
        body = _fields(record)
        body["message"] = self.redact(record.getMessage())
        if record.exc_info:
            body["error"] = self.redact(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        return json.dumps(body, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``<timestamp> <LEVEL> <component> [model vN request_id] <logger>: <message>``."""

    def __init__(self, redact: _Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or _Redactor([])

    def format(self, record: logging.LogRecord) -> str:
        f = _fields(record)
        where = " ".join(
            x for x in (f.get("model"), f"v{f['version']}" if "version" in f else None, f.get("request_id")) if x
        )
        line = f"{f['timestamp']} {f['level']} {f['component']}{f' [{where}]' if where else ''} {f['logger']}: "
        line += self.redact(record.getMessage())
        if record.exc_info:
            line += self.redact(f" ({record.exc_info[0].__name__}: {record.exc_info[1]})")
        return line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test captures and re-bound streams work)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def _secrets(settings: Any) -> list[str]:
    found = [os.environ.get(name, "") for name in _SECRET_ENV]
    for name in ("mlflow_password", "mlflow_token"):  # also when set as MLCYCLE_MLFLOW_PASSWORD/_TOKEN
        value = getattr(settings, name, None)
        if value is not None:
            found.append(value.get_secret_value() if hasattr(value, "get_secret_value") else str(value))
    keys = getattr(settings, "api_keys", None)
    if keys is not None:
        raw = keys.get_secret_value() if hasattr(keys, "get_secret_value") else str(keys)
        for part in raw.split(","):
            found.append(part.split(":", 1)[-1].strip())
    return found


def configure(settings: Any, *, component: str | None = None, stream: Any = None) -> logging.Handler:
    """Set up mlcycle's loggers from ``settings.log_level`` and ``settings.log_format``; idempotent.

    Args:
        settings: :class:`mlcycle.config.Settings`.
        component: what this process is (``cli``, ``predictor``, a component's name); default: the kfp
            component being executed (``--function_to_execute``), else ``mlcycle``.
        stream: write here instead of stderr (tests).

    Returns:
        The handler installed (the previous one installed by this function is replaced).
    """
    global _default_component
    _default_component = component or _kfp_component() or _default_component
    redact = _Redactor(_secrets(settings))
    formatter = JsonFormatter(redact) if settings.log_format == "json" else TextFormatter(redact)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)
    handler._mlcycle = True  # type: ignore[attr-defined]
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_mlcycle", False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(settings.log_level)
        logger.propagate = False
    return handler


def _kfp_component() -> str | None:
    """The component a kfp executor runs (``python -m kfp.dsl.executor_main --function_to_execute X``)."""
    argv = sys.argv
    for i, arg in enumerate(argv[:-1]):
        if arg == "--function_to_execute":
            return argv[i + 1]
    return None
