"""Run pipelines on this machine with ``kfp.local``, against the local (or configured) MLflow.

Steps run as subprocesses of the installed Python (``SubprocessRunner(use_venv=False)``): no per-step
virtualenv and no package installs, the same code the image carries on a cluster.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from mlcycle.config import Settings, settings_env


@contextmanager
def local_session(settings: Settings):
    """Initialise kfp.local with outputs under MLCYCLE_HOME and the settings exported to the steps."""
    from kfp import local

    exported = settings_env(settings)
    saved = {key: os.environ.get(key) for key in exported}
    os.environ.update(exported)
    try:
        with warnings.catch_warnings():
            # The project image is not named "python", which makes kfp.local warn on every step; the
            # steps do run in this Python, which has everything the image has.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            local.init(runner=local.SubprocessRunner(use_venv=False),
                       pipeline_root=str(settings.home_dir / "kfp"), raise_on_error=True)
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_pipeline(pipeline: Callable[..., Any], settings: Settings, **arguments: Any) -> Any:
    """Run ``pipeline`` locally and return its output (the pipeline function's return value)."""
    with local_session(settings):
        task = pipeline(**arguments)
    return task.output if task is not None and getattr(task, "outputs", None) else None
