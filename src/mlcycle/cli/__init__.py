"""The ``mlcycle`` command: parsing and printing only; all work happens in the library.

Each command group lives in its own module and registers itself on :data:`app`. Errors print one clear
line and exit non-zero (2: refused or bad input, 3: the registry is unavailable — an outage, retry later;
1: a fault); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

# Importing a command module registers its commands on ``app``.
from mlcycle.cli import (
    commands_auth,  # noqa: E402,F401  (registration side effect)
    commands_batch,  # noqa: E402,F401  (registration side effect)
    commands_deploy,  # noqa: E402,F401  (registration side effect)
    commands_governance,  # noqa: E402,F401  (registration side effect)
    commands_kfp,  # noqa: E402,F401  (registration side effect)
    commands_lifecycle,  # noqa: E402,F401  (registration side effect)
    commands_monitoring,  # noqa: E402,F401  (registration side effect)
    commands_registration,  # noqa: E402,F401  (registration side effect)
    commands_serving,  # noqa: E402,F401  (registration side effect)
    demo,  # noqa: E402,F401  (registration side effect)
)
from mlcycle.cli.app import app, state

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    from mlcycle.errors import MlcycleError, RegistryUnavailableError

    try:
        result = app(args=argv, prog_name="mlcycle", standalone_mode=False)
    except MlcycleError as e:
        if state.debug:
            raise
        where = f" [{e.field}]" if e.field else ""
        print(f"error{where}: {e.message}", file=sys.stderr)
        return 3 if isinstance(e, RegistryUnavailableError) else 2  # 3: an outage, worth retrying later
    except SystemExit as e:  # typer/click exit codes (usage errors are 2)
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a real fault: one line, with the hint to see more
        import click
        import typer

        # Typer >= 0.20 vendors Click: its usage errors are typer.TyperException, not click's classes.
        if isinstance(e, click.exceptions.ClickException | typer.TyperException):
            hint = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) is not None else ""
            print(f"error: {e.format_message()}{hint}", file=sys.stderr)
            return e.exit_code
        if isinstance(e, click.exceptions.Abort | typer.Abort):
            print("aborted", file=sys.stderr)
            return 1
        if state.debug:
            raise
        from mlcycle.tracking import auth_error

        if (refused := auth_error(e)) is not None:  # an MLflow 401/403: the caller's credentials, one line
            print(f"error [{refused.field}]: {refused.message}", file=sys.stderr)
            return 2
        print(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    # Without standalone mode Click returns typer.Exit's code instead of exiting with it.
    return result if isinstance(result, int) else 0
