"""A token bucket: capacity C, refilled at r per second, for streams of requests.

The server takes FLOPs (or tokens) from it before spending them; a request
that cannot be paid now learns how long until it can (Retry-After).
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, capacity: float, refill_per_s: float, clock=time.monotonic):
        if capacity <= 0 or refill_per_s < 0:
            raise ValueError("capacity must be > 0 and refill_per_s >= 0")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._clock = clock
        self._level = float(capacity)
        self._t = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._t) * self.refill_per_s)
        self._t = now

    @property
    def level(self) -> float:
        with self._lock:
            self._refill()
            return self._level

    def try_take(self, amount: float) -> bool:
        """Take `amount` if the bucket holds it; never goes below zero."""
        with self._lock:
            self._refill()
            if amount <= self._level:
                self._level -= amount
                return True
            return False

    def take_up_to(self, amount: float) -> float:
        """Take as much of `amount` as is there; returns what was taken."""
        with self._lock:
            self._refill()
            got = min(amount, self._level)
            self._level -= got
            return got

    def refund(self, amount: float) -> None:
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level + amount)

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` could be taken (inf if it exceeds capacity)."""
        with self._lock:
            self._refill()
            if amount <= self._level:
                return 0.0
            if amount > self.capacity or self.refill_per_s == 0:
                return float("inf")
            return (amount - self._level) / self.refill_per_s
