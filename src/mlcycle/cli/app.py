"""The Typer application object and the options every command shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

app = typer.Typer(
    name="mlcycle",
    help="The ML model lifecycle on Kubeflow Pipelines and KServe: train, gate, serve, monitor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@dataclass
class CliState:
    debug: bool = False
    overrides: dict[str, object] = field(default_factory=dict)


state = CliState()


@app.callback()
def _common(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    home: Path | None = typer.Option(None, "--home", help="Local state directory (MLCYCLE_HOME)."),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI."),
    team: str | None = typer.Option(None, "--team", help="Team (= Kubeflow profile = namespace)."),
) -> None:
    state.debug = debug
    state.overrides = {"home": home, "tracking_uri": tracking_uri, "team": team}
    _configure_logs()


def _configure_logs() -> None:
    """Structured logs for every command (MLCYCLE_LOG_LEVEL/FORMAT); a bad setting is the command's to report."""
    from contextlib import suppress

    from mlcycle import logs
    from mlcycle.errors import ConfigError

    with suppress(ConfigError):
        logs.configure(settings(), component="cli")


def settings(**more: object):
    """Settings from the environment, overridden by the global flags and then by ``more``."""
    from mlcycle.config import load_settings

    return load_settings(**{**state.overrides, **{k: v for k, v in more.items() if v is not None}})


def configured_settings(**more: object):
    """Like :func:`settings`, and points MLflow at the configured stores."""
    from mlcycle import tracking

    s = settings(**more)
    tracking.configure(s)
    return s
