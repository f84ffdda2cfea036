"""Canary traffic splitting: which of a model's two versions answers a request.

Mirrors KServe's ``canaryTrafficPercent`` inside one server: ``percent`` of the requests go to the
canary. A request that carries an id (v2 ``id`` or the ``x-request-id`` header) is routed by a hash of
that id, so the same id always reaches the same version (sticky); one without an id is routed at random.
"""

from __future__ import annotations

import hashlib
import random

BUCKETS = 10_000


def validate_percent(percent: float) -> float:
    """``percent`` if it is within 0..100, else ValueError naming the bound."""
    if not 0 <= percent <= 100:
        raise ValueError(f"canary percent must be between 0 and 100, got {percent}")
    return float(percent)


def bucket(request_id: str) -> int:
    """A stable bucket in ``[0, BUCKETS)`` for a request id (the same in every process and run)."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def goes_to_canary(percent: float, request_id: str | None = None, rng: random.Random | None = None) -> bool:
    """True if this request should be answered by the canary version."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    threshold = percent * (BUCKETS / 100)
    if request_id:
        return bucket(request_id) < threshold
    return (rng or random).random() * BUCKETS < threshold
