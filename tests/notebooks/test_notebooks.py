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


def test_the_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01-train-and-register.ipynb", "02-serve-and-canary.ipynb",
                                           "03-monitor-drift.ipynb", "04-bring-your-own-model.ipynb"]


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


@pytest.fixture(scope="module")
def executed(kernel_env):
    """All notebooks, executed at the same time (each in its own kernel and MLCYCLE_HOME): name → notebook or error.

    Most of a notebook's time is spent in kfp.local steps and predictor start-ups that leave the CPU idle
    between them, so running them side by side takes little more than the longest one.
    """
    import asyncio

    from nbclient import NotebookClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(kernel_env))
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.delenv("KFP_HOST", raising=False)  # the local runner, always, in tests
        notebooks = {path.name: nbformat.read(path, as_version=4) for path in NOTEBOOKS}
        # "immediate" kills the kernel's process group: a predictor a failed notebook left running goes with it.
        resources = {"metadata": {"path": str(REPO / "notebooks")}}
        clients = [NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, allow_errors=False,
                                  shutdown_kernel="immediate", resources=resources)
                   for nb in notebooks.values()]

        async def run_all():
            return await asyncio.gather(*(client.async_execute() for client in clients), return_exceptions=True)

        results = asyncio.run(run_all())
    return {name: result if isinstance(result, BaseException) else notebooks[name]
            for name, result in zip(notebooks, results, strict=True)}


def execute(executed, name: str) -> nbformat.NotebookNode:
    result = executed[name]
    if isinstance(result, BaseException):
        raise result
    return result


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
@pytest.mark.timeout(1200)  # the first test also waits for the notebooks to run
def test_01_trains_registers_and_shows_plots(executed):
    nb = execute(executed, "01-train-and-register.ipynb")
    text = text_of(nb)
    assert "registered wine version 1 | champion: 1" in text
    assert "SUCCESS  promote-model" in text
    assert "image/png" in mime_types(nb)  # confusion matrix and ROC curve from the evaluation step
    assert "KFP_HOST is not set" in text


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first test also waits for the notebooks to run
def test_02_serves_a_canary_and_follows_the_promotion(executed):
    nb = execute(executed, "02-serve-and-canary.ipynb")
    text = text_of(nb)
    assert "champion: 1 | challenger: 2" in text
    assert "'model_version': '1'" in text or '"model_version": "1"' in text
    canary_counts = next(line for line in text.splitlines() if line.startswith("{'v1'"))
    assert "'v2'" in canary_counts  # the canary got some of the 40 requests
    assert "now answered by: ['2']" in text
    assert "predictor stopped with exit code" in text


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first test also waits for the notebooks to run
def test_03_finds_drift_in_the_shifted_window_only(executed):
    nb = execute(executed, "03-monitor-drift.ipynb")
    text = text_of(nb)
    assert "600 rows logged" in text
    assert "normal window: ok; shifted window: drift" in text
    assert "drifted in the shifted window: alcohol, color_intensity" in text
    assert "text/html" in mime_types(nb)  # the Evidently report, inline
    assert "predictor stopped with exit code" in text


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first test also waits for the notebooks to run
def test_04_registers_a_custom_model_and_the_gate_keeps_the_better_one(executed):
    nb = execute(executed, "04-bring-your-own-model.ipynb")
    text = text_of(nb)
    assert "registered churn-custom version 1 | champion: 1" in text
    assert "SUCCESS  import-model" in text and "SUCCESS  promote-model" in text
    assert "servable: ok | task: classification | flavor: pyfunc" in text
    assert "reference sample: 560 rows" in text
    assert "versions after evaluate: 1" in text  # evaluate wrote nothing
    assert "version 2: reject - candidate f1_macro=" in text and "champion is still 1" in text
    assert "same as the script's model: True" in text
