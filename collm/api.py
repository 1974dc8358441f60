"""The one obvious entry point.

    from collm import Collm, SamplingParams
    llm = Collm()                                   # best installed model, fastest engine
    answers = llm.ask(["What is 7 + 5?", "..."])    # the calibrated policy decides N per question
    answers = llm.ask(questions, n=8)               # or a fixed best-of-8
    answers = llm.ask(questions, n=16, strategy="auto")  # the strategy chosen per predicted difficulty bin
    llm = Collm(sampling=SamplingParams(max_tokens=256, top_k=0))   # how every sample is drawn
    llm = Collm(upstream="http://127.0.0.1:8000/v1", upstream_params=494_032_768,
                policy="policy.json")               # your own model behind vLLM, with its calibrated policy
    answers[0].answer, answers[0].votes, answers[0].usage.flops

Each question goes prompts -> difficulty -> allocation -> strategy -> backend
-> vote/verify -> Answer (with its cost); collm.pipeline decides which path.
"""

from __future__ import annotations

from collections.abc import Sequence

from collm import backends
from collm.answers import get_task
from collm.answers.program import require_sandbox
from collm.errors import CollmError
from collm.pipeline import params_for, plan_request, run_plan
from collm.policies import ALLOCATION_KEY, STRATEGY_KEY, policy_for, policy_kind
from collm.prompts import Prompt, as_prompt
from collm.types import Answer, SamplingParams, sampling


class Collm:
    """model/engine: an embedded model (collm.backends.load_backend); or
    upstream= (a URL or several, load-balanced) with upstream_params= (its
    parameter count), upstream_model= (default: its first) and
    upstream_api_key=: an OpenAI-compatible server, as `--upstream` on the
    command line; or backend=: any Backend (a bank replay, your own).
    policy: "default" (the model's shipped policy), "none" (no policy: a
    greedy pass unless n says otherwise) or a policy file of any kind.
    sampling: how every sample is drawn (collm.types.SamplingParams)."""

    def __init__(self, model: str | None = None, engine: str | None = None, *, backend=None, task: str = "gsm8k",
                 policy: str | None = None, sampling: SamplingParams | None = None,
                 upstream: str | Sequence[str] | None = None, upstream_params: int | None = None,
                 upstream_model: str | None = None, upstream_api_key: str | None = None, upstream_timeout: float = 120.0):
        if str(task).endswith("+program"):  # this task runs the samples' code: refuse before loading a model
            require_sandbox()
        if upstream is not None:
            backend = _upstream(upstream, upstream_params, upstream_model, upstream_api_key, upstream_timeout,
                                model or engine or backend)
        if backend is None:
            backend = backends.load_backend(model, engine)
        self.backend = backend
        self.task = get_task(task)
        self.policy_spec = policy or "default"
        self.sampling = sampling if sampling is not None else SamplingParams()
        self._policies: dict = {}

    def policy(self, kind: str = ALLOCATION_KEY):
        """The policy --policy names (allocation by default; kind
        "collm_strategy_policy" for strategy "auto"), loaded once."""
        spec = self.policy_spec
        if kind == STRATEGY_KEY and spec not in ("default", "none") and policy_kind(spec) != "strategy":
            spec = "default"  # an allocation policy file was given: the model's shipped strategy policy
        if (kind, spec) not in self._policies:
            self._policies[(kind, spec)] = policy_for(self.backend, spec, self.task, kind=kind)
        return self._policies[(kind, spec)]

    def _spec_is_strategy_policy(self) -> bool:
        return self.policy_spec not in ("default", "none") and policy_kind(self.policy_spec) == "strategy"

    def ask(self, questions: Sequence[str | Prompt], n: int | None = None, strategy: str | None = None,
            budget: float | None = None, temperature: float | None = None, flops: float | None = None,
            **strategy_kwargs) -> list[Answer]:
        """Answer each question (collm.pipeline says which path). n: a fixed
        budget of generations; strategy: how to spend it ("auto": the strategy
        policy's choice per difficulty bin); budget: average generations per
        question for the policy; flops: average FLOPs per question for the
        policy (a hard cap for the batch, as budget is); temperature: sample at
        this temperature (None: the sampling default, or greedy for a single
        generation)."""
        prompts = [as_prompt(q) for q in questions]
        if not prompts:
            return []
        params = sampling(self.sampling) if temperature is None else self.sampling.replace(temperature=temperature)
        self.backend.check_request(prompts, n or 1, params)
        policy = None
        if strategy == "auto" or (strategy is None and self._spec_is_strategy_policy()):
            policy = self.policy(STRATEGY_KEY)  # a strategy policy: n (or budget) is its budget
        elif n is None and strategy is None:
            policy = self.policy()
        plan = plan_request(n=n, strategy=strategy, strategy_kwargs=strategy_kwargs, temperature=temperature,
                            policy=policy, default_n=1, budget=budget)
        if flops is not None and plan.kind != "policy":
            raise CollmError("flops= is a budget for an allocation policy: give it without n and strategy")
        return run_plan(plan, self.backend, prompts, self.task, params_for(plan, self.sampling, temperature),
                        budget=budget, flops=flops)


def _upstream(urls, params, model, api_key, timeout, other):
    """The RemoteBackend for upstream=, reached and asked for its model."""
    from collm.backends.remote import RemoteBackend, reached

    if other:
        raise CollmError("give upstream= or model/engine/backend, not both")
    if not params:
        raise CollmError("upstream= needs upstream_params= (the model's parameter count, for FLOP accounting)")
    return reached(RemoteBackend(urls, model=model, params=int(params), api_key=api_key, timeout=timeout))
