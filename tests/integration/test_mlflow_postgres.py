"""The training pipeline against a real MLflow tracking server backed by PostgreSQL (Debian's package)."""

import json

import pytest

from mlcycle.cli import main

from .servers import mlflow_server, postgres_bin, postgres_server, psql

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL not installed: run scripts/install-debian-deps.sh")
def test_pipeline_runs_through_mlflow_server_on_postgres(tmp_path, monkeypatch, capsys):
    with postgres_server() as db_url, \
            mlflow_server(db_url, tmp_path / "artifacts", tmp_path / "mlflow.log") as tracking_url:
        monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MLCYCLE_TRACKING_URI", tracking_url)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        code = main(["run", "training", "--dataset", "wine", "--model", "logistic_regression", "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        summary = json.loads(out)
        assert summary["decision"] == "promote"

        # The registry really lives in PostgreSQL, and the model files went through the server's artifact proxy.
        assert psql(db_url, "select name from registered_models") == "wine"
        assert psql(db_url, "select alias, version from registered_model_aliases order by alias") == \
            "challenger|1\nchampion|1"
        run_id = summary["run_id"]
        assert run_id.isalnum()  # it goes into SQL below
        assert psql(db_url, f"select value from tags where run_uuid='{run_id}' "  # noqa: S608 (checked above)
                            "and key='mlcycle.model_type'") == "logistic_regression"
        assert any(p.name == "MLmodel" for p in (tmp_path / "artifacts").rglob("MLmodel"))
        assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing fell back to the local store
