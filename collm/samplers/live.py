"""A live model behind a policy: each round's requests as batched generate calls."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from collm.answers import extract_all
from collm.budget import Budget
from collm.flops import inference_flops
from collm.samplers.base import Draw, Sampler, as_number
from collm.types import SamplingParams, Usage, sampling
from collm.verifiers.arithmetic import check_arithmetic

MAX_THREADS = 256  # prompts running their policy at once (each waits on the engine most of the time)
LOOKAHEAD = 2  # samples a prompt may run ahead of its policy while the engine has rows to spare
GREEDY_AHEAD = 1  # of those, how many may start with the prompt's greedy pass (before any decision)
BUSY = 4  # an engine decoding max_rows // BUSY rows or more is busy: no samples on spec


class LiveSampler(Sampler):
    """Runs on a Backend.

    run(policy): on a backend that batches concurrent calls (thread_safe: the
    llama.cpp engine, a remote upstream), every prompt runs the policy on its
    own, in its own thread, against the batch's one budget (a shared Meter):
    the engine decodes all prompts' requests together, and a prompt's next
    round starts as soon as its own last one ends, not when the slowest prompt
    of the batch is done. Elsewhere the policy runs round by round over the
    batch: one batched generate call per round and sample count. Without a
    budget that binds, both give each prompt the same draws; under a binding
    budget the concurrent run serves requests as they come, the round-based
    one in the policy's order of priority.

    A prompt's samples are drawn as sample indices 0, 1, 2, ... of its own
    random streams (Backend.generate's offsets), so the first m samples a
    policy gets for a prompt are the m samples uniform best-of-m draws for it
    with the same seed. max_per_prompt caps the generations of any prompt
    (greedy pass included), as a server caps a request.

    Running ahead: a policy that asks one sample at a time makes a chain of
    generations, and a few prompts alone leave most of the engine's batch
    idle (a CPU decodes 20 rows nearly as fast as 5). On an engine that says
    how many rows it decodes at once (max_rows) and can cut a call
    (supports_cancel), each prompt keeps up to `lookahead` of its next
    samples decoding beside the one its policy waits for (LOOKAHEAD at most,
    only while (prompts still running) x (1 + lookahead) rows fit, and only
    while the engine decodes fewer than a quarter of its rows: a server's
    concurrent requests, or a big batch, already fill the batch). The policy sees exactly
    the draws it would see without (the same sample indices); each sample
    run ahead holds its worst case in the budget like any request, and those
    the policy never asks for are cut when it stops, what they decoded
    counted in the prompt's usage and FLOPs (ran_ahead_unused says how many).

    Rounds-bound batches (rounds_bound(): a few prompts on an idle engine):
    on a CPU a step of 20 rows takes about 4x one of a single row, so a
    prompt's chain of generations, not the FLOPs, sets the wall time. There
    each prompt's first sample starts beside its greedy pass (wasted, and
    counted, when the policy stops after greedy), and the policy steps far
    (Marginal step "auto": fewer, larger steps at a price calibrated to the
    same budget)."""

    prefill_every_call = True

    def __init__(self, backend, prompts, task, params: SamplingParams | None = None, *, budget: Budget | None = None,
                 prompt_tokens=None, q_tokens=None, max_per_prompt: int | None = None, meter=None,
                 lookahead: int | None = None):
        self.backend, self.prompts, self.task = backend, list(prompts), task
        self.sampling = sampling(params)
        if prompt_tokens is None:
            counts = [backend.count_prompt_tokens(p) for p in self.prompts]
            prompt_tokens, q_tokens = [c[0] for c in counts], [c[1] for c in counts]
        super().__init__(prompt_tokens, q_tokens, backend.params, self.sampling.max_tokens, budget, meter)
        self.max_per_prompt = max_per_prompt
        self.sampled = np.zeros(self.P, np.int64)  # samples drawn per prompt (the greedy pass is not one)
        self.completions: list[list] = [[] for _ in self.prompts]
        self.usage: list[Usage | None] = [None] * self.P
        self.unused = np.zeros(self.P, np.int64)  # samples run ahead that the policy never asked for
        self._scores = None
        self.lookahead = LOOKAHEAD if lookahead is None else int(lookahead)
        self.greedy_ahead = GREEDY_AHEAD
        self._ahead: dict[int, tuple] = {}  # sample index -> (future, hold, cancel event), one prompt's
        self._pool: ThreadPoolExecutor | None = None
        self._active = [self.P]  # prompts whose policy still runs (shared by a batch's parts)
        self._rounds_bound: list = [None]  # rounds_bound(), once decided (shared by a batch's parts)

    def _width(self) -> int:
        """How many samples this prompt may run ahead now: rows to spare over the prompts still running."""
        rows = getattr(self.backend, "max_rows", None)
        if self.lookahead < 1 or not rows or not getattr(self.backend, "supports_cancel", False):
            return 0
        busy = getattr(self.backend, "rows_in_use", None)
        if busy is not None and busy() >= int(rows) // BUSY:  # the batch is full enough: no samples on spec
            return 0
        return max(0, min(self.lookahead, int(rows) // max(self._active[0], 1) - 1))

    def rounds_bound(self) -> bool:
        """Whether rounds, not rows, set this batch's wall time: when it
        started, the rows the engine was already decoding plus two per
        prompt (its greedy pass and a sample beside it) came to at most half
        the engine's rows (a few prompts alone). Then each greedy pass starts
        with GREEDY_AHEAD samples beside it, and a policy takes its samples in
        fewer, larger steps (the Marginal policy's step "auto"). Decided once
        per batch, so that the policy's steps do not depend on timing."""
        if self._rounds_bound[0] is None:
            rows = getattr(self.backend, "max_rows", None)
            busy = getattr(self.backend, "rows_in_use", None)
            self._rounds_bound[0] = bool(rows) and busy is not None \
                and busy() + self.P * (1 + self.greedy_ahead) <= int(rows) // 2
        return self._rounds_bound[0]

    def run(self, policy) -> None:
        if not self.backend.thread_safe:
            return policy.run(self)
        if self.P < 2:
            with ThreadPoolExecutor(max_workers=max(1, self._width()), thread_name_prefix="collm-ahead") as pool:
                self._pool = pool
                try:
                    return policy.run(self)
                finally:
                    self._stop_ahead()
        parts = [LiveSampler(self.backend, [p], self.task, self.sampling, prompt_tokens=self.prompt_tokens[j:j + 1],
                             q_tokens=self.q_tokens[j:j + 1], max_per_prompt=self.max_per_prompt, meter=self.meter,
                             lookahead=self.lookahead)
                 for j, p in enumerate(self.prompts)]
        self.rounds_bound()
        for part in parts:
            part._active, part._rounds_bound = self._active, self._rounds_bound
        # every prompt's first generation is held for it up front, as the round-based
        # run gives every prompt its first (greedy) generation before any second one
        for part in parts:
            w = part.worst_case(0, 1)
            if self.meter.reserve(w, 1):
                part.prepaid[0] = (w, 1)
        if self._scores is not None:  # prompt scores already measured: the parts need not ask again
            for part, sc in zip(parts, self._scores):
                part._scores = [sc]
        ahead = max(1, min(len(parts) * self.lookahead, MAX_THREADS))
        with ThreadPoolExecutor(max_workers=min(len(parts), MAX_THREADS), thread_name_prefix="collm-prompt") as ex, \
                ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="collm-ahead") as pool:
            for part in parts:
                part._pool = pool
            futures = [ex.submit(part._run_one, policy) for part in parts]
            for f in futures:
                f.exception()  # wait for every prompt to stop
        for part in parts:  # holds a prompt never used
            for w, k in part.prepaid.values():
                self.meter.settle(w, k, 0.0, 0)
        for f in futures:
            f.result()  # the first failure
        for j, part in enumerate(parts):
            self.flops[j], self.est_flops[j] = part.flops[0], part.est_flops[0]
            self.gens[j], self.prefilled[j], self.sampled[j] = part.gens[0], part.prefilled[0], part.sampled[0]
            self.draws[j], self.completions[j], self.usage[j] = part.draws[0], part.completions[0], part.usage[0]
            self.unused[j] = part.unused[0]
            self.calls = max(self.calls, part.calls)

    def _run_one(self, policy) -> None:
        try:
            policy.run(self)
        finally:
            self._stop_ahead()
            with self.meter.lock:
                self._active[0] -= 1

    # ---- running ahead (one prompt's sampler, in its own thread) ----
    def _run_ahead(self, most: int | None = None) -> None:
        """Start this prompt's next samples, up to `lookahead` beyond those asked for, as the budget allows."""
        if self._pool is None or self.P != 1:
            return
        while len(self._ahead) < min(self._width(), self.lookahead if most is None else most):
            r = int(self.sampled[0]) + len(self._ahead)
            if self.available()[0] <= len(self._ahead):
                return
            w = self.worst_case(0, 1)
            if not self.meter.reserve(w, 1):
                return
            cancel = threading.Event()
            fut = self._pool.submit(self.backend.generate, [self.prompts[0]], 1, self.sampling, offsets=[r],
                                    cancel=cancel)
            self._ahead[r] = (fut, w, cancel)

    def _stop_ahead(self) -> None:
        """The policy is done: cut the samples still running ahead and count what they cost."""
        for fut, _, cancel in self._ahead.values():
            cancel.set()
        for fut, w, _ in self._ahead.values():
            try:
                u = fut.result()[0].usage
            except Exception as e:  # noqa: BLE001  # cut: what it had computed (the llama.cpp engine says), else its worst case
                tokens = (getattr(e, "prefilled", None), getattr(e, "decoded", None))
                u = Usage(tokens[0], tokens[1], inference_flops(self.params, sum(tokens))) if None not in tokens \
                    else Usage(0, 0, w)
            self.usage[0] = (self.usage[0] or Usage()) + u
            self.flops[0] += u.flops
            self.unused[0] += 1
            self.meter.settle(w, 1, float(u.flops), 0)
        self._ahead.clear()

    def request(self, idx, ks, greedy: bool = False) -> np.ndarray:
        if self._pool is None or self.P != 1 or (self._width() < 1 and not self._ahead):
            return super().request(idx, ks, greedy)
        idx = np.atleast_1d(np.asarray(idx, np.int64))
        if greedy or len(idx) == 0:
            if greedy and len(idx) and self.rounds_bound():
                self._run_ahead(self.greedy_ahead)
            got = super().request(idx, ks, greedy)
            self._run_ahead()
            return got
        first = int(self.sampled[0])
        k = min(int(np.atleast_1d(ks)[0]), int(self.available()[0]))
        ahead = []
        while len(ahead) < k and first + len(ahead) in self._ahead:
            ahead.append(self._ahead.pop(first + len(ahead)))
        rest = k - len(ahead)
        held = None
        if rest > 0:  # the rest through the ordinary way: a hold of its own, then a call from here
            self._held = []
            kept, kk = self.admit([0], [rest])
            held = self._held[0] if len(kept) else None
            rest = int(kk[0]) if len(kept) else 0
        if not ahead and rest == 0:
            return np.zeros(0, np.int64)
        try:
            own = self.backend.generate([self.prompts[0]], rest, self.sampling, offsets=[first + len(ahead)])[0] \
                if rest else None
            gens = [fut.result()[0] for fut, _, _ in ahead]
        except BaseException:
            for i, item in enumerate(ahead):  # back where they were: counted when the prompt stops
                self._ahead[first + i] = item
            if held is not None:
                self.meter.settle(held[0], held[1], 0.0, 0)
            raise
        self.calls += 1
        for g, (_, w, _) in zip(gens, ahead):
            self._take(g, w, 1)
        if own is not None:
            self._take(own, held[0], rest)
        self._run_ahead()
        return np.zeros(1, np.int64)

    def _take(self, g, hold: float, k: int) -> None:
        """Samples the policy asked for, arrived: their draws, usage and cost."""
        self.sampled[0] += k
        self.completions[0].extend(g.completions)
        self.usage[0] = (self.usage[0] or Usage()) + g.usage
        self.flops[0] += float(g.usage.flops)
        self.meter.settle(hold, k, float(g.usage.flops), k)
        self.prefilled[0] = True
        self.gens[0] += k
        self.draws[0].extend(self._draws(g, False))

    def available(self) -> np.ndarray:
        """Generations each prompt may still have under max_per_prompt."""
        if self.max_per_prompt is None:
            return np.full(self.P, 10**9)
        return np.maximum(self.max_per_prompt - self.gens, 0)

    def admit(self, idx, ks):
        left = self.available()
        capped = [min(int(k), int(left[int(j)])) for j, k in zip(np.atleast_1d(idx), np.broadcast_to(ks, np.shape(idx)))]
        return super().admit(idx, capped)

    def _generate(self, idx, ks, greedy):
        out: dict[int, list[Draw]] = {}
        groups: dict[int, list[int]] = defaultdict(list)
        for j, k in zip(idx, ks):
            groups[int(k)].append(int(j))
        params = self.sampling.as_greedy() if greedy else self.sampling
        for k, js in sorted(groups.items()):
            gens = self.backend.generate([self.prompts[j] for j in js], k, params,
                                         offsets=None if greedy else [int(self.sampled[j]) for j in js])
            for j, g in zip(js, gens):
                if not greedy:
                    self.sampled[j] += k
                self.completions[j].extend(g.completions)
                self.usage[j] = (self.usage[j] or Usage()) + g.usage
                self._actual[j] = float(g.usage.flops)
                out[j] = self._draws(g, greedy)
        return [out[int(j)] for j in idx]

    def _draws(self, g, greedy: bool) -> list[Draw]:
        answers = extract_all(g.completions, self.task)
        return [Draw(a, c.tokens, c.logprob, not c.finished, greedy, as_number(a), check_arithmetic(c.text).wrong)
                for a, c in zip(answers, g.completions)]

    def _score(self):
        if self._scores is None:
            self._scores = self.backend.score_prompt(self.prompts)
        return self._scores

    def signal(self, name, k=32):
        if name in ("prefix_entropy", "prompt_nll"):
            sc = self._score()
            src = [s.q_entropy[:k] for s in sc] if name == "prefix_entropy" else [s.q_nll for s in sc]
            vals = np.array([float(np.mean(x)) if len(x) else 0.0 for x in src])
            n = np.array([len(x) for x in src])
            return vals, inference_flops(self.params, n).astype(float)
        return super().signal(name, k)
