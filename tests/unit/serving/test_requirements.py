"""mlcycle.serving.requirements: a model's requirements.txt against this environment."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from mlcycle.errors import ModelNotServableError
from mlcycle.serving.requirements import check_model_requirements, compare_requirements


def test_equivalent_distribution_satisfies_the_requirement():
    have = version("xgboost-cpu")
    problems, table = compare_requirements(f"xgboost=={have}\nxgboost-cpu=={have}\n")
    assert problems == []
    assert table["xgboost"]["installed"] == f"xgboost-cpu=={have}"


def test_missing_and_incompatible_packages_are_named_with_both_versions():
    problems, _ = compare_requirements(
        "surely-not-installed-pkg==1.2\nlightgbm==1.0.0\npandas>=99\npytest==0.1\nrich==1\n"
    )
    assert any("surely-not-installed-pkg==1.2" in p and "not installed" in p for p in problems)
    assert any(p.startswith("lightgbm 1.0.0 (model) vs " + version("lightgbm")) for p in problems)
    assert any(p.startswith("pandas>=99 (model) vs " + version("pandas")) for p in problems)
    assert not any("pytest" in p or "rich" in p for p in problems)  # not needed to predict


def test_check_refuses_with_not_servable(tmp_path):
    (tmp_path / "requirements.txt").write_text(f"mlflow=={version('mlflow')}\nlightgbm==1.0.0\n")
    with pytest.raises(ModelNotServableError) as e:
        check_model_requirements(tmp_path, "models:/m/1")
    assert e.value.http_status == 503
    assert e.value.message.startswith("not servable: models:/m/1: lightgbm 1.0.0 (model)")
    (tmp_path / "requirements.txt").write_text(f"mlflow=={version('mlflow')}\n")
    check_model_requirements(tmp_path, "models:/m/1")
