"""Test helper: mark bare model versions as a passed gate would (decision promote, servable)."""

from __future__ import annotations


def mark_releasable(client, name: str, *versions: str) -> None:
    """Tag each version ``mlcycle.gate.decision=promote`` and ``mlcycle.servability=ok``."""
    for version in versions:
        client.set_model_version_tag(name, version, "mlcycle.gate.decision", "promote")
        client.set_model_version_tag(name, version, "mlcycle.gate.reason", "marked by the test")
        client.set_model_version_tag(name, version, "mlcycle.servability", "ok")
