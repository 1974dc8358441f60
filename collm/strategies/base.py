from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from collm.answers import Task
from collm.backends.base import Backend
from collm.errors import CollmError
from collm.prompts import Prompt, as_prompt
from collm.types import Completion, Usage


@dataclass
class Answer:
    """The aggregated answer to one prompt, with everything it cost."""

    answer: str | None
    votes: dict[str, float]
    n: int  # generations spent (samples, beams expanded, revisions...)
    strategy: str
    usage: Usage
    completions: list[Completion] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self, with_completions: bool = False) -> dict:
        d = {"answer": self.answer, "n": self.n, "votes": self.votes, "strategy": self.strategy,
             "usage": self.usage.to_dict(), **self.extra}
        if with_completions:
            d["completions"] = [c.to_dict() for c in self.completions]
        return d


def extract_all(completions: Sequence[Completion], task: Task) -> list[str | None]:
    """Fill each completion's answer; unfinished ones (cut at max_tokens) get None."""
    out = []
    for c in completions:
        c.answer = task.extract(c.text) if c.finished else None
        out.append(c.answer)
    return out


def per_prompt(n: int | Sequence[int], count: int) -> list[int]:
    ns = [int(n)] * count if isinstance(n, int) else [int(x) for x in n]
    if len(ns) != count:
        raise CollmError(f"got {len(ns)} budgets for {count} prompts")
    if any(x < 1 for x in ns):
        raise CollmError("every prompt needs a budget of at least 1 generation")
    return ns


class Strategy(ABC):
    name = "strategy"

    @abstractmethod
    def run(self, backend: Backend, prompts: Sequence[Prompt | str], n: int | Sequence[int], task: Task,
            *, temperature: float = 0.8, top_p: float = 1.0, top_k: int = 0, max_tokens: int = 512, seed: int = 0,
            verifier=None) -> list[Answer]: ...

    @staticmethod
    def prompts(prompts) -> list[Prompt]:
        return [as_prompt(p) for p in prompts]


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str, **kwargs) -> Strategy:
    if name not in STRATEGIES:
        raise CollmError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](**kwargs)
