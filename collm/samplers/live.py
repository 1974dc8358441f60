"""A live model behind a policy: each round's requests as batched generate calls."""

from __future__ import annotations

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
    (greedy pass included), as a server caps a request."""

    prefill_every_call = True

    def __init__(self, backend, prompts, task, params: SamplingParams | None = None, *, budget: Budget | None = None,
                 prompt_tokens=None, q_tokens=None, max_per_prompt: int | None = None, meter=None):
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
        self._scores = None

    def run(self, policy) -> None:
        if not self.backend.thread_safe or self.P < 2:
            return policy.run(self)
        parts = [LiveSampler(self.backend, [p], self.task, self.sampling, prompt_tokens=self.prompt_tokens[j:j + 1],
                             q_tokens=self.q_tokens[j:j + 1], max_per_prompt=self.max_per_prompt, meter=self.meter)
                 for j, p in enumerate(self.prompts)]
        # every prompt's first generation is held for it up front, as the round-based
        # run gives every prompt its first (greedy) generation before any second one
        for part in parts:
            w = part.worst_case(0, 1)
            if self.meter.reserve(w, 1):
                part.prepaid[0] = (w, 1)
        if self._scores is not None:  # prompt scores already measured: the parts need not ask again
            for part, sc in zip(parts, self._scores):
                part._scores = [sc]
        with ThreadPoolExecutor(max_workers=min(len(parts), MAX_THREADS), thread_name_prefix="collm-prompt") as ex:
            futures = [ex.submit(policy.run, part) for part in parts]
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
            self.calls = max(self.calls, part.calls)

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
                answers = extract_all(g.completions, self.task)
                if not greedy:
                    self.sampled[j] += k
                self.completions[j].extend(g.completions)
                self.usage[j] = (self.usage[j] or Usage()) + g.usage
                self._actual[j] = float(g.usage.flops)
                out[j] = [Draw(a, c.tokens, c.logprob, not c.finished, greedy, as_number(a),
                               check_arithmetic(c.text).wrong) for a, c in zip(answers, g.completions)]
        return [out[int(j)] for j in idx]

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
