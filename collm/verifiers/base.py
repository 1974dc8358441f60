"""The verifier interface: score a whole answer (outcome) or each of its
steps (process), and reduce step scores to one number.

    v = get_verifier("self-certainty", mode="process", aggregation="min")
    v.score(prompts, completions)        -> one outcome score per completion
    v.score_steps(prompts, completions)  -> the scores of each step
    v(prompts, completions)              -> the score strategies rank by:
                                            outcome, or the aggregated steps

prompts[j] is the prompt that completions[j] answers (aligned lists).

Steps are split on blank lines, or before a line that starts "Step k"
(split_steps). A completion built step by step by a search strategy carries
its exact steps (`steps`: texts, `step_tokens`: tokens per step), which
verifiers use instead of splitting the text again.

Aggregations (Snell et al. 2024, sec. 5; Lightman et al. 2023):
    last  the score of the last step (what a PRM says about the whole answer)
    min   the weakest step
    prod  product of step scores (scores read as probabilities)
    mean  arithmetic mean
Step scores should lie in [0, 1] for `prod` to mean anything; every built-in
verifier returns scores in [0, 1].
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from collm.errors import CollmError
from collm.prompts import Prompt
from collm.types import Completion

AGGREGATIONS = ("last", "min", "prod", "mean")
MODES = ("outcome", "process")

_STEP_BREAK = re.compile(r"\n[ \t]*\n+|\n(?=[ \t]*(?:\*\*|#+\s*)?Step\s+\d+)", re.IGNORECASE)


def split_steps(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the steps of `text`: pieces separated
    by a blank line, or by a line break before "Step k". Each span keeps its
    separator at its end, so the spans tile the text; blank pieces are merged
    into the step before them. An empty text has no steps."""
    spans, start = [], 0
    for m in _STEP_BREAK.finditer(text):
        if text[start:m.start()].strip():
            spans.append((start, m.end()))
            start = m.end()
        elif spans:  # blank piece: belongs to the previous step
            spans[-1] = (spans[-1][0], m.end())
            start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    elif spans:
        spans[-1] = (spans[-1][0], len(text))
    return spans


def step_texts(c: Completion) -> list[str]:
    """The completion's steps: exact when a search built it, else split."""
    steps = getattr(c, "steps", None)
    if steps is not None:
        return [s for s in steps if s.strip()]
    return [c.text[a:b] for a, b in split_steps(c.text)]


def step_token_logprobs(c: Completion) -> list[list[float]]:
    """The token log-probs of each step. Exact when the completion carries
    `step_tokens` (a search built it); otherwise tokens are assigned to steps
    in proportion to the steps' characters, since a Completion does not say
    which characters each token spelled (an approximation, documented)."""
    lps = list(c.token_logprobs)
    steps = getattr(c, "steps", None)
    counts = getattr(c, "step_tokens", None)
    if steps is not None and counts is not None and sum(counts) == len(lps):
        out, at = [], 0
        for s, k in zip(steps, counts):
            if s.strip():
                out.append(lps[at:at + k])
            at += k
        return out
    spans = split_steps(c.text)
    if not spans:
        return []
    n, L = len(lps), max(len(c.text), 1)
    out = []
    for a, b in spans:
        i, j = round(n * a / L), round(n * b / L)
        out.append(lps[i:j])
    return out


def aggregate(scores: Sequence[float], how: str) -> float:
    """Reduce step scores to one; no steps at all scores 0 (nothing to trust)."""
    if how not in AGGREGATIONS:
        raise CollmError(f"unknown aggregation {how!r}; known: {', '.join(AGGREGATIONS)}")
    if not scores:
        return 0.0
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    return float(sum(scores) / len(scores))


class Verifier(ABC):
    """Scores candidate answers; higher is better, in [0, 1] for the built-ins.

    mode: "outcome" ranks by score(); "process" by the aggregated step scores.
    """

    name = "verifier"

    def __init__(self, mode: str = "outcome", aggregation: str = "last"):
        if mode not in MODES:
            raise CollmError(f"unknown verifier mode {mode!r}; known: {', '.join(MODES)}")
        if aggregation not in AGGREGATIONS:
            raise CollmError(f"unknown aggregation {aggregation!r}; known: {', '.join(AGGREGATIONS)}")
        self.mode, self.aggregation = mode, aggregation

    @abstractmethod
    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[float]:
        """One outcome score per completion."""

    @abstractmethod
    def score_steps(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[list[float]]:
        """The scores of each step of each completion."""

    def check(self) -> None:
        """Fail early (before any generation is spent) if the verifier cannot
        work; the built-in local verifiers always can."""

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        if not completions:
            return []
        if self.mode == "outcome":
            return [float(s) for s in self.score(prompts, completions)]
        return [aggregate(s, self.aggregation) for s in self.score_steps(prompts, completions)]

    def describe(self) -> dict:
        return {"name": self.name, "mode": self.mode, "aggregation": self.aggregation}
