"""Admission control: API keys, model slots, and token buckets.

- API keys are compared in constant time (hmac.compare_digest against every
  configured key, so timing reveals neither which key nor how much matched).
  A key is never logged: requests are known by the key's index ("key1").
- Slots: at most `max_in_flight` requests use the model at once; up to
  `max_queue` more wait for a slot, and the rest get 429 at once.
- Token buckets (collm.allocation.bucket.TokenBucket), one global and one per
  API key, both refilled every second. The unit is tokens processed (prompt
  tokens once, plus every sampled token): FLOPs are 2 x params x tokens, so a
  token budget is a FLOP budget divided by a constant, and it reads the same
  for any model. A request is charged for its worst case (prompt + n x
  max_tokens) before it runs and refunded what it did not use afterwards.
- Load awareness: when requests queue up, the share of the budget a request
  may keep is load_factor = max_in_flight / (in_flight + queued), at most 1.
"""

from __future__ import annotations

import asyncio
import hmac
import math
from dataclasses import dataclass

from collm.allocation.bucket import TokenBucket


def check_api_key(header: str | None, keys: list[str]) -> str | None:
    """The caller's key id ("key1", ...) when `header` holds a configured key, else None.

    Accepts "Bearer KEY" (OpenAI clients) or the bare key. Every key is
    compared, in constant time, whatever the outcome.
    """
    if not header:
        return None
    token = header[7:].strip() if header[:7].lower() == "bearer " else header.strip()
    found = None
    given = token.encode()
    for i, key in enumerate(keys):
        if hmac.compare_digest(given, key.encode()) and found is None:
            found = f"key{i + 1}"
    return found


class Rejected(Exception):
    """A request refused for load or budget: HTTP 429 with Retry-After."""

    def __init__(self, message: str, retry_after: float, reason: str):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after)) if math.isfinite(retry_after) else 60
        self.reason = reason


class TooLarge(Exception):
    """A request that no amount of waiting makes affordable (HTTP 400)."""


@dataclass
class Charge:
    """What a request took from the buckets; refunded in part when it is done."""

    amount: float
    buckets: list[TokenBucket]

    def settle(self, used: float) -> None:
        """Refund what was not used; take what was used beyond the charge (an adaptive
        policy re-reads its prompt every round), as far as the buckets hold it."""
        back = self.amount - used
        for b in self.buckets:
            if back > 0:
                b.refund(back)
            elif back < 0:
                b.take_up_to(-back)


class Limiter:
    def __init__(self, max_in_flight: int = 1, max_queue: int = 64,
                 bucket_capacity: float | None = None, bucket_refill_per_s: float | None = None,
                 key_capacity: float | None = None, key_refill_per_s: float | None = None):
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self._sem = asyncio.Semaphore(max_in_flight)
        self.in_flight = 0
        self.queued = 0
        self.bucket = TokenBucket(bucket_capacity, bucket_refill_per_s or 0.0) if bucket_capacity else None
        self._key_args = (key_capacity, key_refill_per_s or 0.0) if key_capacity else None
        self._key_buckets: dict[str, TokenBucket] = {}

    # ---- slots ----
    async def acquire(self) -> None:
        """Wait for a model slot (429 when the queue is full). Cancellation-safe."""
        if self._sem.locked() and self.queued >= self.max_queue:
            raise Rejected(f"server busy: {self.queued} requests already queued", 1.0, "queue_full")
        self.queued += 1
        try:
            await self._sem.acquire()
        finally:
            self.queued -= 1
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._sem.release()

    def load_factor(self) -> float:
        """Share of its budget a request keeps now: 1 when nothing waits."""
        demand = self.in_flight + self.queued
        return 1.0 if demand <= self.max_in_flight else self.max_in_flight / demand

    # ---- token buckets ----
    def buckets_for(self, key_id: str | None) -> list[TokenBucket]:
        out = [self.bucket] if self.bucket else []
        if self._key_args and key_id is not None:
            if key_id not in self._key_buckets:
                self._key_buckets[key_id] = TokenBucket(*self._key_args)
            out.append(self._key_buckets[key_id])
        return out

    def precheck(self, key_id: str | None, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse early, before queueing, a request that cannot pay for even one sample."""
        need = prompt_tokens + max_tokens
        for b in self.buckets_for(key_id):
            if need > b.capacity:
                raise TooLarge(f"this request may cost {need} tokens, more than the budget's capacity of "
                               f"{b.capacity:g}: lower max_tokens or shorten the prompt")
            wait = b.wait_time(need)
            if wait > 0:
                raise Rejected("token budget exhausted; retry later", wait, "budget")

    def charge(self, key_id: str | None, prompt_tokens: int, max_tokens: int, n: int, shrinkable: bool) -> tuple[int, Charge]:
        """Take the cost of n samples from every bucket, shrinking n to what they hold when allowed.

        Runs on the event loop thread with no await inside, so check-then-take is atomic.
        """
        buckets = self.buckets_for(key_id)
        if not buckets:
            return n, Charge(0.0, [])
        affordable = min(int((b.level - prompt_tokens) // max_tokens) for b in buckets)
        if affordable < n:
            if affordable < 1 or not shrinkable:
                need = prompt_tokens + (n if not shrinkable else 1) * max_tokens
                wait = max(b.wait_time(need) for b in buckets)
                raise Rejected("token budget exhausted; retry later", wait, "budget")
            n = affordable
        amount = float(prompt_tokens + n * max_tokens)
        for b in buckets:
            b.try_take(amount)  # cannot fail: checked above on this same thread
        return n, Charge(amount, buckets)

    @property
    def level(self) -> float:
        return self.bucket.level if self.bucket else -1.0
