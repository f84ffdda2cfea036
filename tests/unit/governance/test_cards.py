"""Model cards from what is recorded: intended use, drift history, approvals; the CLI prints and stores them."""

from __future__ import annotations

import json

from mlcycle.governance import approvals, cards
from mlcycle.monitoring import export

NAME = "team-a.wine"


def test_card_shows_intended_use_drift_history_and_approvals(registry, mlcycle_home):
    cards.set_intended_use(NAME, "Rank wine lots for manual tasting; not for pricing.")
    export.log_check(
        "drift",
        model_name=NAME,
        version="2",
        model_id=None,
        status="drift",
        metrics={"drift_share": 0.625, "drift_detected": 1.0},
        settings=mlcycle_home,
        tags={export.TAG_RETRAIN: "false", export.TAG_WINDOW_END: "2026-11-24T04:00:00+00:00"},
    )
    approvals.approve(NAME, "2", "staging", "offline checks", by="carol")
    card = cards.build_card(NAME, "2")
    markdown, page = cards.render_markdown(card), cards.render_html(card)
    assert "Rank wine lots for manual tasting; not for pricing." in markdown
    assert "| 2026-11-24T04:00:00+00:00 | drift | drift | 0.6250 | 1.0000 |" in markdown
    assert "| staging | approved | carol |" in markdown
    assert "<td>0.6250</td>" in page and "<script" not in page
    # Version 1 has no monitoring runs and no approvals; the card says so instead of inventing numbers.
    other = cards.render_markdown(cards.build_card(NAME, "1"))
    assert "No monitoring checks recorded" in other and "No approvals recorded." in other


def test_cli_card_writes_html_and_logs_json_lines_for_the_cli(registry, monkeypatch, tmp_path, capsys):
    from mlcycle.cli import main

    monkeypatch.setenv("MLCYCLE_LOG_FORMAT", "json")
    monkeypatch.setenv("MLCYCLE_ACTOR", "dave")
    target = tmp_path / "card.html"
    assert main(["card", "team-a.wine/3", "--html", "-o", str(target), "--intended-use", "demo <only>"]) == 0
    assert "demo &lt;only&gt;" in target.read_text() and target.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["approve", "models:/team-a.wine/3", "--env", "prod", "--reason", "ok"]) == 0
    err = capsys.readouterr().err
    line = next(json.loads(x) for x in err.splitlines() if x.startswith("{"))
    assert line["component"] == "cli" and line["level"] == "INFO"
    assert line["message"] == "approved team-a.wine v3 for prod by dave"
