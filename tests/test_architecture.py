"""Imports point one way: components, pipelines, inference and the CLI import mlcycle, never the reverse."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTER = ("components", "pipelines", "inference", "benchmarks", "tests")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_library_never_imports_the_outer_layers():
    offenders = []
    for path in (ROOT / "src" / "mlcycle").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "src" / "mlcycle").parts:
            continue  # the CLI is a presentation layer, like components; it may import pipelines lazily
        bad = imported_modules(path) & set(OUTER)
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_inference_never_imports_pipelines():
    for path in (ROOT / "inference").rglob("*.py"):
        assert "pipelines" not in imported_modules(path), path
