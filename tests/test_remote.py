"""The remote backend's logic against small OpenAI-compatible doubles on
loopback: n honoured (vLLM-like) or ignored (llama.cpp-like, fanned out),
load balancing and failover, logprobs refused, prompt scoring from echo,
errors and timeouts, cancellation. A real llama.cpp server is the upstream
in test_remote_llamacpp.py."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from collm.backends.remote import RemoteBackend, UpstreamError, UpstreamTimeout, topk_entropy
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.types import SamplingParams


def fake_upstream(multi_n=True, logprobs_ok=True, fail=None, delay=0.0, name="m", stop_field=None, top_k_ok=True):
    """An OpenAI-compatible double: completion j of a request says "answer \\boxed{seed+j}" in 3 tokens."""
    app = FastAPI()
    app.state.requests = []
    app.state.disconnected = 0

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "x"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await req.json()
        app.state.requests.append(body)
        if fail:
            return JSONResponse({"error": {"message": fail[1]}}, status_code=fail[0])
        if body.get("logprobs") and not logprobs_ok:
            return JSONResponse({"error": {"message": "logprobs not supported"}}, status_code=400)
        if "top_k" in body and not top_k_ok:  # as OpenAI's own API: an unknown field is refused
            return JSONResponse({"error": {"message": "Unrecognized request argument supplied: top_k"}}, status_code=400)
        if delay:  # a slow upstream that notices when its client hangs up
            import asyncio

            for _ in range(int(delay / 0.05)):
                if await req.is_disconnected():
                    app.state.disconnected += 1
                    return JSONResponse({"error": {"message": "gone"}}, status_code=499)
                await asyncio.sleep(0.05)
        n = body.get("n", 1) if multi_n else 1
        seed = body.get("seed", 0)
        choices = []
        for j in range(n):
            lp = {"content": [{"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []} for t in "abc"]}
            choices.append({"index": j, "message": {"role": "assistant", "content": f"answer \\boxed{{{seed + j}}}"},
                            "finish_reason": "stop", "logprobs": lp if body.get("logprobs") else None})
            if stop_field and body.get("stop"):  # even choices stopped on the first stop string, odd ones at EOS
                choices[-1][stop_field] = body["stop"][0] if j % 2 == 0 else (None if stop_field == "stop_reason" else 2)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": name, "choices": choices,
                "usage": {"prompt_tokens": 20, "completion_tokens": 3 * n, "total_tokens": 20 + 3 * n}}

    @app.post("/v1/completions")
    async def completions(req: Request):
        body = await req.json()
        text = body["prompt"]
        words, offs, pos = [], [], 0
        for w in text.split(" "):
            words.append(w if not offs else " " + w)
            offs.append(pos)
            pos += len(words[-1])
        tops = [None] + [{"a": -0.1, "b": -2.5} for _ in words[1:]]
        lps = {"tokens": words, "text_offset": offs, "token_logprobs": [None] + [-1.0] * (len(words) - 1),
               "top_logprobs": tops}
        return {"id": "y", "object": "text_completion", "created": 0, "model": name,
                "choices": [{"index": 0, "text": text + " x", "finish_reason": "length", "logprobs": lps}],
                "usage": {"prompt_tokens": len(words), "completion_tokens": 1, "total_tokens": len(words) + 1}}

    return app


class Served:
    """A uvicorn server on a free loopback port, in a thread, stopped on exit (bounded waits)."""

    def __init__(self, app):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("test upstream did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


def test_n_honoured_one_request_logprobs_and_flops():
    with Served(fake_upstream(multi_n=True)) as up:
        b = RemoteBackend([up.url], params=100)
        try:
            g = b.generate([Prompt("q?")], n=4, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=8, seed=10))[0]
        finally:
            b.close()
        assert len(up.app.state.requests) == 1 and up.app.state.requests[0]["n"] == 4
        assert [c.text for c in g.completions] == [f"answer \\boxed{{{10 + j}}}" for j in range(4)]
        assert all(c.tokens == 3 and c.logprob == pytest.approx(-1.5) for c in g.completions)
        assert g.usage.prompt_tokens == 20 and g.usage.completion_tokens == 12
        assert g.usage.flops == 2 * 100 * (20 + 12)
        assert b.model == "m" and b._multi_n == [True]


def test_n_ignored_is_fanned_out_with_distinct_seeds_and_remembered():
    with Served(fake_upstream(multi_n=False)) as up:
        b = RemoteBackend(up.url, params=100)
        try:
            g = b.generate([Prompt("q?")], n=3, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=8, seed=5))[0]
            reqs = list(up.app.state.requests)
            g2 = b.generate([Prompt("q?")], n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=8, seed=7))[0]
        finally:
            b.close()
        assert sorted(r["seed"] for r in reqs) == [5, 6, 7]
        assert sorted(c.text for c in g.completions) == [f"answer \\boxed{{{s}}}" for s in (5, 6, 7)]
        assert g.usage.prompt_tokens == 20 and g.usage.completion_tokens == 9  # the prompt counts once
        assert b._multi_n == [False]
        later = up.app.state.requests[len(reqs):]
        assert len(later) == 2 and all(r["n"] == 1 for r in later)  # no wasted n > 1 request any more
        assert len(g2.completions) == 2


def test_logprobs_refused_retries_without_and_counts_tokens_from_usage():
    with Served(fake_upstream(multi_n=True, logprobs_ok=False)) as up:
        b = RemoteBackend(up.url, params=1)
        try:
            g = b.generate(["q?"], n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=8, seed=None))[0]
        finally:
            b.close()
        assert b._logprobs == [False]
        assert [c.tokens for c in g.completions] == [3, 3] and g.completions[0].token_logprobs == []


@pytest.mark.parametrize("top_k_ok", [True, False])
def test_top_k_is_sent_where_the_upstream_takes_it_and_dropped_where_refused(top_k_ok):
    with Served(fake_upstream(top_k_ok=top_k_ok)) as up:
        b = RemoteBackend(up.url, params=1)
        try:
            g = b.generate(["q?"], n=2, params=SamplingParams(temperature=0.8, top_k=50, max_tokens=8, seed=None))[0]
            b.generate(["q?"], n=2, params=SamplingParams(temperature=0.8, top_k=50, max_tokens=8, seed=None))
            b.generate(["q?"], n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=8, seed=None))  # top_k 0: the field is not sent
        finally:
            b.close()
        assert len(g.completions) == 2
        sent = [r.get("top_k") for r in up.app.state.requests]
        # refused: asked once with it, then again without, and never again
        assert sent == ([50, 50, None] if top_k_ok else [50, None, None, None])
        assert b._top_k == [top_k_ok]


def test_load_balancing_and_failover():
    with Served(fake_upstream()) as a, Served(fake_upstream()) as b_:
        dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
        b = RemoteBackend([a.url, dead, b_.url], params=1)
        try:
            for _ in range(6):
                b.generate(["q?"], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=None))
        finally:
            b.close()
        assert len(a.app.state.requests) == 3 and len(b_.app.state.requests) == 3


@pytest.mark.parametrize("fail,exc,needle", [((500, "boom"), UpstreamError, "HTTP 500: boom"),
                                              ((400, "context too long"), CollmError, "context too long")])
def test_upstream_errors(fail, exc, needle):
    with Served(fake_upstream(fail=fail)) as up:
        b = RemoteBackend(up.url, params=1)
        try:
            with pytest.raises(exc) as e:
                b.generate(["q?"], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=None))
        finally:
            b.close()
        assert needle in str(e.value)
        assert exc is UpstreamError or not isinstance(e.value, UpstreamError)


def test_unreachable_and_timeout():
    b = RemoteBackend("http://127.0.0.1:9/v1", model="m", params=1)
    try:
        with pytest.raises(UpstreamError, match="cannot reach"):
            b.generate(["q?"], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=None))
    finally:
        b.close()
    with Served(fake_upstream(delay=3)) as up:
        b = RemoteBackend(up.url, model="m", params=1, timeout=0.3)
        try:
            with pytest.raises(UpstreamTimeout):
                b.generate(["q?"], params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=None))
        finally:
            b.close()


def test_cancel_stops_waiting_and_cancels_the_request():
    with Served(fake_upstream(delay=3)) as up:
        b = RemoteBackend(up.url, model="m", params=1)
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        try:
            with pytest.raises(CollmError, match="cancelled"):
                b.generate(["q?"], cancel=cancel, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=None))
            for _ in range(100):  # bounded: the upstream sees the connection dropped
                if up.app.state.disconnected:
                    break
                time.sleep(0.05)
        finally:
            b.close()
        assert up.app.state.disconnected == 1


def test_score_prompt_from_echo_logprobs():
    with Served(fake_upstream()) as up:
        b = RemoteBackend(up.url, params=10)
        try:
            s = b.score_prompt([Prompt("how many apples now", system=None)])[0]
        finally:
            b.close()
    # plain template: "user: how many apples now\nassistant: " -> the question's 4 words are tokens 1..4
    assert s.question_span == (1, 5)
    assert len(s.q_entropy) == 4 and s.q_entropy[0] == pytest.approx(topk_entropy({"a": -0.1, "b": -2.5}))
    assert s.usage.flops == 2 * 10 * len(s.token_ids)


def test_topk_entropy():
    assert topk_entropy(None) is None
    assert topk_entropy({"a": 0.0}) == pytest.approx(0.0)
    import math

    assert topk_entropy({"a": math.log(0.5), "b": math.log(0.5)}) == pytest.approx(math.log(2))
    assert topk_entropy({"a": math.log(0.5)}) == pytest.approx(math.log(2))  # the leftover half as one outcome


def test_bad_request_is_refused_before_any_traffic():
    b = RemoteBackend("http://127.0.0.1:9/v1", model="m", params=1)
    with pytest.raises(CollmError, match="n must be"):
        b.generate(["q?"], n=0, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=256, seed=None))
    with pytest.raises(CollmError):
        RemoteBackend([], params=1)


@pytest.mark.parametrize("field", ["stop_reason", "matched_stop", None])
def test_the_matched_stop_string_comes_through_or_is_marked_unknown(field):
    """vLLM says which stop string matched (stop_reason), SGLang too
    (matched_stop, a token id at EOS); an upstream that says neither leaves
    the stop ambiguous, and step search then goes on rather than taking a
    step end for the answer's end."""
    from collm.strategies.steps import step_end

    with Served(fake_upstream(stop_field=field)) as up:
        be = RemoteBackend(up.url, params=1000)
        try:
            comps = be.generate(["q"], n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=16, seed=0, stop=["\n\n"]))[0].completions
            plain = be.generate(["q"], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=16, seed=None))[0].completions[0]
        finally:
            be.close()
    assert plain.stop_known and plain.stop_reason is None  # no stop asked: nothing to tell apart
    if field:
        assert [c.stop_reason for c in comps] == ["\n\n", None] and all(c.stop_known for c in comps)
        assert [step_end(c, ["\n\n"]) for c in comps] == ["step", "eos"]
    else:
        assert [c.stop_known for c in comps] == [False, False]
        assert [step_end(c, ["\n\n"]) for c in comps] == ["step", "step"]
        comps[0].text = ""  # the continuation of an answer that had ended: nothing more
        assert step_end(comps[0], ["\n\n"]) == "eos"
