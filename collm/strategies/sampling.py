"""Greedy decoding, and best-of-N by majority vote (self-consistency)."""

from __future__ import annotations

from collections import defaultdict

from collm.answers import extract_all
from collm.strategies.base import Strategy, per_prompt, register_strategy
from collm.types import Answer, sampling
from collm.vote import majority


def sample_grouped(backend, prompts, ns, params):
    """Generate ns[j] samples for prompt j: one backend call per distinct n, over all prompts that want it."""
    groups: dict[int, list[int]] = defaultdict(list)
    for j, n in enumerate(ns):
        groups[n].append(j)
    out = [None] * len(prompts)
    for n, idx in sorted(groups.items()):
        gens = backend.generate([prompts[j] for j in idx], n, params)
        for j, g in zip(idx, gens):
            out[j] = g
    return out


@register_strategy
class Greedy(Strategy):
    """One greedy decode per prompt (n is ignored beyond 1)."""

    name = "greedy"

    def run(self, backend, prompts, n, task, params=None, *, verifier=None):
        prompts = self.prompts(prompts)
        gens = backend.generate(prompts, 1, sampling(params).as_greedy())
        out = []
        for g in gens:
            answers = extract_all(g.completions, task)
            a, votes = majority(answers)
            out.append(Answer(a, votes, 1, self.name, g.usage, g.completions))
        return out


@register_strategy
class Majority(Strategy):
    """Best-of-N by majority vote over N samples (N = 1 is plain sampling)."""

    name = "majority"

    def run(self, backend, prompts, n, task, params=None, *, verifier=None):
        prompts = self.prompts(prompts)
        ns = per_prompt(n, len(prompts))
        gens = sample_grouped(backend, prompts, ns, sampling(params))
        out = []
        for g, k in zip(gens, ns):
            answers = extract_all(g.completions, task)
            a, votes = majority(answers)
            out.append(Answer(a, votes, k, self.name, g.usage, g.completions))
        return out
