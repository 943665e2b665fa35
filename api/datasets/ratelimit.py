"""Pacing an OpenAI-compatible teacher: a token bucket (requests_per_minute) shared by the
job's worker threads, and the back-off after HTTP 429 (Retry-After honoured, bounded)."""

import email.utils
import threading
import time
from collections.abc import Callable

MAX_RETRY_AFTER = 120.0  # never wait longer than this on one Retry-After


class TokenBucket:
    """`rate` requests per minute, at most `burst` at once; acquire() blocks until one is due.
    Its clock and sleep are injectable so a test can run it without waiting."""

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 60.0 / per_minute
        self.burst = float(max(1, burst))
        self.clock, self.sleep = clock, sleep
        self.tokens = self.burst
        self.stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; returns the seconds waited."""
        with self._lock:  # waiting inside the lock keeps the callers in order
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.interval)
            self.stamp = now
            wait = 0.0
            if self.tokens < 1:
                wait = (1 - self.tokens) * self.interval
                self.sleep(wait)
                self.stamp = self.clock()
                self.tokens = 1.0
            self.tokens -= 1
            return wait


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if value:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(value)))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
            if parsed is not None:
                return min(MAX_RETRY_AFTER, max(0.0, parsed.timestamp() - time.time()))
    return min(MAX_RETRY_AFTER, default)
