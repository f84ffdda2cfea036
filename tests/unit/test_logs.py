"""Structured logs: JSON lines with the request id, model and version; levels from settings; secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from pydantic import SecretStr

from mlcycle import logs
from mlcycle.config import Settings


@pytest.fixture(autouse=True)
def _restore_loggers():
    """Leave mlcycle's loggers as they were, so later tests (and caplog) see the usual setup."""
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level, logging.getLogger(name).propagate)
        for name in logs.LOGGERS
    }
    component = logs._default_component
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
    logs._default_component = component


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_log_line_carries_its_id_model_and_version():
    out = io.StringIO()
    logs.configure(Settings(log_format="json", log_level="INFO"), component="predictor", stream=out)
    log = logging.getLogger("mlcycle.serving.test")
    with logs.request_context("req-42", model="team-a.wine", version=5) as rid:
        log.info("predicted %d rows", 3)
    with logs.request_context() as made_up:
        log.warning("no id sent")
    log.info("outside any request")
    first, second, third = lines(out)
    assert rid == "req-42"
    assert first["request_id"] == "req-42" and first["model"] == "team-a.wine" and first["version"] == "5"
    assert first["message"] == "predicted 3 rows" and first["level"] == "INFO" and first["component"] == "predictor"
    assert first["timestamp"].endswith("+00:00") and first["logger"] == "mlcycle.serving.test"
    assert second["request_id"] == made_up and len(made_up) == 32 and "model" not in second
    assert "request_id" not in third


def test_concurrent_requests_keep_their_own_ids():
    out = io.StringIO()
    logs.configure(Settings(log_format="json"), component="predictor", stream=out)
    log = logging.getLogger("inference.model")

    async def handle(rid: str) -> None:
        with logs.request_context(rid, model="wine", version="1"):
            await asyncio.sleep(0)
            log.info("handled %s", rid)

    async def both() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(both())
    assert sorted((line["request_id"], line["message"]) for line in lines(out)) == [
        ("a", "handled a"),
        ("b", "handled b"),
    ]


def test_bind_request_lasts_for_its_task_only():
    out = io.StringIO()
    logs.configure(Settings(log_format="json"), component="predictor", stream=out)
    log = logging.getLogger("mlcycle.inference")

    async def handle(rid: str) -> None:  # what a predictor's request handler does: one line, no `with`
        logs.bind_request(rid, "wine", 3)
        await asyncio.sleep(0)
        log.info("answered")

    async def serve() -> None:
        await asyncio.gather(asyncio.create_task(handle("r1")), asyncio.create_task(handle("r2")))
        log.info("idle")

    asyncio.run(serve())
    got = [(line.get("request_id"), line.get("version")) for line in lines(out)]
    assert sorted(got[:2]) == [("r1", "3"), ("r2", "3")] and got[2] == (None, None)


def test_level_and_text_format_come_from_settings_and_secrets_are_masked(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio-secret-123")
    out = io.StringIO()
    logs.configure(
        Settings(log_format="text", log_level="WARNING", api_keys=SecretStr("team-a:k3y-abcdef")),
        component="cli",
        stream=out,
    )
    log = logging.getLogger("mlcycle.test")
    log.info("not shown")
    with logs.model_context("wine", "7"):
        log.warning("key k3y-abcdef and minio-secret-123 leaked")
    text = out.getvalue().strip()
    assert text.count("\n") == 0 and "not shown" not in text
    assert " WARNING cli [wine v7] mlcycle.test: key *** and *** leaked" in text
    assert "k3y-abcdef" not in text and "minio-secret-123" not in text


def test_configure_is_idempotent_and_names_the_kfp_component(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.argv", ["executor_main", "--function_to_execute", "deploy_model"])
    monkeypatch.setattr(logs, "_default_component", "mlcycle")
    logs.configure(Settings(log_format="json"), stream=io.StringIO())
    logs.configure(Settings(log_format="json"), stream=out)
    logging.getLogger("components.deploy_model").info("deployed")
    (line,) = lines(out)
    assert line["component"] == "deploy_model"
    assert sum(getattr(h, "_mlcycle", False) for h in logging.getLogger("mlcycle").handlers) == 1
