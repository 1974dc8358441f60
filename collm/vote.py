"""Aggregation: majority vote (self-consistency) and verifier-weighted vote.

Answers that are None (no answer, or an unfinished completion) never vote.
Ties are broken deterministically: the larger total weight, then the answer
that appeared first.
"""

from __future__ import annotations

from collections.abc import Sequence


def tally(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> dict[str, float]:
    """answer -> summed weight (count when unweighted), in first-seen order."""
    out: dict[str, float] = {}
    for j, a in enumerate(answers):
        if a is None:
            continue
        w = 1.0 if weights is None else float(weights[j])
        out[a] = out.get(a, 0.0) + w
    return out


def winner(scores: dict[str, float]) -> str | None:
    """The top-scoring answer; ties go to the answer seen first (dicts keep order)."""
    best, best_s = None, float("-inf")
    for a, s in scores.items():
        if s > best_s:
            best, best_s = a, s
    return best


def majority(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    votes = {a: int(c) for a, c in tally(answers).items()}
    return winner(votes), votes


def weighted(answers: Sequence[str | None], scores: Sequence[float]) -> tuple[str | None, dict[str, float]]:
    """Verifier-weighted best-of-N: sum the scores of each distinct answer."""
    s = tally(answers, scores)
    return winner(s), s


def best_score(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """Best-of-N by top verifier score (answered candidates only; first wins ties)."""
    best, best_s = None, float("-inf")
    for a, s in zip(answers, scores):
        if a is not None and s > best_s:
            best, best_s = a, s
    return best
