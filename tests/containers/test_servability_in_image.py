"""mlcycle's servability check run inside the predictor image judges a model's requirements against *that
image's* packages, not the environment the model was trained in."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from tests.containers.conftest import engine

pytestmark = [pytest.mark.containers, pytest.mark.slow]

# Runs in the image: the servability report of each model URI given, and the image's scikit-learn.
CHECK = """
import json, sys
from importlib import metadata
from mlcycle import tracking
from mlcycle.config import load_settings
from mlcycle.serving.servability import check_servability
settings = load_settings()
tracking.configure(settings)
reports = {uri: check_servability(uri, settings) for uri in sys.argv[1:]}
print(json.dumps({"scikit-learn": metadata.version("scikit-learn"),
                  "reports": {uri: {"ok": r.ok, "reasons": r.reasons} for uri, r in reports.items()}}))
"""


def _log(name: str, requirements: list[str] | None, experiment: str) -> str:
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    X, y = load_wine(return_X_y=True, as_frame=True)
    model = LogisticRegression(C=0.01, max_iter=200).fit(X, y)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                        input_example=X.head(5), registered_model_name=name,
                                        serialization_format="cloudpickle", pip_requirements=requirements)
    return f"models:/{name}/{info.registered_model_version}"


def test_requirements_are_checked_against_the_image_packages(images, engine_env, mlflow_url, on_server):
    from mlcycle import tracking

    experiment = tracking.ensure_experiment("container-servability", on_server)
    sklearn_here = metadata.version("scikit-learn")
    hypothesis_here = metadata.version("hypothesis")  # a dev-only package: on this host, not in the image
    matching = _log("matches-image", None, experiment)  # MLflow records this environment's versions
    old_sklearn = _log("old-sklearn", ["scikit-learn==1.0.2", f"mlflow=={metadata.version('mlflow')}"], experiment)
    dev_only = _log("needs-hypothesis", [f"scikit-learn=={sklearn_here}", f"hypothesis=={hypothesis_here}"],
                    experiment)

    run = engine(engine_env, "run", "--rm", "--network=host", "--user", "10001:10001", "--read-only",
                 "--tmpfs", "/tmp:rw,mode=1777", "-e", f"MLCYCLE_TRACKING_URI={mlflow_url}",
                 "--entrypoint", "python3", images["predictor"], "-c", CHECK, matching, old_sklearn, dev_only)
    out = json.loads(run.stdout.strip().splitlines()[-1])
    image_sklearn, reports = out["scikit-learn"], out["reports"]

    assert reports[matching] == {"ok": True, "reasons": []}
    assert not reports[old_sklearn]["ok"]
    reason = " ".join(reports[old_sklearn]["reasons"])
    assert "not servable" in reason and "scikit-learn" in reason, reason
    assert "1.0.2" in reason and image_sklearn in reason, reason
    # Servable where the model was trained (hypothesis is installed here), not in the image.
    assert not reports[dev_only]["ok"]
    reason = " ".join(reports[dev_only]["reasons"])
    assert "not servable" in reason and "hypothesis" in reason and hypothesis_here in reason, reason
