"""Self-certainty: how sure the model was of its own tokens.

Kang et al. (2025) define self-certainty as the KL divergence from the uniform
distribution to each next-token distribution, which needs the whole
distribution at every position. The Backend contract returns only the
sampled tokens' log-probs, so this verifier uses what they give: the mean
token log-prob, reported as exp(mean) = the geometric-mean probability of
the chosen tokens, a score in (0, 1]. It costs nothing: the log-probs come
with the generation.

Outcome score: over all tokens of the completion. Step score: over the
tokens of each step (see base.step_token_logprobs).
"""

from __future__ import annotations

import math

from collm.verifiers.base import Verifier, step_token_logprobs


def certainty(token_logprobs, total_logprob: float = 0.0, tokens: int = 0) -> float:
    """exp(mean log-prob); falls back to total/tokens when per-token log-probs
    are missing; 0 for an empty piece (nothing was said, nothing to trust)."""
    if token_logprobs:
        return math.exp(sum(token_logprobs) / len(token_logprobs))
    if tokens > 0:
        return math.exp(total_logprob / tokens)
    return 0.0


class SelfCertainty(Verifier):
    name = "self-certainty"

    def score(self, prompts, completions):
        return [certainty(c.token_logprobs, c.logprob, c.tokens) for c in completions]

    def score_steps(self, prompts, completions):
        return [[certainty(lps) for lps in step_token_logprobs(c) if lps] for c in completions]
