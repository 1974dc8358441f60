"""What the tests share: where the shared sample bank is, the bench helpers
on the import path, and one deterministic fake backend for the logic tests
(the real model runs in the tests marked `model`)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from collm.backends.base import Backend
from collm.errors import CollmError
from collm.flops import inference_flops
from collm.prompts import Prompt, as_prompt
from collm.types import Completion, Generation, PromptScore, SamplingParams, Usage

ROOT = Path(__file__).resolve().parents[1]
SHARED_BANK = ROOT.parent / "shared" / "banks" / "gsm8k_test_qwen25coder05b_k32_part1.jsonl"
needs_shared_bank = pytest.mark.skipif(not SHARED_BANK.is_file(), reason="the shared bank is not on this machine")

sys.path.insert(0, str(ROOT / "bench"))  # bench-only helpers that tests check (intervals, rm_table)


@dataclass
class Call:
    prompts: list[Prompt]
    n: int
    params: SamplingParams
    offsets: list[int] | None
    usage: Usage


class FakeBackend(Backend):
    """A deterministic stand-in model. Completion j of a call for prompt p is
    reply(p, j, params); by default "step j: so \\boxed{A}" in 5 tokens with
    log-prob -1 per token, A = answers[j % len(answers)] when sampling and
    answers[0] when greedy. A prompt costs prompt_tokens(p) tokens, prefilled
    once per call. score_prompt gives every one of the 4 question tokens the
    entropy entropy(question) (default len(question) / 10).

    Every call is recorded in `calls`; peak is the most calls at once. fail
    raises on every call, crash_after once that many calls were made, block
    makes each call wait for the event (up to 5 s)."""

    name = "fake"
    params = 1000
    context_length = 100_000
    answers = ("42",)
    tokens_per_reply = 5

    def __init__(self, *, fail: Exception | None = None, block: threading.Event | None = None,
                 crash_after: int | None = None):
        self.fail, self.block, self.crash_after = fail, block, crash_after
        self.calls: list[Call] = []
        self.active = self.peak = 0
        self._mu = threading.Lock()
        self.cancelled = threading.Event()

    # ---- what a subclass changes ----
    def replies(self, prompt: Prompt, n: int, params: SamplingParams) -> list[Completion]:
        return [self.reply(prompt, j, params) for j in range(n)]

    def reply(self, prompt: Prompt, j: int, params: SamplingParams) -> Completion:
        a = self.answers[j % len(self.answers)] if params.temperature > 0 else self.answers[0]
        return Completion(f"step {j}: so \\boxed{{{a}}}", self.tokens_per_reply, -1.0 * self.tokens_per_reply)

    def prompt_tokens(self, prompt: Prompt) -> int:
        return 10

    def entropy(self, question: str) -> float:
        return len(question) / 10

    # ---- the Backend interface ----
    def generate(self, prompts, n=1, params=None, *, offsets=None):
        prompts, params = self.check_request(prompts, n, params)
        with self._mu:
            if self.crash_after is not None and len(self.calls) >= self.crash_after:
                raise RuntimeError("engine crashed")
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.block is not None:
                self.block.wait(5)
            if self.fail is not None:
                raise self.fail
            out, total = [], Usage()
            for p in prompts:
                comps = self.replies(p, n, params)
                pt = self.prompt_tokens(p)
                done = sum(c.tokens for c in comps)
                u = Usage(pt, done, inference_flops(self.params, pt + done))
                total += u
                out.append(Generation(comps, u))
            self.calls.append(Call(list(prompts), n, params, None if offsets is None else list(offsets), total))
            return out
        finally:
            with self._mu:
                self.active -= 1

    @property
    def asked(self) -> list[tuple]:
        """(prompt id, n, temperature) of every prompt of every call."""
        return [(p.id, c.n, c.params.temperature) for c in self.calls for p in c.prompts]

    def score_prompt(self, prompts):
        out = []
        for p in prompts:
            e = self.entropy(as_prompt(p).question)
            out.append(PromptScore([0] * 5, [None] + [e] * 4, [None] + [-1.0] * 4, (1, 5),
                                   Usage(5, 0, inference_flops(self.params, 5))))
        return out


class CancellableFake(FakeBackend):
    """Like the remote backend: takes the request's cancel event and stops when it is set."""

    supports_cancel = True
    thread_safe = True

    def generate(self, prompts, n=1, params=None, *, offsets=None, cancel=None):
        if cancel is not None and cancel.wait(5):
            self.cancelled.set()
            raise CollmError("cancelled")
        return super().generate(prompts, n, params, offsets=offsets)
