"""The server's logic on a deterministic fake backend: schema, budget,
admission, keys, errors, metrics, cancellation. The real model runs in
test_serve_model.py; a real upstream in test_remote_llamacpp.py."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import conftest
import httpx
import pytest

from collm.allocation.thresholds import ThresholdPolicy
from collm.answers.program import sandbox_problem
from collm.backends.remote import UpstreamError, UpstreamTimeout
from collm.errors import CollmError
from collm.policies import load_policy
from collm.prompts import as_prompt
from collm.serve import ServeConfig, create_app
from collm.serve.limits import Limiter, Rejected, check_api_key

needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=str(sandbox_problem()))

ANSWERS = ["42", "7", "42", "42", "9", "7", "42", "1"]  # sample j answers ANSWERS[j % 8]: 42 wins every n >= 1


class FakeBackend(conftest.FakeBackend):
    """Sample j of a prompt says "... \\boxed{ANSWERS[j]}" in 5 tokens; entropy = len(question) / 10."""

    answers = tuple(ANSWERS)


class CancellableFake(conftest.CancellableFake, FakeBackend):
    pass


def client(backend=None, policy=None, **cfg):
    app = create_app(backend or FakeBackend(), ServeConfig(model_name="fake", **cfg), policy=policy)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), app


def run(coro):
    return asyncio.run(coro)


def chat(question="What is 6 x 7?", **kw):
    return {"messages": [{"role": "user", "content": question}], "max_tokens": 32, **kw}


def test_chat_answer_with_collm_object_and_usage_of_every_sample():
    async def go():
        c, _ = client(default_n=4)
        async with c:
            return await c.post("/v1/chat/completions", json=chat())
    r = run(go())
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["object"] == "chat.completion" and len(d["choices"]) == 1
    assert d["choices"][0]["message"]["content"].endswith("\\boxed{42}")
    assert d["collm"]["answer"] == "42" and d["collm"]["votes"] == {"42": 3.0, "7": 1.0}
    assert d["collm"]["samples"] == 4 and d["collm"]["strategy"] == "majority"
    assert d["collm"]["budget"]["source"] == "default" and d["collm"]["difficulty"] is None
    assert d["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    assert d["collm"]["flops"] == 2.0 * 1000 * 30


def test_top_k_from_the_client_or_the_servers_default():
    async def go():
        be = FakeBackend()
        c, _ = client(be, default_n=2)
        async with c:
            await c.post("/v1/chat/completions", json=chat())
            await c.post("/v1/chat/completions", json=chat(top_k=0))
            await c.post("/v1/chat/completions", json=chat(top_k=5))
        return [c.params.top_k for c in be.calls]
    assert run(go()) == [50, 0, 5]  # 50: the sampling the shipped policies were calibrated with


def test_completions_endpoint_and_forced_n():
    async def go():
        c, _ = client(default_n=4)
        async with c:
            a = await c.post("/v1/completions", json={"prompt": "What is 6 x 7?", "n": 8, "max_tokens": 16})
            b = await c.post("/v1/completions", json={"prompt": ["What?"], "collm": {"n": 1}, "max_tokens": 16})
            return a, b
    a, b = run(go())
    assert a.status_code == 200 and a.json()["object"] == "text_completion"
    assert a.json()["collm"]["samples"] == 8 and a.json()["collm"]["budget"]["source"] == "client"
    assert a.json()["usage"]["completion_tokens"] == 40
    assert b.json()["collm"]["samples"] == 1 and b.json()["collm"]["strategy"] == "greedy"


def test_policy_budget_follows_difficulty_and_client_cap():
    pol = ThresholdPolicy([1.0, 3.0], [1, 4, 8])
    async def go():
        c, _ = client(policy=pol, max_n=8)
        async with c:
            easy = await c.post("/v1/chat/completions", json=chat("2+2?"))  # entropy 0.4
            mid = await c.post("/v1/chat/completions", json=chat("What is 6 x 7?"))  # 1.4
            hard = await c.post("/v1/chat/completions", json=chat("x" * 40))  # 4.0
            capped = await c.post("/v1/chat/completions", json=chat("x" * 40, collm={"max_n": 2}))
            return easy, mid, hard, capped
    easy, mid, hard, capped = [r.json()["collm"] for r in run(go())]
    assert [easy["samples"], mid["samples"], hard["samples"], capped["samples"]] == [1, 4, 8, 2]
    assert easy["difficulty"] == pytest.approx(0.4) and hard["budget"]["source"] == "policy"
    assert easy["flops"] == 2.0 * 1000 * (5 + 10 + 5)  # the scoring prefill is paid and counted


def test_policy_file(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"kind": "thresholds", "thresholds": [0.5], "budgets": [2, 6]}))
    pol = load_policy(p)
    assert pol.budget_for(0.1) == 2 and pol.budget_for(0.9) == 6 and pol.budget_for(None) == 6
    with pytest.raises(CollmError):
        load_policy(tmp_path / "missing.json")
    p.write_text(json.dumps({"kind": "thresholds", "thresholds": [0.5], "budgets": [2]}))
    with pytest.raises(CollmError):
        load_policy(p)


@pytest.mark.parametrize("body,status,needle", [
    ({"messages": []}, 400, "messages"),
    ({}, 400, "messages"),
    (chat(stream="yes"), 400, "stream: Input should be a valid boolean"),  # streaming: test_serve_stream.py
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    (chat(n=99), 400, "n"),
    (chat(n=32), 400, "limit of 16"),
    (chat(max_tokens=5000), 400, "max_tokens"),
    (chat("x" * 20000), 400, "prompt of"),
    (chat("   "), 400, "empty"),
    (chat(collm={"task": "poetry"}), 400, "unknown task"),
    (chat(collm={"task": "gsm8k+program"}), 400, "--execute-code"),  # a client cannot make the server run code
    (chat(collm={"strategy": "magic"}), 400, "unknown strategy"),
    (chat(collm={"bogus": 1}), 400, "bogus"),
    (chat(model="gpt-9"), 404, "not served"),
    (chat(temperature=-1), 400, "temperature"),
    (chat(top_k=-1), 400, "top_k"),
])
def test_bad_input_gets_clear_4xx(body, status, needle):
    async def go():
        c, _ = client()
        async with c:
            return await c.post("/v1/chat/completions", json=body)
    r = run(go())
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


@needs_sandbox
def test_program_answers_when_the_operator_allows_them():
    class Coder(FakeBackend):
        def reply(self, prompt, j, params):
            c = super().reply(prompt, j, params)
            c.text = "```python\nprint(6 * 7)\n```\n```output\n41\n```\nso \\boxed{41}"
            return c

    async def go(task):
        c, _ = client(Coder(), default_n=1, task=task)
        async with c:
            return (await c.post("/v1/chat/completions", json=chat(n=1))).json()
    assert run(go("gsm8k+program"))["collm"]["answer"] == "42"  # what the code prints, not the invented output
    assert run(go("gsm8k"))["collm"]["answer"] == "41"


class Tokenizing(FakeBackend):
    """Encodes every text as UTF-8 first, as the llama.cpp engine's tokenizer does."""

    def generate(self, prompts, n=1, params=None, **kw):
        for p in prompts:
            p = as_prompt(p)
            for text in [p.question, p.system or ""] + [m["content"] for m in p.history]:
                text.encode("utf-8")
        return super().generate(prompts, n, params, **kw)


LONE = '"hi \\ud800"'  # JSON text of a string holding a lone surrogate


@pytest.mark.parametrize("path,body,field", [
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": %s}]}' % LONE, "messages.0.content"),
    ("/v1/chat/completions", '{"messages": [{"role": "system", "content": %s}, {"role": "user", "content": "q"}]}'
     % LONE, "messages.0.content"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": %s}, '
     '{"role": "user", "content": "q"}]}' % LONE, "messages.1.content"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": [{"type": "text", "text": %s}]}]}' % LONE,
     "messages.0.content"),
    ("/v1/completions", '{"prompt": %s}' % LONE, "prompt"),
    ("/v1/completions", '{"prompt": [%s]}' % LONE, "prompt"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field_never_a_500(path, body, field):
    async def go():
        c, _ = client(Tokenizing())
        async with c:
            return await c.post(path, content=body.encode(), headers={"content-type": "application/json"})
    r = run(go())
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert f"{field}: " in err["message"] and "cannot be encoded as UTF-8 (a lone surrogate U+D800" in err["message"]


def test_not_json_and_too_large_bodies():
    async def go():
        c, _ = client(max_body_bytes=1000)
        async with c:
            a = await c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
            b = await c.post("/v1/chat/completions", json=chat("y" * 2000))

            async def chunks():  # no Content-Length: counted as it arrives
                yield b'{"messages": [{"role": "user", "content": "'
                for _ in range(10):
                    yield b"z" * 200
                yield b'"}]}'
            d = await c.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
            return a, b, d
    a, b, d = run(go())
    assert a.status_code == 400 and "invalid request" in a.json()["error"]["message"]
    assert b.status_code == 413 and b.json()["error"]["code"] == "body_too_large"
    assert d.status_code == 413 and "over 1000 bytes" in d.json()["error"]["message"]


def test_api_keys_constant_time_check_and_never_logged(caplog):
    assert check_api_key("Bearer s3cret", ["other", "s3cret"]) == "key2"
    assert check_api_key("s3cret", ["s3cret"]) == "key1"
    assert check_api_key("Bearer s3cre", ["s3cret"]) is None and check_api_key(None, ["s3cret"]) is None

    async def go():
        c, _ = client(api_keys=["s3cret"])
        async with c:
            no = await c.post("/v1/chat/completions", json=chat())
            bad = await c.post("/v1/chat/completions", json={}, headers={"Authorization": "Bearer nope"})
            ok = await c.post("/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer s3cret"})
            models = await c.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
            return no, bad, ok, models
    with caplog.at_level(logging.DEBUG):
        no, bad, ok, models = run(go())
    assert no.status_code == 401 and bad.status_code == 401  # auth is checked before the body
    assert ok.status_code == 200 and models.json()["data"][0]["id"] == "fake"
    assert "s3cret" not in caplog.text


def test_token_bucket_429_with_retry_after_and_per_key_buckets():
    async def go():
        # a request is charged prompt (estimated ~60 tokens) + n x max_tokens, then refunded what it did not use
        c, _ = client(api_keys=["a", "b"], default_n=2, key_bucket_capacity=300, key_bucket_refill_per_s=1)
        async with c:
            h = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
            first = await c.post("/v1/chat/completions", json=chat(), headers=h("a"))
            second = await c.post("/v1/chat/completions", json=chat(max_tokens=60, n=4), headers=h("a"))
            other = await c.post("/v1/chat/completions", json=chat(max_tokens=60, n=4), headers=h("b"))
            return first, second, other
    first, second, other = run(go())
    assert first.status_code == 200
    assert second.status_code == 429 and 1 <= int(second.headers["retry-after"]) <= 300
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert other.status_code == 200  # another key has its own bucket


def test_bucket_shrinks_policy_budget_but_refuses_forced_n():
    async def go():
        # capacity 200 tokens: prompt estimate ~40 + n x 32 -> at most 4 samples
        c, _ = client(default_n=8, bucket_capacity=200, bucket_refill_per_s=0.001)
        async with c:
            shrunk = await c.post("/v1/chat/completions", json=chat())
            forced = await c.post("/v1/chat/completions", json=chat(n=8))
            return shrunk, forced
    shrunk, forced = run(go())
    b = shrunk.json()["collm"]["budget"]
    assert b["requested"] == 8 and 1 <= b["used"] < 8 and b["load_shrunk"]
    assert forced.status_code == 429


def test_request_larger_than_bucket_is_400():
    async def go():
        c, _ = client(bucket_capacity=100, bucket_refill_per_s=10)
        async with c:
            return await c.post("/v1/chat/completions", json=chat(max_tokens=500))
    r = run(go())
    assert r.status_code == 400 and "capacity" in r.json()["error"]["message"]


def test_load_shrinks_n_and_in_flight_never_exceeds_limit():
    gate = threading.Event()
    fake = FakeBackend(block=gate)
    fake.thread_safe = True  # let two threads in at once, to see the limit hold

    async def go():
        c, app = client(fake, default_n=8, max_in_flight=2)
        async with c:
            tasks = [asyncio.ensure_future(c.post("/v1/chat/completions", json=chat())) for _ in range(6)]
            for _ in range(200):  # bounded: wait until 2 run and 4 queue
                h = (await c.get("/health")).json()
                if h["in_flight"] == 2 and h["queued"] == 4:
                    break
                await asyncio.sleep(0.01)
            gate.set()
            rs = await asyncio.gather(*tasks)
            metrics = (await c.get("/metrics")).text
            return h, rs, metrics
    h, rs, metrics = run(go())
    assert h == {"status": "ok", "model": "fake", "in_flight": 2, "queued": 4}
    assert all(r.status_code == 200 for r in rs)
    assert fake.peak <= 2
    budgets = [r.json()["collm"]["budget"] for r in rs]
    assert budgets[0]["used"] == 8 and not budgets[0]["load_shrunk"]  # planned before the queue filled
    shrunk = [b for b in budgets if b["load_shrunk"]]
    assert shrunk and all(b["used"] < 8 and b["load_factor"] < 1 for b in shrunk)
    assert 'collm_requests_total{endpoint="chat",status="200"} 6' in metrics
    assert "collm_load_shrunk_total" in metrics and "collm_request_latency_seconds_bucket" in metrics


def test_queue_full_gets_429():
    gate = threading.Event()

    async def go():
        c, _ = client(FakeBackend(block=gate), max_in_flight=1, max_queue=1)
        async with c:
            t1 = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat()))
            t2 = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat()))
            for _ in range(200):
                if (await c.get("/health")).json()["queued"] == 1:
                    break
                await asyncio.sleep(0.01)
            r3 = await c.post("/v1/chat/completions", json=chat())
            gate.set()
            return r3, await t1, await t2
    r3, r1, r2 = run(go())
    assert r3.status_code == 429 and r3.headers["retry-after"] == "1"
    assert r1.status_code == 200 and r2.status_code == 200


@pytest.mark.parametrize("exc,status", [(UpstreamError("upstream down"), 502), (UpstreamTimeout("too slow"), 504),
                                         (CollmError("bad question"), 400), (RuntimeError("bug"), 500)])
def test_backend_failures_map_to_status(exc, status):
    async def go():
        c, _ = client(FakeBackend(fail=exc))
        async with c:
            return await c.post("/v1/chat/completions", json=chat())
    r = run(go())
    assert r.status_code == status
    msg = r.json()["error"]["message"]
    assert ("bug" not in msg) if status == 500 else (str(exc) in msg)


def test_request_timeout_is_504_and_cancels_the_samples():
    fake = CancellableFake()

    async def go():
        c, _ = client(fake, request_timeout_s=0.3)
        async with c:
            return await c.post("/v1/chat/completions", json=chat())
    r = run(go())
    assert r.status_code == 504
    assert fake.cancelled.wait(5)


def test_client_disconnect_cancels_its_samples():
    """Drive the ASGI app by hand: send the body, then say the client went away."""
    fake = CancellableFake()
    app = create_app(fake, ServeConfig(model_name="fake"))
    body = json.dumps(chat()).encode()
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
        await asyncio.sleep(0.3)
        gone.set()
        await asyncio.wait_for(task, 10)
        return app.state.metrics.counter("collm_cancelled_total")
    cancelled = run(go())
    assert fake.cancelled.wait(5)
    assert cancelled == 1


def test_limiter_load_factor_and_rejected_retry_after():
    lim = Limiter(max_in_flight=2)
    assert lim.load_factor() == 1.0
    lim.in_flight, lim.queued = 2, 2
    assert lim.load_factor() == 0.5
    assert Rejected("x", 0.2, "budget").retry_after == 1 and Rejected("x", 2.5, "budget").retry_after == 3


def test_models_health_metrics():
    async def go():
        c, _ = client()
        async with c:
            await c.post("/v1/chat/completions", json=chat())
            return await c.get("/v1/models"), await c.get("/health"), await c.get("/metrics")
    models, health, metrics = run(go())
    assert models.json()["data"][0]["id"] == "fake"
    assert health.json()["status"] == "ok"
    text = metrics.text
    for name in ["collm_requests_total", "collm_samples_total 4", "collm_flops_total", "collm_budget_level -1",
                 "collm_request_latency_seconds_count 1", "# TYPE collm_request_latency_seconds histogram"]:
        assert name in text, name


def test_adaptive_allocation_policy_runs_the_request_under_the_server_cap():
    from collm.allocation import get_policy

    pol = get_policy("early-stop", conf=0.99, n_max=33)

    async def go():
        c, _ = client(policy=pol, max_n=6)
        async with c:
            free = await c.post("/v1/chat/completions", json=chat())
            capped = await c.post("/v1/chat/completions", json=chat(collm={"max_n": 2}))
            forced = await c.post("/v1/chat/completions", json=chat(n=3))
            return free, capped, forced
    free, capped, forced = [r.json() for r in run(go())]
    f = free["collm"]
    assert f["strategy"] == "policy:early-stop" and f["budget"]["source"] == "policy"
    assert f["budget"]["requested"] == 6 and 1 <= f["samples"] <= 6 and f["answer"] == "42"
    assert 0 <= f["difficulty"] <= 1
    assert capped["collm"]["samples"] <= 2 and capped["collm"]["budget"]["requested"] == 2
    assert forced["collm"]["strategy"] == "majority" and forced["collm"]["samples"] == 3  # a forced n bypasses it


@pytest.mark.parametrize("argv,needle", [
    (["--upstream", "ftp://x"], "not an http(s) URL"),
    (["--upstream", "http://127.0.0.1:1/v1"], "--upstream-params"),
    (["--upstream", "http://127.0.0.1:1/v1", "--upstream-params", "1", "--model", "m"], "not both"),
    (["--policy", "/no/such/policy.json"], "policy file not found"),
    (["--port", "70000"], "--port"),
    (["--default-n", "9", "--max-n", "4"], "over --max-n"),
    (["--api-key", "short"], "at least 8"),
])
def test_serve_cli_refuses_bad_options_without_a_traceback(argv, needle, capsys):
    from collm.cli import main

    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_charge_settles_refund_and_overspend():
    from collm.allocation.bucket import TokenBucket
    from collm.serve.limits import Charge

    t = [0.0]
    b = TokenBucket(100, 0, clock=lambda: t[0])
    assert b.try_take(60)
    Charge(60, [b]).settle(20)
    assert b.level == 80  # 40 unused tokens come back
    assert b.try_take(30)
    Charge(30, [b]).settle(50)
    assert b.level == 30  # 20 tokens beyond the charge are taken too


# ---- credentials in URLs, 405 Allow, the OpenAPI schema's text constraints ----

@pytest.mark.parametrize("query", ["api_key=s3cret", "API_KEY=s3cret", "apikey=s3cret", "x=1&key=s3cret",
                                   "token=s3cret", "Access_Token=s3cret", "api%5Fkey=s3cret"])
def test_a_key_in_the_query_string_is_refused(query):
    async def go():
        c, _ = client(api_keys=["s3cret"])
        async with c:
            h = {"Authorization": "Bearer s3cret"}
            return (await c.get(f"/v1/models?{query}", headers=h),
                    await c.post(f"/v1/chat/completions?{query}", json=chat(), headers=h),
                    await c.get(f"/health?{query}"))
    for r in run(go()):
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["code"] == "credential_in_query"
        assert "Authorization header" in err["message"] and "s3cret" not in r.text


def test_other_query_parameters_pass():
    async def go():
        c, _ = client()
        async with c:
            return await c.get("/v1/models?keys=1&monkey=2&tokens=3")
    assert run(go()).status_code == 200


def uvicorn_access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it: (client, method, path with query, HTTP version, status)."""
    return logging.LogRecord("uvicorn.access", logging.INFO, "h11_impl.py", 477, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5555", "GET", path, "1.1", 400), None)


def test_access_log_filter_masks_credentials_in_the_query():
    from collm.serve.middleware import ScrubQueryCredentials

    f = ScrubQueryCredentials()
    rec = uvicorn_access_record("/v1/models?api_key=s3cret&n=2&Token=t0k&api%5Fkey=k3y&monkey=ok")
    assert f.filter(rec)
    assert rec.getMessage() == ('127.0.0.1:5555 - "GET /v1/models?api_key=***&n=2&Token=***&api%5Fkey=***&monkey=ok '
                                'HTTP/1.1" 400')
    plain = uvicorn_access_record("/v1/models")
    assert f.filter(plain) and plain.getMessage() == '127.0.0.1:5555 - "GET /v1/models HTTP/1.1" 400'


def test_the_access_log_filter_is_installed_by_create_app(caplog):
    client()
    logger = logging.getLogger("uvicorn.access")
    from collm.serve.middleware import ScrubQueryCredentials

    assert sum(isinstance(f, ScrubQueryCredentials) for f in logger.filters) == 1  # once, however many apps
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        rec = uvicorn_access_record("/v1/models?key=s3cret")
        logger.handle(rec)
    assert "s3cret" not in caplog.text and "key=***" in caplog.text


def test_uvicorns_own_access_log_never_prints_a_query_key():
    """A real uvicorn server, with its own logging configuration: the line it
    logs for a request with ?api_key= shows *** (and the request got 400)."""
    import socket

    import uvicorn

    app = create_app(FakeBackend(), ServeConfig(model_name="fake"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    keep = Keep()
    logging.getLogger("uvicorn.access").addHandler(keep)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/models?api_key=s3cret&token=t0k", timeout=10)
    finally:
        server.should_exit = True
        t.join(10)
        logging.getLogger("uvicorn.access").removeHandler(keep)
    assert r.status_code == 400
    assert len(lines) == 1 and "/v1/models?api_key=***&token=***" in lines[0]
    assert "s3cret" not in lines[0] and "t0k" not in lines[0]


@pytest.mark.parametrize("method,path,allow", [("GET", "/v1/chat/completions", "POST"),
                                               ("PUT", "/v1/completions", "POST"),
                                               ("POST", "/v1/models", "GET"), ("DELETE", "/health", "GET")])
def test_405_says_which_methods_are_allowed(method, path, allow):
    async def go():
        c, _ = client()
        async with c:
            return await c.request(method, path)
    r = run(go())
    assert r.status_code == 405 and "error" in r.json()
    assert {m.strip() for m in r.headers["allow"].split(",")} == {allow}


def test_openapi_says_what_the_server_enforces_on_text():
    """The schema says a message's content and a prompt may not be empty;
    an empty one is refused with a 400 as the schema says."""
    _, app = client()
    schemas = app.openapi()["components"]["schemas"]
    content = schemas["ChatMessage"]["properties"]["content"]["anyOf"]
    assert {"type": "string", "minLength": 1}.items() <= content[0].items() and content[1]["minItems"] == 1
    prompt = schemas["CompletionRequest"]["properties"]["prompt"]["anyOf"]
    assert prompt[0]["minLength"] == 1 and prompt[1]["items"]["minLength"] == 1
    assert prompt[1]["minItems"] == prompt[1]["maxItems"] == 1

    async def go():
        c, _ = client()
        async with c:
            return [await c.post("/v1/chat/completions", json=chat("")),
                    await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": []}]}),
                    await c.post("/v1/chat/completions", json=chat("  ")),  # the schema allows it; the server refuses
                    await c.post("/v1/completions", json={"prompt": ""}),
                    await c.post("/v1/completions", json={"prompt": [""]}),
                    await c.post("/v1/completions", json={"prompt": ["a", "b"]})]
    rs = run(go())
    assert [r.status_code for r in rs] == [400] * 6
    msgs = [r.json()["error"]["message"] for r in rs]
    assert "messages.0.content: Value error, the content is empty" in msgs[0] and "no parts" in msgs[1]
    assert "the question is empty" in msgs[2] and "the prompt is empty" in msgs[3] and "the prompt is empty" in msgs[4]
    assert "exactly one prompt" in msgs[5]
