"""``mlcycle run``, ``compile`` and ``status``: the training pipeline and the registry."""

from __future__ import annotations

from mlcycle.cli.app import app  # noqa: F401
