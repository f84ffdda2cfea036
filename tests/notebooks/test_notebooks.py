"""The notebooks run for real (nbclient, kfp.local, a real predictor) and are committed without outputs.

The kernel is this interpreter (the project's venv): a kernelspec written to a temporary JUPYTER_PATH, so
the test works from a fresh clone without ``ipykernel install`` and never picks up another Python's kernel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL = "mlcycle-venv"
CELL_TIMEOUT_S = 600


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01-train-and-register.ipynb", "02-serve-and-canary.ipynb",
                                           "03-monitor-drift.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before committing"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A JUPYTER_PATH whose only kernel runs this interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mlcycle (test venv)",
        "language": "python",
    }))
    return root


def execute(path: Path, kernel_env: Path, monkeypatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("KFP_HOST", raising=False)  # the local runner, always, in tests
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, allow_errors=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def text_of(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output and "text/plain" in output.data:
                parts.append(output.data["text/plain"])
    return "\n".join(parts)


def mime_types(nb) -> set[str]:
    return {mime for cell in nb.cells for output in cell.get("outputs", []) for mime in output.get("data", {})}


@pytest.mark.slow
def test_01_trains_registers_and_shows_plots(kernel_env, monkeypatch):
    nb = execute(REPO / "notebooks" / "01-train-and-register.ipynb", kernel_env, monkeypatch)
    text = text_of(nb)
    assert "registered wine version 1 | champion: 1" in text
    assert "SUCCESS  promote-model" in text
    assert "image/png" in mime_types(nb)  # confusion matrix and ROC curve from the evaluation step
    assert "KFP_HOST is not set" in text


@pytest.mark.slow
def test_02_serves_a_canary_and_follows_the_promotion(kernel_env, monkeypatch):
    nb = execute(REPO / "notebooks" / "02-serve-and-canary.ipynb", kernel_env, monkeypatch)
    text = text_of(nb)
    assert "champion: 1 | challenger: 2" in text
    assert "'model_version': '1'" in text or '"model_version": "1"' in text
    canary_counts = next(line for line in text.splitlines() if line.startswith("{'v1'"))
    assert "'v2'" in canary_counts  # the canary got some of the 40 requests
    assert "now answered by: ['2']" in text
    assert "predictor stopped with exit code" in text


@pytest.mark.slow
def test_03_finds_drift_in_the_shifted_window_only(kernel_env, monkeypatch):
    nb = execute(REPO / "notebooks" / "03-monitor-drift.ipynb", kernel_env, monkeypatch)
    text = text_of(nb)
    assert "600 rows logged" in text
    assert "normal window: ok; shifted window: drift" in text
    assert "drifted in the shifted window: alcohol, color_intensity" in text
    assert "text/html" in mime_types(nb)  # the Evidently report, inline
    assert "predictor stopped with exit code" in text
