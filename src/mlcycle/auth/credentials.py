"""MLflow credentials in shell-sourceable files: ``MLFLOW_TRACKING_USERNAME=...`` / ``..._PASSWORD=...``.

Files are created with mode 0600 (never world- or group-readable, not even for a moment: the mode is
set when the file is opened) and replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from mlcycle.errors import ConfigError

USERNAME_VARIABLE = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VARIABLE = "MLFLOW_TRACKING_PASSWORD"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True)
class Credentials:
    """An MLflow user name and password; ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)

    def as_env(self) -> dict[str, str]:
        """The environment variables MLflow's clients read."""
        return {USERNAME_VARIABLE: self.username, PASSWORD_VARIABLE: self.password}


def generate_password() -> str:
    """A random password (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def credentials_dir(home: Path) -> Path:
    """``MLCYCLE_HOME/credentials`` (mode 0700)."""
    path = home / "credentials"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # an umask cannot widen it, but an existing tmp file might have been wider
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_env_file(path: Path, credentials: Credentials) -> Path:
    """Write ``credentials`` as two ``NAME=value`` lines, mode 0600; returns ``path``."""
    lines = "".join(f"{name}={value}\n" for name, value in credentials.as_env().items())
    write_private(path, lines)
    return path


def read_env_file(path: Path) -> Credentials:
    """Read a file written by :func:`write_env_file`.

    Raises:
        ConfigError: the file is missing or lacks one of the two lines (the message names the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"no credentials file at {path}", field="credentials") from e
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    if not values.get(USERNAME_VARIABLE) or not values.get(PASSWORD_VARIABLE):
        raise ConfigError(
            f"{path} must hold {USERNAME_VARIABLE}=... and {PASSWORD_VARIABLE}=... lines", field="credentials"
        )
    return Credentials(values[USERNAME_VARIABLE], values[PASSWORD_VARIABLE])
