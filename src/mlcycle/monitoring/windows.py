"""Time windows: ``--since 1h`` and friends, always in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlcycle.errors import InvalidInputError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, field: str = "since") -> timedelta:
    """``"90s"``, ``"10m"``, ``"1h"``, ``"2d"``, ``"1w"`` as a timedelta.

    Raises:
        InvalidInputError: not a positive number followed by one of s, m, h, d, w.
    """
    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise InvalidInputError(
            f"{text!r} is not a duration; write a positive number and a unit, e.g. 90s, 10m, 1h, 2d, 1w",
            field=field,
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str, *, field: str = "until") -> datetime:
    """An ISO-8601 time (naive means UTC) as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidInputError(f"{text!r} is not an ISO-8601 time, e.g. 2026-01-31T12:00:00Z", field=field) from e
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)``; ``start`` ``None`` means from the beginning."""

    start: datetime | None
    end: datetime

    def describe(self) -> str:
        start = self.start.isoformat() if self.start else "-inf"
        return f"[{start}, {self.end.isoformat()})"


def window(since: str | None = None, until: str | None = None, *, now: datetime | None = None) -> Window:
    """The window ending at ``until`` (default now) and starting ``since`` before it (default: all).

    ``since`` is a duration (``1h``) or an ISO time.
    """
    end = parse_time(until) if until else (now or datetime.now(UTC))
    if not since:
        return Window(start=None, end=end)
    start = end - parse_duration(since) if _DURATION.match(since) else parse_time(since, field="since")
    if start >= end:
        raise InvalidInputError(
            f"window start {start.isoformat()} is not before its end {end.isoformat()}", field="since"
        )
    return Window(start=start, end=end)
