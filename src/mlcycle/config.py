"""One typed settings object, fed by ``MLCYCLE_*`` environment variables and CLI flags.

Everything that differs between a laptop and a Kubeflow cluster is a setting here: where local state
lives (``MLCYCLE_HOME``), the MLflow tracking and registry URIs, the S3 endpoint (MinIO on a cluster),
the team, and the image the components run in. A wrong setting fails when it is read, with a message
that names the variable to fix.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlcycle import __version__
from mlcycle.errors import ConfigError

# A team is a Kubeflow profile is a namespace: a DNS-1123 label.
TEAM_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IMAGE_REPOSITORY = "ghcr.io/mlcycle/mlcycle"
# The image compiled into the pipeline YAML. A constant (not read from the environment) so that the
# committed YAML is the same on every machine; it follows the package version.
COMPONENT_IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"


class Settings(BaseSettings):
    """mlcycle's settings. Each field reads ``MLCYCLE_<FIELD>`` unless its description says more."""

    model_config = SettingsConfigDict(
        env_prefix="MLCYCLE_", extra="ignore", frozen=True, populate_by_name=True
    )

    home: Path = Field(default=Path(".mlcycle"), description="Local state: MLflow store, artifacts, logs.")
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI; default: a SQLite store under MLCYCLE_HOME.",
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI"),
        description="MLflow registry URI; default: the tracking URI.",
    )
    artifact_root: str | None = Field(
        default=None, description="Where new experiments put artifacts; default: MLCYCLE_HOME/artifacts."
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"),
        description="S3 endpoint for s3:// URIs (MinIO on a cluster).",
    )
    team: str = Field(default="", description="Team = Kubeflow profile = namespace; prefixes model names.")
    mlflow_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_MLFLOW_USERNAME", "MLFLOW_TRACKING_USERNAME"),
        description="MLflow user (basic auth); MLCYCLE_HOME/credentials/<team>.env holds the team's.",
    )
    mlflow_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_MLFLOW_PASSWORD", "MLFLOW_TRACKING_PASSWORD"),
        description="MLflow password (basic auth); never logged, never written into runs or YAML.",
    )
    mlflow_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MLCYCLE_MLFLOW_TOKEN", "MLFLOW_TRACKING_TOKEN"),
        description="MLflow bearer token, instead of a user and password.",
    )
    image_repository: str = Field(default=IMAGE_REPOSITORY, description="Image the components run in.")
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway for drift/performance metrics; unset: no push."
    )
    labels_uri: str | None = Field(
        default=None,
        description="Where delayed ground-truth labels go (s3:// on a cluster); default: MLCYCLE_HOME/labels.",
    )
    protected_environments: str = Field(
        default="",
        description="Comma-separated environments (e.g. 'prod') that serve only versions approved with "
        "`mlcycle approve`; empty: none protected.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"
    auth_keys_file: Path | None = Field(
        default=None,
        description="Local predictor API keys: a file of '<team>:<key>' lines (team '*' = admin).",
    )
    api_keys: SecretStr | None = Field(
        default=None, description="Local predictor API keys inline: 'team-a:key1,team-b:key2'."
    )
    serving_max_rows: int = Field(
        default=10_000, ge=1, description="Predictor: most rows one request may carry (more: HTTP 413)."
    )
    serving_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="Predictor: largest request body in bytes (more: HTTP 413 before the body is read).",
    )
    serving_batch_max_rows: int = Field(
        default=1024, ge=1, description="Predictor: most rows combined into one micro-batched predict call."
    )
    serving_batch_max_wait_ms: float = Field(
        default=0.0, ge=0, description="Predictor: how long a non-full micro-batch waits for more (0: never)."
    )
    serving_compile: bool = Field(
        default=True,
        description="Predictor: compile tree ensembles (ONNX Runtime, Treelite) where they reproduce the model.",
    )
    serving_poll_seconds: float = Field(
        default=30.0, ge=0, description="Predictor: seconds between checks that an alias moved (0: off)."
    )
    serving_payload_log: bool = Field(default=True, description="Predictor: log payloads for monitoring.")
    serving_payload_destination: str | None = Field(
        default=None, description="Payload logs: directory or s3:// prefix; default MLCYCLE_HOME/payloads."
    )
    serving_download_dir: Path | None = Field(
        default=None,
        description="Predictor: where each served version is downloaded (one directory per version, removed "
        "when it stops serving); default: <system temp>/mlcycle-models.",
    )
    serving_payload_flush_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="Payload logs: write queued rows at least this often (a SIGKILL loses at most this much).",
    )
    serving_payload_flush_rows: int = Field(
        default=5_000, ge=1, description="Payload logs: write as soon as this many rows are queued."
    )
    serving_payload_max_queued_rows: int = Field(
        default=100_000, ge=1, description="Payload logs: rows held in memory at most (more: dropped, counted)."
    )
    serving_payload_write_attempts: int = Field(
        default=3, ge=1, description="Payload logs: tries per file (exponential backoff) before rows are dropped."
    )
    serving_payload_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Payload logs: who builds and writes the files — a writer process per serving process "
        "(off the serving process's GIL: the default) or a thread of the serving process (one process less).",
    )

    @field_validator("team")
    @classmethod
    def _team_is_a_dns_label(cls, value: str) -> str:
        if value and not TEAM_PATTERN.match(value):
            raise ValueError(
                f"team {value!r} must be a Kubernetes namespace name: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters"
            )
        return value

    @property
    def mlflow_credentials_env(self) -> dict[str, str]:
        """``MLFLOW_TRACKING_USERNAME/PASSWORD`` (or ``..._TOKEN``), as MLflow's clients read them; may be empty."""
        env = {}
        if self.mlflow_username:
            env["MLFLOW_TRACKING_USERNAME"] = self.mlflow_username
        if self.mlflow_password is not None:
            env["MLFLOW_TRACKING_PASSWORD"] = self.mlflow_password.get_secret_value()
        if self.mlflow_token is not None:
            env["MLFLOW_TRACKING_TOKEN"] = self.mlflow_token.get_secret_value()
        return env

    @property
    def protected(self) -> frozenset[str]:
        """The environments that need an approval (``MLCYCLE_PROTECTED_ENVIRONMENTS``)."""
        return frozenset(e.strip() for e in self.protected_environments.split(",") if e.strip())

    @property
    def image(self) -> str:
        """The one image tag, derived from the package version."""
        return f"{self.image_repository}:{__version__}"

    @property
    def predictor_image(self) -> str:
        """The predictor image (``Dockerfile``, target ``predictor``), same version tag."""
        return f"{self.image_repository}-predictor:{__version__}"

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def effective_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def effective_registry_uri(self) -> str:
        return self.registry_uri or self.effective_tracking_uri

    @property
    def effective_artifact_root(self) -> str:
        root = self.artifact_root or str(self.home_dir / "artifacts")
        return f"{root.rstrip('/')}/{self.team}" if self.team else root

    @property
    def is_local(self) -> bool:
        """True when MLflow lives in a local SQLite store (the embedded default)."""
        return self.effective_tracking_uri.startswith("sqlite:")

    @property
    def download_dir(self) -> Path:
        import tempfile

        return self.serving_download_dir or Path(tempfile.gettempdir()) / "mlcycle-models"

    @property
    def payload_dir(self) -> Path:
        return self.home_dir / "payloads"

    @property
    def log_dir(self) -> Path:
        return self.home_dir / "logs"


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MLCYCLE_*`` variables that reproduce ``settings`` in a child process (pipeline steps)."""
    env = {
        "MLCYCLE_HOME": str(settings.home_dir),
        "MLCYCLE_TRACKING_URI": settings.effective_tracking_uri,
        "MLCYCLE_REGISTRY_URI": settings.effective_registry_uri,
        "MLCYCLE_TEAM": settings.team,
        "MLCYCLE_LOG_LEVEL": settings.log_level,
        "MLCYCLE_LOG_FORMAT": settings.log_format,
    }
    if settings.artifact_root:
        env["MLCYCLE_ARTIFACT_ROOT"] = settings.artifact_root
    if settings.s3_endpoint_url:
        env["MLCYCLE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.protected_environments:
        env["MLCYCLE_PROTECTED_ENVIRONMENTS"] = settings.protected_environments
    # The steps authenticate as this process does (the values stay in the environment: never in argv,
    # the pipeline spec or a log line, which redacts them).
    env.update(settings.mlflow_credentials_env)
    return env


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with ``overrides`` (from CLI flags) taking precedence.

    Raises:
        ConfigError: a setting has a wrong value; the message names the ``MLCYCLE_*`` variable.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f"setting MLCYCLE_{name.upper()} is invalid: {first['msg']}", field=name
        ) from e
