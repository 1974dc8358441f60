"""The one obvious entry point.

    from collm import Collm
    llm = Collm()                                   # best installed model, fastest engine
    answers = llm.ask(["What is 7 + 5?", "..."])    # the calibrated policy decides N per question
    answers = llm.ask(questions, n=8)               # or a fixed best-of-8
    answers = llm.ask(questions, n=16, strategy="auto")  # the strategy chosen per predicted difficulty bin
    answers[0].answer, answers[0].votes, answers[0].usage.flops

Each question goes prompts -> difficulty -> allocation -> strategy -> backend
-> vote/verify -> Answer (with its cost).
"""

from __future__ import annotations

from collections.abc import Sequence

from collm.answers import get_task
from collm.errors import CollmError
from collm.backends.base import DEFAULT_TOP_K
from collm.prompts import Prompt, as_prompt
from collm.strategies import Answer, get_strategy


class Collm:
    def __init__(self, model: str | None = None, engine: str | None = None, *, backend=None, task: str = "gsm8k",
                 policy: str | None = None, max_tokens: int = 512, temperature: float = 0.8, top_p: float = 1.0,
                 top_k: int = DEFAULT_TOP_K, seed: int = 0):
        if str(task).endswith("+program"):  # this task runs the samples' code: refuse before loading a model
            from collm.answers.program import require_sandbox

            require_sandbox()
        if backend is None:
            from collm.backends import load_backend

            backend = load_backend(model, engine)
        self.backend = backend
        self.task = get_task(task)
        self.policy_path = policy
        self._policy = None
        self._strategy_policy = None
        self.max_tokens, self.temperature, self.top_p, self.top_k, self.seed = max_tokens, temperature, top_p, top_k, seed

    @property
    def policy(self):
        if self._policy is None:
            from collm.allocation.live import load_policy_for

            self._policy = load_policy_for(self.backend, self.policy_path, self.task)
        return self._policy

    @property
    def strategy_policy(self):
        """The per-bin strategy policy: the file given as policy= if it is one,
        else the one shipped for this model."""
        if self._strategy_policy is None:
            from collm.allocation.live import backend_model, default_policy_path
            from collm.strategies.select import KEY, is_strategy_policy, load_strategy_policy

            model = backend_model(self.backend)
            path = self.policy_path
            if path in (None, "", "default", "none") or not is_strategy_policy(path):
                path = default_policy_path(model, KEY)
                if path is None:
                    raise CollmError(f"no strategy policy was fitted for {model.get('name') or 'this model'}; "
                                     "pass one with policy= (bench/strategies.py replay fits one from a bank)")
            self._strategy_policy = load_strategy_policy(path, model=model)
        return self._strategy_policy

    def ask(self, questions: Sequence[str | Prompt], n: int | None = None, strategy: str | None = None,
            budget: float | None = None, **strategy_kwargs) -> list[Answer]:
        prompts = [as_prompt(q) for q in questions]
        if not prompts:
            return []
        if n is not None and n < 1:
            raise CollmError(f"n must be at least 1 (got {n})")
        self.backend.check_request(prompts, n=n or 1, max_tokens=self.max_tokens)
        if strategy is None and self.policy_path not in (None, "", "default", "none"):
            from collm.strategies.select import is_strategy_policy

            if is_strategy_policy(self.policy_path):
                strategy = "auto"
        if n is None and strategy is None:
            from collm.allocation.live import answer_with_policy

            return answer_with_policy(self.backend, prompts, self.task, self.policy, budget=budget,
                                      temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                                      max_tokens=self.max_tokens, seed=self.seed)
        if strategy == "auto":
            return self._ask_auto(prompts, n or int(budget or 8), strategy_kwargs)
        n = n or 1
        strategy = strategy or ("greedy" if n == 1 else "majority")
        temperature = 0.0 if strategy == "greedy" else self.temperature
        return get_strategy(strategy, **strategy_kwargs).run(
            self.backend, prompts, n, self.task, temperature=temperature, top_p=self.top_p, top_k=self.top_k,
            max_tokens=self.max_tokens, seed=self.seed)

    def _ask_auto(self, prompts: list[Prompt], n: int, strategy_kwargs: dict) -> list[Answer]:
        """Each question's difficulty bin predicted from one forward pass over
        it, then the strategy fitted for that bin at budget n (prompts that
        share a choice run as one batch); the prediction's FLOPs are counted."""
        import json
        from collections import defaultdict

        from collm.types import Usage

        if strategy_kwargs:
            raise CollmError(f"strategy 'auto' takes its settings from the strategy policy, not {', '.join(strategy_kwargs)}")
        plan = self.strategy_policy.plan(self.backend, prompts, n, self.task)
        batches: dict = defaultdict(list)
        for j, e in enumerate(plan):
            name = "greedy" if e["strategy"] == "majority" and n == 1 else e["strategy"]
            batches[(name, json.dumps(e["settings"], sort_keys=True))].append(j)
        out: list = [None] * len(prompts)
        for (name, settings), js in batches.items():
            answers = get_strategy(name, **json.loads(settings)).run(
                self.backend, [prompts[j] for j in js], n, self.task,
                temperature=0.0 if name == "greedy" else self.temperature, top_p=self.top_p, top_k=self.top_k,
                max_tokens=self.max_tokens, seed=self.seed)
            for j, a in zip(js, answers):
                e = plan[j]
                a.usage = a.usage + Usage(flops=e["estimator_flops"])
                a.extra.update({"difficulty_bin": e["bin"], "difficulty": e["difficulty"], "policy": "strategy",
                                "estimator_flops": e["estimator_flops"]})
                out[j] = a
        return out
