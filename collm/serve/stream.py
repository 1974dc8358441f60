"""Streaming answers: `stream: true` as server-sent events in OpenAI's chunk format.

collm answers with one aggregated choice, known only once its samples are
drawn and voted on. So a stream goes:

    (the request is admitted: a model slot, its budget charged; anything
     refused before that is an ordinary HTTP error with its status)
    : keep-alive                      every keepalive_s while the samples run,
    : keep-alive                      so that proxies keep the connection open
    data: {chunk: role "assistant"}
    data: {chunk: a piece of the chosen completion's text}   a few of these
    data: {chunk: finish_reason}      + the collm object, without include_usage
    data: {chunk: choices [], usage}  + the collm object, only with include_usage
    data: [DONE]

An error once the stream has begun is one `data: {"error": {...}}` event,
then [DONE]. Every case streams after aggregation: the engines have no token
callback, so not even a single greedy pass can stream its tokens live.

A client that goes away mid-stream has its samples cancelled: the response
cancels the work when it ends, however it ends (collm.serve.scope).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

from starlette.responses import StreamingResponse

from collm.serve import schemas as S
from collm.serve.config import ApiError, as_api_error
from collm.serve.responses import chosen_completion, collm_info, usage_out

log = logging.getLogger("collm.serve")

KEEPALIVE = ": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see traffic
DONE = "data: [DONE]\n\n"
PIECE_CHARS = 16


def pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of about `size` characters, at word ends where
    there is one (a word longer than that is one piece); joined, they are
    `text` exactly."""
    out, cur = [], ""
    for word in re.findall(r"\S+\s*|\s+", text):
        cur += word
        if len(cur) >= size:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def event(chunk: S.ChatCompletionChunk | S.CompletionChunk, include_usage: bool) -> str:
    """One `data:` line. `usage` is sent only when the client asked for it (null
    until the usage chunk), `collm` only on the chunk that carries it."""
    drop = set() if include_usage else {"usage"}
    if chunk.collm is None:
        drop.add("collm")
    return f"data: {chunk.model_dump_json(exclude=drop)}\n\n"


def error_event(err: ApiError) -> str:
    body = S.ErrorResponse(error=S.ErrorBody(message=err.message, type=err.type, param=err.param, code=err.code))
    return f"data: {body.model_dump_json()}\n\n"


def chunks(endpoint: str, result, model: str, include_usage: bool) -> Iterator[str]:
    """The events of an answered request, [DONE] excluded: /v1/chat/completions
    ("chat") sends `chat.completion.chunk`s with deltas, /v1/completions
    `text_completion` chunks with text. One choice, index 0, as the response
    without streaming has; `collm` rides on the last chunk."""
    comp = chosen_completion(result.ans)
    text = comp.text if comp else ""
    finish = comp.finish_reason if comp else "stop"
    info = collm_info(result)
    chat = endpoint == "chat"
    cls = S.ChatCompletionChunk if chat else S.CompletionChunk
    head = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}

    def choice(piece: str = "", finish_reason: str | None = None, role: bool = False):
        if not chat:
            return S.CompletionChunkChoice(index=0, text=piece, finish_reason=finish_reason)
        delta = S.ChunkDelta(role="assistant", content="") if role else S.ChunkDelta(content=piece or None)
        return S.ChatChunkChoice(index=0, delta=delta, finish_reason=finish_reason)

    def send(choices: list, **extra) -> str:
        return event(cls(**head, choices=choices, **extra), include_usage)

    if chat:
        yield send([choice(role=True)])
    for piece in pieces(text):
        yield send([choice(piece)])
    yield send([choice(finish_reason=finish)], collm=None if include_usage else info)
    if include_usage:
        yield send([], usage=usage_out(result.usage), collm=info)


async def events(work: asyncio.Future, *, endpoint: str, model: str, include_usage: bool, keepalive_s: float,
                 deadline: float, timeout_s: float, done: Callable[[int, object], None]) -> AsyncIterator[str]:
    """The body of a streamed response: keep-alives until `work` (the request's
    Server.answer) ends, then its chunks, or an error event; [DONE] last.
    `deadline` (time.perf_counter) is the request's timeout. done(status,
    result) is called once the last event is out: 200 and the Result, or the
    error's status and None."""
    try:
        while not work.done():
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ApiError(504, f"request took longer than {timeout_s:g} s", "timeout_error", "timeout")
            await asyncio.wait({work}, timeout=min(keepalive_s, left))
            if not work.done():
                yield KEEPALIVE
        result = work.result()
        for e in chunks(endpoint, result, model, include_usage):
            yield e
    except Exception as e:  # the stream has begun: the error is an event, not a status
        err = as_api_error(e)
        if err.status == 500:
            log.error("internal error in a stream", exc_info=e)
        yield error_event(err)
        yield DONE
        done(err.status, None)
        return
    yield DONE
    done(200, result)


class EventStream(StreamingResponse):
    """A text/event-stream response that calls on_close() when it ends, however
    it ends: sent in full, the client gone (Starlette cancels the body), or a
    failed send. The request's work is cancelled there, so no sample outlives
    its client."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]):
        # no-cache: the answer is the client's alone; X-Accel-Buffering: nginx passes each event at once
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
