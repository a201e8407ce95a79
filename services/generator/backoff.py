"""Exponential backoff with full jitter, honouring a server's Retry-After when it asks for longer."""

from __future__ import annotations

import random


def backoff_delay(
    retry_number: int, *, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
    ceiling = min(cap, base * (2 ** max(0, retry_number - 1)))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
