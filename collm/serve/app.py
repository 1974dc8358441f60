"""The OpenAI-compatible server: one aggregated answer per request.

Every request goes the same way:

    auth -> validate -> early budget check -> wait for a model slot
      -> difficulty (one prefill, when the policy needs it)
      -> budget: client's forced n, else the policy's, else the default; capped;
         shrunk by load and by what the token buckets hold
      -> strategy (majority vote over n samples, greedy when n = 1)
      -> one choice: the text of a completion that gave the winning answer,
         usage counting every sample, and a `collm` object saying what was spent

Model work runs in worker threads (strategies are synchronous); the event
loop only admits, plans and answers. A client that disconnects, or a request
past its timeout, has its samples cancelled (collm.serve.scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from collm.answers import get_task
from collm.answers.program import require_sandbox
from collm.backends.base import DEFAULT_TOP_K, Backend
from collm.errors import CollmError
from collm.prompts import DEFAULT_SYSTEM, Prompt
from collm.serve import schemas as S
from collm.serve.budget import difficulty_of
from collm.serve.limits import Limiter, Rejected, TooLarge, check_api_key
from collm.serve.metrics import SAMPLE_BUCKETS, server_metrics
from collm.serve.scope import Cancelled, ScopedBackend
from collm.strategies import get_strategy

log = logging.getLogger("collm.serve")


@dataclass
class ServeConfig:
    model_name: str = "collm"
    api_keys: list[str] = field(default_factory=list)
    default_n: int = 4  # samples when neither the client nor a policy says
    max_n: int = 16  # the most samples any request may use
    default_max_tokens: int = 256
    max_tokens_limit: int = 1024
    max_prompt_chars: int = 16_000  # all messages together
    max_body_bytes: int = 1 << 20
    max_in_flight: int = 1
    max_queue: int = 64
    bucket_capacity: float | None = None  # global token bucket (tokens); None: no bucket
    bucket_refill_per_s: float | None = None
    key_bucket_capacity: float | None = None  # per API key
    key_bucket_refill_per_s: float | None = None
    request_timeout_s: float = 300.0
    temperature: float = 0.8  # sampling temperature when the client gives none and n > 1
    top_k: int = DEFAULT_TOP_K  # when the client gives none (vLLM's extra field top_k)
    task: str = "gsm8k"
    seed: int = 0


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}


def _error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
           headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


ERRORS = {
    400: {"model": S.ErrorResponse, "description": "bad request (schema, limits, unknown task)"},
    401: {"model": S.ErrorResponse, "description": "missing or wrong API key"},
    404: {"model": S.ErrorResponse, "description": "unknown model"},
    413: {"model": S.ErrorResponse, "description": "request body too large"},
    429: {"model": S.ErrorResponse, "description": "over budget or queue full (see Retry-After)"},
    502: {"model": S.ErrorResponse, "description": "upstream failure"},
    504: {"model": S.ErrorResponse, "description": "upstream or request timeout"},
}


class BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes with 413, before reading
    them when Content-Length says so, else as soon as the chunks pass the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body over {self.limit} bytes"
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                return await _error(413, message, "invalid_request_error", "body_too_large")(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:  # an HTTPException passes FastAPI's body parsing unchanged
                    raise StarletteHTTPException(413, message)
            return msg

        return await self.app(scope, counted, send)


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


def chosen_completion(ans):
    """A completion whose answer won the vote (the first), else the first completion."""
    for c in ans.completions:
        if ans.answer is not None and c.answer == ans.answer:
            return c
    return ans.completions[0] if ans.completions else None


def create_app(backend: Backend, config: ServeConfig | None = None, policy=None) -> FastAPI:
    cfg = config or ServeConfig()
    if cfg.task.endswith("+program"):
        require_sandbox()  # a server that would run the model's code refuses to start without the sandbox
    metrics = server_metrics()
    state: dict = {}
    lock = None if getattr(backend, "thread_safe", False) else threading.Lock()

    def executor() -> ThreadPoolExecutor:  # made on first use; the app's shutdown ends it
        if "executor" not in state:
            state["executor"] = ThreadPoolExecutor(max_workers=cfg.max_in_flight, thread_name_prefix="collm-model")
        return state["executor"]

    def limiter() -> Limiter:  # made on first use, inside the serving event loop
        if "limiter" not in state:
            state["limiter"] = Limiter(cfg.max_in_flight, cfg.max_queue, cfg.bucket_capacity, cfg.bucket_refill_per_s,
                                       cfg.key_bucket_capacity, cfg.key_bucket_refill_per_s)
        return state["limiter"]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if "executor" in state:
            state.pop("executor").shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="collm", version="0.1.0", lifespan=lifespan,
                  description="OpenAI-compatible answers that spend test-time compute where it changes the answer.")
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    app.state.metrics, app.state.config = metrics, cfg

    # ---- errors: OpenAI's {"error": {...}} shape everywhere ----
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return _error(400, "invalid request: " + "; ".join(parts), "invalid_request_error", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = "body_too_large" if exc.status_code == 413 else None
        return _error(exc.status_code, str(exc.detail), "invalid_request_error", code)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.type, exc.code, exc.param, exc.headers)

    async def authorize(request: Request) -> str | None:
        if not cfg.api_keys:
            return None
        key_id = check_api_key(request.headers.get("authorization"), cfg.api_keys)
        if key_id is None:
            raise ApiError(401, "missing or invalid API key (send Authorization: Bearer KEY)", "authentication_error",
                           "invalid_api_key")
        return key_id

    async def in_thread(fn, slot: dict):
        """Run fn in a model thread; if this task is cancelled, the slot stays held until the thread ends."""
        loop = asyncio.get_running_loop()
        fut = executor().submit(fn)
        slot["thread"] = fut
        result = await asyncio.wrap_future(fut, loop=loop)
        slot["thread"] = None
        return result

    async def pipeline(body: S._Sampling, prompt: Prompt, key_id: str | None, cancel: threading.Event) -> dict:
        lim = limiter()
        opts = body.collm or S.CollmOptions()
        try:
            name = opts.task or cfg.task
            if name.endswith("+program") and not cfg.task.endswith("+program"):
                # running the model's code is the operator's choice, never a client's
                raise CollmError(f"task {name!r} runs the model's code on this server, which it does not allow; "
                                 "its operator can start it with --execute-code")
            task = get_task(name)
            forced = opts.n or body.n
            strategy_name = opts.strategy
            if strategy_name is not None:
                get_strategy(strategy_name)
        except CollmError as e:
            raise ApiError(400, str(e), param="collm") from None
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
        est_prompt = chars // 3 + 32  # a cautious token estimate until the prompt is measured
        try:
            lim.precheck(key_id, est_prompt, max_tokens)
        except TooLarge as e:
            raise ApiError(400, str(e), param="max_tokens") from None

        plans = policy is not None and hasattr(policy, "budget_for")  # difficulty -> N, then best-of-N
        runs = policy is not None and not plans and forced is None and strategy_name is None  # adaptive rounds
        temperature = body.temperature if body.temperature is not None else cfg.temperature
        top_p = body.top_p or 1.0
        top_k = body.top_k if body.top_k is not None else cfg.top_k
        seed = body.seed if body.seed is not None else cfg.seed

        await lim.acquire()
        slot: dict = {"thread": None}
        view = ScopedBackend(backend, cancel, lock)
        charge = None
        try:
            metrics.set("collm_in_flight", lim.in_flight)
            difficulty, score_usage = None, None
            if forced is None and plans and getattr(policy, "needs_difficulty", True):
                try:
                    score = (await in_thread(lambda: view.score_prompt([prompt]), slot))[0]
                    difficulty, score_usage = difficulty_of(score), score.usage
                    est_prompt = len(score.token_ids)
                except CollmError as e:  # the backend cannot score: the plan's budget for "unknown"
                    if getattr(e, "http_status", None):
                        raise
                    log.info("no difficulty: %s", e)
            if forced is not None:
                n, source = forced, "client"
            elif plans:
                n, source = int(policy.budget_for(difficulty)), "policy"
            elif runs:
                n, source = cfg.max_n, "policy"  # the policy's cap; it decides how much of it to spend
            else:
                n, source = cfg.default_n, "default"
            n = max(1, min(n, opts.max_n or n, cfg.max_n))
            requested = n
            factor = lim.load_factor()
            if forced is None:
                n = max(1, round(n * factor))
            n, charge = lim.charge(key_id, est_prompt, max_tokens, n, shrinkable=forced is None)
            metrics.set("collm_budget_level", lim.level)
            if runs:
                from collm.allocation.live import answer_with_policy

                cap = min(n, int(policy.params.get("n_max", n)))  # never above the policy's own n_max
                ans = await in_thread(lambda: answer_with_policy(
                    view, [prompt], task, policy, budget=cap, max_samples=cap, temperature=temperature,
                    top_p=top_p, top_k=top_k, max_tokens=max_tokens, seed=seed)[0], slot)
                difficulty = ans.extra.get("difficulty")
            else:
                name = strategy_name or ("majority" if n > 1 or (body.temperature or 0) > 0 else "greedy")
                strategy = get_strategy(name)
                ans = await in_thread(lambda: strategy.run(view, [prompt], n, task, temperature=temperature,
                                                           top_p=top_p, top_k=top_k, max_tokens=max_tokens, seed=seed)[0], slot)
            usage = ans.usage + score_usage if score_usage is not None else ans.usage
            charge.settle(usage.total_tokens)
            charge = None
            metrics.set("collm_budget_level", lim.level)
            return {"ans": ans, "usage": usage, "difficulty": difficulty, "task": task.name,
                    "budget": S.BudgetInfo(source=source, requested=requested, allowed=n, used=ans.n,
                                           load_shrunk=n < requested, load_factor=round(factor, 4),
                                           queued=lim.queued, bucket_level=round(lim.level, 1))}
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

    async def watch_disconnect(request: Request) -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.25)

    async def answer(request: Request, body: S._Sampling, prompt: Prompt | None, endpoint: str, key_id: str | None):
        t0 = time.perf_counter()
        status = 200
        try:
            if prompt is None:
                prompt = messages_to_prompt(body.messages)
            if body.model is not None and body.model != cfg.model_name:
                raise ApiError(404, f"model {body.model!r} is not served here (this server serves {cfg.model_name!r})",
                               code="model_not_found", param="model")
            cancel = threading.Event()
            work = asyncio.ensure_future(pipeline(body, prompt, key_id, cancel))
            watcher = asyncio.ensure_future(watch_disconnect(request))
            try:
                done, _ = await asyncio.wait({work, watcher}, timeout=cfg.request_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                watcher.cancel()
            if work not in done:
                cancel.set()
                work.cancel()
                if watcher in done:
                    metrics.inc("collm_cancelled_total")
                    status = 499
                    log.info("client went away: request cancelled")
                    return _error(499, "client closed the request", "cancelled")
                raise ApiError(504, f"request took longer than {cfg.request_timeout_s:g} s", "timeout_error", "timeout")
            out = work.result()
        except ApiError as e:
            status = e.status
            raise
        except Rejected as e:
            status = 429
            metrics.inc("collm_rejected_total", reason=e.reason)
            raise ApiError(429, str(e), "rate_limit_error", e.reason, headers={"Retry-After": str(e.retry_after)}) from None
        except Cancelled:
            status = 499
            return _error(499, "request cancelled", "cancelled")
        except CollmError as e:
            status = getattr(e, "http_status", 400)
            raise ApiError(status, str(e), "upstream_error" if status >= 500 else "invalid_request_error") from None
        except Exception:
            status = 500
            log.exception("internal error")
            raise ApiError(500, "internal server error", "server_error") from None
        finally:
            metrics.inc("collm_requests_total", endpoint=endpoint, status=status)
            lim = state.get("limiter")
            if lim is not None:
                metrics.set("collm_queued", lim.queued)

        ans, usage = out["ans"], out["usage"]
        comp = chosen_completion(ans)
        metrics.inc("collm_samples_total", ans.n)
        metrics.inc("collm_flops_total", usage.flops)
        metrics.inc("collm_tokens_total", usage.prompt_tokens, kind="prompt")
        metrics.inc("collm_tokens_total", usage.completion_tokens, kind="completion")
        if out["budget"].load_shrunk:
            metrics.inc("collm_load_shrunk_total")
        metrics.observe("collm_request_latency_seconds", time.perf_counter() - t0)
        metrics.observe("collm_samples_per_request", ans.n, SAMPLE_BUCKETS)
        info = S.CollmInfo(answer=ans.answer, votes={k: float(v) for k, v in ans.votes.items()}, samples=ans.n,
                           strategy=ans.strategy, task=out["task"], difficulty=out["difficulty"],
                           flops=usage.flops, budget=out["budget"])
        common = dict(created=int(time.time()), model=cfg.model_name,
                      usage=S.UsageOut(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                                       total_tokens=usage.total_tokens), collm=info)
        text = comp.text if comp else ""
        finish = comp.finish_reason if comp else "stop"
        if endpoint == "chat":
            return S.ChatCompletionResponse(id=f"chatcmpl-{uuid.uuid4().hex}", **common, choices=[
                S.ChatChoice(index=0, message=S.ChatChoiceMessage(content=text), finish_reason=finish)])
        return S.CompletionResponse(id=f"cmpl-{uuid.uuid4().hex}", **common, choices=[
            S.CompletionChoice(index=0, text=text, finish_reason=finish)])

    @app.post("/v1/chat/completions", response_model=S.ChatCompletionResponse, responses=ERRORS)
    async def chat_completions(body: S.ChatCompletionRequest, request: Request, key_id=Depends(authorize)):
        return await answer(request, body, None, "chat", key_id)

    @app.post("/v1/completions", response_model=S.CompletionResponse, responses=ERRORS)
    async def completions(body: S.CompletionRequest, request: Request, key_id=Depends(authorize)):
        return await answer(request, body, Prompt(body.prompt), "completions", key_id)

    @app.get("/v1/models", response_model=S.ModelList, responses={401: ERRORS[401]})
    async def models(key_id=Depends(authorize)):
        return S.ModelList(data=[S.ModelCard(id=cfg.model_name, created=int(time.time()))])

    @app.get("/health", response_model=S.Health)
    async def health():
        lim = limiter()
        return S.Health(status="ok", model=cfg.model_name, in_flight=lim.in_flight, queued=lim.queued)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        lim = limiter()
        metrics.set("collm_in_flight", lim.in_flight)
        metrics.set("collm_queued", lim.queued)
        metrics.set("collm_budget_level", lim.level)
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
