"""A problem of a dataset: its question, its gold answer and the task that grades it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    id: int  # row in the split's file (a file of yours: its line number)
    question: str
    gold: str
    task: str  # name in collm.answers
    meta: dict = field(default_factory=dict)  # subject, level, ... (for fairness breakdowns)
