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
from collm.types import SamplingParams


class Cancelled(Exception):
    """The request was cancelled (client gone or timed out); its samples are dropped."""


class ScopedBackend(Backend):
    def __init__(self, inner: Backend, cancel: threading.Event, lock: threading.Lock | None):
        self.inner = inner
        self.cancel = cancel
        self.lock = lock
        self.name, self.params = inner.name, inner.params
        self.context_length, self.model_id = inner.context_length, inner.model_id
        self.tokenizes, self.template, self.thread_safe = inner.tokenizes, inner.template, inner.thread_safe

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

    def generate(self, prompts: Sequence, n: int = 1, params: SamplingParams | None = None, *,
                 offsets: Sequence[int] | None = None):
        return self._call(self.inner.generate, prompts, n, params, offsets=offsets)

    def score_prompt(self, prompts: Sequence):
        try:
            return self._call(self.inner.score_prompt, prompts)
        except NotImplementedError as e:
            raise CollmError(f"backend {self.inner.name} cannot score prompts: {e}") from None

    def encode(self, prompt):
        return self._locked(self.inner.encode, prompt)

    def count_prompt_tokens(self, prompt):
        return self._locked(self.inner.count_prompt_tokens, prompt)

    def _locked(self, fn, *args):
        if self.lock is None:
            return fn(*args)
        with self.lock:
            return fn(*args)

    def __getattr__(self, name):  # an engine's extras (model_name, resolved...), under the same lock
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
