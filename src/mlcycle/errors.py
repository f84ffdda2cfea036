"""One exception hierarchy for mlcycle.

Every error knows its HTTP meaning, so the predictor, the CLI and the components can turn it into the
right answer without guessing: a client's mistake is a 4xx with a message that names the field, a model
that is not there is a 404, a server that is not ready is a 503, and only real faults are 500.
Wrap a lower-level exception with ``raise SomeError(...) from e`` so the cause is kept.
"""

from __future__ import annotations


class MlcycleError(Exception):
    """Base class of every error mlcycle raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """The JSON error body the predictor and the CLI's ``--json`` output use."""
        body = {"error": self.message, "type": type(self).__name__}
        if self.field is not None:
            body["field"] = self.field
        return body


class ConfigError(MlcycleError):
    """A setting is missing or wrong; the message says which one and how to set it."""

    http_status = 500


class InvalidInputError(MlcycleError):
    """The caller sent something that cannot be used (HTTP 400)."""

    http_status = 400


class DataValidationError(InvalidInputError):
    """A data set broke a schema or quality rule; ``field`` is the column, ``rule`` the rule."""

    def __init__(self, message: str, *, field: str | None = None, rule: str) -> None:
        super().__init__(message, field=field)
        self.rule = rule

    def to_dict(self) -> dict[str, str]:
        body = super().to_dict()
        body["rule"] = self.rule
        return body


class PayloadTooLargeError(InvalidInputError):
    """A request or batch is larger than the configured limit (HTTP 413)."""

    http_status = 413


class AuthenticationError(MlcycleError):
    """Missing or wrong credentials (HTTP 401). The message never repeats the credential."""

    http_status = 401


class PermissionDeniedError(MlcycleError):
    """Valid credentials, or a valid team, acting outside what it may touch (HTTP 403)."""

    http_status = 403


class ModelNotFoundError(MlcycleError):
    """A model, version or alias does not exist (HTTP 404)."""

    http_status = 404


class ModelPredictionError(MlcycleError):
    """A model raised while predicting (not a client mistake MLflow or mlcycle recognised): HTTP 500,
    with the exception's type and message."""

    http_status = 500


class ModelNotServableError(MlcycleError):
    """A model cannot be served in this environment (its requirements do not hold): HTTP 503 not-ready."""

    http_status = 503


class ModelNotReadyError(MlcycleError):
    """The model exists but is not loaded yet, or is being replaced (HTTP 503)."""

    http_status = 503


class NotImplementedOperationError(MlcycleError):
    """The server knows the request but does not offer it (``:explain`` without an explainer)."""

    http_status = 501


class ServabilityError(MlcycleError):
    """A model version cannot be served by this serving code; promotion is refused."""

    http_status = 409


class ApprovalRequiredError(MlcycleError):
    """A protected environment needs an approval that the version does not have."""

    http_status = 403


class RegistryUnavailableError(MlcycleError):
    """The model registry (MLflow, or its artifact store) did not answer after retries (HTTP 503).

    An outage, never a verdict about a model: nothing is decided or recorded because of it; retry later.
    """

    http_status = 503
