"""Streaming (`stream: true`): server-sent events in OpenAI's chunk format.

The first part runs the server on the deterministic fake backend through
httpx and reads the raw event stream: keep-alives while samples run, the
chunks, the usage chunk only when asked for, the collm object on the last
chunk, [DONE] last; errors before the stream (ordinary HTTP errors) and in
it (an error event); a client that leaves cancels its samples. The second
part (marked `model`) is the compatibility check: the official openai
client, sync and async, and raw httpx against `collm serve` on SmolLM2.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import conftest
import httpx
import pytest
from test_serve import FakeBackend, chat

from collm.allocation.thresholds import ThresholdPolicy
from collm.backends.remote import UpstreamError
from collm.errors import CollmError
from collm.serve import ServeConfig, create_app
from collm.serve.stream import KEEPALIVE, pieces


class Wordy(FakeBackend):
    """Replies long enough to be streamed in several pieces."""

    def reply(self, prompt, j, params):
        c = super().reply(prompt, j, params)
        c.text = f"Sample {j}: six times seven makes forty-two, so the answer is {c.text}"
        return c


class CancellableWordy(conftest.CancellableFake, Wordy):
    pass


def app_for(backend=None, policy=None, **cfg):
    cfg.setdefault("stream_keepalive_s", 0.02)
    return create_app(backend or Wordy(), ServeConfig(model_name="fake", **cfg), policy=policy)


async def post(app, path, body, headers=None):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        return await c.post(path, json=body, headers=headers)


def run(coro):
    return asyncio.run(coro)


def events(text: str) -> list:
    """The stream's events in order: "keep-alive" for a keep-alive comment, the
    parsed JSON of a data line, "[DONE]". Every line is checked to be one of
    these, and every event to end with a blank line."""
    assert text.endswith("\n\n"), text[-40:]
    out = []
    for block in text[:-2].split("\n\n"):
        assert "\n" not in block, block  # one line per event
        if block == KEEPALIVE.strip():
            out.append("keep-alive")
        elif block == "data: [DONE]":
            out.append("[DONE]")
        else:
            assert block.startswith("data: {"), block
            out.append(json.loads(block[len("data: "):]))
    return out


def data(evs: list) -> list[dict]:
    return [e for e in evs if isinstance(e, dict)]


def stream_of(app, path, body) -> tuple[httpx.Response, list]:
    r = run(post(app, path, body))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    return r, events(r.text)


# ---- the text in pieces ----

@pytest.mark.parametrize("text", ["", "42", "  leading and trailing  ", "one two three four five six seven eight",
                                  "a\nnew line\n\nand a tab\there", "x" * 50, "\\boxed{42} " * 5])
def test_pieces_join_to_the_text_and_end_at_a_word_once_16_characters_long(text):
    ps = pieces(text)
    assert "".join(ps) == text and all(ps)
    for p in ps[:-1]:  # each piece closes at the first word end at or past 16 characters
        last_word = len(p) - len(p.rstrip()) + len(p.rstrip().split()[-1])
        assert len(p) >= 16 and len(p) - last_word < 16


def test_pieces_examples():
    assert pieces("one two three four five six seven eight") == ["one two three four ", "five six seven eight"]
    assert pieces("x" * 50) == ["x" * 50] and pieces("") == [] and pieces("  ") == ["  "]


# ---- the stream on the fake backend ----

def test_chat_stream_keepalives_then_chunks_then_done_and_the_same_answer_as_without_streaming():
    block = threading.Event()
    app = app_for(Wordy(block=block))
    threading.Timer(0.3, block.set).start()  # the samples take 0.3 s: keep-alives every 0.02 s meanwhile
    _, evs = stream_of(app, "/v1/chat/completions", chat(stream=True))
    plain = run(post(app, "/v1/chat/completions", chat())).json()

    first = next(i for i, e in enumerate(evs) if e != "keep-alive")
    assert first >= 3  # keep-alives came while the samples ran
    assert evs[-1] == "[DONE]" and evs.count("[DONE]") == 1 and "keep-alive" not in evs[first:]
    chunks = data(evs)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and {c["model"] for c in chunks} == {"fake"}
    assert all(len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"] for c in chunks[1:-1]]
    assert len(content) >= 3 and all(set(d) == {"content"} for d in content)
    assert "".join(d["content"] for d in content) == plain["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert all("usage" not in c for c in chunks)  # only with include_usage
    assert "collm" in chunks[-1] and all("collm" not in c for c in chunks[:-1])
    assert chunks[-1]["collm"] == plain["collm"]
    assert chunks[-1]["collm"]["answer"] == "42" and chunks[-1]["collm"]["samples"] == 4


def test_include_usage_adds_the_usage_chunk_with_the_collm_object_before_done():
    app = app_for()
    body = chat(stream=True, stream_options={"include_usage": True})
    _, evs = stream_of(app, "/v1/chat/completions", body)
    plain = run(post(app, "/v1/chat/completions", chat())).json()
    chunks = data(evs)
    assert evs[-1] == "[DONE]" and evs[-2] == chunks[-1]
    last, finish = chunks[-1], chunks[-2]
    assert last["choices"] == [] and last["usage"] == plain["usage"]
    assert last["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}  # every sample
    assert all(c["usage"] is None for c in chunks[:-1])  # null until the usage chunk, as OpenAI sends it
    assert finish["choices"][0]["finish_reason"] == "stop" and "collm" not in finish
    assert last["collm"] == plain["collm"]
    # include_usage false is the same as leaving it out; include_obfuscation is accepted and ignored
    for opts in ({"include_usage": False}, {"include_obfuscation": True}, {}):
        _, evs = stream_of(app, "/v1/chat/completions", chat(stream=True, stream_options=opts))
        assert all("usage" not in c for c in data(evs)) and data(evs)[-1]["choices"][0]["finish_reason"] == "stop"


def test_completions_stream_text_chunks_one_choice_under_a_forced_n():
    app = app_for()
    body = {"prompt": "What is 6 x 7?", "n": 8, "max_tokens": 16}
    _, evs = stream_of(app, "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}})
    plain = run(post(app, "/v1/completions", body)).json()
    chunks = data(evs)
    assert {c["object"] for c in chunks} == {"text_completion"} and chunks[0]["id"].startswith("cmpl-")
    texts = [c["choices"] for c in chunks[:-1]]
    assert all(len(ch) == 1 and ch[0]["index"] == 0 for ch in texts)  # n is the budget: one aggregated choice
    assert "".join(ch[0]["text"] for ch in texts) == plain["choices"][0]["text"]
    assert texts[-1][0] == {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    assert chunks[-1]["usage"]["completion_tokens"] == 40  # 8 samples of 5 tokens
    assert chunks[-1]["collm"]["samples"] == 8 and chunks[-1]["collm"]["budget"]["source"] == "client"


def test_a_policy_stream_carries_the_measured_difficulty():
    app = app_for(policy=ThresholdPolicy([1.0, 3.0], [1, 4, 8]), max_n=8)
    _, evs = stream_of(app, "/v1/chat/completions", chat("x" * 40, stream=True))
    info = data(evs)[-1]["collm"]
    assert info["samples"] == 8 and info["difficulty"] == pytest.approx(4.0) and info["budget"]["source"] == "policy"


def test_a_greedy_answer_streams_too():
    _, evs = stream_of(app_for(), "/v1/chat/completions", chat(n=1, stream=True))
    chunks = data(evs)
    assert chunks[-1]["collm"]["strategy"] == "greedy" and chunks[-1]["collm"]["samples"] == 1
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).startswith("Sample 0: six")


def test_a_stream_is_counted_in_the_metrics():
    app = app_for()
    stream_of(app, "/v1/chat/completions", chat(stream=True))
    stream_of(app, "/v1/completions", {"prompt": "q", "stream": True})
    m = app.state.metrics
    assert m.counter("collm_requests_total", endpoint="chat", status=200) == 1
    assert m.counter("collm_requests_total", endpoint="completions", status=200) == 1
    assert m.counter("collm_samples_total") == 8


# ---- bad input: 400 in OpenAI's error shape ----

@pytest.mark.parametrize("extra,needle", [
    ({"stream": "yes"}, "stream: Input should be a valid boolean"),
    ({"stream": 1}, "stream: Input should be a valid boolean"),
    ({"stream": "true"}, "stream: Input should be a valid boolean"),
    ({"stream": [True]}, "stream: Input should be a valid boolean"),
    ({"stream_options": {"include_usage": True}}, "stream_options is only allowed with stream: true"),
    ({"stream": False, "stream_options": {}}, "stream_options is only allowed with stream: true"),
    ({"stream": True, "stream_options": {"include_usage": True, "chunk_size": 4}}, "stream_options.chunk_size"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"stream": True, "stream_options": True}, "stream_options: Input should be a valid dictionary"),
    ({"stream": True, "stream_options": "include_usage"}, "stream_options: Input should be a valid dictionary"),
    ({"stream": True, "stream_options": [{"include_usage": True}]}, "stream_options: Input should be a valid dict"),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_bad_stream_fields_are_400(path, extra, needle):
    body = chat(**extra) if path.endswith("chat/completions") else {"prompt": "q", **extra}
    r = run(post(app_for(), path, body))
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    err = r.json()["error"]
    assert needle in err["message"] and err["type"] == "invalid_request_error"


def test_stream_null_or_false_is_an_ordinary_response():
    app = app_for()
    for v in (None, False):
        r = run(post(app, "/v1/chat/completions", chat(stream=v)))
        assert r.status_code == 200 and r.json()["object"] == "chat.completion"


# ---- errors before the stream are HTTP errors; after, an error event ----

def test_errors_before_the_stream_keep_their_status():
    async def go():
        keyed = app_for(api_keys=["secret-key-1"])
        budget = app_for(bucket_capacity=100, bucket_refill_per_s=0.001)
        return [await post(keyed, "/v1/chat/completions", chat(stream=True)),
                await post(keyed, "/v1/chat/completions", chat(stream=True), {"Authorization": "Bearer wrong-key"}),
                await post(app_for(), "/v1/chat/completions", chat(stream=True, model="gpt-9")),
                await post(app_for(), "/v1/chat/completions", chat(stream=True, n=32)),
                await post(budget, "/v1/chat/completions", chat(stream=True, max_tokens=500)),  # over the capacity
                await post(budget, "/v1/chat/completions", chat(stream=True, n=4, max_tokens=30)),  # over the level
                ]
    rs = run(go())
    assert [r.status_code for r in rs] == [401, 401, 404, 400, 400, 429]
    assert all(r.headers["content-type"] == "application/json" and "error" in r.json() for r in rs)
    assert rs[-1].json()["error"]["type"] == "rate_limit_error" and int(rs[-1].headers["retry-after"]) >= 1


def test_a_full_queue_is_429_before_the_stream():
    block = threading.Event()
    app = app_for(Wordy(block=block), max_queue=0)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat(stream=True)))
            await asyncio.sleep(0.2)  # the first holds the one slot
            second = await c.post("/v1/chat/completions", json=chat(stream=True))
            block.set()
            return await first, second
    first, second = run(go())
    assert second.status_code == 429 and second.json()["error"]["code"] == "queue_full" and second.headers["retry-after"]
    assert first.status_code == 200 and events(first.text)[-1] == "[DONE]"


@pytest.mark.parametrize("exc,type_,needle,status", [
    (UpstreamError("upstream down"), "upstream_error", "upstream down", 502),
    (RuntimeError("a bug"), "server_error", "internal server error", 500),
])
def test_an_error_mid_stream_is_an_error_event_then_done(exc, type_, needle, status):
    block = threading.Event()
    app = app_for(Wordy(fail=exc, block=block))
    threading.Timer(0.1, block.set).start()
    r, evs = stream_of(app, "/v1/chat/completions", chat(stream=True, stream_options={"include_usage": True}))
    assert evs[0] == "keep-alive" and evs[-1] == "[DONE]"
    assert data(evs) == [evs[-2]]  # nothing but the error: no chunk was sent before it
    err = evs[-2]["error"]
    assert err["type"] == type_ and err["message"] == needle and set(err) == {"message", "type", "param", "code"}
    assert "a bug" not in r.text
    assert app.state.metrics.counter("collm_requests_total", endpoint="chat", status=status) == 1


def test_a_timeout_mid_stream_is_an_error_event_and_cancels_the_samples():
    fake = CancellableWordy()
    app = app_for(fake, request_timeout_s=0.3, stream_keepalive_s=0.05)

    async def go():
        r = await post(app, "/v1/chat/completions", chat(stream=True))
        return r, await asyncio.to_thread(fake.cancelled.wait, 3)  # while the loop runs (see drive)
    r, cancelled = run(go())
    assert r.status_code == 200 and cancelled
    evs = events(r.text)
    assert evs[0] == "keep-alive" and evs[-1] == "[DONE]"
    assert evs[-2]["error"]["type"] == "timeout_error" and evs[-2]["error"]["code"] == "timeout"
    assert app.state.metrics.counter("collm_requests_total", endpoint="chat", status=504) == 1


# ---- a client that leaves mid-stream cancels its samples ----

def drive(app, body: bytes, leave_after: float, cancelled: threading.Event):
    """Drive the ASGI app by hand: send the body, read what it sends, then
    say that the client went away. Returns what the app sent, and whether
    `cancelled` was set within 3 s of the app's end, while the event loop
    still runs (asyncio.run cancels every task left when it ends, which
    would cancel the samples whatever the server did)."""
    sent = []

    async def go():
        gone = asyncio.Event()
        msgs = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if msgs:
                return msgs.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(m):
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "server": ("test", 80), "client": ("127.0.0.1", 1),
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.sleep(leave_after)
        gone.set()
        await asyncio.wait_for(task, 10)
        return await asyncio.to_thread(cancelled.wait, 3)
    return sent, run(go())


def test_a_client_that_leaves_mid_stream_cancels_its_samples():
    fake = CancellableWordy()  # waits for its cancel event (5 s at most)
    app = app_for(fake, stream_keepalive_s=0.05)
    sent, cancelled = drive(app, json.dumps(chat(stream=True)).encode(), 0.4, fake.cancelled)
    assert cancelled
    start = sent[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    bodies = [m.get("body", b"") for m in sent[1:]]
    assert bodies.count(KEEPALIVE.encode()) >= 3 and b"data:" not in b"".join(bodies)
    m = app.state.metrics
    assert m.counter("collm_cancelled_total") == 1
    assert m.counter("collm_requests_total", endpoint="chat", status=499) == 1


class SlowScore(CancellableWordy):
    """Its difficulty pass (before admission: the budget depends on it) waits for the cancel event."""

    def score_prompt(self, prompts, cancel=None):
        if cancel is not None and cancel.wait(5):
            self.cancelled.set()
            raise CollmError("cancelled")
        return super().score_prompt(prompts)


def test_a_client_that_leaves_before_the_stream_began_gets_499_and_cancels_too():
    fake = SlowScore()
    app = app_for(fake, policy=ThresholdPolicy([1.0], [1, 4]))
    sent, cancelled = drive(app, json.dumps(chat(stream=True)).encode(), 0.3, fake.cancelled)
    assert cancelled
    assert sent[0]["status"] == 499 and json.loads(sent[1]["body"])["error"]["type"] == "cancelled"
    assert app.state.metrics.counter("collm_cancelled_total") == 1


# ---- real clients against `collm serve` on SmolLM2 ----

KEY = "stream-test-key-1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "smollm2-135m"
Q = "Tom has 3 apples and buys 2 more. How many apples does he have?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `collm serve` on loopback for the module (as in test_serve_model.py)."""
    tmp = tmp_path_factory.mktemp("serve-stream")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = open(tmp / "serve.log", "w+")
    cmd = [sys.executable, "-m", "collm", "serve", "--model", MODEL, "--port", str(port), "--policy", "none",
           "--default-n", "2", "--max-tokens", "16", "--max-n", "4", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "COLLM_API_KEYS": KEY})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # bounded: a first load may convert weights
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"collm serve exited: {log.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("collm serve did not become ready in 180 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(scope="module")
def sync_client(server):
    import openai

    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=300)


def async_client(server):
    import openai

    return openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=300)


def checked_chat_chunks(stream) -> list:
    """Every chunk, each one re-validated strictly as the client's own type."""
    from openai.types.chat import ChatCompletionChunk

    out = []
    for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        ChatCompletionChunk.model_validate(chunk.model_dump())  # no field the type does not allow
        out.append(chunk)
    return out


def joined(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


CASES = {  # name -> the request's options; a seed makes a stream and its plain twin draw the same samples
    "plain": {"seed": 7},
    "n": {"n": 3, "seed": 7, "temperature": 0.8},
    "greedy": {"n": 1},
    "collm": {"extra_body": {"collm": {"n": 2, "task": "number"}}, "seed": 3},
}


@pytest.mark.model
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("usage", [False, True])
def test_openai_client_chat_stream_matches_the_plain_answer(sync_client, case, usage):
    kw = {"model": MODEL, "messages": [{"role": "user", "content": Q}], "max_tokens": 16, **CASES[case]}
    plain = sync_client.chat.completions.create(**kw)
    extra = {"stream_options": {"include_usage": True}} if usage else {}
    chunks = checked_chat_chunks(sync_client.chat.completions.create(**kw, stream=True, **extra))

    assert joined(chunks) == plain.choices[0].message.content and plain.choices[0].message.content
    assert len({c.id for c in chunks}) == 1 and chunks[0].choices[0].delta.role == "assistant"
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in chunks[:-1])
    finish = chunks[-2] if usage else chunks[-1]
    assert finish.choices[0].finish_reason == plain.choices[0].finish_reason
    last = chunks[-1]
    info = last.model_extra["collm"]
    assert info["answer"] == plain.model_extra["collm"]["answer"] and info["samples"] == plain.model_extra["collm"]["samples"]
    assert all("collm" not in (c.model_extra or {}) for c in chunks[:-1])
    if usage:
        assert last.choices == [] and last.usage is not None
        assert last.usage.model_dump() == plain.usage.model_dump()
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert all(c.usage is None for c in chunks)
    n = {"n": 3, "greedy": 1, "collm": 2}.get(case, 2)
    assert info["samples"] == n and info["budget"]["source"] == ("default" if case == "plain" else "client")


@pytest.mark.model
def test_openai_client_legacy_completions_stream(sync_client):
    from openai.types import Completion

    kw = {"model": MODEL, "prompt": Q, "max_tokens": 16, "n": 2, "seed": 5}
    plain = sync_client.completions.create(**kw)
    chunks = list(sync_client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert all(isinstance(c, Completion) and c.object == "text_completion" for c in chunks)
    # the type wants a finish_reason on every choice, which no stream (OpenAI's included) gives but the last
    for c in (chunks[-2], chunks[-1]):
        Completion.model_validate(c.model_dump())
    assert "".join(c.choices[0].text for c in chunks if c.choices) == plain.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert chunks[-1].model_extra["collm"]["samples"] == 2


@pytest.mark.model
def test_async_openai_client_streams(server):
    from openai.types import Completion
    from openai.types.chat import ChatCompletionChunk

    async def go():
        client = async_client(server)
        async with client:
            kw = {"model": MODEL, "messages": [{"role": "user", "content": Q}], "max_tokens": 16, "seed": 11, "n": 2}
            plain = await client.chat.completions.create(**kw)
            chat_chunks = [c async for c in await client.chat.completions.create(
                **kw, stream=True, stream_options={"include_usage": True})]
            comp = [c async for c in await client.completions.create(model=MODEL, prompt=Q, max_tokens=8, stream=True,
                                                                      extra_body={"collm": {"n": 1}})]
            return plain, chat_chunks, comp
    plain, chat_chunks, comp = asyncio.run(go())
    for c in chat_chunks:
        assert isinstance(c, ChatCompletionChunk)
        ChatCompletionChunk.model_validate(c.model_dump())
    assert joined(chat_chunks) == plain.choices[0].message.content
    assert chat_chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert chat_chunks[-1].model_extra["collm"]["samples"] == 2
    assert all(isinstance(c, Completion) for c in comp) and comp[-1].choices[0].finish_reason in ("stop", "length")
    assert comp[-1].model_extra["collm"]["strategy"] == "greedy"


@pytest.mark.model
def test_errors_through_the_client_when_streaming(sync_client, server):
    import openai

    with pytest.raises(openai.BadRequestError, match="over this server's limit"):
        sync_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=9, stream=True)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="not-the-key", max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)


@pytest.mark.model
def test_raw_sse_over_http(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": Q}], "max_tokens": 16, "seed": 7, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        text = "".join(r.iter_text())
    evs = events(text)
    assert {e for e in evs if isinstance(e, str)} <= {"keep-alive", "[DONE]"} and evs[-1] == "[DONE]"
    chunks = data(evs)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and chunks[-1]["collm"]["samples"] == 2
    plain = httpx.post(f"{server}/v1/chat/completions", json={**body, "stream": False}, timeout=300,
                       headers={"Authorization": f"Bearer {KEY}"}).json()
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == \
        plain["choices"][0]["message"]["content"]
