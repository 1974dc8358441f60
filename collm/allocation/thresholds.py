"""A difficulty ladder: N from the question's measured difficulty, then best-of-N.

    {"kind": "thresholds", "thresholds": [0.9, 1.4], "budgets": [1, 4, 8]}

difficulty < 0.9 -> 1 sample, < 1.4 -> 4, otherwise 8. Difficulty is the
mean prefix entropy (nats) of the question's own tokens, the signal sample
banks record (q_entropy), measured with one prefill before any generation.
The server runs it as a plan: difficulty first, then N samples.
"""

from __future__ import annotations

import bisect
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from collm.allocation.base import Count, Number, describe_errors
from collm.errors import CollmError
from collm.types import PromptScore


def difficulty_of(score: PromptScore) -> float | None:
    """Mean next-token entropy over the question's tokens (None if there are none)."""
    ent = score.q_entropy
    return sum(ent) / len(ent) if ent else None


class ThresholdsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["thresholds"]
    thresholds: list[Number]
    budgets: list[Count] = Field(min_length=1)

    @model_validator(mode="after")
    def _ladder(self):
        if len(self.budgets) != len(self.thresholds) + 1:
            raise ValueError("a thresholds policy needs one more budget than thresholds")
        if list(self.thresholds) != sorted(self.thresholds):
            raise ValueError("thresholds must be increasing")
        return self


class ThresholdPolicy:
    kind = "thresholds"

    def __init__(self, thresholds: list[float], budgets: list[int]):
        try:
            f = ThresholdsFile(kind="thresholds", thresholds=list(thresholds), budgets=list(budgets))
        except ValidationError as e:
            raise CollmError(describe_errors(e)) from None
        self.thresholds, self.budgets = [float(x) for x in f.thresholds], list(f.budgets)

    def budget_for(self, difficulty: float | None) -> int:
        if difficulty is None:  # not measured: the middle of the ladder
            return self.budgets[len(self.budgets) // 2]
        return self.budgets[bisect.bisect_right(self.thresholds, difficulty)]

    @property
    def needs_difficulty(self) -> bool:
        return len(set(self.budgets)) > 1

    def to_dict(self) -> dict:
        return {"kind": "thresholds", "thresholds": list(self.thresholds), "budgets": list(self.budgets)}

    @classmethod
    def from_dict(cls, d, source: str = "<policy>") -> "ThresholdPolicy":
        try:
            f = ThresholdsFile.model_validate(d)
        except ValidationError as e:
            raise CollmError(f"{source}: bad thresholds policy ({describe_errors(e)})") from None
        return cls(f.thresholds, f.budgets)
