"""``mlcycle drift``, ``monitor``, ``ingest-labels`` and ``performance`` through the real CLI entry point."""

from __future__ import annotations

import json

from mlcycle.cli import main
from tests.unit.monitoring.test_performance import labels_for
from tests.unit.monitoring.wine_model import log_traffic, traffic


def test_drift_json_has_the_contract_fields(wine, capsys):
    log_traffic(
        traffic(wine.model, wine.features, 300, seed=31, scale={"proline": 1.6, "alcohol": 1.3}),
        wine.payloads,
        wine.name,
        wine.version,
    )
    code = main(["drift", f"models:/{wine.name}@champion", "--since", "1h", "--json", "--source", wine.payloads])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert {"dataset_drift", "drifted_columns", "rows", "scores", "report_path"} <= set(summary)
    assert summary["drifted_columns"] == ["alcohol", "proline"] and summary["rows"] == 300


def test_drift_table_and_one_line_errors(wine, capsys):
    log_traffic(traffic(wine.model, wine.features, 150, seed=32), wine.payloads, wine.name, wine.version)
    assert main(["drift", f"{wine.name}@champion", "--source", wine.payloads, "--method", "psi"]) == 0
    out = capsys.readouterr().out
    assert "no drift" in out and "psi" in out and "report:" in out
    assert main(["drift", f"{wine.name}@champion", "--since", "soon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error [since]:") and len(err.strip().splitlines()) == 1


def test_monitor_is_bounded_by_max_runs(wine, capsys):
    log_traffic(traffic(wine.model, wine.features, 150, seed=33), wine.payloads, wine.name, wine.version)
    code = main(["monitor", f"{wine.name}@champion", "--every", "1s", "--window", "1h", "--max-runs", "2", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 2
    # monitor reads MLCYCLE_HOME/payloads, which this test did not write: reported, not crashed on
    assert {line["status"] for line in lines} == {"no_data"}
    assert lines[0]["performance"]["status"] == "no_data"


def test_ingest_labels_then_performance(wine, capsys, tmp_path, monkeypatch):
    payloads = wine.settings.home_dir / "payloads"
    logged = log_traffic(traffic(wine.model, wine.features, 80, seed=34), payloads, wine.name, wine.version)
    labels_for(logged, wrong_every=2).to_csv(tmp_path / "truth.csv", index=False)
    assert main(["ingest-labels", str(tmp_path / "truth.csv"), "--model", wine.name]) == 0
    assert "ingested 80 labels" in capsys.readouterr().out
    assert main(["performance", f"{wine.name}@champion", "--since", "1h", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["accuracy"] == 0.5 and summary["below_threshold"] is True
    assert main(["performance", f"{wine.name}@champion", "--since", "1h"]) == 0
    assert "BELOW THRESHOLD" in capsys.readouterr().out


def test_monitor_says_when_retraining_is_due(wine, capsys):
    payloads = wine.settings.home_dir / "payloads"
    log_traffic(
        traffic(wine.model, wine.features, 200, seed=35, scale={c: 1.8 for c in wine.features}),
        payloads,
        wine.name,
        wine.version,
    )
    code = main(
        [
            "monitor",
            f"{wine.name}@champion",
            "--every",
            "1s",
            "--window",
            "1h",
            "--max-runs",
            "1",
            "--persistence",
            "1",
            "--no-retrain",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "drift" in captured.out and "streak 1/1" in captured.out
    assert "retraining is due" in captured.err and "not started" in captured.err
