"""The one obvious entry point.

    from collm import Collm
    llm = Collm()                                   # best installed model, fastest engine
    answers = llm.ask(["What is 7 + 5?", "..."])    # the calibrated policy decides N per question
    answers = llm.ask(questions, n=8)               # or a fixed best-of-8
    answers[0].answer, answers[0].votes, answers[0].usage.flops

Each question goes prompts -> difficulty -> allocation -> strategy -> backend
-> vote/verify -> Answer (with its cost).
"""

from __future__ import annotations

from collections.abc import Sequence

from collm.answers import get_task
from collm.errors import CollmError
from collm.prompts import Prompt, as_prompt
from collm.strategies import Answer, get_strategy


class Collm:
    def __init__(self, model: str | None = None, engine: str | None = None, *, backend=None, task: str = "gsm8k",
                 policy: str | None = None, max_tokens: int = 512, temperature: float = 0.8, top_p: float = 1.0,
                 seed: int = 0):
        if backend is None:
            from collm.backends import load_backend

            backend = load_backend(model, engine)
        self.backend = backend
        self.task = get_task(task)
        self.policy_path = policy
        self._policy = None
        self.max_tokens, self.temperature, self.top_p, self.seed = max_tokens, temperature, top_p, seed

    @property
    def policy(self):
        if self._policy is None:
            from collm.allocation.live import load_policy_for

            self._policy = load_policy_for(self.backend, self.policy_path)
        return self._policy

    def ask(self, questions: Sequence[str | Prompt], n: int | None = None, strategy: str | None = None,
            budget: float | None = None, **strategy_kwargs) -> list[Answer]:
        prompts = [as_prompt(q) for q in questions]
        if not prompts:
            return []
        if n is not None and n < 1:
            raise CollmError(f"n must be at least 1 (got {n})")
        self.backend.check_request(prompts, n=n or 1, max_tokens=self.max_tokens)
        if n is None and strategy is None:
            from collm.allocation.live import answer_with_policy

            return answer_with_policy(self.backend, prompts, self.task, self.policy, budget=budget,
                                      temperature=self.temperature, top_p=self.top_p,
                                      max_tokens=self.max_tokens, seed=self.seed)
        n = n or 1
        strategy = strategy or ("greedy" if n == 1 else "majority")
        temperature = 0.0 if strategy == "greedy" else self.temperature
        return get_strategy(strategy, **strategy_kwargs).run(
            self.backend, prompts, n, self.task, temperature=temperature, top_p=self.top_p,
            max_tokens=self.max_tokens, seed=self.seed)
