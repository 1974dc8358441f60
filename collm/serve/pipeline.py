"""One request through the server, from its body to an Answer and its cost.

    request = parse(body, prompt, cfg)                 # validate: 400s here
    result = await server.answer(request, key_id, cancel)

answer() goes: early budget check -> wait for a model slot -> the plan
(collm.pipeline: the client's n, else the policy's, else the default; a
thresholds ladder measures the question first, one prefill) -> caps, load
and token buckets shrink it -> the plan runs in a model thread -> usage
settles the bucket charge. A request whose client went away has its samples
cancelled (collm.serve.scope).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from collm.answers import Task, get_task
from collm.errors import CollmError
from collm.pipeline import Plan, ladder_budget, params_for, plan_request, run_plan
from collm.policies import policy_label
from collm.prompts import DEFAULT_SYSTEM, Prompt
from collm.serve import schemas as S
from collm.serve.config import ApiError, ServeConfig
from collm.serve.limits import Limiter, TooLarge
from collm.serve.scope import ScopedBackend
from collm.strategies import get_strategy
from collm.types import Answer, SamplingParams, Usage


@dataclass
class Request:
    """A validated request: what to answer and how the client wants it sampled."""

    prompt: Prompt
    task: Task
    forced: int | None  # the client's n (collm.n or n)
    strategy: str | None
    cap: int | None  # the client's collm.max_n
    temperature: float | None  # as the client asked (None: not said)
    params: SamplingParams  # the sampling settings, the server's defaults filled in
    est_prompt: int  # a cautious token estimate until the prompt is measured


@dataclass
class Result:
    ans: Answer
    usage: Usage
    difficulty: float | None
    task: str
    budget: S.BudgetInfo
    policy: str | None = None  # the policy that decided (collm.policies.policy_label)


def messages_to_prompt(messages: list[S.ChatMessage]) -> Prompt:
    """System/developer messages -> system; the last (user) message -> question; the rest -> history."""
    try:
        texts = [(m.role, m.text()) for m in messages]
    except ValueError as e:
        raise ApiError(400, str(e), param="messages") from None
    if texts[-1][0] != "user":
        raise ApiError(400, "the last message must come from the user", param="messages")
    system = "\n\n".join(t for r, t in texts if r in ("system", "developer")) or DEFAULT_SYSTEM
    history = [{"role": r, "content": t} for r, t in texts[:-1] if r in ("user", "assistant")]
    return Prompt(texts[-1][1], system=system, history=history)


def parse(body: S._Sampling, prompt: Prompt, cfg: ServeConfig) -> Request:
    """Check a request against the server's limits and rules (ApiError 400 when it breaks one)."""
    opts = body.collm or S.CollmOptions()
    try:
        name = opts.task or cfg.task
        if name.endswith("+program") and not cfg.task.endswith("+program"):
            # running the model's code is the operator's choice, never a client's
            raise CollmError(f"task {name!r} runs the model's code on this server, which it does not allow; "
                             "its operator can start it with --execute-code")
        task = get_task(name)
        if opts.strategy is not None:
            get_strategy(opts.strategy)
    except CollmError as e:
        raise ApiError(400, str(e), param="collm") from None
    forced = opts.n or body.n
    if forced is not None and forced > cfg.max_n:
        raise ApiError(400, f"n = {forced} is over this server's limit of {cfg.max_n} samples", param="n")
    max_tokens = body.max_completion_tokens or body.max_tokens or cfg.default_max_tokens
    if max_tokens > cfg.max_tokens_limit:
        raise ApiError(400, f"max_tokens = {max_tokens} is over this server's limit of {cfg.max_tokens_limit}",
                       param="max_tokens")
    chars = len(prompt.question) + len(prompt.system or "") + sum(len(m["content"]) for m in prompt.history)
    if chars > cfg.max_prompt_chars:
        raise ApiError(400, f"prompt of {chars} characters is over this server's limit of {cfg.max_prompt_chars}",
                       param="messages", code="prompt_too_long")
    if not prompt.question.strip():
        raise ApiError(400, "the question is empty", param="messages")
    d = cfg.sampling
    params = d.replace(max_tokens=max_tokens, top_p=body.top_p or 1.0,
                       top_k=body.top_k if body.top_k is not None else d.top_k,
                       seed=body.seed if body.seed is not None else d.seed,
                       temperature=body.temperature if body.temperature is not None else d.temperature)
    return Request(prompt, task, forced, opts.strategy, opts.max_n, body.temperature, params, chars // 3 + 32)


class Server:
    """What every request shares: the backend, settings, policy, admission limits, model threads, metrics."""

    def __init__(self, backend, cfg: ServeConfig, policy, metrics):
        self.backend, self.cfg, self.policy, self.metrics = backend, cfg, policy, metrics
        self.policy_label = policy_label(policy)
        self.lock = None if backend.thread_safe else threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._limiter: Limiter | None = None

    @property
    def limiter(self) -> Limiter:  # made on first use, inside the serving event loop
        if self._limiter is None:
            c = self.cfg
            self._limiter = Limiter(c.max_in_flight, c.max_queue, c.bucket_capacity, c.bucket_refill_per_s,
                                    c.key_bucket_capacity, c.key_bucket_refill_per_s)
        return self._limiter

    def executor(self) -> ThreadPoolExecutor:  # made on first use; the app's shutdown ends it
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.cfg.max_in_flight, thread_name_prefix="collm-model")
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def in_thread(self, fn, slot: dict):
        """Run fn in a model thread; if this task is cancelled, the slot stays held until the thread ends."""
        fut = self.executor().submit(fn)
        slot["thread"] = fut
        result = await asyncio.wrap_future(fut, loop=asyncio.get_running_loop())
        slot["thread"] = None
        return result

    def plan(self, req: Request) -> Plan:
        try:
            return plan_request(n=req.forced, strategy=req.strategy, temperature=req.temperature,
                                policy=self.policy, default_n=self.cfg.default_n, budget=self.cfg.default_n)
        except CollmError as e:
            raise ApiError(400, str(e), param="collm") from None

    async def answer(self, req: Request, key_id: str | None, cancel: threading.Event,
                     admitted: asyncio.Event | None = None) -> Result:
        """The request's Result. `admitted` is set once it holds a model slot and
        its budget is charged: from then on only the model work can fail (a
        stream begins there, collm.serve.stream)."""
        lim, cfg, metrics = self.limiter, self.cfg, self.metrics
        try:
            lim.precheck(key_id, req.est_prompt, req.params.max_tokens)
        except TooLarge as e:
            raise ApiError(400, str(e), param="max_tokens") from None
        plan = self.plan(req)
        await lim.acquire()
        slot: dict = {"thread": None}
        view = ScopedBackend(self.backend, cancel, self.lock)
        charge = None
        est_prompt = req.est_prompt
        try:
            metrics.set("collm_in_flight", lim.in_flight)
            difficulty, score_usage = None, None
            if plan.kind == "ladder":  # the question's difficulty first, then the ladder's N
                n, difficulty, score_usage = await self.in_thread(lambda: ladder_budget(plan.policy, view, req.prompt), slot)
                if score_usage is not None:
                    est_prompt = score_usage.prompt_tokens
            elif plan.kind == "policy":
                n = cfg.max_n  # the policy's cap: it decides how much of it to spend
            else:
                n = plan.n
            n = max(1, min(n, req.cap or n, cfg.max_n))
            requested = n
            factor = lim.load_factor()
            if req.forced is None:
                n = max(1, round(n * factor))
            n, charge = lim.charge(key_id, est_prompt, req.params.max_tokens, n, shrinkable=req.forced is None)
            metrics.set("collm_budget_level", lim.level)
            plan = self._final(plan, req, n)
            params = params_for(plan, req.params, req.temperature)
            if admitted is not None:
                admitted.set()
            ans = await self.in_thread(lambda: run_plan(plan, view, [req.prompt], req.task, params, budget=plan.n)[0],
                                       slot)
            if plan.kind == "policy":
                difficulty = ans.extra.get("difficulty")
            usage = ans.usage + score_usage if score_usage is not None else ans.usage
            charge.settle(usage.total_tokens)
            charge = None
            metrics.set("collm_budget_level", lim.level)
            return Result(ans, usage, difficulty, req.task.name,
                          S.BudgetInfo(source=plan.source, requested=requested, allowed=n, used=ans.n,
                                       load_shrunk=n < requested, load_factor=round(factor, 4),
                                       queued=lim.queued, bucket_level=round(lim.level, 1)),
                          self.policy_label if plan.policy is not None or plan.source == "policy" else None)
        finally:
            if charge is not None:  # failed or cancelled: give the budget back
                charge.settle(0.0)
            thread = slot["thread"]
            if thread is not None and not thread.done():  # cancelled mid-work: stop it, free the slot when it ends
                cancel.set()
                loop = asyncio.get_running_loop()
                thread.add_done_callback(lambda _: loop.call_soon_threadsafe(lim.release))
            else:
                lim.release()
            metrics.set("collm_in_flight", lim.in_flight)

    @staticmethod
    def _final(plan: Plan, req: Request, n: int) -> Plan:
        """The plan with the budget it was allowed: an adaptive plan keeps its
        kind (n is its cap), a fixed one is planned again at n (shrunk to 1, it
        is a greedy pass unless the client asked for a temperature)."""
        if plan.kind in ("policy", "strategy-policy"):
            return Plan(plan.kind, n, policy=plan.policy, source=plan.source)
        source = "client" if req.forced is not None else ("policy" if plan.kind == "ladder" else plan.source)
        p = plan_request(n=n, strategy=req.strategy, temperature=req.temperature)
        p.source = source
        return p
