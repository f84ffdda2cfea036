"""The lock (requirements/*.txt) is what pyproject.toml declares, and this environment is exactly the lock."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEV_LOCK = ROOT / "requirements" / "dev.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(lock: Path) -> dict[str, str]:
    """``{name: version}`` for every pin of ``lock`` whose marker holds here."""
    out: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        if marker and not Marker(marker).evaluate():
            continue
        out[canonicalize_name(name)] = version
    return out


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def _digest_check(*locks: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "lock_digest.py"), "--check", *map(str, locks)],
                          capture_output=True, text=True, check=False)


def test_lock_was_made_from_this_pyproject():
    result = _digest_check(DEV_LOCK, RUNTIME_LOCK)
    assert result.returncode == 0, result.stderr


def test_digest_check_fails_for_a_lock_made_from_another_pyproject(tmp_path):
    stale = tmp_path / "stale.txt"
    stale.write_text("# pyproject-digest: sha256:" + "0" * 64 + "\n" + DEV_LOCK.read_text().split("\n", 1)[1])
    result = _digest_check(stale)
    assert result.returncode == 1
    assert "make lock" in result.stderr


def test_every_declared_requirement_is_pinned_within_its_range():
    locked = pins(DEV_LOCK)
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is declared in pyproject.toml but not in {DEV_LOCK.name}: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{DEV_LOCK.name} pins {name}=={locked[name]}, outside pyproject.toml's {req}: run `make lock`")


def test_runtime_lock_is_the_dev_lock_minus_dev_tools():
    dev, runtime = pins(DEV_LOCK), pins(RUNTIME_LOCK)
    assert runtime, "empty runtime lock"
    differing = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert not differing, f"runtime and dev locks pin different versions: {differing}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        assert canonicalize_name(req.name) in runtime, f"{req.name} missing from {RUNTIME_LOCK.name}"


def test_this_environment_is_exactly_the_lock():
    """What `make setup` installed is the lock, package for package (so two installs give one pip freeze)."""
    locked = pins(DEV_LOCK)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("mlcycle", None)
    wrong = {n: (installed.get(n), v) for n, v in locked.items() if installed.get(n) != v}
    assert not wrong, f"installed vs locked differ (installed, locked): {wrong}: run `make setup`"
    # Everything beyond the lock is the packaging tools the venv module seeds (pip/setuptools are locked too).
    extra = set(installed) - set(locked)
    assert extra <= {"wheel"}, f"installed but not locked: {sorted(extra)}"
