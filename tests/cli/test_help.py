"""Every ``mlcycle`` command explains itself (``--help``) and fails in one line, without a traceback.

The commands are read from the Typer app itself, so a command added later is covered without editing
this file. ``main`` runs in-process (fast); one case goes through the installed console script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mlcycle.cli import app, main

REPO = Path(__file__).resolve().parents[2]


def _leaf_commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(command, "commands"):
            found.append(path)  # the group itself has --help too
            found.extend(_leaf_commands(command, path))
        else:
            found.append(path)
    return found


ROOT = typer.main.get_command(app)
COMMANDS = _leaf_commands(ROOT)


def _is_group(path: tuple[str, ...]) -> bool:
    command = ROOT
    for name in path:
        command = command.commands[name]
    return hasattr(command, "commands")


LEAVES = [path for path in COMMANDS if not _is_group(path)]
EXPECTED = {"run", "compile", "submit", "schedule", "serve", "promote", "rollback", "status", "drift", "monitor",
            "batch", "ui", "demo"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error"), err
    assert "Traceback" not in err


def test_the_issue_s_commands_are_all_registered():
    assert set(ROOT.commands) >= EXPECTED, sorted(EXPECTED - set(ROOT.commands))


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "mlcycle")
def test_help_works(capsys, path):
    code, out, err = run_cli(capsys, *path, "--help")
    assert code == 0, err
    assert "Usage:" in out and "--help" in out
    assert err == ""


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_an_unknown_option_is_one_line_and_exit_2(capsys, path):
    code, out, err = run_cli(capsys, *path, "--no-such-option")
    assert code == 2
    assert_one_line_error(err)
    assert "No such option: --no-such-option" in err
    assert f"mlcycle {' '.join(path)} --help" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["run", "training", "--trials", "-1"], "Invalid value for '--trials'"),
        (["run", "training", "--param", "oops"], "--param 'oops': write key=value"),
        (["submit", "--pipeline", "nope", "--host", "http://127.0.0.1:9"], "unknown pipeline 'nope'"),
        (["submit", "--host", "kfp.example"], "must start with http://"),
        (["schedule", "--every", "7m", "--host", "http://127.0.0.1:9"], "no simple cron form"),
        (["ui", "--port", "0"], "Invalid value for '--port'"),
        (["deploy", "render"], "Missing argument"),
        (["drift"], "Missing argument"),
        (["serve", "--canary-percent", "101"], "Invalid value for '--canary-percent'"),
        (["promote"], "Missing argument"),
        (["--team", "Not_A_Team", "status"], "MLCYCLE_TEAM"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_arguments_print_one_line(capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KFP_HOST", raising=False)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line_error(err)
    assert message in err


def test_the_console_script_prints_one_line_too(tmp_path):
    script = Path(sys.executable).with_name("mlcycle")
    result = subprocess.run([str(script), "submit", "--bogus"], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={"PATH": str(script.parent), "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: No such option: --bogus (Possible options: --host) " \
                                    "(see `mlcycle submit --help`)"
