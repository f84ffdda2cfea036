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


def _mlcycle_imports(path: Path) -> set[str]:
    """Every ``mlcycle.*`` module a file imports, at any depth (lazy imports count too)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlcycle.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlcycle"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_registry_is_a_low_level_store():
    """registry/ imports nothing from governance, deploy or serving (the release path sits above it)."""
    offenders = []
    for path in (ROOT / "src" / "mlcycle" / "registry").rglob("*.py"):
        bad = {m for m in _mlcycle_imports(path)
               if m.split(".")[1] in ("governance", "deploy", "serving", "release", "lifecycle")}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)
