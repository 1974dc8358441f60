"""The OpenAI-compatible server: one aggregated answer per request.

Every request goes the same way (collm.serve.pipeline):

    auth -> validate -> early budget check -> wait for a model slot
      -> the plan: client's forced n, else the policy's, else the default; capped;
         shrunk by load and by what the token buckets hold
      -> it runs (collm.pipeline: greedy, best-of-N, an allocation policy, ...)
      -> one choice: the text of a completion that gave the winning answer,
         usage counting every sample, and a `collm` object saying what was spent
         (collm.serve.responses), or with `stream: true` the same as
         server-sent events, keep-alives while the samples run (collm.serve.stream)

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

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from collm.answers.program import require_sandbox
from collm.backends.base import Backend
from collm.prompts import Prompt
from collm.serve import schemas as S
from collm.serve.config import ApiError, ServeConfig, as_api_error
from collm.serve.limits import Rejected, check_api_key
from collm.serve.metrics import server_metrics
from collm.serve.middleware import harden
from collm.serve.pipeline import Server, messages_to_prompt, parse
from collm.serve.responses import record, response
from collm.serve.scope import Cancelled
from collm.serve.stream import EventStream, events
from collm.version import __version__

log = logging.getLogger("collm.serve")

ERRORS = {
    400: {"model": S.ErrorResponse, "description": "bad request (schema, limits, unknown task)"},
    401: {"model": S.ErrorResponse, "description": "missing or wrong API key"},
    404: {"model": S.ErrorResponse, "description": "unknown model"},
    413: {"model": S.ErrorResponse, "description": "request body too large"},
    429: {"model": S.ErrorResponse, "description": "over budget or queue full (see Retry-After)"},
    502: {"model": S.ErrorResponse, "description": "upstream failure"},
    504: {"model": S.ErrorResponse, "description": "upstream or request timeout"},
}


def streamed(chunk: str) -> dict:
    """The OpenAPI responses of a completion endpoint: JSON (the response
    model), or with `stream: true` server-sent events. The schema describes
    one event, as OpenAPI 3.2's itemSchema does (and tools read `schema` so
    for event streams before 3.2)."""
    data = {"type": "string", "description": f"a `{chunk}` chunk as JSON, or an `{{\"error\": {{...}}}}` object "
                                             "when the request fails mid-stream; `[DONE]` last"}
    event = {"type": "object", "required": ["data"], "properties": {"data": data},
             "description": "one server-sent event; `: keep-alive` comments come between them while samples run"}
    return {200: {"content": {"text/event-stream": {"schema": event}}}, **ERRORS}


def error_response(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
                   headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


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
                return await error_response(413, message, "invalid_request_error", "body_too_large")(scope, receive, send)
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


def install_error_handlers(app: FastAPI) -> None:
    """OpenAI's {"error": {...}} shape for every error."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error_response(400, "invalid request: " + "; ".join(parts), "invalid_request_error", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = "body_too_large" if exc.status_code == 413 else None
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", code,
                              headers=exc.headers)  # 405: Allow

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.type, exc.code, exc.param, exc.headers)


async def watch_disconnect(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.25)


async def handle(server: Server, request: Request, body: S._Sampling, prompt: Prompt | None, endpoint: str,
                 key_id: str | None):
    """One completion request: parse, answer (cancelled when the client goes
    away or past the timeout), then the response and the metrics.

    With `stream: true` the answer is streamed (collm.serve.stream) from the
    moment the request is admitted: what fails before that (validation, the
    model's name, 400 limits, 429, a timeout in the queue) is an ordinary
    HTTP error; what fails after is an error event in the stream."""
    cfg, metrics = server.cfg, server.metrics
    t0 = time.perf_counter()
    status = 200
    streaming = False
    try:
        if prompt is None:
            prompt = messages_to_prompt(body.messages)
        if body.model is not None and body.model != cfg.model_name:
            raise ApiError(404, f"model {body.model!r} is not served here (this server serves {cfg.model_name!r})",
                           code="model_not_found", param="model")
        req = parse(body, prompt, cfg)
        cancel = threading.Event()
        admitted = asyncio.Event() if body.stream else None
        work = asyncio.ensure_future(server.answer(req, key_id, cancel, admitted))
        ready = asyncio.ensure_future(admitted.wait()) if admitted is not None else work
        watcher = asyncio.ensure_future(watch_disconnect(request))
        try:
            await asyncio.wait({work, ready, watcher}, timeout=cfg.request_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if ready is not work:
                ready.cancel()
        if admitted is not None and admitted.is_set():
            streaming = True
            return open_stream(server, work, cancel, endpoint, body, t0)
        if not work.done():
            cancel.set()
            work.cancel()
            if watcher.done():
                metrics.inc("collm_cancelled_total")
                status = 499
                log.info("client went away: request cancelled")
                return error_response(499, "client closed the request", "cancelled")
            raise ApiError(504, f"request took longer than {cfg.request_timeout_s:g} s", "timeout_error", "timeout")
        result = work.result()
    except Exception as e:
        err = as_api_error(e)
        status = err.status
        if isinstance(e, Rejected):
            metrics.inc("collm_rejected_total", reason=e.reason)
        elif status == 500 and not isinstance(e, ApiError):
            log.exception("internal error")
        if isinstance(e, Cancelled):
            return error_response(499, err.message, err.type)
        raise err from None
    finally:
        if not streaming:  # a stream counts itself when it ends
            metrics.inc("collm_requests_total", endpoint=endpoint, status=status)
            if server._limiter is not None:
                metrics.set("collm_queued", server.limiter.queued)
    record(metrics, result, time.perf_counter() - t0)
    return response(endpoint, result, cfg)


def open_stream(server: Server, work: asyncio.Future, cancel: threading.Event, endpoint: str, body: S._Sampling,
                t0: float) -> EventStream:
    """The streamed response of an admitted request, and what its end
    records: the request's status (200, the status its error event carries,
    or 499 when the client left), its metrics, and its samples cancelled if
    they still run."""
    cfg, metrics = server.cfg, server.metrics
    ended = False

    def done(status: int, result) -> None:
        nonlocal ended
        ended = True
        metrics.inc("collm_requests_total", endpoint=endpoint, status=status)
        metrics.set("collm_queued", server.limiter.queued)
        if result is not None:
            record(metrics, result, time.perf_counter() - t0)

    def on_close() -> None:
        cancel.set()  # the samples stop, if any still run
        work.cancel()
        if not ended:
            metrics.inc("collm_cancelled_total")
            log.info("client went away: stream cancelled")
            done(499, None)

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    content = events(work, endpoint=endpoint, model=cfg.model_name, include_usage=include_usage,
                     keepalive_s=cfg.stream_keepalive_s, deadline=t0 + cfg.request_timeout_s,
                     timeout_s=cfg.request_timeout_s, done=done)
    return EventStream(content, on_close)


def create_app(backend: Backend, config: ServeConfig | None = None, policy=None) -> FastAPI:
    cfg = config or ServeConfig()
    if cfg.task.endswith("+program"):
        require_sandbox()  # a server that would run the model's code refuses to start without the sandbox
    server = Server(backend, cfg, policy, server_metrics())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.shutdown()

    app = FastAPI(title="collm", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible answers that spend test-time compute where it changes the answer.")
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    harden(app)  # no credentials in URLs, nor in the access log
    app.state.metrics, app.state.config, app.state.server = server.metrics, cfg, server
    install_error_handlers(app)

    async def authorize(request: Request) -> str | None:
        if not cfg.api_keys:
            return None
        key_id = check_api_key(request.headers.get("authorization"), cfg.api_keys)
        if key_id is None:
            raise ApiError(401, "missing or invalid API key (send Authorization: Bearer KEY)", "authentication_error",
                           "invalid_api_key")
        return key_id

    @app.post("/v1/chat/completions", response_model=S.ChatCompletionResponse, responses=streamed("chat.completion.chunk"))
    async def chat_completions(body: S.ChatCompletionRequest, request: Request, key_id=Depends(authorize)):
        return await handle(server, request, body, None, "chat", key_id)

    @app.post("/v1/completions", response_model=S.CompletionResponse, responses=streamed("text_completion"))
    async def completions(body: S.CompletionRequest, request: Request, key_id=Depends(authorize)):
        return await handle(server, request, body, Prompt(body.prompt), "completions", key_id)

    @app.get("/v1/models", response_model=S.ModelList, responses={401: ERRORS[401]})
    async def models(key_id=Depends(authorize)):
        return S.ModelList(data=[S.ModelCard(id=cfg.model_name, created=int(time.time()))])

    @app.get("/health", response_model=S.Health)
    async def health():
        lim = server.limiter
        return S.Health(status="ok", model=cfg.model_name, in_flight=lim.in_flight, queued=lim.queued)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        lim, metrics = server.limiter, server.metrics
        metrics.set("collm_in_flight", lim.in_flight)
        metrics.set("collm_queued", lim.queued)
        metrics.set("collm_budget_level", lim.level)
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
