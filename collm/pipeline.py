"""The one request path, shared by the library (Collm.ask), the command line
(collm ask) and the server: what a request asks for becomes a Plan, and the
plan runs.

    plan = plan_request(n=None, temperature=None, policy=pol)     # the policy decides
    answers = run_plan(plan, backend, prompts, task, params)

What a request can ask for, and what it gets:

    n, strategy          nothing               the policy (the model's shipped one unless told):
                                               "policy" (an allocation policy, round by round),
                                               "ladder" (a thresholds policy: difficulty, then
                                               best-of-N) or "strategy-policy" (the strategy
                                               per predicted difficulty bin at a budget)
    n = 1, no temperature                      "greedy": one greedy decode
    temperature 0, any n                       "greedy" too (greedy copies are identical,
                                               so only one is made)
    n > 1 or a temperature                     "fixed": best-of-n by majority vote, at the
                                               temperature asked for (else the sampling default)
    strategy "majority" (and n)                "fixed" as above, sampled even at n = 1
    strategy "greedy"                          "greedy"
    strategy S (and n)                         "fixed": strategy S with n generations
    strategy "auto" (and n)                    "strategy-policy" at budget n

This is the one definition of "greedy" in collm.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from collm.allocation import Policy
from collm.allocation.live import answer_with_policy
from collm.allocation.thresholds import ThresholdPolicy, difficulty_of
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.strategies import get_strategy
from collm.strategies.select import StrategyPolicy
from collm.types import Answer, SamplingParams, Usage, sampling

DEFAULT_STRATEGY_BUDGET = 8  # generations for a strategy policy when no n or budget is given


@dataclass
class Plan:
    kind: str  # "greedy", "fixed", "policy", "ladder", "strategy-policy"
    n: int | None = None  # fixed: generations; policy: the cap per prompt (None: the policy's own); strategy-policy: budget
    strategy: str | None = None  # fixed: the strategy's name
    strategy_kwargs: dict = field(default_factory=dict)
    policy: object = None
    source: str = "default"  # who chose n: "client", "policy" or "default"

    @property
    def adaptive(self) -> bool:
        """The budget is the policy's to spend (not fixed before generating)."""
        return self.kind in ("policy", "ladder", "strategy-policy")


def is_greedy(n: int | None, temperature: float | None) -> bool:
    """One greedy decode: n = 1 with no temperature asked for, or temperature 0 at any n."""
    return temperature == 0 or (n == 1 and temperature is None)


def plan_request(*, n: int | None = None, strategy: str | None = None, strategy_kwargs: dict | None = None,
                 temperature: float | None = None, policy=None, default_n: int = 1,
                 budget: float | None = None) -> Plan:
    """The plan for a request; see the module doc. `policy` is what --policy
    resolved to (None: no policy, the fixed default_n); `temperature` is the
    temperature the caller asked for, None when it did not say."""
    if n is not None and n < 1:
        raise CollmError(f"n must be at least 1 (got {n})")
    kwargs = dict(strategy_kwargs or {})
    if strategy == "auto" or (strategy is None and isinstance(policy, StrategyPolicy)):
        if not isinstance(policy, StrategyPolicy):
            raise CollmError("strategy 'auto' needs a strategy policy (collm calibrate --strategies fits one)")
        if kwargs:
            raise CollmError(f"strategy 'auto' takes its settings from the strategy policy, not {', '.join(kwargs)}")
        k = n if n is not None else int(budget) if budget is not None else DEFAULT_STRATEGY_BUDGET
        return Plan("strategy-policy", max(1, k), policy=policy, source="client" if n is not None else "policy")
    if n is None and strategy is None and policy is not None:
        if isinstance(policy, ThresholdPolicy):
            return Plan("ladder", policy=policy, source="policy")
        if isinstance(policy, Policy):
            return Plan("policy", policy=policy, source="policy")
        raise CollmError(f"not a policy: {type(policy).__name__}")
    source = "client" if n is not None else "default"
    n = n if n is not None else default_n
    if strategy == "greedy" or (strategy in (None, "majority") and not kwargs and
                                (is_greedy(n, temperature) if strategy is None else temperature == 0)):
        return Plan("greedy", 1, "greedy", source=source)
    return Plan("fixed", n, strategy or "majority", kwargs, source=source)


def params_for(plan: Plan, params: SamplingParams | None, temperature: float | None = None) -> SamplingParams:
    """The sampling settings a plan runs with: greedy at temperature 0, else
    the temperature asked for (or the default's)."""
    p = sampling(params)
    if plan.kind == "greedy":
        return p.as_greedy()
    return p.replace(temperature=temperature) if temperature is not None else p


def run_plan(plan: Plan, backend, prompts: list[Prompt], task, params: SamplingParams | None = None, *,
             budget: float | None = None, flops: float | None = None) -> list[Answer]:
    """Answer every prompt as planned. budget: the average generations per
    prompt an allocation policy may spend; flops: the average FLOPs per prompt
    it may spend (each a hard cap for the batch)."""
    params = sampling(params)
    if plan.kind == "greedy":
        return get_strategy("greedy").run(backend, prompts, 1, task, params.as_greedy())
    if plan.kind == "fixed":
        return get_strategy(plan.strategy, **plan.strategy_kwargs).run(backend, prompts, plan.n, task, params)
    if plan.kind == "policy":
        return answer_with_policy(backend, prompts, task, plan.policy, budget=budget, flops=flops, params=params,
                                  max_samples=plan.n)
    if plan.kind == "ladder":
        return _run_ladder(plan.policy, backend, prompts, task, params, cap=plan.n)
    if plan.kind == "strategy-policy":
        return _run_strategy_policy(plan.policy, backend, prompts, task, params, plan.n)
    raise CollmError(f"unknown plan {plan.kind!r}")


def ladder_budget(policy: ThresholdPolicy, backend, prompt: Prompt) -> tuple[int, float | None, Usage | None]:
    """(N, difficulty, what measuring it cost) for one prompt under a thresholds
    policy; a backend that cannot score prompts gets the ladder's middle N."""
    if not policy.needs_difficulty:
        return policy.budget_for(None), None, None
    try:
        score = backend.score_prompt([prompt])[0]
    except CollmError as e:
        if getattr(e, "http_status", None):  # the upstream failed: not a missing capability
            raise
        return policy.budget_for(None), None, None
    d = difficulty_of(score)
    return policy.budget_for(d), d, score.usage


def _run_ladder(policy, backend, prompts, task, params, cap=None) -> list[Answer]:
    out = []
    for p in prompts:
        n, d, usage = ladder_budget(policy, backend, p)
        n = min(n, cap) if cap else n
        plan = Plan("greedy", 1, "greedy") if n == 1 else Plan("fixed", n, "majority")
        a = run_plan(plan, backend, [p], task, params)[0]
        if usage is not None:
            a.usage = a.usage + usage
        a.extra.update({"difficulty": d, "policy": "thresholds"})
        out.append(a)
    return out


def _run_strategy_policy(policy: StrategyPolicy, backend, prompts, task, params, n: int) -> list[Answer]:
    """Each question's difficulty bin predicted from one forward pass over it,
    then the strategy fitted for that bin at budget n (prompts that share a
    choice run as one batch); the prediction's FLOPs are counted."""
    chosen = policy.plan(backend, prompts, n, task)
    batches: dict = defaultdict(list)
    for j, e in enumerate(chosen):
        name = "greedy" if e["strategy"] == "majority" and n == 1 else e["strategy"]
        batches[(name, json.dumps(e["settings"], sort_keys=True))].append(j)
    out: list = [None] * len(prompts)
    for (name, settings), js in batches.items():
        run_params = params.as_greedy() if name == "greedy" else params
        answers = get_strategy(name, **json.loads(settings)).run(backend, [prompts[j] for j in js], n, task, run_params)
        for j, a in zip(js, answers):
            e = chosen[j]
            a.usage = a.usage + Usage(flops=e["estimator_flops"])
            a.extra.update({"difficulty_bin": e["bin"], "difficulty": e["difficulty"], "policy": "strategy",
                            "estimator_flops": e["estimator_flops"]})
            out[j] = a
    return out
