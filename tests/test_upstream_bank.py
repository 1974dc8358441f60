"""`collm bank build --upstream` against small OpenAI-compatible doubles on
loopback, for what a real server cannot be made to do on cue: n honoured
(vLLM) with prompt log-probs, or no prompt log-probs at all; a 502 after N
requests, garbage, a hang, a wrong model name, nothing listening. Each is
one line on stderr and exit 2, every finished problem kept, and the same
command resumes. A real llama.cpp server runs the whole loop in
test_byom_llamacpp.py."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.requests import ClientDisconnect

from collm.bank import load_bank
from collm.cli import main

PARAMS = "135M"


async def body_of(req: Request):
    """The request's JSON, or None when the client went away first (collm cancels
    the requests under way when a build stops: no traceback from the double)."""
    try:
        return await req.json()
    except ClientDisconnect:
        return None


def fake(*, name="my-model", prompt_logprobs=True, fail_after=None, garbage=False, delay=0.0):
    """A vLLM-like double: n choices per request, each saying \\boxed{(seed + j) % 3 + 1}
    in 3 tokens; /v1/completions echoes prompt log-probs unless prompt_logprobs=False."""
    app = FastAPI()
    st = app.state
    st.chat, st.comp, st.inflight, st.peak, st.fail_after = 0, 0, 0, 0, fail_after

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "x"}]}

    @app.post("/v1/chat/completions")
    async def chat(req: Request):
        body = await body_of(req)
        if body is None:
            return Response(status_code=499)
        st.chat += 1
        if st.fail_after is not None and st.chat > st.fail_after:
            return JSONResponse({"error": {"message": "bad gateway"}}, status_code=502)
        if garbage:
            return PlainTextResponse("<html>nginx welcome page</html>", status_code=200)
        st.inflight += 1
        st.peak = max(st.peak, st.inflight)
        try:
            await asyncio.sleep(delay or 0.01)
        finally:
            st.inflight -= 1
        n, seed = body.get("n", 1), body.get("seed", 0)
        lp = {"content": [{"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []} for t in "abc"]}
        greedy = body.get("temperature") == 0
        choices = [{"index": j, "message": {"role": "assistant",
                                            "content": f"so \\boxed{{{1 if greedy else (seed + j) % 3 + 1}}}"},
                    "finish_reason": "stop", "logprobs": lp if body.get("logprobs") else None} for j in range(n)]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": name, "choices": choices,
                "usage": {"prompt_tokens": 20, "completion_tokens": 3 * n, "total_tokens": 20 + 3 * n}}

    @app.post("/v1/completions")
    async def completions(req: Request):
        body = await body_of(req)
        if body is None:
            return Response(status_code=499)
        st.comp += 1
        if not prompt_logprobs:
            return JSONResponse({"error": {"message": "echo is not supported"}}, status_code=400)
        words = body["prompt"].split(" ")
        offs, pos = [], 0
        for k, w in enumerate(words):
            offs.append(pos)
            pos += len(w) + (1 if k else 0)
        lps = {"tokens": words, "text_offset": offs, "token_logprobs": [None] + [-1.0] * (len(words) - 1),
               "top_logprobs": [None] + [{"a": -0.1, "b": -2.5} for _ in words[1:]]}
        return {"id": "y", "object": "text_completion", "created": 0, "model": name,
                "choices": [{"index": 0, "text": "", "finish_reason": "length", "logprobs": lps}],
                "usage": {"prompt_tokens": len(words), "completion_tokens": 1, "total_tokens": len(words) + 1}}

    return app


class Served:
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
        for _ in range(250):
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("test upstream did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def questions(tmp_path):
    p = tmp_path / "mine.jsonl"
    p.write_text("".join(json.dumps({"question": f"What is {k} + 1?", "answer": str(k % 3 + 1)}) + "\n"
                         for k in range(10)))
    return p


def build(url, questions, out, *more):
    return main(["bank", "build", "--upstream", url, "--upstream-params", PARAMS, "--dataset", str(questions),
                 "--k", "4", "--max-tokens", "16", "--out", str(out), "--quiet", *more])


def test_a_bank_over_a_vllm_like_upstream_records_the_model_and_its_signals(questions, tmp_path, capsys):
    out = tmp_path / "bank.jsonl"
    with Served(fake()) as up:
        assert build(up.url, questions, out, "--concurrency", "3") == 0
        peak, chats, scored = up.app.state.peak, up.app.state.chat, up.app.state.comp
    bank = load_bank(str(out))
    h = bank.header
    assert h["model"]["name"] == "my-model" and h["model"]["params"] == 135_000_000 and h["model"]["engine"] == "remote"
    assert h["model"]["upstream"] == [up.url] and h["signals"]["prompt"] is True
    assert h["sampling"]["k"] == 4 and h["sampling"]["max_tokens"] == 16 and h["fields"] == {"question": "question", "answer": "answer"}
    assert "upstream's own chat template" in h["prompt"]["template"] and h["prompt"]["system"]
    assert [p.i for p in sorted(bank.problems, key=lambda p: p.i)] == list(range(1, 11))  # line numbers
    assert all(len(p.samples) == 4 and p.q_entropy and p.q_tokens > 0 for p in bank.problems)
    assert chats == 20  # n honoured: one request for the 4 samples, one for the greedy decode, per problem
    assert 1 < peak <= 3  # requests in flight, capped by --concurrency
    assert scored == 10  # one scoring request a problem: the prompt-signals probe's score is the first problem's
    assert "10 problems written" in capsys.readouterr().err


def test_no_prompt_logprobs_the_header_says_so_and_only_draw_policies_calibrate(questions, tmp_path, capsys):
    out = tmp_path / "bank.jsonl"
    with Served(fake(prompt_logprobs=False)) as up:
        assert build(up.url, questions, out) == 0
    assert "gives no prompt log-probs" in capsys.readouterr().err
    bank = load_bank(str(out))
    assert bank.header["signals"]["prompt"] is False
    assert all(p.q_entropy == [] and p.q_nll == [] and p.q_tokens > 0 and p.prompt_tokens == 20 for p in bank.problems)
    pol = tmp_path / "p.json"
    assert main(["calibrate", "--bank", str(out), "--policy", "schedule", "--budget", "3", "--out", str(pol)]) == 2
    err = capsys.readouterr().err
    assert "no prompt-side signals" in err and "early-stop" in err and "Traceback" not in err
    assert main(["calibrate", "--bank", str(out), "--policy", "early-stop", "--budget", "3", "--out", str(pol)]) == 0
    assert json.loads(pol.read_text())["model"]["name"] == "my-model"
    assert main(["calibrate", "--bank", str(out), "--strategies", "--out", str(tmp_path / "s.json")]) == 2
    assert "no prompt-side signals" in capsys.readouterr().err


def test_a_502_mid_build_keeps_every_finished_problem_and_the_same_command_resumes(questions, tmp_path, capsys):
    out = tmp_path / "bank.jsonl"
    with Served(fake(fail_after=7)) as up:
        assert build(up.url, questions, out, "--concurrency", "1") == 2
        err = capsys.readouterr().err
        assert "HTTP 502" in err and "run the same command to resume" in err and "Traceback" not in err
        assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
        kept = [json.loads(ln)["i"] for ln in out.read_text().splitlines()[1:]]
        assert kept == [1, 2, 3]  # 2 requests a problem: the 4th failed on its 8th
        up.app.state.fail_after = None  # the upstream is back
        assert build(up.url, questions, out, "--concurrency", "1") == 0
    ids = [json.loads(ln)["i"] for ln in out.read_text().splitlines()[1:]]
    assert sorted(ids) == list(range(1, 11)) and len(ids) == 10  # none lost, none twice
    assert "7 problems written, 3 already there" in capsys.readouterr().err


@pytest.mark.parametrize("kind,needle", [
    ("garbage", "not the OpenAI API's"),
    ("wrong-model", "does not serve the model 'other'; it serves: my-model"),
    ("timeout", "timed out"),
    ("unreachable", "cannot reach upstream"),
])
def test_bad_upstreams_are_one_line_and_exit_2(kind, needle, questions, tmp_path, capsys):
    out = tmp_path / "bank.jsonl"
    more = {"wrong-model": ["--upstream-model", "other"], "timeout": ["--upstream-timeout", "0.3"]}.get(kind, [])
    if kind == "unreachable":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        s.close()
        assert build(url, questions, out, *more) == 2
    else:
        with Served(fake(garbage=kind == "garbage", delay=2.0 if kind == "timeout" else 0.0)) as up:
            assert build(up.url, questions, out, *more) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err, err
    assert len([ln for ln in err.strip().splitlines() if ln.startswith("error:")]) == 1


def test_serve_refuses_a_policy_made_for_another_model_naming_both(questions, tmp_path, capsys):
    out, pol = tmp_path / "bank.jsonl", tmp_path / "p.json"
    with Served(fake(name="model-a")) as a, Served(fake(name="model-b")) as b:
        assert build(a.url, questions, out) == 0
        assert main(["calibrate", "--bank", str(out), "--policy", "early-stop", "--budget", "3", "--out", str(pol)]) == 0
        capsys.readouterr()
        assert main(["serve", "--upstream", b.url, "--upstream-params", PARAMS, "--policy", str(pol)]) == 2
        err = capsys.readouterr().err
        assert "calibrated for model-a (135,000,000 params), not for model-b (135,000,000 params)" in err
        assert main(["serve", "--upstream", a.url, "--upstream-params", "360M", "--policy", str(pol)]) == 2
        assert "not for model-a (360,000,000 params)" in capsys.readouterr().err


@pytest.mark.parametrize("prompt_logprobs", [True, False])
def test_calibrate_auto_compares_every_kind_the_bank_supports_and_writes_the_best(prompt_logprobs, questions,
                                                                                   tmp_path, capsys):
    out, pol = tmp_path / "bank.jsonl", tmp_path / "p.json"
    with Served(fake(prompt_logprobs=prompt_logprobs)) as up:
        assert build(up.url, questions, out) == 0
    capsys.readouterr()
    assert main(["calibrate", "--bank", str(out), "--policy", "auto", "--budget", "3", "--out", str(pol),
                 "--seeds", "2"]) == 0
    text = capsys.readouterr().out
    table = text.split("\npolicy ")[0]  # the comparison, before the chosen policy's own lines
    rows = {ln.split()[0]: ln for ln in table.splitlines() if ln.startswith("  ") and ln.split()[0] in
            ("uniform", "schedule", "early-stop", "marginal")}
    assert set(rows) == ({"uniform", "schedule", "early-stop", "marginal"} if prompt_logprobs
                         else {"uniform", "early-stop", "marginal"})
    best = [k for k, ln in rows.items() if ln.endswith("<- best")]
    assert len(best) == 1
    d = json.loads(pol.read_text())
    assert d["kind"] == best[0] and d["model"]["name"] == "my-model" and d["model"]["params"] == 135_000_000
    accs = {k: float(ln.split()[1]) for k, ln in rows.items()}
    assert accs[best[0]] == max(accs.values())
    if not prompt_logprobs:
        assert "not tried: schedule: the bank holds no prompt-side signals" in text
