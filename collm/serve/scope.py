"""A per-request view of the backend that can be cancelled.

Strategies are synchronous and run in worker threads. When a client goes
away (or its request times out) the server sets the request's cancel event:
the next backend call raises Cancelled, and a backend that can stop work
already under way (the remote backend: it cancels its HTTP requests, and the
upstream drops them) is handed the event too. Embedded engines are not
thread-safe, so calls to them are serialised by one lock per backend.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from collm.backends.base import Backend
from collm.errors import CollmError


class Cancelled(Exception):
    """The request was cancelled (client gone or timed out); its samples are dropped."""


class ScopedBackend(Backend):
    def __init__(self, inner: Backend, cancel: threading.Event, lock: threading.Lock | None):
        self.inner = inner
        self.cancel = cancel
        self.lock = lock
        self.name, self.params = inner.name, inner.params
        self.context_length, self.model_id = inner.context_length, inner.model_id

    def _call(self, fn, *args, **kwargs):
        if self.cancel.is_set():
            raise Cancelled("request cancelled")
        if getattr(self.inner, "supports_cancel", False):
            kwargs["cancel"] = self.cancel
        try:
            if self.lock is None:
                return fn(*args, **kwargs)
            with self.lock:
                if self.cancel.is_set():
                    raise Cancelled("request cancelled")
                return fn(*args, **kwargs)
        except Exception:
            if self.cancel.is_set():  # whatever broke, the request is gone: say so
                raise Cancelled("request cancelled") from None
            raise

    def generate(self, prompts: Sequence, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, seed: int | None = None, stop: Sequence[str] | None = None, top_k: int = 0):
        return self._call(self.inner.generate, prompts, n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                          max_tokens=max_tokens, seed=seed, stop=stop)

    def score_prompt(self, prompts: Sequence):
        try:
            return self._call(self.inner.score_prompt, prompts)
        except NotImplementedError as e:
            raise CollmError(f"backend {self.inner.name} cannot score prompts: {e}") from None

    def __getattr__(self, name):  # an engine's extras (count_prompt_tokens, model_name...), under the same lock
        inner = self.__dict__.get("inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(inner, name)
        lock = self.__dict__.get("lock")
        if not callable(attr) or lock is None:
            return attr

        def locked(*args, **kwargs):
            with lock:
                return attr(*args, **kwargs)

        return locked
