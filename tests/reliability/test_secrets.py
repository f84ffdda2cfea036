"""No credentials in the repository or in the compiled pipeline YAML.

High-confidence patterns (cloud key ids, private key blocks, tokens, passwords inside URLs) and any
``<...secret/password/token...> = <value>`` assignment whose value is not a documented dev placeholder
or a reference to where the real value lives (``$(VAR)``, ``${VAR}``, a Secret).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "password in a URL": re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@\"'`]+:([^/\s@\"'`]+)@"),
}
ASSIGNMENT = re.compile(
    r"""(?ix)\b([a-z0-9_]*(?:secret|password|passwd|token|api_keys?|access_key)[a-z0-9_]*)["']?[ \t]*[:=][ \t]*
    ["']?([^\s"',}\]\)]+)"""
)
# An assignment is on one line: a YAML key that opens a mapping (a CRD schema's `secret:` then
# `description:` on the next line) names a field, it does not hold a value.
# The documented dev placeholders (README, kustomize/overlays/dev, profiles/*/s3-credentials.env) and
# the fake credentials tests hand to moto's in-process S3.
PLACEHOLDERS = {"dev-only-not-a-secret", "example-only-replace-me", "testing", "minioadmin"}
REFERENCE = re.compile(r"^(?:\$\(|\$\{|\$[A-Z_]|<|\{\{|secretKeyRef|valueFrom|None|null|true|false|\"\"|''|=)")


def scan(text: str) -> list[str]:
    """What in ``text`` looks like a credential (empty when nothing does)."""
    found = []
    for what, pattern in PATTERNS.items():
        for m in pattern.finditer(text):
            if what == "password in a URL" and (REFERENCE.match(m.group(1)) or m.group(1) in PLACEHOLDERS):
                continue
            found.append(f"{what}: {m.group(0)[:24]}...")
    for m in ASSIGNMENT.finditer(text):
        name, value = m.group(1), m.group(2)
        if value in PLACEHOLDERS or REFERENCE.match(value) or len(value) < 8 or value[0] in "[(":
            continue
        line = text[text.rfind("\n", 0, m.start()) + 1 : text.find("\n", m.end()) % (len(text) + 1)]
        if "noqa: S105" in line or "noqa: S106" in line:
            continue  # a name, not a secret, already justified for ruff's S rules on that line
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\[|]*(?:\(.*)?", value) and not re.search(r"\d", value):
            continue  # code: an identifier or a call (settings.api_keys, os.environ.get(...)), no literal
        found.append(f"{name} = {value[:4]}...")
    return found


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        return [REPO / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_the_scanner_finds_planted_credentials():
    key_id = "AKIA" + "Q" * 16
    assert scan(f"aws_access_key_id = {key_id}")
    assert scan("-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE")
    assert scan("postgresql://mlflow:" + "s3cr3t-Passw0rd" + "@db:5432/mlflow")
    assert scan('AWS_SECRET_ACCESS_KEY: "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + 'EXAMPLEKEY"')
    assert scan("MLCYCLE_API_KEYS=team-a:" + "k9f8e7d6c5b4a3")
    assert not scan("postgresql://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@mlcycle-postgres:5432/db")
    assert not scan("AWS_SECRET_ACCESS_KEY=dev-only-not-a-secret")
    assert not scan("api_keys = settings.api_keys.get_secret_value()")


def test_compiled_pipelines_hold_no_credentials():
    compiled = sorted((REPO / "pipelines" / "compiled").glob("*.yaml"))
    assert compiled, "no compiled pipeline YAML under pipelines/compiled"
    for path in compiled:
        text = path.read_text()
        assert not scan(text), (path.name, scan(text))
        # Credentials reach pipeline pods from the namespace (PodDefault / Secret), never as literals.
        assert not re.search(r"(?i)(AWS_SECRET_ACCESS_KEY|PASSWORD)\W+value:", text), path.name


def test_tracked_files_hold_no_credentials():
    problems = {}
    for path in tracked_files():
        if not path.is_file() or path.stat().st_size > 2_000_000 or path.suffix in {".png", ".jpg", ".db", ".parquet"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path == Path(__file__):
            continue  # the planted examples above are built from pieces, but skip ourselves anyway
        found = scan(text)
        if found:
            problems[str(path.relative_to(REPO))] = found
    assert not problems, problems
