"""Run pipelines on this machine with ``kfp.local``, against the local (or configured) MLflow.

Steps run as subprocesses of the installed Python (``SubprocessRunner(use_venv=False)``): no per-step
virtualenv and no package installs, the same code the image carries on a cluster. kfp.local prints every
step's log; :func:`run_pipeline` can send that to a file and report step progress to a callback instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlcycle.config import Settings, settings_env
from mlcycle.errors import MlcycleError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_DONE = re.compile(r"Task '([^']+)' finished with status (\w+)")
_STEP_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")
_MLFLOW_REFUSED = re.compile(r"API request to endpoint (\S+) failed with error code (401|403)\b")


def _refusal(endpoint: str, status: str) -> tuple[str, str]:
    """An MLflow 401/403 from a step as one line (the step's own traceback stays in its log)."""
    from mlcycle.tracking import refusal

    error = refusal("UNAUTHENTICATED" if status == "401" else "PERMISSION_DENIED", endpoint)
    return (type(error).__name__, error.message) if error else ("MlflowException", f"{endpoint}: {status}")


class PipelineFailedError(MlcycleError):
    """A local pipeline step failed; the message is the step's own error when it raised a mlcycle error."""

    http_status = 500

    def __init__(self, message: str, *, step: str | None = None, error_type: str | None = None,
                 log_file: Path | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.error_type = error_type
        self.log_file = log_file


class _StepLog(io.TextIOBase):
    """A text stream that keeps kfp.local's output (in a file, if given) and reports finished steps.

    kfp.local runs a ``dsl.ParallelFor``'s iterations in threads that all print here, so a write holds a
    lock (two threads' halves of a line must not interleave in the file or the parser). kfp 2.17 itself can
    still drop a parallel step's "finished" line: each task swaps the root logger's handlers from its own
    thread (``local_logger_context``), so ``on_step`` may miss a ParallelFor iteration; the run's outcome
    does not depend on it.
    """

    def __init__(self, sink: io.TextIOBase | None, on_step: Callable[[str, str], None] | None) -> None:
        self._sink = sink
        self._on_step = on_step
        self._partial = ""
        self.failed_step: str | None = None
        self.last_error: tuple[str, str] | None = None
        self._lock = threading.RLock()  # re-entrant: an on_step that prints may write here (redirected stdout)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            return self._write(text)

    def _write(self, text: str) -> int:
        if self._sink is not None:
            self._sink.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for raw in lines:
            line = _ANSI.sub("", raw).strip()
            if error := _STEP_ERROR.search(line):
                self.last_error = (error.group(1), error.group(2))
            if done := _TASK_DONE.search(line):
                step, status = done.group(1), done.group(2)
                if status != "SUCCESS" and self.failed_step is None:
                    self.failed_step = step
                if self._on_step:
                    self._on_step(step, status)
        return len(text)

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()


@contextlib.contextmanager
def local_session(settings: Settings, runner: Any = None) -> Iterator[None]:
    """Initialise kfp.local with outputs under MLCYCLE_HOME and the settings exported to the steps.

    ``runner`` defaults to ``SubprocessRunner(use_venv=False)`` (the steps run in this Python); a
    ``kfp.local.DockerRunner`` runs each step in its component image instead (wrap the run in
    :func:`docker_runner_fix` over podman; the container's environment is the runner's ``environment``).
    """
    from kfp import local

    exported = settings_env(settings)
    saved = {key: os.environ.get(key) for key in exported}
    os.environ.update(exported)
    try:
        with warnings.catch_warnings():
            # The project image is not named "python", which makes kfp.local warn on every step; the
            # steps do run in this Python, which has everything the image has.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            # Display names are for the KFP UI; kfp.local says so once per step.
            warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
            local.init(runner=runner or local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(settings.home_dir / "kfp"), raise_on_error=True)
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_pipeline(pipeline: Callable[..., Any], settings: Settings, *, log_file: Path | None = None,
                 on_step: Callable[[str, str], None] | None = None, runner: Any = None, **arguments: Any) -> Any:
    """Run ``pipeline`` locally and return its output (the pipeline function's return value).

    Args:
        pipeline: a ``@dsl.pipeline`` function.
        settings: where MLflow and the outputs live; exported to the steps as ``MLCYCLE_*``.
        log_file: when given, kfp.local's output goes there instead of the terminal.
        on_step: called with ``(step, status)`` as each step finishes.
        runner: a kfp.local runner (default: the steps as subprocesses of this Python; see :func:`local_session`).
        **arguments: the pipeline's parameters.

    Raises:
        PipelineFailedError: a step failed; carries the step and, when it raised one, the mlcycle error.
    """
    sink = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115 (closed below)
    stream = _StepLog(sink, on_step) if (sink or on_step) else None
    try:
        redirect = contextlib.redirect_stdout(stream) if stream else contextlib.nullcontext()
        with local_session(settings, runner), redirect:
            task = pipeline(**arguments)
    except RuntimeError as e:
        step = stream.failed_step if stream else None
        if stream and stream.last_error:
            kind, message = stream.last_error
            if refused := _MLFLOW_REFUSED.search(message):  # the server's 401/403, said as the CLI says it
                kind, message = _refusal(refused.group(1), refused.group(2))
            raise PipelineFailedError(f"step {step or '?'} failed: {kind}: {message}", step=step, error_type=kind,
                                      log_file=log_file) from e
        where = f" (log: {log_file})" if log_file else ""
        raise PipelineFailedError(f"step {step or '?'} failed: {e}{where}", step=step, log_file=log_file) from e
    finally:
        if sink:
            sink.close()
    return task.output if task is not None and getattr(task, "outputs", None) else None


def run_container_then_remove(client: Any, image: str, command: list[str], volumes: dict[str, Any],
                              **container_run_args: Any) -> int:
    """kfp.local's ``run_docker_container`` without auto-remove: the step's exit code from ``wait()``.

    kfp 2.17 runs the step with ``auto_remove=True`` and then inspects the container. Over podman's Docker API
    the container is already gone and podman answers 500 ("container ... does not exist in database") where
    Docker answers 404, so every step fails after it succeeded; and on Docker's 404 kfp returns 0, which can
    hide a failed step. Here the container is kept until its exit code is read, then removed.
    Proposed upstream (kubeflow/pipelines, kfp/local/docker_task_handler.py): drop ``auto_remove`` in
    ``run_docker_container``, take the code from ``container.wait()`` and ``container.remove()`` in a
    ``finally``. Installed by :func:`docker_runner_fix`.
    """
    import docker
    from kfp.local import docker_task_handler

    image = docker_task_handler.add_latest_tag_if_not_present(image=image)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        client.images.pull(image)
    container_run_args.pop("auto_remove", None)
    container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                      volumes=volumes, **container_run_args)
    try:
        for line in container.logs(stream=True):
            print(line.decode(), end="")
        return int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@contextlib.contextmanager
def docker_runner_fix() -> Iterator[None]:
    """Within the block, kfp.local's DockerRunner runs steps with :func:`run_container_then_remove`."""
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_container_then_remove
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original
