"""Best-of-N with a verifier: sample N answers, then

    weighted  sum the verifier's scores per distinct answer and take the
              largest sum (verifier-weighted majority; Li et al. 2023,
              Snell et al. 2024 "best-of-N weighted")
    best      take the answer of the single top-scoring sample

Unfinished samples (cut at max_tokens) and samples without an answer never
vote. Sampling is exactly best-of-N's (same calls, same FLOPs); the built-in
verifiers read log-probs that come with the samples and add no model cost.
"""

from __future__ import annotations

from collm.answers import extract_all
from collm.strategies.base import Strategy, per_prompt, register_strategy
from collm.strategies.beam import choose_final
from collm.strategies.sampling import sample_grouped
from collm.types import Answer, sampling
from collm.verifiers import get_verifier


class _Scored(Strategy):
    final = "weighted"

    def __init__(self, verifier=None, mode: str = "outcome", aggregation: str | None = None,
                 verifier_options: dict | None = None):
        self.verifier = get_verifier(verifier, mode=mode, aggregation=aggregation, **(verifier_options or {}))

    def run(self, backend, prompts, n, task, params=None, *, verifier=None):
        prompts = self.prompts(prompts)
        ver = self.verifier if verifier is None else get_verifier(verifier)
        ver.check()  # a remote verifier that cannot answer fails before any generation
        ns = per_prompt(n, len(prompts))
        gens = sample_grouped(backend, prompts, ns, sampling(params))
        answers = [extract_all(g.completions, task) for g in gens]
        # one verifier call for every answered sample of every prompt
        pairs = [(j, i) for j, g in enumerate(gens) for i, a in enumerate(answers[j]) if a is not None]
        got = ver([prompts[j] for j, _ in pairs], [gens[j].completions[i] for j, i in pairs])
        scores = [[0.0] * len(g.completions) for g in gens]
        for (j, i), s in zip(pairs, got):
            scores[j][i] = s
        out = []
        for j, (g, k) in enumerate(zip(gens, ns)):
            a, votes = choose_final(answers[j], scores[j], self.final)
            out.append(Answer(a, votes, k, self.name, g.usage, g.completions,
                              {"scores": [round(s, 6) for s in scores[j]], "verifier": ver.describe()}))
        return out


@register_strategy
class Weighted(_Scored):
    """Verifier-weighted best-of-N."""

    name = "weighted"
    final = "weighted"


@register_strategy
class BestScore(_Scored):
    """Best-of-N by top verifier score."""

    name = "best"
    final = "best"
