"""A per-reviewer token bucket: the reviewer web app's rate limit.

Written here rather than taken from a library (slowapi, limits) because the whole rule is a dozen
lines and keyed by the signed-in reviewer, not by client address, which those libraries assume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

# Requests per second per reviewer: a person makes about one; the load benchmark's target (200 judgments/s
# from 8 clients, two requests each) needs 50 per client, so the default leaves it twice that.
DEFAULT_RATE_LIMIT = 100.0
DEFAULT_BURST = 200


class TokenBuckets:
    """One bucket per key holding up to ``burst`` tokens, refilled at ``rate`` tokens per second.

    Each request takes one token; a request that finds its bucket empty is refused. Thread-safe:
    the app's endpoints run in a thread pool.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1 (got rate={rate}, burst={burst})")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, time of last refill)
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float:
        """Take a token from ``key``'s bucket.

        Returns:
            0.0 when a token was taken; otherwise the seconds until one will be available.
        """
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
