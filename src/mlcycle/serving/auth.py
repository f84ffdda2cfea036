"""Optional API-key / bearer-token authentication for the local predictor.

This module is for the local server, or a predictor exposed without a mesh. It is off unless keys are
configured. On a cluster, leave it off and let the platform do it:

* Kubeflow's profile controller gives each team's namespace Istio ``AuthorizationPolicy`` objects, and
  the Istio ingress gateway authenticates users (oauth2-proxy/Dex) before a request reaches KServe.
* For service-to-service callers, add a ``RequestAuthentication`` (JWT issuer and JWKS) and an
  ``AuthorizationPolicy`` in the team's namespace that selects the InferenceService's pods and allows
  only the calling service accounts (``source.principals``) or token claims (``request.auth.claims``).
  Tokens never reach the predictor's code, and the namespace boundary already says the team.

Keys come from either source, or both:

* ``MLCYCLE_AUTH_KEYS_FILE``: a text file, one key per line as ``<team>:<key>``; blank lines and lines
  starting with ``#`` are ignored. The key is everything after the first ``:`` (teams have no colons).
* ``MLCYCLE_API_KEYS``: the same entries separated by commas, ``team-a:k1,team-b:k2``.

A key belongs to one team and may call only that team's models (registered names ``<team>.<name>``,
see :mod:`mlcycle.registry.uris`); a key of team ``*`` is an admin key and may call every model. A
model without a team (a local registry with no team set) may be called with any valid key.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Only SHA-256 digests of the
keys are held in memory; presented keys are compared digest-to-digest with
:func:`hmac.compare_digest` against every configured key (no early exit), and no message, log line
or principal ever contains a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle.errors import AuthenticationError, ConfigError, PermissionDeniedError
from mlcycle.registry.uris import split_name

if TYPE_CHECKING:
    from mlcycle.config import Settings

ADMIN_TEAM = "*"
_BEARER = "bearer"


@dataclass(frozen=True)
class _Key:
    team: str
    digest: bytes

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible label for logs: the first 8 hex digits of the key's SHA-256."""
        return self.digest.hex()[:8]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_key_entries(entries: Iterable[str], *, source: str) -> list[tuple[str, str]]:
    """Parse ``team:key`` entries into ``(team, key)`` pairs.

    Raises:
        ConfigError: an entry is malformed; the message names ``source`` and the entry's position,
            never the key itself.
    """
    from mlcycle.config import TEAM_PATTERN

    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(entries, start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        team, sep, key = entry.partition(":")
        team, key = team.strip(), key.strip()
        where = f"{source}, entry {number}"
        if not sep or not key:
            raise ConfigError(f"{where}: expected '<team>:<key>'", field="api_keys")
        if team != ADMIN_TEAM and not TEAM_PATTERN.match(team):
            raise ConfigError(
                f"{where}: team {team!r} must be a namespace name (lowercase letters, digits, '-') "
                f"or '{ADMIN_TEAM}' for an admin key",
                field="api_keys",
            )
        if any(ch.isspace() for ch in key):
            raise ConfigError(f"{where}: the key contains whitespace", field="api_keys")
        pairs.append((team, key))
    return pairs


class Authenticator:
    """Checks a request's credentials and that its team may call the model."""

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._keys = tuple(_Key(team=team, digest=_digest(key)) for team, key in keys)
        if not self._keys:
            raise ConfigError("an Authenticator needs at least one key", field="api_keys")

    def __repr__(self) -> str:  # never show digests either
        return f"Authenticator({len(self._keys)} keys)"

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator | None:
        """Build from ``MLCYCLE_AUTH_KEYS_FILE`` and ``MLCYCLE_API_KEYS``; None when neither is set.

        Raises:
            ConfigError: the keys file cannot be read, is malformed, or holds no key.
        """
        pairs: list[tuple[str, str]] = []
        keys_file: Path | None = settings.auth_keys_file
        if keys_file is not None:
            try:
                text = Path(keys_file).expanduser().read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(
                    f"cannot read MLCYCLE_AUTH_KEYS_FILE {str(keys_file)!r}: {e.strerror}",
                    field="auth_keys_file",
                ) from e
            pairs += parse_key_entries(text.splitlines(), source=f"keys file {str(keys_file)!r}")
            if not pairs:
                raise ConfigError(
                    f"MLCYCLE_AUTH_KEYS_FILE {str(keys_file)!r} has no '<team>:<key>' line",
                    field="auth_keys_file",
                )
        if settings.api_keys is not None:
            raw = settings.api_keys.get_secret_value()
            pairs += parse_key_entries(raw.split(","), source="MLCYCLE_API_KEYS")
        return cls(pairs) if pairs else None

    def authenticate(self, headers: Mapping[str, str], model_name: str) -> str:
        """Return the caller's principal (``<team>/key-<fingerprint>``) if it may call ``model_name``.

        Args:
            headers: the request headers (any mapping; names are matched case-insensitively).
            model_name: the registered name of the model called (``team-a.wine`` or ``wine``).

        Raises:
            AuthenticationError: no credentials, or credentials that match no key (401).
            PermissionDeniedError: a valid key of another team (403).
        """
        presented = _credential(headers)
        if presented is None:
            raise AuthenticationError("missing credentials: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = _digest(presented)
        match: _Key | None = None
        for key in self._keys:  # compare against every key: the time does not say which one matched
            if hmac.compare_digest(digest, key.digest) and match is None:
                match = key
        if match is None:
            raise AuthenticationError("invalid credentials")
        owner, _ = split_name(model_name)
        if match.team != ADMIN_TEAM and owner and owner != match.team:
            raise PermissionDeniedError(
                f"team {match.team!r} may not call model {model_name!r} of team {owner!r}", field="model"
            )
        return f"{match.team}/key-{match.fingerprint}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def _credential(headers: Mapping[str, str]) -> str | None:
    authorization = _header(headers, "Authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == _BEARER and token.strip():
            return token.strip()
    api_key = _header(headers, "X-API-Key")
    if api_key and api_key.strip():
        return api_key.strip()
    return None


class RefusalLog:
    """Refused requests logged cheaply: each one at DEBUG, and at most one INFO summary per ``every_s``.

    A flood of bad or unauthenticated requests must not become a flood of log lines (nor their cost).
    """

    def __init__(self, logger: logging.Logger, every_s: float = 60.0) -> None:
        self._log = logger
        self.every_s = every_s
        self._counts: dict[int, int] = {}
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def refused(self, status: int, message: str) -> None:
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("refused with %d: %s", status, message)
        now = time.monotonic()
        with self._lock:
            self._counts[status] = self._counts.get(status, 0) + 1
            if now - self._since < self.every_s:
                return
            counts, self._counts, since, self._since = self._counts, {}, self._since, now
        summary = ", ".join(f"{n} x {code}" for code, n in sorted(counts.items()))
        self._log.info("refused %d requests in the last %.0f s (%s)", sum(counts.values()), now - since, summary)
