"""Bounded retries with exponential backoff and seeded jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class RetryPolicy:
    """How often and how patiently a channel retries one alert.

    The wait after failed attempt ``n`` (1-based) is ``base_delay * multiplier ** (n - 1)``,
    capped at ``max_delay``, then scaled by a random factor in ``[1 - jitter, 1 + jitter]``
    drawn from ``rng`` (seed it for repeatable waits).

    >>> policy = RetryPolicy(max_attempts=4, base_delay=1.0, jitter=0.0)
    >>> [policy.delay(n) for n in (1, 2, 3)]
    [1.0, 2.0, 4.0]
    >>> jittered = RetryPolicy(base_delay=1.0, jitter=0.5, rng=random.Random(7))
    >>> 0.5 <= jittered.delay(1) <= 1.5
    True
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be non-negative and the multiplier at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` before the next one."""
        base = min(self.max_delay, self.base_delay * self.multiplier ** max(0, attempt - 1))
        if self.jitter:
            base *= self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(0.0, base)
