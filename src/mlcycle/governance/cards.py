"""Model cards: one Markdown and one HTML document per model version, built from what MLflow recorded.

Sections: intended use (registered model tag ``mlcycle.intended_use``, else its description), training
data (data set, target, content hash, pipeline run), parameters, evaluation (holdout metrics next to the
champion's on the same holdout, and the gate's decision), servability, where it serves, drift and
performance history (runs of experiment ``mlcycle-monitoring``), approvals, and the audit trail.

:func:`generate_card` builds the card, logs ``model_card/v<version>/card.md`` and ``card.html`` as
artifacts of the version's training run and points version tag ``mlcycle.card`` at the Markdown, so
the card is stored with the version. Both renderings come from one structure (:class:`Card`), so they
never disagree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

INTENDED_USE_TAG = "mlcycle.intended_use"
CARD_TAG = "mlcycle.card"
_LINEAGE = (
    ("Data set", "mlcycle.dataset"),
    ("Target", "mlcycle.target"),
    ("Data hash", "mlcycle.data_hash"),
    ("Model type", "mlcycle.model_type"),
    ("Pipeline run", "mlcycle.pipeline_run_id"),
    ("Code version", "mlcycle.code_version"),
    ("Team", "mlcycle.team"),
)


@dataclass
class Section:
    """A titled part of a card: paragraphs, then an optional table."""

    title: str
    text: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Card:
    name: str
    version: str
    sections: list[Section]

    @property
    def title(self) -> str:
        return f"Model card: {self.name} version {self.version}"


@dataclass(frozen=True)
class StoredCard:
    card: Card
    markdown: str
    html: str
    location: str | None  # runs:/<run>/model_card/v<version>/card.md, or None without a run


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _drift_history(name: str, version: str, client: Any, limit: int = 20) -> Section:
    from mlcycle.monitoring import export

    section = Section("Drift and performance history")
    from mlcycle.registry.uris import team_experiment

    experiment = client.get_experiment_by_name(team_experiment(export.EXPERIMENT, name))
    runs = (
        []
        if experiment is None
        else client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{export.TAG_MODEL}` = '{name}' and tags.`{export.TAG_VERSION}` = '{version}'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    )
    if not runs:
        section.text.append("No monitoring checks recorded for this version yet.")
        return section
    section.headers = ["Window end", "Check", "Status", "Drift share", "Drifted", "Accuracy", "F1 macro", "Retrain"]
    for run in runs:
        t, m = run.data.tags, run.data.metrics
        section.rows.append(
            [
                _fmt(t.get(export.TAG_WINDOW_END)),
                _fmt(t.get(export.TAG_KIND)),
                _fmt(t.get(export.TAG_STATUS)),
                _fmt(m.get("drift_share")),
                _fmt(m.get("drift_detected")),
                _fmt(m.get("accuracy")),
                _fmt(m.get("f1_macro")),
                _fmt(t.get(export.TAG_RETRAIN)),
            ]
        )
    section.text.append(f"Latest {len(runs)} checks, newest first (experiment `{export.EXPERIMENT}`).")
    return section


def build_card(name: str, version: str | int, *, client: Any = None) -> Card:
    """Collect what the registry and the tracking server recorded about a version into a :class:`Card`."""
    from mlcycle.governance import approvals, audit
    from mlcycle.registry import store
    from mlcycle.registry.versions import get_version

    client = _client(client)
    info = get_version(name, str(version))
    version = info.version
    model = store.get_registered_model(name, mlflow_client=client)
    run = store.get_run(info.run_id, mlflow_client=client) if info.run_id else None  # a deleted run: no run section
    run_tags = run.data.tags if run else {}
    params = run.data.params if run else {}
    metrics = run.data.metrics if run else {}
    tags = info.tags
    sections: list[Section] = []

    overview = Section("Overview", headers=["Field", "Value"])
    overview.rows = [
        ["Registered model", name],
        ["Version", version],
        ["Aliases", ", ".join(sorted(info.aliases)) or "none"],
        ["Training run", _fmt(info.run_id)],
    ]
    sections.append(overview)

    intended = (model.tags or {}).get(INTENDED_USE_TAG) or model.description or ""
    sections.append(
        Section(
            "Intended use",
            text=[intended or (f'Not recorded. Set it with `mlcycle card {name}/{version} --intended-use "..."`.')],
        )
    )

    data = Section("Training data", headers=["Field", "Value"])
    data.rows = [[label, _fmt(tags.get(key) or run_tags.get(key))] for label, key in _LINEAGE]
    sections.append(data)

    sections.append(
        Section(
            "Parameters",
            headers=["Parameter", "Value"],
            rows=[[k, _fmt(v)] for k, v in sorted(params.items())],
            text=[] if params else ["No parameters recorded."],
        )
    )

    evaluation = Section("Evaluation")
    champion_version = run_tags.get("mlcycle.compared_champion_version") or tags.get("mlcycle.gate.champion_version")
    ours = {k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")}
    theirs = {k.removeprefix("champion_test_"): v for k, v in metrics.items() if k.startswith("champion_test_")}
    if ours:
        evaluation.headers = [
            "Metric (holdout)",
            f"v{version}",
            f"champion v{champion_version}" if champion_version else "champion",
            "Δ",
        ]
        for key in sorted(ours):
            other = theirs.get(key)
            delta = None if other is None else ours[key] - other
            evaluation.rows.append([key, _fmt(ours[key]), _fmt(other), "—" if delta is None else f"{delta:+.4f}"])
        if not theirs:
            evaluation.text.append("No champion existed when this version was evaluated.")
    else:
        evaluation.text.append("No holdout metrics recorded on the training run.")
    if decision := tags.get("mlcycle.gate.decision"):
        evaluation.text.append(
            f"Gate decision: **{decision}** on `{tags.get('mlcycle.gate.metric', '?')}` — "
            f"{tags.get('mlcycle.gate.reason', '')} (by {tags.get('mlcycle.gate.decided_by', '?')} at "
            f"{tags.get('mlcycle.gate.decided_at', '?')})."
        )
    sections.append(evaluation)

    sections.append(
        Section(
            "Servability",
            text=[
                f"`{tags['mlcycle.servability']}` (replayed through the predictor's code at the gate)"
                if tags.get("mlcycle.servability")
                else "Not checked."
            ],
        )
    )

    serving = Section("Serving", headers=["Environment", "State", "Traffic %", "InferenceService", "Updated"])
    for env in sorted({k.split(".")[2] for k in tags if k.startswith("mlcycle.serving.") and k.count(".") >= 3}):

        def st(key: str, env: str = env) -> str:
            return _fmt(tags.get(f"mlcycle.serving.{env}.{key}"))

        serving.rows.append([env, st("state"), st("traffic_percent"), st("inference_service"), st("updated_at")])
    if not serving.rows:
        serving.text.append("Not deployed to a cluster environment.")
    if tags.get("mlcycle.promotion.action"):
        serving.text.append(
            f"Last promotion action: {tags['mlcycle.promotion.action']} by "
            f"{tags.get('mlcycle.promotion.by', '?')} at {tags.get('mlcycle.promotion.at', '?')}."
        )
    sections.append(serving)

    sections.append(_drift_history(name, version, client))

    approval_section = Section("Approvals", headers=["Environment", "Status", "By", "At", "Reason", "Revoked"])
    for a in approvals.approvals_of(name, version, client=client):
        revoked = f"by {a.revoked_by} at {a.revoked_at}: {a.revoke_reason}" if a.revoked_by else "—"
        approval_section.rows.append([a.environment, a.status, a.by, a.at, a.reason, revoked])
    if not approval_section.rows:
        approval_section.text.append("No approvals recorded.")
    sections.append(approval_section)

    trail = audit.version_events(name, version, client=client)
    sections.append(
        Section(
            "Audit trail",
            headers=["At", "Action", "By", "Details"],
            rows=[[e.at, e.action, e.by, e.summary()] for e in trail],
            text=[] if trail else ["No audit events recorded."],
        )
    )
    return Card(name, version, sections)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(card: Card) -> str:
    """The card as GitHub-flavoured Markdown."""
    lines = [f"# {card.title}", ""]
    for section in card.sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.text:
            lines += [paragraph, ""]
        if section.rows:
            lines.append("| " + " | ".join(_md_cell(h) for h in section.headers) + " |")
            lines.append("|" + "---|" * len(section.headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
            lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then turn Markdown ``code`` and **bold** of the card's own text into HTML."""
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def render_html(card: Card) -> str:
    """The card as one self-contained HTML page (no scripts, no external resources)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(card.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style></head><body>",
        f"<h1>{html.escape(card.title)}</h1>",
    ]
    for section in card.sections:
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        out += [f"<p>{_inline(p)}</p>" for p in section.text]
        if section.rows:
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in section.headers)
                + "</tr></thead><tbody>"
            )
            out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in section.rows]
            out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)


def set_intended_use(name: str, text: str, *, client: Any = None) -> None:
    """Record what the registered model is for (shown on every version's card)."""
    _client(client).set_registered_model_tag(name, INTENDED_USE_TAG, text)


def generate_card(name: str, version: str | int, *, client: Any = None, store: bool = True) -> StoredCard:
    """Build the card of a version and (with ``store``) keep it with the version.

    The Markdown and HTML are logged to the version's training run under ``model_card/v<version>/``
    (regenerating replaces them, so the stored card shows the latest drift history), and version tag
    ``mlcycle.card`` points at the Markdown.
    """
    client = _client(client)
    card = build_card(name, version, client=client)
    markdown, page = render_markdown(card), render_html(card)
    location = None
    from mlcycle.registry import store as registry

    run_id = registry.get_model_version(name, card.version, mlflow_client=client).run_id
    if store and run_id:
        folder = f"model_card/v{card.version}"
        client.log_text(run_id, markdown, f"{folder}/card.md")
        client.log_text(run_id, page, f"{folder}/card.html")
        location = f"runs:/{run_id}/{folder}/card.md"
        client.set_model_version_tag(name, card.version, CARD_TAG, location)
    return StoredCard(card, markdown, page, location)
