"""Model references and registered-model names, shared by every part of mlcycle.

Model references everywhere are MLflow URIs: ``models:/wine@champion`` (an alias), ``models:/wine/5``
(a version), ``runs:/<run_id>/model`` or any other URI MLflow can load. ``wine@champion`` and
``wine/5`` are accepted as shorthand for the ``models:/`` forms.

Multi-tenancy: a team's registered models are named ``<team>.<name>``. A team is a Kubernetes namespace
name (no dots), and a base name has no dots either, so the split is never ambiguous. The base name is
what a model is served under (``/v2/models/wine``): on a cluster the namespace already says the team.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlcycle.errors import InvalidInputError, PermissionDeniedError

BASE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ALIAS_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
TEAM_SEPARATOR = "."

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference. Exactly one of ``alias``/``version`` is set for registry refs."""

    uri: str
    name: str | None = None  # registered model name (team-qualified) for models:/ refs
    alias: str | None = None
    version: str | None = None

    @property
    def is_registry(self) -> bool:
        return self.name is not None

    @property
    def base_name(self) -> str | None:
        return split_name(self.name)[1] if self.name else None

    @property
    def team(self) -> str:
        return split_name(self.name)[0] if self.name else ""


def check_base_name(name: str) -> str:
    """Return ``name`` if it is a valid base model name, else raise InvalidInputError."""
    if not BASE_NAME_PATTERN.match(name):
        raise InvalidInputError(
            f"model name {name!r} must start with a letter or digit and use only letters, digits, "
            "'-' and '_' (at most 63 characters)",
            field="name",
        )
    return name


def qualified_name(name: str, team: str = "") -> str:
    """The registered-model name for base ``name`` in ``team`` (``wine`` or ``team-a.wine``)."""
    if TEAM_SEPARATOR in name:
        owner, base = split_name(name)
        if team and owner != team:
            raise PermissionDeniedError(
                f"model {name!r} belongs to team {owner!r}, not to team {team!r}", field="name"
            )
        return name
    check_base_name(name)
    return f"{team}{TEAM_SEPARATOR}{name}" if team else name


def split_name(registered_name: str) -> tuple[str, str]:
    """Split a registered-model name into ``(team, base)``; team is ``""`` when there is none."""
    team, sep, base = registered_name.rpartition(TEAM_SEPARATOR)
    return (team, base) if sep else ("", registered_name)


def team_experiment(base: str, registered_name: str) -> str:
    """The model's team's own copy of a shared experiment: ``team-a.mlcycle-batch`` for ``team-a.wine``.

    With MLflow's auth, whoever creates an experiment owns it; one ``mlcycle-batch`` for every team would
    belong to the first team that ran a batch job, so each team logs into its own. A model without a
    team (single-tenant): ``base``.
    """
    team = split_name(registered_name)[0]
    return f"{team}{TEAM_SEPARATOR}{base}" if team else base


def parse_model_ref(ref: str, team: str = "") -> ModelRef:
    """Parse a model reference or its shorthand; qualify bare names with ``team``.

    Raises:
        InvalidInputError: the reference is empty or malformed (``field`` is ``model``).
        PermissionDeniedError: it names another team's model.
    """
    ref = ref.strip()
    if not ref:
        raise InvalidInputError("model reference is empty", field="model")
    if "://" in ref and not ref.startswith("models:/"):
        return ModelRef(uri=ref)
    if ref.startswith("runs:/") or (":" in ref and not ref.startswith("models:/")):
        return ModelRef(uri=ref)
    body = ref.removeprefix("models:/").strip("/")
    if "@" in body:
        name, alias = body.split("@", 1)
        if not ALIAS_PATTERN.match(alias):
            raise InvalidInputError(f"alias {alias!r} in {ref!r} is not a valid alias", field="model")
        name = qualified_name(name, team)
        return ModelRef(uri=f"models:/{name}@{alias}", name=name, alias=alias)
    if "/" in body:
        name, version = body.rsplit("/", 1)
        if not version.isdigit():
            raise InvalidInputError(
                f"{ref!r} must end in a version number or name an @alias", field="model"
            )
        name = qualified_name(name, team)
        return ModelRef(uri=f"models:/{name}/{version}", name=name, version=version)
    raise InvalidInputError(
        f"model reference {ref!r} needs an alias or a version, e.g. models:/{body}@champion", field="model"
    )
