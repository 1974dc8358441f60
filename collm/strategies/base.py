"""The strategy interface and its registry.

    strategy.run(backend, prompts, n, task, params) -> one Answer per prompt

n: the generation budget, one int for all prompts or one per prompt;
params: how samples are drawn (collm.types.SamplingParams; None: the
defaults); max_tokens there is the length of a whole answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from collm.answers import Task, extract_all  # noqa: F401  (extract_all: re-exported for strategies)
from collm.backends.base import Backend
from collm.errors import CollmError
from collm.prompts import Prompt, as_prompt
from collm.types import Answer, SamplingParams


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
            params: SamplingParams | None = None, *, verifier=None) -> list[Answer]: ...

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
