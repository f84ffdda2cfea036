"""``mlcycle promote`` / ``mlcycle rollback`` from Python: thin names for :mod:`mlcycle.release`.

A running predictor follows the ``champion`` alias, so these are all a local promotion or rollback
needs. The rules (gate passed, servable, standing approval where champion serves a protected
environment, compare-and-set, audit) live in :mod:`mlcycle.release` only; this module adds none.
"""

from __future__ import annotations

from mlcycle.registry.versions import PREVIOUS_CHAMPION_TAG as TAG_PREVIOUS
from mlcycle.release import (
    TAG_ACTION,
    TAG_AT,
    TAG_BY,
    TAG_REASON,
    TAG_ROLLED_BACK_AT,
    TAG_ROLLED_BACK_BY,
    TAG_SERVABILITY,
    AliasMove,
    promote,
    rollback,
)

__all__ = ["TAG_ACTION", "TAG_AT", "TAG_BY", "TAG_PREVIOUS", "TAG_REASON", "TAG_ROLLED_BACK_AT", "TAG_ROLLED_BACK_BY",
           "TAG_SERVABILITY", "AliasMove", "promote", "rollback"]
